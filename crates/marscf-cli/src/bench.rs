//! Timing the model's workloads: a training step, an evaluation forward pass, sampling one
//! batch, and one coupling layer forward (and backward) at the reference's first-level size
//! (12 channels at 16x16). Used by `marscf bench`, which prints one JSON line per case.

use std::convert::Infallible;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use marscf::core::{CouplingKind, InvertibleLayer, MultiScaleFlowConfig};
use serde::Serialize;

use marscf::train::{OptimOptions, StepOutcome, TrainError, Training};
use marscf::{MarScf, MarScfConfig, ModelError};

/// The cases [`run_case`] knows.
pub const CASES: [&str; 5] = [
    "train_step",
    "eval_forward",
    "sample",
    "coupling_fwd_level1",
    "coupling_fwd_bwd_level1",
];

/// An extra case, `gemm`: a 2048 x 2048 x 2048 f32 matrix product, the machine's matrix
/// rate on this backend (`items_per_s` is then GFLOP/s).
pub const GEMM_CASE: &str = "gemm";

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Coupling of the model.
    pub coupling: CouplingKind,
    /// Levels `L`.
    pub levels: usize,
    /// Steps per level `K`.
    pub steps: usize,
    /// Hidden width `C`.
    pub hidden: usize,
    /// Batch size.
    pub batch: usize,
    /// Timed repetitions after one warm-up.
    pub reps: usize,
}

impl Default for BenchConfig {
    /// The configuration the side-by-side figures use: affine, `L = 3, K = 8, C = 128`,
    /// batch 16, 5 repetitions.
    fn default() -> Self {
        Self {
            coupling: CouplingKind::Affine,
            levels: 3,
            steps: 8,
            hidden: 128,
            batch: 16,
            reps: 5,
        }
    }
}

/// What stops a case.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No case of that name.
    #[error("unknown case {case}; known: {}, {GEMM_CASE}", CASES.join(", "))]
    UnknownCase {
        /// The name asked for.
        case: String,
    },
    /// A training step's loss or gradient was NaN or infinite: the optimiser skipped it,
    /// so its time would not be a training step's.
    #[error("case {case}: a non-finite training step ({reason})")]
    NonFinite {
        /// The case.
        case: String,
        /// What was not finite.
        reason: String,
    },
    /// A training step failed.
    #[error("case {case}: the training step failed")]
    Step {
        /// The case.
        case: String,
        /// Why.
        #[source]
        source: TrainError,
    },
    /// The model's forward pass or sampling failed (say, a 1x1 convolution that cannot
    /// be inverted).
    #[error("case {case}: the model failed")]
    Run {
        /// The case.
        case: String,
        /// Why.
        #[source]
        source: ModelError,
    },
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// One timed case, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Case name.
    pub case: String,
    /// `affine` or `mixlogcdf`.
    pub coupling: String,
    /// Levels.
    #[serde(rename = "L")]
    pub levels: usize,
    /// Steps per level.
    #[serde(rename = "K")]
    pub steps: usize,
    /// Hidden width.
    #[serde(rename = "C")]
    pub hidden: usize,
    /// Batch size.
    pub batch: usize,
    /// Median seconds per repetition.
    pub median_s: f64,
    /// `batch / median_s`.
    pub items_per_s: f64,
    /// The backend.
    pub backend: String,
}

/// Median of `reps` timings of `work` after one untimed warm-up; `work` must finish its
/// device work before returning (read a value back or `device.sync()`).
pub fn median_seconds(reps: usize, mut work: impl FnMut()) -> f64 {
    let infallible = || {
        work();
        Ok::<(), Infallible>(())
    };
    match try_median_seconds(reps, infallible) {
        Ok(seconds) => seconds,
        Err(never) => match never {},
    }
}

