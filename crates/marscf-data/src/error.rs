//! Errors of the dataset readers.

use std::path::PathBuf;

/// A dataset file that cannot be read, with the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gzip stream is corrupt.
    #[error("{file}: corrupt gzip data: {message}")]
    Gzip {
        /// The file.
        file: String,
        /// What the decoder said.
        message: String,
    },
    /// The file does not start with the expected magic number.
    #[error("{file}: wrong magic number {got:#010x}, expected {expected:#010x}")]
    BadMagic {
        /// The file.
        file: String,
        /// Expected magic number.
        expected: u32,
        /// Magic number found.
        got: u32,
    },
    /// The file is shorter (or longer) than its header says.
    #[error("{file}: header promises {expected} bytes, file has {got}")]
    Truncated {
        /// The file.
        file: String,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// Images and labels disagree on the number of items, or a size is not the expected one.
    #[error("{file}: {message}")]
    Mismatch {
        /// The file.
        file: String,
        /// What disagrees.
        message: String,
    },
    /// A label outside `0..classes` (after any shift of 1-based labels, the label as stored).
    #[error("{file}: label {label} at index {index} is outside the {classes} classes")]
    LabelOutOfRange {
        /// The file.
        file: String,
        /// Item index.
        index: usize,
        /// The label, as stored in the file.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
    /// A Python pickle (CIFAR-10's Python distribution) that cannot be decoded, or that does not
    /// hold what a CIFAR-10 batch holds.
    #[error("{file}: corrupt or unexpected pickle: {message}")]
    Pickle {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A NumPy `.npy` array or `.npz` archive that cannot be decoded, or that does not hold
    /// what the reader expects.
    #[error("{file}: corrupt or unexpected npy/npz data: {message}")]
    Npz {
        /// The file (for an array inside an archive, `archive.npz:member.npy`).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A file in an image folder that is not a PNG or JPEG image, or does not decode.
    #[error("{path}: not a readable PNG/JPEG image: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// An image whose size differs from the others in its folder (or from the size expected).
    #[error("{path}: image is {got:?} (width, height), expected {expected:?} like the others")]
    ImageSize {
        /// The file.
        path: PathBuf,
        /// Expected `(width, height)`.
        expected: (u32, u32),
        /// `(width, height)` of this image.
        got: (u32, u32),
    },
    /// A folder that must hold data holds none.
    #[error("{path}: {message}")]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
        /// What was expected in it.
        message: String,
    },
    /// A dataset's files are not where they are looked for; the message says which files to
    /// place where.
    #[error("{dataset}: data not found. {message}")]
    MissingData {
        /// The dataset (`"MNIST"`, `"CIFAR-10"`, `"ImageNet 32x32"`, ...).
        dataset: String,
        /// Which files to place where.
        message: String,
    },
    /// A dataset name that [`crate::DatasetName`] does not know.
    #[error(
        "unknown dataset {name:?}; expected one of mnist, mnist-sample, cifar10, imagenet32, imagenet64"
    )]
    UnknownDataset {
        /// The name given.
        name: String,
    },
    /// A download that failed (network, HTTP status); the message says which files to place
    /// where to work offline.
    #[error("{url}: download failed: {message}. {hint}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        message: String,
        /// Which files to place where instead.
        hint: String,
    },
    /// Downloaded (or cached) bytes whose SHA-256 digest is not the published one; nothing was
    /// kept.
    #[error("{file}: SHA-256 {got} does not match the expected {expected}; the file was not kept")]
    Digest {
        /// The file (or address) whose bytes were checked.
        file: String,
        /// The expected digest (lower-case hex).
        expected: String,
        /// The digest of the bytes received (lower-case hex).
        got: String,
    },
    /// An archive entry that cannot be extracted.
    #[error("{file}: cannot extract: {message}")]
    Archive {
        /// The archive.
        file: String,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The bytes of `path`, or a [`DataError::Io`] naming it.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::io(path, source))
}
