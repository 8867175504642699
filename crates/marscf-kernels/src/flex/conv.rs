//! Stride-1 convolution as tiled im2col + gemm over the whole batch, on contiguous `f32`
//! NCHW slices.
//!
//! Output pixels are numbered `(n, oh, ow)` across the batch and cut into tiles of whole
//! output rows (about [`CONV_TILE_COLUMNS`] pixels, several samples at once on small maps). Per
//! tile, in parallel, with `K = Ci kh kw` and `P` the tile's pixels:
//! - forward: `Y_t[Co, P] = W[Co, K] · cols_t[K, P]`;
//! - weight gradient: `dWᵀ[K, Co] += cols_t[K, P] · dY_t[Co, P]ᵀ`, summed over tiles (one
//!   accumulator per worker), so the inner dimension of the product is the whole `N H W`;
//! - input gradient: `dcols_t[K, P] = Wᵀ[K, Co] · dY_t[Co, P]`, scattered back and added
//!   into `dx` (col2im); these tiles hold whole samples, so no two write the same pixel.
//!
//! 1x1 kernels without padding skip the tiles (one product per sample). With enough
//! channels, the forward of 3x3 "same" kernels on maps of 8x8 or more is Winograd's
//! F(2x2, 3x3) ([`super::winograd`]); "same" 5x5 kernels and 3x3 ones on maps of at most
//! 4x4 or at least 16x16 take Winograd's F(2x2, 5x5) or F(4x4, 3x3) ([`super::winograd6`],
//! which [`winograd6::pays`] chooses before F(2x2, 3x3)) for the forward,
//! the input gradient (the transposed forward) and the weight gradient, over few output
//! blocks only where the transformed kernel serves many calls or is small
//! ([`winograd6::pays`]). A [`Prepared`] keeps a transformed kernel across the calls of one
//! geometry, an [`InputGrad`] its flipped one.

use std::borrow::Cow;
use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm::{Accum, MatMut, MatRef, matmul, per_sample_parallelism, sized, with_scratch};
use super::glue::prelude::*;
use super::reduce::{add_scalar, run_len, sum, sum_runs};
use super::simd::with_widest_simd;
use super::tuning::{CONV_TILE_COLUMNS, GEMM_THREADING_MIN_FLOPS};
use super::{kernel_cache, winograd, winograd6};
use crate::ConvSpec;

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

/// The output rows `rows` of sample `n`, stored in a tile from column `col` on.
struct Segment {
    n: usize,
    rows: Range<usize>,
    col: usize,
}

/// A tile: consecutive output rows, as one segment per sample, `width` pixels in all.
struct Tile {
    segments: Vec<Segment>,
    width: usize,
}

impl ConvGeometry {
    /// Output height and width, `H + p_top + p_bottom - d (k - 1)`; `None` if not positive.
    pub fn out_size(&self) -> Option<[usize; 2]> {
        let dim = |i: usize| {
            let (lo, hi) = self.padding[i];
            (self.size[i] + lo + hi)
                .checked_sub(self.dilation[i] * (self.kernel[i].checked_sub(1)?))
        };
        match (dim(0)?, dim(1)?) {
            (0, _) | (_, 0) => None,
            (h, w) => Some([h, w]),
        }
    }

    /// Whether the convolution has no sample or no channel in or out: its forward is then
    /// the bias alone (over no element if `N Co = 0`), and its gradients are zeros, but for
    /// the bias's `Σ dy`.
    fn degenerate(&self) -> bool {
        self.batch == 0 || self.c_in == 0 || self.c_out == 0
    }

