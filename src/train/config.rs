//! How a run trains, evaluates and stops ([`RunConfig`]), and where it is
//! ([`RunPosition`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::train::OptimOptions;

/// How a run trains, evaluates and stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Optimisation settings.
    pub optim: OptimOptions,
    /// Seed of everything random (initialisation, order, augmentation, noise, samples).
    pub seed: u64,
    /// Evaluate (and checkpoint) every this many optimizer steps; also after each epoch
    /// when 0, and always at the end.
    pub eval_every: u64,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<u64>,
    /// Stop after this many epochs.
    pub epochs: Option<u64>,
    /// Stop before this much wall time has passed, final evaluation included.
    pub max_minutes: Option<f64>,
    /// Apply the CIFAR-10 shift and flip augmentation.
    pub augment: bool,
    /// Samples in the grid drawn at each evaluation (0: none).
    pub samples: usize,
    /// Temperature of those samples.
    pub temperature: f64,
    /// Batch size of evaluation.
    pub eval_batch_size: usize,
    /// Folder for checkpoints, metrics, plot and samples.
    pub out_dir: PathBuf,
}

impl RunConfig {
    /// A run writing to `out_dir` with the defaults (the one place they are written):
    /// batch 32, [`OptimOptions::default`], seed 0, evaluation after every epoch, no
    /// stopping rule, no augmentation, 36 samples at temperature 1, evaluation batch 64.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            batch_size: 32,
            optim: OptimOptions::default(),
            seed: 0,
            eval_every: 0,
            max_steps: None,
            epochs: None,
            max_minutes: None,
            augment: false,
            samples: 36,
            temperature: 1.0,
            eval_batch_size: 64,
            out_dir: out_dir.into(),
        }
    }
}

impl RunConfig {
    /// Checks every numeric setting against its range: a batch and an evaluation batch of
    /// at least one image, a finite learning rate `> 0`, a clipping norm `> 0`, an average's
    /// decay in `[0, 1)`, a patience of at least one step, a time limit `> 0` and a finite
    /// temperature `>= 0`. The first one out of range is [`ModelError::Setting`].
    pub fn validate(&self) -> Result<(), ModelError> {
        let optim = &self.optim;
        let checks: [(&'static str, f64, bool, &'static str); 8] = [
            (
                "batch_size",
                self.batch_size as f64,
                self.batch_size >= 1,
                "at least 1",
            ),
            (
                "eval_batch_size",
                self.eval_batch_size as f64,
                self.eval_batch_size >= 1,
                "at least 1",
            ),
            (
                "lr",
                optim.lr,
                optim.lr.is_finite() && optim.lr > 0.0,
                "finite and > 0",
            ),
            (
                "grad_clip",
                optim.grad_clip.unwrap_or(1.0),
                optim.grad_clip.is_none_or(|c| c.is_finite() && c > 0.0),
                "finite and > 0",
            ),
            (
                "ema",
                optim.ema.unwrap_or(0.0),
                optim.ema.is_none_or(|d| (0.0..1.0).contains(&d)),
                "in [0, 1)",
            ),
            (
                "nan_patience",
                optim.nan_patience as f64,
                optim.nan_patience >= 1,
                "at least 1",
            ),
            (
                "max_minutes",
                self.max_minutes.unwrap_or(1.0),
                self.max_minutes.is_none_or(|m| m > 0.0 && !m.is_nan()),
                "> 0",
            ),
            (
                "temperature",
                self.temperature,
                self.temperature.is_finite() && self.temperature >= 0.0,
                "finite and >= 0",
            ),
        ];
        match checks.into_iter().find(|&(_, _, ok, _)| !ok) {
            Some((name, value, _, rule)) => Err(ModelError::Setting { name, value, rule }),
            None => Ok(()),
        }
    }
}

/// Where a run is, saved with its last checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPosition {
    /// Epoch (from 0).
    pub epoch: u64,
    /// Batches of this epoch already consumed.
    pub batch_in_epoch: u64,
    /// Batches consumed in all (the index of the RNG stream of the next batch).
    pub batches: u64,
    /// Seconds of training so far (resumes add up).
    pub seconds: f64,
    /// Best test bits/dim so far.
    pub best_test_bits_per_dim: Option<f64>,
    /// Last test bits/dim.
    pub last_test_bits_per_dim: Option<f64>,
}
