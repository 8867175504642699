//! The mAR prior: autoregressive structure, sampling against likelihood, and the batched
//! likelihood against a plain step-by-step loop.

use burn::tensor::{Device, Distribution, Tensor};
use marscf::core::{
    GlowPrior, GlowPriorConfig, MultiScaleFlowConfig, Prior, gaussian_log_density, sum_per_sample,
};
use marscf::prior::{ChannelPrior, ChannelPriorConfig, ConvLstmConfig, MarPriorConfig};
use marscf_test_support::{
    model::{device, exclusive_rng},
    numerics::{max_abs_diff, perturb},
};

/// A level prior on `n` channels with a small LSTM, weights perturbed by N(0, std²).
fn level_prior_with(n: usize, conditioned: bool, std: f64, device: &Device) -> ChannelPrior {
    let prior = ChannelPriorConfig::new(n, conditioned, 3, 1)
        .with_hidden(8)
        .with_lstm_layers(2)
        .init(device);
    perturb(prior, std)
}

fn level_prior(n: usize, conditioned: bool, device: &Device) -> ChannelPrior {
    level_prior_with(n, conditioned, 0.1, device)
}

fn normal(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn prediction_of_channel_t_depends_only_on_earlier_channels() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(32);
    let n = 5;
    let prior = level_prior(n, true, &device);
    let z = normal([2, n, 6, 6], &device);
    let z1 = normal([2, n, 6, 6], &device);
    let (mean, logs) = prior.predict(z.clone(), Some(z1.clone()));
    for t in 0..n {
        // Replace channels t.. with fresh noise: predictions for channel t must not move.
        let tail = normal([2, n - t, 6, 6], &device);
        let changed = if t == 0 {
            tail
        } else {
            Tensor::cat(vec![z.clone().narrow(1, 0, t), tail], 1)
        };
        let (mean2, logs2) = prior.predict(changed, Some(z1.clone()));
        let same = max_abs_diff(mean2.narrow(1, t, 1), mean.clone().narrow(1, t, 1))
            + max_abs_diff(logs2.narrow(1, t, 1), logs.clone().narrow(1, t, 1));
        assert!(
            same < 1e-6,
            "channel {t} depends on channels >= {t} ({same:e})"
        );
    }
    for t in 1..n {
        // Change channel t-1 alone: predictions for channel t must move.
        let mut parts = vec![normal([2, 1, 6, 6], &device), z.clone().narrow(1, t, n - t)];
        if t > 1 {
            parts.insert(0, z.clone().narrow(1, 0, t - 1));
        }
        let changed = Tensor::cat(parts, 1);
        let (mean2, _) = prior.predict(changed, Some(z1.clone()));
        let moved = max_abs_diff(mean2.narrow(1, t, 1), mean.clone().narrow(1, t, 1));
        assert!(moved > 1e-4, "channel {t} ignores channel {}", t - 1);
    }
    // The condition z1 reaches the first channel.
    let (mean2, _) = prior.predict(z, Some(normal([2, n, 6, 6], &device)));
    assert!(max_abs_diff(mean2.narrow(1, 0, 1), mean.narrow(1, 0, 1)) > 1e-4);
}

