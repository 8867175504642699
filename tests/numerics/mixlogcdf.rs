//! The MixLogCDF coupling: mixture functions against independent f64 formulas, the
//! bisection inverse, extreme inputs, invertibility and log-det.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use marscf::core::coupling::mixlogcdf_net::MIN_LOG_SCALE;
use marscf::core::mixture::{LogisticMixture, logit_with_log_det};
use marscf::core::{
    CoreError, CouplingKind, DropoutConfig, FlowStepConfig, InvertibleLayer, MixLogCdfConfig,
    MixLogCdfCoupling, MixLogCdfCouplingConfig, MultiScaleFlowConfig, StandardNormal,
};
use marscf_test_support::{
    model::{device, exclusive_rng},
    numerics::{binomial_5_sigma, jacobian_log_abs_det, max_abs_diff, perturb, pixels},
};

/// Three components with the same weights, locations and log-scales at every one of `n`
/// positions (laid out as `(1, k, 1, n, 1)`).
const WEIGHTS: [f64; 3] = [0.2, 0.5, 0.3];
const MU: [f64; 3] = [-2.0, 0.5, 3.0];
const LOG_S: [f64; 3] = [-0.5, 0.3, -1.2];

fn mixture(n: usize, device: &Device) -> LogisticMixture {
    let param = |values: [f64; 3]| {
        let data: Vec<f32> = values
            .iter()
            .flat_map(|v| std::iter::repeat_n(*v as f32, n))
            .collect();
        Tensor::<5>::from_data(TensorData::new(data, [1, 3, 1, n, 1]), device)
    };
    // Unnormalised logits: ln(w) + 7 normalises back to w.
    LogisticMixture::new(
        param(WEIGHTS.map(|w| w.ln() + 7.0)),
        param(MU),
        param(LOG_S),
    )
}

fn column(values: &[f64], device: &Device) -> Tensor<4> {
    let data: Vec<f32> = values.iter().map(|v| *v as f32).collect();
    Tensor::from_data(TensorData::new(data, [1, 1, values.len(), 1]), device)
}

fn host(t: Tensor<4>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap()
}

/// The mixture's density and CDF in f64, straight from the definitions.
fn reference_pdf_cdf(x: f64) -> (f64, f64) {
    let mut pdf = 0.0;
    let mut cdf = 0.0;
    for j in 0..3 {
        let s = LOG_S[j].exp();
        let sigma = 1.0 / (1.0 + (-(x - MU[j]) / s).exp());
        pdf += WEIGHTS[j] * sigma * (1.0 - sigma) / s;
        cdf += WEIGHTS[j] * sigma;
    }
    (pdf, cdf)
}

#[test]
fn log_pdf_and_log_cdf_match_f64_formulas() {
    let device = device();
    let xs: Vec<f64> = (-40..=40).map(|i| i as f64 * 0.25).collect();
    let m = mixture(xs.len(), &device);
    let log_pdf = host(m.log_pdf(column(&xs, &device)));
    let log_cdf = host(m.log_cdf(column(&xs, &device)));
    for (i, &x) in xs.iter().enumerate() {
        let (pdf, cdf) = reference_pdf_cdf(x);
        assert!(
            (log_pdf[i] - pdf.ln()).abs() < 1e-4,
            "log pdf at {x}: {} vs {}",
            log_pdf[i],
            pdf.ln()
        );
        assert!(
            (log_cdf[i] - cdf.ln()).abs() < 1e-4 * (1.0 + cdf.ln().abs()),
            "log cdf at {x}"
        );
    }
}

