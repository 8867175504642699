//! Every Flex kernel against its portable default on random inputs: forward values and
//! every gradient, under Burn's autodiff on Flex.
#![cfg(feature = "flex")]

use burn::tensor::{Device, Distribution, Tensor};
use marscf_kernels::{
    ConvSpec, LogMixture, MixtureCdf, MixtureLogDensities, actnorm, actnorm_portable,
    bisect_mixture, bisect_mixture_portable, concat_elu, concat_elu_portable, conv_lstm_layer,
    conv_lstm_layer_portable, conv2d, conv2d_portable, dropout, dropout_portable, gate,
    gate_portable, layer_norm, layer_norm_portable, lstm_cell, lstm_cell_portable,
    mixture_log_densities, mixture_log_densities_portable, multi_head_attention,
    multi_head_attention_portable, softmax, softmax_portable,
};

/// Holds Burn's random generator (one per backend and process) for one test: the dropout
/// test seeds it and expects the same mask again, which another test's draws in between
/// would change. Every test here draws, so every test takes it first.
fn exclusive_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn device() -> Device {
    let device = Device::flex().autodiff();
    assert!(
        marscf_kernels::own_kernels(&device),
        "the Flex kernels are compiled in"
    );
    device
}

fn random<const D: usize>(shape: [usize; D]) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), &device()).require_grad()
}

/// `|a - b| <= 1e-5 max(|b|, max |b| / 10)` elementwise: relative, with a floor for the
/// elements far below the tensor's scale, whose last bits depend on the order of
/// summation (a sum of `K` terms of size `max |b|` that cancels to near zero).
fn assert_close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a = a.into_data().try_to_vec::<f32>().expect("f32");
    let b = b.into_data().try_to_vec::<f32>().expect("f32");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: all zeros, nothing compared");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * y.abs().max(scale / 10.0),
            "{what}[{i}]: kernel {x}, portable {y} (scale {scale})"
        );
    }
}

#[test]
fn convolution_forward_and_gradients() {
    let _rng = exclusive_rng();
    let cases = [
        // (batch, c_in, c_out, h, w, kernel, dilation)
        (1, 3, 5, 4, 4, 1, 1),
        (17, 3, 5, 4, 4, 3, 1),
        (2, 7, 9, 5, 7, 3, 2),
        (17, 4, 6, 8, 8, 5, 1),
        (1, 5, 3, 16, 16, 5, 2),
        (3, 6, 4, 11, 9, 1, 1),
        (2, 3, 2, 6, 6, 2, 1),
        (2, 33, 12, 16, 16, 3, 1),
        // Winograd's F(2x2, 3x3): odd maps, one sample and 17, fewer output channels
        // (the input gradient is then the transposed forward, Winograd too).
        (3, 40, 36, 9, 11, 3, 1),
        (17, 32, 48, 8, 8, 3, 1),
        (1, 64, 32, 16, 16, 3, 1),
        // Maps smaller than the kernel's reach: taps that only see padding are left out
        // (a 5x5 kernel with dilation 2 acts as its inner 3x3 on 4x4 maps).
        (3, 4, 6, 4, 4, 5, 2),
        (2, 3, 4, 2, 3, 5, 1),
        (4, 2, 3, 1, 1, 3, 1),
        (5, 8, 16, 4, 4, 5, 2),
    ];
    for (batch, c_in, c_out, h, w, k, d) in cases {
        let what = format!("N{batch} {c_in}->{c_out} {h}x{w} k{k} d{d}");
        let spec = ConvSpec::same([k, k], [d, d]);
        let x = random([batch, c_in, h, w]);
        let weight = random([c_out, c_in, k, k]);
        let bias = random([c_out]);
        let probe = random([batch, c_out, h, w]).detach();
        let run = |conv: fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvSpec) -> Tensor<4>| {
            let y = conv(x.clone(), weight.clone(), Some(bias.clone()), spec);
            let grads = (y.clone() * probe.clone()).sum().backward();
            (
                y,
                x.grad(&grads).expect("dx"),
                weight.grad(&grads).expect("dw"),
                bias.grad(&grads).expect("db"),
            )
        };
        let (y, dx, dw, db) = run(conv2d);
        let (y0, dx0, dw0, db0) = run(conv2d_portable);
        assert_close(&format!("{what} y"), y, y0);
        assert_close(&format!("{what} dx"), dx, dx0);
        assert_close(&format!("{what} dw"), dw, dw0);
        assert_close(&format!("{what} db"), db, db0);
    }
}

