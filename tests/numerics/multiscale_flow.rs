//! The multi-scale flow container with the standard-normal prior.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf::core::{
    CoreError, InvConvKind, MultiScaleFlow, MultiScaleFlowConfig, Prior, StandardNormal, merge,
};
use marscf_test_support::{
    model::{device, exclusive_rng},
    numerics::{jacobian_log_abs_det, max_abs_diff, perturb, pixels},
    temp_dir,
};

fn config(image: [usize; 3], levels: usize, steps: usize) -> MultiScaleFlowConfig {
    MultiScaleFlowConfig::new(image, levels, steps, 16)
}

/// A flow initialised on one batch and perturbed, as after some training. The noise
/// (std 0.02) is the reference fixtures'; much larger noise drives coupling scales towards
/// 0 at random, and a flow that contracts that hard has an ill-conditioned inverse.
fn trained_flow(config: &MultiScaleFlowConfig, device: &Device) -> MultiScaleFlow {
    let [c, h, w] = config.image;
    let batch = pixels([8, c, h, w], device);
    let flow = config.init(device).unwrap().initialize(batch).unwrap();
    perturb(flow, 0.02)
}

#[test]
fn whole_flow_is_invertible() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(28);
    for inv_conv in [InvConvKind::Lu, InvConvKind::Plain] {
        let config = config([3, 16, 16], 3, 2).with_inv_conv(inv_conv);
        let flow = trained_flow(&config, &device);
        let x = pixels([2, 3, 16, 16], &device);
        let encoded = flow
            .forward(x.clone(), Tensor::zeros([2], &device), &StandardNormal)
            .unwrap();
        let shapes: Vec<_> = encoded.latents.iter().map(|z| z.dims()).collect();
        assert_eq!(shapes, vec![[2, 6, 8, 8], [2, 12, 4, 4], [2, 48, 2, 2]]);
        let x_back = flow.decode(encoded.latents).unwrap();
        let err = max_abs_diff(x_back, x);
        assert!(
            err < 1e-5,
            "{inv_conv:?}: max |decode(encode(x)) - x| = {err:e}"
        );
    }
}

#[test]
fn objective_is_log_det_plus_prior_and_log_det_matches_the_jacobian() {
    let _rng = exclusive_rng();
    let device = device().autodiff();
    device.seed(51);
    // 1 x 8 x 8 = 64 dimensions, L = 2: latents (2, 4, 4) and (8, 2, 2).
    let config = config([1, 8, 8], 2, 2);
    let flow = trained_flow(&config, &device);
    let x = pixels([1, 1, 8, 8], &device);
    let encoded = flow
        .forward(x.clone(), Tensor::zeros([1], &device), &StandardNormal)
        .unwrap();
    let log_prior: f32 = encoded
        .latents
        .iter()
        .enumerate()
        .map(|(level, z)| {
            StandardNormal
                .log_prob(level, z.clone(), None)
                .into_scalar::<f32>()
        })
        .sum();
    let log_det = encoded.objective.into_scalar::<f32>() - log_prior;
    let to_latents = |x: Tensor<4>| {
        let latents = flow
            .forward(x, Tensor::zeros([1], &device), &StandardNormal)
            .unwrap()
            .latents;
        let flat: Vec<Tensor<4>> = latents
            .into_iter()
            .map(|z| z.reshape([1, -1, 1, 1]))
            .collect();
        Tensor::cat(flat, 1)
    };
    let expected = jacobian_log_abs_det(to_latents, &x);
    assert!(
        (log_det as f64 - expected).abs() < 1e-3,
        "flow log-det {log_det} vs Jacobian {expected}"
    );
}

#[test]
fn starting_log_det_is_carried_through() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(92);
    let config = config([3, 8, 8], 2, 1);
    let flow = trained_flow(&config, &device);
    let x = pixels([2, 3, 8, 8], &device);
    let zero = flow
        .forward(x.clone(), Tensor::zeros([2], &device), &StandardNormal)
        .unwrap();
    let start = Tensor::<1>::from_floats([-100.0, 7.0], &device);
    let shifted = flow.forward(x, start.clone(), &StandardNormal).unwrap();
    assert!(max_abs_diff(shifted.objective, zero.objective + start) < 1e-3);
}

