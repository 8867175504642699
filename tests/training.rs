//! Training: Adamax's rule, learning, resume, non-finite batches, evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::optim::Optimizer;
use burn::tensor::{Tensor, TensorData};
use marscf::core::{CouplingKind, MixLogCdfConfig};
use marscf::data::atomic_file::Existing;
use marscf::data::datasets::DatasetName;
use marscf::data::{ImageSet, MnistLayout, embedded};
use marscf::import::load_reference;
use marscf::params::{param_paths, param_values};
use marscf::train::{
    AdamaxConfig, DataParallel, EvalOptions, OptimOptions, Protocol, RunConfig, RunFolder, Silent,
    Start, StepOutcome, TrainError, Training, TrainingData, evaluate, evaluate_detailed, train,
    write_per_image_csv,
};
use marscf::{DataInfo, MarScfConfig, ModelError, PriorKind};
use marscf_test_support::{
    model::{device, digits, exclusive_rng, gradients_by_path, tiny_model},
    numerics::max_abs_diff,
    reference::{parity_folders, read_safetensors},
    temp_dir,
};

#[test]
fn adamax_follows_pytorchs_rule() {
    // Two steps on a 2-vector, by hand from PyTorch's update (β1 0.9, β2 0.999, ε 1e-8):
    // m = β1 m + (1-β1) g; u = max(β2 u, |g| + ε); θ -= lr / (1 - β1^t) · m / u.
    let device = device();
    let (lr, b1, b2, eps) = (0.1f64, 0.9f64, 0.999f64, 1e-8f64);
    let grads = [[0.5, -1.0], [-0.25, 2.0]];
    let mut theta = [1.0f64, -2.0];
    let (mut m, mut u) = ([0.0f64; 2], [0.0f64; 2]);
    for (t, g) in grads.iter().enumerate() {
        for i in 0..2 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            u[i] = (b2 * u[i]).max(g[i].abs() + eps);
            theta[i] -= lr / (1.0 - b1.powi(t as i32 + 1)) * m[i] / u[i];
        }
    }
    let adamax = AdamaxConfig::new().build();
    let mut tensor = Tensor::<1>::from_floats([1.0, -2.0], &device);
    let mut state = None;
    for g in grads {
        let grad = Tensor::<1>::from_floats([g[0] as f32, g[1] as f32], &device);
        let (next, next_state) = adamax.step(lr, tensor, grad, state);
        tensor = next;
        state = next_state;
    }
    let ours = tensor
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap();
    assert!(
        (ours[0] - theta[0]).abs() < 1e-6 && (ours[1] - theta[1]).abs() < 1e-6,
        "{ours:?} vs {theta:?}"
    );
    assert_eq!(state.unwrap().step, 2);
}

/// All of `set` as one batch, and [`tiny_model`] initialised on it.
fn initialized_tiny_model(
    set: &ImageSet,
    dequantize: bool,
    device: &burn::tensor::Device,
) -> (marscf::MarScf, Tensor<4>) {
    initialized_model(&tiny_model(), set, dequantize, device)
}

/// All of `set` as one batch, and `config`'s model initialised
/// on it.
fn initialized_model(
    config: &MarScfConfig,
    set: &ImageSet,
    dequantize: bool,
    device: &burn::tensor::Device,
) -> (marscf::MarScf, Tensor<4>) {
    let indices: Vec<usize> = (0..set.len()).collect();
    let options = marscf::data::BatchOptions {
        augment: false,
        dequantize,
        bits: config.bits,
    };
    let x = marscf::data::make_batch(
        set,
        &indices,
        options,
        &mut marscf::data::stream(1, 1, 1),
        device,
    );
    let model = config.init(device).unwrap().initialize(x.clone()).unwrap();
    (model, x)
}

/// `train` and `test` described as the embedded digits in the 1x28x28 layout.
fn training_data(train: ImageSet, test: ImageSet) -> TrainingData {
    TrainingData {
        info: DataInfo::new(DatasetName::MnistSample, MnistLayout::Grey28, None),
        train,
        test,
    }
}

fn run_config(out: PathBuf, max_steps: u64) -> RunConfig {
    RunConfig {
        batch_size: 8,
        optim: OptimOptions {
            lr: 2e-3,
            warmup_steps: 2,
            grad_clip: Some(100.0),
            ema: Some(0.9),
            nan_patience: 3,
        },
        seed: 7,
        eval_every: 3,
        max_steps: Some(max_steps),
        samples: 4,
        eval_batch_size: 16,
        ..RunConfig::new(out)
    }
}

