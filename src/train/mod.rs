//! Training: the Adamax optimizer, the learning-rate schedule, weight averaging, the
//! training step, evaluation, and the training loop with checkpoints and resume.

pub mod adamax;
pub mod ema;
pub mod evaluate;
pub mod gradients;
pub mod run;
pub mod schedule;
pub mod training;

pub use adamax::{Adamax, AdamaxConfig, AdamaxState};
pub use evaluate::evaluate;
pub use run::{Observer, RunConfig, RunPosition, RunSummary, Silent, checkpoint_name, train};
pub use training::{Counters, OptimOptions, StepOutcome, Training};

use crate::ModelError;

/// What stops a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model, a checkpoint or a file failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Too many non-finite steps in a row.
    #[error(
        "training diverged: {consecutive} non-finite steps in a row after step {step} ({reason}); the last checkpoint is intact"
    )]
    Diverged {
        /// Optimizer steps applied before.
        step: u64,
        /// Non-finite steps in a row.
        consecutive: u32,
        /// The last one's cause.
        reason: String,
    },
    /// The data does not fit the model.
    #[error("data: {0}")]
    Data(String),
}
