//! The forward of a 3x3 "same" convolution (padding 1, dilation 1, stride 1) as Winograd's
//! F(2x2, 3x3), on contiguous `f32` NCHW slices, for maps of at least 8x8.
//!
//! Each 2x2 block of output pixels is `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` of the 4x4 input patch
//! `d` around it, summed over the input channels. With `U = G g Gᵀ` (per kernel, once per
//! call) and `V = Bᵀ d B` (per patch), the sum over channels is 16 products
//! `M_ξ[Co, T] = U_ξ[Co, Ci] · V_ξ[Ci, T]`, one per position `ξ` of the 4x4 transforms, for
//! the `T` blocks of a chunk of samples: 16 multiplications per block and channel pair
//! instead of 36.
//!
//! `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`, `G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]`,
//! `Aᵀ = [1 1 1 0; 0 1 -1 -1]`.

use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv::ConvGeometry;
use super::gemm::{Accum, MatMut, MatRef, matmul, sized, with_scratch};
use super::simd::with_widest_simd;
use super::tuning::{WINOGRAD_BLOCKS_PER_CHUNK, WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_SIDE};

/// Whether [`forward_into`] computes this convolution.
pub fn applies(g: &ConvGeometry) -> bool {
    g.batch > 0
        && g.kernel == [3, 3]
        && g.dilation == [1, 1]
        && g.padding == [(1, 1), (1, 1)]
        && g.c_in >= WINOGRAD_MIN_CHANNELS
        && g.c_out >= WINOGRAD_MIN_CHANNELS
        && g.size.iter().all(|&side| side >= WINOGRAD_MIN_SIDE)
}

/// `conv(x, w) + bias` written into `y` `(N, Co, H, W)`, or added to it with `accumulate`.
pub fn forward_into(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
    y: &mut [f32],
    accumulate: bool,
) {
    let ([h, wd], ci, co) = (g.size, g.c_in, g.c_out);
    let blocks = h.div_ceil(2) * wd.div_ceil(2);
    let workers = rayon::current_num_threads();
    let chunks = (g.batch * blocks)
        .div_ceil(WINOGRAD_BLOCKS_PER_CHUNK)
        .max(workers)
        .min(g.batch);
    let per_chunk = g.batch.div_ceil(chunks);
    let parallelism = if g.batch.div_ceil(per_chunk) < workers {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    let u = transform_kernel(w, co, ci);
    y.par_chunks_mut(per_chunk * co * h * wd)
        .enumerate()
        .for_each(|(chunk, y)| {
            let samples = chunk * per_chunk..(chunk * per_chunk + per_chunk).min(g.batch);
            let t = samples.len() * blocks;
            with_scratch(|[v_buf, m_buf]| {
                let v = sized(v_buf, 16 * ci * t);
                transform_input(x, g, samples, v);
                let m = sized(m_buf, 16 * co * t);
                for xi in 0..16 {
                    matmul(
                        MatMut::row_major(&mut m[xi * co * t..], co, t),
                        MatRef::row_major(&u[xi * co * ci..], co, ci),
                        MatRef::row_major(&v[xi * ci * t..], ci, t),
                        Accum::Replace,
                        parallelism,
                    );
                }
                transform_output(m, g, t, bias, y, accumulate);
            });
        });
}

/// `U_ξ[co, ci] = (G g Gᵀ)[ξ]` of every 3x3 kernel `g = w[co, ci]`: `16 x Co x Ci`.
fn transform_kernel(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut u = vec![0.0f32; 16 * co * ci];
    let g_rows = |[a, b, c]: [f32; 3]| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for (pair, k) in w.chunks_exact(9).enumerate() {
        // G g: the columns of g, each mapped to 4 values.
        let cols: [[f32; 4]; 3] = std::array::from_fn(|j| g_rows([k[j], k[3 + j], k[6 + j]]));
        for i in 0..4 {
            let row = g_rows([cols[0][i], cols[1][i], cols[2][i]]);
            for (j, value) in row.into_iter().enumerate() {
                u[(4 * i + j) * co * ci + pair] = value;
            }
        }
    }
    u
}

/// `V_ξ[ci, t] = (Bᵀ d B)[ξ]` for the input patch `d` of every output block `t` of
/// `samples` (blocks numbered by sample, block row, block column): `16 x Ci x T`.
///
/// Each input row, padded by one zero on the left, is split into its even and odd columns
/// `e[k] = p[2k]`, `o[k] = p[2k + 1]`: block `b` covers `e[b], o[b], e[b + 1], o[b + 1]`,
/// so both transforms run on contiguous vectors of blocks.
fn transform_input(x: &[f32], g: &ConvGeometry, samples: Range<usize>, v: &mut [f32]) {
    let ([h, w], ci) = (g.size, g.c_in);
    let (bh, bw) = (h.div_ceil(2), w.div_ceil(2));
    let t_len = samples.len() * bh * bw;
    let mut even: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0f32; bw + 1]);
    let mut odd = even.clone();
    with_widest_simd(
        #[inline(always)]
        || {
            for (s, n) in samples.enumerate() {
                for c in 0..ci {
                    let plane = &x[(n * ci + c) * h * w..][..h * w];
                    for by in 0..bh {
                        for (i, (e, o)) in even.iter_mut().zip(&mut odd).enumerate() {
                            let row = (2 * by + i)
                                .checked_sub(1)
                                .filter(|&r| r < h)
                                .map(|r| &plane[r * w..][..w]);
                            split_columns(row, e, o);
                        }
                        // Bᵀ d over the rows, on the even and the odd columns alike.
                        for half in [&mut even, &mut odd] {
                            let [r0, r1, r2, r3] = half;
                            for (((a, b), c), d) in r0.iter_mut().zip(r1).zip(r2).zip(r3) {
                                (*a, *b, *c, *d) = (*a - *c, *b + *c, *c - *b, *b - *d);
                            }
                        }
                        // (·) B over the columns of each block.
                        let first = (s * bh + by) * bw;
                        for (i, (e, o)) in even.iter().zip(&odd).enumerate() {
                            let at = |j: usize| ((4 * i + j) * ci + c) * t_len + first;
                            let (e0, e1, o0, o1) = (&e[..bw], &e[1..], &o[..bw], &o[1..]);
                            let pairs = [(e0, e1), (o0, e1), (e1, o0), (o0, o1)];
                            for (j, (a, b)) in pairs.into_iter().enumerate() {
                                let dst = &mut v[at(j)..][..bw];
                                // Block b's j-th column: a[b] ∓ b[b] (+ for j = 1).
                                if j == 1 {
                                    dst.iter_mut()
                                        .zip(a.iter().zip(b))
                                        .for_each(|(d, (x, y))| *d = x + y);
                                } else {
                                    dst.iter_mut()
                                        .zip(a.iter().zip(b))
                                        .for_each(|(d, (x, y))| *d = x - y);
                                }
                            }
                        }
                    }
                }
            }
        },
    );
}

