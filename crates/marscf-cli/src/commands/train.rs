//! `marscf train`: a new run, or the saved run continued (`--resume`): every option not
//! typed then takes the saved run's value, and a typed one that would make it another run
//! is refused with the list of differences.

use std::path::PathBuf;
use std::rc::Rc;

use clap::Args;
use marscf::checkpoint::{CheckpointInfo, Origin};
use marscf::core::MultiScaleFlowConfig;
use marscf::data::datasets::DatasetName;
use marscf::train::{
    Collective, DataParallel, Observer, OneProcess, OptimOptions, RunConfig, RunSummary, Silent,
    Start, TrainingData, end_every_process_on_error, saved_run, train,
};
use marscf::{DataInfo, MarScfConfig, select_process_devices};
use serde_json::Value;

use crate::args::{
    DataArgs, Given, ModelArgs, PriorArg, TRAIN_MODEL, at_least_one, decay, non_negative, positive,
};
use crate::commands::{Result, load_data};
use crate::progress::ProgressBarObserver;

/// The dataset of a new run unless `--dataset` says otherwise.
const DEFAULT_DATASET: DatasetName = DatasetName::MnistSample;

/// Options of `marscf train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// The prior [default: mar].
    #[arg(long, value_enum)]
    prior: Option<PriorArg>,
    /// Bits per pixel value (Glow's n_bits_x): pixels quantised to 2^N levels, noise
    /// U(0, 1/2^N), bits/dim against that many levels.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=8))]
    n_bits: u32,
    /// Images per optimizer step.
    #[arg(long, visible_alias = "batch_size", default_value_t = RunConfig::new("").batch_size, value_parser = at_least_one)]
    batch_size: usize,
    /// Stop after N epochs.
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop before M minutes of wall time, final evaluation included.
    #[arg(long, visible_alias = "max_minutes", value_parser = positive)]
    max_minutes: Option<f64>,
    /// Stop after N optimizer steps.
    #[arg(long, visible_alias = "max_steps")]
    max_steps: Option<u64>,
    /// Adamax learning rate.
    #[arg(long, default_value_t = OptimOptions::default().lr, value_parser = positive)]
    lr: f64,
    /// Linear learning-rate warm-up in optimizer steps.
    #[arg(long, visible_alias = "warmup_steps", default_value_t = OptimOptions::default().warmup_steps)]
    warmup_steps: u64,
    /// Clip the global gradient norm.
    #[arg(long, value_parser = positive)]
    grad_clip: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (evaluation uses it).
    #[arg(long, value_parser = decay)]
    ema: Option<f64>,
    /// Seed of everything random.
    #[arg(long, default_value_t = RunConfig::new("").seed)]
    seed: u64,
    /// Evaluate and checkpoint every N steps (0: after every epoch).
    #[arg(long, default_value_t = RunConfig::new("").eval_every)]
    eval_every: u64,
    /// Batch size of evaluation.
    #[arg(long, default_value_t = RunConfig::new("").eval_batch_size, value_parser = at_least_one)]
    eval_batch_size: usize,
    /// Samples in the grid drawn at each evaluation.
    #[arg(long, default_value_t = RunConfig::new("").samples)]
    samples: usize,
    /// Temperature of those samples.
    #[arg(long, default_value_t = RunConfig::new("").temperature, value_parser = non_negative)]
    temperature: f64,
    /// Apply the CIFAR-10 shift/flip augmentation [default: on for cifar10].
    #[arg(long)]
    augment: Option<bool>,
    /// Consecutive non-finite steps after which training stops.
    #[arg(long, default_value_t = OptimOptions::default().nan_patience, value_parser = clap::value_parser!(u32).range(1..))]
    nan_patience: u32,
    /// Output folder (checkpoints, metrics.jsonl, bits_per_dim.png, samples.png); it must
    /// be empty or missing unless --resume or --overwrite.
    #[arg(long, default_value = "runs/marscf")]
    out: PathBuf,
    /// Split each batch over N devices of the backend (GPUs; on a CPU backend, N shards on
    /// its one device). N is not recorded: a run may resume on another number (dropout
    /// masks depend on it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    devices: u32,
    /// Continue the run saved in --out.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start anew in --out, first moving what it holds to `<out>.replaced-<n>`.
    #[arg(long)]
    overwrite: bool,
}