    /// The inner dimension of the forward product, `Ci kh kw`.
    fn patch_len(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    fn out(&self) -> [usize; 2] {
        self.out_size().expect("a valid convolution geometry")
    }

    /// The convolution whose forward is this one's input gradient, if its padding is not
    /// negative: `dy` `(N, Co, Ho, Wo)` correlated with the flipped kernel `(Ci, Co, kh, kw)`
    /// ([`flipped`]) and padding `d (k - 1) - p` on each side gives `dx` `(N, Ci, H, W)`.
    fn transposed(&self) -> Option<ConvGeometry> {
        let pad = |i: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1);
            let (lo, hi) = self.padding[i];
            Some((span.checked_sub(lo)?, span.checked_sub(hi)?))
        };
        Some(ConvGeometry {
            batch: self.batch,
            c_in: self.c_out,
            size: self.out(),
            c_out: self.c_in,
            kernel: self.kernel,
            padding: [pad(0)?, pad(1)?],
            dilation: self.dilation,
        })
    }

    /// Whether the kernel is 1x1 without padding: a sample's columns are then its input
    /// planes `[Ci, H W]` as they lie, and each product reads and writes the tensors in place.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.padding == [(0, 0); 2]
    }

    /// Where kernel tap `(i, j)` reads, relative to the output pixel: `(dh i - pt, dw j - pl)`.
    fn shift(&self, i: usize, j: usize) -> (isize, isize) {
        let [(pt, _), (pl, _)] = self.padding;
        (
            (i * self.dilation[0]) as isize - pt as isize,
            (j * self.dilation[1]) as isize - pl as isize,
        )
    }

    /// Output rows `N Ho` cut into tiles of whole rows (of whole samples if
    /// `whole_samples`).
    fn tiles(&self, whole_samples: bool) -> Vec<Tile> {
        let [ho, wo] = self.out();
        let rows = self.batch * ho;
        let mut per_tile = (CONV_TILE_COLUMNS / wo)
            .max(1)
            .min(rows.div_ceil(2 * rayon::current_num_threads()).max(1));
        if whole_samples {
            per_tile = per_tile.div_ceil(ho) * ho;
        }
        (0..rows.div_ceil(per_tile))
            .map(|t| {
                let (mut r, end) = (t * per_tile, ((t + 1) * per_tile).min(rows));
                let mut segments = Vec::new();
                while r < end {
                    let (n, oh) = (r / ho, r % ho);
                    let last = (ho - oh).min(end - r);
                    segments.push(Segment {
                        n,
                        rows: oh..oh + last,
                        col: (r - t * per_tile) * wo,
                    });
                    r += last;
                }
                Tile {
                    segments,
                    width: (end - t * per_tile) * wo,
                }
            })
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

/// `dst[(oh - oh0) Wo + ow] = plane[oh + sy, ow + sx]` (zero outside the plane) for the
/// output rows `rows = oh0..oh1` of one channel of one sample.
fn gather_shifted(
    dst: &mut [f32],
    plane: &[f32],
    [h, w]: [usize; 2],
    wo: usize,
    rows: &Range<usize>,
    (sy, sx): (isize, isize),
) {
    if wo != w {
        for (row, oh) in dst.chunks_exact_mut(wo).zip(rows.clone()) {
            let iy = oh as isize + sy;
            for (ow, v) in row.iter_mut().enumerate() {
                let ix = ow as isize + sx;
                *v = if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                    plane[iy as usize * w + ix as usize]
                } else {
                    0.0
                };
            }
        }
        return;
    }
    // Same width: the valid rows are one contiguous run of the plane, shifted by
    // `sy w + sx`; the `|sx|` pixels of each row that wrap into the neighbouring row are
    // zeroed afterwards.
    let (oh0, oh1) = (rows.start as isize, rows.end as isize);
    let lo = (-sy).clamp(oh0, oh1);
    let hi = (h as isize - sy).clamp(lo, oh1);
    let (a, b) = (((lo - oh0) as usize) * w, ((hi - oh0) as usize) * w);
    dst[..a].fill(0.0);
    dst[b..].fill(0.0);
    let block = &mut dst[a..b];
    let base = (lo + sy) * w as isize + sx;
    let k0 = (-base).clamp(0, block.len() as isize) as usize;
    let k1 = ((h * w) as isize - base).clamp(k0 as isize, block.len() as isize) as usize;
    block[..k0].fill(0.0);
    if k1 > k0 {
        let start = (base + k0 as isize) as usize;
        block[k0..k1].copy_from_slice(&plane[start..start + (k1 - k0)]);
    }
    block[k1..].fill(0.0);
    let border = sx.unsigned_abs().min(w);
    if border > 0 {
        for row in block.chunks_exact_mut(w) {
            let edge = if sx > 0 {
                &mut row[w - border..]
            } else {
                &mut row[..border]
            };
            edge.fill(0.0);
        }
    }
}

/// The adjoint of [`gather_shifted`]: `plane[oh + sy, ow + sx] += src[(oh - oh0) Wo + ow]`
/// where inside the plane.
#[inline(always)]
fn scatter_add_shifted(
    src: &[f32],
    plane: &mut [f32],
    [h, w]: [usize; 2],
    wo: usize,
    rows: &Range<usize>,
    (sy, sx): (isize, isize),
) {
    let ow_lo = (-sx).clamp(0, wo as isize) as usize;
    let ow_hi = (w as isize - sx).clamp(ow_lo as isize, wo as isize) as usize;
    for (row, oh) in src.chunks_exact(wo).zip(rows.clone()) {
        let iy = oh as isize + sy;
        if iy < 0 || iy >= h as isize {
            continue;
        }
        let start = (iy as usize * w) as isize + ow_lo as isize + sx;
        let dst = &mut plane[start as usize..][..ow_hi - ow_lo];
        for (d, s) in dst.iter_mut().zip(&row[ow_lo..ow_hi]) {
            *d += s;
        }
    }
}

/// `cols[(ci kh + i) kw + j, p] = x[n, ci, oh + dh i - pt, ow + dw j - pl]` (zero outside)
/// for the tile's pixels `p = (n, oh, ow)`.
fn im2col(x: &[f32], g: &ConvGeometry, tile: &Tile, cols: &mut [f32]) {
    let ([h, w], [_, wo], [kh, kw]) = (g.size, g.out(), g.kernel);
    for (patch_row, dst) in cols.chunks_exact_mut(tile.width).enumerate() {
        let (ci, i, j) = (patch_row / (kh * kw), (patch_row / kw) % kh, patch_row % kw);
        for seg in &tile.segments {
            let plane = &x[(seg.n * g.c_in + ci) * h * w..][..h * w];
            let dst = &mut dst[seg.col..][..seg.rows.len() * wo];
            gather_shifted(dst, plane, [h, w], wo, &seg.rows, g.shift(i, j));
        }
    }
}