/// The even and odd columns of `row` padded by one zero on the left (`e[k] = row[2k - 1]`,
/// `o[k] = row[2k]`, zero outside the row, all zero without a row).
#[inline(always)]
fn split_columns(row: Option<&[f32]>, e: &mut [f32], o: &mut [f32]) {
    let Some(row) = row else {
        e.fill(0.0);
        o.fill(0.0);
        return;
    };
    let last = e.len() - 1;
    (e[0], e[last], o[last]) = (0.0, 0.0, 0.0);
    let pairs = row.chunks_exact(2);
    if let [odd_end] = pairs.remainder() {
        o[last - 1] = *odd_end;
    }
    for ((pair, o), e) in pairs.zip(o.iter_mut()).zip(&mut e[1..]) {
        *o = pair[0];
        *e = pair[1];
    }
}

/// `y` (the chunk's samples, `(n, Co, H, W)`) from the products `M_ξ[co, t]`: each block's
/// `Aᵀ m A` plus the bias, written or (with `accumulate`) added; the block pixels beyond an
/// odd map's edge are dropped.
fn transform_output(
    m: &[f32],
    g: &ConvGeometry,
    t_len: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    let ([h, w], co) = (g.size, g.c_out);
    let (bh, bw) = (h.div_ceil(2), w.div_ceil(2));
    let mut rows = [vec![0.0f32; 2 * bw], vec![0.0f32; 2 * bw]];
    with_widest_simd(
        #[inline(always)]
        || {
            for c in 0..co {
                let bias = bias.map_or(0.0, |b| b[c]);
                for t0 in (0..t_len).step_by(bw) {
                    let (s, by) = (t0 / (bh * bw), t0 / bw % bh);
                    let at = |xi: usize| &m[(xi * co + c) * t_len + t0..][..bw];
                    let planes: [&[f32]; 16] = std::array::from_fn(at);
                    let [top, bottom] = &mut rows;
                    for b in 0..bw {
                        let p = |xi: usize| planes[xi][b];
                        // Aᵀ m over the rows, then over the columns.
                        let s0: [f32; 4] = std::array::from_fn(|j| p(j) + p(4 + j) + p(8 + j));
                        let s1: [f32; 4] = std::array::from_fn(|j| p(4 + j) - p(8 + j) - p(12 + j));
                        top[2 * b] = s0[0] + s0[1] + s0[2];
                        top[2 * b + 1] = s0[1] - s0[2] - s0[3];
                        bottom[2 * b] = s1[0] + s1[1] + s1[2];
                        bottom[2 * b + 1] = s1[1] - s1[2] - s1[3];
                    }
                    let plane = &mut y[(s * co + c) * h * w..][..h * w];
                    for (a, row) in rows.iter().enumerate() {
                        let r = 2 * by + a;
                        if r < h {
                            let dst = &mut plane[r * w..][..w];
                            if accumulate {
                                dst.iter_mut().zip(row).for_each(|(d, v)| *d += v + bias);
                            } else {
                                dst.iter_mut().zip(row).for_each(|(d, v)| *d = v + bias);
                            }
                        }
                    }
                }
            }
        },
    );
}
