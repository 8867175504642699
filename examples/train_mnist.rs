//! Trains mAR-SCF on the embedded sample of real MNIST digits (no download) on the CPU
//! for five minutes, then prints the test bits/dim and where the learning curve, the grid
//! of samples and the best checkpoint are.
//!
//! ```text
//! cargo run --release --example train_mnist [-- MINUTES [OUT_DIR]]
//! ```
//!
//! The real model at a size that draws digits in five minutes on two cores (the
//! measurements that chose it are in docs/performance.md, "The first run"): the digits
//! as one grey 32x32 channel, affine couplings with L = 3, K = 4, C = 32, the mAR prior
//! with one ConvLSTM layer of 16 channels per level (the reference's is 3 of 32), batch
//! 16, Adamax 2e-3 after a 50-step warm-up; samples at temperature 0.7. `marscf train`
//! runs the same with every option exposed (the command is printed at the start).

use std::path::PathBuf;

use marscf::core::MultiScaleFlowConfig;
use marscf::data::datasets::DatasetName;
use marscf::data::{ImageSet, MnistLayout, embedded};
use marscf::train::{
    DataParallel, Observer, OptimOptions, RunConfig, Start, StepOutcome, TrainingData, train,
};
use marscf::{DataInfo, MarScfConfig, PriorKind, select_device};

/// The digits' layout: one grey channel, zero-padded to 32x32.
const LAYOUT: MnistLayout = MnistLayout::Grey32;
/// Levels, steps per level and hidden width of the couplings.
const FLOW: (usize, usize, usize) = (3, 4, 32);
/// The mAR prior's ConvLSTM width and layers per level.
const PRIOR_HIDDEN: usize = 16;
const PRIOR_LAYERS: usize = 1;
/// Images per step, learning rate, warm-up steps.
const BATCH: usize = 16;
const LR: f64 = 2e-3;
const WARMUP_STEPS: u64 = 50;
/// Temperature of the sample grid (Glow's and most flow papers' choice).
const TEMPERATURE: f64 = 0.7;
/// Steps between evaluations (test bits/dim, checkpoint, sample grid), and their batch.
const EVAL_EVERY: u64 = 50;
const EVAL_BATCH: usize = 100;
/// Samples in the grid.
const SAMPLES: usize = 36;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    marscf::keep_freed_memory()?;
    let mut args = std::env::args().skip(1);
    let minutes: f64 = args.next().map(|m| m.parse()).transpose()?.unwrap_or(5.0);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "runs/train_mnist".into()));
    let device = select_device()?;
    let data = TrainingData {
        info: DataInfo::new(DatasetName::MnistSample, LAYOUT, None),
        train: ImageSet::from_mnist(&embedded::train(), LAYOUT),
        test: ImageSet::from_mnist(&embedded::test(), LAYOUT),
    };
    let (levels, steps, hidden) = FLOW;
    let model = MarScfConfig::new(MultiScaleFlowConfig::new(
        data.info.image,
        levels,
        steps,
        hidden,
    ))
    .with_prior(PriorKind::Mar {
        hidden: PRIOR_HIDDEN,
        lstm_layers: PRIOR_LAYERS,
    });
    let run = RunConfig {
        batch_size: BATCH,
        optim: OptimOptions {
            lr: LR,
            warmup_steps: WARMUP_STEPS,
            ..OptimOptions::default()
        },
        eval_every: EVAL_EVERY,
        max_minutes: Some(minutes),
        samples: SAMPLES,
        temperature: TEMPERATURE,
        eval_batch_size: EVAL_BATCH,
        ..RunConfig::new(out.clone())
    };
    println!(
        "mAR-SCF on {} embedded MNIST digits ({:?}, one grey channel), {} held out for testing, \
         on {} for {minutes} minutes:\n  \
         affine couplings L = {levels}, K = {steps}, C = {hidden}; mAR prior: {PRIOR_LAYERS} ConvLSTM \
         layer(s) of {PRIOR_HIDDEN} per level; batch {BATCH}, Adamax {LR}.\n  \
         Every {EVAL_EVERY} steps: test bits/dim, the best checkpoint and {SAMPLES} samples at \
         temperature {TEMPERATURE}, in {}.\n  \
         The same run with the command line (into another folder): cargo run --release -- \
         train --dataset mnist-sample --mnist-layout grey32 -L {levels} -K {steps} -C {hidden} \
         --prior-hidden {PRIOR_HIDDEN} --prior-layers {PRIOR_LAYERS} --batch-size {BATCH} --lr \
         {LR} --warmup-steps {WARMUP_STEPS} --eval-every {EVAL_EVERY} --eval-batch-size \
         {EVAL_BATCH} --samples {SAMPLES} --temperature {TEMPERATURE} --max-minutes {minutes} \
         --out runs/mnist-cli",
        data.train.len(),
        data.info.image,
        data.test.len(),
        marscf::device::selected_backend_name(),
        out.display(),
    );
    // A previous run of this example is moved aside (to OUT_DIR.replaced-<n>), not lost.
    let summary = train(
        &model,
        &run,
        &data,
        DataParallel::single(&device),
        Start::Overwrite,
        &mut Printer,
    )?;
    println!(
        "{} steps in {:.0} s: test {:.4} bits/dim (best {:.4})",
        summary.steps,
        summary.position.seconds,
        summary.position.last_test_bits_per_dim.unwrap_or(f64::NAN),
        summary.position.best_test_bits_per_dim.unwrap_or(f64::NAN)
    );
    println!(
        "samples:        {}\n                {SAMPLES} digits drawn at temperature {TEMPERATURE} at the \
         last evaluation; after five minutes on two cores most read as digits, some are \
         strokes (docs/first-run.png is one such grid)",
        out.join("samples.png").display()
    );
    println!(
        "learning curve: {}\n                train and test bits/dim against steps, falling \
         from about 6 towards 2",
        out.join("bits_per_dim.png").display()
    );
    println!(
        "best model:     {}\n                sample it again: cargo run --release -- sample \
         --checkpoint {} --n 64 --temperature {TEMPERATURE} --out {}",
        summary.best_checkpoint.display(),
        summary.best_checkpoint.display(),
        out.join("more_samples.png").display()
    );
    Ok(())
}

/// Prints evaluations and every tenth step.
struct Printer;

impl Observer for Printer {
    fn on_step(&mut self, step: u64, outcome: &StepOutcome, images_per_second: f64) {
        if let StepOutcome::Applied { bits_per_dim, .. } = outcome
            && step.is_multiple_of(10)
        {
            println!(
                "step {step:4}: train {bits_per_dim:.3} bits/dim ({images_per_second:.1} images/s)"
            );
        }
    }

    fn on_eval(&mut self, step: u64, test_bits_per_dim: f64, best: bool) {
        println!(
            "step {step:4}: test  {test_bits_per_dim:.4} bits/dim{}",
            if best { " (best)" } else { "" }
        );
    }

    fn on_message(&mut self, message: &str) {
        println!("{message}");
    }
}
