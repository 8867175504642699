//! `marscf eval`: test bits/dim of a checkpoint, on the data it was trained on unless told
//! otherwise, and never on images of another shape.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use marscf::select_device;
use marscf::train::{EvalOptions, Evaluation, evaluate_detailed, write_per_image_csv};

use crate::args::{CheckpointArgs, DataArgs, ProtocolArg, at_least_one};
use crate::commands::{Result, model_and_test_set, output_policy};

/// Options of `marscf eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    source: CheckpointArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Batch size.
    #[arg(long, visible_alias = "batch_size", default_value_t = 64, value_parser = at_least_one)]
    batch_size: usize,
    /// Seed of the dequantisation noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dequantisation draws per test image: reports the mean of their bounds and their
    /// importance-weighted bound, each a mean over images with its standard error.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    draws: u64,
    /// Write each test image's index, label, bits/dim (mean of the draws' bounds) and
    /// importance-weighted bits/dim to this CSV file.
    #[arg(long)]
    per_image: Option<PathBuf>,
    /// Replace an existing --per-image file.
    #[arg(long, requires = "per_image")]
    overwrite: bool,
    /// How to score: ours (dropout off, every image) or the reference's (dropout on as its
    /// training leaves it, the last partial batch dropped), for numbers that compare with
    /// the paper's.
    #[arg(long, value_enum, default_value = "ours")]
    protocol: ProtocolArg,
    /// Print one JSON line instead of text (with the per-level breakdown).
    #[arg(long)]
    json: bool,
}

/// Runs `marscf eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let device = select_device()?;
    let (model, info, test) = model_and_test_set(&args.source, &args.data, &device)?;
    let csv = args
        .per_image
        .as_deref()
        .map(|csv| {
            Ok::<_, Box<dyn std::error::Error>>((
                csv,
                output_policy(csv, "--per-image file", args.overwrite)?,
            ))
        })
        .transpose()?;
    let started = Instant::now();
    let options = EvalOptions {
        batch_size: args.batch_size,
        seed: args.seed,
        draws: args.draws as usize,
        protocol: args.protocol.into(),
    };
    let evaluation = evaluate_detailed(&model, &test, &options, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some((csv, existing)) = csv {
        write_per_image_csv(&evaluation, csv, existing)?;
    }
    if args.json {
        let line = serde_json::json!({
            "bits_per_dim": evaluation.bits_per_dim,
            "standard_error": evaluation.standard_error,
            "iw_bits_per_dim": evaluation.iw_bits_per_dim,
            "iw_standard_error": evaluation.iw_standard_error,
            "draws": evaluation.draws,
            "bits": model.config.bits,
            "breakdown": evaluation.breakdown,
            "per_image": args.per_image.as_ref().map(|p| p.display().to_string()),
            "dataset": info.dataset,
            "split": "test",
            "protocol": options.protocol,
            "data_root": info.root,
            "images": evaluation.images.len(),
            "seconds": seconds,
            "checkpoint": args.source.checkpoint.display().to_string(),
        });
        println!("{line}");
    } else {
        print_report(&evaluation, &info.dataset, seconds);
        println!("  protocol: {:?}", options.protocol);
    }
    Ok(())
}

/// The evaluation as text: both scores with their standard errors, then each level's terms.
fn print_report(evaluation: &Evaluation, dataset: &str, seconds: f64) {
    let error = |se: Option<f64>| se.map(|se| format!(" ± {se:.4}")).unwrap_or_default();
    println!(
        "{dataset} test split: {:.4}{} bits/dim (mean of the draws' bounds) over {} images, {} draw(s) each ({seconds:.1} s)",
        evaluation.bits_per_dim,
        error(evaluation.standard_error),
        evaluation.images.len(),
        evaluation.draws
    );
    println!(
        "  importance-weighted bound over the {} draw(s): {:.4}{} bits/dim",
        evaluation.draws,
        evaluation.iw_bits_per_dim,
        error(evaluation.iw_standard_error)
    );
    println!("  the mean of the bounds, term by term:");
    for level in &evaluation.breakdown.levels {
        println!(
            "    level {}: log-det {:+.4}, prior {:+.4} bits/dim",
            level.level, level.log_det, level.prior
        );
    }
    println!(
        "    dequantisation constant {:+.4} bits/dim",
        evaluation.breakdown.dequantization
    );
}