/// [`median_seconds`] of a fallible `work`: the first error stops the timing.
pub fn try_median_seconds<E>(
    reps: usize,
    mut work: impl FnMut() -> Result<(), E>,
) -> Result<f64, E> {
    work()?;
    let mut times = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        work()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn pixels(batch: usize, device: &Device) -> Tensor<4> {
    let noise =
        Tensor::<4>::random([batch, 3, 32, 32], Distribution::Default, device).div_scalar(256.0);
    Tensor::<4>::random([batch, 3, 32, 32], Distribution::Uniform(-0.5, 0.5), device) + noise
}

/// The model of `config` on 3x32x32 images, initialised from a random batch.
pub fn bench_model(config: &BenchConfig, device: &Device) -> Result<MarScf, ModelError> {
    let flow = MultiScaleFlowConfig::new([3, 32, 32], config.levels, config.steps, config.hidden)
        .with_coupling(config.coupling.clone());
    MarScfConfig::new(flow)
        .init(device)?
        .initialize(pixels(config.batch, device))
}

fn sync(device: &Device) {
    device.sync().expect("the device finishes its work");
}

/// Times `case` (one of [`CASES`]).
pub fn run_case(
    case: &str,
    config: &BenchConfig,
    device: &Device,
    backend: &str,
) -> Result<BenchResult, BenchError> {
    let b = config.batch;
    let median_s = match case {
        "train_step" => time_train_step(config, pixels(b, device), device)?,
        "eval_forward" => {
            let model = bench_model(config, device)?.valid();
            let x = pixels(b, device);
            try_median_seconds(config.reps, || {
                let output = model.forward(x.clone()).map_err(run_error(case))?;
                let _ = output.bits_per_dim.into_data();
                Ok::<(), BenchError>(())
            })?
        }
        "sample" => {
            let model = bench_model(config, device)?.valid();
            try_median_seconds(config.reps, || {
                let _ = model.sample(b, 1.0).map_err(run_error(case))?.into_data();
                Ok::<(), BenchError>(())
            })?
        }
        "coupling_fwd_level1" => time_coupling(config, device, false)?,
        "coupling_fwd_bwd_level1" => time_coupling(config, device, true)?,
        GEMM_CASE => {
            let seconds = time_gemm(config.reps, device);
            return Ok(BenchResult {
                case: GEMM_CASE.into(),
                coupling: String::new(),
                levels: 0,
                steps: 0,
                hidden: 0,
                batch: 0,
                median_s: seconds,
                items_per_s: 2.0 * 2048f64.powi(3) / seconds / 1e9,
                backend: backend.to_string(),
            });
        }
        other => {
            return Err(BenchError::UnknownCase {
                case: other.to_string(),
            });
        }
    };
    Ok(BenchResult {
        case: case.to_string(),
        coupling: config.coupling.to_string(),
        levels: config.levels,
        steps: config.steps,
        hidden: config.hidden,
        batch: b,
        median_s,
        items_per_s: b as f64 / median_s,
        backend: backend.to_string(),
    })
}

/// A `map_err` adapter: the model's error in `case`.
fn run_error(case: &str) -> impl FnOnce(ModelError) -> BenchError + '_ {
    move |source| BenchError::Run {
        case: case.to_string(),
        source,
    }
}

/// Median seconds of one training step on `x` (case `train_step`). A step that the
/// optimiser skips as non-finite is [`BenchError::NonFinite`]: it would time no update.
fn time_train_step(config: &BenchConfig, x: Tensor<4>, device: &Device) -> Result<f64, BenchError> {
    let case = "train_step";
    let mut training = Training::new(bench_model(config, device)?, OptimOptions::default());
    try_median_seconds(config.reps, || {
        let outcome = training
            .step(x.clone())
            .map_err(|source| BenchError::Step {
                case: case.to_string(),
                source,
            })?;
        if let StepOutcome::Skipped { reason } = outcome {
            return Err(BenchError::NonFinite {
                case: case.to_string(),
                reason,
            });
        }
        sync(device);
        Ok(())
    })
}

/// Median seconds of one coupling's forward (and backward) at the reference's first-level
/// size, `(batch, 12, 16, 16)`.
fn time_coupling(config: &BenchConfig, device: &Device, backward: bool) -> Result<f64, BenchError> {
    let device = if backward {
        device.clone().autodiff()
    } else {
        device.clone()
    };
    let coupling = config
        .coupling
        .init(12, config.hidden, &device)
        .map_err(ModelError::from)?;
    let shape = [config.batch, 12, 16, 16];
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    Ok(median_seconds(config.reps, || {
        let (y, logdet) = coupling.forward(x.clone());
        let total = y.sum() + logdet.sum();
        if backward {
            let _ = total.backward();
            sync(&device);
        } else {
            let _ = total.into_data();
        }
    }))
}

/// Median seconds of a 2048 x 2048 x 2048 matrix product.
fn time_gemm(reps: usize, device: &Device) -> f64 {
    let a = Tensor::<2>::random([2048, 2048], Distribution::Default, device);
    median_seconds(reps, || {
        let _ = a.clone().matmul(a.clone()).slice([0..1, 0..1]).into_data();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_training_step_is_an_error_naming_the_case() {
        let device = marscf::select_device().expect("a backend is compiled in");
        let config = BenchConfig {
            levels: 2,
            steps: 1,
            hidden: 8,
            batch: 2,
            // The default: six steps, past the optimiser's five-skip patience.
            reps: 5,
            ..BenchConfig::default()
        };
        let nan = Tensor::<4>::full([2, 3, 32, 32], f32::NAN, &device);
        let err = time_train_step(&config, nan, &device).unwrap_err();
        assert!(
            matches!(&err, BenchError::NonFinite { case, .. } if case == "train_step"),
            "{err:?}"
        );
        assert!(err.to_string().contains("train_step"), "{err}");
    }
}
