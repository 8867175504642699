//! Parity with the reference PyTorch implementation, over every fixture folder (see
//! `shared/fixtures/reference-parity/README.md`): the reference's checkpoint is loaded,
//! its recorded input pushed through, and every layer output, log-det, prior term,
//! objective and bits/dim compared; then the inverse from the recorded latents.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use marscf::core::{CouplingKind, FlowEvent, MultiScaleFlowConfig};
use marscf::import::{KeyTable, is_reference_only, load_reference, reference_step_index};
use marscf::params::{flat_gradient, param_paths, param_values};
use marscf::train::{OptimOptions, StepOutcome, Training};
use marscf::{MarScf, MarScfConfig};
use marscf_test_support::{
    model::{device, exclusive_rng},
    reference::{parity_folders, read_safetensors},
};

/// The fixture's `config.json` as a model configuration.
fn fixture_config(folder: &Path) -> MarScfConfig {
    let text = std::fs::read_to_string(folder.join("config.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let int = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("config.json: {key}")) as usize
    };
    let image: Vec<usize> = json["image_shape_chw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let coupling: CouplingKind = json["coupling"].as_str().unwrap().parse().unwrap();
    let flow =
        MultiScaleFlowConfig::new([image[0], image[1], image[2]], int("L"), int("K"), int("C"))
            .with_coupling(coupling);
    MarScfConfig::new(flow)
}

struct Fixture {
    tensors: BTreeMap<String, TensorData>,
    device: Device,
    failures: Vec<String>,
}

impl Fixture {
    fn get<const D: usize>(&self, name: &str) -> Tensor<D> {
        let data = self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no {name}"))
            .clone();
        Tensor::from_data(data, &self.device)
    }

    /// Records a failure unless `max |ours - ref| <= atol + rtol * scale`, where scale is
    /// `max |ref|` (`whole`) or elementwise `|ref|`.
    fn compare<const D: usize>(
        &mut self,
        name: &str,
        ours: Tensor<D>,
        atol: f64,
        rtol: f64,
        whole: bool,
    ) {
        let reference: Tensor<D> = self.get(name);
        assert_eq!(ours.dims(), reference.dims(), "{name}: shape");
        let err = (ours - reference.clone()).abs();
        let excess = if whole {
            let scale = reference.abs().max().into_scalar::<f32>() as f64;
            err.max().into_scalar::<f32>() as f64 - (atol + rtol * scale)
        } else {
            (err - reference.abs().mul_scalar(rtol) - atol)
                .max()
                .into_scalar::<f32>() as f64
        };
        if excess > 0.0 {
            self.failures
                .push(format!("{name}: exceeds tolerance by {excess:e}"));
        }
    }
}

/// Reference module name of a traced event.
fn reference_name(event: FlowEvent, steps: usize) -> String {
    let (index, kind) = match event {
        FlowEvent::Squeeze { level } => (level * (steps + 2), "SqueezeLayer"),
        FlowEvent::Step { level, step } => (reference_step_index(level, step, steps), "FlowStep"),
        FlowEvent::Split { level } => (level * (steps + 2) + steps + 1, "Split2dMsC"),
    };
    format!("layer{index:03}_{kind}")
}

fn check_folder(folder: &Path) -> Vec<String> {
    let device = device();
    device.seed(97);
    let config = fixture_config(folder);
    let (model, report): (MarScf, _) = load_reference(
        &folder.join("checkpoint.pt"),
        Some(&config),
        None,
        false,
        &device,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    assert!(report.problems.is_empty());
    let mut fixture = Fixture {
        tensors: read_safetensors(&folder.join("io.safetensors")),
        device,
        failures: Vec::new(),
    };

    let x: Tensor<4> = fixture.get("x_dequantized");
    let mut traced = Vec::new();
    let output = model
        .forward_traced(x.clone(), |event, state| {
            traced.push((event, state.x.clone(), state.logdet.clone()))
        })
        .unwrap();
    let steps = config.flow.steps;
    let expected_layers = fixture
        .tensors
        .keys()
        .filter(|k| k.starts_with("layer") && k.ends_with("_out"))
        .count();
    assert_eq!(
        traced.len(),
        expected_layers,
        "{}: traced layer count",
        folder.display()
    );
    for (event, out, logdet) in traced {
        let name = reference_name(event, steps);
        fixture.compare(&format!("{name}_out"), out, 1e-4, 1e-4, true);
        fixture.compare(&format!("{name}_logdet"), logdet, 1e-2, 1e-5, false);
    }
    for (level, log_p) in output.encoded.log_priors.iter().enumerate() {
        fixture.compare(
            &format!("prior_level{}_logp", level + 1),
            log_p.clone(),
            1e-2,
            1e-5,
            false,
        );
    }
    fixture.compare("objective", output.objective, 1e-2, 1e-5, false);
    fixture.compare("nll_bits_per_dim", output.bits_per_dim, 1e-4, 0.0, false);

    // The inverse from the reference's latents.
    let levels = config.flow.levels;
    let mut latents: Vec<Tensor<4>> = (1..levels)
        .map(|l| fixture.get(&format!("split_level{l}_z2")))
        .collect();
    latents.push(fixture.get("z_top"));
    let x_back = model.decode(latents).unwrap();
    let inverse_tol = match config.flow.coupling {
        CouplingKind::Affine | CouplingKind::Additive => 1e-4,
        CouplingKind::MixLogCdf(_) => 1e-3,
    };
    fixture.compare("x_dequantized", x_back, inverse_tol, 0.0, true);
    fixture
        .failures
        .iter()
        .map(|f| format!("{}: {f}", folder.display()))
        .collect()
}

/// The gradient of the mean bits/dim of `x_dequantized` (training mode, dropout off)
/// against the reference's `grad_step1.<key>`; `None` where the folder has no
/// `train.safetensors`.
fn check_gradients(folder: &Path) -> Option<Vec<String>> {
    let train_file = folder.join("train.safetensors");
    if !train_file.is_file() {
        return None;
    }
    let device = device().autodiff();
    device.seed(178);
    let mut config = fixture_config(folder);
    if let CouplingKind::MixLogCdf(mixlogcdf) = &mut config.flow.coupling {
        mixlogcdf.dropout = 0.0;
    }
    let (model, _) = load_reference(
        &folder.join("checkpoint.pt"),
        Some(&config),
        None,
        false,
        &device,
    )
    .unwrap();
    let model = model.train();
    let io = read_safetensors(&folder.join("io.safetensors"));
    let train = read_safetensors(&train_file);
    let x = Tensor::<4>::from_data(io["x_dequantized"].clone(), &device);
    let loss = model.forward(x).unwrap().bits_per_dim.mean();
    let mut failures = Vec::new();
    let loss_value = loss.clone().into_scalar::<f32>();
    let loss_ref = train["loss_step1"].as_slice::<f32>().unwrap()[0];
    if (loss_value - loss_ref).abs() > 1e-4 {
        failures.push(format!("loss_step1: {loss_value} vs {loss_ref}"));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let params = param_paths(&model);
    let table = KeyTable::new(&config);
    let mut compared = 0;
    for (name, reference) in train.iter().filter(|(k, _)| k.starts_with("grad_step1.")) {
        let key = name.trim_start_matches("grad_step1.");
        let path = table.native_path(key);
        let Some(info) = params.get(&path) else {
            failures.push(format!("{key}: no parameter {path}"));
            continue;
        };
        let ours = flat_gradient(&grads, info)
            .unwrap_or_else(|| Tensor::zeros([reference.num_elements()], &device));
        let values = reference.as_slice::<f32>().unwrap().to_vec();
        let reference =
            Tensor::<1>::from_data(TensorData::new(values, [reference.num_elements()]), &device);
        let norm = |t: Tensor<1>| t.square().sum().sqrt().into_scalar::<f32>() as f64;
        let (diff, scale) = (norm(ours - reference.clone()), norm(reference));
        if diff > 1e-3 * scale + 1e-6 {
            failures.push(format!("{key}: |grad - ref| = {diff:e}, |ref| = {scale:e}"));
        }
        compared += 1;
    }
    assert!(compared > 0, "{}: no gradients compared", folder.display());
    Some(
        failures
            .iter()
            .map(|f| format!("{}: {f}", folder.display()))
            .collect(),
    )
}

/// Runs `check` on every fixture folder with training data, asserting that there is at
/// least one, and returns the failures of all.
fn check_training_folders(check: impl Fn(&Path) -> Option<Vec<String>>) -> Vec<String> {
    let folders = parity_folders();
    let checked: Vec<Vec<String>> = folders.iter().filter_map(|f| check(f)).collect();
    assert!(
        !checked.is_empty(),
        "none of the {} fixture folders has a train.safetensors: nothing was compared",
        folders.len()
    );
    checked.into_iter().flatten().collect()
}

#[test]
fn gradient_parity_with_reference_fixtures() {
    let _rng = exclusive_rng();
    let failures = check_training_folders(check_gradients);
    assert!(
        failures.is_empty(),
        "gradient parity failures:\n{}",
        failures.join("\n")
    );
}

/// Two of our Adamax steps (constant lr from `train-config.json`, dropout off) against the
/// reference's `param_step2.<key>` and `loss_step1/2`; `None` where the folder has no
/// `train.safetensors`.
fn check_optimizer(folder: &Path) -> Option<Vec<String>> {
    let train_file = folder.join("train.safetensors");
    if !train_file.is_file() {
        return None;
    }
    let device = device();
    device.seed(267);
    let mut config = fixture_config(folder);
    if let CouplingKind::MixLogCdf(mixlogcdf) = &mut config.flow.coupling {
        mixlogcdf.dropout = 0.0;
    }
    let train_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("train-config.json")).unwrap())
            .unwrap();
    let lr = train_config["lr"].as_f64().unwrap();
    let (model, _) = load_reference(
        &folder.join("checkpoint.pt"),
        Some(&config),
        None,
        false,
        &device,
    )
    .unwrap();
    let options = OptimOptions {
        lr,
        warmup_steps: 0,
        ..OptimOptions::default()
    };
    let mut training = Training::new(model, options);
    let io = read_safetensors(&folder.join("io.safetensors"));
    let train = read_safetensors(&train_file);
    let mut failures = Vec::new();
    for step in 1..=2 {
        let x = Tensor::<4>::from_data(io["x_dequantized"].clone(), &device);
        let StepOutcome::Applied { bits_per_dim, .. } = training.step(x).unwrap() else {
            panic!("{}: step {step} skipped", folder.display());
        };
        let reference = train[&format!("loss_step{step}")]
            .as_slice::<f32>()
            .unwrap()[0] as f64;
        if (bits_per_dim - reference).abs() > 1e-4 {
            failures.push(format!("loss_step{step}: {bits_per_dim} vs {reference}"));
        }
    }
    let table = KeyTable::new(&config);
    let ours = param_values(&training.model);
    let mut compared = 0;
    for (name, reference) in train.iter().filter(|(k, _)| k.starts_with("param_step2.")) {
        let key = name.trim_start_matches("param_step2.");
        let Some(value) = ours.get(&table.native_path(key)) else {
            // The reference-only parameters (top-level conditioning network) are not ours.
            assert!(
                is_reference_only(key, config.flow.levels),
                "{key}: no parameter"
            );
            continue;
        };
        let ours = value.clone().into_data().convert::<f32>();
        let ours = ours.as_slice::<f32>().unwrap();
        let grad = train
            .get(&format!("grad_step1.{key}"))
            .map(|g| g.as_slice::<f32>().unwrap().to_vec());
        let reference = reference.as_slice::<f32>().unwrap();
        for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
            // Where the reference gradient is below 1e-7, f32 noise decides the sign of the
            // update: allow one step of each sign (2 lr).
            let tiny = grad.as_ref().is_some_and(|g| g[i].abs() < 1e-7);
            let tolerance = if tiny { 2.0 * lr + 1e-5 } else { 1e-5 };
            if ((a - b).abs() as f64) > tolerance {
                failures.push(format!("{key}[{i}]: {a} vs {b}"));
                break;
            }
        }
        compared += 1;
    }
    assert!(compared > 0, "{}: no parameters compared", folder.display());
    Some(
        failures
            .iter()
            .map(|f| format!("{}: {f}", folder.display()))
            .collect(),
    )
}

#[test]
fn optimizer_parity_with_reference_fixtures() {
    let _rng = exclusive_rng();
    let failures = check_training_folders(check_optimizer);
    assert!(
        failures.is_empty(),
        "optimizer parity failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn parity_with_reference_fixtures() {
    let _rng = exclusive_rng();
    let failures: Vec<String> = parity_folders()
        .iter()
        .flat_map(|f| check_folder(f))
        .collect();
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}
