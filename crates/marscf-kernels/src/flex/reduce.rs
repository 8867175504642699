//! Sums and element-wise loops in vector lanes, and the split of work into runs whose
//! partial sums add up in a fixed order.

use super::simd::with_widest_simd;

/// `len` as the length of the chunks of a slice of items `len` long: at least 1. With
/// `len = 0` the slice is empty, so it still yields no chunk (and `chunks(0)` would panic).
pub fn chunk_len(len: usize) -> usize {
    len.max(1)
}

/// `dst += src`, element by element.
pub fn add_assign(dst: &mut [f32], src: &[f32]) {
    with_widest_simd(
        #[inline(always)]
        || dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
    )
}

/// The length of the contiguous runs that cut `items` into one run per worker: each run
/// sums its own partial gradient, and the partial sums are added in order, so
/// that the result does not depend on which worker took which run.
pub fn run_len(items: usize) -> usize {
    items.div_ceil(rayon::current_num_threads()).max(1)
}

/// The element-wise sum of the runs' partial gradients (pairs such as `(dW, db)`), in order (zeros of `lens` if
/// there are none).
pub fn sum_runs(partials: Vec<(Vec<f32>, Vec<f32>)>, lens: [usize; 2]) -> (Vec<f32>, Vec<f32>) {
    partials
        .into_iter()
        .reduce(|(mut dw, mut db), (dw2, db2)| {
            add_assign(&mut dw, &dw2);
            add_assign(&mut db, &db2);
            (dw, db)
        })
        .unwrap_or_else(|| (vec![0.0; lens[0]], vec![0.0; lens[1]]))
}

/// `dst += b` for every element.
pub fn add_scalar(dst: &mut [f32], b: f32) {
    with_widest_simd(
        #[inline(always)]
        || dst.iter_mut().for_each(|d| *d += b),
    )
}

/// `Σ xs`, in vector lanes.
pub fn sum(xs: &[f32]) -> f32 {
    with_widest_simd(
        #[inline(always)]
        || lanes(xs, 0.0, |s, v| s + v),
    )
}

/// `xs` folded by `f` from `init` in 8 independent lanes (so that the loop vectorises),
/// then across the lanes.
#[inline(always)]
pub fn lanes(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    acc.into_iter().fold(rest, &f)
}

/// Every `x` of `xs` replaced by `map(x)`, the new values folded by `f` from `init` in 8
/// independent lanes as [`lanes`] folds them.
#[inline(always)]
pub fn map_lanes(
    xs: &mut [f32],
    init: f32,
    map: impl Fn(f32) -> f32,
    f: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = xs.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *x = map(*x);
            *a = f(*a, *x);
        }
    }
    let rest = chunks.into_remainder().iter_mut().fold(init, |a, x| {
        *x = map(*x);
        f(a, *x)
    });
    acc.into_iter().fold(rest, &f)
}

/// `Σ a_i b_i` over the common length, in 8 independent lanes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let full = n - n % 8;
    let mut acc = [0.0f32; 8];
    for (a, b) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for ((s, &x), &y) in acc.iter_mut().zip(a).zip(b) {
            *s += x * y;
        }
    }
    let rest: f32 = a[full..n]
        .iter()
        .zip(&b[full..n])
        .map(|(&x, &y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_and_dot_add_every_term() {
        for len in [0, 1, 15, 16, 17, 100] {
            let xs: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 2.5).collect();
            let want: f64 = xs.iter().map(|&x| x as f64).sum();
            assert_eq!(sum(&xs) as f64, want, "length {len}");
            let twos = vec![2.0f32; len];
            assert_eq!(dot(&xs, &twos) as f64, 2.0 * want, "length {len}");
        }
    }
}
