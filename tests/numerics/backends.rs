//! Cross-backend consistency: the same weights and inputs on the backend under test and on
//! the CPU backend (Flex), which is the reference. Compiled only where a second backend is:
//! `cargo test --features wgpu --test numerics backends` (or `vulkan`, `cuda`, `ndarray`);
//! `cargo gpu-tests --features wgpu` runs this and the other numeric targets. The backend
//! under test is the one `BURN_DEVICE` names, else the most capable one compiled in other
//! than Flex; naming Flex itself is refused, as it would compare Flex with Flex.
//!
//! Burn's CubeCL backends enable kernel fusion and autotuning by default, and both have had
//! wrong-result bugs in autoregressive use: the consistency tests below include the
//! autoregressive prior's sampling, its likelihood and a few training steps, so such a bug
//! fails here.

#![cfg(any(
    feature = "wgpu",
    feature = "vulkan",
    feature = "cuda",
    feature = "ndarray"
))]

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf::core::{CouplingKind, MixLogCdfConfig, MultiScaleFlowConfig};
use marscf::params::param_values;
use marscf::train::{OptimOptions, StepOutcome, Training};
use marscf::{MarScf, MarScfConfig, PriorKind};
use marscf_test_support::{
    model::exclusive_rng,
    numerics::{max_abs_diff, perturb, pixels},
};

/// The device of the backend under test (see the file's documentation).
fn gpu() -> Device {
    use marscf::device::{DEVICE_ENV, compiled_backends, device_named};
    let name = std::env::var(DEVICE_ENV)
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            compiled_backends()
                .into_iter()
                .find(|name| *name != "flex")
                .map(String::from)
        })
        .expect("the cfg above compiles in a backend other than flex");
    assert!(
        !name.eq_ignore_ascii_case("flex"),
        "{DEVICE_ENV}=flex would compare Flex with itself: name the backend under test"
    );
    device_named(&name).unwrap_or_else(|e| panic!("{e}"))
}

fn cpu() -> Device {
    marscf::device::device_named("flex").expect("the flex feature is on")
}

fn config(coupling: CouplingKind) -> MarScfConfig {
    let flow = MultiScaleFlowConfig::new([3, 16, 16], 3, 1, 16).with_coupling(coupling);
    MarScfConfig::new(flow).with_prior(PriorKind::Mar {
        hidden: 8,
        lstm_layers: 2,
    })
}

fn mixlogcdf() -> CouplingKind {
    CouplingKind::MixLogCdf(
        MixLogCdfConfig::new()
            .with_components(4)
            .with_blocks(1)
            .with_heads(2)
            .with_dropout(0.0),
    )
}

/// The same model on both devices: built and initialised on the CPU, perturbed, copied.
fn twin_models(coupling: CouplingKind) -> (MarScf, MarScf, Tensor<4>) {
    let cpu = cpu();
    cpu.seed(3);
    let x = pixels([4, 3, 16, 16], &cpu);
    let model = config(coupling)
        .init(&cpu)
        .unwrap()
        .initialize(x.clone())
        .unwrap();
    let model = perturb(model, 0.02);
    let on_gpu = model.clone().to_device(&gpu());
    (model, on_gpu, x)
}

fn to(t: Tensor<4>, device: &Device) -> Tensor<4> {
    Tensor::from_data(t.into_data(), device)
}

fn relative(ours: Tensor<1>, reference: Tensor<1>) -> f64 {
    let scale = reference.clone().abs().max().into_scalar::<f32>() as f64;
    max_abs_diff(ours, reference) / scale.max(1.0)
}

#[test]
fn forward_log_dets_and_inverse_agree_with_the_cpu() {
    let _rng = exclusive_rng();
    for coupling in [CouplingKind::Affine, mixlogcdf()] {
        let (cpu_model, gpu_model, x) = twin_models(coupling.clone());
        let on_cpu = cpu_model.forward(x.clone()).unwrap();
        let on_gpu = gpu_model.forward(to(x.clone(), &gpu())).unwrap();
        let objective = relative(
            Tensor::from_data(on_gpu.objective.into_data(), &cpu()),
            on_cpu.objective,
        );
        assert!(
            objective < 1e-4,
            "{coupling:?}: objective differs by {objective:e} (relative)"
        );
        for (a, b) in on_cpu.encoded.latents.iter().zip(&on_gpu.encoded.latents) {
            let b = to(b.clone(), &cpu());
            let scale = a.clone().abs().max().into_scalar::<f32>() as f64;
            assert!(
                max_abs_diff(a.clone(), b) / scale.max(1.0) < 1e-4,
                "{coupling:?}: latents differ"
            );
        }
        // The inverse on the device reconstructs the input.
        let x_back = to(gpu_model.decode(on_gpu.encoded.latents).unwrap(), &cpu());
        let tolerance = if coupling == CouplingKind::Affine {
            1e-4
        } else {
            1e-3
        };
        assert!(
            max_abs_diff(x_back, x) < tolerance,
            "{coupling:?}: inverse on the device"
        );
    }
}

#[test]
fn sampling_agrees_with_the_cpu_at_zero_temperature() {
    let _rng = exclusive_rng();
    // T = 0 removes the (backend-specific) random numbers: the autoregressive recurrence
    // and the inverse flow must give the same images.
    gpu().seed(136);
    let (cpu_model, gpu_model, _) = twin_models(CouplingKind::Affine);
    let a = cpu_model.sample(3, 0.0).unwrap();
    let b = to(gpu_model.sample(3, 0.0).unwrap(), &cpu());
    let diff = max_abs_diff(a.clone(), b);
    assert!(
        diff < 1e-4 * (1.0 + a.abs().max().into_scalar::<f32>() as f64),
        "samples differ by {diff:e}"
    );
    let random = gpu_model.sample(2, 1.0).unwrap();
    assert!(!random.is_nan().any().into_scalar::<bool>());
}

#[test]
fn five_training_steps_agree_with_the_cpu() {
    let _rng = exclusive_rng();
    let (cpu_model, gpu_model, x) = twin_models(CouplingKind::Affine);
    let options = OptimOptions {
        lr: 1e-3,
        warmup_steps: 0,
        ..OptimOptions::default()
    };
    let mut on_cpu = Training::new(cpu_model, options.clone());
    let mut on_gpu = Training::new(gpu_model, options);
    let x_gpu = to(x.clone(), &gpu());
    let mut last = (0.0, 0.0);
    for _ in 0..5 {
        let (
            StepOutcome::Applied {
                bits_per_dim: a, ..
            },
            StepOutcome::Applied {
                bits_per_dim: b, ..
            },
        ) = (
            on_cpu.step(x.clone()).unwrap(),
            on_gpu.step(x_gpu.clone()).unwrap(),
        )
        else {
            panic!("a step was skipped");
        };
        last = (a, b);
    }
    assert!(
        (last.0 - last.1).abs() < 1e-3,
        "loss after 5 steps: cpu {} vs device {}",
        last.0,
        last.1
    );
    let (a, b) = (param_values(&on_cpu.model), param_values(&on_gpu.model));
    for (path, value) in a {
        let other = Tensor::<1>::from_data(b[&path].clone().into_data(), &cpu());
        let scale = value.clone().abs().max().into_scalar::<f32>() as f64;
        assert!(
            max_abs_diff(value, other) < 1e-3 * scale.max(1.0),
            "{path} differs after 5 steps"
        );
    }
}