#[test]
fn samples_have_the_image_shape_and_zero_temperature_is_the_mode() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(108);
    let config = config([3, 8, 8], 2, 2);
    let flow = trained_flow(&config, &device);
    let samples = flow.sample(&StandardNormal, 5, 1.0, &device).unwrap();
    assert_eq!(samples.dims(), [5, 3, 8, 8]);
    assert!(!samples.clone().is_nan().any().into_scalar::<bool>());
    // T = 0: every latent is 0, so the sample is decode(0).
    let mode = flow.sample(&StandardNormal, 2, 0.0, &device).unwrap();
    let zeros = flow
        .latent_shapes()
        .into_iter()
        .map(|[c, h, w]| Tensor::zeros([2, c, h, w], &device))
        .collect();
    assert!(max_abs_diff(mode, flow.decode(zeros).unwrap()) < 1e-6);
}

#[test]
fn initialisation_survives_saving_and_loading_and_parameters_stay_trainable() {
    let _rng = exclusive_rng();
    let device = device().autodiff();
    device.seed(129);
    let config = config([3, 8, 8], 2, 1);
    let flow = config
        .init(&device)
        .unwrap()
        .initialize(pixels([4, 3, 8, 8], &device))
        .unwrap();
    let x = pixels([2, 3, 8, 8], &device);

    let objective = flow
        .forward(x.clone(), Tensor::zeros([2], &device), &StandardNormal)
        .unwrap()
        .objective;
    let grads = objective.sum().backward();
    let step = &flow.levels[0].steps[0];
    for (name, grad) in [
        (
            "actnorm.bias",
            step.actnorm.bias.grad(&grads).map(|g| g.abs().sum()),
        ),
        (
            "actnorm.logs",
            step.actnorm.logs.grad(&grads).map(|g| g.abs().sum()),
        ),
    ] {
        let grad = grad.unwrap_or_else(|| panic!("{name} has no gradient after initialisation"));
        assert!(grad.into_scalar::<f32>() > 0.0, "{name} gradient is zero");
    }

    let dir = temp_dir("actnorm-load");
    let path = dir.join("flow");
    flow.clone().save_file(&path).unwrap();
    let loaded = config.init(&device).unwrap().load_file(&path);
    assert!(loaded.levels[1].steps[0].actnorm.is_initialized());
    // Initialising a loaded flow again leaves it as loaded.
    let loaded = loaded.initialize(pixels([4, 3, 8, 8], &device)).unwrap();
    let a = flow
        .forward(x.clone(), Tensor::zeros([2], &device), &StandardNormal)
        .unwrap();
    let b = loaded
        .forward(x, Tensor::zeros([2], &device), &StandardNormal)
        .unwrap();
    assert_eq!(max_abs_diff(a.objective, b.objective), 0.0);
}

#[test]
fn configuration_and_input_errors() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(179);
    assert_eq!(
        config([3, 30, 32], 3, 1).init(&device).unwrap_err(),
        CoreError::NotDivisible {
            height: 30,
            width: 32,
            levels: 3
        }
    );
    assert_eq!(
        config([3, 4, 4], 3, 1).init(&device).unwrap_err(),
        CoreError::NotDivisible {
            height: 4,
            width: 4,
            levels: 3
        }
    );
    assert_eq!(
        config([3, 8, 8], 0, 1).init(&device).unwrap_err(),
        CoreError::ZeroSize { what: "levels L" }
    );
    assert_eq!(
        config([3, 8, 8], 2, 0).init(&device).unwrap_err(),
        CoreError::ZeroSize {
            what: "steps per level K"
        }
    );
    assert_eq!(
        config([0, 8, 8], 2, 1).init(&device).unwrap_err(),
        CoreError::ZeroSize {
            what: "image channels"
        }
    );
    assert!(matches!(
        MultiScaleFlowConfig::new([3, 8, 8], 2, 1, 0).init(&device),
        Err(CoreError::ZeroSize { .. })
    ));

    let flow = config([3, 8, 8], 2, 1).init(&device).unwrap();
    let wrong = pixels([2, 3, 8, 16], &device);
    assert!(matches!(
        flow.forward(wrong.clone(), Tensor::zeros([2], &device), &StandardNormal),
        Err(CoreError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        flow.clone().initialize(wrong),
        Err(CoreError::ShapeMismatch { .. })
    ));
    let latents = flow
        .forward(
            pixels([2, 3, 8, 8], &device),
            Tensor::zeros([2], &device),
            &StandardNormal,
        )
        .unwrap()
        .latents;
    assert_eq!(
        flow.decode(latents[..1].to_vec()).unwrap_err(),
        CoreError::LatentCount {
            expected: 2,
            got: 1
        }
    );
    let mut bad = latents.clone();
    bad[0] = merge(bad[0].clone(), bad[0].clone());
    assert!(matches!(
        flow.decode(bad),
        Err(CoreError::ShapeMismatch { .. })
    ));
}
