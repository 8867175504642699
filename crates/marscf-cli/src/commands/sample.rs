//! `marscf sample`: a PNG grid of samples from a checkpoint.

use std::path::PathBuf;

use clap::Args;
use marscf::report::save_image_grid;
use marscf::select_device;

use crate::args::{CheckpointArgs, at_least_one, non_negative};
use crate::commands::{ModelSource, Result, load_model, output_policy};

/// Options of `marscf sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    source: CheckpointArgs,
    /// Number of samples.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    n: usize,
    /// Temperature (1 is the model).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    temperature: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The PNG grid to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    overwrite: bool,
}

/// Runs `marscf sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    let existing = output_policy(&args.out, "--out file", args.overwrite)?;
    let device = select_device()?;
    let source = ModelSource {
        path: &args.source.checkpoint,
        config: args.source.config.as_deref(),
        image_size: args.source.image_size,
        partial: args.source.partial,
    };
    let model = load_model(&source, &device)?.model;
    device.seed(args.seed);
    let images = model.sample(args.n, args.temperature)?;
    let per_row = (args.n as f64).sqrt().ceil() as usize;
    save_image_grid(images, per_row, None, &args.out, existing)?;
    println!(
        "{} samples at temperature {} written to {}",
        args.n,
        args.temperature,
        args.out.display()
    );
    Ok(())
}
