//! Stride-1 convolution as tiled im2col + gemm over the whole batch, on contiguous `f32`
//! NCHW slices.
//!
//! Output pixels are numbered `(n, oh, ow)` across the batch and cut into tiles of whole
//! output rows (about [`TILE_COLUMNS`] pixels, several samples at once on small maps). Per
//! tile, in parallel:
//! - forward: `Y_t[Co, P] = W[Co, K] · cols_t[K, P]`, `K = Ci kh kw`;
//! - weight gradient: `dWᵀ[K, Co] += cols_t[K, P] · dY_t[Co, P]ᵀ`, summed over tiles (one
//!   accumulator per worker), so the inner dimension of the product is the whole `N H W`;
//! - input gradient: the forward of `dY` with the flipped, transposed kernel
//!   `W'[ci, co, i, j] = W[co, ci, kh-1-i, kw-1-j]` and the padding mirrored
//!   (`d (k - 1) - p` on each side), so it is the same gemm with `K = Co kh kw`.

use std::ops::Range;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Output pixels per tile: large enough for the gemm micro-kernels, small enough that a
/// tile's columns stay in the caches and the tiles spread over the cores.
const TILE_COLUMNS: usize = 512;

/// The geometry of one convolution: input `(N, Ci, H, W)`, kernel `(Co, Ci, kh, kw)`, zero
/// padding `[(top, bottom), (left, right)]`, dilation `[dh, dw]`, stride 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch `N`.
    pub batch: usize,
    /// Input channels `Ci`.
    pub c_in: usize,
    /// Input height and width.
    pub size: [usize; 2],
    /// Output channels `Co`.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Zero padding `[(top, bottom), (left, right)]`.
    pub padding: [(usize, usize); 2],
    /// Dilation `[dh, dw]`.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// Output height and width, `H + p_top + p_bottom - d (k - 1)`; `None` if not positive.
    pub fn out_size(&self) -> Option<[usize; 2]> {
        let dim = |i: usize| {
            let (lo, hi) = self.padding[i];
            (self.size[i] + lo + hi).checked_sub(self.dilation[i] * (self.kernel[i] - 1))
        };
        match (dim(0)?, dim(1)?) {
            (0, _) | (_, 0) => None,
            (h, w) => Some([h, w]),
        }
    }

    /// The inner dimension of the forward product, `Ci kh kw`.
    fn patch_len(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// The geometry whose forward is this one's input gradient (see the module doc);
    /// `None` if a padding exceeds `d (k - 1)`.
    fn transposed(&self) -> Option<ConvGeometry> {
        let out = self.out_size()?;
        let mirror = |i: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1);
            let (lo, hi) = self.padding[i];
            Some((span.checked_sub(lo)?, span.checked_sub(hi)?))
        };
        Some(ConvGeometry {
            batch: self.batch,
            c_in: self.c_out,
            size: out,
            c_out: self.c_in,
            kernel: self.kernel,
            padding: [mirror(0)?, mirror(1)?],
            dilation: self.dilation,
        })
    }

    /// Whether [`input_grad`] can compute this geometry's input gradient.
    pub fn has_input_grad(&self) -> bool {
        self.transposed().is_some()
    }

    fn out(&self) -> [usize; 2] {
        self.out_size().expect("a valid convolution geometry")
    }

    /// Output rows `N Ho` cut into tiles of whole rows.
    fn tiles(&self) -> Vec<Range<usize>> {
        let [ho, wo] = self.out();
        let rows = self.batch * ho;
        let per_tile = (TILE_COLUMNS / wo)
            .max(1)
            .min(rows.div_ceil(2 * rayon::current_num_threads()).max(1));
        (0..rows.div_ceil(per_tile))
            .map(|t| t * per_tile..((t + 1) * per_tile).min(rows))
            .collect()
    }
}

