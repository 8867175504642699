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
    /// A label outside `0..classes`.
    #[error("{file}: label {label} at index {index} is outside 0..{classes}")]
    LabelOutOfRange {
        /// The file.
        file: String,
        /// Item index.
        index: usize,
        /// The label.
        label: u8,
        /// Number of classes.
        classes: u8,
    },
}