#[test]
fn convolution_without_bias_or_autodiff() {
    let _rng = exclusive_rng();
    let spec = ConvSpec::same([3, 3], [1, 1]);
    let x = random([3, 4, 8, 8]).inner();
    let weight = random([5, 4, 3, 3]).inner();
    assert_close(
        "no bias, no autodiff",
        conv2d(x.clone(), weight.clone(), None, spec),
        conv2d_portable(x, weight, None, spec),
    );
}

#[test]
fn lstm_cell_forward_and_gradients() {
    let _rng = exclusive_rng();
    for (batch, hidden, h, w) in [
        (1, 3, 4, 4),
        (17, 5, 4, 4),
        (4, 8, 8, 8),
        (2, 4, 16, 16),
        (3, 2, 5, 7),
    ] {
        let what = format!("B{batch} hidden {hidden} {h}x{w}");
        // Pre-activations over a wide range, so that the gates saturate somewhere.
        let gates = (random([batch, 4 * hidden, h, w]) * 4.0)
            .detach()
            .require_grad();
        let recurrent = random([batch, 4 * hidden, h, w]);
        let c = random([batch, hidden, h, w]);
        let probe_h = random([batch, hidden, h, w]).detach();
        let probe_c = random([batch, hidden, h, w]).detach();
        let run = |cell: fn(
            Tensor<4>,
            Option<Tensor<4>>,
            Option<Tensor<4>>,
        ) -> marscf_kernels::LstmCellState| {
            let state = cell(gates.clone(), Some(recurrent.clone()), Some(c.clone()));
            let loss = (state.h.clone() * probe_h.clone()).sum()
                + (state.c.clone() * probe_c.clone()).sum();
            let grads = loss.backward();
            (
                state,
                gates.grad(&grads).expect("d gates"),
                recurrent.grad(&grads).expect("d recurrent"),
                c.grad(&grads).expect("d c"),
            )
        };
        let (s, dg, dr, dc) = run(lstm_cell);
        let (s0, dg0, dr0, dc0) = run(lstm_cell_portable);
        assert_close(&format!("{what} h"), s.h, s0.h);
        assert_close(&format!("{what} c"), s.c, s0.c);
        assert_close(&format!("{what} d gates"), dg, dg0);
        assert_close(&format!("{what} d recurrent"), dr, dr0);
        assert_close(&format!("{what} d c"), dc, dc0);
    }
}

#[test]
fn conv_lstm_layer_forward_and_gradients() {
    let _rng = exclusive_rng();
    for (steps, batch, hidden, h, w, k, d) in [
        // (steps, batch, hidden, h, w, kernel, dilation)
        (1, 2, 3, 4, 4, 3, 1),
        (3, 1, 2, 5, 7, 3, 1),
        (4, 17, 3, 4, 4, 3, 1),
        (3, 2, 4, 8, 8, 5, 1),
        (2, 3, 2, 16, 16, 5, 2),
        (5, 2, 3, 6, 9, 5, 2),
    ] {
        let what = format!("T{steps} B{batch} hidden {hidden} {h}x{w} k{k} d{d}");
        let spec = ConvSpec::same([k, k], [d, d]);
        let gates = (random([steps * batch, 4 * hidden, h, w]) * 3.0)
            .detach()
            .require_grad();
        let weight = (random([4 * hidden, hidden, k, k]) * 0.5)
            .detach()
            .require_grad();
        let probe = random([steps * batch, hidden, h, w]).detach();
        let run = |layer: fn(Tensor<4>, Tensor<4>, usize, ConvSpec) -> Tensor<4>| {
            let out = layer(gates.clone(), weight.clone(), steps, spec);
            let grads = (out.clone() * probe.clone()).sum().backward();
            (
                out,
                gates.grad(&grads).expect("d gates"),
                weight.grad(&grads),
            )
        };
        let (out, dg, dw) = run(conv_lstm_layer);
        let (out0, dg0, dw0) = run(conv_lstm_layer_portable);
        assert_close(&format!("{what} h"), out, out0);
        assert_close(&format!("{what} d gates"), dg, dg0);
        match (dw, dw0) {
            (Some(dw), Some(dw0)) => assert_close(&format!("{what} d weight"), dw, dw0),
            // One step never uses the recurrent kernel: the portable graph has no gradient
            // for it, the kernel's is zero.
            (Some(dw), None) if steps == 1 => {
                assert_eq!(dw.abs().max().into_scalar::<f32>(), 0.0, "{what}")
            }
            other => panic!("{what}: weight gradients {:?}", other.0.is_some()),
        }
    }
}