/// `model` trained on `data` by [`run_config`] into `out` for `max_steps` steps, on
/// `devices`, starting as `start` says.
fn train_tiny(
    model: &MarScfConfig,
    data: &TrainingData,
    out: &Path,
    max_steps: u64,
    devices: &[burn::tensor::Device],
    start: Start,
) -> marscf::train::RunSummary {
    let run = run_config(out.to_path_buf(), max_steps);
    let parallel = DataParallel::new(devices.to_vec()).unwrap();
    train(model, &run, data, parallel, start, &mut Silent).unwrap()
}

/// The weights of the state a run saved in `dir`, by path.
fn saved_weights(dir: &Path, device: &burn::tensor::Device) -> BTreeMap<String, Tensor<1>> {
    param_values(&marscf::checkpoint::load(&dir.join("last/model"), device).unwrap())
}

/// Every tensor of `a` equals its namesake in `b` bit for bit.
fn assert_identical(what: &str, a: &BTreeMap<String, Tensor<1>>, b: &BTreeMap<String, Tensor<1>>) {
    assert_eq!(a.len(), b.len(), "{what}: other parameters");
    for (path, value) in a {
        assert_eq!(
            max_abs_diff(value.clone(), b[path].clone()),
            0.0,
            "{path} {what}"
        );
    }
}

/// Fifteen Adamax steps on 16 embedded digits lower `config`'s training bits/dim by more
/// than 0.3.
fn check_loss_falls(name: &str, config: &MarScfConfig) {
    let device = device();
    device.seed(162);
    let set = digits(16, false);
    let (model, x) = initialized_model(config, &set, true, &device);
    let options = OptimOptions {
        lr: 3e-3,
        warmup_steps: 0,
        ..OptimOptions::default()
    };
    let mut training = Training::new(model, options);
    let mut losses = Vec::new();
    for _ in 0..15 {
        match training.step(x.clone()).unwrap() {
            StepOutcome::Applied { bits_per_dim, .. } => losses.push(bits_per_dim),
            skipped => panic!("{name}: {skipped:?}"),
        }
    }
    assert!(
        losses[14] < losses[0] - 0.3,
        "{name}: bits/dim {:.3} -> {:.3}",
        losses[0],
        losses[14]
    );
}

#[test]
fn a_few_steps_lower_the_loss() {
    let _rng = exclusive_rng();
    check_loss_falls("affine, mAR prior", &tiny_model());
}

#[test]
fn a_few_steps_lower_the_loss_of_an_additive_coupling() {
    let _rng = exclusive_rng();
    let mut config = tiny_model();
    config.flow.coupling = CouplingKind::Additive;
    check_loss_falls("additive, mAR prior", &config);
}

#[test]
fn a_few_steps_lower_the_loss_with_glows_prior() {
    let _rng = exclusive_rng();
    let config = tiny_model().with_prior(PriorKind::Glow);
    check_loss_falls("affine, Glow prior", &config);
}

#[test]
fn a_few_steps_lower_the_loss_with_the_standard_normal_prior() {
    let _rng = exclusive_rng();
    let config = tiny_model().with_prior(PriorKind::StandardNormal);
    check_loss_falls("affine, N(0, 1) prior", &config);
}

