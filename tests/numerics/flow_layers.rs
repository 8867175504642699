//! Every flow layer of marscf-core: invertibility, log-det against an autodiff Jacobian,
//! ActNorm's initialisation, and configuration errors.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf::core::{
    ActNormConfig, AdditiveCouplingConfig, AffineCouplingConfig, CoreError, CouplingKind, FlowStep,
    FlowStepConfig, InvConv1x1Config, InvConvKind, InvertibleLayer, Squeeze, TupleFlip,
};
use marscf_test_support::{
    model::{device, exclusive_rng},
    numerics::{jacobian_log_abs_det, max_abs_diff, perturb, pixels},
};

/// Builds a layer on `device`, initialises it from a batch whose statistics are far from
/// N(0, 1), and perturbs its parameters.
fn prepared<L: InvertibleLayer + Module>(
    build: impl Fn(&Device) -> L,
    shape: [usize; 4],
    device: &Device,
) -> L {
    let batch = pixels([8, shape[1], shape[2], shape[3]], device).mul_scalar(3.0) + 0.7;
    perturb(build(device).initialize(&batch), 0.05)
}

fn check_invertible<L: InvertibleLayer + Module>(
    name: &str,
    build: impl Fn(&Device) -> L,
    shape: [usize; 4],
) {
    let device = device();
    device.seed(29);
    let layer = prepared(build, shape, &device);
    let x = pixels(shape, &device);
    let (y, logdet_fwd) = layer.forward(x.clone());
    assert_eq!(
        y.dims().iter().product::<usize>(),
        shape.iter().product::<usize>()
    );
    let (x_back, logdet_inv) = layer.inverse(y);
    let err = max_abs_diff(x_back, x);
    assert!(
        err < 1e-5,
        "{name}: max |inverse(forward(x)) - x| = {err:e}"
    );
    let logdet_err = max_abs_diff(logdet_fwd, logdet_inv);
    assert!(
        logdet_err < 1e-4,
        "{name}: forward and inverse log-dets differ by {logdet_err:e}"
    );
}

fn check_log_det<L: InvertibleLayer + Module>(
    name: &str,
    build: impl Fn(&Device) -> L,
    shape: [usize; 4],
) {
    assert_eq!(shape[0], 1);
    assert!(shape.iter().product::<usize>() <= 64);
    let device = device().autodiff();
    device.seed(58);
    let layer = prepared(build, shape, &device);
    let x = pixels(shape, &device);
    let expected = jacobian_log_abs_det(|x| layer.forward(x).0, &x);
    let got = layer.forward(x).1.into_scalar::<f32>() as f64;
    assert!(
        (got - expected).abs() < 1e-3,
        "{name}: log-det {got} vs log|det J| {expected}"
    );
}

fn actnorm(d: &Device) -> marscf::core::ActNorm {
    ActNormConfig::new(4).init(d)
}
fn lu_conv(d: &Device) -> marscf::core::InvConv1x1 {
    InvConv1x1Config::new(4).init(d).unwrap()
}
fn plain_conv(d: &Device) -> marscf::core::InvConv1x1 {
    InvConv1x1Config::new(4)
        .with_kind(InvConvKind::Plain)
        .init(d)
        .unwrap()
}
fn affine(d: &Device) -> marscf::core::AffineCoupling {
    AffineCouplingConfig::new(4, 8).init(d).unwrap()
}
fn additive(d: &Device) -> marscf::core::AdditiveCoupling {
    AdditiveCouplingConfig::new(4, 8).init(d).unwrap()
}
fn additive_step(d: &Device) -> FlowStep {
    FlowStepConfig::new(4, 8)
        .with_coupling(CouplingKind::Additive)
        .init(d)
        .unwrap()
}
fn step(d: &Device) -> FlowStep {
    FlowStepConfig::new(4, 8)
        .with_coupling(CouplingKind::Affine)
        .with_inv_conv(InvConvKind::Lu)
        .init(d)
        .unwrap()
}
fn squeeze(_: &Device) -> Squeeze {
    Squeeze
}
fn flip(_: &Device) -> TupleFlip {
    TupleFlip
}

#[test]
fn every_layer_is_invertible() {
    let _rng = exclusive_rng();
    let shape = [3, 4, 8, 8];
    check_invertible("ActNorm", actnorm, shape);
    check_invertible("InvConv1x1 (LU)", lu_conv, shape);
    check_invertible("InvConv1x1 (plain)", plain_conv, shape);
    check_invertible("AffineCoupling", affine, shape);
    check_invertible("AdditiveCoupling", additive, shape);
    check_invertible("FlowStep", step, shape);
    check_invertible("FlowStep (additive)", additive_step, shape);
    check_invertible("Squeeze", squeeze, shape);
    check_invertible("TupleFlip", flip, shape);
}