#[test]
fn pdf_integrates_to_one_and_to_the_cdf_which_is_monotone() {
    let device = device();
    let (lo, hi, n) = (-40.0, 40.0, 80_001);
    let dx = (hi - lo) / (n - 1) as f64;
    let xs: Vec<f64> = (0..n).map(|i| lo + i as f64 * dx).collect();
    let m = mixture(n, &device);
    let pdf: Vec<f64> = host(m.log_pdf(column(&xs, &device)))
        .iter()
        .map(|v| v.exp())
        .collect();
    let cdf: Vec<f64> = host(m.log_cdf(column(&xs, &device)))
        .iter()
        .map(|v| v.exp())
        .collect();
    let mut integral = 0.0;
    let mut worst = 0.0f64;
    for i in 1..n {
        integral += 0.5 * (pdf[i] + pdf[i - 1]) * dx;
        worst = worst.max((integral - (cdf[i] - cdf[0])).abs());
        // Monotone up to f32 rounding (one ulp of 1.0 is 6e-8).
        assert!(cdf[i] >= cdf[i - 1] - 1.2e-7, "CDF decreases at {}", xs[i]);
    }
    assert!((integral - 1.0).abs() < 1e-4, "∫pdf = {integral}");
    assert!(worst < 1e-4, "∫pdf vs CDF: {worst}");
}

#[test]
fn inverse_cdf_inverts_the_cdf_over_a_wide_range() {
    let device = device();
    let xs: Vec<f64> = (-60..=60).map(|i| i as f64 * 0.2).collect();
    let m = mixture(xs.len(), &device);
    let y = m
        .log_cdf(column(&xs, &device))
        .exp()
        .clamp(1e-5, 1.0 - 1e-5);
    let x_back = host(m.inverse_cdf(y.clone(), 100, 1e-10));
    for (i, &x) in xs.iter().enumerate() {
        let (pdf, cdf) = reference_pdf_cdf(x);
        if (1e-5..=1.0 - 1e-5).contains(&cdf) {
            // f32 resolves y to ~6e-8; the error in x is that over the density.
            let tolerance = 1e-5 + 2e-7 / pdf;
            assert!(
                (x_back[i] - x).abs() < tolerance,
                "x = {x}: got {} (tolerance {tolerance:e})",
                x_back[i]
            );
        }
    }
}

#[test]
fn inverse_cdf_lands_on_a_flat_stretch_with_the_right_cdf() {
    let device = device();
    let param = |a: f32, b: f32| {
        Tensor::<5>::from_data(TensorData::new(vec![a, b], [1, 2, 1, 1, 1]), &device)
    };
    // Two narrow components 100 apart: the CDF is 0.5 (to f32) over most of [-40, 40].
    let m = LogisticMixture::new(param(0.0, 0.0), param(-50.0, 50.0), param(-1.0, -1.0));
    let y = Tensor::<4>::from_data(TensorData::new(vec![0.5f32], [1, 1, 1, 1]), &device);
    let x = m.inverse_cdf(y, 100, 1e-10);
    let cdf = m.log_cdf(x.clone()).exp().into_scalar::<f32>();
    assert!((cdf - 0.5).abs() < 1e-6, "cdf(x) = {cdf}");
    assert!(x.into_scalar::<f32>().abs() < 45.0);
}

#[test]
fn extreme_inputs_stay_finite() {
    let device = device();
    let xs = [-1e4, -1e3, -50.0, 0.0, 50.0, 1e3, 1e4];
    let n = xs.len();
    let param =
        |v: f32| Tensor::<5>::from_data(TensorData::new(vec![v; 2 * n], [1, 2, 1, n, 1]), &device);
    let m = LogisticMixture::new(param(0.0), param(0.0), param(MIN_LOG_SCALE as f32));
    let x = column(&xs, &device);
    let (logit, ldj) = logit_with_log_det(m.log_cdf(x.clone()));
    for (name, values) in [
        ("log pdf", host(m.log_pdf(x.clone()))),
        ("logit", host(logit)),
        ("logit ldj", host(ldj)),
    ] {
        assert!(values.iter().all(|v| v.is_finite()), "{name}: {values:?}");
    }
}

fn small_config() -> MixLogCdfConfig {
    MixLogCdfConfig::new()
        .with_components(4)
        .with_blocks(2)
        .with_heads(2)
        .with_dropout(0.0)
}

fn coupling(device: &Device) -> MixLogCdfCoupling {
    let coupling = MixLogCdfCouplingConfig::new(4, 8)
        .with_options(small_config())
        .init(device)
        .unwrap();
    perturb(coupling, 0.05)
}

