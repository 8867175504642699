//! `marscf reconstruct`: test images through the flow and back, and how far they moved.

use clap::Args;
use marscf::data::{BatchOptions, make_batch, stream};
use marscf::select_device;

use crate::args::{CheckpointArgs, DataArgs};
use crate::commands::{Result, model_and_test_set};

/// Options of `marscf reconstruct`.
#[derive(Args, Debug)]
pub struct ReconstructArgs {
    #[command(flatten)]
    source: CheckpointArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Test images to reconstruct (the first N).
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// Images per pass.
    #[arg(long, visible_alias = "batch_size", default_value_t = 64)]
    batch_size: usize,
}

/// Runs `marscf reconstruct`: `max |decode(encode(x)) - x|` over the dequantised images.
pub fn run(args: ReconstructArgs) -> Result<()> {
    let device = select_device()?.without_autodiff();
    let (model, info, test) = model_and_test_set(&args.source, &args.data, &device)?;
    let test = test.take(args.images);
    let options = BatchOptions {
        augment: false,
        dequantize: true,
        bits: model.config.bits,
    };
    let indices: Vec<usize> = (0..test.len()).collect();
    let mut worst = 0.0f64;
    for (b, chunk) in indices.chunks(args.batch_size.max(1)).enumerate() {
        let x = make_batch(&test, chunk, options, &mut stream(0, 0, b as u64), &device);
        worst = worst.max(model.reconstruction_error(x)?);
    }
    println!(
        "{} images of {} through the flow and back: max |x' - x| = {worst:.3e}",
        test.len(),
        info.dataset
    );
    Ok(())
}
