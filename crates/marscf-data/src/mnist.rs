//! MNIST: 28x28 grey digits in the IDX format, and an embedded sample of real digits.

use std::path::Path;

use crate::DataError;
use crate::idx::{parse_images, parse_labels};

/// One split of MNIST (or of its embedded sample), as bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MnistSplit {
    /// Pixels, `len * 28 * 28` bytes, row-major per image.
    pub pixels: Vec<u8>,
    /// Labels `0..=9`, one per image.
    pub labels: Vec<u8>,
}

/// Side length of an MNIST image.
pub const MNIST_SIDE: usize = 28;

/// The standard file names of the training and test splits `(images, labels)`.
pub const TRAIN_FILES: (&str, &str) = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
/// See [`TRAIN_FILES`].
pub const TEST_FILES: (&str, &str) = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");

impl MnistSplit {
    /// Parses an images file and a labels file (raw or gzip IDX) and checks that they agree.
    pub fn from_idx(images: &[u8], labels: &[u8], names: (&str, &str)) -> Result<Self, DataError> {
        let (n, rows, cols, pixels) = parse_images(images, names.0)?;
        if (rows, cols) != (MNIST_SIDE, MNIST_SIDE) {
            return Err(DataError::Mismatch {
                file: names.0.to_string(),
                message: format!("images are {rows}x{cols}, MNIST's are 28x28"),
            });
        }
        let labels = parse_labels(labels, names.1)?;
        if labels.len() != n {
            return Err(DataError::Mismatch {
                file: names.1.to_string(),
                message: format!("{} labels for {n} images in {}", labels.len(), names.0),
            });
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l > 9) {
            return Err(DataError::LabelOutOfRange {
                file: names.1.to_string(),
                index,
                label,
                classes: 10,
            });
        }
        Ok(Self { pixels, labels })
    }

    /// Reads a split from `dir`, given its `(images, labels)` file names; a name ending in
    /// `.gz` is also found without the suffix (the unpacked files).
    pub fn load(dir: &Path, names: (&str, &str)) -> Result<Self, DataError> {
        let read = |name: &str| {
            let path = dir.join(name);
            let unpacked = dir.join(name.trim_end_matches(".gz"));
            let path = if !path.exists() && unpacked.exists() {
                unpacked
            } else {
                path
            };
            std::fs::read(&path).map_err(|source| DataError::Io { path, source })
        };
        Self::from_idx(&read(names.0)?, &read(names.1)?, names)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`, 28 x 28 bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * MNIST_SIDE * MNIST_SIDE..(i + 1) * MNIST_SIDE * MNIST_SIDE]
    }
}

/// The embedded sample of real MNIST digits: 1,600 training and 400 test digits from the
/// MNIST database (LeCun, Cortes, Burges; CC BY-SA 3.0), compiled into the crate so that
/// examples and tests need no download.
pub mod embedded {
    use super::*;

    const TRAIN_IMAGES: &[u8] = include_bytes!("../data/train-images-idx3-ubyte.gz");
    const TRAIN_LABELS: &[u8] = include_bytes!("../data/train-labels-idx1-ubyte.gz");
    const TEST_IMAGES: &[u8] = include_bytes!("../data/t10k-images-idx3-ubyte.gz");
    const TEST_LABELS: &[u8] = include_bytes!("../data/t10k-labels-idx1-ubyte.gz");

    /// The 1,600 embedded training digits.
    pub fn train() -> MnistSplit {
        MnistSplit::from_idx(TRAIN_IMAGES, TRAIN_LABELS, TRAIN_FILES)
            .expect("the embedded MNIST sample is valid (checked by the crate's tests)")
    }

    /// The 400 embedded test digits (disjoint from the training ones).
    pub fn test() -> MnistSplit {
        MnistSplit::from_idx(TEST_IMAGES, TEST_LABELS, TEST_FILES)
            .expect("the embedded MNIST sample is valid (checked by the crate's tests)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_has_real_digits() {
        let train = embedded::train();
        let test = embedded::test();
        assert_eq!((train.len(), test.len()), (1600, 400));
        assert_eq!(train.pixels.len(), 1600 * 784);
        // Every digit class occurs, and digits are ink on a black background.
        for split in [&train, &test] {
            for class in 0..10 {
                assert!(split.labels.contains(&class));
            }
            let mean =
                split.pixels.iter().map(|&p| p as f64).sum::<f64>() / split.pixels.len() as f64;
            assert!((20.0..60.0).contains(&mean), "mean pixel {mean}");
            assert_eq!(split.image(0)[0], 0, "corners are background");
        }
    }

    #[test]
    fn label_out_of_range_is_an_error() {
        let mut images = Vec::new();
        for w in [crate::idx::IMAGES_MAGIC, 1, 28, 28] {
            images.extend_from_slice(&u32::to_be_bytes(w));
        }
        images.extend_from_slice(&[0; 784]);
        let mut labels = Vec::new();
        for w in [crate::idx::LABELS_MAGIC, 1] {
            labels.extend_from_slice(&u32::to_be_bytes(w));
        }
        labels.push(10);
        let err = MnistSplit::from_idx(&images, &labels, ("i", "l")).unwrap_err();
        assert!(matches!(
            err,
            DataError::LabelOutOfRange {
                label: 10,
                index: 0,
                ..
            }
        ));
        labels[8] = 3;
        labels.push(4);
        assert!(matches!(
            MnistSplit::from_idx(&images, &labels, ("i", "l")),
            Err(DataError::Truncated { .. })
        ));
    }
}