#[test]
fn resuming_reproduces_the_uninterrupted_run_exactly() {
    let _rng = exclusive_rng();
    let device = device();
    let data = training_data(digits(40, false), digits(16, true));
    let model = tiny_model();
    let straight = temp_dir("straight");
    let interrupted = temp_dir("interrupted");
    let devices = std::slice::from_ref(&device);
    train_tiny(&model, &data, &straight, 7, devices, Start::New);
    // Stop after 3 steps (a checkpoint), then resume to 7: crossing an epoch boundary (5 batches).
    train_tiny(&model, &data, &interrupted, 3, devices, Start::New);
    let summary = train_tiny(&model, &data, &interrupted, 7, devices, Start::Resume);
    assert_eq!(summary.steps, 7);
    assert_eq!(summary.position.epoch, 1);
    assert_identical(
        "differs after resume",
        &saved_weights(&straight, &device),
        &saved_weights(&interrupted, &device),
    );
    // Both runs wrote the same metrics, the plot, the samples and the best checkpoint.
    let log = |dir: &Path| {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(log(&straight), log(&interrupted));
    for file in [
        "bits_per_dim.png",
        "samples.png",
        "marscf_mnist-sample_affine_1_8.bpk",
        "marscf_mnist-sample_affine_1_8.json",
    ] {
        assert!(interrupted.join(file).is_file(), "{file} missing");
    }
}

#[test]
fn non_finite_batches_are_skipped_then_stop_the_run() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(258);
    let set = digits(8, false);
    let (model, x) = initialized_tiny_model(&set, false, &device);
    let options = OptimOptions {
        nan_patience: 2,
        ..OptimOptions::default()
    };
    let mut training = Training::new(model, options);
    let before = param_values(&training.model);
    let mut poisoned = x
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    poisoned[100] = f32::NAN;
    let poisoned = Tensor::<4>::from_data(TensorData::new(poisoned, [8, 1, 28, 28]), &device);
    assert!(matches!(
        training.step(poisoned.clone()).unwrap(),
        StepOutcome::Skipped { .. }
    ));
    assert_eq!((training.counters.step, training.counters.skipped), (0, 1));
    for (path, value) in param_values(&training.model) {
        assert_eq!(
            max_abs_diff(value, before[&path].clone()),
            0.0,
            "{path} changed on a skipped step"
        );
    }
    // A good step resets the count; two bad ones in a row stop training.
    assert!(matches!(
        training.step(x).unwrap(),
        StepOutcome::Applied { .. }
    ));
    assert!(matches!(
        training.step(poisoned.clone()).unwrap(),
        StepOutcome::Skipped { .. }
    ));
    let err = training.step(poisoned).map(|_| ()).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Diverged {
                step: 1,
                consecutive: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn evaluating_a_reference_checkpoint_gives_its_recorded_bits_per_dim() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(314);
    for folder in parity_folders() {
        let (model, _) =
            load_reference(&folder.join("checkpoint.pt"), None, None, false, &device).unwrap();
        let io = read_safetensors(&folder.join("io.safetensors"));
        let x = io["x"].as_slice::<f32>().unwrap();
        let dims = io["x"].shape().to_vec();
        // The fixture's pixels back to bytes: (x + 0.5) * 255.
        let pixels: Vec<u8> = x
            .iter()
            .map(|v| ((v + 0.5) * 255.0).round() as u8)
            .collect();
        let set = ImageSet {
            shape: [dims[1], dims[2], dims[3]],
            pixels: pixels.into(),
            labels: vec![0; dims[0]],
        };
        let ours = evaluate(&model, &set, 8, 0, &device).unwrap();
        let recorded = io["nll_bits_per_dim"].as_slice::<f32>().unwrap();
        let recorded = recorded.iter().map(|v| *v as f64).sum::<f64>() / recorded.len() as f64;
        // Different dequantisation noise moves bits/dim by far less than 0.01.
        assert!(
            (ours - recorded).abs() < 0.01,
            "{}: {ours} vs {recorded}",
            folder.display()
        );
    }
}

#[test]
fn data_that_does_not_fit_is_an_error() {
    let _rng = exclusive_rng();
    let device = device();
    let wrong = ImageSet::from_mnist(&embedded::test(), MnistLayout::Reference).take(8);
    let err = train(
        &tiny_model(),
        &run_config(temp_dir("wrong").to_path_buf(), 1),
        &TrainingData {
            info: DataInfo::new(DatasetName::MnistSample, MnistLayout::Reference, None),
            train: wrong.clone(),
            test: wrong,
        },
        DataParallel::single(&device),
        Start::New,
        &mut Silent,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, TrainError::Data(_)), "{err}");
}

#[test]
fn a_resume_on_other_training_data_is_refused_with_what_differs() {
    let _rng = exclusive_rng();
    let device = device();
    let out = temp_dir("other-data");
    let data = training_data(digits(16, false), digits(8, true));
    train_tiny(
        &tiny_model(),
        &data,
        &out,
        1,
        std::slice::from_ref(&device),
        Start::New,
    );
    let resume_on = |train_set: ImageSet| {
        let run = run_config(out.to_path_buf(), 2);
        let data = training_data(train_set, digits(8, true));
        train(
            &tiny_model(),
            &run,
            &data,
            DataParallel::single(&device),
            Start::Resume,
            &mut Silent,
        )
        .map(|_| ())
        .unwrap_err()
    };
    // A smaller copy (the epoch order would index past its end), and other images.
    for (train_set, differs) in [
        (digits(12, false), "data.train_images: saved 16, given 12"),
        (digits(16, true), "data.train_fingerprint"),
    ] {
        let err = resume_on(train_set);
        assert!(
            matches!(err, TrainError::ResumeMismatch { .. }) && err.to_string().contains(differs),
            "{err}"
        );
    }
    // The same images resume.
    train_tiny(
        &tiny_model(),
        &data,
        &out,
        2,
        std::slice::from_ref(&device),
        Start::Resume,
    );
}

