//! `marscf sample`: a PNG grid of samples from a checkpoint, or samples at scale for FID
//! tools: one PNG per image in a folder and/or one `.npz`, resumable.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use marscf::data::atomic_file::Existing;
use marscf::report::save_image_grid;
use marscf::samples::{
    PixelLayout, SampleProgress, SampleSettings, remove_sample_folder, write_sample_folder,
    write_samples_npz,
};
use marscf::select_device;

use crate::args::{CheckpointArgs, at_least_one, non_negative};
use crate::commands::{ModelSource, Result, load_model, output_policy};
use crate::progress::image_bar;

/// Samples per batch unless `--batch-size` says otherwise.
const DEFAULT_BATCH_SIZE: usize = 100;

/// Options of `marscf sample`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(true).args(["out", "out_dir", "npz"]))]
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
    /// A PNG grid of the samples.
    #[arg(long, conflicts_with_all = ["out_dir", "npz"])]
    out: Option<PathBuf>,
    /// A folder to hold one PNG per sample (000000.png, ...), as pytorch-fid and clean-fid
    /// read; a run stopped midway goes on where it stopped when started again with the same
    /// options (the images there are kept).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// An .npz file to hold every sample as `arr_0`, uint8 N x H x W x C (the
    /// guided-diffusion evaluator's layout); without --out-dir, the images wait in a hidden
    /// folder beside it, removed once the file is written.
    #[arg(long)]
    npz: Option<PathBuf>,
    /// Samples per batch (image i is drawn in batch i / this: keep it when resuming).
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_parser = at_least_one)]
    batch_size: usize,
    /// Write MNIST samples as 28x28 grey digits (the padding cropped, the channels averaged)
    /// instead of as the model sees them.
    #[arg(long)]
    grey28: bool,
    /// Replace an existing --out or --npz file (never the images of --out-dir).
    #[arg(long)]
    overwrite: bool,
}

/// Runs `marscf sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    let mut existing = Existing::Keep;
    for (file, option) in [(&args.out, "--out file"), (&args.npz, "--npz file")] {
        if let Some(file) = file {
            existing = output_policy(file, option, args.overwrite)?;
        }
    }
    if let (Some(folder), Some(npz)) = (&args.out_dir, &args.npz) {
        let parent = npz.parent().filter(|p| !p.as_os_str().is_empty());
        if same_folder(parent.unwrap_or(Path::new(".")), folder) {
            return Err(format!(
                "--npz {} is inside --out-dir {}, which holds only the images: put the file \
                 beside the folder",
                npz.display(),
                folder.display()
            )
            .into());
        }
    }
    let device = select_device()?;
    let source = ModelSource {
        path: &args.source.checkpoint,
        config: args.source.config.as_deref(),
        image_size: args.source.image_size,
        partial: args.source.partial,
    };
    // Before the load, so that the digest is never of a newer checkpoint than the model.
    let digest = args.out.is_none().then(|| source.digest()).transpose()?;
    let model = load_model(&source, &device)?.model;
    if let Some(out) = &args.out {
        if args.grey28 || args.batch_size != DEFAULT_BATCH_SIZE {
            eprintln!(
                "--grey28 and --batch-size apply to --out-dir and --npz; the grid shows the \
                 model's images, drawn in one batch"
            );
        }
        device.seed(args.seed);
        let images = model.sample(args.n, args.temperature)?;
        let per_row = (args.n as f64).sqrt().ceil() as usize;
        save_image_grid(images, per_row, None, out, existing)?;
        println!(
            "{} samples at temperature {} written to {}",
            args.n,
            args.temperature,
            out.display()
        );
        return Ok(());
    }
    let settings = sample_settings(
        digest.expect("taken without --out"),
        args.temperature,
        args.seed,
        args.batch_size,
        args.grey28,
    );
    let folder = match (&args.out_dir, &args.npz) {
        (Some(folder), _) => folder.clone(),
        (None, Some(npz)) => waiting_folder(npz),
        (None, None) => unreachable!("clap requires --out, --out-dir or --npz"),
    };
    let started = Instant::now();
    let bar = image_bar(args.n);
    let done = write_sample_folder(
        &model,
        &settings,
        args.n,
        &folder,
        &device,
        &mut |p: SampleProgress| {
            if p.written == 0 {
                bar.set_message(format!("({} kept from an earlier run)", p.kept));
            }
            bar.set_position((p.kept + p.written) as u64);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "{} samples at temperature {}, seed {} in {} ({} kept, {} written, {:.1} s)",
        done.total,
        args.temperature,
        args.seed,
        folder.display(),
        done.kept,
        done.written,
        started.elapsed().as_secs_f64()
    );
    if let Some(npz) = &args.npz {
        write_samples_npz(&folder, args.n, npz, existing)?;
        println!("{} written ({} images as arr_0)", npz.display(), args.n);
        if args.out_dir.is_none() {
            remove_sample_folder(&folder)?;
        }
    }
    Ok(())
}

/// Whether `a` and `b` name one folder (resolving links where both exist).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// The folder where an `--npz` run without `--out-dir` keeps its images until the file is
/// written: `.NAME.samples` beside it.
fn waiting_folder(npz: &Path) -> PathBuf {
    let name = npz.file_name().unwrap_or_default().to_string_lossy();
    npz.with_file_name(format!(".{name}.samples"))
}

/// The settings of a sample folder (or of a checkpoint's samples in `marscf fid`) from the
/// options: the model's digest, `--temperature`, `--seed`, the sampling batch size and
/// `--grey28`.
pub fn sample_settings(
    model: String,
    temperature: f64,
    seed: u64,
    batch_size: usize,
    grey28: bool,
) -> SampleSettings {
    SampleSettings {
        model,
        temperature,
        seed,
        batch_size,
        layout: if grey28 {
            PixelLayout::Grey28
        } else {
            PixelLayout::AsModel
        },
    }
}
