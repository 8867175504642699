//! Every Flex kernel against its portable default on seeded random inputs: forward values
//! and every gradient, under Burn's autodiff on Flex; every op on empty tensors; attention's
//! dropout against the mask hash it is defined by.
//!
//! Inputs come from a small seeded generator ([`Rng`]), not from the device's: a failure
//! names its seed and reproduces.

use burn::tensor::{Device, Distribution, Gradients, Tensor, TensorData};
use marscf_kernels::{
    ConvSpec, LogMixture, MixtureCdf, MixtureLogDensities, actnorm, actnorm_portable,
    bisect_mixture, bisect_mixture_portable, concat_elu, concat_elu_portable, conv_lstm_layer,
    conv_lstm_layer_portable, conv2d, conv2d_portable, dropout, dropout_portable, gate,
    gate_portable, layer_norm, layer_norm_portable, lstm_cell, lstm_cell_portable,
    mixture_log_densities, mixture_log_densities_portable, multi_head_attention,
    multi_head_attention_portable, softmax, softmax_portable, weight_norm, weight_norm_portable,
};
// Burn's random generator is drawn from only by the dropout and attention tests, which seed
// it and expect the same mask again.
use marscf_test_support::model::exclusive_rng;

fn device() -> Device {
    let device = Device::flex().autodiff();
    assert!(
        marscf_kernels::own_kernels(&device),
        "the Flex kernels are compiled in"
    );
    device
}

/// A seeded generator of test inputs (SplitMix64): the same seed, the same tensors.
struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Self { seed, state: seed }
    }

    /// Uniform in `[0, 1)`, 24 random bits.
    fn next_unit(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A tensor of `shape`, uniform in `[lo, hi)`, on `device`.
    fn uniform_on<const D: usize>(
        &mut self,
        shape: [usize; D],
        [lo, hi]: [f32; 2],
        device: &Device,
    ) -> Tensor<D> {
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| lo + (hi - lo) * self.next_unit()).collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    /// A leaf of the autodiff graph, uniform in `[-1, 1)`.
    fn random<const D: usize>(&mut self, shape: [usize; D]) -> Tensor<D> {
        self.uniform_on(shape, [-1.0, 1.0], &device())
            .require_grad()
    }
}

/// `|a - b| <= 1e-5 max(|b|, max |b| / 10)` elementwise: relative, with a floor for the
/// elements far below the tensor's scale, whose last bits depend on the order of
/// summation (a sum of `K` terms of size `max |b|` that cancels to near zero). The message
/// names the inputs' `seed`.
fn assert_close<const D: usize>(seed: u64, what: &str, a: Tensor<D>, b: Tensor<D>) {
    assert_close_within(seed, what, a, b, 1e-5);
}

/// [`assert_close`] with `tolerance` in place of `1e-5`.
fn assert_close_within<const D: usize>(
    seed: u64,
    what: &str,
    a: Tensor<D>,
    b: Tensor<D>,
    tolerance: f32,
) {
    assert_eq!(a.dims(), b.dims(), "{what} (seed {seed}): shapes");
    let a = a.into_data().try_to_vec::<f32>().expect("f32");
    let b = b.into_data().try_to_vec::<f32>().expect("f32");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        scale > 0.0,
        "{what} (seed {seed}): all zeros, nothing compared"
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tolerance * y.abs().max(scale / 10.0),
            "{what}[{i}] (seed {seed}): {x}, expected {y} (scale {scale})"
        );
    }
}

/// A convolution `(x, weight, bias, spec) -> y`.
type Conv = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvSpec) -> Tensor<4>;

/// `y = conv(x, weight) + bias` and the gradients of `Σ y probe`, `(y, dx, dw, db)`, from
/// `([x, weight, probe], bias)`, each taken as a fresh leaf.
fn conv_and_gradients(
    conv: Conv,
    ([x, weight, probe], bias): &([Tensor<4>; 3], Tensor<1>),
    spec: ConvSpec,
) -> (Tensor<4>, Tensor<4>, Tensor<4>, Tensor<1>) {
    let [x, weight] = [x, weight].map(|t| t.clone().detach().require_grad());
    let bias = bias.clone().detach().require_grad();
    let y = conv(x.clone(), weight.clone(), Some(bias.clone()), spec);
    let grads = (y.clone() * probe.clone().detach()).sum().backward();
    (
        y,
        x.grad(&grads).expect("dx"),
        weight.grad(&grads).expect("dw"),
        bias.grad(&grads).expect("db"),
    )
}

