//! Training over several MPI processes (feature `mpi`) against one process: the same loss,
//! gradients and weights; the same ActNorm initialisation; runs that resume on other
//! numbers of processes; a failing process that ends the job.
//!
//! Each test here starts `mpirun --oversubscribe -np W` on this test binary, running one of
//! the `rank_*` tests (ignored when run directly) in each process; settings reach them
//! through environment variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use marscf::data::datasets::DatasetName;
use marscf::data::{BatchOptions, MnistLayout, make_batch, stream};
use marscf::params::{param_paths, param_values};
use marscf::train::collective::{checksum, same_on_every_rank};
use marscf::train::mpi::MpiWorld;
use marscf::train::{
    Collective, DataParallel, OneProcess, OptimOptions, RunConfig, Silent, Start, StepOutcome,
    Training, TrainingData, end_every_process_on_error, train,
};
use marscf::{DataInfo, MarScfConfig};
use marscf_test_support::{
    model::{device, digits, exclusive_rng, gradients_by_path, tiny_model},
    numerics::max_abs_diff,
    temp_dir,
};

/// The folder a `rank_*` test trains in.
const DIR: &str = "MARSCF_TEST_RUN_DIR";
/// The steps it trains to.
const STEPS: &str = "MARSCF_TEST_RUN_STEPS";
/// How the failing rank fails: `error` or `die`.
const FAILURE: &str = "MARSCF_TEST_FAILURE";

/// 15 images (shards of 8 + 7 on two processes, 5 + 5 + 5 on three), dequantised.
fn global_batch(config: &MarScfConfig) -> Tensor<4> {
    let set = digits(15, false);
    let indices: Vec<usize> = (0..set.len()).collect();
    let options = BatchOptions {
        augment: false,
        dequantize: true,
        bits: config.bits,
    };
    make_batch(&set, &indices, options, &mut stream(1, 1, 1), &device())
}

fn run_config(out: PathBuf, max_steps: u64) -> RunConfig {
    RunConfig {
        batch_size: 6,
        optim: OptimOptions {
            lr: 2e-3,
            warmup_steps: 2,
            grad_clip: Some(1.0),
            ema: Some(0.9),
            nan_patience: 3,
        },
        seed: 7,
        eval_every: 2,
        max_steps: Some(max_steps),
        samples: 4,
        eval_batch_size: 5,
        ..RunConfig::new(out)
    }
}

/// `out`'s run trained to `steps` steps in `world` (a new run, or the saved one resumed).
fn train_run(out: &Path, steps: u64, world: Rc<dyn Collective>) {
    let data = TrainingData {
        info: DataInfo::new(DatasetName::MnistSample, MnistLayout::Grey28, None),
        train: digits(24, false),
        test: digits(12, true),
    };
    let parallel = DataParallel::single(&device()).across(world);
    let run = run_config(out.to_path_buf(), steps);
    train(
        &tiny_model(),
        &run,
        &data,
        parallel,
        Start::Resume,
        &mut Silent,
    )
    .unwrap();
}

fn mpi_world() -> Rc<dyn Collective> {
    Rc::new(MpiWorld::launched().expect("started by mpirun"))
}

/// Every tensor of `b` within `1e-5` of the largest magnitude of its namesake in `a`.
fn assert_close(what: &str, a: &BTreeMap<String, Tensor<1>>, b: &BTreeMap<String, Tensor<1>>) {
    assert_close_or_within(what, a, b, 0.0);
}

/// Every tensor of `b` within `1e-5` of the largest magnitude of its namesake in `a`, or
/// within `bound`.
fn assert_close_or_within(
    what: &str,
    a: &BTreeMap<String, Tensor<1>>,
    b: &BTreeMap<String, Tensor<1>>,
    bound: f64,
) {
    assert_eq!(a.len(), b.len(), "{what}: other parameters");
    for (path, value) in a {
        let scale = value.clone().abs().max().into_scalar::<f32>() as f64;
        let diff = max_abs_diff(value.clone(), b[path].clone());
        assert!(
            diff <= (1e-5 * scale).max(bound).max(f64::MIN_POSITIVE),
            "{what} {path}: differs by {diff:e}, largest magnitude {scale:e}"
        );
    }
}

