//! Timing the model's workloads: a training step, an evaluation forward pass, sampling one
//! batch, and one coupling layer forward (and backward) at the reference's first-level size
//! (12 channels at 16x16). Used by `marscf bench`, which prints one JSON line per case.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use marscf::core::{CouplingKind, InvertibleLayer, MultiScaleFlowConfig};
use serde::Serialize;

use marscf::train::{OptimOptions, Training};
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
    work();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
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
        "train_step" => {
            let mut training = Training::new(bench_model(config, device)?, OptimOptions::default());
            let x = pixels(b, device);
            median_seconds(config.reps, || {
                training.step(x.clone()).expect("a finite training step");
                sync(device);
            })
        }
        "eval_forward" => {
            let model = bench_model(config, device)?.valid();
            let x = pixels(b, device);
            median_seconds(config.reps, || {
                let _ = model
                    .forward(x.clone())
                    .expect("valid input")
                    .bits_per_dim
                    .into_data();
            })
        }
        "sample" => {
            let model = bench_model(config, device)?.valid();
            median_seconds(config.reps, || {
                let _ = model.sample(b, 1.0).into_data();
            })
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
        coupling: match config.coupling {
            CouplingKind::Affine => "affine".into(),
            CouplingKind::MixLogCdf(_) => "mixlogcdf".into(),
            CouplingKind::Additive => "additive".into(),
        },
        levels: config.levels,
        steps: config.steps,
        hidden: config.hidden,
        batch: b,
        median_s,
        items_per_s: b as f64 / median_s,
        backend: backend.to_string(),
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
