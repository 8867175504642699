//! The training loop: reproducible batches, evaluation on a schedule, the best and the
//! last checkpoint, the metrics log, plot and samples, stopping rules, and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use marscf_core::CouplingKind;
use marscf_data::{BatchOptions, EpochOrder, ImageSet, make_batch, stream};
use serde::{Deserialize, Serialize};

use crate::MarScfConfig;
use crate::checkpoint::{self, write_atomic};
use crate::report::{
    MetricsRecord, append_metrics, plot_metrics, read_metrics, save_image_grid, truncate_metrics,
};
use crate::train::training::io_error;
use crate::train::{OptimOptions, StepOutcome, TrainError, Training, evaluate};

/// How a run trains, evaluates and stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Dataset name, used in the checkpoint's name.
    pub dataset: String,
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
    /// A run on `dataset` writing to `out_dir`: batch 32, [`OptimOptions::default`], seed 0,
    /// evaluation after every epoch, no stopping rule, no augmentation, 36 samples at
    /// temperature 1, evaluation batch 64.
    pub fn new(dataset: impl Into<String>, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            dataset: dataset.into(),
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

/// What a run reports to whoever watches it.
pub trait Observer {
    /// The run starts (or resumes) at `step`; `total` steps if known.
    fn on_start(&mut self, _step: u64, _total: Option<u64>) {}
    /// A training step finished.
    fn on_step(&mut self, _step: u64, _outcome: &StepOutcome, _images_per_second: f64) {}
    /// An evaluation finished.
    fn on_eval(&mut self, _step: u64, _test_bits_per_dim: f64, _best: bool) {}
    /// Anything else worth saying.
    fn on_message(&mut self, _message: &str) {}
}

/// An observer that says nothing.
pub struct Silent;
impl Observer for Silent {}

/// The outcome of a finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Optimizer steps applied.
    pub steps: u64,
    /// Steps skipped (non-finite).
    pub skipped: u64,
    /// Where the run is now.
    pub position: RunPosition,
    /// The best checkpoint (by test bits/dim).
    pub best_checkpoint: PathBuf,
}

/// `marscf_<dataset>_<coupling>_<K>_<C>`, the reference's checkpoint name.
pub fn checkpoint_name(dataset: &str, model: &MarScfConfig) -> String {
    let coupling = match model.flow.coupling {
        CouplingKind::Affine => "affine",
        CouplingKind::MixLogCdf(_) => "mixlogcdf",
    };
    format!(
        "marscf_{dataset}_{coupling}_{}_{}",
        model.flow.steps, model.flow.hidden
    )
}

const TRAIN_STREAM: u64 = 0x7a1;
const SAMPLE_STREAM: u64 = 0x5a3;