/// `mpirun --oversubscribe -np ranks` of this binary's test `test`, with `env`, one thread
/// per process; its output and how long it took.
fn mpirun(ranks: usize, test: &str, env: &[(&str, String)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut command = Command::new("mpirun");
    command
        // A hang fails the test after five minutes instead of stalling CI.
        .args([
            "--timeout",
            "300",
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
        ])
        .arg(ranks.to_string())
        .arg(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("mpirun runs (Open MPI installed)");
    (output, started.elapsed())
}

/// Runs `test` on `ranks` processes and requires that it passes on every one.
fn mpirun_passes(ranks: usize, test: &str, env: &[(&str, String)]) {
    let (output, _) = mpirun(ranks, test, env);
    assert!(
        output.status.success(),
        "{test} on {ranks} processes failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_step_over_two_and_three_processes_is_the_step_on_the_whole_batch() {
    // One job at a time: they share two cores.
    let _one_job = exclusive_rng();
    for ranks in [2, 3] {
        mpirun_passes(ranks, "rank_steps_against_one_process", &[]);
    }
}

/// In each process: the loss and gradient of its shard summed over the processes, then two
/// clipped Adamax steps, against the same computed by this process alone on the whole batch.
#[test]
#[ignore = "runs under mpirun (see a_step_over_two_and_three_processes_is_the_step_on_the_whole_batch)"]
fn rank_steps_against_one_process() {
    let _rng = exclusive_rng();
    let world = mpi_world();
    let config = tiny_model();
    let x = global_batch(&config);
    let device = device();
    device.seed(3);
    let model = config.init(&device).unwrap().initialize(x.clone()).unwrap();
    let options = OptimOptions {
        lr: 3e-3,
        warmup_steps: 0,
        grad_clip: Some(1.0),
        ..OptimOptions::default()
    };
    let mut alone = Training::new(model.clone(), options.clone());
    // One process splitting the batch over as many shards as there are processes.
    let shards = DataParallel::new(vec![device.clone(); world.size()]).unwrap();
    let mut split = Training::new(model.clone(), options.clone())
        .with_devices(shards)
        .unwrap();
    let mut shared = Training::new(model, options)
        .with_devices(DataParallel::single(&device).across(world.clone()))
        .unwrap();
    shared.take_rank0_weights();

    let params = param_paths(&alone.model);
    let whole = DataParallel::single(&device)
        .gradient(&alone.model, x.clone(), &params)
        .unwrap();
    let sharded = DataParallel::single(&device)
        .across(world.clone())
        .gradient(&shared.model, x.clone(), &params)
        .unwrap();
    let rel = (whole.bits_per_dim - sharded.bits_per_dim).abs() / whole.bits_per_dim;
    assert!(
        rel < 1e-6,
        "loss {} vs {}",
        whole.bits_per_dim,
        sharded.bits_per_dim
    );
    let whole = gradients_by_path(&alone.model, &whole.gradients.unwrap());
    let reduce = sharded.reduce.expect("several processes reduce");
    let values: usize = whole.values().map(|g| g.dims()[0]).sum();
    assert_eq!(reduce.values, values, "one all-reduce of every gradient");
    assert_close(
        "gradient",
        &whole,
        &gradients_by_path(&shared.model, &sharded.gradients.unwrap()),
    );

    for _ in 0..2 {
        split.step(x.clone()).unwrap();
        match (
            alone.step(x.clone()).unwrap(),
            shared.step(x.clone()).unwrap(),
        ) {
            (
                StepOutcome::Applied { grad_norm: a, .. },
                StepOutcome::Applied { grad_norm: b, .. },
            ) => {
                assert!(a > 1.0, "the gradient norm {a} is clipped");
                assert!((a - b).abs() <= 1e-5 * a, "gradient norm {a} vs {b}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The processes compute what one process computes when it splits the batch into the
    // same shards: bit for bit on two (a + b in either), within rounding on three (MPI may
    // sum three gradients in another order than (a + b) + c).
    let (split, shared_weights) = (param_values(&split.model), param_values(&shared.model));
    if world.size() == 2 {
        for (path, value) in &split {
            let diff = max_abs_diff(value.clone(), shared_weights[path].clone());
            assert_eq!(
                diff, 0.0,
                "{path} after two steps: processes against shards"
            );
        }
    } else {
        assert_close("weight against shards", &split, &shared_weights);
    }
    // Against the whole batch, Adamax moves each weight by `lr g / (|g| + ε)`: the
    // rounding of a tiny gradient's shard sums moves it by a fraction of `lr`, so weights
    // agree within 1e-5 of their largest magnitude or 1 % of the two steps' `lr`.
    assert_close_or_within(
        "weight after two steps",
        &param_values(&alone.model),
        &shared_weights,
        0.01 * 2.0 * 3e-3,
    );
    same_on_every_rank(&checksum(&shared.model, &[]), world.as_ref())
        .expect("every process holds the same weights, bit for bit");
    assert_eq!(shared.communication().reductions, 2);
}

/// The folder's run trained to `steps` in the processes mpirun started.
#[test]
#[ignore = "runs under mpirun (see runs_resume_on_other_numbers_of_processes)"]
fn rank_trains_a_run() {
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let steps = std::env::var(STEPS).unwrap().parse().unwrap();
    train_run(&dir, steps, mpi_world());
}

fn in_processes(ranks: usize, dir: &Path, steps: u64) {
    let env = [(DIR, dir.display().to_string()), (STEPS, steps.to_string())];
    mpirun_passes(ranks, "rank_trains_a_run", &env);
}

fn saved_model(dir: &Path) -> BTreeMap<String, Tensor<1>> {
    param_values(&marscf::checkpoint::load(&dir.join("last/model"), &device()).unwrap())
}

#[test]
fn runs_resume_on_other_numbers_of_processes() {
    // One job at a time: they share two cores.
    let _one_job = exclusive_rng();
    let root = temp_dir("distributed-resume");
    let alone = OneProcess;
    // ActNorm's data-dependent initialisation over the global first batch: the state saved
    // before any step is the one process's, bit for bit.
    in_processes(3, &root.join("init"), 0);
    train_run(&root.join("init-alone"), 0, Rc::new(alone));
    let (a, b) = (
        saved_model(&root.join("init")),
        saved_model(&root.join("init-alone")),
    );
    for (path, value) in &a {
        assert_eq!(
            max_abs_diff(value.clone(), b[path].clone()),
            0.0,
            "initial {path}"
        );
    }

    // Four steps straight in one process; two on two processes resumed in one; two in one
    // resumed on three.
    train_run(&root.join("straight"), 4, Rc::new(alone));
    in_processes(2, &root.join("two-then-one"), 2);
    train_run(&root.join("two-then-one"), 4, Rc::new(alone));
    train_run(&root.join("one-then-three"), 2, Rc::new(alone));
    in_processes(3, &root.join("one-then-three"), 4);
    let straight = saved_model(&root.join("straight"));
    assert_close(
        "two then one",
        &straight,
        &saved_model(&root.join("two-then-one")),
    );
    assert_close(
        "one then three",
        &straight,
        &saved_model(&root.join("one-then-three")),
    );
    // Rank 0 alone wrote: one metrics line per step and evaluation, not one per process.
    let metrics = std::fs::read_to_string(root.join("one-then-three/metrics.jsonl")).unwrap();
    let straight_metrics = std::fs::read_to_string(root.join("straight/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), straight_metrics.lines().count());
}

#[test]
fn a_process_that_fails_ends_every_process() {
    // One job at a time: they share two cores.
    let _one_job = exclusive_rng();
    for failure in ["error", "panic", "die"] {
        let (output, took) = mpirun(2, "rank_fails", &[(FAILURE, failure.to_string())]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{failure}: the job succeeded");
        assert!(
            took < Duration::from_secs(30),
            "{failure}: the job took {took:?} to end"
        );
        let said = match failure {
            "error" => "error on rank 1 of 2: injected failure",
            "panic" => "panic on rank 1 of 2; ending every rank",
            _ => "",
        };
        assert!(stderr.contains(said), "{failure}: {stderr}");
    }
}

/// Rank 1 fails as FAILURE says while rank 0 waits for it in an all-reduce.
#[test]
#[ignore = "runs under mpirun (see a_process_that_fails_ends_every_process)"]
fn rank_fails() {
    let world = mpi_world();
    if world.rank() == 1 {
        match std::env::var(FAILURE).unwrap().as_str() {
            "error" => {
                let failed: Result<(), &str> = Err("injected failure");
                end_every_process_on_error(world.as_ref(), failed).unwrap();
            }
            "panic" => panic!("injected panic"),
            // Killed outright (no core dump, no unwinding, no MPI_Finalize).
            _ => {
                let pid = std::process::id().to_string();
                Command::new("kill").args(["-KILL", &pid]).status().unwrap();
                unreachable!("killed");
            }
        }
    }
    let mut value = [1.0];
    world.sum_f64(&mut value);
    panic!(
        "rank {} returned from an all-reduce without rank 1",
        world.rank()
    );
}
