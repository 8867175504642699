//! The options several subcommands share, spelled one way everywhere: ours (`-L`, `-K`,
//! `-C`/`--hidden`, `--batch-size`, `--data-root`) and the reference's (`--L`, `--K`,
//! `--C`, `--batch_size`, `--data_root`, `--dataset_name`) both accepted.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use marscf::core::{CoreError, CouplingKind};
use marscf::data::MnistLayout;
use marscf::data::datasets::{CacheDir, DatasetName};
use marscf::train::{ModelSize, NEW_RUN_SIZE, Protocol};
use marscf::{ModelError, PriorKind};

/// A count of at least one (`--n`, `--steps`, batch sizes).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number `>= 0` (temperatures).
pub fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be finite and >= 0".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number `> 0` (learning rate, clipping norm, minutes).
pub fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be finite and > 0".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A weight-average decay, in `[0, 1)`.
pub fn decay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be in [0, 1)".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A coupling by its name ([`CouplingKind::name`]).
pub fn coupling(text: &str) -> Result<CouplingKind, String> {
    text.parse().map_err(|e: CoreError| e.to_string())
}

/// A prior by its name ([`PriorKind::name`]), the mAR prior at the reference's size.
pub fn prior(text: &str) -> Result<PriorKind, String> {
    text.parse().map_err(|e: ModelError| e.to_string())
}

/// `a, b or c`: the names of `kinds`, for help texts.
pub fn names<T: std::fmt::Display>(kinds: impl IntoIterator<Item = T>) -> String {
    let names: Vec<String> = kinds.into_iter().map(|k| k.to_string()).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// How MNIST digits are laid out.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    /// 3x32x32: padded to 32x32, grey repeated to three channels (the reference's).
    Reference,
    /// 1x32x32.
    Grey32,
    /// 1x28x28.
    Grey28,
}

impl From<LayoutArg> for MnistLayout {
    fn from(arg: LayoutArg) -> Self {
        match arg {
            LayoutArg::Reference => MnistLayout::Reference,
            LayoutArg::Grey32 => MnistLayout::Grey32,
            LayoutArg::Grey28 => MnistLayout::Grey28,
        }
    }
}

/// How `eval` scores a test set.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolArg {
    /// Dropout off, every image.
    Ours,
    /// As the reference evaluates: dropout on, the last partial batch dropped.
    Reference,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Self {
        match arg {
            ProtocolArg::Ours => Protocol::Ours,
            ProtocolArg::Reference => Protocol::Reference,
        }
    }
}

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset: mnist, mnist-sample (embedded, no download), cifar10, imagenet32,
    /// imagenet64. `train`: mnist-sample unless resuming; `eval`: the checkpoint's.
    #[arg(long, visible_alias = "dataset_name")]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files (`eval`: the checkpoint's if not given).
    #[arg(long, visible_alias = "data_root")]
    pub data_root: Option<PathBuf>,
    /// Download MNIST or CIFAR-10 into --data-root if missing.
    #[arg(long)]
    pub download: bool,
    /// Layout of MNIST digits (reference unless resuming or the checkpoint says otherwise).
    #[arg(long, value_enum)]
    pub mnist_layout: Option<LayoutArg>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_images: Option<usize>,
    /// Decode the dataset once into raw files in this folder and memory-map them (memory
    /// then does not grow with the dataset) [default: `<data root>/.marscf-cache` for
    /// imagenet32/64, in memory for the others].
    #[arg(long, conflicts_with = "in_memory")]
    pub cache_dir: Option<PathBuf>,
    /// Decode the whole dataset into memory at every start, even ImageNet.
    #[arg(long)]
    pub in_memory: bool,
}

impl DataArgs {
    /// Where `name` is cached, if anywhere.
    pub fn cache(&self, name: DatasetName) -> Option<CacheDir> {
        match (&self.cache_dir, self.in_memory) {
            (Some(dir), _) => Some(CacheDir::At(dir.clone())),
            (None, true) => None,
            (None, false) => matches!(name, DatasetName::Imagenet32 | DatasetName::Imagenet64)
                .then_some(CacheDir::InDataRoot),
        }
    }
}

/// Where a subcommand reads its model.
#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// A native checkpoint (`.bpk` with its `.json`) or a reference `.pt`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Configuration for a reference `.pt` (inferred from its keys otherwise).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Image side for a reference `.pt` whose configuration is inferred.
    #[arg(long, visible_alias = "image_size")]
    pub image_size: Option<usize>,
    /// Accept a reference checkpoint with missing or unused tensors.
    #[arg(long)]
    pub partial: bool,
}

/// The model's shape.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Coupling of every flow step [default: affine].
    #[arg(long, value_parser = coupling,
          help = format!("Coupling of every flow step: {} [default: affine]", names(CouplingKind::all())))]
    pub coupling: Option<CouplingKind>,
    /// Levels L.
    #[arg(short = 'L', long = "levels", visible_alias = "L",
          help = format!("Levels L [train default: {}]", NEW_RUN_SIZE.levels))]
    pub levels: Option<usize>,
    /// Flow steps per level K.
    #[arg(short = 'K', long = "steps", visible_alias = "K",
          help = format!("Flow steps per level K [train default: {}]", NEW_RUN_SIZE.steps))]
    pub steps: Option<usize>,
    /// Hidden width C of the coupling networks.
    #[arg(short = 'C', long = "hidden", visible_aliases = ["C", "channels"],
          help = format!("Hidden width C of the coupling networks [train default: {}]", NEW_RUN_SIZE.hidden))]
    pub hidden: Option<usize>,
}

impl ModelArgs {
    /// The size asked for, `defaults` where not given.
    pub fn size(&self, defaults: ModelSize) -> ModelSize {
        ModelSize {
            levels: self.levels.unwrap_or(defaults.levels),
            steps: self.steps.unwrap_or(defaults.steps),
            hidden: self.hidden.unwrap_or(defaults.hidden),
        }
    }

    /// The coupling asked for (affine if not given).
    pub fn coupling_or_affine(&self) -> CouplingKind {
        self.coupling.clone().unwrap_or_default()
    }
}