/// Trains `model` on `train`, evaluating on `test`, as `run` says; with `resume`,
/// continues the run saved in `run.out_dir/last` exactly where it stopped.
pub fn train(
    model: &MarScfConfig,
    run: &RunConfig,
    train: &ImageSet,
    test: &ImageSet,
    device: &Device,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError> {
    check_data(model, run, train, test)?;
    let out = &run.out_dir;
    std::fs::create_dir_all(out).map_err(|e| io_error(out, e))?;
    let last = out.join("last");
    let metrics = out.join("metrics.jsonl");
    let best = out.join(checkpoint_name(&run.dataset, model));
    let batches_per_epoch = (train.len() / run.batch_size) as u64;
    let order = EpochOrder {
        seed: run.seed,
        len: train.len(),
    };

    let started = Instant::now();
    let resumable = recover_last(&last)?;
    let (mut training, mut position) = match resumable.filter(|_| resume) {
        Some(dir) => {
            let training = Training::load(&dir, run.optim.clone(), device)?;
            let position = read_position(&dir)?;
            truncate_metrics(&metrics, training.counters.step)?;
            observer.on_message(&format!(
                "resumed at step {} from {}",
                training.counters.step,
                dir.display()
            ));
            (training, position)
        }
        None => {
            if resume {
                observer.on_message("nothing to resume: starting a new run");
            }
            let _ = std::fs::remove_file(&metrics);
            device.seed(run.seed);
            let first = order.permutation(0)[..run.batch_size].to_vec();
            let options = BatchOptions {
                augment: run.augment,
                dequantize: true,
            };
            let batch = make_batch(
                train,
                &first,
                options,
                &mut stream(run.seed, TRAIN_STREAM, 0),
                device,
            );
            let model = model.init(device)?.initialize(batch)?;
            (
                Training::new(model, run.optim.clone()),
                RunPosition::default(),
            )
        }
    };

    let seconds_before = position.seconds;
    let elapsed = || seconds_before + started.elapsed().as_secs_f64();
    observer.on_start(training.counters.step, run.max_steps);
    let mut order_of_epoch = order.permutation(position.epoch);
    let mut slowest_eval = 0.0f64;
    let mut slowest_step = 0.0f64;
    let mut evaluated_at = None;
    loop {
        let step = training.counters.step;
        let now = elapsed();
        // Until an evaluation has been timed, estimate it from the step: a forward pass is
        // about a third of a training step (measured: an evaluation of 1,000 images at batch
        // 64 takes 0.6 steps of batch 32 per 32 images), plus samples and checkpoints.
        let eval_estimate = if slowest_eval > 0.0 {
            slowest_eval
        } else {
            slowest_step * (0.65 * test.len() as f64 / run.batch_size as f64 + 1.0)
        };
        let out_of_time = run
            .max_minutes
            .is_some_and(|m| now + slowest_step + eval_estimate > 60.0 * m);
        let done = run.max_steps.is_some_and(|s| step >= s)
            || run.epochs.is_some_and(|e| position.epoch >= e);
        if done || out_of_time || batches_per_epoch == 0 {
            break;
        }
        let start = (position.batch_in_epoch as usize) * run.batch_size;
        let indices = &order_of_epoch[start..start + run.batch_size];
        let options = BatchOptions {
            augment: run.augment,
            dequantize: true,
        };
        let batch = make_batch(
            train,
            indices,
            options,
            &mut stream(run.seed, TRAIN_STREAM, position.batches),
            device,
        );
        // Dropout masks come from the device's RNG: seed it per batch, so a resumed run
        // draws the same ones.
        device.seed(stream_seed(run.seed, TRAIN_STREAM, position.batches));
        let step_started = Instant::now();
        let outcome = training.step(batch)?;
        let step_seconds = step_started.elapsed().as_secs_f64();
        slowest_step = slowest_step.max(step_seconds);
        let images_per_second = run.batch_size as f64 / step_seconds;
        observer.on_step(training.counters.step, &outcome, images_per_second);
        if let StepOutcome::Skipped { reason } = &outcome {
            observer.on_message(&format!("skipped a step: {reason}"));
        }
        position.batches += 1;
        position.batch_in_epoch += 1;
        let epoch_ended = position.batch_in_epoch == batches_per_epoch;
        if epoch_ended {
            position.epoch += 1;
            position.batch_in_epoch = 0;
            order_of_epoch = order.permutation(position.epoch);
        }
        position.seconds = elapsed();
        if let StepOutcome::Applied {
            bits_per_dim, lr, ..
        } = outcome
        {
            let record = MetricsRecord {
                step: training.counters.step,
                epoch: position.epoch,
                seconds: position.seconds,
                train_bits_per_dim: Some(bits_per_dim),
                test_bits_per_dim: None,
                lr: Some(lr),
                images_per_second: Some(images_per_second),
            };
            append_metrics(&metrics, &record)?;
        }
        let step = training.counters.step;
        let due = if run.eval_every == 0 {
            epoch_ended
        } else {
            step > 0 && step % run.eval_every == 0
        };
        if due && evaluated_at != Some(step) {
            let eval_started = Instant::now();
            evaluate_and_save(
                &mut training,
                &mut position,
                run,
                test,
                device,
                &best,
                &last,
                &metrics,
                observer,
            )?;
            slowest_eval = slowest_eval.max(eval_started.elapsed().as_secs_f64());
            evaluated_at = Some(step);
        }
    }
    if evaluated_at != Some(training.counters.step) {
        evaluate_and_save(
            &mut training,
            &mut position,
            run,
            test,
            device,
            &best,
            &last,
            &metrics,
            observer,
        )?;
    }
    Ok(RunSummary {
        steps: training.counters.step,
        skipped: training.counters.skipped,
        position,
        best_checkpoint: best,
    })
}

fn check_data(
    model: &MarScfConfig,
    run: &RunConfig,
    train: &ImageSet,
    test: &ImageSet,
) -> Result<(), TrainError> {
    for (name, set) in [("training", train), ("test", test)] {
        if set.shape != model.flow.image {
            return Err(TrainError::Data(format!(
                "{name} images are {:?}, the model expects {:?}",
                set.shape, model.flow.image
            )));
        }
        if set.is_empty() {
            return Err(TrainError::Data(format!("the {name} set is empty")));
        }
    }
    if run.batch_size == 0 || run.batch_size > train.len() {
        return Err(TrainError::Data(format!(
            "batch size {} for {} training images",
            run.batch_size,
            train.len()
        )));
    }
    Ok(())
}

/// Test bits/dim, the best checkpoint if it improved, samples, the plot, and the last
/// checkpoint (the state to resume from).
#[allow(clippy::too_many_arguments)]
fn evaluate_and_save(
    training: &mut Training,
    position: &mut RunPosition,
    run: &RunConfig,
    test: &ImageSet,
    device: &Device,
    best: &Path,
    last: &Path,
    metrics: &Path,
    observer: &mut dyn Observer,
) -> Result<(), TrainError> {
    let model = training.eval_model();
    let bits_per_dim = evaluate(&model, test, run.eval_batch_size, run.seed, device)?;
    let improved = bits_per_dim.is_finite()
        && position
            .best_test_bits_per_dim
            .is_none_or(|b| bits_per_dim < b);
    if improved {
        position.best_test_bits_per_dim = Some(bits_per_dim);
        checkpoint::save(&model, best)?;
    }
    position.last_test_bits_per_dim = Some(bits_per_dim);
    observer.on_eval(training.counters.step, bits_per_dim, improved);
    let record = MetricsRecord {
        step: training.counters.step,
        epoch: position.epoch,
        seconds: position.seconds,
        train_bits_per_dim: None,
        test_bits_per_dim: Some(bits_per_dim),
        lr: None,
        images_per_second: None,
    };
    append_metrics(metrics, &record)?;
    plot_metrics(
        &read_metrics(metrics),
        &run.out_dir.join("bits_per_dim.png"),
    )?;
    if run.samples > 0 {
        let device = device.clone().without_autodiff();
        device.seed(stream_seed(run.seed, SAMPLE_STREAM, training.counters.step));
        let samples = model.sample(run.samples, run.temperature);
        let per_row = (run.samples as f64).sqrt().ceil() as usize;
        save_image_grid(samples, per_row, &run.out_dir.join("samples.png"))?;
    }
    save_last(training, position, last)
}

/// A device seed for one purpose and position of the run.
fn stream_seed(seed: u64, tag: u64, index: u64) -> u64 {
    use rand::RngExt;
    stream(seed, tag, index).random()
}

/// Writes the state to `<last>.tmp`, then swaps it in: at every moment either the old or
/// the new complete state is on disk (`<last>.old` during the swap).
fn save_last(training: &Training, position: &RunPosition, last: &Path) -> Result<(), TrainError> {
    let temporary = last.with_extension("tmp");
    let old = last.with_extension("old");
    let _ = std::fs::remove_dir_all(&temporary);
    training.save(&temporary)?;
    let json = serde_json::to_string_pretty(position).expect("a position serialises");
    write_atomic(&temporary.join("position.json"), json.as_bytes())?;
    if last.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(last, &old).map_err(|e| io_error(last, e))?;
    }
    std::fs::rename(&temporary, last).map_err(|e| io_error(last, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The complete last state, if any: `last`, or `last.old` when a swap was interrupted.
fn recover_last(last: &Path) -> Result<Option<PathBuf>, TrainError> {
    let old = last.with_extension("old");
    Ok(if last.join("position.json").is_file() {
        Some(last.to_path_buf())
    } else if old.join("position.json").is_file() {
        Some(old)
    } else {
        None
    })
}

fn read_position(dir: &Path) -> Result<RunPosition, TrainError> {
    let path = dir.join("position.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        TrainError::Model(crate::ModelError::Format {
            path,
            message: e.to_string(),
        })
    })
}