#[test]
fn coupling_and_flow_are_invertible() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(186);
    let layer = coupling(&device);
    let x = pixels([3, 4, 8, 8], &device).mul_scalar(4.0);
    let (y, logdet) = layer.forward(x.clone());
    let (x_back, logdet_back) = layer.inverse(y);
    let err = max_abs_diff(x_back, x);
    assert!(
        err < 1e-4,
        "coupling: max |inverse(forward(x)) - x| = {err:e}"
    );
    assert!(max_abs_diff(logdet, logdet_back) < 1e-2);

    let config = MultiScaleFlowConfig::new([3, 8, 8], 2, 2, 8)
        .with_coupling(CouplingKind::MixLogCdf(small_config()));
    let flow = config
        .init(&device)
        .unwrap()
        .initialize(pixels([8, 3, 8, 8], &device))
        .unwrap();
    let flow = perturb(flow, 0.02);
    let x = pixels([2, 3, 8, 8], &device);
    let encoded = flow
        .forward(x.clone(), Tensor::zeros([2], &device), &StandardNormal)
        .unwrap();
    let err = max_abs_diff(flow.decode(encoded.latents).unwrap(), x);
    assert!(err < 1e-4, "flow: max |decode(encode(x)) - x| = {err:e}");
}

/// Flows whose MixLogCDF couplings see fewer than 64 positions per sample (32 and 16 for
/// one channel over two levels, down to 24 for three channels over three), with five
/// samples, invert within the tolerance above: the Flex bisection once read the next
/// sample's mixture where one of its 64-element blocks spanned three samples.
#[test]
fn flows_with_few_positions_per_sample_are_invertible() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(24);
    for (image, levels) in [([1, 8, 8], 2), ([3, 8, 8], 3)] {
        let [c, h, w] = image;
        let flow = MultiScaleFlowConfig::new(image, levels, 2, 8)
            .with_coupling(CouplingKind::MixLogCdf(small_config()))
            .init(&device)
            .unwrap()
            .initialize(pixels([8, c, h, w], &device))
            .unwrap();
        let flow = perturb(flow, 0.02);
        let x = pixels([5, c, h, w], &device);
        let encoded = flow
            .forward(x.clone(), Tensor::zeros([5], &device), &StandardNormal)
            .unwrap();
        let err = max_abs_diff(flow.decode(encoded.latents).unwrap(), x);
        assert!(
            err < 1e-4,
            "{image:?}, {levels} levels (device seed 24): max |decode(encode(x)) - x| = {err:e}"
        );
    }
}

/// The coupling's log-det (the reference's formula) against the Jacobian, alone and in a
/// flow step. Both sides are float32: where a mixture CDF `y` comes within about `1e-4` of
/// 1, `1 - y` keeps few digits and the two differ by up to about `1e-3` (one of 60 seeds of
/// this draw reached `1.5e-3`); the inputs are seeded so the bound below holds for them.
#[test]
fn coupling_log_det_matches_the_jacobian() {
    let _rng = exclusive_rng();
    let device = device().autodiff();
    device.seed(247);
    let layer = coupling(&device);
    let x = pixels([1, 4, 4, 4], &device).mul_scalar(3.0);
    let expected = jacobian_log_abs_det(|x| layer.forward(x).0, &x);
    let got = layer.forward(x.clone()).1.into_scalar::<f32>() as f64;
    assert!(
        (got - expected).abs() < 1e-3,
        "coupling log-det {got} vs {expected}"
    );

    let step = FlowStepConfig::new(4, 8)
        .with_coupling(CouplingKind::MixLogCdf(small_config()))
        .init(&device)
        .unwrap();
    let step = perturb(step.initialize(&pixels([8, 4, 4, 4], &device)), 0.05);
    let expected = jacobian_log_abs_det(|x| step.forward(x).0, &x);
    let got = step.forward(x).1.into_scalar::<f32>() as f64;
    assert!(
        (got - expected).abs() < 1e-3,
        "flow step log-det {got} vs {expected} (device seed 247)"
    );
}