#[test]
fn a_folder_that_holds_no_run_is_refused_untouched() {
    let _rng = exclusive_rng();
    let device = device();
    let out = temp_dir("not-a-run");
    std::fs::create_dir_all(out.join("last.tmp")).unwrap();
    let files = ["a.tmp-1", "b.tmp.png", ".c.x.marscf-tmp", "last.tmp/d"];
    for name in files {
        std::fs::write(out.join(name), name).unwrap();
    }
    let data = training_data(digits(16, false), digits(8, true));
    for start in [Start::Resume, Start::Overwrite] {
        let run = run_config(out.to_path_buf(), 1);
        let parallel = DataParallel::single(&device);
        let err = train(&tiny_model(), &run, &data, parallel, start, &mut Silent)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(err, TrainError::NotARun { .. }),
            "{start:?}: {err}"
        );
        for name in files {
            assert_eq!(std::fs::read_to_string(out.join(name)).unwrap(), name);
        }
    }
}

#[test]
fn a_run_folder_has_one_writer_at_a_time() {
    let _rng = exclusive_rng();
    let device = device();
    let out = temp_dir("one-writer");
    let folder = RunFolder::new(&out.join("run"));
    let lock = folder.claim().unwrap();
    let holder = format!("pid {}", std::process::id());
    let err = folder.lock().map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, TrainError::RunLocked { holder: h, .. } if h.starts_with(&holder)),
        "{err}"
    );
    let data = training_data(digits(16, false), digits(8, true));
    for start in [Start::Resume, Start::Overwrite] {
        let run = run_config(folder.dir.clone(), 1);
        let parallel = DataParallel::single(&device);
        let err = train(&tiny_model(), &run, &data, parallel, start, &mut Silent)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(err, TrainError::RunLocked { .. }),
            "{start:?}: {err}"
        );
    }
    drop(lock);
    let run = run_config(folder.dir.clone(), 1);
    train(
        &tiny_model(),
        &run,
        &data,
        DataParallel::single(&device),
        Start::Resume,
        &mut Silent,
    )
    .unwrap();
}

#[test]
fn an_evaluation_that_scores_no_image_is_an_error() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(487);
    let model = scored_model(&tiny_model());
    let empty = digits(0, true);
    let err = evaluate_detailed(&model, &empty, &EvalOptions::default(), &device).unwrap_err();
    assert!(matches!(err, ModelError::NothingToScore { .. }), "{err}");
    let options = EvalOptions {
        batch_size: 8,
        protocol: Protocol::Reference,
        ..EvalOptions::default()
    };
    let err = evaluate_detailed(&model, &digits(5, true), &options, &device).unwrap_err();
    assert!(err.to_string().contains("5 test images"), "{err}");
    for options in [
        EvalOptions {
            batch_size: 0,
            ..EvalOptions::default()
        },
        EvalOptions {
            draws: 0,
            ..EvalOptions::default()
        },
    ] {
        let err = evaluate_detailed(&model, &digits(5, true), &options, &device).unwrap_err();
        assert!(matches!(err, ModelError::Setting { .. }), "{err}");
    }
}

#[test]
fn settings_out_of_range_are_refused_before_anything_is_written() {
    let _rng = exclusive_rng();
    let device = device();
    let out = temp_dir("ranges");
    let data = training_data(digits(16, false), digits(8, true));
    let base = run_config(out.join("run"), 1);
    let cases: [(&str, RunConfig); 6] = [
        (
            "grad_clip",
            RunConfig {
                optim: OptimOptions {
                    grad_clip: Some(-1.0),
                    ..base.optim.clone()
                },
                ..base.clone()
            },
        ),
        (
            "ema",
            RunConfig {
                optim: OptimOptions {
                    ema: Some(1.0),
                    ..base.optim.clone()
                },
                ..base.clone()
            },
        ),
        (
            "lr",
            RunConfig {
                optim: OptimOptions {
                    lr: f64::NAN,
                    ..base.optim.clone()
                },
                ..base.clone()
            },
        ),
        (
            "nan_patience",
            RunConfig {
                optim: OptimOptions {
                    nan_patience: 0,
                    ..base.optim.clone()
                },
                ..base.clone()
            },
        ),
        (
            "max_minutes",
            RunConfig {
                max_minutes: Some(0.0),
                ..base.clone()
            },
        ),
        (
            "temperature",
            RunConfig {
                temperature: f64::INFINITY,
                ..base.clone()
            },
        ),
    ];
    for (name, run) in cases {
        let parallel = DataParallel::single(&device);
        let err = train(
            &tiny_model(),
            &run,
            &data,
            parallel,
            Start::New,
            &mut Silent,
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(&err, TrainError::Model(ModelError::Setting { name: n, .. }) if *n == name),
            "{name}: {err}"
        );
        assert!(!out.join("run").exists(), "{name}: the folder was created");
    }
}