/// Each option a resumed run may be given, and the settings (JSON pointers into a
/// [`CheckpointInfo`]) it sets.
const SETTINGS: [(&str, &[&str]); 25] = [
    (
        "dataset",
        &[
            "/data/dataset",
            "/data/image",
            "/data/mnist_layout",
            "/model/flow/image",
        ],
    ),
    (
        "mnist_layout",
        &["/data/mnist_layout", "/data/image", "/model/flow/image"],
    ),
    ("data_root", &["/data/root"]),
    ("test_images", &["/data/test_images"]),
    ("coupling", &["/model/flow/coupling"]),
    ("levels", &["/model/flow/levels"]),
    ("steps", &["/model/flow/steps"]),
    ("hidden", &["/model/flow/hidden"]),
    ("prior", &["/model/prior"]),
    (
        "n_bits",
        &["/model/bits", "/data/bits", "/data/preprocessing"],
    ),
    ("batch_size", &["/run/batch_size"]),
    ("epochs", &["/run/epochs"]),
    ("max_minutes", &["/run/max_minutes"]),
    ("max_steps", &["/run/max_steps"]),
    ("lr", &["/run/optim/lr"]),
    ("warmup_steps", &["/run/optim/warmup_steps"]),
    ("grad_clip", &["/run/optim/grad_clip"]),
    ("ema", &["/run/optim/ema"]),
    ("nan_patience", &["/run/optim/nan_patience"]),
    ("seed", &["/run/seed"]),
    ("eval_every", &["/run/eval_every"]),
    ("eval_batch_size", &["/run/eval_batch_size"]),
    ("samples", &["/run/samples"]),
    ("temperature", &["/run/temperature"]),
    ("augment", &["/run/augment"]),
];

/// Runs `marscf train`: in one process, or as one of the processes an MPI launcher started
/// (feature `mpi`), where an error on any of them ends them all.
pub fn run(args: TrainArgs, given: &Given) -> Result<()> {
    let world = processes()?;
    let result = train_in(args, given, &world);
    end_every_process_on_error(world.as_ref(), result)
}

/// The processes an MPI launcher started with this one, or this one alone.
#[cfg(feature = "mpi")]
fn processes() -> Result<Rc<dyn Collective>> {
    Ok(match marscf::train::mpi::MpiWorld::launched() {
        Some(world) => Rc::new(world),
        None => Rc::new(OneProcess),
    })
}

/// This process alone; started by an MPI launcher among others, an error (each would
/// train alone).
#[cfg(not(feature = "mpi"))]
fn processes() -> Result<Rc<dyn Collective>> {
    let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
        .iter()
        .filter_map(|name| std::env::var(name).ok()?.parse::<usize>().ok())
        .max()
        .unwrap_or(1);
    if launched > 1 {
        return Err(format!(
            "started as one of {launched} MPI processes, but this marscf was built without MPI: build it with `--features mpi` (docs/distributed.md)"
        )
        .into());
    }
    Ok(Rc::new(OneProcess))
}

