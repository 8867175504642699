//! A 1x1 convolution whose `W` cannot be inverted in f32 (as a corrupt or diverged
//! checkpoint can hold: an exactly singular plain `W`, or an LU `log_s` so negative that
//! `exp(log_s)` underflows to 0) is an error from `inverse_weight`, `decode` and `sample`,
//! never a panic.

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use marscf_core::{
    CoreError, InvConv1x1, InvConv1x1Config, InvConvKind, MultiScaleFlow, MultiScaleFlowConfig,
    StandardNormal,
};
use marscf_test_support::model::exclusive_rng;

fn device() -> Device {
    Device::flex()
}

/// A plain `C x C` weight with rows 0 and 2 equal: exactly singular (the host LU meets an
/// exact zero pivot).
fn singular_plain(c: usize, device: &Device) -> InvConv1x1 {
    assert!(c >= 3);
    let mut w: Vec<f32> = (0..c * c)
        .map(|i| if i / c == i % c { 1.0 } else { 0.25 })
        .collect();
    let row0 = w[..c].to_vec();
    w[2 * c..3 * c].copy_from_slice(&row0);
    let conv = InvConv1x1Config::new(c)
        .with_kind(InvConvKind::Plain)
        .init(device)
        .unwrap();
    let InvConv1x1::Plain(mut plain) = conv else {
        panic!("a plain configuration gives a plain layer")
    };
    plain.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [c, c]), device));
    InvConv1x1::Plain(plain)
}

/// An LU-parametrised layer on `c` channels with `log_s[index] = log_s`.
fn lu_with_log_s(c: usize, index: usize, log_s: f32, device: &Device) -> InvConv1x1 {
    let InvConv1x1::Lu(mut lu) = InvConv1x1Config::new(c).init(device).unwrap() else {
        panic!("the default configuration is LU")
    };
    let mut values: Vec<f32> = lu.log_s.val().into_data().try_to_vec().unwrap();
    values[index] = log_s;
    lu.log_s = Param::from_tensor(Tensor::from_data(TensorData::new(values, [c]), device));
    InvConv1x1::Lu(lu)
}

/// A small flow (`[3, 8, 8]`, `L = 2`, `K = 2`) whose level-1 step-1 1x1 convolution is
/// replaced by `conv(channels)`, the channel count at that level.
fn flow_with(conv: impl Fn(usize, &Device) -> InvConv1x1) -> MultiScaleFlow {
    let device = device();
    let config = MultiScaleFlowConfig::new([3, 8, 8], 2, 2, 8);
    let flow = config.init(&device).unwrap();
    let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Uniform(-0.5, 0.5), &device);
    let mut flow = flow.initialize(x).unwrap();
    // Level 1 sees 3 * 4 / 2 * 4 = 24 channels.
    flow.levels[1].steps[1].inv_conv = conv(24, &device);
    flow
}

fn assert_step_error(err: CoreError, expect: impl Fn(&CoreError) -> bool) {
    match &err {
        CoreError::StepNotInvertible {
            level: 1,
            step: 1,
            reason,
        } if expect(reason) => {}
        other => panic!("expected level 1, step 1 not invertible, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("level 1, step 1"), "{message}");
}

fn is_singular(e: &CoreError) -> bool {
    matches!(e, CoreError::SingularMatrix { .. })
}

fn is_log_s_out_of_range(e: &CoreError) -> bool {
    matches!(e, CoreError::LuDiagonalOutOfRange { index: 5, log_s, .. } if *log_s == -200.0)
}

#[test]
fn a_singular_plain_weight_is_an_error_not_a_panic() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(84);
    let conv = singular_plain(4, &device);
    assert!(is_singular(&conv.inverse_weight().unwrap_err()));
    let y = Tensor::<4>::random([2, 4, 3, 3], Distribution::Default, &device);
    assert!(is_singular(&conv.try_inverse(y).unwrap_err()));
    // A 1x1 "matrix" [0] too.
    let zero = InvConv1x1Config::new(1)
        .with_kind(InvConvKind::Plain)
        .init(&device)
        .unwrap();
    let InvConv1x1::Plain(mut plain) = zero else {
        unreachable!()
    };
    plain.weight = Param::from_tensor(Tensor::zeros([1, 1], &device));
    assert!(is_singular(
        &InvConv1x1::Plain(plain).inverse_weight().unwrap_err()
    ));
}

#[test]
fn an_underflowing_lu_log_s_is_an_error_not_a_panic() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(105);
    // exp(-200) is 0 in f32: U, hence W, is singular.
    let conv = lu_with_log_s(8, 5, -200.0, &device);
    let err = conv.inverse_weight().unwrap_err();
    assert!(is_log_s_out_of_range(&err), "{err:?}");
    assert!(err.to_string().contains("exp(-200)"), "{err}");
    let y = Tensor::<4>::random([2, 8, 3, 3], Distribution::Default, &device);
    assert!(is_log_s_out_of_range(&conv.try_inverse(y).unwrap_err()));
    // exp(+200) overflows f32 just as badly, and a 1 x 1 LU layer is no exception.
    let big = lu_with_log_s(8, 5, 200.0, &device);
    assert!(matches!(
        big.inverse_weight(),
        Err(CoreError::LuDiagonalOutOfRange { index: 5, .. })
    ));
    let one = lu_with_log_s(1, 0, -200.0, &device);
    assert!(matches!(
        one.inverse_weight(),
        Err(CoreError::LuDiagonalOutOfRange { index: 0, .. })
    ));
    // log_s = -80 is still inside f32's normal range: invertible.
    let small = lu_with_log_s(8, 5, -80.0, &device);
    assert!(small.inverse_weight().is_ok());
}

#[test]
fn decode_and_sample_report_the_step_that_cannot_be_inverted() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(131);
    for (conv, expect) in [
        (
            &singular_plain as &dyn Fn(usize, &Device) -> InvConv1x1,
            &is_singular as &dyn Fn(&CoreError) -> bool,
        ),
        (
            &|c, device: &Device| lu_with_log_s(c, 5, -200.0, device),
            &is_log_s_out_of_range,
        ),
    ] {
        let flow = flow_with(conv);
        let latents = flow
            .latent_shapes()
            .into_iter()
            .map(|[c, h, w]| Tensor::<4>::zeros([2, c, h, w], &device))
            .collect();
        assert_step_error(flow.decode(latents).unwrap_err(), expect);
        assert_step_error(
            flow.sample(&StandardNormal, 2, 1.0, &device).unwrap_err(),
            expect,
        );
    }
}

#[test]
fn an_invertible_flow_still_decodes_and_samples() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(158);
    let flow = flow_with(|c, device| lu_with_log_s(c, 5, -3.0, device));
    let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Uniform(-0.5, 0.5), &device);
    let encoded = flow
        .forward(x.clone(), Tensor::zeros([2], &device), &StandardNormal)
        .unwrap();
    let back = flow.decode(encoded.latents).unwrap();
    let err: f32 = (back - x).abs().max().into_scalar();
    assert!(err < 1e-4, "reconstruction error {err}");
    let samples = flow.sample(&StandardNormal, 3, 1.0, &device).unwrap();
    assert_eq!(samples.dims(), [3, 3, 8, 8]);
}
