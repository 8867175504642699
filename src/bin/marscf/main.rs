//! `marscf`: train, evaluate and sample mAR-SCF models, import the reference's checkpoints.

mod commands;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// mAR-SCF normalizing flows with multi-scale autoregressive priors.
#[derive(Parser, Debug)]
#[command(name = "marscf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (resumable), evaluating test bits/dim as it goes.
    Train(TrainArgs),
    /// Test bits/dim of a native checkpoint or of a reference `.pt`.
    Eval(EvalArgs),
    /// Draw a grid of samples from a checkpoint.
    Sample(SampleArgs),
    /// Convert a reference PyTorch checkpoint to a native one.
    Import(ImportArgs),
    /// Time training, evaluation, sampling and one coupling; one JSON line per case.
    Bench(BenchArgs),
}

/// Which coupling every flow step uses.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CouplingArg {
    Affine,
    Mixlogcdf,
}

/// How MNIST digits are laid out.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LayoutArg {
    /// 3x32x32: padded to 32x32, grey repeated to three channels (the reference's).
    Reference,
    /// 1x32x32.
    Grey32,
    /// 1x28x28.
    Grey28,
}

/// The prior of the latents.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PriorArg {
    /// The multi-scale autoregressive ConvLSTM prior.
    Mar,
    /// Standard normals (a Glow-style baseline).
    StandardNormal,
}

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
struct DataArgs {
    /// Dataset: mnist, mnist-sample (embedded, no download), cifar10, imagenet32, imagenet64.
    #[arg(long, visible_alias = "dataset_name", default_value = "mnist-sample")]
    dataset: String,
    /// Folder holding the dataset's files.
    #[arg(long, visible_alias = "data_root")]
    data_root: Option<PathBuf>,
    /// Download MNIST or CIFAR-10 into --data-root if missing.
    #[arg(long)]
    download: bool,
    /// Layout of MNIST digits.
    #[arg(long, value_enum, default_value = "reference")]
    mnist_layout: LayoutArg,
    /// Use only the first N test images.
    #[arg(long)]
    test_images: Option<usize>,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Coupling of every flow step.
    #[arg(long, value_enum, default_value = "affine")]
    coupling: CouplingArg,
    /// Images per optimizer step.
    #[arg(long, visible_alias = "batch_size", default_value_t = 32)]
    batch_size: usize,
    /// Levels L.
    #[arg(short = 'L', long = "levels", default_value_t = 3)]
    levels: usize,
    /// Flow steps per level K.
    #[arg(short = 'K', long = "steps", default_value_t = 4)]
    steps: usize,
    /// Hidden width C of the coupling networks.
    #[arg(short = 'C', long = "channels", default_value_t = 64)]
    channels: usize,
    /// The prior.
    #[arg(long, value_enum, default_value = "mar")]
    prior: PriorArg,
    /// Stop after N epochs.
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop before M minutes of wall time, final evaluation included.
    #[arg(long)]
    max_minutes: Option<f64>,
    /// Stop after N optimizer steps.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Adamax learning rate.
    #[arg(long, default_value_t = 8e-4)]
    lr: f64,
    /// Linear learning-rate warm-up in optimizer steps.
    #[arg(long, default_value_t = 100)]
    warmup_steps: u64,
    /// Clip the global gradient norm.
    #[arg(long)]
    grad_clip: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (evaluation uses it).
    #[arg(long)]
    ema: Option<f64>,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluate and checkpoint every N steps (0: after every epoch).
    #[arg(long, default_value_t = 0)]
    eval_every: u64,
    /// Batch size of evaluation.
    #[arg(long, default_value_t = 64)]
    eval_batch_size: usize,
    /// Samples in the grid drawn at each evaluation.
    #[arg(long, default_value_t = 36)]
    samples: usize,
    /// Temperature of those samples.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Apply the CIFAR-10 shift/flip augmentation (default: on for cifar10).
    #[arg(long)]
    augment: Option<bool>,
    /// Consecutive non-finite steps after which training stops.
    #[arg(long, default_value_t = 5)]
    nan_patience: u32,
    /// Output folder (checkpoints, metrics.jsonl, bits_per_dim.png, samples.png).
    #[arg(long, default_value = "runs/marscf")]
    out: PathBuf,
    /// Continue the run saved in --out.
    #[arg(long)]
    resume: bool,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// A native checkpoint (`.bpk` with its `.json`) or a reference `.pt`.
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Configuration for a reference `.pt` (inferred from its keys otherwise).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Accept a reference checkpoint with missing or unused tensors.
    #[arg(long)]
    partial: bool,
    /// Batch size.
    #[arg(long, visible_alias = "batch_size", default_value_t = 64)]
    batch_size: usize,
    /// Seed of the dequantisation noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct SampleArgs {
    /// A native checkpoint or a reference `.pt`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Configuration for a reference `.pt`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Temperature (1 is the model).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The PNG grid to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// The reference checkpoint.
    #[arg(long)]
    pytorch: PathBuf,
    /// Its configuration (JSON of `MarScfConfig`); inferred from the keys otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Accept missing or unused tensors.
    #[arg(long)]
    partial: bool,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Coupling of the model.
    #[arg(long, value_enum, default_value = "affine")]
    coupling: CouplingArg,
    /// Levels L.
    #[arg(long = "L", default_value_t = 3)]
    levels: usize,
    /// Steps per level K.
    #[arg(long = "K", default_value_t = 8)]
    steps: usize,
    /// Hidden width C.
    #[arg(long = "C", default_value_t = 128)]
    channels: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Comma-separated cases (default: all).
    #[arg(long, value_delimiter = ',')]
    cases: Option<Vec<String>>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => commands::train(args),
        Command::Eval(args) => commands::eval(args),
        Command::Sample(args) => commands::sample(args),
        Command::Import(args) => commands::import(args),
        Command::Bench(args) => commands::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
