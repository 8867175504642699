//! Draws a grid of samples from a checkpoint (native `.bpk`, or a reference `.pt` whose
//! configuration is inferred from its keys).
//!
//! ```text
//! cargo run --release --example sample -- CHECKPOINT [OUT.png] [N] [TEMPERATURE]
//! ```

use std::path::PathBuf;

use marscf::data::atomic_file::Existing;
use marscf::report::save_image_grid;
use marscf::{checkpoint, import, select_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    marscf::keep_freed_memory()?;
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: sample CHECKPOINT [OUT.png] [N] [TEMPERATURE]")?,
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| "samples.png".into()));
    let n: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(64);
    let temperature: f64 = args.next().map(|v| v.parse()).transpose()?.unwrap_or(1.0);
    let device = select_device()?;
    let model = if path.extension().is_some_and(|e| e == "pt" || e == "pth") {
        import::load_reference(&path, None, None, false, &device)?.0
    } else {
        checkpoint::load(&path, &device)?
    };
    device.seed(0);
    let images = model.sample(n, temperature)?;
    save_image_grid(
        images,
        (n as f64).sqrt().ceil() as usize,
        None,
        &out,
        Existing::Replace,
    )?;
    println!(
        "{n} samples at temperature {temperature} written to {}",
        out.display()
    );
    Ok(())
}
