//! The subcommands, one module each, and what several of them share: reading a dataset
//! as a checkpoint or the command line describes it, and reading a model.

pub mod bench;
pub mod eval;
pub mod fid;
pub mod import;
pub mod interpolate;
pub mod reconstruct;
pub mod sample;
pub mod train;

use std::error::Error;
use std::path::Path;

use burn::tensor::Device;
use marscf::checkpoint::{self, Origin};
use marscf::data::atomic_file::Existing;
use marscf::data::datasets::{DatasetName, LoadOptions, load_with};
use marscf::data::digest::sha256_files;
use marscf::data::{ImageSet, MnistLayout};
use marscf::import::{ImportReport, load_reference, reference_image_side};
use marscf::{DataInfo, MarScf};

use crate::args::{CheckpointArgs, DataArgs};

/// What a subcommand returns: any error, printed with its causes by `main`.
pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// How a subcommand writes its output file `path` (option `option`): replaced with
/// `overwrite`, else refused here if it exists, before any work (and again by the write
/// itself, should it appear meanwhile).
pub fn output_policy(path: &Path, option: &str, overwrite: bool) -> Result<Existing> {
    if overwrite {
        return Ok(Existing::Replace);
    }
    if path.exists() {
        return Err(format!(
            "{} exists: give --overwrite to replace it, or another {option}",
            path.display()
        )
        .into());
    }
    Ok(Existing::Keep)
}

/// The training and test sets `info` describes (the test set cut to its first
/// `info.test_images`), downloaded first if `args` ask, decoded into memory or through the
/// cache `args` name.
pub fn load_data(info: &DataInfo, args: &DataArgs) -> Result<(ImageSet, ImageSet)> {
    let name: DatasetName = info.dataset.parse()?;
    let root = info.root.as_deref();
    if args.download {
        fetch(name, root)?;
    }
    let options = LoadOptions {
        layout: info.layout(),
        cache: args.cache(name),
        verify_cache: false,
    };
    let (train, test) = load_with(name, root, &options)?;
    let test = match info.test_images {
        Some(n) => test.take(n),
        None => test,
    };
    Ok((train, test))
}

#[cfg(feature = "download")]
fn fetch(name: DatasetName, root: Option<&Path>) -> Result<()> {
    use marscf::data::download::{
        CIFAR10_BASE_URL, MNIST_BASE_URL, download_cifar10, download_mnist,
    };
    let root = root.ok_or("--download needs --data-root (where to put the files)")?;
    match name {
        DatasetName::Mnist => download_mnist(MNIST_BASE_URL, root)?,
        DatasetName::Cifar10 => download_cifar10(CIFAR10_BASE_URL, root)?,
        other => return Err(format!("--download supports mnist and cifar10, not {other}").into()),
    };
    Ok(())
}

#[cfg(not(feature = "download"))]
fn fetch(_: DatasetName, _: Option<&Path>) -> Result<()> {
    Err("this build has no download support: rebuild with the `download` feature".into())
}

/// The model `checkpoint` names and the test set it is scored on: `--dataset` if given,
/// else the data the checkpoint records (its folder unless `--data-root`), else an error;
/// a checkpoint is never scored on data it does not name, nor on images of another shape.
pub fn model_and_test_set(
    checkpoint: &CheckpointArgs,
    data: &DataArgs,
    device: &Device,
) -> Result<(MarScf, DataInfo, ImageSet)> {
    let source = ModelSource {
        path: &checkpoint.checkpoint,
        config: checkpoint.config.as_deref(),
        image_size: checkpoint.image_size,
        partial: checkpoint.partial,
    };
    let Loaded { model, origin, .. } = load_model(&source, device)?;
    let recorded = origin.data.as_ref();
    let name: DatasetName = match (&data.dataset, recorded) {
        (Some(name), _) => name.parse()?,
        (None, Some(recorded)) => recorded.dataset.parse()?,
        (None, None) => {
            return Err(format!(
                "{} does not record the data it was trained on: pass --dataset (and --data-root)",
                checkpoint.checkpoint.display()
            )
            .into());
        }
    };
    let same = recorded.filter(|r| r.dataset == name.name());
    let layout = data
        .mnist_layout
        .map(Into::into)
        .or(same.map(DataInfo::layout))
        .unwrap_or_default();
    let root = data
        .data_root
        .clone()
        .or_else(|| same.and_then(|r| r.root.clone()));
    let info = DataInfo {
        test_images: data.test_images,
        ..DataInfo::new(name, layout, root)
    }
    .with_bits(model.config.bits);
    let (_, test) = load_data(&info, data)?;
    if test.shape != model.config.flow.image {
        return Err(format!(
            "{} images are {:?}, the model expects {:?}: pass the --dataset (and --mnist-layout) it was trained on",
            info.dataset, test.shape, model.config.flow.image
        )
        .into());
    }
    Ok((model, info, test))
}

