//! `marscf fid A B`: the Fréchet Inception distance between two image sets, as pytorch-fid
//! computes it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use marscf::data::atomic_file::Existing;
use marscf::fid::{
    FidInception, FidInput, FidStatistics, ImageSource, StatisticsCache, content_identity,
    folder_images, frechet_distance, model_images, npz_images, statistics,
};
use marscf::select_device;

use crate::args::{at_least_one, non_negative};
use crate::commands::sample::sample_settings;
use crate::commands::{ModelSource, Result, load_model, output_policy};
use crate::progress::image_bar;

/// Options of `marscf fid`.
#[derive(Args, Debug)]
pub struct FidArgs {
    /// The first set: a folder of PNG images, an .npz of images (`arr_0`, N x H x W x C
    /// uint8) or of statistics (`mu`, `sigma`, pytorch-fid's), or a checkpoint to sample
    /// (native, or a reference .pt whose configuration its keys and name give).
    a: PathBuf,
    /// The second set, the same kinds.
    b: PathBuf,
    /// pytorch-fid's FID Inception weights, `pt_inception-2015-12-05-6726825d.pth`
    /// (docs/training.md says where they are published; a file with another SHA-256 is
    /// refused); needed unless both sets are statistics.
    #[arg(long)]
    inception: Option<PathBuf>,
    /// Without --inception: download pytorch-fid's weights (95.6 MB, checked by their
    /// SHA-256) into $XDG_CACHE_HOME/marscf, else ~/.cache/marscf, once.
    #[arg(long, conflicts_with = "inception")]
    download: bool,
    /// Images per batch through the network.
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    batch_size: usize,
    /// Samples drawn from a checkpoint.
    #[arg(long, default_value_t = 50_000, value_parser = at_least_one)]
    n: usize,
    /// Temperature of a checkpoint's samples.
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    temperature: f64,
    /// Seed of a checkpoint's samples (the images are those `marscf sample` draws with the
    /// same seed, temperature and --sample-batch-size).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples per batch drawn from a checkpoint.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    sample_batch_size: usize,
    /// Draw a checkpoint's MNIST samples as 28x28 grey digits (as `sample --grey28`).
    #[arg(long)]
    grey28: bool,
    /// Where statistics are kept between runs, one pytorch-fid .npz per set
    /// [default: $XDG_CACHE_HOME/marscf/fid, else ~/.cache/marscf/fid].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Compute every set's statistics afresh, keeping none.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Also write the second set's statistics to this pytorch-fid .npz file.
    #[arg(long)]
    save_stats: Option<PathBuf>,
    /// Replace an existing --save-stats file.
    #[arg(long)]
    overwrite: bool,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `marscf fid`.
pub fn run(args: FidArgs) -> Result<()> {
    let existing = match &args.save_stats {
        Some(file) => output_policy(file, "--save-stats file", args.overwrite)?,
        None => Existing::Keep,
    };
    let started = Instant::now();
    let device = select_device()?;
    let cache = (!args.no_cache).then(|| StatisticsCache {
        folder: args
            .cache
            .clone()
            .unwrap_or_else(|| cache_root().join("fid")),
    });
    let mut network = None;
    let mut sets = Vec::new();
    for input in [&args.a, &args.b] {
        sets.push(set_statistics(
            input,
            &args,
            &mut network,
            cache.as_ref(),
            &device,
        )?);
    }
    let distance = frechet_distance(&sets[0].0, &sets[1].0)?;
    if let Some(file) = &args.save_stats {
        sets[1].0.write_npz(file, existing)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let line = serde_json::json!({
            "fid": distance,
            "a": args.a.display().to_string(),
            "b": args.b.display().to_string(),
            "statistics": sets.iter().map(|s| s.1.as_ref().map(|p| p.display().to_string())).collect::<Vec<_>>(),
            "seconds": seconds,
        });
        println!("{line}");
    } else {
        for ((_, kept), input) in sets.iter().zip([&args.a, &args.b]) {
            if let Some(kept) = kept {
                eprintln!("{}: statistics in {}", input.display(), kept.display());
            }
        }
        println!("FID {distance:.4} ({seconds:.1} s)");
    }
    Ok(())
}

/// marscf's cache folder: `$XDG_CACHE_HOME/marscf`, else `~/.cache/marscf`. Statistics go
/// in its `fid/`, downloaded weights in it.
fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("marscf")
}

