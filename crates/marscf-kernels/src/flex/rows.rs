//! Softmax over the last dimension and dropout, on contiguous `f32` slices, whole tensors
//! or row by row.

use rayon::prelude::*;

use super::polynomial::exp;
use super::reduce::{chunk_len, dot, lanes};
use super::simd::with_widest_simd;
use super::tuning::{DROPOUT_CHUNK, ROWS_PER_TASK};

/// `p = softmax(x)` over each row of length `len`.
pub fn softmax_forward(x: &[f32], len: usize) -> Vec<f32> {
    let mut p = x.to_vec();
    p.par_chunks_mut(chunk_len(len * ROWS_PER_TASK))
        .for_each(|p| {
            with_widest_simd(
                #[inline(always)]
                || {
                    p.chunks_exact_mut(len)
                        .for_each(|row| softmax_in_place(row, 1.0))
                },
            )
        });
    p
}

/// `row = softmax(scale row)` in place (`scale > 0`).
#[inline(always)]
pub fn softmax_in_place(row: &mut [f32], scale: f32) {
    let max = lanes(row, f32::NEG_INFINITY, |m, v| m.max(v));
    row.iter_mut().for_each(|v| *v = exp(scale * (*v - max)));
    let inv = 1.0 / lanes(row, 0.0, |s, v| s + v);
    row.iter_mut().for_each(|p| *p *= inv);
}

/// `dx = p ⊙ (dp - Σ_row dp ⊙ p)`, the gradient of `p = softmax(x)`.
pub fn softmax_backward(p: &[f32], dp: &[f32], len: usize) -> Vec<f32> {
    let mut dx = dp.to_vec();
    let task = chunk_len(len * ROWS_PER_TASK);
    dx.par_chunks_mut(task)
        .zip(p.par_chunks(task))
        .for_each(|(dx, p)| {
            with_widest_simd(
                #[inline(always)]
                || {
                    for (dx, p) in dx.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
                        softmax_grad_in_place(p, dx, 1.0);
                    }
                },
            )
        });
    dx
}

/// `d = scale p ⊙ (d - Σ d ⊙ p)` in place: from `d = ∂/∂p` of one row `p = softmax(scale
/// x)`, the gradient with respect to `x`.
#[inline(always)]
pub fn softmax_grad_in_place(p: &[f32], d: &mut [f32], scale: f32) {
    let dot = dot(p, d);
    for (d, p) in d.iter_mut().zip(p) {
        *d = scale * p * (*d - dot);
    }
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

impl Mask {
    /// `keep` as a bound on the hash's top 24 bits.
    fn threshold(&self) -> u32 {
        (self.keep * (1u64 << 24) as f64).round() as u32
    }

    /// `1 / keep`, the scale of the kept elements.
    fn scale(&self) -> f32 {
        (1.0 / self.keep) as f32
    }
}

/// `y = x ⊙ m / keep` with `m` the mask; also its own gradient (`dx = dy ⊙ m / keep`).
pub fn dropout(x: &[f32], mask: Mask) -> Vec<f32> {
    let (threshold, scale) = (mask.threshold(), mask.scale());
    let run = mask.run.max(1);
    let mut y = x.to_vec();
    let chunk = run * (DROPOUT_CHUNK / run).max(1);
    y.par_chunks_mut(chunk).enumerate().for_each(|(c, y)| {
        let first = (c * chunk / run) as u64;
        with_widest_simd(
            #[inline(always)]
            move || {
                if run == 1 {
                    mask_in_place(y, first, mask);
                } else {
                    for (r, y) in y.chunks_mut(run).enumerate() {
                        let s = if kept(mask.seed, first + r as u64, threshold) {
                            scale
                        } else {
                            0.0
                        };
                        y.iter_mut().for_each(|y| *y *= s);
                    }
                }
            },
        )
    });
    y
}

/// `v[e] = v[e] m[first + e] / keep` for the single-element mask `mask`: elements
/// `first..` of a tensor dropped out by it.
#[inline(always)]
pub fn mask_in_place(v: &mut [f32], first: u64, mask: Mask) {
    debug_assert!(mask.run <= 1, "a per-element mask");
    let (threshold, scale) = (mask.threshold(), mask.scale());
    for (e, v) in v.iter_mut().enumerate() {
        *v = if kept(mask.seed, first + e as u64, threshold) {
            *v * scale
        } else {
            0.0
        };
    }
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