#[test]
fn an_n_bit_run_records_its_depth_and_refuses_data_of_another() {
    let _rng = exclusive_rng();
    let device = device();
    let model = tiny_model().with_bits(5);
    let mut data = training_data(digits(16, false), digits(8, true));
    let out = temp_dir("five-bits");
    // The data described as 8-bit: refused before anything is written.
    let err = train(
        &model,
        &run_config(out.to_path_buf(), 2),
        &data,
        DataParallel::single(&device),
        Start::New,
        &mut Silent,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, TrainError::Data(_)), "{err}");
    data.info = data.info.with_bits(5);
    let summary = train(
        &model,
        &run_config(out.to_path_buf(), 2),
        &data,
        DataParallel::single(&device),
        Start::New,
        &mut Silent,
    )
    .unwrap();
    let info = marscf::checkpoint::load_info(&summary.best_checkpoint).unwrap();
    assert_eq!(info.model.bits, 5);
    let recorded = info.origin.data.unwrap();
    assert_eq!(recorded.bits, 5);
    assert!(
        recorded.preprocessing.contains("5 bits"),
        "{}",
        recorded.preprocessing
    );
    // The checkpoint alone knows its depth: it evaluates as the run did.
    let loaded = marscf::checkpoint::load(&summary.best_checkpoint, &device).unwrap();
    let again = evaluate(&loaded, &data.test, 16, 7, &device).unwrap();
    let best = summary.position.best_test_bits_per_dim.unwrap();
    assert!((again - best).abs() < 1e-9, "{again} vs {best}");
}

/// The tiny model initialised on training digits and perturbed, so that every term of the
/// objective is non-trivial.
fn scored_model(config: &MarScfConfig) -> marscf::MarScf {
    let (model, _) = initialized_model(config, &digits(16, false), true, &device());
    marscf_test_support::numerics::perturb(model, 0.02)
}

#[test]
fn one_draw_is_the_evaluation_as_it_always_was() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(655);
    let model = scored_model(&tiny_model());
    let test = digits(40, true);
    // The evaluation as written before draws existed: noise stream 0xe7a1 per batch, f32
    // batch sums accumulated in f64.
    let mut total = 0.0;
    let indices: Vec<usize> = (0..test.len()).collect();
    for (b, chunk) in indices.chunks(16).enumerate() {
        let options = marscf::data::BatchOptions {
            dequantize: true,
            ..Default::default()
        };
        let x = marscf::data::make_batch(
            &test,
            chunk,
            options,
            &mut marscf::data::stream(3, 0xe7a1, b as u64),
            &device,
        );
        total += model
            .forward(x)
            .unwrap()
            .bits_per_dim
            .sum()
            .into_scalar::<f32>() as f64;
    }
    let before = total / test.len() as f64;
    let options = EvalOptions {
        batch_size: 16,
        seed: 3,
        ..EvalOptions::default()
    };
    let detailed = evaluate_detailed(&model, &test, &options, &device).unwrap();
    assert_eq!(detailed.bits_per_dim, before);
    assert_eq!(evaluate(&model, &test, 16, 3, &device).unwrap(), before);
    // With one draw the importance-weighted bound is that draw's bound, to the bit.
    for image in &detailed.images {
        assert_eq!(image.iw_bits_per_dim, image.bits_per_dim, "{image:?}");
    }
}

#[test]
fn the_importance_weighted_bound_is_the_log_mean_density_of_the_draws() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(690);
    let model = scored_model(&tiny_model());
    let (test, draws, seed) = (digits(12, true), 4, 5);
    let options = EvalOptions {
        batch_size: 12,
        seed,
        draws,
        ..EvalOptions::default()
    };
    let e = evaluate_detailed(&model, &test, &options, &device).unwrap();
    // Each draw's bounds as the evaluation draws them (one batch: stream 0xe7a1 at k 2^32),
    // then -log2 of the mean density per dimension, by its definition.
    let all: Vec<usize> = (0..test.len()).collect();
    let per_draw: Vec<Vec<f64>> = (0..draws as u64)
        .map(|k| {
            let options = marscf::data::BatchOptions {
                dequantize: true,
                ..Default::default()
            };
            let noise = &mut marscf::data::stream(seed, 0xe7a1, k << 32);
            let x = marscf::data::make_batch(&test, &all, options, noise, &device);
            let bits = model.forward(x).unwrap().bits_per_dim;
            bits.into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect()
        })
        .collect();
    let nats_per_bit = model.config.dims_per_sample() as f64 * std::f64::consts::LN_2;
    for (i, image) in e.images.iter().enumerate() {
        let log_p: Vec<f64> = per_draw.iter().map(|b| -b[i] * nats_per_bit).collect();
        let max = log_p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mean_p = log_p.iter().map(|l| (l - max).exp()).sum::<f64>() / draws as f64;
        let want = -(max + mean_p.ln()) / nats_per_bit;
        let mean = per_draw.iter().map(|b| b[i]).sum::<f64>() / draws as f64;
        assert!(
            (image.iw_bits_per_dim - want).abs() < 1e-9,
            "{image:?}: want {want}"
        );
        assert!(
            (image.bits_per_dim - mean).abs() < 1e-9,
            "{image:?}: mean {mean}"
        );
        // Jensen: never above the mean of the bounds (the draws differ, so strictly below).
        assert!(image.iw_bits_per_dim < image.bits_per_dim, "{image:?}");
    }
    assert!(e.iw_bits_per_dim < e.bits_per_dim);
    assert!(e.iw_standard_error.is_some_and(|se| se > 0.0));
}