/// The adjoint of [`im2col`]: adds `cols` back into `dx` `(N, Ci, H, W)` at the pixels it
/// was read from. The tile must hold whole samples, which no other tile touches.
fn col2im(cols: &[f32], g: &ConvGeometry, tile: &Tile, dx: SharedOut) {
    let ([h, w], [_, wo], [kh, kw]) = (g.size, g.out(), g.kernel);
    with_widest_simd(
        #[inline(always)]
        || {
            for seg in &tile.segments {
                for ci in 0..g.c_in {
                    // SAFETY: plane (n, ci) lies inside dx, and only this tile holds sample n.
                    let plane = unsafe { dx.slice((seg.n * g.c_in + ci) * h * w, h * w) };
                    for i in 0..kh {
                        for j in 0..kw {
                            let src = &cols[((ci * kh + i) * kw + j) * tile.width + seg.col..]
                                [..seg.rows.len() * wo];
                            scatter_add_shifted(src, plane, [h, w], wo, &seg.rows, g.shift(i, j));
                        }
                    }
                }
            }
        },
    )
}

/// `dst[co, p] = src[n, co, oh, ow]` for the tile's pixels `p = (n, oh, ow)`: a tile's
/// slice of an `(N, Co, Ho, Wo)` tensor as a `[Co, P]` matrix.
fn gather_tile(src: &[f32], g: &ConvGeometry, tile: &Tile, dst: &mut [f32]) {
    let ([ho, wo], co) = (g.out(), g.c_out);
    for (c, dst) in dst.chunks_exact_mut(tile.width).enumerate() {
        for seg in &tile.segments {
            let len = seg.rows.len() * wo;
            dst[seg.col..][..len]
                .copy_from_slice(&src[((seg.n * co + c) * ho + seg.rows.start) * wo..][..len]);
        }
    }
}

/// The gemm's own threading, used only when the whole product is one tile.
fn inner_parallelism(tiles: usize, flops: usize) -> Parallelism {
    if tiles == 1 && flops >= GEMM_THREADING_MIN_FLOPS {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// [`Prepared::forward_into`] of a pointwise convolution: `Y[n] = W[Co, Ci] · X[n][Ci, H W]
/// + b` per sample, straight from `x` into `y`.
fn pointwise_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
    y: &mut [f32],
    accumulate: bool,
) {
    let (p, ci, co) = (g.size[0] * g.size[1], g.c_in, g.c_out);
    let bias = bias.filter(|b| b.iter().any(|&v| v != 0.0));
    let parallelism = per_sample_parallelism(g.batch);
    y.par_chunks_mut(co * p)
        .zip(x.par_chunks(ci * p))
        .for_each(|(y, x)| {
            if let Some(bias) = bias {
                for (row, &b) in y.chunks_exact_mut(p).zip(bias) {
                    if accumulate {
                        add_scalar(row, b);
                    } else {
                        row.fill(b);
                    }
                }
            }
            matmul(
                MatMut::row_major(y, co, p),
                MatRef::row_major(w, co, ci),
                MatRef::row_major(x, ci, p),
                if accumulate || bias.is_some() {
                    Accum::Add
                } else {
                    Accum::Replace
                },
                parallelism,
            );
        });
}

/// [`weight_grad`] of a pointwise convolution: `dW[Co, Ci] = Σ_n dY[n] · X[n]ᵀ`, the inner
/// dimension `H W` per sample, summed per worker.
fn pointwise_weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let (p, ci, co) = (g.size[0] * g.size[1], g.c_in, g.c_out);
    let parallelism = per_sample_parallelism(g.batch);
    let run = run_len(g.batch);
    let partials = x
        .par_chunks(run * ci * p)
        .zip(dy.par_chunks(run * co * p))
        .map(|(x, dy)| {
            let (mut dw, mut db) = (vec![0.0f32; co * ci], vec![0.0f32; co]);
            for (x, dy) in x.chunks_exact(ci * p).zip(dy.chunks_exact(co * p)) {
                for (db_c, row) in db.iter_mut().zip(dy.chunks_exact(p)) {
                    *db_c += sum(row);
                }
                matmul(
                    MatMut::row_major(&mut dw, co, ci),
                    MatRef::row_major(dy, co, p),
                    MatRef::row_major(x, ci, p).t(),
                    Accum::Add,
                    parallelism,
                );
            }
            (dw, db)
        })
        .collect();
    sum_runs(partials, [co * ci, co])
}

/// [`input_grad`] of a pointwise convolution: `dX[n] = Wᵀ[Ci, Co] · dY[n]` per sample.
fn pointwise_input_grad(dy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (p, ci, co) = (g.size[0] * g.size[1], g.c_in, g.c_out);
    let parallelism = per_sample_parallelism(g.batch);
    let mut dx = vec![0.0f32; g.batch * ci * p];
    dx.par_chunks_mut(ci * p)
        .zip(dy.par_chunks(co * p))
        .for_each(|(dx, dy)| {
            matmul(
                MatMut::row_major(dx, ci, p),
                MatRef::row_major(w, co, ci).t(),
                MatRef::row_major(dy, co, p),
                Accum::Replace,
                parallelism,
            );
        });
    dx
}

/// `y = conv(x, w) + bias`: `x` `(N, Ci, H, W)`, `w` `(Co, Ci, kh, kw)`, `bias` `(Co)`,
/// `y` `(N, Co, Ho, Wo)`.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let [ho, wo] = g.out();
    let mut y = vec![0.0f32; g.batch * g.c_out * ho * wo];
    Prepared::new(w, g, Uses::Once).forward_into(x, bias, &mut y, false);
    y
}