#[test]
fn element_dropout_drops_each_element_with_its_probability() {
    let _rng = exclusive_rng();
    let device = device().autodiff();
    device.seed(5);
    let p = 0.2;
    let dropout = DropoutConfig::new(p).init().unwrap();
    let n = 8 * 4 * 32 * 32;
    let x = Tensor::<4>::ones([8, 4, 32, 32], &device);
    let y = host(dropout.forward(x.clone()));
    assert!(
        y.iter().all(|v| *v == 0.0 || (*v - 1.25).abs() < 1e-6),
        "kept elements are scaled by 1/(1-p)"
    );
    // Binomial(32768, 0.2): mean 6554, σ = 72, so 5σ = 362 elements (1.1 %), far inside
    // the 3277 elements between p = 0.2 and p = 0.1 or 0.3.
    let dropped = y.iter().filter(|v| **v == 0.0).count();
    assert!(
        binomial_5_sigma(n, p).contains(&(dropped as f64)),
        "{dropped} of {n} elements dropped, p = {p}"
    );
    let eval = dropout.valid();
    assert_eq!(
        max_abs_diff(eval.forward(x.clone().inner()), x.inner()),
        0.0
    );
}

#[test]
fn dropout_probabilities_outside_0_1_are_errors() {
    let _rng = exclusive_rng();
    device().seed(310);
    for p in [-0.1, 1.0, f64::NAN] {
        assert!(matches!(
            DropoutConfig::new(p).init(),
            Err(CoreError::InvalidProbability { .. })
        ));
    }
    let options = MixLogCdfConfig::new().with_dropout(1.0);
    assert!(matches!(
        MixLogCdfCouplingConfig::new(4, 8)
            .with_options(options)
            .init(&device()),
        Err(CoreError::InvalidProbability { .. })
    ));
}

#[test]
fn invalid_mixlogcdf_configurations_are_errors() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(330);
    let coupling = |channels, hidden, options: MixLogCdfConfig| {
        MixLogCdfCouplingConfig::new(channels, hidden)
            .with_options(options)
            .init(&device)
            .map(|_| ())
    };
    let small = small_config();
    assert_eq!(
        coupling(3, 8, small),
        Err(CoreError::OddChannels {
            layer: "MixLogCdfCoupling",
            channels: 3
        })
    );
    assert_eq!(
        coupling(4, 0, small),
        Err(CoreError::ZeroSize {
            what: "coupling hidden width"
        })
    );
    assert_eq!(
        coupling(4, 8, small.with_components(0)),
        Err(CoreError::ZeroSize {
            what: "MixLogCDF components"
        })
    );
    assert_eq!(
        coupling(4, 8, small.with_heads(3)),
        Err(CoreError::HeadsMismatch {
            hidden: 8,
            heads: 3
        })
    );
    assert_eq!(
        coupling(4, 8, small.with_heads(0)),
        Err(CoreError::HeadsMismatch {
            hidden: 8,
            heads: 0
        })
    );
}

#[test]
fn channel_dropout_drops_whole_channels_only_in_training() {
    let _rng = exclusive_rng();
    let device = device().autodiff();
    device.seed(3);
    let p = 0.2;
    let dropout = DropoutConfig::new(p)
        .with_whole_channels(true)
        .init()
        .unwrap();
    let (batch, channels) = (64, 64);
    let x = Tensor::<4>::ones([batch, channels, 3, 3], &device);
    let y = host(dropout.forward(x.clone()));
    let mut dropped = 0;
    for channel in y.chunks(9) {
        assert!(
            channel.iter().all(|v| *v == channel[0]),
            "a channel is dropped as a whole"
        );
        assert!(
            channel[0] == 0.0 || (channel[0] - 1.25).abs() < 1e-6,
            "kept channels are scaled by 1/(1-p)"
        );
        dropped += (channel[0] == 0.0) as usize;
    }
    // Binomial(4096, 0.2): mean 819, σ = sqrt(4096 0.2 0.8) = 25.6, so 5σ = 128 channels,
    // well inside the 410 channels between p = 0.2 and p = 0.1 or 0.3 (and 0.8 is at
    // 2458): a swapped or mis-scaled probability fails.
    let n = batch * channels;
    assert!(
        binomial_5_sigma(n, p).contains(&(dropped as f64)),
        "{dropped} of {n} channels dropped, p = {p}"
    );
    let eval = dropout.valid();
    assert_eq!(
        max_abs_diff(eval.forward(x.clone().inner()), x.inner()),
        0.0
    );
}
