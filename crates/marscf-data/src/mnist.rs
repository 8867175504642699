//! MNIST: 28x28 grey digits in the IDX format, and an embedded sample of real digits.

use std::path::{Path, PathBuf};

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
            return Err(DataError::mismatch(
                names.0,
                format!("images are {rows}x{cols}, MNIST's are 28x28"),
            ));
        }
        let labels = parse_labels(labels, names.1)?;
        if labels.len() != n {
            return Err(DataError::mismatch(
                names.1,
                format!("{} labels for {n} images in {}", labels.len(), names.0),
            ));
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l > 9) {
            return Err(DataError::LabelOutOfRange {
                path: names.1.into(),
                index,
                label: i64::from(label),
                classes: 10,
            });
        }
        Ok(Self { pixels, labels })
    }

    /// Reads a split from `dir`, given its `(images, labels)` file names; a name ending in
    /// `.gz` is also found without the suffix (the unpacked files).
    pub fn load(dir: &Path, names: (&str, &str)) -> Result<Self, DataError> {
        let (images, labels) = split_files(dir, names);
        let (images_name, labels_name) =
            (images.display().to_string(), labels.display().to_string());
        Self::from_idx(
            &crate::error::read_file(&images)?,
            &crate::error::read_file(&labels)?,
            (&images_name, &labels_name),
        )
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

/// The folder under `root` that holds MNIST's four IDX files (each gzipped or unpacked):
/// `root` itself, `root/mnist` or torchvision's `root/MNIST/raw`. An error says which files
/// to place where.
pub fn locate(root: &Path) -> Result<PathBuf, DataError> {
    let names = [TRAIN_FILES.0, TRAIN_FILES.1, TEST_FILES.0, TEST_FILES.1];
    let present = |dir: &Path, name: &str| {
        dir.join(name).is_file() || dir.join(name.trim_end_matches(".gz")).is_file()
    };
    let candidates = [
        root.to_path_buf(),
        root.join("mnist"),
        root.join("MNIST").join("raw"),
    ];
    for dir in &candidates {
        if names.iter().all(|name| present(dir, name)) {
            return Ok(dir.clone());
        }
    }
    let lacking = candidates
        .iter()
        .find_map(|dir| {
            let missing: Vec<_> = names.iter().filter(|n| !present(dir, n)).copied().collect();
            (missing.len() < names.len()).then(|| {
                format!(
                    "{} holds part of MNIST but lacks {}. ",
                    dir.display(),
                    missing.join(", ")
                )
            })
        })
        .unwrap_or_default();
    Err(DataError::MissingData {
        dataset: "MNIST".into(),
        message: format!(
            "{lacking}Place {} (gzipped or unpacked; from \
             https://storage.googleapis.com/cvdf-datasets/mnist/) in {}, or use the embedded \
             sample (mnist-sample)",
            names.join(", "),
            root.display()
        ),
    })
}

/// The `(images, labels)` files of a split in `dir`: each name as given, or without its
/// `.gz` suffix if only the unpacked file is there.
pub fn split_files(dir: &Path, names: (&str, &str)) -> (PathBuf, PathBuf) {
    let find = |name: &str| {
        let path = dir.join(name);
        let unpacked = dir.join(name.trim_end_matches(".gz"));
        if !path.exists() && unpacked.exists() {
            unpacked
        } else {
            path
        }
    };
    (find(names.0), find(names.1))
}

/// MNIST's `(train, test)` splits from wherever [`locate`] finds them under `root`.
pub fn load(root: &Path) -> Result<(MnistSplit, MnistSplit), DataError> {
    let dir = locate(root)?;
    Ok((
        MnistSplit::load(&dir, TRAIN_FILES)?,
        MnistSplit::load(&dir, TEST_FILES)?,
    ))
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
}
