//! `marscf interpolate`: a PNG strip of the images between two test images' latents.

use std::path::PathBuf;

use clap::Args;
use marscf::data::{BatchOptions, make_batch, stream};
use marscf::report::save_image_grid;
use marscf::select_device;

use crate::args::{CheckpointArgs, DataArgs, at_least_one};
use crate::commands::{Result, model_and_test_set, output_policy};

/// Options of `marscf interpolate`.
#[derive(Args, Debug)]
pub struct InterpolateArgs {
    #[command(flatten)]
    source: CheckpointArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Index of the first test image.
    #[arg(long, default_value_t = 0)]
    from: usize,
    /// Index of the second test image.
    #[arg(long, default_value_t = 1)]
    to: usize,
    /// Steps between them (the strip has steps + 1 images).
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    steps: usize,
    /// The PNG strip to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    overwrite: bool,
}

/// Runs `marscf interpolate`.
pub fn run(args: InterpolateArgs) -> Result<()> {
    let existing = output_policy(&args.out, "--out file", args.overwrite)?;
    let device = select_device()?.without_autodiff();
    let (model, info, test) = model_and_test_set(&args.source, &args.data, &device)?;
    for index in [args.from, args.to] {
        if index >= test.len() {
            return Err(
                format!("no test image {index}: {} has {}", info.dataset, test.len()).into(),
            );
        }
    }
    let options = BatchOptions {
        augment: false,
        dequantize: true,
        bits: model.config.bits,
    };
    let image = |index: usize| {
        make_batch(
            &test,
            &[index],
            options,
            &mut stream(0, 0, index as u64),
            &device,
        )
    };
    let strip = model.interpolate(image(args.from), image(args.to), args.steps)?;
    save_image_grid(strip, args.steps + 1, None, &args.out, existing)?;
    println!(
        "{} images from test image {} to {} of {} written to {}",
        args.steps + 1,
        args.from,
        args.to,
        info.dataset,
        args.out.display()
    );
    Ok(())
}