/// A pointer to an output buffer that tiles write disjoint parts of.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every tile writes only the elements of its own output rows.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// `len` elements from `offset`.
    ///
    /// # Safety
    /// The range must lie inside the buffer, and no other tile may touch it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, offset: usize, len: usize) -> &mut [f32] {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(offset), len) }
    }
}

/// Per-worker scratch: the tile's columns and the gemm's output.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    out: Vec<f32>,
}

/// Sizes `buf` to `len` (contents unspecified: every element is written before it is read).
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

/// `cols[(ci kh + i) kw + j, (r - r0) Wo + ow] = x[n, ci, oh + dh i - pt, ow + dw j - pl]`
/// (zero outside) for output rows `r = n Ho + oh` in `rows`.
fn im2col(x: &[f32], g: &ConvGeometry, rows: &Range<usize>, cols: &mut [f32]) {
    let ([h, w], [ho, wo]) = (g.size, g.out());
    let ([kh, kw], [dh, dw]) = (g.kernel, g.dilation);
    let [(pt, _), (pl, _)] = g.padding;
    let width = rows.len() * wo;
    for ci in 0..g.c_in {
        for i in 0..kh {
            for j in 0..kw {
                let dst = &mut cols[((ci * kh + i) * kw + j) * width..][..width];
                // ix = ow + shift is inside [0, W) for ow in lo..hi.
                let shift = (j * dw) as isize - pl as isize;
                let lo = (-shift).clamp(0, wo as isize) as usize;
                let hi = (w as isize - shift).clamp(lo as isize, wo as isize) as usize;
                for (row, r) in dst.chunks_exact_mut(wo).zip(rows.clone()) {
                    let (n, oh) = (r / ho, r % ho);
                    let iy = (oh + i * dh) as isize - pt as isize;
                    if iy < 0 || iy >= h as isize {
                        row.fill(0.0);
                        continue;
                    }
                    let src = &x[((n * g.c_in + ci) * h + iy as usize) * w..][..w];
                    row[..lo].fill(0.0);
                    row[lo..hi].copy_from_slice(
                        &src[(lo as isize + shift) as usize..(hi as isize + shift) as usize],
                    );
                    row[hi..].fill(0.0);
                }
            }
        }
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` with `accumulate`), `m x n` from `m x k` and
/// `k x n`, each given by its (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    dst_strides: [isize; 2],
    lhs: &[f32],
    lhs_strides: [isize; 2],
    rhs: &[f32],
    rhs_strides: [isize; 2],
    accumulate: bool,
    parallelism: Parallelism,
) {
    let extent = |[rs, cs]: [isize; 2], rows: usize, cols: usize| {
        (rows.max(1) - 1) * rs as usize + (cols.max(1) - 1) * cs as usize + 1
    };
    assert!(
        dst.len() >= extent(dst_strides, m, n),
        "gemm destination too small"
    );
    assert!(
        lhs.len() >= extent(lhs_strides, m, k),
        "gemm left operand too small"
    );
    assert!(
        rhs.len() >= extent(rhs_strides, k, n),
        "gemm right operand too small"
    );
    // SAFETY: the three extents were checked against the slices above.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides[1],
            dst_strides[0],
            accumulate,
            lhs.as_ptr(),
            lhs_strides[1],
            lhs_strides[0],
            rhs.as_ptr(),
            rhs_strides[1],
            rhs_strides[0],
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The gemm's own threading, used only when the whole product is one tile.
fn inner_parallelism(tiles: usize, flops: usize) -> Parallelism {
    if tiles == 1 && flops >= 1 << 22 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `y = conv(x, w) + bias`: `x` `(N, Ci, H, W)`, `w` `(Co, Ci, kh, kw)`, `bias` `(Co)`,
/// `y` `(N, Co, Ho, Wo)`.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let ([ho, wo], k, co) = (g.out(), g.patch_len(), g.c_out);
    let mut y = vec![0.0f32; g.batch * co * ho * wo];
    let out = SharedOut(y.as_mut_ptr());
    let tiles = g.tiles();
    let parallelism = inner_parallelism(tiles.len(), co * k * g.batch * ho * wo);
    tiles
        .par_iter()
        .for_each_init(Scratch::default, |scratch, rows| {
            let width = rows.len() * wo;
            let cols = sized(&mut scratch.cols, k * width);
            im2col(x, g, rows, cols);
            let tile = sized(&mut scratch.out, co * width);
            matmul(
                [co, width, k],
                tile,
                [width as isize, 1],
                w,
                [k as isize, 1],
                cols,
                [width as isize, 1],
                false,
                parallelism,
            );
            for (c, tile_row) in tile.chunks_exact(width).enumerate() {
                let b = bias.map_or(0.0, |b| b[c]);
                for (src, r) in tile_row.chunks_exact(wo).zip(rows.clone()) {
                    let (n, oh) = (r / ho, r % ho);
                    let offset = ((n * co + c) * ho + oh) * wo;
                    // SAFETY: output row (n, c, oh) belongs to this tile alone, and
                    // `offset + wo <= y.len()`.
                    let dst = unsafe { out.slice(offset, wo) };
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = s + b;
                    }
                }
            }
        });
    y
}

/// `(dW, db)` of `y = conv(x, w) + b` given `dy` `(N, Co, Ho, Wo)`: `dW` `(Co, Ci, kh, kw)`,
/// `db` `(Co)`.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let ([ho, wo], k, co) = (g.out(), g.patch_len(), g.c_out);
    let tiles = g.tiles();
    let parallelism = inner_parallelism(tiles.len(), co * k * g.batch * ho * wo);
    let zeros = || (vec![0.0f32; k * co], vec![0.0f32; co], Scratch::default());
    let (dwt, db, _) = tiles
        .par_iter()
        .fold(zeros, |(mut dwt, mut db, mut scratch), rows| {
            let width = rows.len() * wo;
            let cols = sized(&mut scratch.cols, k * width);
            im2col(x, g, rows, cols);
            let dy_tile = sized(&mut scratch.out, co * width);
            for (c, (tile_row, db_c)) in dy_tile.chunks_exact_mut(width).zip(&mut db).enumerate() {
                for (dst, r) in tile_row.chunks_exact_mut(wo).zip(rows.clone()) {
                    let (n, oh) = (r / ho, r % ho);
                    dst.copy_from_slice(&dy[((n * co + c) * ho + oh) * wo..][..wo]);
                }
                *db_c += tile_row.iter().sum::<f32>();
            }
            matmul(
                [k, co, width],
                &mut dwt,
                [co as isize, 1],
                cols,
                [width as isize, 1],
                dy_tile,
                [1, width as isize],
                true,
                parallelism,
            );
            (dwt, db, scratch)
        })
        .reduce(zeros, |(mut dwt, mut db, s), (dwt2, db2, _)| {
            dwt.iter_mut().zip(dwt2).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(db2).for_each(|(a, b)| *a += b);
            (dwt, db, s)
        });
    let mut dw = vec![0.0f32; co * k];
    for (p, row) in dwt.chunks_exact(co).enumerate() {
        for (c, v) in row.iter().enumerate() {
            dw[c * k + p] = *v;
        }
    }
    (dw, db)
}

/// `dx` `(N, Ci, H, W)` of `y = conv(x, w)` given `dy` `(N, Co, Ho, Wo)`. Panics unless
/// [`ConvGeometry::has_input_grad`].
pub fn input_grad(dy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let t = g.transposed().expect("paddings of at most d (k - 1)");
    let ([kh, kw], ci, co) = (g.kernel, g.c_in, g.c_out);
    let mut flipped = vec![0.0f32; w.len()];
    for o in 0..co {
        for c in 0..ci {
            for i in 0..kh {
                for j in 0..kw {
                    flipped[((c * co + o) * kh + kh - 1 - i) * kw + kw - 1 - j] =
                        w[((o * ci + c) * kh + i) * kw + j];
                }
            }
        }
    }
    forward(dy, &flipped, None, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, in f64.
    fn direct(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let ([h, wd], [ho, wo]) = (g.size, g.out());
        let ([kh, kw], [dh, dw]) = (g.kernel, g.dilation);
        let [(pt, _), (pl, _)] = g.padding;
        let mut y = vec![0.0; g.batch * g.c_out * ho * wo];
        for n in 0..g.batch {
            for o in 0..g.c_out {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut s = 0.0f64;
                        for c in 0..g.c_in {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oh + i * dh) as isize - pt as isize;
                                    let ix = (ow + j * dw) as isize - pl as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((n * g.c_in + c) * h + iy as usize) * wd + ix as usize];
                                    let wv = w[((o * g.c_in + c) * kh + i) * kw + j];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((n * g.c_out + o) * ho + oh) * wo + ow] = s;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn geometry(
        batch: usize,
        size: usize,
        k: usize,
        d: usize,
        pad: (usize, usize),
    ) -> ConvGeometry {
        ConvGeometry {
            batch,
            c_in: 3,
            size: [size, size + 1],
            c_out: 5,
            kernel: [k, k],
            padding: [pad, pad],
            dilation: [d, d],
        }
    }

    fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for (batch, size, k, d, pad) in [
            (1, 4, 1, 1, (0, 0)),
            (2, 5, 3, 1, (1, 1)),
            (3, 7, 5, 2, (4, 4)),
            (2, 6, 2, 1, (0, 1)),
            (1, 40, 3, 1, (1, 1)),
            (2, 4, 3, 1, (0, 0)),
        ] {
            let g = geometry(batch, size, k, d, pad);
            let x = values(batch * 3 * size * (size + 1), 1);
            let w = values(5 * 3 * k * k, 2);
            let bias = values(5, 3);
            let mut want = direct(&x, &w, &g);
            let plane = g.out().iter().product::<usize>();
            for (i, v) in want.iter_mut().enumerate() {
                *v += bias[(i / plane) % 5] as f64;
            }
            assert_close(&forward(&x, &w, Some(&bias), &g), &want);
        }
    }

    #[test]
    fn gradients_match_the_adjoint_of_the_definition() {
        // <dy, conv(x, w)> is linear in x and in w: its gradients are the adjoints.
        for (batch, size, k, d, pad) in [
            (2, 5, 3, 1, (1, 1)),
            (3, 6, 5, 2, (4, 4)),
            (2, 6, 2, 1, (0, 1)),
        ] {
            let g = geometry(batch, size, k, d, pad);
            let x = values(batch * 3 * size * (size + 1), 4);
            let w = values(5 * 3 * k * k, 5);
            let dy = values(batch * 5 * g.out().iter().product::<usize>(), 6);
            let loss = |x: &[f32], w: &[f32]| -> f64 {
                direct(x, w, &g)
                    .iter()
                    .zip(&dy)
                    .map(|(y, d)| y * *d as f64)
                    .sum()
            };
            let unit = |len: usize, i: usize| {
                let mut e = vec![0.0f32; len];
                e[i] = 1.0;
                e
            };
            let dx_want: Vec<f64> = (0..x.len()).map(|i| loss(&unit(x.len(), i), &w)).collect();
            let dw_want: Vec<f64> = (0..w.len()).map(|i| loss(&x, &unit(w.len(), i))).collect();
            let db_want: Vec<f64> = (0..5)
                .map(|c| {
                    let plane = g.out().iter().product::<usize>();
                    dy.iter()
                        .enumerate()
                        .filter(|(i, _)| (i / plane) % 5 == c)
                        .map(|(_, v)| *v as f64)
                        .sum()
                })
                .collect();
            assert_close(&input_grad(&dy, &w, &g), &dx_want);
            let (dw, db) = weight_grad(&x, &dy, &g);
            assert_close(&dw, &dw_want);
            assert_close(&db, &db_want);
        }
    }
}
