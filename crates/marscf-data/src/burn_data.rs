//! Burn's data API over an [`ImageSet`]: a [`Dataset`] of images and a [`Batcher`] that makes
//! the model's input tensors, for code that drives training with Burn's `DataLoaderBuilder`.
//!
//! marscf's own trainer batches with [`make_batch`] over an
//! [`EpochOrder`](crate::EpochOrder) instead: Burn's multi-worker loader does not reproduce its
//! batch order and cannot restart in the middle of an epoch, which exact resume needs, and
//! making a batch on the host is not the bottleneck (tens of thousands of images per second
//! against a few consumed per second by a training step).

use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor};

use crate::batch::{BatchOptions, make_batch, stream};
use crate::images::ImageSet;

/// One image of an [`ImageSet`]: `C H W` bytes and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// `[C, H, W]` of the image.
    pub shape: [usize; 3],
    /// `C H W` bytes, channel-major.
    pub pixels: Vec<u8>,
    /// Its label.
    pub label: u16,
}

/// An index past the end of the set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("image {index} requested from a set of {len}")]
pub struct IndexOutOfRange {
    /// The index asked for.
    pub index: usize,
    /// The number of images.
    pub len: usize,
}

impl Dataset<ImageItem> for ImageSet {
    /// Image `index`; an [`IndexOutOfRange`] past the end.
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        if index >= self.len() {
            return Err(DatasetError::new(IndexOutOfRange {
                index,
                len: self.len(),
            }));
        }
        Ok(ImageItem {
            shape: self.shape,
            pixels: self.image(index).to_vec(),
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        ImageSet::len(self)
    }
}

/// Makes `(B, C, H, W)` model inputs from items, as [`make_batch`] does: `byte / 255 - 0.5`,
/// optionally augmented and dequantised with noise from a per-batch RNG stream of `seed`.
#[derive(Debug)]
pub struct ImageBatcher {
    options: BatchOptions,
    seed: u64,
    batches: AtomicU64,
}

impl ImageBatcher {
    /// A batcher with these options, its random draws seeded by `seed`.
    pub fn new(options: BatchOptions, seed: u64) -> Self {
        Self {
            options,
            seed,
            batches: AtomicU64::new(0),
        }
    }
}

impl Batcher<ImageItem, Tensor<4>> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> Tensor<4> {
        let shape = items.first().map(|item| item.shape).unwrap_or([1, 1, 1]);
        let set = ImageSet {
            shape,
            pixels: items
                .iter()
                .flat_map(|item| item.pixels.iter().copied())
                .collect::<Vec<u8>>()
                .into(),
            labels: items.iter().map(|item| item.label).collect(),
        };
        let index = self.batches.fetch_add(1, Ordering::Relaxed);
        let indices: Vec<usize> = (0..set.len()).collect();
        make_batch(
            &set,
            &indices,
            self.options,
            &mut stream(self.seed, 0xba7c4, index),
            device,
        )
    }
}
