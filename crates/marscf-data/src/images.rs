//! An in-memory set of 8-bit images, the common form every reader produces.

use crate::mnist::{MNIST_SIDE, MnistSplit};
use crate::transform::MnistLayout;

/// `len` images of shape `[C, H, W]`, 8-bit, channel-major per image, with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `[C, H, W]` of every image.
    pub shape: [usize; 3],
    /// `len * C * H * W` bytes.
    pub pixels: Vec<u8>,
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

    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            shape: self.shape,
            pixels: self.pixels[..n * self.image_size()].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// The images of `parts` one after another, all of shape `shape`, stopping at the first
    /// error. Readers concatenate the batch files of a split with this as they read them, so
    /// that at most one batch is held besides the result.
    pub(crate) fn concat<E>(
        shape: [usize; 3],
        parts: impl IntoIterator<Item = Result<ImageSet, E>>,
    ) -> Result<Self, E> {
        let mut out = Self {
            shape,
            pixels: Vec::new(),
            labels: Vec::new(),
        };
        for part in parts {
            let part = part?;
            debug_assert_eq!(part.shape, shape, "readers concatenate parts of one shape");
            if out.is_empty() {
                out = part;
            } else {
                out.pixels.extend_from_slice(&part.pixels);
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
            pixels,
            labels: split.labels.iter().map(|&l| l as u16).collect(),
        }
    }
}