/// How many calls a kernel made ready serves: a transformed kernel pays over fewer output
/// blocks when it serves many ([`winograd6::pays`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uses {
    /// One call.
    Once,
    /// The steps of a ConvLSTM layer, or a kernel kept in [`kernel_cache`].
    Many,
}

/// A kernel made ready for the forwards of one geometry (one call, or the steps of a
/// ConvLSTM layer): in Winograd's transform domain where that pays for its [`Uses`]
/// ([`winograd6::pays`]), else as it is.
pub enum Prepared<'w> {
    /// F(2x2, 5x5) or F(4x4, 3x3) on 6x6 tiles.
    Winograd6(winograd6::Kernel),
    /// The kernel `(Co, Ci, kh, kw)` for the routes that read it as it is.
    Spatial(Cow<'w, [f32]>, ConvGeometry),
}

impl<'w> Prepared<'w> {
    /// `w` `(Co, Ci, kh, kw)` made ready for `uses` convolutions of geometry `g`.
    pub fn new(w: impl Into<Cow<'w, [f32]>>, g: &ConvGeometry, uses: Uses) -> Self {
        let w = w.into();
        if winograd6::pays(g, uses) {
            Self::Winograd6(winograd6::Kernel::new(&w, g))
        } else {
            Self::Spatial(w, *g)
        }
    }

    /// `conv(x, w) + bias` written into `y` `(N, Co, Ho, Wo)`, or added to it with
    /// `accumulate`, for `x` `(N, Ci, H, W)` of the geometry.
    pub fn forward_into(&self, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], accumulate: bool) {
        match self {
            Self::Winograd6(kernel) => kernel.forward_into(x, bias, y, accumulate),
            Self::Spatial(w, g) => spatial_forward_into(x, w, bias, g, y, accumulate),
        }
    }
}

/// [`Prepared::forward_into`] by the routes that read the kernel as it is: pointwise, F(2x2, 3x3)
/// (which transforms it per call) and im2col.
fn spatial_forward_into(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
    y: &mut [f32],
    accumulate: bool,
) {
    let ([ho, wo], k, co) = (g.out(), g.patch_len(), g.c_out);
    assert_eq!(y.len(), g.batch * co * ho * wo, "convolution output size");
    if g.degenerate() {
        // y[n, c] = b[c] (or += b[c]): the sum over no input channel.
        for (plane, row) in y.chunks_exact_mut(ho * wo).enumerate() {
            let b = bias.map_or(0.0, |b| b[plane % co]);
            if accumulate {
                add_scalar(row, b);
            } else {
                row.fill(b);
            }
        }
        return;
    }
    if g.pointwise() {
        return pointwise_forward(x, w, bias, g, y, accumulate);
    }
    if winograd::applies(g) {
        return winograd::forward_into(x, w, bias, g, y, accumulate);
    }
    let out = SharedOut(y.as_mut_ptr());
    let tiles = g.tiles(false);
    let parallelism = inner_parallelism(tiles.len(), co * k * g.batch * ho * wo);
    tiles.par_iter().for_each(|tile| {
        with_scratch(|[cols_buf, out_buf]| {
            let width = tile.width;
            let cols = sized(cols_buf, k * width);
            im2col(x, g, tile, cols);
            let product = sized(out_buf, co * width);
            matmul(
                MatMut::row_major(product, co, width),
                MatRef::row_major(w, co, k),
                MatRef::row_major(cols, k, width),
                Accum::Replace,
                parallelism,
            );
            for (c, product) in product.chunks_exact(width).enumerate() {
                let b = bias.map_or(0.0, |b| b[c]);
                for seg in &tile.segments {
                    let len = seg.rows.len() * wo;
                    // SAFETY: these output rows of (n, c) belong to this tile alone, and lie
                    // inside y.
                    let dst =
                        unsafe { out.slice(((seg.n * co + c) * ho + seg.rows.start) * wo, len) };
                    let src = &product[seg.col..][..len];
                    with_widest_simd(
                        #[inline(always)]
                        || {
                            if accumulate {
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s + b);
                            } else {
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
                            }
                        },
                    );
                }
            }
        })
    });
}

/// `(dW, db)` of `y = conv(x, w) + b` given `dy` `(N, Co, Ho, Wo)`: `dW` `(Co, Ci, kh, kw)`,
/// `db` `(Co)`.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    if g.degenerate() {
        let ([ho, wo], co) = (g.out(), g.c_out);
        let mut db = vec![0.0f32; co];
        for (plane, row) in dy.chunks_exact(ho * wo).enumerate() {
            db[plane % co] += sum(row);
        }
        return (vec![0.0; co * g.patch_len()], db);
    }
    if g.pointwise() {
        return pointwise_weight_grad(x, dy, g);
    }
    if winograd6::pays(g, Uses::Once) {
        return winograd6::weight_grad(x, dy, g);
    }
    let ([ho, wo], k, co) = (g.out(), g.patch_len(), g.c_out);
    let tiles = g.tiles(false);
    let parallelism = inner_parallelism(tiles.len(), co * k * g.batch * ho * wo);
    let partials = tiles
        .par_chunks(run_len(tiles.len()))
        .map(|run| {
            let (mut dwt, mut db) = (vec![0.0f32; k * co], vec![0.0f32; co]);
            with_scratch(|[cols_buf, out_buf]| {
                for tile in run {
                    let width = tile.width;
                    let cols = sized(cols_buf, k * width);
                    im2col(x, g, tile, cols);
                    let dy_tile = sized(out_buf, co * width);
                    gather_tile(dy, g, tile, dy_tile);
                    for (db_c, row) in db.iter_mut().zip(dy_tile.chunks_exact(width)) {
                        *db_c += sum(row);
                    }
                    matmul(
                        MatMut::row_major(&mut dwt, k, co),
                        MatRef::row_major(cols, k, width),
                        MatRef::row_major(dy_tile, co, width).t(),
                        Accum::Add,
                        parallelism,
                    );
                }
            });
            (dwt, db)
        })
        .collect();
    let (dwt, db) = sum_runs(partials, [k * co, co]);
    let mut dw = vec![0.0f32; co * k];
    for (p, row) in dwt.chunks_exact(co).enumerate() {
        for (c, v) in row.iter().enumerate() {
            dw[c * k + p] = *v;
        }
    }
    (dw, db)
}

