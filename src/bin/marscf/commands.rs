//! The subcommands.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use marscf::bench::{BenchConfig, CASES, run_case};
use marscf::checkpoint;
use marscf::core::{CouplingKind, MixLogCdfConfig, MultiScaleFlowConfig};
use marscf::data::datasets::{DatasetName, load};
use marscf::data::{ImageSet, MnistLayout};
use marscf::import::load_reference;
use marscf::report::save_image_grid;
use marscf::train::{OptimOptions, RunConfig, evaluate, train as run_training};
use marscf::{MarScf, MarScfConfig, PriorKind, select_device};

use crate::progress::ProgressBarObserver;
use crate::{
    BenchArgs, CouplingArg, DataArgs, EvalArgs, ImportArgs, LayoutArg, PriorArg, SampleArgs,
    TrainArgs,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn layout(arg: LayoutArg) -> MnistLayout {
    match arg {
        LayoutArg::Reference => MnistLayout::Reference,
        LayoutArg::Grey32 => MnistLayout::Grey32,
        LayoutArg::Grey28 => MnistLayout::Grey28,
    }
}

/// The training and test sets the arguments name.
fn load_data(args: &DataArgs) -> Result<(DatasetName, ImageSet, ImageSet)> {
    let name: DatasetName = args.dataset.parse()?;
    if args.download {
        download(name, args.data_root.as_deref())?;
    }
    let (train, test) = load(name, args.data_root.as_deref(), layout(args.mnist_layout))?;
    let test = match args.test_images {
        Some(n) => test.take(n),
        None => test,
    };
    Ok((name, train, test))
}

#[cfg(feature = "download")]
fn download(name: DatasetName, root: Option<&Path>) -> Result<()> {
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
fn download(_: DatasetName, _: Option<&Path>) -> Result<()> {
    Err("this build has no download support: rebuild with the `download` feature".into())
}

/// A native checkpoint, or a reference `.pt` (configuration from `config` or inferred).
fn load_model(
    path: &Path,
    config: Option<&Path>,
    partial: bool,
    device: &burn::tensor::Device,
) -> Result<MarScf> {
    let reference = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pt" | "pth")
    );
    if !reference {
        return Ok(checkpoint::load(path, device)?);
    }
    let config = config.map(checkpoint::load_config).transpose()?;
    let (model, report) = load_reference(path, config.as_ref(), partial, device)?;
    if report.config_inferred {
        eprintln!(
            "configuration inferred from the checkpoint's keys: L={} K={} C={} ({:?}), images {:?} assumed",
            report.config.flow.levels,
            report.config.flow.steps,
            report.config.flow.hidden,
            report.config.flow.coupling,
            report.config.flow.image
        );
    }
    for problem in &report.problems {
        eprintln!("warning (--partial): {problem}");
    }
    Ok(model)
}

fn coupling(arg: CouplingArg) -> CouplingKind {
    match arg {
        CouplingArg::Affine => CouplingKind::Affine,
        CouplingArg::Mixlogcdf => CouplingKind::MixLogCdf(MixLogCdfConfig::default()),
    }
}

pub fn train(args: TrainArgs) -> Result<()> {
    let device = select_device()?;
    let (name, train_set, test_set) = load_data(&args.data)?;
    let coupling = coupling(args.coupling);
    let flow = MultiScaleFlowConfig::new(train_set.shape, args.levels, args.steps, args.channels)
        .with_coupling(coupling);
    flow.validate()?;
    let prior = match args.prior {
        PriorArg::Mar => PriorKind::default(),
        PriorArg::StandardNormal => PriorKind::StandardNormal,
    };
    let model = MarScfConfig::new(flow).with_prior(prior);
    let run = RunConfig {
        dataset: name.to_string(),
        batch_size: args.batch_size,
        optim: OptimOptions {
            lr: args.lr,
            warmup_steps: args.warmup_steps,
            grad_clip: args.grad_clip,
            ema: args.ema,
            nan_patience: args.nan_patience,
        },
        seed: args.seed,
        eval_every: args.eval_every,
        max_steps: args.max_steps,
        epochs: args.epochs,
        max_minutes: args.max_minutes,
        augment: args.augment.unwrap_or(name == DatasetName::Cifar10),
        samples: args.samples,
        temperature: args.temperature,
        eval_batch_size: args.eval_batch_size,
        out_dir: args.out.clone(),
    };
    println!(
        "training mAR-SCF on {name} ({} train / {} test images {:?}) with {}, out {}",
        train_set.len(),
        test_set.len(),
        train_set.shape,
        marscf::device::selected_backend_name(),
        args.out.display()
    );
    let mut observer = ProgressBarObserver::new(args.max_steps, args.max_minutes);
    let summary = run_training(
        &model,
        &run,
        &train_set,
        &test_set,
        &device,
        args.resume,
        &mut observer,
    )?;
    drop(observer);
    println!(
        "done: {} steps ({} skipped), {} epochs, {:.0} s; test bits/dim {:.4} (best {:.4}, saved as {})",
        summary.steps,
        summary.skipped,
        summary.position.epoch,
        summary.position.seconds,
        summary.position.last_test_bits_per_dim.unwrap_or(f64::NAN),
        summary.position.best_test_bits_per_dim.unwrap_or(f64::NAN),
        summary.best_checkpoint.display()
    );
    Ok(())
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let device = select_device()?;
    let model = load_model(
        &args.checkpoint,
        args.config.as_deref(),
        args.partial,
        &device,
    )?;
    let (name, _, test) = load_data(&args.data)?;
    if test.shape != model.config.flow.image {
        return Err(format!(
            "{name} images are {:?}, the model expects {:?}",
            test.shape, model.config.flow.image
        )
        .into());
    }
    let started = Instant::now();
    let bits_per_dim = evaluate(&model, &test, args.batch_size, args.seed, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let line = serde_json::json!({
            "bits_per_dim": bits_per_dim,
            "images": test.len(),
            "seconds": seconds,
            "checkpoint": args.checkpoint.display().to_string(),
        });
        println!("{line}");
    } else {
        println!(
            "{name} test: {bits_per_dim:.4} bits/dim over {} images ({seconds:.1} s)",
            test.len()
        );
    }
    Ok(())
}

pub fn sample(args: SampleArgs) -> Result<()> {
    let device = select_device()?;
    let model = load_model(&args.checkpoint, args.config.as_deref(), false, &device)?;
    device.seed(args.seed);
    let images = model.sample(args.n, args.temperature);
    let per_row = (args.n as f64).sqrt().ceil() as usize;
    save_image_grid(images, per_row, &args.out)?;
    println!(
        "{} samples at temperature {} written to {}",
        args.n,
        args.temperature,
        args.out.display()
    );
    Ok(())
}

pub fn import(args: ImportArgs) -> Result<()> {
    let device = select_device()?;
    let config = args
        .config
        .as_deref()
        .map(checkpoint::load_config)
        .transpose()?;
    let (model, report) = load_reference(&args.pytorch, config.as_ref(), args.partial, &device)?;
    let stem = args
        .pytorch
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("imported");
    let target = args.out.join(stem);
    checkpoint::save(&model, &target)?;
    println!(
        "{} tensors imported{}{}; configuration {}; written to {}.bpk/.json",
        report.loaded,
        if report.prefix.is_empty() {
            String::new()
        } else {
            format!(" (prefix `{}` stripped)", report.prefix)
        },
        if report.ignored.is_empty() {
            String::new()
        } else {
            format!(", {} reference-only tensors dropped", report.ignored.len())
        },
        if report.config_inferred {
            "inferred from the keys (images 32x32 assumed)"
        } else {
            "given"
        },
        target.display()
    );
    for problem in &report.problems {
        eprintln!("warning (--partial): {problem}");
    }
    Ok(())
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let device = select_device()?;
    let backend = marscf::device::selected_backend_name();
    let config = BenchConfig {
        coupling: coupling(args.coupling),
        levels: args.levels,
        steps: args.steps,
        hidden: args.channels,
        batch: args.batch,
        reps: args.reps,
    };
    let cases = args
        .cases
        .unwrap_or_else(|| CASES.iter().map(|c| c.to_string()).collect());
    for case in cases {
        let result = run_case(&case, &config, &device, &backend)?;
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}