#[test]
fn convolution_forward_and_gradients() {
    let mut rng = Rng::new(101);
    // Exact to 1e-5: im2col, pointwise and F(2x2, 3x3).
    let cases = [
        // (batch, c_in, c_out, h, w, kernel, dilation)
        (1, 3, 5, 4, 4, 1, 1),
        (17, 3, 5, 4, 4, 3, 1),
        (2, 7, 9, 5, 7, 3, 2),
        (17, 4, 6, 8, 8, 5, 1),
        (1, 5, 3, 16, 16, 5, 2),
        (3, 6, 4, 11, 9, 1, 1),
        (2, 3, 2, 6, 6, 2, 1),
        // Winograd's F(2x2, 3x3): odd maps, one sample and 17 (the input gradient is the
        // transposed forward, Winograd too).
        (3, 40, 36, 9, 11, 3, 1),
        (17, 32, 48, 8, 8, 3, 1),
        // Maps smaller than the kernel's reach: taps that only see padding are left out
        // (a 5x5 kernel with dilation 2 acts as its inner 3x3 on 4x4 maps).
        (3, 4, 6, 4, 4, 5, 2),
        (2, 3, 4, 2, 3, 5, 1),
        (4, 2, 3, 1, 1, 3, 1),
        (5, 8, 16, 4, 4, 5, 2),
    ];
    // Winograd's F(2x2, 5x5) and F(4x4, 3x3), held to their bound: the prior's 5x5 with
    // dilation 1 and 2 and 3x3 on maps of at most 4x4, and 3x3 on 16x16 (the MixLogCDF
    // couplings' level 1, and with few output channels the affine coupling's last
    // convolution); odd sides, one sample and 17, more and fewer output channels.
    let winograd = [
        (1, 32, 40, 8, 8, 5, 1),
        (3, 33, 32, 7, 9, 5, 1),
        (2, 32, 36, 16, 16, 5, 2),
        (1, 40, 32, 6, 10, 5, 2),
        (17, 32, 64, 4, 4, 3, 1),
        (17, 36, 32, 3, 4, 3, 1),
        (1, 64, 32, 16, 16, 3, 1),
        (2, 33, 12, 16, 16, 3, 1),
    ];
    let cases = cases.map(|c| (c, false)).into_iter();
    for ((batch, c_in, c_out, h, w, k, d), bounded) in cases.chain(winograd.map(|c| (c, true))) {
        let what = format!("N{batch} {c_in}->{c_out} {h}x{w} k{k} d{d}");
        let spec = ConvSpec::same([k, k], [d, d]);
        let x = rng.random([batch, c_in, h, w]);
        let weight = rng.random([c_out, c_in, k, k]);
        let bias = rng.random([c_out]);
        let probe = rng.random([batch, c_out, h, w]).detach();
        let inputs = ([x, weight, probe], bias);
        let (y, dx, dw, db) = conv_and_gradients(conv2d, &inputs, spec);
        let (y0, dx0, dw0, db0) = conv_and_gradients(conv2d_portable, &inputs, spec);
        assert_close(rng.seed, &format!("{what} db"), db, db0);
        if bounded {
            // The same products of the absolute values bound each value's rounding.
            let abs = (inputs.0.clone().map(|t| t.abs()), inputs.1.clone().abs());
            let (y_s, dx_s, dw_s, _) = conv_and_gradients(conv2d_portable, &abs, spec);
            assert_within_winograd_bound(rng.seed, &format!("{what} y"), y, y0, y_s);
            assert_within_winograd_bound(rng.seed, &format!("{what} dx"), dx, dx0, dx_s);
            assert_within_winograd_bound(rng.seed, &format!("{what} dw"), dw, dw0, dw_s);
        } else {
            assert_close(rng.seed, &format!("{what} y"), y, y0);
            assert_close(rng.seed, &format!("{what} dx"), dx, dx0);
            assert_close(rng.seed, &format!("{what} dw"), dw, dw0);
        }
    }
}

/// `|a - b| <= 2⁻¹⁵ scale` elementwise: the bound of Winograd's F(2x2, 5x5) and
/// F(4x4, 3x3) (`src/flex/winograd6.rs`), `scale` the same op on the inputs' absolute values
/// (for a convolution, `Σ |x| |w|` over each value's taps).
fn assert_within_winograd_bound<const D: usize>(
    seed: u64,
    what: &str,
    a: Tensor<D>,
    b: Tensor<D>,
    scale: Tensor<D>,
) {
    assert_eq!(a.dims(), b.dims(), "{what} (seed {seed}): shapes");
    let [a, b, scale] = [a, b, scale].map(|t| t.into_data().try_to_vec::<f32>().expect("f32"));
    let bound = 2f32.powi(-15);
    for (i, ((x, y), s)) in a.iter().zip(&b).zip(&scale).enumerate() {
        assert!(
            (x - y).abs() <= bound * s,
            "{what}[{i}] (seed {seed}): {x}, expected {y} (scale {s})"
        );
    }
}

#[test]
fn convolution_reusing_a_weight_without_autodiff() {
    // Without autodiff, Flex keeps a Winograd kernel per weight tensor: the same weight on
    // other inputs and another map size, and a weight changed after the kernel was kept,
    // must each give the portable default's values (to Winograd's bound).
    let mut rng = Rng::new(107);
    let device = Device::flex();
    let spec = ConvSpec::same([5, 5], [1, 1]);
    let weight = rng.uniform_on([128, 32, 5, 5], [-1.0, 1.0], &device);
    let bias = rng.uniform_on([128], [-1.0, 1.0], &device);
    let check = |what: &str, x: Tensor<4>, weight: Tensor<4>| {
        let y = conv2d(x.clone(), weight.clone(), Some(bias.clone()), spec);
        let y0 = conv2d_portable(x.clone(), weight.clone(), Some(bias.clone()), spec);
        let scale = conv2d_portable(x.abs(), weight.abs(), Some(bias.clone().abs()), spec);
        assert_within_winograd_bound(107, what, y, y0, scale);
    };
    for (what, size) in [
        ("first", 8),
        ("again", 8),
        ("4x4 maps", 4),
        ("8x8 again", 8),
    ] {
        let x = rng.uniform_on([3, 32, size, size], [-1.0, 1.0], &device);
        check(what, x, weight.clone());
    }
    let doubled = weight.mul_scalar(2.0);
    let x = rng.uniform_on([3, 32, 8, 8], [-1.0, 1.0], &device);
    check("the weight doubled", x, doubled);
}