#[test]
fn lstm_cell_first_step_from_zeros() {
    let _rng = exclusive_rng();
    let gates = random([2, 12, 4, 4]);
    let s = lstm_cell(gates.clone(), None, None);
    let s0 = lstm_cell_portable(gates, None, None);
    assert_close("first step h", s.h, s0.h);
    assert_close("first step c", s.c, s0.c);
}

#[test]
fn actnorm_forward_and_gradients() {
    let _rng = exclusive_rng();
    for ([b, c, h, w], relu) in [
        ([1, 3, 4, 4], false),
        ([17, 5, 8, 8], true),
        ([2, 128, 16, 16], true),
        ([3, 12, 5, 7], false),
        ([16, 7, 1, 1], true),
    ] {
        let what = format!("actnorm {:?} relu {relu}", [b, c, h, w]);
        let x = random([b, c, h, w]);
        let bias = (random([1, c, 1, 1]) * 0.5).detach().require_grad();
        let logs = (random([1, c, 1, 1]) * 0.5).detach().require_grad();
        let probe = random([b, c, h, w]).detach();
        let run = |f: fn(Tensor<4>, Tensor<4>, Tensor<4>, bool) -> Tensor<4>| {
            let y = f(x.clone(), bias.clone(), logs.clone(), relu);
            let grads = (y.clone() * probe.clone()).sum().backward();
            (
                y,
                x.grad(&grads).expect("dx"),
                bias.grad(&grads).expect("d bias"),
                logs.grad(&grads).expect("d logs"),
            )
        };
        let (y, dx, db, dl) = run(actnorm);
        let (y0, dx0, db0, dl0) = run(actnorm_portable);
        assert_close(&format!("{what} y"), y, y0);
        assert_close(&format!("{what} dx"), dx, dx0);
        assert_close(&format!("{what} d bias"), db, db0);
        assert_close(&format!("{what} d logs"), dl, dl0);
    }
}

#[test]
fn layer_norm_forward_and_gradients() {
    let _rng = exclusive_rng();
    for [b, l, c] in [[1, 5, 3], [17, 4, 96], [16, 256, 96], [2, 7, 33]] {
        let what = format!("layer_norm {:?}", [b, l, c]);
        let x = (random([b, l, c]) * 3.0 + 0.5).detach().require_grad();
        let gamma = random([c]);
        let beta = random([c]);
        let probe = random([b, l, c]).detach();
        let run = |f: fn(Tensor<3>, Tensor<1>, Tensor<1>, f64) -> Tensor<3>| {
            let y = f(x.clone(), gamma.clone(), beta.clone(), 1e-5);
            let grads = (y.clone() * probe.clone()).sum().backward();
            (
                y,
                x.grad(&grads).expect("dx"),
                gamma.grad(&grads).expect("d gamma"),
                beta.grad(&grads).expect("d beta"),
            )
        };
        let (y, dx, dg, db) = run(layer_norm);
        let (y0, dx0, dg0, db0) = run(layer_norm_portable);
        assert_close(&format!("{what} y"), y, y0);
        assert_close(&format!("{what} dx"), dx, dx0);
        assert_close(&format!("{what} d gamma"), dg, dg0);
        assert_close(&format!("{what} d beta"), db, db0);
    }
}

#[test]
fn concat_elu_forward_and_gradient() {
    let _rng = exclusive_rng();
    for shape in [[1, 3, 4, 4], [17, 5, 8, 8], [2, 96, 16, 16], [3, 2, 5, 7]] {
        let x = (random(shape) * 3.0).detach().require_grad();
        let [b, c, h, w] = shape;
        let probe = random([b, 2 * c, h, w]).detach();
        let run = |f: fn(Tensor<4>) -> Tensor<4>| {
            let y = f(x.clone());
            let grads = (y.clone() * probe.clone()).sum().backward();
            (y, x.grad(&grads).expect("dx"))
        };
        let (y, dx) = run(concat_elu);
        let (y0, dx0) = run(concat_elu_portable);
        assert_close(&format!("concat_elu {shape:?}"), y, y0);
        assert_close(&format!("concat_elu {shape:?} dx"), dx, dx0);
    }
}

