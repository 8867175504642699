//! A set of 8-bit images, the common form every reader produces, and the sink readers
//! decode into.

use crate::DataError;
use crate::mnist::{MNIST_SIDE, MnistSplit};
use crate::pixels::Pixels;
use crate::transform::MnistLayout;

/// Images read by [`ImageSet::fingerprint`] at most.
pub const FINGERPRINT_IMAGES: usize = 1024;

/// `len` images of shape `[C, H, W]`, 8-bit, channel-major per image, with labels.
///
/// The pixels are in memory or a memory-mapped file of the decode cache ([`Pixels`]); either
/// way [`image`](Self::image) returns the same bytes. The labels (2 bytes per image) are
/// always in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `[C, H, W]` of every image.
    pub shape: [usize; 3],
    /// `len * C * H * W` bytes.
    pub pixels: Pixels,
    /// One label per image.
    pub labels: Vec<u16>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image, `C H W`.
    pub fn image_size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image `i`, `C H W` bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_size();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// A cheap fingerprint of the set: CRC-32 of its shape, count, every label and up to
    /// [`FINGERPRINT_IMAGES`] images spread evenly over it (the first and the last
    /// included). Two copies of the same data agree; another dataset, another split, a
    /// subset or a reordering almost surely does not.
    pub fn fingerprint(&self) -> u32 {
        let mut crc = crc32fast::Hasher::new();
        for value in self.shape.iter().chain([&self.len()]) {
            crc.update(&(*value as u64).to_le_bytes());
        }
        for label in &self.labels {
            crc.update(&label.to_le_bytes());
        }
        let n = self.len();
        let sampled = n.min(FINGERPRINT_IMAGES);
        for k in 0..sampled {
            // Evenly spaced indices from 0 to n - 1.
            let i = if sampled == 1 {
                0
            } else {
                k * (n - 1) / (sampled - 1)
            };
            crc.update(self.image(i));
        }
        crc.finalize()
    }

    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            shape: self.shape,
            pixels: self.pixels.slice(0..n * self.image_size()),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// The images of `parts` one after another, all of shape `shape`, stopping at the first
    /// error; at most one part is held besides the result. Mapped parts are copied into
    /// memory (except a first part that is the only one).
    pub fn concat<E>(
        shape: [usize; 3],
        parts: impl IntoIterator<Item = Result<ImageSet, E>>,
    ) -> Result<Self, E> {
        let mut out = Self {
            shape,
            pixels: Pixels::default(),
            labels: Vec::new(),
        };
        for part in parts {
            let part = part?;
            debug_assert_eq!(part.shape, shape, "readers concatenate parts of one shape");
            if out.is_empty() {
                out = part;
            } else {
                out.pixels.to_mut().extend_from_slice(&part.pixels);
                out.labels.extend_from_slice(&part.labels);
            }
        }
        Ok(out)
    }

    /// MNIST digits in one of the [`MnistLayout`]s: zero-padded to 32x32 (and repeated to
    /// three channels for the reference's layout), or as stored.
    pub fn from_mnist(split: &MnistSplit, layout: MnistLayout) -> Self {
        let shape = layout.shape();
        let [c, h, w] = shape;
        let pad = (h - MNIST_SIDE) / 2;
        let mut pixels = vec![0u8; split.len() * c * h * w];
        for (i, image) in pixels.chunks_exact_mut(c * h * w).enumerate() {
            let digit = split.image(i);
            for channel in image.chunks_exact_mut(h * w) {
                for y in 0..MNIST_SIDE {
                    let row = &digit[y * MNIST_SIDE..(y + 1) * MNIST_SIDE];
                    let start = (y + pad) * w + pad;
                    channel[start..start + MNIST_SIDE].copy_from_slice(row);
                }
            }
        }
        Self {
            shape,
            pixels: pixels.into(),
            labels: split.labels.iter().map(|&l| l as u16).collect(),
        }
    }
}

/// Receives decoded images in order, a few at a time: an [`ImageSet`] in memory
/// ([`Collect`]) or the decode cache's files ([`crate::cache`]).
pub(crate) trait ImageSink {
    /// Room for `images` more images of `image_bytes` bytes (a hint, which a reader gives
    /// only once the file has been found to hold them).
    fn reserve(&mut self, _images: usize, _image_bytes: usize) {}

    /// Appends `labels.len()` images, `pixels` holding their bytes one after another.
    fn push(&mut self, pixels: &[u8], labels: &[u16]) -> Result<(), DataError>;
}

/// An [`ImageSink`] that keeps the images in memory.
#[derive(Debug, Default)]
pub(crate) struct Collect {
    pixels: Vec<u8>,
    labels: Vec<u16>,
}

impl Collect {
    /// The images received, of `shape`.
    pub(crate) fn into_set(self, shape: [usize; 3]) -> ImageSet {
        ImageSet {
            shape,
            pixels: self.pixels.into(),
            labels: self.labels,
        }
    }
}

impl ImageSink for Collect {
    fn reserve(&mut self, images: usize, image_bytes: usize) {
        // Only a hint: memory the system refuses now is asked for again as the images arrive.
        let _ = self
            .pixels
            .try_reserve_exact(images.saturating_mul(image_bytes));
        let _ = self.labels.try_reserve_exact(images);
    }

    fn push(&mut self, pixels: &[u8], labels: &[u16]) -> Result<(), DataError> {
        self.pixels.extend_from_slice(pixels);
        self.labels.extend_from_slice(labels);
        Ok(())
    }
}
