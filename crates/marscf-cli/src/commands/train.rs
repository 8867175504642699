//! `marscf train`: a new run, or the saved run continued (`--resume`): every option not
//! typed then takes the saved run's value, and a typed one that would make it another run
//! is refused with the list of differences.

use std::path::PathBuf;
use std::rc::Rc;

use clap::Args;
use marscf::data::datasets::DatasetName;
use marscf::train::{
    Collective, DataParallel, Observer, OneProcess, OptimOptions, RunConfig, RunOverrides,
    RunSummary, Silent, Start, TrainingData, end_every_process_on_error, new_run, saved_run, train,
};
use marscf::{PriorKind, select_process_devices};

use crate::args::{DataArgs, ModelArgs, at_least_one, decay, names, non_negative, positive, prior};
use crate::commands::{Result, load_data};
use crate::progress::ProgressBarObserver;

/// Options of `marscf train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// The prior [default: mar].
    #[arg(long, value_parser = prior,
          help = format!("The prior: {} [default: mar]", names(PriorKind::all())))]
    prior: Option<PriorKind>,
    /// Width of the mAR prior's embeddings and ConvLSTM states [default: the reference's 32].
    #[arg(long, value_parser = at_least_one)]
    prior_hidden: Option<usize>,
    /// Stacked ConvLSTM layers per level of the mAR prior [default: the reference's 3].
    #[arg(long, value_parser = at_least_one)]
    prior_layers: Option<usize>,
    /// Bits per pixel value (Glow's n_bits_x): pixels quantised to 2^N levels, noise
    /// U(0, 1/2^N), bits/dim against that many levels [default: 8].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    n_bits: Option<u32>,
    /// Images per optimizer step.
    #[arg(long, visible_alias = "batch_size", value_parser = at_least_one,
          help = format!("Images per optimizer step [default: {}]", RunConfig::new("").batch_size))]
    batch_size: Option<usize>,
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
    #[arg(long, value_parser = positive,
          help = format!("Adamax learning rate [default: {}]", OptimOptions::default().lr))]
    lr: Option<f64>,
    /// Linear learning-rate warm-up in optimizer steps.
    #[arg(long, visible_alias = "warmup_steps",
          help = format!("Linear learning-rate warm-up in optimizer steps [default: {}]", OptimOptions::default().warmup_steps))]
    warmup_steps: Option<u64>,
    /// Clip the global gradient norm.
    #[arg(long, value_parser = positive)]
    grad_clip: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (evaluation uses it).
    #[arg(long, value_parser = decay)]
    ema: Option<f64>,
    /// Seed of everything random.
    #[arg(long, help = format!("Seed of everything random [default: {}]", RunConfig::new("").seed))]
    seed: Option<u64>,
    /// Evaluate and checkpoint every N steps (0: after every epoch).
    #[arg(long, help = format!("Evaluate and checkpoint every N steps (0: after every epoch) [default: {}]", RunConfig::new("").eval_every))]
    eval_every: Option<u64>,
    /// Batch size of evaluation.
    #[arg(long, value_parser = at_least_one,
          help = format!("Batch size of evaluation [default: {}]", RunConfig::new("").eval_batch_size))]
    eval_batch_size: Option<usize>,
    /// Samples in the grid drawn at each evaluation.
    #[arg(long, help = format!("Samples in the grid drawn at each evaluation [default: {}]", RunConfig::new("").samples))]
    samples: Option<usize>,
    /// Temperature of those samples.
    #[arg(long, value_parser = non_negative,
          help = format!("Temperature of those samples (written on the grid) [default: {}]", RunConfig::new("").temperature))]
    temperature: Option<f64>,
    /// Apply the CIFAR-10 shift/flip augmentation [default: on for cifar10].
    #[arg(long)]
    augment: Option<bool>,
    /// Consecutive non-finite steps after which training stops.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..),
          help = format!("Consecutive non-finite steps after which training stops [default: {}]", OptimOptions::default().nan_patience))]
    nan_patience: Option<u32>,
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

