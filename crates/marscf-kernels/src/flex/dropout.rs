//! Dropout on contiguous `f32` slices: `y = x ⊙ m / keep` with a mask `m` that is never
//! stored. Each element (or run of elements) is kept where the top 24 bits of a counter
//! hash (murmur3's finaliser) of its index, keyed by a seed drawn from the device's
//! generator, fall below `keep 2^24`; the backward regenerates the same mask from the seed.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::simd::with_widest_simd;
use super::tuning::DROPOUT_CHUNK;
use burn::tensor::{Device, Distribution};

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
pub fn forward(x: &[f32], mask: Mask) -> Vec<f32> {
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

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

impl Mask {
    /// A mask keeping elements with probability `keep` in runs of `run`, seeded by two
    /// draws of `device`'s generator (48 random bits), so seeding the device reproduces it.
    pub fn drawn(device: &Device, keep: f64, run: usize) -> Self {
        let draws = Tensor::<1>::random([2], Distribution::Default, device)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("two float32 draws");
        let seed = (u64::from(draws[0].to_bits()) << 32) | u64::from(draws[1].to_bits());
        Self { seed, keep, run }
    }
}

/// The Flex kernel of [`crate::dropout`], its mask [`Mask::drawn`].
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64, whole_channels: bool) -> Tensor<D> {
    let run = if whole_channels {
        x.dims().iter().skip(2).product()
    } else {
        1
    };
    let mask = Mask::drawn(&x.device(), 1.0 - prob, run);
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_dropout(
        x.into_dispatch(),
        mask,
    ))
}

/// [`FlexKernels::marscf_dropout`] on Flex; also its own backward.
pub fn on_flex(x: FlexTensor, mask: Mask) -> FlexTensor {
    tensor(forward(&values(&x), mask), x.shape())
}

/// Backward of [`on_flex`]: parent `x`, state the mask (regenerated, never stored).
#[derive(Debug)]
pub struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = Mask;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (mask, dy, parents) = unpack(ops, grads);
        register(grads, parents, [on_flex(dy, mask)]);
    }
}

/// [`FlexKernels::marscf_dropout`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(x: AutodiffTensor<C>, mask: Mask) -> AutodiffTensor<C> {
    record::<C, _, _>(DropoutBackward, [x], |[x], _| {
        (on_flex(x, mask), Some(mask))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keeps_the_configured_share() {
        // 1e6 draws of Bernoulli(0.8): the share kept is within 5 sigma (2e-3) of 0.8.
        let x = vec![1.0f32; 1_000_000];
        let y = forward(
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
        let y = forward(
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
        let z = forward(
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
