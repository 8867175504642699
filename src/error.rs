//! Errors of the model, its checkpoints and its configuration.

use std::path::PathBuf;

use marscf_core::CoreError;

/// What can go wrong building, running, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An invalid configuration or input (see [`CoreError`]).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A file cannot be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A checkpoint or configuration file is not in the expected format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A checkpoint's tensors do not match the model: every problem is listed.
    #[error("{path}: checkpoint does not match the model:\n{}", problems.join("\n"))]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// One line per missing, unused or wrongly shaped tensor.
        problems: Vec<String>,
    },
    /// A checkpoint holds NaN or infinite values (say, a model saved after it diverged):
    /// such a model cannot evaluate, and its inverse is undefined.
    #[error("{path}: NaN or infinite values in {}", tensors.join(", "))]
    NonFinite {
        /// The checkpoint.
        path: PathBuf,
        /// The parameters with non-finite values.
        tensors: Vec<String>,
    },
}