/// Runs `marscf train`: in one process, or as one of the processes an MPI launcher started
/// (feature `mpi`), where an error on any of them ends them all.
pub fn run(args: TrainArgs) -> Result<()> {
    let world = processes()?;
    let result = train_in(args, &world);
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
fn train_in(args: TrainArgs, world: &Rc<dyn Collective>) -> Result<()> {
    let saved = if args.resume {
        saved_run(&args.out)?
    } else {
        None
    };
    // Every option typed in place of the saved run's setting (the trainer then refuses
    // those that would make it another run) or of a new run's default.
    let plan = overrides(&args)?.apply(saved.unwrap_or_else(|| new_run(&args.out)))?;
    let (model, info) = (plan.model, plan.data);
    let run = RunConfig {
        out_dir: args.out.clone(),
        ..plan.run
    };
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

/// The settings typed on the command line.
fn overrides(args: &TrainArgs) -> Result<RunOverrides> {
    let dataset: Option<DatasetName> = args.data.dataset.as_deref().map(str::parse).transpose()?;
    Ok(RunOverrides {
        dataset,
        mnist_layout: args.data.mnist_layout.map(Into::into),
        data_root: args.data.data_root.clone(),
        test_images: args.data.test_images,
        bits: args.n_bits,
        coupling: args.model.coupling.clone(),
        levels: args.model.levels,
        steps: args.model.steps,
        hidden: args.model.hidden,
        prior: args.prior.clone(),
        prior_hidden: args.prior_hidden,
        prior_layers: args.prior_layers,
        batch_size: args.batch_size,
        seed: args.seed,
        augment: args.augment,
        ema: args.ema,
        epochs: args.epochs,
        max_steps: args.max_steps,
        max_minutes: args.max_minutes,
        lr: args.lr,
        warmup_steps: args.warmup_steps,
        grad_clip: args.grad_clip,
        nan_patience: args.nan_patience,
        eval_every: args.eval_every,
        eval_batch_size: args.eval_batch_size,
        samples: args.samples,
        temperature: args.temperature,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use marscf::train::RunPlan;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn asked(options: &[&str]) -> Result<RunPlan> {
        let args = Command::try_parse_from(std::iter::once("train").chain(options.iter().copied()))
            .expect("the options parse");
        Ok(overrides(&args.train)?.apply(new_run("out"))?)
    }

    #[test]
    fn without_size_options_train_builds_the_reference_architecture() {
        let model = asked(&[]).unwrap().model;
        assert_eq!(
            model.prior,
            PriorKind::Mar {
                hidden: 32,
                lstm_layers: 3
            }
        );
        let flow = model.flow;
        assert_eq!((flow.levels, flow.steps, flow.hidden), (3, 4, 64));
        assert_eq!(flow.coupling, marscf::core::CouplingKind::Affine);
        assert_eq!(flow.image, [3, 32, 32]);
    }

    #[test]
    fn prior_size_options_size_the_mar_prior_only() {
        let model = asked(&["--prior-hidden", "16", "--prior-layers", "1"])
            .unwrap()
            .model;
        assert_eq!(
            model.prior,
            PriorKind::Mar {
                hidden: 16,
                lstm_layers: 1
            }
        );
        let refused = asked(&["--prior", "glow", "--prior-layers", "2"]).unwrap_err();
        assert!(
            refused.to_string().contains("size the mar prior"),
            "{refused}"
        );
        assert!(Command::try_parse_from(["train", "--prior-hidden", "0"]).is_err());
    }

    #[test]
    fn every_setting_option_fills_its_override() {
        let args = Command::try_parse_from([
            "train",
            "--dataset",
            "cifar10",
            "--mnist-layout",
            "grey32",
            "--data-root",
            "d",
            "--test-images",
            "5",
            "--n-bits",
            "5",
            "--coupling",
            "additive",
            "-L",
            "2",
            "-K",
            "3",
            "-C",
            "16",
            "--prior",
            "mar",
            "--prior-hidden",
            "8",
            "--prior-layers",
            "2",
            "--batch-size",
            "7",
            "--seed",
            "11",
            "--augment",
            "false",
            "--ema",
            "0.99",
            "--epochs",
            "4",
            "--max-steps",
            "40",
            "--max-minutes",
            "2.5",
            "--lr",
            "0.001",
            "--warmup-steps",
            "9",
            "--grad-clip",
            "50",
            "--nan-patience",
            "3",
            "--eval-every",
            "13",
            "--eval-batch-size",
            "17",
            "--samples",
            "4",
            "--temperature",
            "0.7",
        ])
        .unwrap();
        let expected = RunOverrides {
            dataset: Some(DatasetName::Cifar10),
            mnist_layout: Some(marscf::data::MnistLayout::Grey32),
            data_root: Some("d".into()),
            test_images: Some(5),
            bits: Some(5),
            coupling: Some(marscf::core::CouplingKind::Additive),
            levels: Some(2),
            steps: Some(3),
            hidden: Some(16),
            prior: Some(PriorKind::default()),
            prior_hidden: Some(8),
            prior_layers: Some(2),
            batch_size: Some(7),
            seed: Some(11),
            augment: Some(false),
            ema: Some(0.99),
            epochs: Some(4),
            max_steps: Some(40),
            max_minutes: Some(2.5),
            lr: Some(1e-3),
            warmup_steps: Some(9),
            grad_clip: Some(50.0),
            nan_patience: Some(3),
            eval_every: Some(13),
            eval_batch_size: Some(17),
            samples: Some(4),
            temperature: Some(0.7),
        };
        assert_eq!(overrides(&args.train).unwrap(), expected);
        let none = Command::try_parse_from(["train"]).unwrap();
        assert_eq!(overrides(&none.train).unwrap(), RunOverrides::default());
    }
}
