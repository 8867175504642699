//! Parity with the reference PyTorch implementation, over every fixture folder (see
//! `shared/fixtures/reference-parity/README.md`): the reference's checkpoint is loaded,
//! its recorded input pushed through, and every layer output, log-det, prior term,
//! objective and bits/dim compared; then the inverse from the recorded latents.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use common::{device, parity_folders, read_safetensors};
use marscf::core::{CouplingKind, FlowEvent, MixLogCdfConfig, MultiScaleFlowConfig};
use marscf::import::{load_reference, reference_step_index};
use marscf::{MarScf, MarScfConfig};

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
    let coupling = match json["coupling"].as_str().unwrap() {
        "affine" => CouplingKind::Affine,
        "mixlogcdf" => CouplingKind::MixLogCdf(MixLogCdfConfig::default()),
        other => panic!("unknown coupling {other}"),
    };
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
    let config = fixture_config(folder);
    let (model, report): (MarScf, _) =
        load_reference(&folder.join("checkpoint.pt"), Some(&config), false, &device)
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
        CouplingKind::Affine => 1e-4,
        CouplingKind::MixLogCdf(_) => 1e-3,
    };
    fixture.compare("x_dequantized", x_back, inverse_tol, 0.0, true);
    fixture
        .failures
        .iter()
        .map(|f| format!("{}: {f}", folder.display()))
        .collect()
}

#[test]
fn parity_with_reference_fixtures() {
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