#[test]
fn samples_are_distributed_as_the_likelihood_says() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(11);
    let n = 4;
    // Strong weights, so that each channel's distribution depends markedly on the previous
    // sample, and scales well away from 1 (logs around -1): a sampler that feeds the wrong
    // input or gets the scale wrong shows.
    let mut prior = level_prior_with(n, true, 0.5, &device);
    let bias = Tensor::<1>::from_floats([0.3, -1.0], &device);
    prior.out.bias = Some(burn::module::Param::from_tensor(bias));
    let (b, h, w) = (64, 4, 4);
    let z1 = normal([b, n, h, w], &device);
    let z = prior.sample([b, n, h, w], Some(z1.clone()), 1.0, &device);
    // Under the likelihood's own mean and scale, the standardised samples must be N(0, 1).
    let (mean, logs) = prior.predict(z.clone(), Some(z1.clone()));
    let eps = (z.clone() - mean) * logs.clone().neg().exp();
    let count = (b * n * h * w) as f64;
    let eps_mean = eps.clone().mean().into_scalar::<f32>() as f64;
    let eps_var = eps.square().mean().into_scalar::<f32>() as f64;
    assert!(
        eps_mean.abs() < 5.0 / count.sqrt(),
        "standardised mean {eps_mean}"
    );
    assert!(
        (eps_var - 1.0).abs() < 5.0 * (2.0 / count).sqrt(),
        "standardised variance {eps_var}"
    );
    // And the average log-likelihood equals minus the entropy, Σ (logs + ln(2πe)/2).
    let log_p = prior.log_prob(z, Some(z1)).mean().into_scalar::<f32>() as f64;
    let entropy =
        sum_per_sample(logs + 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln())
            .mean()
            .into_scalar::<f32>() as f64;
    let per_sample_sd = (0.5 * (n * h * w) as f64).sqrt();
    assert!(
        (log_p + entropy).abs() < 5.0 * per_sample_sd / (b as f64).sqrt(),
        "E[ln p] = {log_p}, -H = {}",
        -entropy
    );
}

#[test]
fn zero_temperature_samples_the_means() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(117);
    let prior = level_prior(3, false, &device);
    let z = prior.sample([2, 3, 5, 5], None, 0.0, &device);
    let (mean, _) = prior.predict(z.clone(), None);
    assert!(max_abs_diff(z, mean) < 1e-5);
}

#[test]
fn batched_likelihood_equals_a_step_by_step_loop() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(128);
    let n = 4;
    let prior = level_prior(n, true, &device);
    let z = normal([3, n, 5, 5], &device);
    let z1 = normal([3, n, 5, 5], &device);
    let e = prior.condition.as_ref().unwrap().forward(z1.clone());
    // Plain loop: one step at a time, the LSTM state carried by hand.
    let mut state = None;
    let mut previous = Tensor::<4>::zeros([3, 1, 5, 5], &device);
    let mut log_p = Tensor::<1>::zeros([3], &device);
    for t in 0..n {
        let input = prior
            .embed
            .forward(Tensor::cat(vec![previous, e.clone()], 1));
        let (hidden, next) = prior.lstm.step(input, state);
        state = Some(next);
        let out = prior.out.forward(hidden);
        let z_t = z.clone().narrow(1, t, 1);
        log_p = log_p
            + sum_per_sample(gaussian_log_density(
                z_t.clone(),
                out.clone().narrow(1, 0, 1),
                out.narrow(1, 1, 1),
            ));
        previous = z_t;
    }
    let batched = prior.log_prob(z, Some(z1));
    assert!(
        max_abs_diff(batched.clone(), log_p.clone()) < 1e-3,
        "{batched} vs {log_p}"
    );
}

#[test]
fn conv_lstm_sequence_equals_its_steps() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(165);
    for (kernel, dilation) in [(3, 1), (5, 2)] {
        let lstm = ConvLstmConfig::new(2, 6)
            .with_layers(3)
            .with_kernel(kernel)
            .with_dilation(dilation)
            .init(&device);
        let x = Tensor::<5>::random([4, 2, 2, 7, 7], Distribution::Normal(0.0, 1.0), &device);
        let sequence = lstm.forward_sequence(x.clone());
        assert_eq!(sequence.dims(), [4, 2, 6, 7, 7]);
        let mut state = None;
        for t in 0..4 {
            let (h, next) = lstm.step(x.clone().narrow(0, t, 1).reshape([2, 2, 7, 7]), state);
            state = Some(next);
            let diff = max_abs_diff(h, sequence.clone().narrow(0, t, 1).reshape([2, 6, 7, 7]));
            assert!(diff < 1e-5, "k={kernel} d={dilation} step {t}: {diff:e}");
        }
    }
}