/// How to read a model from a file.
pub struct ModelSource<'a> {
    /// A native checkpoint (`.bpk` with its `.json`) or a reference `.pt`/`.pth`.
    pub path: &'a Path,
    /// For a reference checkpoint: a configuration file (inferred from the keys if `None`).
    pub config: Option<&'a Path>,
    /// For a reference checkpoint whose configuration is inferred: the image side.
    pub image_size: Option<usize>,
    /// Accept a reference checkpoint with missing or unused tensors.
    pub partial: bool,
}

impl ModelSource<'_> {
    /// Whether the path is a reference `.pt`/`.pth` checkpoint.
    fn is_reference(&self) -> bool {
        matches!(
            self.path.extension().and_then(|e| e.to_str()),
            Some("pt" | "pth")
        )
    }

    /// What identifies the model [`load_model`] reads, across copies and renames: the
    /// SHA-256 of the files it is read from (a native checkpoint's `.bpk` and `.json`; a
    /// reference checkpoint and its configuration file), and the options that shape it.
    pub fn digest(&self) -> Result<String> {
        if !self.is_reference() {
            let (weights, description) = checkpoint::checkpoint_files(self.path);
            return Ok(format!(
                "sha256 {}",
                sha256_files(&[&weights, &description])?
            ));
        }
        let mut files = vec![self.path];
        files.extend(self.config);
        Ok(format!(
            "sha256 {} (image size {:?}, partial {})",
            sha256_files(&files)?,
            self.image_size,
            self.partial
        ))
    }
}

/// A model read by [`load_model`].
pub struct Loaded {
    /// The model.
    pub model: MarScf,
    /// Its data and run, as far as known.
    pub origin: Origin,
    /// For a reference checkpoint: what the import did.
    pub report: Option<ImportReport>,
}

/// A native checkpoint with its origin, or a reference `.pt` with the origin its file
/// name tells (the reference names them `marscf_<dataset>_<coupling>_<K>_<C>.pt`). Every
/// assumption made is printed.
pub fn load_model(source: &ModelSource, device: &Device) -> Result<Loaded> {
    if !source.is_reference() {
        return Ok(Loaded {
            origin: checkpoint::load_info(source.path)?.origin,
            model: checkpoint::load(source.path, device)?,
            report: None,
        });
    }
    let named = dataset_in_reference_name(source.path);
    let config = source.config.map(checkpoint::load_config).transpose()?;
    let image_size = source
        .image_size
        .or_else(|| named.map(|name| name.shape(MnistLayout::Reference)[1]));
    let (model, report) = load_reference(
        source.path,
        config.as_ref(),
        image_size,
        source.partial,
        device,
    )?;
    let flow = &report.config.flow;
    if report.config_inferred {
        let assumed = if report.image_size_assumed {
            format!(
                " ({}x{} assumed for L = {}: give --image-size otherwise)",
                reference_image_side(flow.levels),
                reference_image_side(flow.levels),
                flow.levels
            )
        } else {
            String::new()
        };
        eprintln!(
            "configuration inferred from the checkpoint's keys: L={} K={} C={} ({:?}), images {:?}{assumed}",
            flow.levels, flow.steps, flow.hidden, flow.coupling, flow.image
        );
    }
    for problem in &report.problems {
        eprintln!("warning (--partial): {problem}");
    }
    let data = named.map(|name| {
        eprintln!("dataset {name} assumed from the file name");
        DataInfo::new(name, MnistLayout::Reference, None)
    });
    Ok(Loaded {
        model,
        origin: Origin { data, run: None },
        report: Some(report),
    })
}

/// The dataset in a reference checkpoint's name, `marscf_<dataset>_<coupling>_...`.
fn dataset_in_reference_name(path: &Path) -> Option<DatasetName> {
    let stem = path.file_stem()?.to_str()?.strip_prefix("marscf_")?;
    let end = ["_affine", "_mixlogcdf"]
        .iter()
        .filter_map(|c| stem.find(c))
        .min()?;
    stem[..end].parse().ok()
}
