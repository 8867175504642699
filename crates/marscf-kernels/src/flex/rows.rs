//! Softmax over the last dimension and dropout, on contiguous `f32` slices.

use rayon::prelude::*;

use super::math::{exp, lanes, with_widest_simd};

/// Rows per parallel task: enough work per task to outweigh scheduling.
const ROWS_PER_TASK: usize = 64;

/// `p = softmax(x)` over each row of length `len`.
pub fn softmax_forward(x: &[f32], len: usize) -> Vec<f32> {
    let mut p = vec![0.0f32; x.len()];
    p.par_chunks_mut(len * ROWS_PER_TASK)
        .zip(x.par_chunks(len * ROWS_PER_TASK))
        .for_each(|(p, x)| {
            with_widest_simd(
                #[inline(always)]
                || {
                    for (p, x) in p.chunks_exact_mut(len).zip(x.chunks_exact(len)) {
                        softmax_row(x, p);
                    }
                },
            )
        });
    p
}

#[inline(always)]
fn softmax_row(x: &[f32], p: &mut [f32]) {
    let max = lanes(x, f32::NEG_INFINITY, |m, v| m.max(v));
    for (p, &x) in p.iter_mut().zip(x) {
        *p = exp(x - max);
    }
    let inv = 1.0 / lanes(p, 0.0, |s, v| s + v);
    p.iter_mut().for_each(|p| *p *= inv);
}

/// `dx = p ⊙ (dp - Σ_row dp ⊙ p)`, the gradient of `p = softmax(x)`.
pub fn softmax_backward(p: &[f32], dp: &[f32], len: usize) -> Vec<f32> {
    let mut dx = vec![0.0f32; p.len()];
    dx.par_chunks_mut(len * ROWS_PER_TASK)
        .zip(
            p.par_chunks(len * ROWS_PER_TASK)
                .zip(dp.par_chunks(len * ROWS_PER_TASK)),
        )
        .for_each(|(dx, (p, dp))| {
            with_widest_simd(
                #[inline(always)]
                || {
                    for ((dx, p), dp) in dx
                        .chunks_exact_mut(len)
                        .zip(p.chunks_exact(len))
                        .zip(dp.chunks_exact(len))
                    {
                        for ((dx, p), dp) in dx.iter_mut().zip(p).zip(dp) {
                            *dx = p * dp;
                        }
                        let dot = lanes(dx, 0.0, |s, v| s + v);
                        for (dx, p) in dx.iter_mut().zip(p) {
                            *dx -= p * dot;
                        }
                    }
                },
            )
        });
    dx
}

/// `GOLDEN = ⌊2^32 / φ⌋`, the multiplier that spreads counters over the hash's input.
const GOLDEN: u32 = 0x9E37_79B9;

/// Whether element (or channel) `index` is kept by the dropout mask of `seed`: `u < keep`,
/// `u` the top 24 bits of a 32-bit counter hash of `index` ([`hash`]).
#[inline(always)]
fn kept(seed: u64, index: u64, threshold: u32) -> bool {
    let counter = (index as u32) ^ ((index >> 32) as u32).wrapping_mul(GOLDEN);
    (hash(counter, seed) >> 8) < threshold
}

/// murmur3's finaliser twice, keyed by the two halves of `seed`: 32-bit products, which
/// vectorise.
#[inline(always)]
fn hash(counter: u32, seed: u64) -> u32 {
    let fmix = |mut h: u32| {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^ (h >> 16)
    };
    let h = fmix(counter.wrapping_mul(GOLDEN) ^ seed as u32);
    fmix(h ^ (seed >> 32) as u32)
}

/// How dropout draws its mask: `seed`, the probability `keep` of keeping, and the length
/// of the runs that share one draw (`H W` for whole channels, 1 for single elements).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    /// The mask's random seed.
    pub seed: u64,
    /// Probability of keeping an element.
    pub keep: f64,
    /// Consecutive elements that share one draw.
    pub run: usize,
}

/// `y = x ⊙ m / keep` with `m` the mask; also its own gradient (`dx = dy ⊙ m / keep`).
pub fn dropout(x: &[f32], mask: Mask) -> Vec<f32> {
    let threshold = (mask.keep * (1u64 << 24) as f64).round() as u32;
    let scale = (1.0 / mask.keep) as f32;
    let run = mask.run.max(1);
    let mut y = vec![0.0f32; x.len()];
    let chunk = run * (16384 / run).max(1);
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .enumerate()
        .for_each(|(c, (y, x))| {
            let first = (c * chunk / run) as u64;
            with_widest_simd(
                #[inline(always)]
                move || {
                    if run == 1 {
                        for (r, (y, x)) in y.iter_mut().zip(x).enumerate() {
                            let keep = kept(mask.seed, first + r as u64, threshold);
                            *y = if keep { x * scale } else { 0.0 };
                        }
                    } else {
                        for (r, (y, x)) in y.chunks_mut(run).zip(x.chunks(run)).enumerate() {
                            let s = if kept(mask.seed, first + r as u64, threshold) {
                                scale
                            } else {
                                0.0
                            };
                            y.iter_mut().zip(x).for_each(|(y, x)| *y = x * s);
                        }
                    }
                },
            )
        });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keeps_the_configured_share() {
        // 1e6 draws of Bernoulli(0.8): the share kept is within 5 sigma (2e-3) of 0.8.
        let x = vec![1.0f32; 1_000_000];
        let y = dropout(
            &x,
            Mask {
                seed: 7,
                keep: 0.8,
                run: 1,
            },
        );
        let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / x.len() as f64;
        assert!(
            (kept - 0.8).abs() < 5.0 * (0.8f64 * 0.2 / 1e6).sqrt(),
            "kept {kept}"
        );
        assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.25).abs() < 1e-6));
        // Runs share one draw.
        let y = dropout(
            &x[..4096],
            Mask {
                seed: 3,
                keep: 0.5,
                run: 16,
            },
        );
        for run in y.chunks(16) {
            assert!(run.iter().all(|v| *v == run[0]));
        }
        // Another seed, another mask.
        let z = dropout(
            &x[..4096],
            Mask {
                seed: 4,
                keep: 0.5,
                run: 16,
            },
        );
        assert_ne!(y, z);
    }
}