#[test]
fn multi_scale_prior_has_the_reference_layout_and_any_batch_and_size_work() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(189);
    let config = MarPriorConfig::new(vec![6, 12, 48]);
    let prior = config.init(&device);
    // Kernel / dilation per level, conditioning below the top only.
    let kernels: Vec<_> = prior
        .levels
        .iter()
        .map(|l| l.lstm.layers[0].weight_hh.dims()[2])
        .collect();
    assert_eq!(kernels, vec![5, 5, 3]);
    assert_eq!(
        prior
            .levels
            .iter()
            .map(|l| l.condition.is_some())
            .collect::<Vec<_>>(),
        vec![true, true, false]
    );
    for (b, h) in [(1, 16), (3, 24)] {
        let z2 = normal([b, 6, h, h], &device);
        let z1 = normal([b, 6, h, h], &device);
        assert_eq!(prior.log_prob(0, z2, Some(z1.clone())).dims(), [b]);
        assert_eq!(
            prior.sample(0, [b, 6, h, h], Some(z1), 1.0, &device).dims(),
            [b, 6, h, h]
        );
    }
}

/// A Glow prior for a 1x8x8 flow with L = 2 (latents 2x4x4 and 8x2x2), its parameters
/// moved away from zero.
fn glow_prior(device: &Device) -> (GlowPrior, Vec<[usize; 3]>) {
    let flow = MultiScaleFlowConfig::new([1, 8, 8], 2, 1, 4);
    let shapes = flow.latent_shapes();
    let prior = GlowPriorConfig::for_flow(&flow).init(device).unwrap();
    (perturb(prior, 0.3), shapes)
}

/// `ln N(z; mu, exp(logs)²)` summed per sample, in f64 on the host.
fn gaussian_by_hand(z: Tensor<4>, mean: Tensor<4>, logs: Tensor<4>) -> Vec<f64> {
    let b = z.dims()[0];
    let host = |t: Tensor<4>| {
        t.into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .unwrap()
    };
    let (z, mean, logs) = (host(z), host(mean), host(logs));
    let per = z.len() / b;
    (0..b)
        .map(|i| {
            (i * per..(i + 1) * per)
                .map(|j| {
                    let sigma = logs[j].exp();
                    let r = (z[j] - mean[j]) / sigma;
                    -0.5 * r * r - logs[j] - 0.5 * (2.0 * std::f64::consts::PI).ln()
                })
                .sum()
        })
        .collect()
}

#[test]
fn glow_prior_log_density_is_the_gaussian_of_its_convolution() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(255);
    let (prior, shapes) = glow_prior(&device);
    let [c, h, w] = shapes[0];
    let z1 = normal([3, c, h, w], &device);
    let z2 = normal([3, c, h, w], &device);
    // mu and log sigma by hand: the split's convolution, scaled, de-interleaved.
    let conv = &prior.splits[0];
    let out = burn::tensor::module::conv2d(
        z1.clone(),
        conv.conv.weight.val(),
        conv.conv.bias.as_ref().map(|b| b.val()),
        burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    ) * conv.logs.val().mul_scalar(3.0).exp().unsqueeze::<4>();
    let index = |offset: i64| {
        let channels: Vec<i64> = (0..c as i64).map(|j| 2 * j + offset).collect();
        Tensor::<1, burn::tensor::Int>::from_ints(channels.as_slice(), &device)
    };
    let mean = out.clone().select(1, index(0));
    let logs = out.select(1, index(1));
    assert!(
        logs.clone().abs().max().into_scalar::<f32>() > 1e-2,
        "a non-trivial scale"
    );
    let (m, l) = prior.mean_and_log_scale(0, Some(z1.clone()), 3);
    assert!(max_abs_diff(m, mean.clone()) < 1e-5 && max_abs_diff(l, logs.clone()) < 1e-5);
    let expected = gaussian_by_hand(z2.clone(), mean, logs);
    let got = prior.log_prob(0, z2, Some(z1));
    let got = got
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap();
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            (g - e).abs() < 1e-3 * e.abs().max(1.0),
            "{got:?} vs {expected:?}"
        );
    }

    // The top: its own per-position parameters, the same for every sample.
    let top = shapes.len() - 1;
    let [c, h, w] = shapes[top];
    let z = normal([2, c, h, w], &device);
    let mean = prior.top_mean.val().unsqueeze::<4>().repeat_dim(0, 2);
    let logs = prior.top_logs.val().unsqueeze::<4>().repeat_dim(0, 2);
    let expected = gaussian_by_hand(z.clone(), mean, logs);
    let got = prior.log_prob(top, z, None);
    let got = got
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap();
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            (g - e).abs() < 1e-3 * e.abs().max(1.0),
            "{got:?} vs {expected:?}"
        );
    }
}