#[test]
fn the_breakdown_sums_to_the_total_and_draws_average() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(696);
    for config in [
        tiny_model(),
        tiny_model().with_prior(PriorKind::Glow).with_bits(5),
    ] {
        let model = scored_model(&config);
        let test = digits(24, true);
        let options = EvalOptions {
            batch_size: 10,
            seed: 1,
            draws: 3,
            ..EvalOptions::default()
        };
        let e = evaluate_detailed(&model, &test, &options, &device).unwrap();
        let sum = e.breakdown.total();
        assert!(
            (sum - e.bits_per_dim).abs() < 1e-5,
            "terms sum to {sum}, total {}",
            e.bits_per_dim
        );
        assert!((e.breakdown.dequantization - config.bits as f64).abs() < 1e-5);
        assert_eq!(e.breakdown.levels.len(), 2);
        for level in &e.breakdown.levels {
            assert!(level.log_det != 0.0 && level.prior != 0.0, "{level:?}");
        }
        assert_eq!(e.images.len(), 24);
        assert_eq!(e.images[5].index, 5);
        assert_eq!(e.images[5].label, test.labels[5]);
        let mean = e.images.iter().map(|s| s.bits_per_dim).sum::<f64>() / 24.0;
        assert!((mean - e.bits_per_dim).abs() < 1e-5);
        // Three draws average three bounds: close to one draw's, not equal to it.
        let one = evaluate(&model, &test, 10, 1, &device).unwrap();
        assert!(one != e.bits_per_dim && (one - e.bits_per_dim).abs() < 0.05);
    }
}

#[test]
fn the_reference_protocol_drops_the_last_partial_batch() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(736);
    // An affine model has no dropout: the protocols differ only in the images scored.
    let model = scored_model(&tiny_model());
    let test = digits(24, true);
    let score = |protocol| {
        let options = EvalOptions {
            batch_size: 10,
            protocol,
            ..EvalOptions::default()
        };
        evaluate_detailed(&model, &test, &options, &device).unwrap()
    };
    let (ours, reference) = (score(Protocol::Ours), score(Protocol::Reference));
    assert_eq!((ours.images.len(), reference.images.len()), (24, 20));
    for (a, b) in ours.images.iter().zip(&reference.images) {
        assert_eq!(a.index, b.index);
        assert!(
            (a.bits_per_dim - b.bits_per_dim).abs() < 1e-5,
            "{a:?} vs {b:?}"
        );
    }
    let first_20 = ours.images[..20]
        .iter()
        .map(|s| s.bits_per_dim)
        .sum::<f64>()
        / 20.0;
    assert!((reference.bits_per_dim - first_20).abs() < 1e-5);
}

#[test]
fn images_come_back_through_the_flow_and_interpolation_ends_at_both_images() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(769);
    let model = scored_model(&tiny_model());
    let x = marscf::data::make_batch(
        &digits(8, true),
        &(0..8).collect::<Vec<_>>(),
        marscf::data::BatchOptions::default(),
        &mut marscf::data::stream(0, 0, 0),
        &device,
    );
    let error = model.reconstruction_error(x.clone()).unwrap();
    assert!(error < 1e-4, "reconstruction error {error}");
    let [a, b] = [0, 1].map(|i| x.clone().narrow(0, i, 1));
    let strip = model.interpolate(a.clone(), b.clone(), 4).unwrap();
    assert_eq!(strip.dims()[0], 5);
    let ends = [strip.clone().narrow(0, 0, 1), strip.clone().narrow(0, 4, 1)];
    for (end, image) in ends.into_iter().zip([a.clone(), b.clone()]) {
        assert!(max_abs_diff(end, image) < 1e-4);
    }
    // The middle is neither end.
    let middle = strip.narrow(0, 2, 1);
    assert!(max_abs_diff(middle.clone(), a) > 1e-3 && max_abs_diff(middle, b) > 1e-3);
}

