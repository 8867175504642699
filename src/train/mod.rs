//! Training: the Adamax optimizer, the learning-rate schedule, weight averaging, the
//! training step, evaluation, and the training loop with checkpoints and resume.

pub mod adamax;
pub mod collective;
pub mod config;
pub mod ema;
pub mod evaluate;
pub mod folder;
pub mod gradients;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod observer;
pub mod overrides;
pub mod parallel;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod stop;
pub mod training;

pub use adamax::{Adamax, AdamaxConfig, AdamaxState};
pub use collective::{Collective, OneProcess, end_every_process_on_error};
pub use config::{RunConfig, RunPosition};
pub use evaluate::{
    Breakdown, EvalOptions, Evaluation, ImageScore, LevelTerms, Protocol, evaluate,
    evaluate_across, evaluate_detailed, write_per_image_csv,
};
pub use folder::{RunFolder, RunLock};
pub use observer::{Observer, Silent};
pub use overrides::{ModelSize, NEW_RUN_DATASET, NEW_RUN_SIZE, RunOverrides, RunPlan, new_run};
pub use parallel::{BatchGradient, DataParallel, Reduction};
pub use run::{RunSummary, Start, TrainingData, checkpoint_name, saved_run, train};
pub use training::{Communication, Counters, OptimOptions, StepOutcome, Training};

use std::path::PathBuf;

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
    /// Data-parallel training was given no device.
    #[error("data-parallel training needs at least one device")]
    NoDevices,
    /// The main device of data-parallel training is not the model's.
    #[error("the model is on {model}, but the main device given is {given}")]
    OtherMainDevice {
        /// The model's device.
        model: String,
        /// The main device given.
        given: String,
    },
    /// The data does not fit the model.
    #[error("data: {0}")]
    Data(String),
    /// A new run was asked for in a folder that already holds files.
    #[error(
        "{} already holds files ({}): continue its run with --resume, start anew with --overwrite (the old files are moved aside, not deleted), or choose another --out",
        dir.display(), found.join(", ")
    )]
    RunExists {
        /// The folder.
        dir: PathBuf,
        /// What it holds.
        found: Vec<String>,
    },
    /// `--resume` or `--overwrite` named a folder that holds files but no marscf run:
    /// nothing in it is touched.
    #[error(
        "{} holds files but no marscf run ({}): nothing was touched; choose another --out",
        dir.display(), found.join(", ")
    )]
    NotARun {
        /// The folder.
        dir: PathBuf,
        /// What it holds.
        found: Vec<String>,
    },
    /// Another process is writing the run.
    #[error(
        "the run in {} is in use by another process ({holder}): wait for it to end, or choose another --out",
        dir.display()
    )]
    RunLocked {
        /// The run's folder.
        dir: PathBuf,
        /// The holder, as its lock file names it (`pid <pid> on <host>`).
        holder: String,
    },
    /// The processes of a training hold different weights: they no longer train one model.
    #[error(
        "the weights differ between processes at step {step} ({ranks} of {processes} differ from rank 0): stopped; resume from the last saved state"
    )]
    ReplicasDiverged {
        /// The step of the check.
        step: u64,
        /// Processes whose weights differ from rank 0's.
        ranks: usize,
        /// Processes in all.
        processes: usize,
    },
    /// Rank 0 resumes a run whose saved state another process cannot read.
    #[error(
        "rank {rank} cannot see the run rank 0 resumes in {}: every process reads the saved state, so --out must be on a filesystem all of them share",
        dir.display()
    )]
    StateNotShared {
        /// This process's rank.
        rank: usize,
        /// The run's folder.
        dir: PathBuf,
    },
    /// A resumed run's settings differ from the saved run's where they must not.
    #[error(
        "cannot resume the run in {}: it was saved with other settings\n  {}\n(give the saved values, or leave those options out to take them)",
        dir.display(), differences.join("\n  ")
    )]
    ResumeMismatch {
        /// The run's folder.
        dir: PathBuf,
        /// One line per difference: `setting: saved a, given b`.
        differences: Vec<String>,
    },
}