/// `w'[ci, co, i, j] = w[co, ci, kh - 1 - i, kw - 1 - j]`: the kernel of
/// [`ConvGeometry::transposed`].
fn flipped(w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0f32; w.len()];
    for (co, w) in w.chunks_exact(g.c_in * kh * kw).enumerate() {
        for (ci, w) in w.chunks_exact(kh * kw).enumerate() {
            let dst = &mut out[(ci * g.c_out + co) * kh * kw..][..kh * kw];
            for (d, &v) in dst.iter_mut().rev().zip(w) {
                *d = v;
            }
        }
    }
    out
}

/// `dx` `(N, Ci, H, W)` of `y = conv(x, w)` given `dy` `(N, Co, Ho, Wo)`.
pub fn input_grad(dy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    InputGrad::new(w, g, Uses::Once).run(dy)
}

/// The input gradient of one geometry, its kernel made ready for one `dy` or for many (the
/// steps of a ConvLSTM layer).
pub enum InputGrad<'w> {
    /// The forward of [`ConvGeometry::transposed`] with the [`flipped`] kernel. Taken with
    /// fewer output than input channels (its columns, `Co kh kw` rows, are fewer than the
    /// `Ci kh kw` rows that col2im would add back), and where that forward is
    /// [`winograd6`]'s for its [`Uses`].
    Transposed(Prepared<'static>, ConvGeometry),
    /// `Wᵀ dY` per tile, added back into `dx` by col2im.
    Col2im(&'w [f32], ConvGeometry),
}

impl<'w> InputGrad<'w> {
    /// The input gradient of geometry `g` with the kernel `w` `(Co, Ci, kh, kw)`, for
    /// `uses` calls.
    pub fn new(w: &'w [f32], g: &ConvGeometry, uses: Uses) -> Self {
        if !g.degenerate()
            && !g.pointwise()
            && let Some(t) = g.transposed()
            && (g.c_out < g.c_in || winograd6::pays(&t, uses))
        {
            return Self::Transposed(Prepared::new(flipped(w, g), &t, uses), t);
        }
        Self::Col2im(w, *g)
    }

    /// `dx` `(N, Ci, H, W)` given `dy` `(N, Co, Ho, Wo)`.
    pub fn run(&self, dy: &[f32]) -> Vec<f32> {
        match self {
            Self::Transposed(forward, t) => {
                let [h, w] = t.out();
                let mut dx = vec![0.0f32; t.batch * t.c_out * h * w];
                forward.forward_into(dy, None, &mut dx, false);
                dx
            }
            Self::Col2im(w, g) => col2im_input_grad(dy, w, g),
        }
    }
}

/// [`input_grad`] as `Wᵀ dY` per tile and col2im (or the degenerate and pointwise cases).
fn col2im_input_grad(dy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    if g.degenerate() {
        return vec![0.0; g.batch * g.c_in * g.size[0] * g.size[1]];
    }
    if g.pointwise() {
        return pointwise_input_grad(dy, w, g);
    }
    let ([h, wd], [ho, wo], k, co) = (g.size, g.out(), g.patch_len(), g.c_out);
    let mut dx = vec![0.0f32; g.batch * g.c_in * h * wd];
    let out = SharedOut(dx.as_mut_ptr());
    let tiles = g.tiles(true);
    let parallelism = inner_parallelism(tiles.len(), co * k * g.batch * ho * wo);
    tiles.par_iter().for_each(|tile| {
        with_scratch(|[cols_buf, out_buf]| {
            let width = tile.width;
            let dy_tile = sized(out_buf, co * width);
            gather_tile(dy, g, tile, dy_tile);
            let cols = sized(cols_buf, k * width);
            matmul(
                MatMut::row_major(cols, k, width),
                MatRef::row_major(w, co, k).t(),
                MatRef::row_major(dy_tile, co, width),
                Accum::Replace,
                parallelism,
            );
            col2im(cols, g, tile, out);
        })
    });
    dx
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

impl ConvGeometry {
    /// The geometry of `x` `(N, Ci, H, W)` convolved with `weight` `(Co, Ci, kh, kw)`.
    pub fn of(x: [usize; 4], weight: [usize; 4], spec: ConvSpec) -> Self {
        Self {
            batch: x[0],
            c_in: x[1],
            size: [x[2], x[3]],
            c_out: weight[0],
            kernel: [weight[2], weight[3]],
            padding: spec.padding,
            dilation: spec.dilation,
        }
    }
}

/// Whether [`conv2d`] computes this convolution (else the caller takes the portable path).
pub fn conv_supported(x: [usize; 4], weight: [usize; 4], spec: ConvSpec) -> bool {
    let g = ConvGeometry::of(x, weight, spec);
    x[1] == weight[1] && spec.dilation.iter().all(|&d| d > 0) && g.out_size().is_some()
}

/// The Flex kernel of [`crate::conv2d`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    spec: ConvSpec,
) -> Tensor<4> {
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &weight.device()));
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        spec,
    ))
}

