//! The matrix product every gemm-based kernel calls, on typed views of slices (shape and
//! strides checked where a view is made, faer's `MatRef`/`MatMut` as the model), and the
//! per-thread scratch buffers those kernels share.

use std::cell::RefCell;

use gemm::{Parallelism, gemm};

/// A read-only `rows x cols` matrix in a slice: element `(i, j)` at `i rs + j cs`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    strides: [usize; 2],
}

/// A `rows x cols` matrix in a mutable slice, laid out as [`MatRef`]'s.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    strides: [usize; 2],
}

/// The elements a `rows x cols` matrix with `strides` reaches: 0 when it is empty, `None`
/// when that overflows `isize` (the gemm's stride type).
fn extent(rows: usize, cols: usize, [rs, cs]: [usize; 2]) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    let last = (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)?;
    (last <= isize::MAX as usize).then_some(last)
}

/// Panics unless a slice of `len` values holds every element a `rows x cols` matrix with
/// `strides` reaches.
fn check_fits(len: usize, rows: usize, cols: usize, strides: [usize; 2]) {
    assert!(
        extent(rows, cols, strides).is_some_and(|e| len >= e),
        "a {rows} x {cols} matrix with strides {strides:?} needs more than {len} values"
    );
}

/// Whether distinct elements of a `rows x cols` matrix with `strides` are distinct places:
/// one dimension steps over the whole of the other.
fn disjoint(rows: usize, cols: usize, [rs, cs]: [usize; 2]) -> bool {
    rows <= 1 && (cols <= 1 || cs > 0)
        || cols <= 1 && rs > 0
        || cs > 0 && rs >= cols * cs
        || rs > 0 && cs >= rows * rs
}

impl<'a> MatRef<'a> {
    /// The `rows x cols` matrix stored row after row at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, [cols, 1])
    }

    /// The `rows x cols` matrix with (row, column) `strides` at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than the last element the strides reach.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, strides: [usize; 2]) -> Self {
        check_fits(data.len(), rows, cols, strides);
        Self {
            data,
            rows,
            cols,
            strides,
        }
    }

    /// The transpose: the same values, rows and columns swapped.
    pub fn t(self) -> Self {
        let [rs, cs] = self.strides;
        Self {
            rows: self.cols,
            cols: self.rows,
            strides: [cs, rs],
            ..self
        }
    }
}

impl<'a> MatMut<'a> {
    /// The `rows x cols` matrix stored row after row at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows cols`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, [cols, 1])
    }

    /// The `rows x cols` matrix with (row, column) `strides` at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than the last element the strides reach, or if two elements
    /// would share a place (the gemm writes them from several threads).
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, strides: [usize; 2]) -> Self {
        // First the extent: once it fits in a slice, `disjoint`'s products cannot overflow.
        check_fits(data.len(), rows, cols, strides);
        assert!(
            disjoint(rows, cols, strides),
            "a {rows} x {cols} destination with strides {strides:?} writes some places twice"
        );
        Self {
            data,
            rows,
            cols,
            strides,
        }
    }
}

/// What a product does with the destination's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accum {
    /// `dst = lhs · rhs`.
    Replace,
    /// `dst += lhs · rhs`.
    Add,
}

