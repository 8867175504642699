//! Reproducible batches: a seeded order per epoch, augmentation and dequantisation noise
//! drawn from a seeded RNG, so that a run (and a resumed run) sees the same data.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};

use crate::augment::ShiftFlip;
use crate::images::ImageSet;
use crate::transform::byte_to_unit;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOptions {
    /// Apply the CIFAR-10 shift and flip augmentation.
    pub augment: bool,
    /// Add dequantisation noise `u / 256`, `u ~ U(0, 1)`.
    pub dequantize: bool,
}

/// The images at `indices` as a tensor `(B, C, H, W)` of `byte / 255 - 0.5`
/// (+ `u / 256` when dequantising), augmentation and noise drawn from `rng`.
pub fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    options: BatchOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Tensor<4> {
    let [c, h, w] = set.shape;
    let size = c * h * w;
    let mut bytes = vec![0u8; indices.len() * size];
    for (out, &index) in bytes.chunks_exact_mut(size).zip(indices) {
        if options.augment {
            ShiftFlip::sample(rng).apply(set.image(index), set.shape, out);
        } else {
            out.copy_from_slice(set.image(index));
        }
    }
    let values: Vec<f32> = if options.dequantize {
        bytes
            .iter()
            .map(|&b| byte_to_unit(b) + rng.random::<f32>() / 256.0)
            .collect()
    } else {
        bytes.iter().map(|&b| byte_to_unit(b)).collect()
    };
    Tensor::from_data(TensorData::new(values, [indices.len(), c, h, w]), device)
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
    fn streams_are_independent_and_reproducible() {
        let draw = |tag, index| stream(1, tag, index).random::<u64>();
        assert_eq!(draw(1, 2), draw(1, 2));
        assert_ne!(draw(1, 2), draw(1, 3));
        assert_ne!(draw(1, 2), draw(2, 2));
    }
}