/// [`FlexKernels::marscf_conv2d`] on Flex: Winograd's kernels, where they apply, kept
/// across the calls that reuse a weight ([`super::kernel_cache`]).
pub fn on_flex(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, spec: ConvSpec) -> FlexTensor {
    forward_tensor(x, weight, bias, spec, true)
}

/// `conv(x, weight) + bias` as a tensor, the Winograd kernel looked up in the cache if
/// `reuse` (not under autodiff, where every training step brings new weights).
fn forward_tensor(
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    spec: ConvSpec,
    reuse: bool,
) -> FlexTensor {
    let g = ConvGeometry::of(dims4(&x), dims4(&weight), spec);
    let [ho, wo] = g
        .out_size()
        .expect("a convolution with a positive output size");
    let (x, bias) = (values(&x), values(&bias));
    let y = match reuse
        .then(|| kernel_cache::winograd_kernel(&weight, &g))
        .flatten()
    {
        Some(kernel) => {
            let mut y = vec![0.0f32; g.batch * g.c_out * ho * wo];
            kernel.forward_into(&x, Some(&bias), &mut y, false);
            y
        }
        None => forward(&x, &values(&weight), Some(&bias), &g),
    };
    tensor(y, [g.batch, g.c_out, ho, wo])
}

/// Backward of [`on_flex`]: parents `[x, weight, bias]`, state the contiguous `x` and
/// `weight`.
#[derive(Debug)]
pub struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    type State = (FlexTensor, FlexTensor, ConvSpec);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((x, w, spec), dy, [node_x, node_w, node_b]) = unpack(ops, grads);
        let g = ConvGeometry::of(dims4(&x), dims4(&w), spec);
        if let Some(id) = node_x {
            let dx = input_grad(&values(&dy), &values(&w), &g);
            grads.register::<Flex>(id, tensor(dx, dims4(&x)));
        }
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = weight_grad(&values(&x), &values(&dy), &g);
            let gradients = [tensor(dw, dims4(&w)), tensor(db, [g.c_out])];
            register(grads, [node_w, node_b], gradients);
        }
    }
}

/// [`FlexKernels::marscf_conv2d`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(
    x: AutodiffTensor<C>,
    weight: AutodiffTensor<C>,
    bias: AutodiffTensor<C>,
    spec: ConvSpec,
) -> AutodiffTensor<C> {
    record::<C, _, _>(Conv2dBackward, [x, weight, bias], |[x, weight, bias], _| {
        let y = forward_tensor(x.clone(), weight.clone(), bias, spec, false);
        (y, Some((x, weight, spec)))
    })
}

