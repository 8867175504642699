//! `marscf eval`: test bits/dim of a checkpoint, on the data it was trained on unless told
//! otherwise, and never on images of another shape.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use marscf::data::datasets::DatasetName;
use marscf::train::{EvalOptions, evaluate_detailed, write_per_image_csv};
use marscf::{DataInfo, select_device};

use crate::args::DataArgs;
use crate::commands::{Loaded, ModelSource, Result, load_data, load_model};

/// Options of `marscf eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A native checkpoint (`.bpk` with its `.json`) or a reference `.pt`.
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Configuration for a reference `.pt` (inferred from its keys otherwise).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Image side for a reference `.pt` whose configuration is inferred.
    #[arg(long, visible_alias = "image_size")]
    image_size: Option<usize>,
    /// Accept a reference checkpoint with missing or unused tensors.
    #[arg(long)]
    partial: bool,
    /// Batch size.
    #[arg(long, visible_alias = "batch_size", default_value_t = 64)]
    batch_size: usize,
    /// Seed of the dequantisation noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dequantisation draws per test image: the score is the mean over images of their
    /// mean over draws, reported with its standard error over images.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    draws: u64,
    /// Write each test image's index, label and bits/dim to this CSV file.
    #[arg(long)]
    per_image: Option<PathBuf>,
    /// Replace an existing --per-image file.
    #[arg(long, requires = "per_image")]
    overwrite: bool,
    /// Print one JSON line instead of text (with the per-level breakdown).
    #[arg(long)]
    json: bool,
}

/// Runs `marscf eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let device = select_device()?;
    let source = ModelSource {
        path: &args.checkpoint,
        config: args.config.as_deref(),
        image_size: args.image_size,
        partial: args.partial,
    };
    let Loaded { model, origin, .. } = load_model(&source, &device)?;
    let info = data_to_score(&args, origin.data.as_ref())?.with_bits(model.config.bits);
    let (_, test) = load_data(&info, &args.data)?;
    if test.shape != model.config.flow.image {
        return Err(format!(
            "{} images are {:?}, the model expects {:?}: pass the --dataset (and --mnist-layout) it was trained on",
            info.dataset, test.shape, model.config.flow.image
        )
        .into());
    }
    if let Some(csv) = args
        .per_image
        .as_ref()
        .filter(|p| !args.overwrite && p.exists())
    {
        return Err(format!(
            "{} exists: give --overwrite to replace it, or another --per-image file",
            csv.display()
        )
        .into());
    }
    let started = Instant::now();
    let options = EvalOptions {
        batch_size: args.batch_size,
        seed: args.seed,
        draws: args.draws as usize,
    };
    let evaluation = evaluate_detailed(&model, &test, &options, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(csv) = &args.per_image {
        write_per_image_csv(&evaluation, csv, args.overwrite)?;
    }
    let bits_per_dim = evaluation.bits_per_dim;
    if args.json {
        let line = serde_json::json!({
            "bits_per_dim": bits_per_dim,
            "standard_error": evaluation.standard_error,
            "draws": evaluation.draws,
            "bits": model.config.bits,
            "breakdown": evaluation.breakdown,
            "per_image": args.per_image.as_ref().map(|p| p.display().to_string()),
            "dataset": info.dataset,
            "split": "test",
            "data_root": info.root,
            "images": test.len(),
            "seconds": seconds,
            "checkpoint": args.checkpoint.display().to_string(),
        });
        println!("{line}");
    } else {
        let error = evaluation
            .standard_error
            .map(|se| format!(" ± {se:.4}"))
            .unwrap_or_default();
        println!(
            "{} test split: {bits_per_dim:.4}{error} bits/dim over {} images, {} draw(s) each ({seconds:.1} s)",
            info.dataset,
            test.len(),
            evaluation.draws
        );
        for level in &evaluation.breakdown.levels {
            println!(
                "  level {}: log-det {:+.4}, prior {:+.4} bits/dim",
                level.level, level.log_det, level.prior
            );
        }
        println!(
            "  dequantisation constant {:+.4} bits/dim",
            evaluation.breakdown.dequantization
        );
    }
    Ok(())
}

/// The data to score: `--dataset` if given, else the one the checkpoint records (its
/// folder unless `--data-root`), else an error: a checkpoint is never scored on data it
/// does not name.
fn data_to_score(args: &EvalArgs, recorded: Option<&DataInfo>) -> Result<DataInfo> {
    let data = &args.data;
    let name: DatasetName = match (&data.dataset, recorded) {
        (Some(name), _) => name.parse()?,
        (None, Some(recorded)) => recorded.dataset.parse()?,
        (None, None) => {
            return Err(format!(
                "{} does not record the data it was trained on: pass --dataset (and --data-root)",
                args.checkpoint.display()
            )
            .into());
        }
    };
    let same = recorded.filter(|r| r.dataset == name.as_str());
    let layout = data
        .mnist_layout
        .map(Into::into)
        .or(same.map(DataInfo::layout))
        .unwrap_or_default();
    let root = data
        .data_root
        .clone()
        .or_else(|| same.and_then(|r| r.root.clone()));
    Ok(DataInfo {
        test_images: data.test_images,
        ..DataInfo::new(name, layout, root)
    })
}