#[test]
fn convolution_without_bias_or_autodiff() {
    let mut rng = Rng::new(102);
    let spec = ConvSpec::same([3, 3], [1, 1]);
    let x = rng.random([3, 4, 8, 8]).inner();
    let weight = rng.random([5, 4, 3, 3]).inner();
    assert_close(
        rng.seed,
        "no bias, no autodiff",
        conv2d(x.clone(), weight.clone(), None, spec),
        conv2d_portable(x, weight, None, spec),
    );
}

#[test]
fn lstm_cell_forward_and_gradients() {
    let mut rng = Rng::new(103);
    for (batch, hidden, h, w) in [
        (1, 3, 4, 4),
        (17, 5, 4, 4),
        (4, 8, 8, 8),
        (2, 4, 16, 16),
        (3, 2, 5, 7),
    ] {
        let what = format!("B{batch} hidden {hidden} {h}x{w}");
        // Pre-activations over a wide range, so that the gates saturate somewhere.
        let gates = (rng.random([batch, 4 * hidden, h, w]) * 4.0)
            .detach()
            .require_grad();
        let recurrent = rng.random([batch, 4 * hidden, h, w]);
        let c = rng.random([batch, hidden, h, w]);
        let probe_h = rng.random([batch, hidden, h, w]).detach();
        let probe_c = rng.random([batch, hidden, h, w]).detach();
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
        assert_close(rng.seed, &format!("{what} h"), s.h, s0.h);
        assert_close(rng.seed, &format!("{what} c"), s.c, s0.c);
        assert_close(rng.seed, &format!("{what} d gates"), dg, dg0);
        assert_close(rng.seed, &format!("{what} d recurrent"), dr, dr0);
        assert_close(rng.seed, &format!("{what} d c"), dc, dc0);
    }
}