#[test]
fn gate_forward_and_gradient() {
    let _rng = exclusive_rng();
    for (shape, dim) in [
        ([2, 6, 4, 4], 1),
        ([17, 4, 5, 6], 1),
        ([3, 5, 7, 8], 3),
        ([16, 8, 16, 16], 1),
    ] {
        let x = (random(shape) * 4.0).detach().require_grad();
        let mut half = shape;
        half[dim] /= 2;
        let probe = random(half).detach();
        let run = |f: fn(Tensor<4>, usize) -> Tensor<4>| {
            let y = f(x.clone(), dim);
            let grads = (y.clone() * probe.clone()).sum().backward();
            (y, x.grad(&grads).expect("dx"))
        };
        let (y, dx) = run(gate);
        let (y0, dx0) = run(gate_portable);
        assert_close(&format!("gate {shape:?} dim {dim}"), y, y0);
        assert_close(&format!("gate {shape:?} dim {dim} dx"), dx, dx0);
    }
}

#[test]
fn mixture_bisection() {
    let _rng = exclusive_rng();
    for [b, k, c, h, w] in [[2, 3, 3, 4, 4], [17, 32, 6, 8, 8], [1, 5, 2, 5, 7]] {
        let d = Device::flex();
        let uniform = |shape, lo, hi| Tensor::<5>::random(shape, Distribution::Uniform(lo, hi), &d);
        let logits = uniform([b, k, c, h, w], -2.0, 2.0);
        let weights = logits.clone().exp() / logits.exp().sum_dim(1);
        let mu = uniform([b, k, c, h, w], -3.0, 3.0);
        let log_s = uniform([b, k, c, h, w], -2.0, 1.0);
        let spread = log_s.clone().exp().sum_dim(1).mul_scalar(20.0);
        let lower = (mu.clone() - spread.clone())
            .min_dim(1)
            .reshape([b, c, h, w]);
        let upper = (mu.clone() + spread).max_dim(1).reshape([b, c, h, w]);
        let mixture = MixtureCdf {
            weights,
            mu,
            inv_scale: log_s.neg().exp(),
        };
        let y = Tensor::<4>::random([b, c, h, w], Distribution::Uniform(0.001, 0.999), &d);
        for (iters, tolerance) in [(100, 1e-10), (13, 1e-10), (100, 1e-3)] {
            let what = format!(
                "bisection {:?} {iters} iterations, tolerance {tolerance}",
                [b, k, c, h, w]
            );
            let bracket = || [lower.clone(), upper.clone()];
            let x = bisect_mixture(&mixture, y.clone(), bracket(), iters, tolerance);
            let x0 = bisect_mixture_portable(&mixture, y.clone(), bracket(), iters, tolerance);
            // The CDFs differ in their last bits, so a comparison can flip where x is
            // within a few ulps of the root: compare with the bracket's final resolution.
            let diff = (x - x0).abs().max().into_scalar::<f32>();
            let allowed = if tolerance < 1e-6 { 1e-5 } else { 2e-3 };
            assert!(diff <= allowed, "{what}: max |x - x0| = {diff}");
        }
    }
}

#[test]
fn mixture_log_densities_forward_and_gradients() {
    let _rng = exclusive_rng();
    // (batch, components, c, h, w): odd sizes, blocks that do not divide the positions.
    for (b, k, c, h, w) in [(1, 2, 1, 1, 3), (3, 4, 3, 5, 7), (2, 32, 2, 8, 9)] {
        let what = format!("B{b} k{k} {c}x{h}x{w}");
        let pi = random([b, k, c, h, w]);
        // Points and locations spread over several scales, log-scales in [-3, 1].
        let leaf = |t: Tensor<5>| t.detach().require_grad();
        let x = random([b, c, h, w]).mul_scalar(4.0).detach().require_grad();
        let mu = leaf(random([b, k, c, h, w]).mul_scalar(3.0));
        let log_s = leaf(random([b, k, c, h, w]).mul_scalar(2.0).sub_scalar(1.0));
        let probes = [random([b, c, h, w]).detach(), random([b, c, h, w]).detach()];
        let run = |f: fn(&LogMixture, Tensor<4>) -> MixtureLogDensities| {
            let mixture = LogMixture {
                log_weights: burn::tensor::activation::log_softmax(pi.clone(), 1),
                mu: mu.clone(),
                log_s: log_s.clone(),
            };
            let d = f(&mixture, x.clone());
            let loss = (d.log_pdf.clone() * probes[0].clone()).sum()
                + (d.log_cdf.clone() * probes[1].clone()).sum();
            let grads = loss.backward();
            let grad = |t: &Tensor<5>| t.grad(&grads).expect("a gradient");
            (
                [d.log_pdf, d.log_cdf, x.grad(&grads).expect("dx")],
                [grad(&pi), grad(&mu), grad(&log_s)],
            )
        };
        let (values, params) = run(mixture_log_densities);
        let (values0, params0) = run(mixture_log_densities_portable);
        for ((name, a), b) in ["log pdf", "log cdf", "dx"].iter().zip(values).zip(values0) {
            assert_close(&format!("{what} {name}"), a, b);
        }
        for ((name, a), b) in ["d pi", "d mu", "d log s"].iter().zip(params).zip(params0) {
            assert_close(&format!("{what} {name}"), a, b);
        }
    }
}

