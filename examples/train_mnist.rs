//! Trains mAR-SCF on the embedded sample of real MNIST digits (no download) on the CPU,
//! for about five minutes, then prints the test bits/dim and writes the learning curve
//! and a grid of samples.
//!
//! ```text
//! cargo run --release --example train_mnist [-- MINUTES [OUT_DIR]]
//! ```
//!
//! Affine couplings, L = 3, K = 4, C = 64, batch 32, Adamax 8e-4 with a 100-step warm-up,
//! the reference's MNIST preprocessing (3x32x32). `marscf train` runs the same with every
//! option exposed.

use std::path::PathBuf;

use marscf::core::MultiScaleFlowConfig;
use marscf::data::datasets::DatasetName;
use marscf::data::{ImageSet, MnistLayout, embedded};
use marscf::train::{DataParallel, RunConfig, Start, TrainingData, train};
use marscf::{DataInfo, MarScfConfig, select_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    marscf::keep_freed_memory()?;
    let mut args = std::env::args().skip(1);
    let minutes: f64 = args.next().map(|m| m.parse()).transpose()?.unwrap_or(5.0);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "runs/train_mnist".into()));
    let device = select_device()?;
    let data = TrainingData {
        info: DataInfo::new(DatasetName::MnistSample, MnistLayout::Reference, None),
        train: ImageSet::from_mnist(&embedded::train(), MnistLayout::Reference),
        test: ImageSet::from_mnist(&embedded::test(), MnistLayout::Reference),
    };
    let model = MarScfConfig::new(MultiScaleFlowConfig::new(data.info.image, 3, 4, 64));
    let run = RunConfig {
        eval_every: 25,
        max_minutes: Some(minutes),
        eval_batch_size: 50,
        ..RunConfig::new(out.clone())
    };
    println!(
        "training on {} embedded MNIST digits ({} for test) for {minutes} minutes on {}",
        data.train.len(),
        data.test.len(),
        marscf::device::selected_backend_name()
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
    println!("learning curve: {}", out.join("bits_per_dim.png").display());
    println!("samples:        {}", out.join("samples.png").display());
    println!("best model:     {}", summary.best_checkpoint.display());
    Ok(())
}

/// Prints evaluations and every tenth step.
struct Printer;

impl marscf::train::Observer for Printer {
    fn on_step(&mut self, step: u64, outcome: &marscf::train::StepOutcome, images_per_second: f64) {
        if let marscf::train::StepOutcome::Applied { bits_per_dim, .. } = outcome
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