#[test]
fn a_new_glow_prior_is_the_standard_normal() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(319);
    let flow = MultiScaleFlowConfig::new([1, 8, 8], 2, 1, 4);
    let prior = GlowPriorConfig::for_flow(&flow).init(&device).unwrap();
    let [c, h, w] = flow.latent_shapes()[0];
    let (z, z1) = (normal([2, c, h, w], &device), normal([2, c, h, w], &device));
    let standard = sum_per_sample(gaussian_log_density(
        z.clone(),
        z.zeros_like(),
        z.zeros_like(),
    ));
    assert!(max_abs_diff(prior.log_prob(0, z, Some(z1)), standard) < 1e-4);
    assert!(GlowPriorConfig::new(vec![]).init(&device).is_err());
}

#[test]
fn glow_prior_samples_scale_with_temperature_about_the_mean() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(337);
    let (prior, shapes) = glow_prior(&device);
    let n = 256;
    for level in 0..shapes.len() {
        let [c, h, w] = shapes[level];
        let condition = (level + 1 < shapes.len()).then(|| normal([n, c, h, w], &device));
        let (mean, logs) = prior.mean_and_log_scale(level, condition.clone(), n);
        let cold = prior.sample(level, [n, c, h, w], condition.clone(), 0.0, &device);
        assert_eq!(cold.dims(), [n, c, h, w]);
        assert_eq!(
            max_abs_diff(cold, mean.clone()),
            0.0,
            "temperature 0 gives the mean"
        );
        // At temperature T, (z - mu) / (T sigma) is N(0, 1): its mean square is 1 within
        // 6 standard errors (sqrt(2 / count)); a sampler ignoring T = 0.5 would give 4.
        for t in [0.5, 1.0] {
            let z = prior.sample(level, [n, c, h, w], condition.clone(), t, &device);
            let eps = (z - mean.clone()) / logs.clone().exp().mul_scalar(t);
            let count = (n * c * h * w) as f64;
            let mean_square = eps.square().mean().into_scalar::<f32>() as f64;
            let bound = 6.0 * (2.0 / count).sqrt();
            assert!(
                (mean_square - 1.0).abs() < bound,
                "level {level}, T {t}: mean square {mean_square}"
            );
        }
    }
}

#[test]
fn a_model_with_glows_prior_samples_and_decodes_its_mean_at_temperature_0() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(371);
    let flow = MultiScaleFlowConfig::new([1, 8, 8], 2, 1, 4);
    let config = marscf::MarScfConfig::new(flow).with_prior(marscf::PriorKind::Glow);
    let model = config.init(&device).unwrap();
    let x = marscf_test_support::numerics::pixels([4, 1, 8, 8], &device);
    let model = perturb(model.initialize(x).unwrap(), 0.05);
    let samples = model.sample(3, 1.0).unwrap();
    assert_eq!(samples.dims(), [3, 1, 8, 8]);
    assert!(samples.is_finite().all().into_scalar::<bool>());
    device.seed(1);
    let a = model.sample(2, 0.0).unwrap();
    device.seed(2);
    let b = model.sample(2, 0.0).unwrap();
    assert_eq!(max_abs_diff(a, b), 0.0, "temperature 0 draws no noise");
}