/// `marscf train` as one process of `world`: rank 0 prints and writes, the others only
/// compute.
fn train_in(args: TrainArgs, given: &Given, world: &Rc<dyn Collective>) -> Result<()> {
    let asked = asked_run(&args)?;
    let saved = if args.resume {
        saved_run(&args.out)?
    } else {
        None
    };
    let plan = match saved {
        Some(saved) => resumed_run(saved, &asked, given)?,
        None => asked,
    };
    let info = plan.origin.data.ok_or("the run describes no data")?;
    let run = RunConfig {
        out_dir: args.out.clone(),
        ..plan.origin.run.ok_or("the run describes no settings")?
    };
    let model = plan.model;
    model.validate()?;
    run.validate()?;
    let devices = select_process_devices(world.local_rank(), args.devices as usize)?;
    let (train_set, test_set) = load_data(&info, &args.data)?;
    let rank0 = world.rank() == 0;
    if rank0 {
        println!(
            "training mAR-SCF on {} ({} train / {} test images {:?}) with {}{}{}, out {}",
            info.dataset,
            train_set.len(),
            test_set.len(),
            train_set.shape,
            marscf::device::selected_backend_name(),
            device_count(&devices),
            process_count(world.as_ref()),
            args.out.display()
        );
    }
    let start = match (args.resume, args.overwrite) {
        (true, _) => Start::Resume,
        (false, true) => Start::Overwrite,
        (false, false) => Start::New,
    };
    let data = TrainingData {
        info,
        train: train_set,
        test: test_set,
    };
    let parallel = DataParallel::new(devices)?.across(world.clone());
    let mut observer: Box<dyn Observer> = if rank0 {
        Box::new(ProgressBarObserver::new(run.max_steps, run.max_minutes))
    } else {
        Box::new(Silent)
    };
    let summary = train(&model, &run, &data, parallel, start, observer.as_mut())?;
    drop(observer);
    if !rank0 {
        return Ok(());
    }
    if world.size() > 1 {
        println!("{}", communication_line(&summary));
    }
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

/// `""` for one process, else how many.
fn process_count(world: &dyn Collective) -> String {
    match world.size() {
        1 => String::new(),
        size => format!(" in each of {size} processes"),
    }
}

/// The gradients' all-reduce per step: its values, bytes, time and share of a step.
fn communication_line(summary: &RunSummary) -> String {
    let c = summary.communication;
    let steps = c.reductions.max(1) as f64;
    format!(
        "all-reduce: {} values ({:.2} MB) per step, {:.1} ms per step on average, {:.1} % of the step time ({} steps)",
        c.values,
        (c.values * 4) as f64 / 1e6,
        1e3 * c.seconds / steps,
        100.0 * c.seconds / summary.step_seconds.max(f64::MIN_POSITIVE),
        c.reductions
    )
}

/// `""` for one device, else how many and whether they are distinct.
fn device_count(devices: &[burn::tensor::Device]) -> String {
    match devices {
        [_] => String::new(),
        [first, ..] if devices.iter().all(|d| d == first) => {
            format!(" ({} shards on its one device)", devices.len())
        }
        _ => format!(" on {} devices", devices.len()),
    }
}

/// The run the options describe, defaults filling the rest.
fn asked_run(args: &TrainArgs) -> Result<CheckpointInfo> {
    let name: DatasetName = match &args.data.dataset {
        Some(name) => name.parse()?,
        None => DEFAULT_DATASET,
    };
    let layout = args.data.mnist_layout.map(Into::into).unwrap_or_default();
    let data = DataInfo {
        test_images: args.data.test_images,
        ..DataInfo::new(name, layout, args.data.data_root.clone()).with_bits(args.n_bits)
    };
    let size = args.model.size(TRAIN_MODEL);
    let flow = MultiScaleFlowConfig::new(data.image, size.levels, size.steps, size.hidden)
        .with_coupling(args.model.coupling());
    let model = MarScfConfig::new(flow)
        .with_prior(args.prior.unwrap_or(PriorArg::Mar).into())
        .with_bits(args.n_bits);
    let run = RunConfig {
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
    Ok(CheckpointInfo {
        model,
        origin: Origin {
            data: Some(data),
            run: Some(run),
        },
    })
}

/// The saved run, with the settings of every option typed on the command line taken from
/// `asked` (the library then refuses those that would make it another run).
fn resumed_run(
    saved: CheckpointInfo,
    asked: &CheckpointInfo,
    given: &Given,
) -> Result<CheckpointInfo> {
    let asked_value = serde_json::to_value(asked)?;
    let mut merged = serde_json::to_value(&saved)?;
    for section in ["/data", "/run"] {
        if merged.pointer(section).is_none_or(Value::is_null) {
            // Saved before checkpoints recorded their data and settings: take the asked ones.
            let slot = merged.pointer_mut(section).expect("the section exists");
            *slot = asked_value[&section[1..]].clone();
        }
    }
    for (option, pointers) in SETTINGS {
        if !given.typed(option) {
            continue;
        }
        for pointer in pointers {
            if let (Some(slot), Some(value)) =
                (merged.pointer_mut(pointer), asked_value.pointer(pointer))
            {
                *slot = value.clone();
            }
        }
    }
    Ok(serde_json::from_value(merged)?)
}
