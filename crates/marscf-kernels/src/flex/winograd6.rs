//! "Same" 5x5 and 3x3 convolutions as Winograd's F(2x2, 5x5) and F(4x4, 3x3) on 6x6 input
//! tiles, channel-last, on contiguous `f32` NCHW slices: the mAR prior's convolutions (5x5
//! with dilation 1 or 2, 3x3 on its 4x4 maps) and the couplings' 3x3 ones on 4x4 and 16x16
//! maps, forward ([`Kernel`]) and weight gradient ([`weight_grad`]); the input gradient is
//! the forward of the transposed convolution.
//!
//! An `m x m` output block of an `r x r` kernel (`m + r - 1 = 6`) is
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` of the 6x6 input tile `d` around it, summed over the
//! input channels. The three matrices come from five interpolation points `p` and `∞`
//! ([`Transforms`]): `Bᵀ` (6x6) from the products `Π_{l≠j} (x - p_l)`, `Aᵀ` (m x 6) from
//! the powers `p_jⁱ`, `G` (6 x r) from the same powers over `Π_{l≠j} (p_j - p_l)`.
//!
//! That is 36 multiplications per block and channel pair: 9 per output pixel against 25
//! for the 5x5 kernel, 2.25 against 9 for the 3x3 one.
//!
//! A kernel with dilation `d` on an `H x W` map (`d` dividing both) is an undilated one on
//! each of the `d²` interleaved `H/d x W/d` grids `x[gy + d i, gx + d j]`. Every grid is
//! copied channel-last with its zero padding, so that the transforms run on vectors of
//! channels. Per tile `τ` (sample, grid, block), `V[τ][ξ][ci]`, and for the tiles of a
//! chunk of samples the 36 products `M_ξ[τ, co] = V_ξ[τ, ci] · U_ξ[ci, co]`. The output
//! blocks of a sample are gathered channel-last, `(H W, Co)`, and turned channel-first in
//! 8x8 blocks.
//!
//! Error: the transforms' entries reach 2.5 (`Bᵀ`) and 2 (`Aᵀ`) for F(2x2, 5x5), 5 and 8
//! for F(4x4, 3x3), so a pixel's rounding grows with `Σ |x| |w|` over its taps faster than
//! a direct convolution's. The tests hold it to `2⁻¹⁵ Σ |x| |w|` against the f64
//! definition, forward and both gradients (the worst seen: 6.5e-6 of `Σ |x| |w|`).

use std::ops::{Add, Mul, Range, RangeInclusive, Sub};

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv::{ConvGeometry, Uses};
use super::gemm::{Accum, MatMut, MatRef, matmul, sized, with_scratch};
use super::reduce::{run_len, sum, sum_runs};
use super::simd::with_widest_simd;
use super::tuning::{
    WINOGRAD_MIN_CHANNELS, WINOGRAD6_MAX_SIDE, WINOGRAD6_MIN_OUT_CHANNELS,
    WINOGRAD6_ONCE_CACHED_VALUES, WINOGRAD6_ONCE_MIN_TILES, WINOGRAD6_TILES_PER_CHUNK,
};

/// Lanes per vector of the transforms.
const LANES: usize = 8;

/// Side of the input tiles and of the transforms.
const ALPHA: usize = 6;

/// Positions of a transformed tile, `ξ = 6 a + b` for column `a` and row `b`.
const POSITIONS: usize = ALPHA * ALPHA;

/// How a convolution is cut into tiles: an `r x r` kernel with output blocks `m x m`,
/// dilation `d`, grids of `grid` pixels, each cut into `blocks` blocks.
#[derive(Clone, Copy, Debug)]
struct Tiling {
    r: usize,
    m: usize,
    d: usize,
    grid: [usize; 2],
    blocks: [usize; 2],
}

impl Tiling {
    /// The tiling of `g`, if it is a "same" 5x5 or 3x3 convolution with equal dilations
    /// that divide the map.
    fn of(g: &ConvGeometry) -> Option<Self> {
        let ([r, r_w], [d, d_w]) = (g.kernel, g.dilation);
        if r != r_w || d != d_w || d == 0 || !matches!(r, 3 | 5) {
            return None;
        }
        let pad = d * (r - 1) / 2;
        if g.padding != [(pad, pad); 2] || g.size.iter().any(|&s| s == 0 || s % d != 0) {
            return None;
        }
        let m = ALPHA + 1 - r;
        let grid = g.size.map(|s| s / d);
        Some(Self {
            r,
            m,
            d,
            grid,
            blocks: grid.map(|s| s.div_ceil(m)),
        })
    }

    /// The tiling of `g`.
    ///
    /// # Panics
    /// Unless [`applies`] to `g`.
    fn checked(g: &ConvGeometry) -> Self {
        assert!(applies(g), "no Winograd F(m, r) on 6x6 tiles for {g:?}");
        Self::of(g).expect("a tiling where Winograd applies")
    }

    /// Tiles per sample: `d²` grids of `blocks` blocks.
    fn per_sample(&self) -> usize {
        self.d * self.d * self.blocks[0] * self.blocks[1]
    }

    /// Samples per chunk of `batch`: about [`WINOGRAD6_TILES_PER_CHUNK`] tiles, with a
    /// chunk per worker at least where there are enough samples; and the products' own
    /// threading, used when there are fewer chunks than workers.
    fn chunks(&self, batch: usize) -> (usize, Parallelism) {
        let workers = rayon::current_num_threads();
        let per_chunk = (WINOGRAD6_TILES_PER_CHUNK / self.per_sample())
            .max(1)
            .min(batch.div_ceil(workers))
            .max(1);
        let parallelism = if batch.div_ceil(per_chunk) < workers {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        };
        (per_chunk, parallelism)
    }

    /// Height and width of a grid's padded copy: `blocks m + r - 1`, the grid with
    /// `(r - 1) / 2` zeros before it and at least as many after.
    fn padded(&self) -> [usize; 2] {
        self.blocks.map(|b| b * self.m + self.r - 1)
    }
}

/// Whether [`Kernel`] and [`weight_grad`] compute this convolution: a "same" 5x5 kernel
/// (dilation dividing the map), or a "same" undilated 3x3 one on maps of at most 4x4 or of
/// at least 16x16, grids of at most [`WINOGRAD6_MAX_SIDE`] pixels a side, with at least
/// [`WINOGRAD_MIN_CHANNELS`] input and [`WINOGRAD6_MIN_OUT_CHANNELS`] output channels. 3x3
/// kernels on maps from 5x5 to 15x15 take [`super::winograd`]'s F(2x2, 3x3) or im2col: on
/// 8x8 maps (16 x 192 -> 96 channels) F(4x4, 3x3) halved the forward but made forward and
/// backward together 30 % slower (docs/performance.md).
pub fn applies(g: &ConvGeometry) -> bool {
    let sides = |t: &Tiling, range: RangeInclusive<usize>| t.grid.iter().all(|s| range.contains(s));
    g.batch > 0
        && g.c_in >= WINOGRAD_MIN_CHANNELS
        && g.c_out >= WINOGRAD6_MIN_OUT_CHANNELS
        && Tiling::of(g).is_some_and(|t| match t.r {
            5 => sides(&t, 1..=WINOGRAD6_MAX_SIDE),
            _ => t.d == 1 && (sides(&t, 1..=4) || sides(&t, 16..=WINOGRAD6_MAX_SIDE)),
        })
}

/// Whether [`applies`] and a kernel transformed for `uses` calls pays: for one call (the
/// forward, the input gradient's transposed forward, the weight gradient), the batch must
/// hold at least [`WINOGRAD6_ONCE_MIN_TILES`] tiles (output blocks), or the transformed
/// kernel, `36 Ci Co` values, at most [`WINOGRAD6_ONCE_CACHED_VALUES`].
pub fn pays(g: &ConvGeometry, uses: Uses) -> bool {
    let once = || {
        kernel_values(g) <= WINOGRAD6_ONCE_CACHED_VALUES
            || Tiling::of(g).is_some_and(|t| g.batch * t.per_sample() >= WINOGRAD6_ONCE_MIN_TILES)
    };
    applies(g) && (uses == Uses::Many || once())
}

/// The values of a transformed kernel of geometry `g`, `36 Ci Co` (what [`Kernel::values`]
/// holds).
pub fn kernel_values(g: &ConvGeometry) -> usize {
    POSITIONS * g.c_in * g.c_out
}

/// A kernel `(Co, Ci, r, r)` in the transform domain, `U_ξ[ci, co] = (G g Gᵀ)[b][a]` of
/// every `g = w[co, ci]` (`36 x Ci x Co`), for the forwards of one geometry (any batch).
pub struct Kernel {
    u: Vec<f32>,
    tiling: Tiling,
    geometry: ConvGeometry,
}

impl Kernel {
    /// `w` `(Co, Ci, r, r)` transformed for the convolutions of geometry `g`.
    ///
    /// # Panics
    /// Unless [`applies`] to `g`, or if `w` is not of its size.
    pub fn new(w: &[f32], g: &ConvGeometry) -> Self {
        let tiling = Tiling::checked(g);
        let r = tiling.r;
        assert_eq!(w.len(), g.c_out * g.c_in * r * r, "Winograd kernel size");
        let u = match r {
            3 => transform_kernel::<4, 3>(w, g.c_in, g.c_out),
            _ => transform_kernel::<2, 5>(w, g.c_in, g.c_out),
        };
        Self {
            u,
            tiling,
            geometry: *g,
        }
    }

    /// The values the kernel holds, `36 Ci Co`.
    pub fn values(&self) -> usize {
        self.u.len()
    }

    /// `conv(x, w) + bias` written into `y` `(N, Co, H, W)`, or added to it with
    /// `accumulate`, for `x` `(N, Ci, H, W)` of the kernel's geometry, any batch `N`.
    ///
    /// # Panics
    /// If `x` or `y` is not of the geometry's size.
    pub fn forward_into(&self, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], accumulate: bool) {
        match self.tiling.r {
            3 => self.forward_blocks::<4, 3, 16>(x, bias, y, accumulate),
            _ => self.forward_blocks::<2, 5, 4>(x, bias, y, accumulate),
        }
    }

    /// [`Self::forward_into`] for F(M x M, R x R) (`MM = M²`).
    fn forward_blocks<const M: usize, const R: usize, const MM: usize>(
        &self,
        x: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        accumulate: bool,
    ) {
        let (t, ci, co) = (&self.tiling, self.geometry.c_in, self.geometry.c_out);
        let plane = self.geometry.size[0] * self.geometry.size[1];
        let batch = x.len() / (ci * plane);
        assert_eq!(x.len(), batch * ci * plane, "Winograd input size");
        assert_eq!(y.len(), batch * co * plane, "Winograd output size");
        let g = &ConvGeometry {
            batch,
            ..self.geometry
        };
        let (per_chunk, parallelism) = t.chunks(batch);
        y.par_chunks_mut(per_chunk * co * plane)
            .enumerate()
            .for_each(|(chunk, y)| {
                let samples = chunk * per_chunk..(chunk * per_chunk + per_chunk).min(g.batch);
                let tiles = samples.len() * t.per_sample();
                with_scratch(|[v_buf, m_buf]| {
                    let v = sized(v_buf, tiles * POSITIONS * ci);
                    transform_input::<M, R>(x, g, t, samples, v);
                    let m = sized(m_buf, tiles * POSITIONS * co);
                    for xi in 0..POSITIONS {
                        matmul(
                            MatMut::strided(&mut m[xi * co..], tiles, co, [POSITIONS * co, 1]),
                            MatRef::strided(&v[xi * ci..], tiles, ci, [POSITIONS * ci, 1]),
                            MatRef::row_major(&self.u[xi * ci * co..], ci, co),
                            Accum::Replace,
                            parallelism,
                        );
                    }
                    // The transformed input is spent: its buffer holds the output image.
                    let image = sized(v_buf, plane * co);
                    transform_output::<M, R, MM>(m, g, t, bias, image, y, accumulate);
                });
            });
    }
}

/// `(dW, db)` of `y = conv(x, w) + b` given `dy` `(N, Co, H, W)`: the adjoint of the
/// forward's algorithm, `dW[co, ci] = Gᵀ [Σ_τ (A dY_τ Aᵀ)[co] ⊙ V_τ[ci]] G` for the `m x m`
/// blocks `dY_τ` of `dy` (zero beyond the grid). The sum over the tiles is 36 products
/// `S_ξ[ci, co] += V_ξ[τ, ci]ᵀ · DY_ξ[τ, co]` whose inner dimension is the tiles of a chunk,
/// summed per worker.
///
/// # Panics
/// Unless [`applies`] to `g`, or if `x` or `dy` is not of its size.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    match Tiling::checked(g).r {
        3 => weight_grad_blocks::<4, 3>(x, dy, g),
        _ => weight_grad_blocks::<2, 5>(x, dy, g),
    }
}

/// [`weight_grad`] for F(M x M, R x R).
fn weight_grad_blocks<const M: usize, const R: usize>(
    x: &[f32],
    dy: &[f32],
    g: &ConvGeometry,
) -> (Vec<f32>, Vec<f32>) {
    let t = Tiling::checked(g);
    let (ci, co, plane) = (g.c_in, g.c_out, g.size[0] * g.size[1]);
    assert_eq!(x.len(), g.batch * ci * plane, "Winograd input size");
    assert_eq!(
        dy.len(),
        g.batch * co * plane,
        "Winograd output gradient size"
    );
    let (per_chunk, parallelism) = t.chunks(g.batch);
    let starts: Vec<usize> = (0..g.batch).step_by(per_chunk).collect();
    let partials = starts
        .par_chunks(run_len(starts.len()))
        .map(|run| {
            let (mut s, mut db) = (vec![0.0f32; POSITIONS * ci * co], vec![0.0f32; co]);
            with_scratch(|[v_buf, dy_buf]| {
                for &start in run {
                    let samples = start..(start + per_chunk).min(g.batch);
                    let tiles = samples.len() * t.per_sample();
                    let v = sized(v_buf, tiles * POSITIONS * ci);
                    transform_input::<M, R>(x, g, &t, samples.clone(), v);
                    let dy_t = sized(dy_buf, tiles * POSITIONS * co);
                    transform_output_adjoint::<M, R>(dy, g, &t, samples.clone(), dy_t);
                    for xi in 0..POSITIONS {
                        matmul(
                            MatMut::row_major(&mut s[xi * ci * co..][..ci * co], ci, co),
                            MatRef::strided(&v[xi * ci..], tiles, ci, [POSITIONS * ci, 1]).t(),
                            MatRef::strided(&dy_t[xi * co..], tiles, co, [POSITIONS * co, 1]),
                            Accum::Add,
                            parallelism,
                        );
                    }
                    let planes = &dy[samples.start * co * plane..samples.end * co * plane];
                    for (p, row) in planes.chunks_exact(plane).enumerate() {
                        db[p % co] += sum(row);
                    }
                }
            });
            (s, db)
        })
        .collect();
    let (s, db) = sum_runs(partials, [POSITIONS * ci * co, co]);
    (untransform_kernel::<M, R>(&s, ci, co), db)
}

/// `L` lanes of `f32`, added, subtracted and scaled lane by lane: the vectors the
/// transforms run on (`L = 8` is one AVX2 register inside [`with_widest_simd`]).
#[derive(Clone, Copy)]
struct Lanes<const L: usize>([f32; L]);

impl<const L: usize> Lanes<L> {
    const ZERO: Self = Self([0.0; L]);

    #[inline(always)]
    fn load(s: &[f32], at: usize) -> Self {
        let mut lanes = [0.0; L];
        lanes.copy_from_slice(&s[at..at + L]);
        Self(lanes)
    }

    /// `f` of each lane.
    #[inline(always)]
    fn map(mut self, f: impl Fn(f32) -> f32) -> Self {
        for a in &mut self.0 {
            *a = f(*a);
        }
        self
    }

    /// `f` of each lane of `self` and `other`.
    #[inline(always)]
    fn zip(mut self, other: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = f(*a, b);
        }
        self
    }

    #[inline(always)]
    fn store(self, s: &mut [f32], at: usize) {
        s[at..at + L].copy_from_slice(&self.0);
    }
}

impl<const L: usize> Add for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.zip(other, |a, b| a + b)
    }
}

impl<const L: usize> Sub for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self.zip(other, |a, b| a - b)
    }
}

impl<const L: usize> Mul<Lanes<L>> for f32 {
    type Output = Lanes<L>;
    #[inline(always)]
    fn mul(self, v: Lanes<L>) -> Lanes<L> {
        v.map(|a| self * a)
    }
}

/// `Bᵀ` (6x6) of the finite `points`: row `j` holds the coefficients of
/// `Π_{l≠j} (x - p_l)` in rising powers, the last row those of `Π_l (x - p_l)`.
const fn input_matrix(points: [f64; ALPHA - 1]) -> [[f32; ALPHA]; ALPHA] {
    let mut bt = [[0.0f32; ALPHA]; ALPHA];
    let mut j = 0;
    while j < ALPHA {
        // The polynomial's coefficients, built up one factor (x - p_l) at a time.
        let mut poly = [0.0f64; ALPHA];
        poly[0] = 1.0;
        let mut l = 0;
        while l < ALPHA - 1 {
            if l != j {
                let mut k = ALPHA - 1;
                while k > 0 {
                    poly[k] = poly[k - 1] - points[l] * poly[k];
                    k -= 1;
                }
                poly[0] *= -points[l];
            }
            l += 1;
        }
        let mut k = 0;
        while k < ALPHA {
            bt[j][k] = poly[k] as f32;
            k += 1;
        }
        j += 1;
    }
    bt
}

/// `Aᵀ` (`M x 6`) of the finite `points`: `Aᵀ[i][j] = p_jⁱ`, and `Aᵀ[i][5] = 1` for
/// `i = M - 1` alone.
const fn output_matrix<const M: usize>(points: [f64; ALPHA - 1]) -> [[f32; ALPHA]; M] {
    let mut at = [[0.0f32; ALPHA]; M];
    let mut i = 0;
    while i < M {
        let mut j = 0;
        while j < ALPHA - 1 {
            at[i][j] = power(points[j], i) as f32;
            j += 1;
        }
        at[i][ALPHA - 1] = if i == M - 1 { 1.0 } else { 0.0 };
        i += 1;
    }
    at
}

/// `G` (`6 x R`) of the finite `points`: `G[j][k] = p_jᵏ / Π_{l≠j} (p_j - p_l)`, and
/// `G[5] = e_{R-1}`.
const fn kernel_matrix<const R: usize>(points: [f64; ALPHA - 1]) -> [[f32; R]; ALPHA] {
    let mut g = [[0.0f32; R]; ALPHA];
    let mut j = 0;
    while j < ALPHA - 1 {
        let mut scale = 1.0;
        let mut l = 0;
        while l < ALPHA - 1 {
            if l != j {
                scale *= points[j] - points[l];
            }
            l += 1;
        }
        let mut k = 0;
        while k < R {
            g[j][k] = (power(points[j], k) / scale) as f32;
            k += 1;
        }
        j += 1;
    }
    g[ALPHA - 1][R - 1] = 1.0;
    g
}

/// `pⁿ` in a constant.
const fn power(p: f64, n: usize) -> f64 {
    let (mut value, mut k) = (1.0, 0);
    while k < n {
        value *= p;
        k += 1;
    }
    value
}

/// The transforms of F(M x M, R x R), `M + R - 1 = 6`.
struct Transforms<const M: usize, const R: usize>;

impl<const M: usize, const R: usize> Transforms<M, R> {
    /// The finite interpolation points (with `∞`). F(4x4, 3x3) takes Lavin's `0, ±1, ±2`.
    /// F(2x2, 5x5) takes `2, -1/2` in place of `±2`: its largest `Bᵀ` entry is 2.5 in place
    /// of 5, and its rounding about two thirds (docs/performance.md); for F(4x4, 3x3) these
    /// points fit the reference's training step less well (the same page).
    const POINTS: [f64; ALPHA - 1] = if R == 5 {
        [0.0, 1.0, -1.0, 2.0, -0.5]
    } else {
        [0.0, 1.0, -1.0, 2.0, -2.0]
    };
    const BT: [[f32; ALPHA]; ALPHA] = input_matrix(Self::POINTS);
    const AT: [[f32; ALPHA]; M] = output_matrix::<M>(Self::POINTS);
    const G: [[f32; R]; ALPHA] = kernel_matrix::<R>(Self::POINTS);
}

/// `m d` of `I` vectors, `out_o = Σ_i m[o][i] d_i`. The matrices are constants, so the
/// terms with a zero coefficient compile to nothing and those of ±1 to an addition.
#[inline(always)]
fn apply<const O: usize, const I: usize, const L: usize>(
    m: &[[f32; I]; O],
    d: &[Lanes<L>; I],
) -> [Lanes<L>; O] {
    gather(|o| combine(d, |i| m[o][i]))
}

/// `mᵀ d` of `O` vectors, `out_i = Σ_o m[o][i] d_o`: the adjoint of [`apply`].
#[inline(always)]
fn apply_transposed<const O: usize, const I: usize, const L: usize>(
    m: &[[f32; I]; O],
    d: &[Lanes<L>; O],
) -> [Lanes<L>; I] {
    gather(|i| combine(d, |o| m[o][i]))
}

/// `[f(0), f(1), ..., f(K - 1)]` (a loop, which the compiler unrolls, where
/// `std::array::from_fn` was left as calls).
#[inline(always)]
fn gather<const K: usize, const L: usize>(f: impl Fn(usize) -> Lanes<L>) -> [Lanes<L>; K] {
    let mut out = [Lanes::ZERO; K];
    for (k, out) in out.iter_mut().enumerate() {
        *out = f(k);
    }
    out
}

/// `Σ_k c(k) d_k`, from `-0` (which adds nothing, not even a sign).
#[inline(always)]
fn combine<const K: usize, const L: usize>(
    d: &[Lanes<L>; K],
    c: impl Fn(usize) -> f32,
) -> Lanes<L> {
    let mut sum = Lanes([-0.0; L]);
    for (k, &d) in d.iter().enumerate() {
        sum = match c(k) {
            0.0 => sum,
            1.0 => sum + d,
            -1.0 => sum - d,
            c => sum + c * d,
        };
    }
    sum
}

/// `U_{6 a + b}[ci, co] = (G g Gᵀ)[b][a]` of every `R x R` kernel `g = w[co, ci]`:
/// `36 x Ci x Co`.
fn transform_kernel<const M: usize, const R: usize>(w: &[f32], ci: usize, co: usize) -> Vec<f32> {
    by_channel_pairs(
        [ci, co],
        POSITIONS * ci * co,
        #[inline(always)]
        |u, pair| kernel_lanes::<M, R, LANES>(w, [ci, co], pair, u),
        #[inline(always)]
        |u, pair| kernel_lanes::<M, R, 1>(w, [ci, co], pair, u),
    )
}

/// A kernel-sized result of `len` values written by `wide(out, [c, o])` for every input
/// channel `c` and the output channels `o..o + 8`, then by `narrow` for the output channels
/// left one by one.
fn by_channel_pairs(
    [ci, co]: [usize; 2],
    len: usize,
    wide: impl Fn(&mut [f32], [usize; 2]),
    narrow: impl Fn(&mut [f32], [usize; 2]),
) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    with_widest_simd(
        #[inline(always)]
        || {
            for c in 0..ci {
                by_lanes(
                    co,
                    &mut out[..],
                    #[inline(always)]
                    |out, o| wide(out, [c, o]),
                    #[inline(always)]
                    |out, o| narrow(out, [c, o]),
                );
            }
        },
    );
    out
}

/// [`transform_kernel`] for input channel `c` and the output channels `o..o + L`.
#[inline(always)]
fn kernel_lanes<const M: usize, const R: usize, const L: usize>(
    w: &[f32],
    [ci, co]: [usize; 2],
    [c, o]: [usize; 2],
    u: &mut [f32],
) {
    let mut g = [[Lanes::<L>::ZERO; R]; R];
    for lane in 0..L {
        let kernel = &w[((o + lane) * ci + c) * R * R..][..R * R];
        for (k, row) in g.iter_mut().enumerate() {
            for (l, value) in row.iter_mut().enumerate() {
                value.0[lane] = kernel[k * R + l];
            }
        }
    }
    // G over the rows of g, column by column: gg[b][l] = Σ_k G[b][k] g[k][l].
    let gm = &Transforms::<M, R>::G;
    let mut gg = [[Lanes::<L>::ZERO; R]; ALPHA];
    for l in 0..R {
        for (b, value) in apply(gm, &gather(|k| g[k][l])).into_iter().enumerate() {
            gg[b][l] = value;
        }
    }
    // G over the columns: U[b][a] = Σ_l gg[b][l] G[a][l].
    for (b, gg) in gg.iter().enumerate() {
        for (a, value) in apply(gm, gg).into_iter().enumerate() {
            value.store(u, ((a * ALPHA + b) * ci + c) * co + o);
        }
    }
}

/// `dW[co, ci] = Gᵀ S[ci, co] G` `(Co, Ci, R, R)` from `S_{6 a + b}[ci, co] = S[b][a]`
/// (`36 x Ci x Co`), the adjoint of [`transform_kernel`].
fn untransform_kernel<const M: usize, const R: usize>(s: &[f32], ci: usize, co: usize) -> Vec<f32> {
    by_channel_pairs(
        [ci, co],
        co * ci * R * R,
        #[inline(always)]
        |dw, pair| kernel_adjoint_lanes::<M, R, LANES>(s, [ci, co], pair, dw),
        #[inline(always)]
        |dw, pair| kernel_adjoint_lanes::<M, R, 1>(s, [ci, co], pair, dw),
    )
}

/// [`untransform_kernel`] for input channel `c` and the output channels `o..o + L`.
#[inline(always)]
fn kernel_adjoint_lanes<const M: usize, const R: usize, const L: usize>(
    s: &[f32],
    [ci, co]: [usize; 2],
    [c, o]: [usize; 2],
    dw: &mut [f32],
) {
    // Over a: half[b][l] = Σ_a S[b][a] G[a][l]; then over b: dW[k][l] = Σ_b G[b][k] half[b][l].
    let mut half = [[Lanes::<L>::ZERO; R]; ALPHA];
    for (b, half) in half.iter_mut().enumerate() {
        let row = gather(|a| Lanes::load(s, ((a * ALPHA + b) * ci + c) * co + o));
        *half = apply_transposed(&Transforms::<M, R>::G, &row);
    }
    for l in 0..R {
        let column = apply_transposed(&Transforms::<M, R>::G, &gather(|b| half[b][l]));
        for (k, value) in column.into_iter().enumerate() {
            for (lane, v) in value.0.into_iter().enumerate() {
                dw[((o + lane) * ci + c) * R * R + k * R + l] = v;
            }
        }
    }
}

/// Lanes `l..l + L` of one tile's `V = Bᵀ d B`: from the 6x6 `patch` of channel vectors
/// into the tile's 36 channel vectors `v[6 a + b]`.
#[inline(always)]
fn input_tile<const M: usize, const R: usize, const L: usize>(
    patch: &[[&[f32]; ALPHA]; ALPHA],
    v: &mut [&mut [f32]],
    l: usize,
) {
    // Over the columns, rows[i][a] = Σ_j Bᵀ[a][j] d[i][j], then over the rows,
    // V[b][a] = Σ_i Bᵀ[b][i] rows[i][a], stored at 6 a + b.
    let mut rows = [[Lanes::<L>::ZERO; ALPHA]; ALPHA];
    for (row, patch) in rows.iter_mut().zip(patch) {
        let mut d = [Lanes::ZERO; ALPHA];
        for (d, patch) in d.iter_mut().zip(patch) {
            *d = Lanes::load(patch, l);
        }
        *row = apply(&Transforms::<M, R>::BT, &d);
    }
    for a in 0..ALPHA {
        let mut d = [Lanes::ZERO; ALPHA];
        for (d, row) in d.iter_mut().zip(&rows) {
            *d = row[a];
        }
        for (b, value) in apply(&Transforms::<M, R>::BT, &d).into_iter().enumerate() {
            value.store(v[a * ALPHA + b], l);
        }
    }
}

/// Lanes `l..l + L` of one tile's `Y = Aᵀ M A + bias`: from the tile's 36 product vectors
/// `p[6 a + b]` into its `M x M` output vectors `out[M i + j]`.
#[inline(always)]
fn output_tile<const M: usize, const R: usize, const L: usize>(
    p: &[&[f32]; POSITIONS],
    bias: &[f32],
    out: &mut [&mut [f32]],
    l: usize,
) {
    // Over the rows, cols[a][i] = Σ_b Aᵀ[i][b] M[b][a], then over the columns,
    // Y[i][j] = Σ_a Aᵀ[j][a] cols[a][i].
    let mut cols = [[Lanes::<L>::ZERO; M]; ALPHA];
    for (a, col) in cols.iter_mut().enumerate() {
        let mut d = [Lanes::ZERO; ALPHA];
        for (b, d) in d.iter_mut().enumerate() {
            *d = Lanes::load(p[a * ALPHA + b], l);
        }
        *col = apply(&Transforms::<M, R>::AT, &d);
    }
    let bias = Lanes::<L>::load(bias, l);
    for i in 0..M {
        let mut d = [Lanes::ZERO; ALPHA];
        for (d, col) in d.iter_mut().zip(&cols) {
            *d = col[i];
        }
        for (j, value) in apply(&Transforms::<M, R>::AT, &d).into_iter().enumerate() {
            (value + bias).store(out[i * M + j], l);
        }
    }
}

/// Runs `f(out, l)` for `l` in steps of [`LANES`] over `0..n` (`f` on 8 lanes from `l`),
/// then `tail(out, l)` for the lanes left (`tail` on one lane).
#[inline(always)]
fn by_lanes<S: ?Sized>(
    n: usize,
    out: &mut S,
    f: impl Fn(&mut S, usize),
    tail: impl Fn(&mut S, usize),
) {
    let whole = n - n % LANES;
    for l in (0..whole).step_by(LANES) {
        f(out, l);
    }
    for l in whole..n {
        tail(out, l);
    }
}

/// `K` consecutive `len`-long pieces of `s`, from the start.
fn pieces<T, const K: usize>(s: &[T], len: usize) -> [&[T]; K] {
    std::array::from_fn(|k| &s[k * len..][..len])
}

/// `K` consecutive `len`-long pieces of `s`, from the start, to write.
fn pieces_mut<T, const K: usize>(s: &mut [T], len: usize) -> [&mut [T]; K] {
    let mut rest = s.chunks_exact_mut(len);
    std::array::from_fn(|_| rest.next().expect("enough pieces"))
}

/// Side of the square blocks in which [`grid_channel_last`] and [`to_channel_first`] move
/// values between channel-first and channel-last.
const BLOCK: usize = 8;

/// `block` transposed: `out[j][i] = block[i][j]`, of constant size, so that it compiles to
/// register shuffles or plain moves without bounds checks.
#[inline(always)]
fn transposed(block: &[[f32; BLOCK]; BLOCK]) -> [[f32; BLOCK]; BLOCK] {
    let mut out = [[0.0f32; BLOCK]; BLOCK];
    for (i, row) in block.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j][i] = v;
        }
    }
    out
}

/// Grid `(gy, gx)` of one sample `(C, H, W)` channel-last:
/// `dst[(yy + pad) pw + xx + pad][c] = sample[c, gy + d yy, gx + d xx]` for the grid's pixels
/// `(yy, xx)`; the rest of `dst` (the border) is left as it is. Row by row in 8 x 8 blocks,
/// each read as 8 runs of 8 grid pixels and written as 8 runs of 8 channels, so that both
/// sides stay within a few cache lines (as [`to_channel_first`] does the other way): a write
/// per value `C` values apart took two thirds of the input transform on an Intel Xeon
/// (docs/performance.md, ninth session). Whole blocks go through [`transposed`] (the same
/// moves with run lengths known only at run time were half the input transform of the
/// affine coupling's last convolution: docs/performance.md, tenth session); the blocks cut
/// by the grid's or the channels' end are written one run of channels at a time.
#[inline(always)]
fn grid_channel_last(
    sample: &[f32],
    [h, w]: [usize; 2],
    t: &Tiling,
    (gy, gx): (usize, usize),
    [pad, pw]: [usize; 2],
    dst: &mut [f32],
) {
    let channels = sample.len() / (h * w);
    let [grid_h, grid_w] = t.grid;
    let d = t.d;
    debug_assert!(gy + d * (grid_h - 1) < h && gx + d * (grid_w - 1) < w);
    for yy in 0..grid_h {
        let row = (gy + d * yy) * w + gx;
        let dst = &mut dst[((yy + pad) * pw + pad) * channels..][..grid_w * channels];
        for c0 in (0..channels).step_by(BLOCK) {
            let c_len = BLOCK.min(channels - c0);
            for x0 in (0..grid_w).step_by(BLOCK) {
                let x_len = BLOCK.min(grid_w - x0);
                let start = row + d * x0;
                if c_len == BLOCK && x_len == BLOCK {
                    let mut block = [[0.0f32; BLOCK]; BLOCK];
                    for (c, run) in block.iter_mut().enumerate() {
                        let pixels = &sample[(c0 + c) * h * w + start..][..d * (BLOCK - 1) + 1];
                        for (k, v) in run.iter_mut().enumerate() {
                            *v = pixels[d * k];
                        }
                    }
                    for (k, run) in transposed(&block).iter().enumerate() {
                        dst[(x0 + k) * channels + c0..][..BLOCK].copy_from_slice(run);
                    }
                } else {
                    for k in 0..x_len {
                        let run = &mut dst[(x0 + k) * channels + c0..][..c_len];
                        for (c, v) in run.iter_mut().enumerate() {
                            *v = sample[(c0 + c) * h * w + start + d * k];
                        }
                    }
                }
            }
        }
    }
}

/// A batch of `(C, H, W)` samples: `C` channels of `H x W` planes.
#[derive(Clone, Copy)]
struct Samples<'a> {
    values: &'a [f32],
    channels: usize,
    size: [usize; 2],
}

/// The 36 transformed vectors of every tile `τ` of `samples` (numbered by sample, grid,
/// block row, block column), written to `out[τ][ξ][c]`: each of the `samples` of `src`
/// grid by grid channel-last, inside a border of `pad` zeros before it (the rest of the
/// copy's `side` pixels a side zero too), and for each block the `K x K` patch of channel
/// vectors from its corner `(by m, bx m)`, transformed `wide` 8 lanes at a time and
/// `narrow` one lane at a time.
#[inline(always)]
fn transform_tiles<const K: usize>(
    src: Samples,
    t: &Tiling,
    samples: Range<usize>,
    [pad, side_h, side_w]: [usize; 3],
    out: &mut [f32],
    wide: impl Fn(&[[&[f32]; K]; K], &mut [&mut [f32]], usize),
    narrow: impl Fn(&[[&[f32]; K]; K], &mut [&mut [f32]], usize),
) {
    let Samples {
        values,
        channels,
        size: [h, w],
    } = src;
    let mut padded = vec![0.0f32; side_h * side_w * channels];
    let mut tiles = out.chunks_exact_mut(POSITIONS * channels);
    for n in samples {
        for (gy, gx) in (0..t.d).flat_map(|gy| (0..t.d).map(move |gx| (gy, gx))) {
            let sample = &values[n * channels * h * w..][..channels * h * w];
            grid_channel_last(sample, [h, w], t, (gy, gx), [pad, side_w], &mut padded);
            for by in 0..t.blocks[0] {
                for bx in 0..t.blocks[1] {
                    let tile = tiles.next().expect("a tile per block");
                    let patch: [[&[f32]; K]; K] = std::array::from_fn(|i| {
                        let corner = ((by * t.m + i) * side_w + bx * t.m) * channels;
                        pieces(&padded[corner..], channels)
                    });
                    let mut vectors: [&mut [f32]; POSITIONS] = pieces_mut(tile, channels);
                    by_lanes(
                        channels,
                        &mut vectors[..],
                        #[inline(always)]
                        |v, l| wide(&patch, v, l),
                        #[inline(always)]
                        |v, l| narrow(&patch, v, l),
                    );
                }
            }
        }
    }
}

/// `V[τ][6 a + b][ci] = (Bᵀ d B)[b][a]` for the 6x6 input tile `d` of every tile `τ` of
/// `samples`.
#[expect(
    clippy::redundant_closure,
    reason = "a function item passed on is called through a shim compiled for the baseline; an inlined closure keeps the tile transform in the caller's instruction set"
)]
fn transform_input<const M: usize, const R: usize>(
    x: &[f32],
    g: &ConvGeometry,
    t: &Tiling,
    samples: Range<usize>,
    v: &mut [f32],
) {
    let [ph, pw] = t.padded();
    with_widest_simd(
        #[inline(always)]
        || {
            transform_tiles::<ALPHA>(
                Samples {
                    values: x,
                    channels: g.c_in,
                    size: g.size,
                },
                t,
                samples,
                [(R - 1) / 2, ph, pw],
                v,
                #[inline(always)]
                |patch, v, l| input_tile::<M, R, LANES>(patch, v, l),
                #[inline(always)]
                |patch, v, l| input_tile::<M, R, 1>(patch, v, l),
            )
        },
    );
}

/// `DY[τ][6 a + b][co] = (A dY Aᵀ)[b][a]` for the `M x M` output block `dY` of every tile
/// `τ` of `samples` (zero beyond the grid): the adjoint of [`transform_output`].
#[expect(
    clippy::redundant_closure,
    reason = "a function item passed on is called through a shim compiled for the baseline; an inlined closure keeps the tile transform in the caller's instruction set"
)]
fn transform_output_adjoint<const M: usize, const R: usize>(
    dy: &[f32],
    g: &ConvGeometry,
    t: &Tiling,
    samples: Range<usize>,
    dy_t: &mut [f32],
) {
    let [bh, bw] = t.blocks.map(|b| b * M);
    with_widest_simd(
        #[inline(always)]
        || {
            transform_tiles::<M>(
                Samples {
                    values: dy,
                    channels: g.c_out,
                    size: g.size,
                },
                t,
                samples,
                [0, bh, bw],
                dy_t,
                #[inline(always)]
                |patch, v, l| output_adjoint_tile::<M, R, LANES>(patch, v, l),
                #[inline(always)]
                |patch, v, l| output_adjoint_tile::<M, R, 1>(patch, v, l),
            )
        },
    );
}

/// Lanes `l..l + L` of one tile's `A dY Aᵀ`: from the block's `M x M` vectors into the
/// tile's 36 vectors `out[6 a + b]`.
#[inline(always)]
fn output_adjoint_tile<const M: usize, const R: usize, const L: usize>(
    block: &[[&[f32]; M]; M],
    out: &mut [&mut [f32]],
    l: usize,
) {
    // Over the columns, rows[i][a] = Σ_j A[a][j] dY[i][j], then over the rows,
    // DY[b][a] = Σ_i A[b][i] rows[i][a].
    let mut rows = [[Lanes::<L>::ZERO; ALPHA]; M];
    for (row, block) in rows.iter_mut().zip(block) {
        *row = apply_transposed(
            &Transforms::<M, R>::AT,
            &gather(|j| Lanes::load(block[j], l)),
        );
    }
    for a in 0..ALPHA {
        let column = apply_transposed(&Transforms::<M, R>::AT, &gather(|i| rows[i][a]));
        for (b, value) in column.into_iter().enumerate() {
            value.store(out[a * ALPHA + b], l);
        }
    }
}

/// `y` (the chunk's samples, `(n, Co, H, W)`) from the products `M[τ][6 a + b][co]`: each
/// block's `Aᵀ M A` plus the bias, written or (with `accumulate`) added; the block pixels
/// beyond a grid's edge are dropped. Each sample's blocks are put together channel-last in
/// `image` `(H W, Co)` (every pixel written), then turned channel-first by
/// [`to_channel_first`]: the former scatter of each block pixel by pixel into the `Co`
/// planes took a fifth of the prior's level-1 step (docs/performance.md, seventh session).
/// `MM = M²`.
fn transform_output<const M: usize, const R: usize, const MM: usize>(
    m: &[f32],
    g: &ConvGeometry,
    t: &Tiling,
    bias: Option<&[f32]>,
    image: &mut [f32],
    y: &mut [f32],
    accumulate: bool,
) {
    let ([h, w], co, d) = (g.size, g.c_out, t.d);
    assert_eq!(image.len(), h * w * co, "Winograd output image size");
    let mut block = vec![0.0f32; MM * co];
    let zeros = vec![0.0f32; co];
    let bias = bias.unwrap_or(&zeros);
    let mut tiles = m.chunks_exact(POSITIONS * co);
    with_widest_simd(
        #[inline(always)]
        || {
            for y in y.chunks_exact_mut(co * h * w) {
                for (gy, gx) in (0..d).flat_map(|gy| (0..d).map(move |gx| (gy, gx))) {
                    for by in 0..t.blocks[0] {
                        for bx in 0..t.blocks[1] {
                            let tile = tiles.next().expect("a tile per block");
                            let p: [&[f32]; POSITIONS] = pieces(tile, co);
                            let mut out: [&mut [f32]; MM] = pieces_mut(&mut block, co);
                            by_lanes(
                                co,
                                &mut out[..],
                                #[inline(always)]
                                |out, l| output_tile::<M, R, LANES>(&p, bias, out, l),
                                #[inline(always)]
                                |out, l| output_tile::<M, R, 1>(&p, bias, out, l),
                            );
                            let rows = M.min(t.grid[0] - by * M);
                            let columns = M.min(t.grid[1] - bx * M);
                            for i in 0..rows {
                                let row = (gy + d * (by * M + i)) * w;
                                for j in 0..columns {
                                    let at = row + gx + d * (bx * M + j);
                                    image[at * co..][..co]
                                        .copy_from_slice(&block[(i * M + j) * co..][..co]);
                                }
                            }
                        }
                    }
                }
                if accumulate {
                    to_channel_first(image, co, y, |d, v| *d += v);
                } else {
                    to_channel_first(image, co, y, |d, v| *d = v);
                }
            }
        },
    );
}

/// `put(dst[c][p], src[p][c])` (a write or an addition) for `src` `(P, C)` channel-last and
/// `dst` `(C, P)`: in 8 x 8 blocks, each read as 8 runs of 8 channels and written as 8 runs
/// of 8 pixels, so that both sides go through whole cache lines.
#[inline(always)]
fn to_channel_first(src: &[f32], channels: usize, dst: &mut [f32], put: impl Fn(&mut f32, f32)) {
    assert_eq!(src.len(), dst.len(), "a transpose keeps its size");
    let pixels = src.len() / channels;
    for p0 in (0..pixels).step_by(BLOCK) {
        let p_len = BLOCK.min(pixels - p0);
        for c0 in (0..channels).step_by(BLOCK) {
            let c_len = BLOCK.min(channels - c0);
            if p_len == BLOCK && c_len == BLOCK {
                let mut block = [[0.0f32; BLOCK]; BLOCK];
                for (k, row) in block.iter_mut().enumerate() {
                    row.copy_from_slice(&src[(p0 + k) * channels + c0..][..BLOCK]);
                }
                for (c, run) in transposed(&block).iter().enumerate() {
                    let plane = &mut dst[(c0 + c) * pixels + p0..][..BLOCK];
                    for (d, &v) in plane.iter_mut().zip(run) {
                        put(d, v);
                    }
                }
            } else {
                for c in c0..c0 + c_len {
                    for p in p0..p0 + p_len {
                        put(&mut dst[c * pixels + p], src[p * channels + c]);
                    }
                }
            }
        }
    }
}
