//! Errors of the dataset readers.
//!
//! Every error names the file (or folder, or address) it is about. An error that comes from
//! another library (I/O, gzip, zip, pickle, image decoding, HTTP) keeps that error as its
//! [`source`](std::error::Error::source), and its own message does not repeat it: print the
//! chain (the CLI prints each cause on a `caused by:` line) to see both. Errors are built with
//! one constructor per kind, `DataError::io(path)` and the like, which return the closure
//! that `map_err` takes.

use std::path::{Path, PathBuf};

/// A dataset file that cannot be read, with the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder cannot be opened, read, written or renamed.
    #[error("{path}: input/output error")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gzip stream is corrupt.
    #[error("{path}: corrupt gzip data")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the expected magic number.
    #[error("{path}: wrong magic number {got:#010x}, expected {expected:#010x}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Expected magic number.
        expected: u32,
        /// Magic number found.
        got: u32,
    },
    /// The file is shorter (or longer) than its header says.
    #[error("{path}: header promises {expected} bytes, file has {got}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// A compressed file whose data goes on past what its header promises; it is not
    /// inflated further, so its real length is not known.
    #[error("{path}: data goes on past the {expected} bytes its header promises")]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises (header included).
        expected: usize,
    },
    /// Images and labels disagree on the number of items, or a size is not the expected one.
    #[error("{path}: {message}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        message: String,
    },
    /// A label outside `0..classes` (after any shift of 1-based labels, the label as stored).
    #[error("{path}: label {label} at index {index} is outside the {classes} classes")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Item index.
        index: usize,
        /// The label, as stored in the file.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
    /// A Python pickle (CIFAR-10's Python distribution) that cannot be decoded.
    #[error("{path}: not a readable pickle")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: serde_pickle::Error,
    },
    /// A pickle that decodes but does not hold what a CIFAR-10 batch holds.
    #[error("{path}: the pickle is not a CIFAR-10 batch: {message}")]
    PickleContent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A NumPy `.npy` array that cannot be decoded, or an `.npy`/`.npz` that does not hold
    /// what the reader expects.
    #[error("{path}: corrupt or unexpected npy/npz data: {message}")]
    Npz {
        /// The file (for an array inside an archive, `archive.npz:member.npy`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A zip archive (an `.npz`), or a member of one, that cannot be read.
    #[error("{path}: not a readable zip archive")]
    Zip {
        /// The archive (for a member, `archive.npz:member.npy`).
        path: PathBuf,
        /// What the zip reader said.
        #[source]
        source: zip::result::ZipError,
    },
    /// A file in an image folder that is not a PNG or JPEG image, or does not decode.
    #[error("{path}: not a readable PNG/JPEG image")]
    Image {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: image::ImageError,
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
    #[error("unknown dataset {name:?}; expected one of {}", crate::DatasetName::ALL.map(|dataset| dataset.name()).join(", "))]
    UnknownDataset {
        /// The name given.
        name: String,
    },
    /// A download that failed (network, HTTP status); the message says which files to place
    /// where to work offline.
    #[error("{url}: download failed. {hint}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong (the HTTP client's error, or the error reading the body).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Which files to place where instead.
        hint: String,
    },
    /// Downloaded (or cached) bytes whose SHA-256 digest is not the published one; nothing was
    /// kept.
    #[error("{url}: SHA-256 {got} does not match the expected {expected}; the file was not kept")]
    Digest {
        /// The address whose bytes were checked.
        url: String,
        /// The expected digest (lower-case hex).
        expected: String,
        /// The digest of the bytes received (lower-case hex).
        got: String,
    },
    /// A tar archive, or an entry of one, that cannot be read.
    #[error("{path}: cannot extract")]
    Archive {
        /// The archive (for an entry, `archive.tar.gz:entry`).
        path: PathBuf,
        /// What the reader said.
        #[source]
        source: std::io::Error,
    },
    /// An archive that lacks files it must hold.
    #[error("{path}: the archive lacks {}", missing.join(", "))]
    ArchiveIncomplete {
        /// The archive.
        path: PathBuf,
        /// The entries not found.
        missing: Vec<String>,
    },
    /// A decode cache whose manifest does not parse or does not describe its files (a stale
    /// or damaged cache is rebuilt instead, see [`crate::cache`]).
    #[error("{path}: decode cache: {message}")]
    Cache {
        /// The cache's manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A decode cache just written that cannot be read back (a full disk, say).
    #[error("{path}: decode cache written but not readable back")]
    CacheNotReadBack {
        /// The cache's manifest.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: Box<DataError>,
    },
    /// The decode cache cannot be written in the folder `path` (a read-only data folder, say).
    #[error(
        "{path}: cannot write the decode cache here; give a writable cache folder \
         (CacheDir::At) or load into memory"
    )]
    CacheUnwritable {
        /// The cache folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl DataError {
    /// A [`DataError::Io`] about `path`, for `map_err`.
    pub(crate) fn io<P: AsRef<Path> + ?Sized>(path: &P) -> impl Fn(std::io::Error) -> Self {
        move |source| Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A [`DataError::Gzip`] about `file`, for `map_err`.
    pub(crate) fn gzip(file: &str) -> impl Fn(std::io::Error) -> Self {
        move |source| Self::Gzip {
            path: file.into(),
            source,
        }
    }

    /// A [`DataError::Pickle`] about `file`, for `map_err`.
    pub(crate) fn pickle(file: &str) -> impl Fn(serde_pickle::Error) -> Self {
        move |source| Self::Pickle {
            path: file.into(),
            source,
        }
    }

    /// A [`DataError::Zip`] about `file` (an archive, or `archive:member`), for `map_err`; an
    /// I/O error while inflating a member becomes the zip reader's [`ZipError::Io`].
    ///
    /// [`ZipError::Io`]: zip::result::ZipError::Io
    pub(crate) fn zip<E: Into<zip::result::ZipError>>(file: &str) -> impl Fn(E) -> Self {
        move |source| Self::Zip {
            path: file.into(),
            source: source.into(),
        }
    }

    /// A [`DataError::Image`] about `path`, for `map_err`.
    pub(crate) fn image(path: &Path) -> impl Fn(image::ImageError) -> Self {
        move |source| Self::Image {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`DataError::Archive`] about `file` (an archive, or `archive:entry`), for `map_err`.
    #[cfg(feature = "download")]
    pub(crate) fn archive(file: &str) -> impl Fn(std::io::Error) -> Self {
        move |source| Self::Archive {
            path: file.into(),
            source,
        }
    }

    /// A [`DataError::Download`] of `url`, ending in `hint`, for `map_err`.
    #[cfg(feature = "download")]
    pub(crate) fn download<E>(url: &str, hint: &str) -> impl Fn(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| Self::Download {
            url: url.to_string(),
            source: Box::new(source),
            hint: hint.to_string(),
        }
    }

    /// A [`DataError::Mismatch`] about `file`.
    pub(crate) fn mismatch(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Mismatch {
            path: file.into(),
            message: message.into(),
        }
    }

    /// A [`DataError::Npz`] about `file`.
    pub(crate) fn npz(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Npz {
            path: file.into(),
            message: message.into(),
        }
    }

    /// A [`DataError::PickleContent`] about `file`.
    pub(crate) fn pickle_content(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::PickleContent {
            path: file.into(),
            message: message.into(),
        }
    }
}

/// The bytes of `path`, or a [`DataError::Io`] naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(DataError::io(path))
}