#[cfg(test)]
impl ConvGeometry {
    /// A "same" 3x3 convolution of `batch` maps of `side x side`, `c_in -> c_out`.
    pub(super) fn same_3x3(batch: usize, c_in: usize, side: usize, c_out: usize) -> Self {
        Self {
            batch,
            c_in,
            size: [side, side],
            c_out,
            kernel: [3, 3],
            padding: [(1, 1); 2],
            dilation: [1, 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every product of the convolution's definition, `[y index, x index, w index]`: each
    /// output pixel `(n, o, oh, ow)` with each tap `(c, i, j)` that reads inside the map,
    /// `x[n, c, oh + dh i - pt, ow + dw j - pl]`.
    fn products(g: &ConvGeometry) -> impl Iterator<Item = [usize; 3]> + '_ {
        let ([h, wd], [ho, wo]) = (g.size, g.out());
        let ([kh, kw], [dh, dw]) = (g.kernel, g.dilation);
        let [(pt, _), (pl, _)] = g.padding;
        let outputs = (0..g.batch * g.c_out * ho * wo).map(move |y| {
            let (n, o, oh, ow) = (
                y / (g.c_out * ho * wo),
                y / (ho * wo) % g.c_out,
                y / wo % ho,
                y % wo,
            );
            (y, n, o, oh, ow)
        });
        outputs.flat_map(move |(y, n, o, oh, ow)| {
            (0..g.c_in * kh * kw).filter_map(move |tap| {
                let (c, i, j) = (tap / (kh * kw), tap / kw % kh, tap % kw);
                let iy = ((oh + i * dh) as isize - pt as isize)
                    .try_into()
                    .ok()
                    .filter(|&iy: &usize| iy < h)?;
                let ix = ((ow + j * dw) as isize - pl as isize)
                    .try_into()
                    .ok()
                    .filter(|&ix: &usize| ix < wd)?;
                Some([
                    y,
                    ((n * g.c_in + c) * h + iy) * wd + ix,
                    o * g.c_in * kh * kw + tap,
                ])
            })
        })
    }

    /// The convolution by its definition, in f64.
    fn direct(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let [ho, wo] = g.out();
        let mut y = vec![0.0; g.batch * g.c_out * ho * wo];
        for [yi, xi, wi] in products(g) {
            y[yi] += x[xi] as f64 * w[wi] as f64;
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
    fn a_kernel_for_one_call_takes_winograd_over_enough_tiles_only() {
        // 192 -> 96 on 4x4 maps: one tile per sample.
        let g = |batch| ConvGeometry::same_3x3(batch, 192, 4, 96);
        let w = vec![0.0f32; 96 * 192 * 9];
        let winograd = |batch, uses| {
            matches!(
                Prepared::new(&w[..], &g(batch), uses),
                Prepared::Winograd6(_)
            )
        };
        assert!(!winograd(16, Uses::Once), "16 tiles, once");
        assert!(winograd(16, Uses::Many), "16 tiles, many times");
        assert!(winograd(32, Uses::Once), "32 tiles, once");
        // The input gradient (96 -> 192 transposed) likewise.
        let transposed_winograd = |batch, uses| match InputGrad::new(&w, &g(batch), uses) {
            InputGrad::Transposed(prepared, _) => matches!(prepared, Prepared::Winograd6(_)),
            InputGrad::Col2im(..) => false,
        };
        assert!(!transposed_winograd(16, Uses::Once) && transposed_winograd(16, Uses::Many));
        assert!(transposed_winograd(32, Uses::Once));
        // A kernel that stays in the caches (128 -> 24: 110 K values) over any tiles.
        let small = ConvGeometry {
            c_in: 128,
            c_out: 24,
            ..g(16)
        };
        assert!(winograd6::pays(&small, Uses::Once));
        assert!(!winograd6::pays(
            &ConvGeometry { c_out: 57, ..small },
            Uses::Once
        ));
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
            let want = plus_bias(direct(&x, &w, &g), &bias, &g);
            assert_close(&forward(&x, &w, Some(&bias), &g), &want);
        }
    }

    #[test]
    fn gradients_match_the_adjoint_of_the_definition() {
        // <dy, conv(x, w)> is linear in x and in w: its gradients are the adjoints.
        // Both orders of the channel counts: fewer outputs than inputs take the
        // transposed forward for dx; 1x1 kernels take the per-sample products.
        for ((batch, size, k, d, pad), [ci, co]) in [
            ((2, 5, 3, 1, (1, 1)), [3, 5]),
            ((3, 6, 5, 2, (4, 4)), [3, 5]),
            ((2, 6, 2, 1, (0, 1)), [3, 5]),
            ((2, 5, 3, 1, (1, 1)), [5, 3]),
            ((3, 6, 5, 2, (4, 4)), [5, 3]),
            ((2, 6, 2, 1, (0, 1)), [5, 3]),
            ((3, 4, 1, 1, (0, 0)), [5, 3]),
            ((1, 4, 1, 1, (0, 0)), [3, 5]),
        ] {
            let g = ConvGeometry {
                c_in: ci,
                c_out: co,
                ..geometry(batch, size, k, d, pad)
            };
            let x = values(batch * ci * size * (size + 1), 4);
            let w = values(co * ci * k * k, 5);
            let dy = values(batch * co * g.out().iter().product::<usize>(), 6);
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
            let db_want: Vec<f64> = (0..co)
                .map(|c| {
                    let plane = g.out().iter().product::<usize>();
                    dy.iter()
                        .enumerate()
                        .filter(|(i, _)| (i / plane) % co == c)
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

    /// `dx` of `<dy, conv(x, w)>` by its definition, in f64: `dx[x index] += dy w` over
    /// the [`products`].
    fn direct_input_grad(dy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let mut dx = vec![0.0; g.batch * g.c_in * g.size[0] * g.size[1]];
        for [yi, xi, wi] in products(g) {
            dx[xi] += dy[yi] as f64 * w[wi] as f64;
        }
        dx
    }

    /// `dW` of `<dy, conv(x, w)>` by its definition, in f64: `dW[w index] += dy x` over the
    /// [`products`].
    fn direct_weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let mut dw = vec![0.0; g.c_out * g.c_in * g.kernel[0] * g.kernel[1]];
        for [yi, xi, wi] in products(g) {
            dw[wi] += dy[yi] as f64 * x[xi] as f64;
        }
        dw
    }

    /// `y[n, c, ..] + bias[c]` for `y` `(N, Co, Ho, Wo)`.
    fn plus_bias(y: Vec<f64>, bias: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let plane = g.out().iter().product::<usize>();
        y.into_iter()
            .enumerate()
            .map(|(i, v)| v + bias[(i / plane) % g.c_out] as f64)
            .collect()
    }

    /// `a + b` elementwise.
    fn plus(a: &[f64], b: &[f32]) -> Vec<f64> {
        a.iter().zip(b).map(|(a, b)| a + *b as f64).collect()
    }

    /// `|got - want| <= 2⁻¹⁵ scale` elementwise, `scale` the sum of `|x| |w|` over each
    /// value's taps: Winograd's bound (module doc of [`super::winograd6`]).
    fn assert_within_winograd_bound(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        let bound = 2f64.powi(-15);
        let worst = got
            .iter()
            .zip(want)
            .zip(scale)
            .map(|((g, w), s)| (*g as f64 - w).abs() / s.max(f64::MIN_POSITIVE))
            .fold(0.0f64, f64::max);
        assert!(
            worst <= bound,
            "{what}: error {worst:e} of the scale, bound {bound:e}"
        );
    }

    #[test]
    fn winograd6_forward_and_gradients_match_the_definition() {
        // (batch, [h, w], kernel, dilation, [ci, co]): F(2x2, 5x5) with dilation 1 and 2
        // on whole and partial blocks, F(4x4, 3x3) on 4x4 and smaller maps and on 16x18;
        // one sample and 17; five 16x16 samples make chunks of 2, 2 and 1 (64 tiles each),
        // so that on two workers one worker sums two chunks; the input gradient is the
        // transposed forward, Winograd's too but where few output channels (8 and 11, as
        // the affine coupling's last convolution has 12) leave its input side too narrow.
        for (batch, size, k, d, [ci, co]) in [
            (5, [16, 16], 5, 1, [32, 32]),
            (1, [8, 8], 5, 1, [32, 40]),
            (3, [7, 9], 5, 1, [33, 32]),
            (2, [16, 16], 5, 2, [32, 36]),
            (1, [10, 14], 5, 2, [34, 32]),
            (17, [4, 4], 3, 1, [32, 40]),
            (1, [16, 18], 3, 1, [32, 36]),
            (2, [3, 2], 3, 1, [40, 33]),
            (3, [16, 16], 3, 1, [40, 11]),
            (2, [16, 18], 3, 1, [32, 8]),
        ] {
            let what = format!("N{batch} {size:?} k{k} d{d} {ci}->{co}");
            let pad = d * (k - 1) / 2;
            let g = ConvGeometry {
                batch,
                c_in: ci,
                size,
                c_out: co,
                kernel: [k, k],
                padding: [(pad, pad); 2],
                dilation: [d, d],
            };
            // The forward, input and weight gradients below are one-off calls.
            let once = |g: &ConvGeometry| super::winograd6::pays(g, Uses::Once);
            assert!(once(&g), "{what} takes Winograd");
            let t = g.transposed().expect("a same convolution");
            assert_eq!(
                once(&t),
                co >= super::super::tuning::WINOGRAD_MIN_CHANNELS,
                "{what}: its input gradient too unless Co is small"
            );
            let x = values(batch * ci * size[0] * size[1], 11);
            let w = values(co * ci * k * k, 12);
            let bias = values(co, 13);
            let abs = |v: &[f32]| v.iter().map(|v| v.abs()).collect::<Vec<_>>();
            let plane = size[0] * size[1];
            let want = plus_bias(direct(&x, &w, &g), &bias, &g);
            let scale = plus_bias(direct(&abs(&x), &abs(&w), &g), &abs(&bias), &g);
            let y = forward(&x, &w, Some(&bias), &g);
            assert_within_winograd_bound(&y, &want, &scale, &format!("{what} y"));
            let start = values(want.len(), 14);
            let mut y = start.clone();
            Prepared::new(&w[..], &g, Uses::Many).forward_into(&x, Some(&bias), &mut y, true);
            let (added, added_scale) = (plus(&want, &start), plus(&scale, &abs(&start)));
            assert_within_winograd_bound(&y, &added, &added_scale, &format!("{what} y added"));
            let dy = values(want.len(), 15);
            let dx_want = direct_input_grad(&dy, &w, &g);
            let dx_scale = direct_input_grad(&abs(&dy), &abs(&w), &g);
            assert_within_winograd_bound(
                &input_grad(&dy, &w, &g),
                &dx_want,
                &dx_scale,
                &format!("{what} dx"),
            );
            let dw_want = direct_weight_grad(&x, &dy, &g);
            let dw_scale = direct_weight_grad(&abs(&x), &abs(&dy), &g);
            let (dw, db) = weight_grad(&x, &dy, &g);
            assert_within_winograd_bound(&dw, &dw_want, &dw_scale, &format!("{what} dw"));
            let db_want: Vec<f64> = (0..co)
                .map(|c| {
                    let planes = dy.chunks_exact(plane).skip(c).step_by(co);
                    planes.flatten().map(|&v| v as f64).sum()
                })
                .collect();
            assert_close(&db, &db_want);
        }
        // Below 8 output channels (or 32 input ones), im2col.
        for [ci, co] in [[32, 7], [31, 32]] {
            let g = ConvGeometry {
                c_in: ci,
                size: [16, 16],
                c_out: co,
                ..geometry(2, 16, 3, 1, (1, 1))
            };
            assert!(
                !super::winograd6::applies(&g),
                "{ci}->{co} on 16x16: no Winograd"
            );
        }
    }

    #[test]
    fn winograd_forward_matches_the_definition() {
        // Odd and even sides, one sample and three, written and added to `y`.
        for (batch, size, [ci, co]) in [(1, 8, [32, 40]), (3, 9, [33, 32])] {
            let g = ConvGeometry {
                c_in: ci,
                c_out: co,
                ..geometry(batch, size, 3, 1, (1, 1))
            };
            assert!(super::winograd::applies(&g), "{g:?} takes Winograd");
            let x = values(batch * ci * size * (size + 1), 7);
            let w = values(co * ci * 9, 8);
            let bias = values(co, 9);
            let want = plus_bias(direct(&x, &w, &g), &bias, &g);
            assert_close(&forward(&x, &w, Some(&bias), &g), &want);
            let start = values(want.len(), 10);
            let mut y = start.clone();
            Prepared::new(&w[..], &g, Uses::Many).forward_into(&x, Some(&bias), &mut y, true);
            assert_close(&y, &plus(&want, &start));
        }
    }
}