#[test]
fn conv_lstm_layer_forward_and_gradients() {
    let mut rng = Rng::new(104);
    // With 32 hidden channels the recurrent convolution is Winograd's, as in the prior:
    // its rounding, 2⁻¹⁵ of Σ |h| |w| over a gate's 800 or 288 taps per step (the bound of
    // `convolution_forward_and_gradients`), carried through the steps, is held
    // to 2⁻¹² of the values (the worst seen: 9.1e-5).
    let winograd = 2f32.powi(-12);
    for (steps, batch, hidden, h, w, k, d, tolerance) in [
        // (steps, batch, hidden, h, w, kernel, dilation, tolerance)
        (1, 2, 3, 4, 4, 3, 1, 1e-5),
        (3, 1, 2, 5, 7, 3, 1, 1e-5),
        (4, 17, 3, 4, 4, 3, 1, 1e-5),
        (3, 2, 4, 8, 8, 5, 1, 1e-5),
        (2, 3, 2, 16, 16, 5, 2, 1e-5),
        (5, 2, 3, 6, 9, 5, 2, 1e-5),
        (3, 2, 32, 8, 8, 5, 1, winograd),
        (2, 1, 32, 16, 16, 5, 2, winograd),
        (4, 17, 32, 4, 4, 3, 1, winograd),
    ] {
        let what = format!("T{steps} B{batch} hidden {hidden} {h}x{w} k{k} d{d}");
        let spec = ConvSpec::same([k, k], [d, d]);
        let gates = (rng.random([steps * batch, 4 * hidden, h, w]) * 3.0)
            .detach()
            .require_grad();
        let weight = (rng.random([4 * hidden, hidden, k, k]) * 0.5)
            .detach()
            .require_grad();
        let probe = rng.random([steps * batch, hidden, h, w]).detach();
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
        assert_close_within(rng.seed, &format!("{what} h"), out, out0, tolerance);
        assert_close_within(rng.seed, &format!("{what} d gates"), dg, dg0, tolerance);
        match (dw, dw0) {
            (Some(dw), Some(dw0)) => {
                assert_close_within(rng.seed, &format!("{what} d weight"), dw, dw0, tolerance)
            }
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
    let mut rng = Rng::new(105);
    let gates = rng.random([2, 12, 4, 4]);
    let s = lstm_cell(gates.clone(), None, None);
    let s0 = lstm_cell_portable(gates, None, None);
    assert_close(rng.seed, "first step h", s.h, s0.h);
    assert_close(rng.seed, "first step c", s.c, s0.c);
}

#[test]
fn actnorm_forward_and_gradients() {
    let mut rng = Rng::new(106);
    for ([b, c, h, w], relu) in [
        ([1, 3, 4, 4], false),
        ([17, 5, 8, 8], true),
        ([2, 128, 16, 16], true),
        ([3, 12, 5, 7], false),
        ([16, 7, 1, 1], true),
    ] {
        let what = format!("actnorm {:?} relu {relu}", [b, c, h, w]);
        let x = rng.random([b, c, h, w]);
        let bias = (rng.random([1, c, 1, 1]) * 0.5).detach().require_grad();
        let logs = (rng.random([1, c, 1, 1]) * 0.5).detach().require_grad();
        let probe = rng.random([b, c, h, w]).detach();
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
        assert_close(rng.seed, &format!("{what} y"), y, y0);
        assert_close(rng.seed, &format!("{what} dx"), dx, dx0);
        assert_close(rng.seed, &format!("{what} d bias"), db, db0);
        assert_close(rng.seed, &format!("{what} d logs"), dl, dl0);
    }
}

#[test]
fn layer_norm_forward_and_gradients() {
    let mut rng = Rng::new(107);
    for [b, l, c] in [[1, 5, 3], [17, 4, 96], [16, 256, 96], [2, 7, 33]] {
        let what = format!("layer_norm {:?}", [b, l, c]);
        let x = (rng.random([b, l, c]) * 3.0 + 0.5).detach().require_grad();
        let gamma = rng.random([c]);
        let beta = rng.random([c]);
        let probe = rng.random([b, l, c]).detach();
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
        assert_close(rng.seed, &format!("{what} y"), y, y0);
        assert_close(rng.seed, &format!("{what} dx"), dx, dx0);
        assert_close(rng.seed, &format!("{what} d gamma"), dg, dg0);
        assert_close(rng.seed, &format!("{what} d beta"), db, db0);
    }
}

#[test]
fn concat_elu_forward_and_gradient() {
    let mut rng = Rng::new(108);
    for shape in [[1, 3, 4, 4], [17, 5, 8, 8], [2, 96, 16, 16], [3, 2, 5, 7]] {
        let x = (rng.random(shape) * 3.0).detach().require_grad();
        let [b, c, h, w] = shape;
        let probe = rng.random([b, 2 * c, h, w]).detach();
        let run = |f: fn(Tensor<4>) -> Tensor<4>| {
            let y = f(x.clone());
            let grads = (y.clone() * probe.clone()).sum().backward();
            (y, x.grad(&grads).expect("dx"))
        };
        let (y, dx) = run(concat_elu);
        let (y0, dx0) = run(concat_elu_portable);
        assert_close(rng.seed, &format!("concat_elu {shape:?}"), y, y0);
        assert_close(rng.seed, &format!("concat_elu {shape:?} dx"), dx, dx0);
    }
}

#[test]
fn gate_forward_and_gradient() {
    let mut rng = Rng::new(109);
    for (shape, dim) in [
        ([2, 6, 4, 4], 1),
        ([17, 4, 5, 6], 1),
        ([3, 5, 7, 8], 3),
        ([16, 8, 16, 16], 1),
    ] {
        let x = (rng.random(shape) * 4.0).detach().require_grad();
        let mut half = shape;
        half[dim] /= 2;
        let probe = rng.random(half).detach();
        let run = |f: fn(Tensor<4>, usize) -> Tensor<4>| {
            let y = f(x.clone(), dim);
            let grads = (y.clone() * probe.clone()).sum().backward();
            (y, x.grad(&grads).expect("dx"))
        };
        let (y, dx) = run(gate);
        let (y0, dx0) = run(gate_portable);
        assert_close(rng.seed, &format!("gate {shape:?} dim {dim}"), y, y0);
        assert_close(rng.seed, &format!("gate {shape:?} dim {dim} dx"), dx, dx0);
    }
}

#[test]
fn mixture_bisection() {
    let mut rng = Rng::new(110);
    let shapes = [
        [2, 3, 3, 4, 4],
        [17, 32, 6, 8, 8],
        [1, 5, 2, 5, 7],
        // Fewer than 64 positions per sample (16, 24, 40) with 4 or 5 samples: a block of
        // 64 elements would span three or more samples.
        [4, 3, 1, 4, 4],
        [5, 3, 1, 4, 4],
        [4, 4, 2, 3, 4],
        [5, 4, 2, 3, 4],
        [4, 2, 2, 4, 5],
        [5, 2, 2, 4, 5],
    ];
    for [b, k, c, h, w] in shapes {
        let d = Device::flex();
        let mut uniform = |shape, lo, hi| rng.uniform_on::<5>(shape, [lo, hi], &d);
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
        let y = rng.uniform_on::<4>([b, c, h, w], [0.001, 0.999], &d);
        for (iters, tolerance) in [(100, 1e-10), (13, 1e-10), (100, 1e-3)] {
            let what = format!(
                "bisection {:?} {iters} iterations, tolerance {tolerance} (seed {})",
                [b, k, c, h, w],
                rng.seed
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
    let mut rng = Rng::new(111);
    // (batch, components, c, h, w): odd sizes, blocks that do not divide the positions.
    for (b, k, c, h, w) in [(1, 2, 1, 1, 3), (3, 4, 3, 5, 7), (2, 32, 2, 8, 9)] {
        let what = format!("B{b} k{k} {c}x{h}x{w}");
        let pi = rng.random([b, k, c, h, w]);
        // Points and locations spread over several scales, log-scales in [-3, 1].
        let leaf = |t: Tensor<5>| t.detach().require_grad();
        let x = rng
            .random([b, c, h, w])
            .mul_scalar(4.0)
            .detach()
            .require_grad();
        let mu = leaf(rng.random([b, k, c, h, w]).mul_scalar(3.0));
        let log_s = leaf(rng.random([b, k, c, h, w]).mul_scalar(2.0).sub_scalar(1.0));
        let probes = [
            rng.random([b, c, h, w]).detach(),
            rng.random([b, c, h, w]).detach(),
        ];
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
            assert_close(rng.seed, &format!("{what} {name}"), a, b);
        }
        for ((name, a), b) in ["d pi", "d mu", "d log s"].iter().zip(params).zip(params0) {
            assert_close(rng.seed, &format!("{what} {name}"), a, b);
        }
    }
}

#[test]
fn softmax_forward_and_gradient() {
    let mut rng = Rng::new(112);
    for shape in [[2, 3, 5, 7], [16, 4, 17, 256], [1, 1, 3, 5]] {
        let x = (rng.random(shape) * 4.0).detach().require_grad();
        let probe = rng.random(shape).detach();
        let run = |f: fn(Tensor<4>) -> Tensor<4>| {
            let p = f(x.clone());
            let grads = (p.clone() * probe.clone()).sum().backward();
            (p, x.grad(&grads).expect("dx"))
        };
        let (p, dx) = run(softmax);
        let (p0, dx0) = run(softmax_portable);
        assert_close(rng.seed, &format!("softmax {shape:?}"), p, p0);
        assert_close(rng.seed, &format!("softmax {shape:?} dx"), dx, dx0);
    }
}

/// [`weight_norm`] against its portable default for a direction of shape `v` (gains
/// `(out, 1, ..., 1)`), forward and both gradients.
fn weight_norm_matches<const D: usize>(rng: &mut Rng, v: [usize; D]) {
    let mut g_shape = [1; D];
    g_shape[0] = v[0];
    let what = format!("weight_norm {v:?}");
    let direction = rng.random(v).detach().require_grad();
    let gain = (rng.random(g_shape) + 1.5).detach().require_grad();
    let probe = rng.random(v).detach();
    let run = |f: fn(Tensor<D>, Tensor<D>) -> Tensor<D>| {
        let w = f(direction.clone(), gain.clone());
        let grads = (w.clone() * probe.clone()).sum().backward();
        let dv = direction.grad(&grads).expect("dv");
        (w, dv, gain.grad(&grads).expect("dg"))
    };
    let (w, dv, dg) = run(weight_norm);
    let (w0, dv0, dg0) = run(weight_norm_portable);
    // Without autodiff (evaluation, sampling) too.
    let untracked = weight_norm(direction.clone().inner(), gain.clone().inner());
    assert_close(
        rng.seed,
        &format!("{what} untracked w"),
        untracked,
        w0.clone(),
    );
    assert_close(rng.seed, &format!("{what} w"), w, w0);
    assert_close(rng.seed, &format!("{what} dg"), dg, dg0);
    if v[1..].iter().product::<usize>() == 1 {
        // One value per unit: w = g sign(v), so dv is 0 but for rounding, against a
        // gradient `g dw / |v|` of the probe's size.
        let largest = |t: Tensor<D>| t.abs().max().into_scalar::<f32>();
        let size = largest(gain.clone() / direction.clone().abs()) * largest(probe.clone());
        for (name, dv) in [("kernel", dv), ("portable", dv0)] {
            let err = largest(dv);
            assert!(
                err <= 1e-6 * size,
                "{what} dv ({name}): {err} against {size}"
            );
        }
    } else {
        assert_close(rng.seed, &format!("{what} dv"), dv, dv0);
    }
}

#[test]
fn weight_norm_forward_and_gradients() {
    let mut rng = Rng::new(114);
    // The MixLogCDF network's 3x3 and 1x1 convolutions, odd sizes, a linear map and a
    // per-channel scale.
    weight_norm_matches(&mut rng, [96, 192, 3, 3]);
    weight_norm_matches(&mut rng, [7, 5, 3, 3]);
    weight_norm_matches(&mut rng, [17, 33, 1, 1]);
    weight_norm_matches(&mut rng, [288, 96]);
    weight_norm_matches(&mut rng, [6, 1, 1]);
}

/// The seed of the dropout mask that the next dropout (or attention) call on `device()`
/// draws after the device is seeded with `device_seed`: two draws of its generator, 48
/// random bits (`src/flex/dropout.rs`, `Mask::drawn`).
fn mask_seed_after(device_seed: u64) -> u64 {
    device().seed(device_seed);
    let draws = Tensor::<1>::random([2], Distribution::Default, &device())
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("two float32 draws");
    (u64::from(draws[0].to_bits()) << 32) | u64::from(draws[1].to_bits())
}

/// `m_i / keep` for elements `0..count` of the per-element dropout mask of `seed`, written
/// out from its definition (`src/flex/dropout.rs`): element `i` is kept iff the top 24 bits of
/// `fmix(fmix(c φ ⊕ seed_lo) ⊕ seed_hi)` are below `round(keep 2^24)`, with `fmix`
/// murmur3's finaliser, `φ = 0x9E3779B9` and the counter `c = i_lo ⊕ i_hi φ`.
fn dropout_scales(seed: u64, count: usize, keep: f64) -> Vec<f32> {
    const GOLDEN: u32 = 0x9E37_79B9;
    let fmix = |mut h: u32| {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^ (h >> 16)
    };
    let threshold = (keep * (1u64 << 24) as f64).round() as u32;
    (0..count as u64)
        .map(|i| {
            let counter = (i as u32) ^ ((i >> 32) as u32).wrapping_mul(GOLDEN);
            let h = fmix(fmix(counter.wrapping_mul(GOLDEN) ^ seed as u32) ^ (seed >> 32) as u32);
            if (h >> 8) < threshold {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Attention of `packed` `(B, L, 3c)` by its definition in Burn's tensor operations (Burn's
/// softmax, none of our kernels), the weights `(B, heads, L, L)` multiplied by `scales`.
fn attention_reference(packed: Tensor<3>, heads: usize, scales: Option<Tensor<4>>) -> Tensor<3> {
    let [b, l, packed_width] = packed.dims();
    let c = packed_width / 3;
    let d = c / heads;
    let head = |i: usize| {
        packed
            .clone()
            .narrow(2, i * c, c)
            .reshape([b, l, heads, d])
            .swap_dims(1, 2)
    };
    let (key, value, query) = (head(0), head(1), head(2));
    let scores = query
        .matmul(key.swap_dims(2, 3))
        .div_scalar((d as f64).sqrt());
    let mut weights = burn::tensor::activation::softmax(scores, 3);
    if let Some(scales) = scales {
        weights = weights * scales;
    }
    weights.matmul(value).swap_dims(1, 2).reshape([b, l, c])
}

#[test]
fn attention_forward_and_gradient() {
    let _rng = exclusive_rng();
    let mut rng = Rng::new(113);
    // Odd sizes, one sample (the products threaded) and 17 (one sample per worker), the
    // level-1 size of the model. Kernel and portable default against the definition; with
    // dropout, its mask recomputed here from the hash (both implementations draw the same
    // mask seed from the device seeded alike).
    for [b, l, heads, d] in [
        [3, 7, 2, 5],
        [1, 64, 4, 24],
        [17, 16, 4, 6],
        [16, 256, 4, 24],
    ] {
        for prob in [0.0, 0.2] {
            let what = format!("attention {:?} p {prob}", [b, l, heads, d]);
            let packed = (rng.random([b, l, 3 * heads * d]) * 2.0)
                .detach()
                .require_grad();
            let probe = rng.random([b, l, heads * d]).detach();
            let backward = |y: Tensor<3>| {
                let grads = (y.clone() * probe.clone()).sum().backward();
                (y, packed.grad(&grads).expect("d packed"))
            };
            let run = |f: fn(Tensor<3>, usize, f64) -> Tensor<3>| {
                device().seed(5);
                backward(f(packed.clone(), heads, prob))
            };
            let (y, dp) = run(multi_head_attention);
            let (y0, dp0) = run(multi_head_attention_portable);
            let scales = (prob > 0.0).then(|| {
                let keep = 1.0 - prob;
                let scales = dropout_scales(mask_seed_after(5), b * heads * l * l, keep);
                let scales = TensorData::new(scales, [b, heads, l, l]);
                Tensor::<4>::from_data(scales, &device())
            });
            let (y_ref, dp_ref) = backward(attention_reference(packed.clone(), heads, scales));
            let seed = rng.seed;
            if prob == 0.0 {
                // Untracked and without dropout, the kernel normalises the rows of the
                // output instead of the weights'.
                let y_untracked = multi_head_attention(packed.clone().inner(), heads, prob);
                assert_close(
                    seed,
                    &format!("{what} untracked y"),
                    y_untracked,
                    y_ref.clone(),
                );
            }
            assert_close(seed, &format!("{what} y"), y, y_ref.clone());
            assert_close(seed, &format!("{what} d packed"), dp, dp_ref.clone());
            assert_close(seed, &format!("{what} portable y"), y0, y_ref);
            assert_close(seed, &format!("{what} portable d packed"), dp0, dp_ref);
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
                    .all(|v| *v == 0.0 || (*v as f64 - 1.0 / keep).abs() < 1e-6),
                "p {prob}: kept elements scaled by 1 / keep (device seed 11)"
            );
            // The gradient of y = x m / keep is m / keep: here equal to y itself.
            assert_eq!(dx, y, "dropout gradient is its mask (device seed 11)");
            let draws = if whole_channels {
                16.0 * 64.0
            } else {
                16.0 * 64.0 * 1024.0
            };
            let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / (16 * 64 * 1024) as f64;
            let sigma = (keep * prob / draws).sqrt();
            assert!(
                (kept - keep).abs() < 5.0 * sigma,
                "p {prob}: kept {kept} (device seed 11)"
            );
            if whole_channels {
                for channel in y.chunks(1024) {
                    assert!(
                        channel.iter().all(|v| *v == channel[0]),
                        "one draw per channel (device seed 11)"
                    );
                }
            }
            // Seeding the device reproduces the mask.
            device().seed(11);
            let again = f(x.clone(), prob, whole_channels)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            assert_eq!(again, y, "the same mask again (device seed 11)");
        }
    }
}

/// A tensor's shape and values, on the host.
#[derive(Debug)]
struct Host {
    dims: Vec<usize>,
    values: Vec<f32>,
}

fn host<const D: usize>(t: Tensor<D>) -> Host {
    Host {
        dims: t.dims().to_vec(),
        values: t.into_data().try_to_vec::<f32>().expect("f32"),
    }
}

/// The gradients of `loss`, or none if no input reaches it (an empty result may be a
/// fresh tensor, outside the graph).
fn backward(loss: Tensor<1>) -> Option<Gradients> {
    loss.is_tracked().then(|| loss.backward())
}

/// The gradient of `t` on the host; none counts as zeros of `t`'s shape.
fn grad<const D: usize>(t: &Tensor<D>, grads: &Option<Gradients>) -> Host {
    grads
        .as_ref()
        .and_then(|grads| t.grad(grads))
        .map(host)
        .unwrap_or_else(|| host(t.zeros_like()))
}

/// The same shapes and, where there are values (a zero-size reduction such as a bias
/// gradient over no pixels), the same values within `1e-5 (1 + |b|)`.
fn assert_same(seed: u64, what: &str, kernel: Vec<Host>, portable: Vec<Host>) {
    assert_eq!(kernel.len(), portable.len(), "{what}");
    for (i, (a, b)) in kernel.iter().zip(&portable).enumerate() {
        assert_eq!(a.dims, b.dims, "{what} (seed {seed}): shape of result {i}");
        for (x, y) in a.values.iter().zip(&b.values) {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()) || (x.is_nan() && y.is_nan()),
                "{what} (seed {seed}): result {i}: kernel {x}, portable {y}"
            );
        }
    }
}

#[test]
fn every_op_on_empty_tensors() {
    // Dropout draws its mask seed from the device.
    let _rng = exclusive_rng();
    let mut rng = Rng::new(115);
    let seed = rng.seed;

    // No sample, no input channel (then y = bias and db = Σ dy), no output channel; 3x3
    // kernels (im2col) and 1x1 (the per-sample products).
    for ([n, ci, h, w], co, k) in [
        ([0, 3, 4, 4], 5, 3),
        ([2, 0, 4, 4], 5, 3),
        ([2, 3, 4, 4], 0, 3),
        ([0, 3, 4, 4], 5, 1),
        ([2, 0, 4, 4], 5, 1),
        ([2, 3, 4, 4], 0, 1),
    ] {
        let spec = ConvSpec::same([k, k], [1, 1]);
        let (x, weight) = (rng.random([n, ci, h, w]), rng.random([co, ci, k, k]));
        let bias = rng.random([co]);
        let probe = rng.random([n, co, h, w]).detach();
        let run = |conv: fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvSpec) -> Tensor<4>| {
            let y = conv(x.clone(), weight.clone(), Some(bias.clone()), spec);
            let grads = backward((y.clone() * probe.clone()).sum());
            let dx = grad(&x, &grads);
            vec![host(y), dx, grad(&weight, &grads), grad(&bias, &grads)]
        };
        let what = format!("conv2d {:?} -> {co}, {k}x{k}", [n, ci, h, w]);
        assert_same(seed, &what, run(conv2d), run(conv2d_portable));
    }

    for [b, hidden, h, w] in [[0, 3, 4, 4], [2, 0, 4, 4]] {
        let gates = rng.random([b, 4 * hidden, h, w]);
        let recurrent = rng.random([b, 4 * hidden, h, w]);
        let c = rng.random([b, hidden, h, w]);
        let probes = [0, 1].map(|_| rng.random([b, hidden, h, w]).detach());
        let run = |cell: fn(
            Tensor<4>,
            Option<Tensor<4>>,
            Option<Tensor<4>>,
        ) -> marscf_kernels::LstmCellState| {
            let s = cell(gates.clone(), Some(recurrent.clone()), Some(c.clone()));
            let loss =
                (s.h.clone() * probes[0].clone()).sum() + (s.c.clone() * probes[1].clone()).sum();
            let grads = backward(loss);
            let dg = grad(&gates, &grads);
            vec![
                host(s.h),
                host(s.c),
                dg,
                grad(&recurrent, &grads),
                grad(&c, &grads),
            ]
        };
        let what = format!("lstm_cell {:?}", [b, hidden, h, w]);
        assert_same(seed, &what, run(lstm_cell), run(lstm_cell_portable));
    }

    for (steps, [n, hidden, h, w]) in [(2, [0, 3, 4, 4]), (2, [4, 0, 4, 4])] {
        let spec = ConvSpec::same([3, 3], [1, 1]);
        let gates = rng.random([n, 4 * hidden, h, w]);
        let weight = rng.random([4 * hidden, hidden, 3, 3]);
        let probe = rng.random([n, hidden, h, w]).detach();
        let run = |layer: fn(Tensor<4>, Tensor<4>, usize, ConvSpec) -> Tensor<4>| {
            let out = layer(gates.clone(), weight.clone(), steps, spec);
            let grads = backward((out.clone() * probe.clone()).sum());
            vec![host(out), grad(&gates, &grads), grad(&weight, &grads)]
        };
        let what = format!("conv_lstm_layer T{steps} {:?}", [n, hidden, h, w]);
        assert_same(
            seed,
            &what,
            run(conv_lstm_layer),
            run(conv_lstm_layer_portable),
        );
    }

    for [b, c, h, w] in [[0, 3, 4, 4], [2, 0, 4, 4], [2, 3, 0, 4]] {
        let x = rng.random([b, c, h, w]);
        let probe = rng.random([b, 2 * c, h, w]).detach();
        let run = |f: fn(Tensor<4>) -> Tensor<4>| {
            let y = f(x.clone());
            let grads = backward((y.clone() * probe.clone()).sum());
            vec![host(y), grad(&x, &grads)]
        };
        let what = format!("concat_elu {:?}", [b, c, h, w]);
        assert_same(seed, &what, run(concat_elu), run(concat_elu_portable));
    }

    for (shape, dim) in [
        ([0, 6, 4, 4], 1),
        ([2, 0, 4, 4], 1),
        ([2, 6, 4, 0], 1),
        ([2, 6, 4, 0], 3),
    ] {
        let x = rng.random(shape);
        let mut half = shape;
        half[dim] /= 2;
        let probe = rng.random(half).detach();
        let run = |f: fn(Tensor<4>, usize) -> Tensor<4>| {
            let y = f(x.clone(), dim);
            let grads = backward((y.clone() * probe.clone()).sum());
            vec![host(y), grad(&x, &grads)]
        };
        let what = format!("gate {shape:?} dim {dim}");
        assert_same(seed, &what, run(gate), run(gate_portable));
    }

    for [b, l, c] in [[0, 5, 3], [2, 0, 3], [2, 5, 0]] {
        let x = rng.random([b, l, c]);
        let (gamma, beta) = (rng.random([c]), rng.random([c]));
        let probe = rng.random([b, l, c]).detach();
        let run = |f: fn(Tensor<3>, Tensor<1>, Tensor<1>, f64) -> Tensor<3>| {
            let y = f(x.clone(), gamma.clone(), beta.clone(), 1e-5);
            let grads = backward((y.clone() * probe.clone()).sum());
            let dx = grad(&x, &grads);
            vec![host(y), dx, grad(&gamma, &grads), grad(&beta, &grads)]
        };
        let what = format!("layer_norm {:?}", [b, l, c]);
        assert_same(seed, &what, run(layer_norm), run(layer_norm_portable));
    }

    for shape in [[0, 3, 5], [2, 0, 5], [2, 3, 0]] {
        let x = rng.random(shape);
        let probe = rng.random(shape).detach();
        let run = |f: fn(Tensor<3>) -> Tensor<3>| {
            let y = f(x.clone());
            let grads = backward((y.clone() * probe.clone()).sum());
            vec![host(y), grad(&x, &grads)]
        };
        let what = format!("softmax {shape:?}");
        assert_same(seed, &what, run(softmax), run(softmax_portable));
    }

    for shape in [[0, 3, 3, 3], [4, 0, 3, 3]] {
        let v = rng.random(shape);
        let g = rng.random([shape[0], 1, 1, 1]);
        let probe = rng.random(shape).detach();
        let run = |f: fn(Tensor<4>, Tensor<4>) -> Tensor<4>| {
            let w = f(v.clone(), g.clone());
            let grads = backward((w.clone() * probe.clone()).sum());
            vec![host(w), grad(&v, &grads), grad(&g, &grads)]
        };
        let what = format!("weight_norm {shape:?}");
        assert_same(seed, &what, run(weight_norm), run(weight_norm_portable));
    }

    for ([b, c, h, w], relu) in [
        ([0, 3, 4, 4], false),
        ([2, 3, 0, 4], true),
        ([2, 3, 4, 0], false),
        ([2, 0, 4, 4], false),
    ] {
        let x = rng.random([b, c, h, w]);
        let (bias, logs) = (rng.random([1, c, 1, 1]), rng.random([1, c, 1, 1]));
        let probe = rng.random([b, c, h, w]).detach();
        let run = |f: fn(Tensor<4>, Tensor<4>, Tensor<4>, bool) -> Tensor<4>| {
            let y = f(x.clone(), bias.clone(), logs.clone(), relu);
            let grads = backward((y.clone() * probe.clone()).sum());
            let dx = grad(&x, &grads);
            vec![host(y), dx, grad(&bias, &grads), grad(&logs, &grads)]
        };
        let what = format!("actnorm {:?} relu {relu}", [b, c, h, w]);
        assert_same(seed, &what, run(actnorm), run(actnorm_portable));
    }

    for [b, k, c, h, w] in [[0, 3, 2, 3, 3], [2, 3, 0, 3, 3], [2, 3, 2, 0, 3]] {
        let what = format!("mixture {:?}", [b, k, c, h, w]);
        let x = rng.random([b, c, h, w]);
        let (pi, mu, log_s) = (
            rng.random([b, k, c, h, w]),
            rng.random([b, k, c, h, w]),
            rng.random([b, k, c, h, w]),
        );
        let probes = [0, 1].map(|_| rng.random([b, c, h, w]).detach());
        let run = |f: fn(&LogMixture, Tensor<4>) -> MixtureLogDensities| {
            let mixture = LogMixture {
                log_weights: pi.clone(),
                mu: mu.clone(),
                log_s: log_s.clone(),
            };
            let d = f(&mixture, x.clone());
            let loss = (d.log_pdf.clone() * probes[0].clone()).sum()
                + (d.log_cdf.clone() * probes[1].clone()).sum();
            let grads = backward(loss);
            let dx = grad(&x, &grads);
            let params = [grad(&pi, &grads), grad(&mu, &grads), grad(&log_s, &grads)];
            let mut out = vec![host(d.log_pdf), host(d.log_cdf), dx];
            out.extend(params);
            out
        };
        let densities = (
            run(mixture_log_densities),
            run(mixture_log_densities_portable),
        );
        assert_same(seed, &what, densities.0, densities.1);

        let mixture = MixtureCdf {
            weights: pi.clone(),
            mu: mu.clone(),
            inv_scale: log_s.clone(),
        };
        let y = rng.random([b, c, h, w]);
        let bracket = || [y.clone() - 10.0, y.clone() + 10.0];
        let x = bisect_mixture(&mixture, y.clone(), bracket(), 20, 1e-6);
        let x0 = bisect_mixture_portable(&mixture, y.clone(), bracket(), 20, 1e-6);
        assert_same(
            seed,
            &format!("bisection {what}"),
            vec![host(x)],
            vec![host(x0)],
        );
    }

    for (shape, whole_channels) in [
        ([0, 3, 4, 4], false),
        ([0, 3, 4, 4], true),
        ([2, 3, 0, 4], true),
        ([2, 0, 4, 4], false),
    ] {
        let x = rng.random(shape);
        let run = |f: fn(Tensor<4>, f64, bool) -> Tensor<4>| {
            let y = f(x.clone(), 0.2, whole_channels);
            let grads = backward(y.clone().sum());
            vec![host(y), grad(&x, &grads)]
        };
        let what = format!("dropout {shape:?} whole channels {whole_channels}");
        assert_same(seed, &what, run(dropout), run(dropout_portable));
    }

    for ([b, l, width], heads) in [([0, 5, 12], 2), ([2, 0, 12], 2), ([2, 5, 0], 2)] {
        for prob in [0.0, 0.2] {
            let packed = rng.random([b, l, width]);
            let probe = rng.random([b, l, width / 3]).detach();
            let run = |f: fn(Tensor<3>, usize, f64) -> Tensor<3>| {
                let y = f(packed.clone(), heads, prob);
                let grads = backward((y.clone() * probe.clone()).sum());
                vec![host(y), grad(&packed, &grads)]
            };
            let what = format!("attention {:?} heads {heads} p {prob}", [b, l, width]);
            let results = (
                run(multi_head_attention),
                run(multi_head_attention_portable),
            );
            assert_same(seed, &what, results.0, results.1);
        }
    }
}
