//! Errors of the model, its checkpoints and its configuration.

use std::path::{Path, PathBuf};

use marscf_core::CoreError;

/// The error a parser or store reported, kept as the source of a [`ModelError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong building, running, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An invalid configuration or input (see [`CoreError`]).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A file or folder cannot be read, written, created or renamed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `read`, `write`, `create`, `rename`, ...
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint, configuration or state file is not in the expected format.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The parser's or store's own error, if it gave one.
        #[source]
        source: Option<BoxError>,
    },
    /// A checkpoint's tensors do not match the model: every problem is listed.
    #[error("{}: checkpoint does not match the model:\n{}", path.display(), problems.join("\n"))]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// One line per missing, unused or wrongly shaped tensor.
        problems: Vec<String>,
    },
    /// An output file exists and was not to be replaced.
    #[error("{} exists and is not to be replaced", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A setting out of its range (a run's, see [`RunConfig::validate`](crate::train::RunConfig::validate),
    /// or an evaluation's).
    #[error("{name} = {value} is out of range: it must be {rule}")]
    Setting {
        /// The setting's name (the command line's option, with `_` for `-`).
        name: &'static str,
        /// The value given.
        value: f64,
        /// Its range, in words.
        rule: &'static str,
    },
    /// A prior name that is none of [`crate::PriorKind::name`]'s.
    #[error("unknown prior {name:?}: expected one of {}", crate::PriorKind::all().map(|kind| kind.name()).join(", "))]
    UnknownPrior {
        /// The name given.
        name: String,
    },
    /// A width or layer count given for a prior that has none (only the mAR prior does).
    #[error("the {prior} prior has no width or layers: those size the mar prior")]
    PriorSize {
        /// The prior's name ([`crate::PriorKind::name`]).
        prior: &'static str,
    },
    /// An evaluation that would score no image: its mean would be undefined.
    #[error("no image to score: {reason}")]
    NothingToScore {
        /// Why, with the numbers.
        reason: String,
    },
    /// A bit depth outside `1..=8`.
    #[error("bits per pixel value must be in 1..=8, got {bits}")]
    BitDepth {
        /// The bit depth given.
        bits: u32,
    },
    /// A sample folder that a run cannot add to: recorded with other settings, or holding
    /// files that `marscf sample` did not write.
    #[error("{}: {reason}", path.display())]
    SampleFolder {
        /// The folder.
        path: PathBuf,
        /// Why, with the settings or the file.
        reason: String,
    },
    /// 28x28 grey digits asked of a model whose images are not MNIST-shaped.
    #[error(
        "28x28 grey digits are cut from square MNIST-shaped images (28x28, or padded evenly), not {image:?} (C, H, W)"
    )]
    Grey28 {
        /// The model's image shape.
        image: [usize; 3],
    },
    /// Samples whose channels are no image file's: a PNG holds 1 (grey) or 3 (RGB).
    #[error("samples of {channels} channels are not images: a PNG holds 1 (grey) or 3 (RGB)")]
    ImageChannels {
        /// The model's channels.
        channels: usize,
    },
    /// Two feature statistics of different dimensions.
    #[error("the statistics have {first} and {second} dimensions: they must be alike")]
    FidDimensions {
        /// The first's dimension.
        first: usize,
        /// The second's.
        second: usize,
    },
    /// An eigendecomposition that did not converge (NaN or infinite covariances).
    #[error("the eigendecomposition of a covariance failed: {0}")]
    Eigen(String),
    /// An image set with no image in it.
    #[error("{}: no images ({what})", path.display())]
    NoImages {
        /// The folder or file.
        path: PathBuf,
        /// What was looked for.
        what: String,
    },
    /// A checkpoint holds NaN or infinite values (say, a model saved after it diverged):
    /// such a model cannot evaluate, and its inverse is undefined.
    #[error("{}: NaN or infinite values in {}", path.display(), tensors.join(", "))]
    NonFinite {
        /// The checkpoint.
        path: PathBuf,
        /// The parameters with non-finite values.
        tensors: Vec<String>,
    },
}

impl ModelError {
    /// A `map_err` adapter: the io error of `action` on `path`.
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// A `map_err` adapter: reading or writing `path` failed as `message` says, the parser
    /// or store saying why.
    pub fn format<E: Into<BoxError>>(path: &Path, message: &str) -> impl FnOnce(E) -> Self {
        let (path, message) = (path.to_path_buf(), message.to_string());
        move |source| Self::Format {
            path,
            message,
            source: Some(source.into()),
        }
    }

    /// `path` is well-formed but its content is wrong, as `message` says.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            message: message.into(),
            source: None,
        }
    }
}