#[test]
fn the_standard_error_shrinks_as_one_over_the_root_of_the_images() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(796);
    let model = scored_model(&tiny_model());
    let se = |n: usize| {
        let options = EvalOptions {
            batch_size: 32,
            ..EvalOptions::default()
        };
        evaluate_detailed(&model, &digits(n, true), &options, &device)
            .unwrap()
            .standard_error
            .unwrap()
    };
    let ratio = se(16) / se(64);
    // sqrt(64 / 16) = 2; no scaling would give about 1, dividing by N about 4.
    assert!((1.4..2.8).contains(&ratio), "SE(16) / SE(64) = {ratio}");
    assert_eq!(
        marscf::train::evaluate::standard_error([1.0].into_iter()),
        None
    );
    let two = marscf::train::evaluate::standard_error([1.0, 3.0].into_iter()).unwrap();
    assert!((two - 1.0).abs() < 1e-12, "s = sqrt(2), / sqrt(2)");
}

#[test]
fn per_image_scores_are_written_once_unless_overwriting() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(823);
    let model = scored_model(&tiny_model());
    let test = digits(5, true);
    let options = EvalOptions {
        draws: 2,
        ..EvalOptions::default()
    };
    let e = evaluate_detailed(&model, &test, &options, &device).unwrap();
    let dir = temp_dir("per-image");
    let csv = dir.join("scores.csv");
    write_per_image_csv(&e, &csv, Existing::Keep).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "index,label,bits_per_dim,iw_bits_per_dim");
    assert_eq!(lines.len(), 6);
    let fields: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(fields[0], "2");
    assert_eq!(fields[1], test.labels[2].to_string());
    assert_eq!(fields[2].parse::<f64>().unwrap(), e.images[2].bits_per_dim);
    assert_eq!(
        fields[3].parse::<f64>().unwrap(),
        e.images[2].iw_bits_per_dim
    );
    // Two draws: the importance-weighted column below the mean's.
    assert!(fields[3].parse::<f64>().unwrap() < fields[2].parse::<f64>().unwrap());
    std::fs::write(&csv, "keep").unwrap();
    let err = write_per_image_csv(&e, &csv, Existing::Keep).unwrap_err();
    assert!(matches!(err, ModelError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "keep");
    write_per_image_csv(&e, &csv, Existing::Replace).unwrap();
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), text);
}

/// The devices of a two-device test: Flex and NdArray (compiled into every test build by
/// the dev-dependencies), two backends with their own kernels and generators.
#[cfg(feature = "flex")]
fn two_devices() -> Vec<burn::tensor::Device> {
    #[allow(deprecated)]
    let ndarray = burn::tensor::Device::ndarray();
    vec![burn::tensor::Device::flex(), ndarray]
}

/// The devices of a two-device test without Flex: the test device twice (two shards and two
/// replicas of the model on one device).
#[cfg(not(feature = "flex"))]
fn two_devices() -> Vec<burn::tensor::Device> {
    vec![device(), device()]
}

/// Every tensor of `a` equals its namesake in `b` within `rel` of its largest magnitude.
fn assert_close_tensors(
    what: &str,
    a: &BTreeMap<String, Tensor<1>>,
    b: &BTreeMap<String, Tensor<1>>,
    rel: f64,
) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: other parameters"
    );
    for (path, value) in a {
        let scale = value.clone().abs().max().into_scalar::<f32>() as f64;
        let diff = max_abs_diff(value.clone(), b[path].clone());
        assert!(
            diff <= rel * scale.max(1e-12),
            "{what} {path}: differs by {diff:e} (largest magnitude {scale:e})"
        );
    }
}