/// pytorch-fid's published weights in [`cache_root`], downloaded if not there.
#[cfg(feature = "download")]
fn download_weights() -> Result<PathBuf> {
    let root = cache_root();
    eprintln!(
        "the FID Inception weights: {} ({:.1} MB) into {}",
        marscf::fid::INCEPTION_FILE,
        marscf::fid::INCEPTION_SIZE as f64 / 1e6,
        root.display()
    );
    Ok(marscf::fid::download_inception(
        marscf::fid::INCEPTION_BASE_URL,
        &root,
    )?)
}

#[cfg(not(feature = "download"))]
fn download_weights() -> Result<PathBuf> {
    Err("this build has no download support: rebuild with the `download` feature".into())
}

/// The FID Inception network of `--inception` or `--download`; `input` is the set that
/// needs it, named in the error when neither is given.
fn inception(args: &FidArgs, input: &Path, device: &burn::tensor::Device) -> Result<FidInception> {
    let weights = match (&args.inception, args.download) {
        (Some(file), _) => file.clone(),
        (None, true) => download_weights()?,
        (None, false) => {
            return Err(format!(
                "{}: its features need the FID Inception weights: give --inception FILE, or \
                 --download",
                input.display()
            )
            .into());
        }
    };
    Ok(FidInception::from_pth(&weights, device)?)
}

/// The statistics of one input, and the file they are read from or kept in (none without a
/// cache): a statistics file as it is; images and models through the network, loaded into
/// `network` the first time one needs it. The network is always pytorch-fid's
/// ([`FidInception::from_pth`] checks), so a set's cache entry depends on the set alone.
fn set_statistics(
    input: &Path,
    args: &FidArgs,
    network: &mut Option<FidInception>,
    cache: Option<&StatisticsCache>,
    device: &burn::tensor::Device,
) -> Result<(FidStatistics, Option<PathBuf>)> {
    let run = |net: &FidInception, source: ImageSource| {
        let bar = image_bar(source.len);
        bar.set_message(source.name.display().to_string());
        let stats = statistics(net, source, device, &mut |done| {
            bar.set_position(done as u64)
        });
        bar.finish_and_clear();
        stats
    };
    type Compute<'a> = Box<dyn FnOnce(&FidInception) -> Result<FidStatistics> + 'a>;
    let (identity, compute): (_, Compute) = match FidInput::of(input)? {
        FidInput::Statistics => {
            return Ok((FidStatistics::read_npz(input)?, Some(input.to_path_buf())));
        }
        FidInput::Folder => (
            cache.map(|_| content_identity(input)).transpose()?,
            Box::new(|net| Ok(run(net, folder_images(input, args.batch_size)?)?)),
        ),
        FidInput::Images => (
            cache.map(|_| content_identity(input)).transpose()?,
            Box::new(|net| Ok(run(net, npz_images(input, args.batch_size)?)?)),
        ),
        FidInput::Model => {
            let source = ModelSource {
                path: input,
                config: None,
                image_size: None,
                partial: false,
            };
            // The digest before the load: never of a newer checkpoint than the model.
            let digest = source.digest()?;
            let model = load_model(&source, device)?.model;
            let settings = sample_settings(
                digest,
                args.temperature,
                args.seed,
                args.sample_batch_size,
                args.grey28,
            );
            let identity = format!("{settings:?} n={}", args.n);
            let compute = move |net: &FidInception| -> Result<FidStatistics> {
                Ok(run(
                    net,
                    model_images(&model, &settings, args.n, input, device)?,
                )?)
            };
            (Some(identity), Box::new(compute))
        }
    };
    let net = match network {
        Some(net) => net,
        None => network.insert(inception(args, input, device)?),
    };
    let compute = || compute(net);
    let (Some(cache), Some(identity)) = (cache, identity) else {
        return Ok((compute()?, None));
    };
    let label = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stats, kept) = cache.get_or_compute(&label, &identity, compute)?;
    Ok((stats, Some(kept)))
}
