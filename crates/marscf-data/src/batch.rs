//! Reproducible batches: a seeded order per epoch, augmentation and dequantisation noise
//! drawn from a seeded RNG, so that a run (and a resumed run) sees the same data.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};

use crate::augment::ShiftFlip;
use crate::images::ImageSet;
use crate::transform::quantize_to_unit;

/// The order in which a training set is visited: a fresh permutation per epoch, a pure
/// function of `(seed, epoch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochOrder {
    /// Seed of the run.
    pub seed: u64,
    /// Number of items.
    pub len: usize,
}

impl EpochOrder {
    /// The permutation of `0..len` used in `epoch`.
    pub fn permutation(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut stream(self.seed, 0x0e90c4, epoch));
        order
    }
}

/// An RNG for one purpose (`tag`) and one position (`index`) of a run seeded `seed`.
pub fn stream(seed: u64, tag: u64, index: u64) -> StdRng {
    let mix = |v: u64| v.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(31);
    StdRng::seed_from_u64(seed ^ mix(tag.wrapping_add(1)) ^ mix(index.wrapping_add(0x5bd1_e995)))
}

/// How images become a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Apply the CIFAR-10 shift and flip augmentation.
    pub augment: bool,
    /// Add dequantisation noise `u / 2^bits`, `u ~ U(0, 1)`.
    pub dequantize: bool,
    /// Bits per pixel value, `1..=8` (see [`quantize_to_unit`]); 8 is the reference's.
    pub bits: u32,
}

impl Default for BatchOptions {
    /// No augmentation, no noise, 8 bits.
    fn default() -> Self {
        Self {
            augment: false,
            dequantize: false,
            bits: 8,
        }
    }
}

/// The images at `indices` as a tensor `(B, C, H, W)` of pixels quantised to
/// `options.bits` and scaled to `[-0.5, 0.5]` ([`quantize_to_unit`]; `byte / 255 - 0.5` at
/// 8 bits), plus `u / 2^bits` when dequantising, augmentation and noise drawn from `rng`.
///
/// # Panics
/// If `options.bits` is not in `1..=8`.
pub fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    options: BatchOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Tensor<4> {
    let [c, h, w] = set.shape;
    let values = batch_values(set, indices, options, rng);
    Tensor::from_data(TensorData::new(values, [indices.len(), c, h, w]), device)
}

/// The values of [`make_batch`]'s tensor, image after image.
pub fn batch_values(
    set: &ImageSet,
    indices: &[usize],
    options: BatchOptions,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let size = set.image_size();
    let mut bytes = vec![0u8; indices.len() * size];
    for (out, &index) in bytes.chunks_exact_mut(size).zip(indices) {
        if options.augment {
            ShiftFlip::sample(rng).apply(set.image(index), set.shape, out);
        } else {
            out.copy_from_slice(set.image(index));
        }
    }
    let bits = options.bits;
    let bin = (1u32 << bits.min(8)) as f32;
    if options.dequantize {
        bytes
            .iter()
            .map(|&b| quantize_to_unit(b, bits) + rng.random::<f32>() / bin)
            .collect()
    } else {
        bytes.iter().map(|&b| quantize_to_unit(b, bits)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_reproducible_permutation() {
        let order = EpochOrder { seed: 5, len: 100 };
        let a = order.permutation(3);
        assert_eq!(a, order.permutation(3));
        assert_ne!(a, order.permutation(4));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn n_bit_batches_quantise_and_dequantise_within_a_bin() {
        let set = ImageSet {
            shape: [1, 1, 4],
            pixels: vec![0u8, 63, 64, 255].into(),
            labels: vec![0],
        };
        let batch = |options| batch_values(&set, &[0], options, &mut stream(3, 4, 5));
        // 2 bits: levels 0, 0, 1, 3 of 4, over 3.
        let plain = batch(BatchOptions {
            bits: 2,
            ..BatchOptions::default()
        });
        assert_eq!(plain, [-0.5, -0.5, 1.0 / 3.0 - 0.5, 0.5]);
        let noisy = batch(BatchOptions {
            bits: 2,
            dequantize: true,
            ..BatchOptions::default()
        });
        for (x, p) in noisy.iter().zip(&plain) {
            assert!(
                (0.0..0.25).contains(&(x - p)),
                "noise {} outside U(0, 1/4)",
                x - p
            );
        }
    }

    #[test]
    fn eight_bit_batches_are_the_references_pixels_and_noise_bit_for_bit() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let set = ImageSet {
            shape: [1, 16, 16],
            pixels: bytes.clone().into(),
            labels: vec![0],
        };
        let options = BatchOptions {
            dequantize: true,
            ..BatchOptions::default()
        };
        let ours = batch_values(&set, &[0], options, &mut stream(9, 9, 9));
        let mut rng = stream(9, 9, 9);
        let reference: Vec<f32> = bytes
            .iter()
            .map(|&b| b as f32 / 255.0 - 0.5 + rng.random::<f32>() / 256.0)
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&reference));
    }

    #[test]
    fn streams_are_independent_and_reproducible() {
        let draw = |tag, index| stream(1, tag, index).random::<u64>();
        assert_eq!(draw(1, 2), draw(1, 2));
        assert_ne!(draw(1, 2), draw(1, 3));
        assert_ne!(draw(1, 2), draw(2, 2));
    }
}