#[test]
fn softmax_forward_and_gradient() {
    let _rng = exclusive_rng();
    for shape in [[2, 3, 5, 7], [16, 4, 17, 256], [1, 1, 3, 5]] {
        let x = (random(shape) * 4.0).detach().require_grad();
        let probe = random(shape).detach();
        let run = |f: fn(Tensor<4>) -> Tensor<4>| {
            let p = f(x.clone());
            let grads = (p.clone() * probe.clone()).sum().backward();
            (p, x.grad(&grads).expect("dx"))
        };
        let (p, dx) = run(softmax);
        let (p0, dx0) = run(softmax_portable);
        assert_close(&format!("softmax {shape:?}"), p, p0);
        assert_close(&format!("softmax {shape:?} dx"), dx, dx0);
    }
}

#[test]
fn attention_forward_and_gradient() {
    let _rng = exclusive_rng();
    // Odd sizes, one sample (the products threaded) and 17 (one sample per worker), the
    // level-1 size of the model; with dropout the portable default's masks come from the
    // Flex dropout kernel, seeded alike, so the two drop the same weights.
    for [b, l, heads, d] in [
        [3, 7, 2, 5],
        [1, 64, 4, 24],
        [17, 16, 4, 6],
        [16, 256, 4, 24],
    ] {
        for prob in [0.0, 0.2] {
            let what = format!("attention {:?} p {prob}", [b, l, heads, d]);
            let packed = (random([b, l, 3 * heads * d]) * 2.0)
                .detach()
                .require_grad();
            let probe = random([b, l, heads * d]).detach();
            let run = |f: fn(Tensor<3>, usize, f64) -> Tensor<3>| {
                device().seed(5);
                let y = f(packed.clone(), heads, prob);
                let grads = (y.clone() * probe.clone()).sum().backward();
                (y, packed.grad(&grads).expect("d packed"))
            };
            let (y, dp) = run(multi_head_attention);
            let (y0, dp0) = run(multi_head_attention_portable);
            assert_close(&format!("{what} y"), y, y0);
            assert_close(&format!("{what} d packed"), dp, dp0);
        }
    }
}

#[test]
fn dropout_masks_like_the_portable_default() {
    let _rng = exclusive_rng();
    // Both draw Bernoulli(1 - p) masks, from different generators: compare what a mask
    // must satisfy: the kept share within 5 sigma of 1 - p, over 2^20 elements (or 1,024
    // channels).
    for (prob, whole_channels) in [(0.2, false), (0.5, false), (0.2, true)] {
        let x = Tensor::<4>::ones([16, 64, 32, 32], &device()).require_grad();
        for f in [dropout::<4>, dropout_portable::<4>] {
            device().seed(11);
            let y = f(x.clone(), prob, whole_channels);
            let grads = y.clone().sum().backward();
            let dx = x
                .grad(&grads)
                .expect("dx")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            let y = y.into_data().try_to_vec::<f32>().expect("f32");
            let keep = 1.0 - prob;
            assert!(
                y.iter()
                    .all(|v| *v == 0.0 || (*v as f64 - 1.0 / keep).abs() < 1e-6)
            );
            // The gradient of y = x m / keep is m / keep: here equal to y itself.
            assert_eq!(dx, y, "dropout gradient is its mask");
            let draws = if whole_channels {
                16.0 * 64.0
            } else {
                16.0 * 64.0 * 1024.0
            };
            let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / (16 * 64 * 1024) as f64;
            let sigma = (keep * prob / draws).sqrt();
            assert!((kept - keep).abs() < 5.0 * sigma, "p {prob}: kept {kept}");
            if whole_channels {
                for channel in y.chunks(1024) {
                    assert!(
                        channel.iter().all(|v| *v == channel[0]),
                        "one draw per channel"
                    );
                }
            }
            // Seeding the device reproduces the mask.
            device().seed(11);
            let again = f(x.clone(), prob, whole_channels)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            assert_eq!(again, y);
        }
    }
}