#[test]
fn every_log_det_matches_the_jacobian() {
    let _rng = exclusive_rng();
    let shape = [1, 4, 4, 4];
    check_log_det("ActNorm", actnorm, shape);
    check_log_det("InvConv1x1 (LU)", lu_conv, shape);
    check_log_det("InvConv1x1 (plain)", plain_conv, shape);
    check_log_det("AffineCoupling", affine, shape);
    check_log_det("AdditiveCoupling", additive, shape);
    check_log_det("FlowStep", step, shape);
    check_log_det("FlowStep (additive)", additive_step, shape);
    check_log_det("Squeeze", squeeze, shape);
    check_log_det("TupleFlip", flip, shape);
}

#[test]
fn log_det_is_per_sample() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(141);
    let layer = prepared(affine, [1, 4, 4, 4], &device);
    let x = pixels([3, 4, 4, 4], &device);
    let batched = layer.forward(x.clone()).1;
    for i in 0..3 {
        let single = layer.forward(x.clone().narrow(0, i, 1)).1;
        assert!(max_abs_diff(single, batched.clone().narrow(0, i, 1)) < 1e-5);
    }
}

#[test]
fn additive_coupling_shifts_the_second_half_by_its_network() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(155);
    let layer = prepared(additive, [1, 4, 4, 4], &device);
    let x = pixels([2, 4, 4, 4], &device);
    let (y, logdet) = layer.forward(x.clone());
    let shift = layer.net.forward(x.clone().narrow(1, 0, 2));
    assert!(
        shift.clone().abs().max().into_scalar::<f32>() > 1e-3,
        "the network is not trivial"
    );
    assert_eq!(
        max_abs_diff(y.clone().narrow(1, 0, 2), x.clone().narrow(1, 0, 2)),
        0.0
    );
    assert!(max_abs_diff(y.narrow(1, 2, 2), x.narrow(1, 2, 2) + shift) < 1e-6);
    assert_eq!(logdet.abs().max().into_scalar::<f32>(), 0.0);
}

#[test]
fn actnorm_initialisation_standardises_its_batch() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(176);
    let batch = pixels([16, 5, 6, 6], &device).mul_scalar(4.0) + 1.5;
    let layer = ActNormConfig::new(5).init(&device);
    assert!(!layer.is_initialized());
    let layer = layer.initialize(&batch);
    assert!(layer.is_initialized());
    let (y, _) = layer.forward(batch.clone());
    let mean = y.clone().mean_dims(&[0, 2, 3]);
    let var = (y - mean.clone()).square().mean_dims(&[0, 2, 3]);
    assert!(mean.abs().max().into_scalar::<f32>() < 1e-5);
    assert!((var - 1.0).abs().max().into_scalar::<f32>() < 1e-4);
    // A second initialisation leaves an initialised layer alone.
    let other = pixels([16, 5, 6, 6], &device);
    let again = layer.clone().initialize(&other);
    assert_eq!(max_abs_diff(again.bias.val(), layer.bias.val()), 0.0);
}

#[test]
fn lu_weight_is_the_product_of_its_factors_and_starts_orthogonal() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(197);
    let conv = InvConv1x1Config::new(6).init(&device).unwrap();
    let w = conv.weight();
    let eye = Tensor::<2>::eye(6, &device);
    assert!(max_abs_diff(w.clone().transpose().matmul(w.clone()), eye.clone()) < 1e-5);
    let inv = conv.inverse_weight().unwrap();
    assert!(max_abs_diff(w.matmul(inv), eye) < 1e-5);
}

#[test]
fn invalid_configurations_are_errors() {
    let device = device();
    assert_eq!(
        AffineCouplingConfig::new(3, 8).init(&device).unwrap_err(),
        CoreError::OddChannels {
            layer: "AffineCoupling",
            channels: 3
        }
    );
    assert_eq!(
        AffineCouplingConfig::new(4, 0).init(&device).unwrap_err(),
        CoreError::ZeroSize {
            what: "coupling hidden width"
        }
    );
    assert_eq!(
        AdditiveCouplingConfig::new(6, 0).init(&device).unwrap_err(),
        CoreError::ZeroSize {
            what: "coupling hidden width"
        }
    );
    assert_eq!(
        AdditiveCouplingConfig::new(5, 8).init(&device).unwrap_err(),
        CoreError::OddChannels {
            layer: "AdditiveCoupling",
            channels: 5
        }
    );
    assert_eq!(
        InvConv1x1Config::new(0).init(&device).unwrap_err(),
        CoreError::ZeroSize {
            what: "InvConv1x1 channels"
        }
    );
}
