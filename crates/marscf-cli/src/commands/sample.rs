//! `marscf sample`: a PNG grid of samples from a checkpoint.

use std::path::PathBuf;

use clap::Args;
use marscf::report::save_image_grid;
use marscf::select_device;

use crate::args::CheckpointArgs;
use crate::commands::{ModelSource, Result, load_model};

/// Options of `marscf sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    source: CheckpointArgs,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Temperature (1 is the model).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The PNG grid to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `marscf sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    let device = select_device()?;
    let source = ModelSource {
        path: &args.source.checkpoint,
        config: args.source.config.as_deref(),
        image_size: args.source.image_size,
        partial: args.source.partial,
    };
    let model = load_model(&source, &device)?.model;
    device.seed(args.seed);
    let images = model.sample(args.n, args.temperature);
    let per_row = (args.n as f64).sqrt().ceil() as usize;
    save_image_grid(images, per_row, &args.out)?;
    println!(
        "{} samples at temperature {} written to {}",
        args.n,
        args.temperature,
        args.out.display()
    );
    Ok(())
}
