//! `marscf import`: a reference PyTorch checkpoint converted to a native one.

use std::path::PathBuf;

use clap::Args;
use marscf::checkpoint;
use marscf::select_device;

use crate::commands::{Loaded, ModelSource, Result, load_model};

/// Options of `marscf import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The reference checkpoint.
    #[arg(long)]
    pytorch: PathBuf,
    /// Its configuration (JSON of `MarScfConfig`); inferred from the keys otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Image side, when the configuration is inferred [default: from the file name's
    /// dataset, else 64 for L = 4 and 32 otherwise, as the reference trains them].
    #[arg(long, visible_alias = "image_size")]
    image_size: Option<usize>,
    /// Accept missing or unused tensors.
    #[arg(long)]
    partial: bool,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `marscf import`.
pub fn run(args: ImportArgs) -> Result<()> {
    let device = select_device()?;
    let source = ModelSource {
        path: &args.pytorch,
        config: args.config.as_deref(),
        image_size: args.image_size,
        partial: args.partial,
    };
    let Loaded {
        model,
        origin,
        report,
    } = load_model(&source, &device)?;
    let stem = args
        .pytorch
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("imported");
    let target = args.out.join(stem);
    let (weights, config) = checkpoint::checkpoint_files(&target);
    if let Some(existing) = [&weights, &config].into_iter().find(|f| f.exists()) {
        return Err(format!(
            "{} exists: remove it or choose another --out",
            existing.display()
        )
        .into());
    }
    checkpoint::save(&model, &origin, &target)?;
    if let Some(report) = report {
        let prefix = match report.prefix.as_str() {
            "" => String::new(),
            prefix => format!(" (prefix `{prefix}` stripped)"),
        };
        println!(
            "{} tensors imported{prefix}, {} reference-only tensors dropped",
            report.loaded,
            report.ignored.len()
        );
    }
    println!(
        "imported {} as L={} K={} C={} for {:?} images; written to {}.bpk/.json",
        args.pytorch.display(),
        model.config.flow.levels,
        model.config.flow.steps,
        model.config.flow.hidden,
        model.config.flow.image,
        target.display()
    );
    Ok(())
}
