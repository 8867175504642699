//! CIFAR-10: 32x32 RGB images of 10 classes, read from either of its distributions.
//!
//! - The binary one (`cifar-10-binary.tar.gz`, unpacked to `cifar-10-batches-bin/`):
//!   `data_batch_1.bin` .. `data_batch_5.bin` (training) and `test_batch.bin` (test), each a
//!   sequence of 3073-byte records: one label byte `0..=9`, then 3072 pixel bytes, all red,
//!   then all green, then all blue, each plane row-major 32x32. That is already the
//!   channel-major `[3, 32, 32]` layout of [`ImageSet`].
//! - The Python one that torchvision downloads (`cifar-10-batches-py/`): `data_batch_1` ..
//!   `data_batch_5` and `test_batch`, pickles read by [`crate::cifar_pickle`].

use std::path::{Path, PathBuf};

use crate::DataError;
use crate::cifar_pickle::parse_python_batch;
use crate::error::read_file;
use crate::images::{Collect, ImageSet, ImageSink};

/// Side length of a CIFAR-10 image.
pub const CIFAR_SIDE: usize = 32;
/// `[C, H, W]` of a CIFAR-10 image.
pub const CIFAR_SHAPE: [usize; 3] = [3, CIFAR_SIDE, CIFAR_SIDE];
/// Number of classes; labels are `0..CIFAR_CLASSES`.
pub const CIFAR_CLASSES: usize = 10;
/// Bytes of one image, `3 * 32 * 32`.
pub const IMAGE_BYTES: usize = 3 * CIFAR_SIDE * CIFAR_SIDE;
/// Bytes of one record of the binary distribution: a label byte and an image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// Folder of the unpacked binary distribution.
pub const BINARY_FOLDER: &str = "cifar-10-batches-bin";
/// Training files of the binary distribution.
pub const BINARY_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Test file of the binary distribution.
pub const BINARY_TEST_FILE: &str = "test_batch.bin";

/// Folder of the unpacked Python distribution (as torchvision downloads it).
pub const PYTHON_FOLDER: &str = "cifar-10-batches-py";
/// Training files of the Python distribution.
pub const PYTHON_TRAIN_FILES: [&str; 5] = [
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
];
/// Test file of the Python distribution.
pub const PYTHON_TEST_FILE: &str = "test_batch";

/// Which distribution a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarLayout {
    /// `data_batch_*.bin` and `test_batch.bin` records.
    Binary,
    /// `data_batch_*` and `test_batch` pickles.
    Python,
}

impl CifarLayout {
    /// `(training files, test file)` of the layout.
    pub fn files(self) -> ([&'static str; 5], &'static str) {
        match self {
            Self::Binary => (BINARY_TRAIN_FILES, BINARY_TEST_FILE),
            Self::Python => (PYTHON_TRAIN_FILES, PYTHON_TEST_FILE),
        }
    }

    /// Parses one batch file of the layout into `len` images `[3, 32, 32]`.
    pub fn parse(self, bytes: &[u8], file: &str) -> Result<ImageSet, DataError> {
        match self {
            Self::Binary => parse_binary_batch(bytes, file),
            Self::Python => parse_python_batch(bytes, file),
        }
    }

    fn missing(self, dir: &Path) -> Vec<&'static str> {
        let (train, test) = self.files();
        train
            .into_iter()
            .chain([test])
            .filter(|name| !dir.join(name).is_file())
            .collect()
    }
}

/// One file of the binary distribution: `len` records of a label byte `0..=9` and 3072
/// channel-major pixel bytes, as `len` images `[3, 32, 32]`.
pub fn parse_binary_batch(bytes: &[u8], file: &str) -> Result<ImageSet, DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(DataError::mismatch(
            file,
            format!(
                "{} bytes is not a positive multiple of the {RECORD_BYTES}-byte CIFAR-10 record",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (index, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= CIFAR_CLASSES {
            return Err(DataError::LabelOutOfRange {
                path: file.into(),
                index,
                label: i64::from(label),
                classes: CIFAR_CLASSES,
            });
        }
        labels.push(u16::from(label));
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(ImageSet {
        shape: CIFAR_SHAPE,
        pixels: pixels.into(),
        labels,
    })
}

/// The folder and distribution of CIFAR-10 under `root`: the binary files in `root` or in
/// `root/cifar-10-batches-bin`, else the Python files in `root/cifar-10-batches-py` or in
/// `root`. An error says which files to place where.
pub fn locate(root: &Path) -> Result<(PathBuf, CifarLayout), DataError> {
    let candidates = [
        (root.to_path_buf(), CifarLayout::Binary),
        (root.join(BINARY_FOLDER), CifarLayout::Binary),
        (root.join(PYTHON_FOLDER), CifarLayout::Python),
        (root.to_path_buf(), CifarLayout::Python),
    ];
    let mut partial = None;
    for (dir, layout) in candidates {
        let missing = layout.missing(&dir);
        if missing.is_empty() {
            return Ok((dir, layout));
        }
        if missing.len() < 6 && partial.is_none() {
            partial = Some((dir, missing));
        }
    }
    let message = match partial {
        Some((dir, missing)) => format!(
            "{} holds part of CIFAR-10 but lacks {}. {}",
            dir.display(),
            missing.join(", "),
            placement(root)
        ),
        None => placement(root),
    };
    Err(DataError::MissingData {
        dataset: "CIFAR-10".into(),
        message,
    })
}

/// Where CIFAR-10's files go under `root`.
pub fn placement(root: &Path) -> String {
    format!(
        "Unpack cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) \
         in {root} so that {bin}/ holds {train}, {test}; or unpack the Python version so that \
         {py}/ holds data_batch_1 .. data_batch_5 and test_batch",
        root = root.display(),
        bin = root.join(BINARY_FOLDER).display(),
        train = BINARY_TRAIN_FILES.join(", "),
        test = BINARY_TEST_FILE,
        py = root.join(PYTHON_FOLDER).display(),
    )
}

/// Reads the training (50,000 images in the full dataset) and test (10,000) splits from a
/// folder holding the files of `layout`.
pub fn load_dir(dir: &Path, layout: CifarLayout) -> Result<(ImageSet, ImageSet), DataError> {
    let (train_files, test_file) = split_files(dir, layout);
    let read = |files: &[PathBuf]| {
        let mut images = Collect::default();
        decode_files(files, layout, &mut images).map(|()| images.into_set(CIFAR_SHAPE))
    };
    Ok((read(&train_files)?, read(&[test_file])?))
}

/// The `(training, test)` batch files of `layout` in `dir`.
pub fn split_files(dir: &Path, layout: CifarLayout) -> (Vec<PathBuf>, PathBuf) {
    let (train, test) = layout.files();
    (
        train.iter().map(|name| dir.join(name)).collect(),
        dir.join(test),
    )
}

/// Decodes the batch `files` of `layout` in order into `sink`, one batch (30 MB) at a time.
pub(crate) fn decode_files(
    files: &[PathBuf],
    layout: CifarLayout,
    sink: &mut dyn ImageSink,
) -> Result<(), DataError> {
    for path in files {
        let batch = layout.parse(&read_file(path)?, &path.display().to_string())?;
        sink.push(&batch.pixels, &batch.labels)?;
    }
    Ok(())
}

/// Reads CIFAR-10's `(train, test)` splits from wherever [`locate`] finds them under `root`.
pub fn load(root: &Path) -> Result<(ImageSet, ImageSet), DataError> {
    let (dir, layout) = locate(root)?;
    load_dir(&dir, layout)
}