#[test]
fn a_step_over_two_devices_is_the_step_on_the_whole_batch() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(889);
    // 15 images: shards of 8 and 7, so that each shard's weight in the mean matters.
    let (model, x) = initialized_tiny_model(&digits(15, false), true, &device);
    let options = OptimOptions {
        lr: 3e-3,
        warmup_steps: 0,
        grad_clip: Some(1.0),
        ..OptimOptions::default()
    };
    let lr = options.lr;
    let mut one = Training::new(model.clone(), options.clone());
    let parallel = DataParallel::new(two_devices()).unwrap();
    let mut two = Training::new(model, options)
        .with_devices(parallel.clone())
        .unwrap();
    assert_eq!(two.devices().len(), 2);

    let params = param_paths(&one.model);
    let whole = DataParallel::single(&device)
        .gradient(&one.model, x.clone(), &params)
        .unwrap();
    let sharded = parallel.gradient(&two.model, x.clone(), &params).unwrap();
    let rel = (whole.bits_per_dim - sharded.bits_per_dim).abs() / whole.bits_per_dim;
    assert!(
        rel < 1e-6,
        "loss {} vs {}",
        whole.bits_per_dim,
        sharded.bits_per_dim
    );
    let whole = gradients_by_path(&one.model, &whole.gradients.unwrap());
    let sharded = gradients_by_path(&two.model, &sharded.gradients.unwrap());
    assert!(!whole.is_empty());
    assert_close_tensors("gradient", &whole, &sharded, 1e-5);

    // The whole step (norm, clipping, Adamax) leaves the same weights on the main device.
    for _ in 0..2 {
        let (a, b) = (one.step(x.clone()).unwrap(), two.step(x.clone()).unwrap());
        match (a, b) {
            (
                StepOutcome::Applied { grad_norm: na, .. },
                StepOutcome::Applied { grad_norm: nb, .. },
            ) => {
                assert!((na - nb).abs() <= 1e-5 * na, "gradient norm {na} vs {nb}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Adamax moves a weight by up to lr per step whatever its gradient's size, so the
    // gradients' rounding differences move small-gradient weights differently: the two
    // agree to 1 % of the largest movement two steps allow.
    assert_within(
        "updated parameter",
        &param_values(&one.model),
        &param_values(&two.model),
        0.01 * lr * 2.0,
    );
}

/// Every tensor of `a` is within `bound` of its namesake in `b`, element by element.
fn assert_within(
    what: &str,
    a: &BTreeMap<String, Tensor<1>>,
    b: &BTreeMap<String, Tensor<1>>,
    bound: f64,
) {
    for (path, value) in a {
        let diff = max_abs_diff(value.clone(), b[path].clone());
        assert!(
            diff <= bound,
            "{what} {path}: differs by {diff:e} (bound {bound:e})"
        );
    }
}

#[test]
fn a_two_device_run_initialises_as_one_device_and_resumes_on_one() {
    let _rng = exclusive_rng();
    let device = device();
    let one = std::slice::from_ref(&device);
    let data = training_data(digits(40, false), digits(16, true));
    let model = tiny_model();
    // ActNorm's data-dependent initialisation sees the whole first batch, whatever the
    // number of devices: the saved initial states are identical.
    let (init_one, init_two) = (temp_dir("init-one"), temp_dir("init-two"));
    assert_eq!(
        train_tiny(&model, &data, &init_one, 0, one, Start::New).steps,
        0
    );
    assert_eq!(
        train_tiny(&model, &data, &init_two, 0, &two_devices(), Start::New).steps,
        0
    );
    assert_identical(
        "initialised differently",
        &saved_weights(&init_one, &device),
        &saved_weights(&init_two, &device),
    );

    // Three steps on two devices, resumed on one to five: the one-device run's weights.
    let (straight, interrupted) = (temp_dir("dp-straight"), temp_dir("dp-interrupted"));
    train_tiny(&model, &data, &straight, 5, one, Start::New);
    train_tiny(&model, &data, &interrupted, 3, &two_devices(), Start::New);
    let summary = train_tiny(&model, &data, &interrupted, 5, one, Start::Resume);
    assert_eq!(summary.steps, 5);
    // The shards' sums round differently from the whole batch's, and Adamax moves a weight
    // by up to lr per step whatever its gradient's size: the runs agree to 1 % of the
    // largest movement five steps allow (a lost batch or optimizer state moves weights by
    // a good part of it).
    let bound = 0.01 * run_config(straight.to_path_buf(), 5).optim.lr * 5.0;
    assert_within(
        "weight after resume",
        &saved_weights(&straight, &device),
        &saved_weights(&interrupted, &device),
        bound,
    );
}

#[test]
fn a_two_device_run_with_dropout_is_reproducible() {
    let _rng = exclusive_rng();
    let device = device();
    let mut model = tiny_model();
    model.flow.coupling = CouplingKind::MixLogCdf(
        MixLogCdfConfig::new()
            .with_components(3)
            .with_blocks(1)
            .with_heads(2)
            .with_dropout(0.3),
    );
    let data = training_data(digits(24, false), digits(8, true));
    // The shards draw their masks from the seeded generators in order: the same run twice
    // (and a draw of something else in between) ends with the same weights.
    let runs = [temp_dir("dp-dropout-a"), temp_dir("dp-dropout-b")];
    for dir in &runs {
        train_tiny(&model, &data, dir, 2, &two_devices(), Start::New);
        Tensor::<1>::random([7], burn::tensor::Distribution::Default, &device);
    }
    assert_identical(
        "differs",
        &saved_weights(&runs[0], &device),
        &saved_weights(&runs[1], &device),
    );
}