/// `dst (=|+=) lhs · rhs`: `(m x k) · (k x n) -> (m x n)`. Any of `m`, `n`, `k` may be 0
/// (`k = 0`: `dst = 0`, or unchanged when adding).
///
/// # Panics
/// If the shapes do not chain.
pub fn matmul(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accum: Accum,
    parallelism: Parallelism,
) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(
        lhs.rows == m && rhs.rows == k && rhs.cols == n,
        "gemm shapes: ({m} x {n}) = ({} x {k}) · ({} x {})",
        lhs.rows,
        rhs.rows,
        rhs.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    let [drs, dcs] = dst.strides;
    if k == 0 {
        if accum == Accum::Replace {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * drs + j * dcs] = 0.0;
                }
            }
        }
        return;
    }
    let add = accum == Accum::Add;
    let stride = |s: usize| s as isize;
    // SAFETY: every view's constructor checked that its slice holds the elements its shape
    // and strides reach (with strides that fit `isize`), the destination's that no two of
    // its elements share a place, and the shapes were checked to chain above.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            stride(dcs),
            stride(drs),
            add,
            lhs.data.as_ptr(),
            stride(lhs.strides[1]),
            stride(lhs.strides[0]),
            rhs.data.as_ptr(),
            stride(rhs.strides[1]),
            stride(rhs.strides[0]),
            if add { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The gemm's own threading for products done one sample per task: only when there are
/// fewer samples than workers.
pub fn per_sample_parallelism(batch: usize) -> Parallelism {
    if batch < rayon::current_num_threads() {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

thread_local! {
    /// Each thread's two scratch buffers, kept across calls so that they are neither
    /// allocated nor zeroed again once they are large enough.
    static SCRATCH: RefCell<[Vec<f32>; 2]> = RefCell::default();
}

/// Runs `f` with this thread's two scratch buffers, or with fresh ones if a caller further
/// up the thread's stack holds them (a worker waiting inside gemm's own threading may take
/// up another task).
pub fn with_scratch<R>(f: impl FnOnce(&mut [Vec<f32>; 2]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Default::default()),
    })
}

/// The first `len` elements of `buf`, grown if it is shorter (contents unspecified: every
/// element is written before it is read). It never shrinks, so that a larger request after
/// a smaller one zeroes nothing.
pub fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lhs · rhs` by definition, row-major.
    fn product(lhs: &[f32], rhs: &[f32], [m, n, k]: [usize; 3]) -> Vec<f32> {
        (0..m * n)
            .map(|ij| {
                (0..k)
                    .map(|p| lhs[ij / n * k + p] * rhs[p * n + ij % n])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn transposed_views_and_accumulation_match_the_definition() {
        let (m, n, k) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| 1.0 - v as f32 * 0.25).collect();
        let expected = product(&a, &b, [m, n, k]);
        // b stored transposed (n x k, row-major), read back through .t().
        let bt: Vec<f32> = (0..n * k).map(|ji| b[ji % k * n + ji / k]).collect();
        let mut dst = vec![7.0; m * n];
        matmul(
            MatMut::row_major(&mut dst, m, n),
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&bt, n, k).t(),
            Accum::Replace,
            Parallelism::None,
        );
        assert_eq!(dst, expected);
        matmul(
            MatMut::row_major(&mut dst, m, n),
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            Accum::Add,
            Parallelism::None,
        );
        let doubled: Vec<f32> = expected.iter().map(|v| 2.0 * v).collect();
        assert_eq!(dst, doubled);
        let mut empty_sum = vec![7.0; m * n];
        matmul(
            MatMut::row_major(&mut empty_sum, m, n),
            MatRef::row_major(&[], m, 0),
            MatRef::row_major(&[], 0, n),
            Accum::Replace,
            Parallelism::None,
        );
        assert!(empty_sum.iter().all(|&v| v == 0.0));
    }

    #[test]
    #[should_panic(expected = "needs more than")]
    fn a_view_larger_than_its_slice_is_refused() {
        let _ = MatRef::row_major(&[0.0; 5], 2, 3);
    }

    #[test]
    #[should_panic(expected = "needs more than")]
    fn strides_that_overflow_are_refused() {
        let _ = MatRef::strided(&[0.0; 5], 3, 1, [usize::MAX / 2, 1]);
    }

    #[test]
    fn a_destination_that_writes_a_place_twice_is_refused() {
        let mut data = [0.0; 8];
        assert!(
            std::panic::catch_unwind(move || {
                let _ = MatMut::strided(&mut data, 2, 3, [1, 1]);
            })
            .is_err()
        );
        assert!(disjoint(2, 3, [3, 1]) && disjoint(2, 3, [1, 2]) && disjoint(1, 4, [0, 1]));
        assert!(!disjoint(2, 3, [0, 1]) && !disjoint(2, 3, [2, 1]));
    }
}
