//! Our kernels on Burn's Flex CPU backend, as a backend extension: the forward on `Flex`,
//! and on `Autodiff<Flex>` the same forward with a hand-written backward.

mod actnorm;
mod attention;
mod bisect;
mod conv;
mod conv_lstm;
mod elu;
mod gate;
mod gemm;
mod layer_norm;
mod lstm;
mod mixture;
mod polynomial;
mod reduce;
mod rows;
mod simd;
mod tuning;
mod winograd;

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::OnceLock;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, DispatchDevice, Flex, TensorMetadata, backend_extension,
};
use burn::tensor::{DType, Device, Distribution, Shape, Tensor, TensorData};

use crate::ConvSpec;
use attention::AttentionShape;
use conv::ConvGeometry;
use lstm::CellInputs;
use rows::Mask;

/// The operations we implement ourselves on Flex.
#[backend_extension(Flex, Autodiff)]
pub trait FlexKernels: Backend {
    /// `conv(x, weight) + bias`, stride 1: `(N, Ci, H, W), (Co, Ci, kh, kw), (Co) -> (N, Co, Ho, Wo)`.
    fn marscf_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// ActNorm `(x + bias) e^logs` (then a ReLU): `(N, C, H, W), (1, C, 1, 1) x 2 -> (N, C, H, W)`.
    fn marscf_actnorm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        logs: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// Layer normalisation over the last dimension `C` ([`crate::layer_norm`]): `x` any
    /// shape, `gamma` and `beta` `(C)`.
    fn marscf_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// The ConvLSTM cell from its pre-activations: `(B, 4h, H, W), (B, h, H, W) ->
    /// (2B, h, H, W)` (`[h'; c']`).
    fn marscf_lstm_cell(pre: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;

    /// A ConvLSTM layer over `steps` steps ([`crate::conv_lstm_layer`]): the input gates
    /// `(T B, 4h, H, W)` and the recurrent kernel `(4h, h, k, k)` -> `(T B, h, H, W)`.
    fn marscf_conv_lstm_layer(
        gates: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        steps: usize,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// `[elu(x); elu(-x)]` per sample: `(B, C, H, W) -> (B, 2C, H, W)`.
    fn marscf_concat_elu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `a σ(b)` for `x` as `outer` blocks `[a; b]`, any shape (halved along one dimension).
    fn marscf_gate(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self>;

    /// [`crate::mixture_log_densities`]: the mixture `(B, k, C, H, W)` each and `x`
    /// `(B, C, H, W)` -> `[ln pdf; ln cdf]` `(2B, C, H, W)`.
    fn marscf_mixture_log_densities(
        log_weights: FloatTensor<Self>,
        mu: FloatTensor<Self>,
        log_s: FloatTensor<Self>,
        x: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The bisection of [`crate::bisect_mixture`]: the mixture `(B, k, C, H, W)` each,
    /// `y`, `lower`, `upper` `(B, C, H, W)`; `(max_iters, tolerance)`.
    fn marscf_bisect(
        weights: FloatTensor<Self>,
        mu: FloatTensor<Self>,
        inv_scale: FloatTensor<Self>,
        y: FloatTensor<Self>,
        lower: FloatTensor<Self>,
        upper: FloatTensor<Self>,
        limits: (usize, f64),
    ) -> FloatTensor<Self>;

    /// Softmax over the last dimension, any shape.
    fn marscf_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x ⊙ m / keep` for the dropout mask `m` drawn as `mask` says, any shape.
    fn marscf_dropout(x: FloatTensor<Self>, mask: Mask) -> FloatTensor<Self>;

    /// [`crate::multi_head_attention`] of `packed` `(B, L, 3c)`, its weights dropped out by
    /// `mask` (per element) if given: `(B, L, c)`.
    fn marscf_attention(
        packed: FloatTensor<Self>,
        heads: usize,
        mask: Option<Mask>,
    ) -> FloatTensor<Self>;
}

/// Whether our Flex kernels take tensors on `device` of type `dtype`: on Flex, float32,
/// unless [`crate::PORTABLE_ENV`] is set to `1` (checked once).
pub fn runs(device: &Device, dtype: DType) -> bool {
    static PORTABLE: OnceLock<bool> = OnceLock::new();
    if *PORTABLE.get_or_init(|| std::env::var(crate::PORTABLE_ENV).is_ok_and(|v| v == "1")) {
        return false;
    }
    let flex = match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    };
    flex && dtype == DType::F32
}

/// The geometry of `x` `(N, Ci, H, W)` convolved with `weight` `(Co, Ci, kh, kw)`.
fn geometry(x: [usize; 4], weight: [usize; 4], spec: ConvSpec) -> ConvGeometry {
    ConvGeometry {
        batch: x[0],
        c_in: x[1],
        size: [x[2], x[3]],
        c_out: weight[0],
        kernel: [weight[2], weight[3]],
        padding: spec.padding,
        dilation: spec.dilation,
    }
}

/// Whether [`conv2d`] computes this convolution (else the caller takes the portable path).
pub fn conv_supported(x: [usize; 4], weight: [usize; 4], spec: ConvSpec) -> bool {
    let g = geometry(x, weight, spec);
    x[1] == weight[1] && spec.dilation.iter().all(|&d| d > 0) && g.out_size().is_some()
}

/// The Flex kernel of [`crate::conv2d`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    spec: ConvSpec,
) -> Tensor<4> {
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &weight.device()));
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        spec,
    ))
}

/// The Flex kernel of [`crate::lstm_cell`] from the pre-activations, `[h'; c']`
/// `(2B, h, H, W)`.
pub fn lstm_cell(pre: Tensor<4>, c: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_lstm_cell(
        pre.into_dispatch(),
        c.into_dispatch(),
    ))
}

/// The Flex kernel of [`crate::conv_lstm_layer`].
pub fn conv_lstm_layer(
    gates: Tensor<4>,
    weight: Tensor<4>,
    steps: usize,
    spec: ConvSpec,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_conv_lstm_layer(
        gates.into_dispatch(),
        weight.into_dispatch(),
        steps,
        spec,
    ))
}

/// The recurrent convolution of one step of a ConvLSTM layer whose input gates are
/// `gates` `(T B, 4h, H, W)`, with `weight` `(4h, h, k, k)`.
fn recurrent_geometry(
    gates: [usize; 4],
    weight: [usize; 4],
    steps: usize,
    spec: ConvSpec,
) -> ConvGeometry {
    geometry(
        [gates[0] / steps, weight[1], gates[2], gates[3]],
        weight,
        spec,
    )
}

/// The Flex kernel of [`crate::actnorm`].
pub fn actnorm(x: Tensor<4>, bias: Tensor<4>, logs: Tensor<4>, relu: bool) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_actnorm(
        x.into_dispatch(),
        bias.into_dispatch(),
        logs.into_dispatch(),
        relu,
    ))
}

/// The Flex kernel of [`crate::layer_norm`].
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// The Flex kernel of [`crate::concat_elu`].
pub fn concat_elu(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_concat_elu(
        x.into_dispatch(),
    ))
}

/// The Flex kernel of [`crate::gate`].
pub fn gate<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_gate(
        x.into_dispatch(),
        dim,
    ))
}

/// Blocks `[a; b]` of `shape` gated along `dim`: the product of the sizes before `dim`.
fn gate_blocks(shape: &Shape, dim: usize) -> usize {
    shape.iter().take(dim).product()
}

/// The Flex kernel of [`crate::mixture_log_densities`].
pub fn mixture_log_densities(
    mixture: &crate::LogMixture,
    x: Tensor<4>,
) -> crate::MixtureLogDensities {
    let [b, c, h, w] = x.dims();
    let both = Tensor::<4>::from_dispatch(<Dispatch as FlexKernels>::marscf_mixture_log_densities(
        mixture.log_weights.clone().into_dispatch(),
        mixture.mu.clone().into_dispatch(),
        mixture.log_s.clone().into_dispatch(),
        x.into_dispatch(),
    ));
    crate::MixtureLogDensities {
        log_pdf: both.clone().slice([0..b, 0..c, 0..h, 0..w]),
        log_cdf: both.slice([b..2 * b, 0..c, 0..h, 0..w]),
    }
}

/// The slices of a mixture and its points as the kernel reads them.
fn mixture_view<'a>(
    [log_weights, mu, log_s, x]: [&'a [f32]; 4],
    shape: [usize; 5],
) -> mixture::Mixture<'a> {
    let [_, k, c, h, w] = shape;
    mixture::Mixture {
        log_weights,
        mu,
        log_s,
        x,
        components: k,
        positions: c * h * w,
    }
}

/// The Flex kernel of [`crate::bisect_mixture`].
pub fn bisect_mixture(
    mixture: &crate::MixtureCdf,
    y: Tensor<4>,
    [lower, upper]: [Tensor<4>; 2],
    max_iters: usize,
    tolerance: f64,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_bisect(
        mixture.weights.clone().into_dispatch(),
        mixture.mu.clone().into_dispatch(),
        mixture.inv_scale.clone().into_dispatch(),
        y.into_dispatch(),
        lower.into_dispatch(),
        upper.into_dispatch(),
        (max_iters, tolerance),
    ))
}

/// The Flex kernel of [`crate::softmax`].
pub fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_softmax(x.into_dispatch()))
}

/// A dropout mask's seed: two draws of `device`'s generator (48 random bits).
fn mask_seed(device: &Device) -> u64 {
    let draws = Tensor::<1>::random([2], Distribution::Default, device)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("two float32 draws");
    (u64::from(draws[0].to_bits()) << 32) | u64::from(draws[1].to_bits())
}

/// The Flex kernel of [`crate::dropout`], its mask seeded by [`mask_seed`].
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64, whole_channels: bool) -> Tensor<D> {
    let run = if whole_channels {
        x.dims().iter().skip(2).product()
    } else {
        1
    };
    let mask = Mask {
        seed: mask_seed(&x.device()),
        keep: 1.0 - prob,
        run,
    };
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_dropout(
        x.into_dispatch(),
        mask,
    ))
}

/// The Flex kernel of [`crate::multi_head_attention`]; a dropout mask is seeded as
/// [`dropout`]'s is, so both drop the same weights.
pub fn multi_head_attention(packed: Tensor<3>, heads: usize, dropout: f64) -> Tensor<3> {
    let mask = (dropout > 0.0).then(|| Mask {
        seed: mask_seed(&packed.device()),
        keep: 1.0 - dropout,
        run: 1,
    });
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_attention(
        packed.into_dispatch(),
        heads,
        mask,
    ))
}

/// The sizes of the attention of `packed` `(B, L, 3c)` over `heads` heads.
fn attention_shape(packed: &FlexTensor, heads: usize) -> AttentionShape {
    let shape = packed.shape();
    AttentionShape {
        batch: shape[0],
        len: shape[1],
        heads,
        width: shape[2] / (3 * heads),
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

fn dims5(t: &FlexTensor) -> [usize; 5] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2], shape[3], shape[4]]
}

/// `t` with a contiguous layout (copied only if it is a strided view).
fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "marscf kernels take float32 tensors");
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

/// The length of the last dimension, the rows [`crate::softmax`] normalises.
fn last_dim(shape: &Shape) -> usize {
    shape[shape.num_dims() - 1]
}

/// A contiguous float32 tensor of `shape` holding `data`.
fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

impl FlexKernels for Flex {
    fn marscf_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        spec: ConvSpec,
    ) -> FlexTensor {
        let g = geometry(dims4(&x), dims4(&weight), spec);
        let [ho, wo] = g
            .out_size()
            .expect("a convolution with a positive output size");
        let y = conv::forward(&values(&x), &values(&weight), Some(&values(&bias)), &g);
        tensor(y, [g.batch, g.c_out, ho, wo])
    }

    fn marscf_actnorm(x: FlexTensor, bias: FlexTensor, logs: FlexTensor, relu: bool) -> FlexTensor {
        let shape = dims4(&x);
        let y = actnorm::forward(
            &values(&x),
            &values(&bias),
            &values(&logs),
            shape[2] * shape[3],
            relu,
        );
        tensor(y, shape)
    }

    fn marscf_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let y = layer_norm::forward(&values(&x), &values(&gamma), &values(&beta), epsilon as f32);
        tensor(y, x.shape())
    }

    fn marscf_lstm_cell(pre: FlexTensor, c: FlexTensor) -> FlexTensor {
        let [b, h, height, width] = dims4(&c);
        let out = lstm::forward(CellInputs {
            pre: &values(&pre),
            c: &values(&c),
            batch: b,
        });
        tensor(out, [2 * b, h, height, width])
    }

    fn marscf_conv_lstm_layer(
        gates: FlexTensor,
        weight: FlexTensor,
        steps: usize,
        spec: ConvSpec,
    ) -> FlexTensor {
        let shape = dims4(&gates);
        let g = recurrent_geometry(shape, dims4(&weight), steps, spec);
        let trace = conv_lstm::forward(&values(&gates), &values(&weight), &g, steps);
        tensor(trace.h, [shape[0], g.c_in, shape[2], shape[3]])
    }

    fn marscf_concat_elu(x: FlexTensor) -> FlexTensor {
        let [b, c, h, w] = dims4(&x);
        tensor(elu::forward(&values(&x), b), [b, 2 * c, h, w])
    }

    fn marscf_gate(x: FlexTensor, dim: usize) -> FlexTensor {
        let mut shape = x.shape();
        let y = gate::forward(&values(&x), gate_blocks(&shape, dim));
        shape[dim] /= 2;
        tensor(y, shape)
    }

    fn marscf_mixture_log_densities(
        log_weights: FlexTensor,
        mu: FlexTensor,
        log_s: FlexTensor,
        x: FlexTensor,
    ) -> FlexTensor {
        let [b, c, h, w] = dims4(&x);
        let shape = dims5(&mu);
        let (lw, mu, ls, x) = (
            values(&log_weights),
            values(&mu),
            values(&log_s),
            values(&x),
        );
        let out = mixture::forward(mixture_view([&lw, &mu, &ls, &x], shape));
        tensor(out, [2 * b, c, h, w])
    }

    fn marscf_bisect(
        weights: FlexTensor,
        mu: FlexTensor,
        inv_scale: FlexTensor,
        y: FlexTensor,
        lower: FlexTensor,
        upper: FlexTensor,
        (max_iters, tolerance): (usize, f64),
    ) -> FlexTensor {
        let shape = dims4(&y);
        let (weights, mu, inv_scale, y) = (
            values(&weights),
            values(&mu),
            values(&inv_scale),
            values(&y),
        );
        let mixture = bisect::Mixture {
            weights: &weights,
            mu: &mu,
            inv_scale: &inv_scale,
            y: &y,
            batch: shape[0],
        };
        let mut state = bisect::Bracket {
            x: vec![0.0; y.len()],
            lower: values(&lower).into_owned(),
            upper: values(&upper).into_owned(),
        };
        let mut done = 0;
        while done < max_iters {
            let iterations = bisect::CHECK_EVERY.min(max_iters - done);
            let moved = bisect::steps(mixture, &mut state, iterations);
            done += iterations;
            if iterations == bisect::CHECK_EVERY && moved as f64 <= tolerance {
                break;
            }
        }
        tensor(state.x, shape)
    }

    fn marscf_softmax(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        tensor(rows::softmax_forward(&values(&x), last_dim(&shape)), shape)
    }

    fn marscf_dropout(x: FlexTensor, mask: Mask) -> FlexTensor {
        let y = rows::dropout(&values(&x), mask);
        tensor(y, x.shape())
    }

    fn marscf_attention(packed: FlexTensor, heads: usize, mask: Option<Mask>) -> FlexTensor {
        let s = attention_shape(&packed, heads);
        let out = attention::forward(&values(&packed), s, mask, None);
        tensor(out, [s.batch, s.len, heads * s.width])
    }
}

/// Backward of [`FlexKernels::marscf_conv2d`]: parents `[x, weight, bias]`, state the
/// contiguous `x` and `weight`.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    type State = (FlexTensor, FlexTensor, ConvSpec);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, w, spec) = ops.state;
        let g = geometry(dims4(&x), dims4(&w), spec);
        if let Some(node) = node_x {
            let dx = conv::input_grad(&values(&dy), &values(&w), &g);
            grads.register::<Flex>(node.id, tensor(dx, dims4(&x)));
        }
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = conv::weight_grad(&values(&x), &values(&dy), &g);
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, tensor(dw, dims4(&w)));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, tensor(db, [g.c_out]));
            }
        }
    }
}

/// Backward of [`FlexKernels::marscf_actnorm`]: parents `[x, bias, logs]`, state the
/// output, `logs` and whether a ReLU followed.
#[derive(Debug)]
struct ActNormBackward;

impl Backward<Flex, 3> for ActNormBackward {
    type State = (FlexTensor, FlexTensor, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (y, logs, relu) = ops.state;
        let shape = dims4(&y);
        let g = actnorm::backward(
            &values(&y),
            &values(&dy),
            &values(&logs),
            shape[2] * shape[3],
            relu,
        );
        let channel = [1, shape[1], 1, 1];
        let gradients = [
            tensor(g.x, shape),
            tensor(g.bias, channel),
            tensor(g.logs, channel),
        ];
        for (node, gradient) in ops.parents.into_iter().zip(gradients) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

/// Backward of [`FlexKernels::marscf_layer_norm`]: parents `[x, gamma, beta]`, state the
/// contiguous `x`, `gamma` and `epsilon`.
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = (FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, epsilon) = ops.state;
        let g = layer_norm::backward(&values(&x), &values(&gamma), &values(&dy), epsilon as f32);
        let c = g.gamma.len();
        let gradients = [
            tensor(g.x, x.shape()),
            tensor(g.gamma, [c]),
            tensor(g.beta, [c]),
        ];
        for (node, gradient) in ops.parents.into_iter().zip(gradients) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

/// Backward of [`FlexKernels::marscf_lstm_cell`]: parents `[pre, c]`, state the two
/// inputs (the activations are recomputed).
#[derive(Debug)]
struct LstmCellBackward;

impl Backward<Flex, 2> for LstmCellBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_pre, node_c] = ops.parents;
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        let (pre, c) = ops.state;
        let (d_pre, d_c) = lstm::backward(
            CellInputs {
                pre: &values(&pre),
                c: &values(&c),
                batch: dims4(&c)[0],
            },
            &values(&d_out),
        );
        if let Some(node) = node_pre {
            grads.register::<Flex>(node.id, tensor(d_pre, dims4(&pre)));
        }
        if let Some(node) = node_c {
            grads.register::<Flex>(node.id, tensor(d_c, dims4(&c)));
        }
    }
}

/// Backward of [`FlexKernels::marscf_conv_lstm_layer`]: parents `[gates, weight]`, state
/// the forward's trace (the layer's output among it), the weight and the geometry.
#[derive(Debug)]
struct ConvLstmLayerBackward;

/// The state [`ConvLstmLayerBackward`] keeps: `a`, `h`, `c` of every step, the weight, the
/// recurrent geometry and the number of steps.
#[derive(Clone, Debug)]
struct ConvLstmLayerState {
    pre: FlexTensor,
    h: FlexTensor,
    c: FlexTensor,
    weight: FlexTensor,
    geometry: ConvGeometry,
    steps: usize,
}

impl Backward<Flex, 2> for ConvLstmLayerBackward {
    type State = ConvLstmLayerState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gates, node_weight] = ops.parents;
        let dh = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (pre, h, c) = (values(&s.pre), values(&s.h), values(&s.c));
        let (d_gates, d_weight) = conv_lstm::backward(
            [&pre, &h, &c],
            &values(&s.weight),
            &s.geometry,
            s.steps,
            &values(&dh),
        );
        if let Some(node) = node_gates {
            grads.register::<Flex>(node.id, tensor(d_gates, s.pre.shape()));
        }
        if let Some(node) = node_weight {
            grads.register::<Flex>(node.id, tensor(d_weight, s.weight.shape()));
        }
    }
}

/// Backward of [`FlexKernels::marscf_mixture_log_densities`]: parents `[ln π, μ, ln s,
/// x]`, state the four inputs and the output.
#[derive(Debug)]
struct MixtureBackward;

impl Backward<Flex, 4> for MixtureBackward {
    type State = [FlexTensor; 5];

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        let [log_weights, mu, log_s, x, out] = ops.state;
        let (shape, x_shape) = (dims5(&mu), dims4(&x));
        let (lw, mu, ls, x) = (
            values(&log_weights),
            values(&mu),
            values(&log_s),
            values(&x),
        );
        let view = mixture_view([&lw, &mu, &ls, &x], shape);
        let g = mixture::backward(view, &values(&out), &values(&d_out));
        let gradients = [
            tensor(g.log_weights, shape),
            tensor(g.mu, shape),
            tensor(g.log_s, shape),
            tensor(g.x, x_shape),
        ];
        for (node, gradient) in ops.parents.into_iter().zip(gradients) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

/// Backward of [`FlexKernels::marscf_attention`]: parent `packed`, state the contiguous
/// `packed`, the softmax weights, the sizes and the dropout mask.
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 1> for AttentionBackward {
    type State = (FlexTensor, FlexTensor, AttentionShape, Option<Mask>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        let (packed, weights, s, mask) = ops.state;
        if let Some(node) = node {
            let d_packed = attention::backward(
                &values(&packed),
                &values(&weights),
                &values(&d_out),
                s,
                mask,
            );
            grads.register::<Flex>(node.id, tensor(d_packed, packed.shape()));
        }
    }
}

/// The backward of a one-input op: `gradient(state, dy)` is registered to the input.
#[derive(Debug)]
struct UnaryBackward<S> {
    gradient: fn(S, &FlexTensor) -> FlexTensor,
}

impl<S: Clone + Send + Debug + 'static> Backward<Flex, 1> for UnaryBackward<S> {
    type State = S;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node {
            grads.register::<Flex>(node.id, (self.gradient)(ops.state, &dy));
        }
    }
}

/// A one-input op under autodiff: `forward` maps the contiguous input to (the state its
/// backward keeps, the output), and `gradient` is its backward.
fn unary<C: CheckpointStrategy, S: Clone + Send + Debug + 'static>(
    x: FloatTensor<Autodiff<Flex, C>>,
    forward: impl FnOnce(FlexTensor) -> (S, FlexTensor),
    gradient: fn(S, &FlexTensor) -> FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>> {
    let (x, node) = x.into_parts();
    let prep = UnaryBackward { gradient }
        .prepare::<C>([node])
        .compute_bound()
        .stateful();
    let (state, y) = forward(contiguous(x));
    match prep {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

impl<C: CheckpointStrategy> FlexKernels for Autodiff<Flex, C> {
    fn marscf_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let ((x, x_node), (weight, w_node), (bias, b_node)) =
            (x.into_parts(), weight.into_parts(), bias.into_parts());
        let prep = Conv2dBackward
            .prepare::<C>([x_node, w_node, b_node])
            .compute_bound()
            .stateful();
        let (x, weight) = (contiguous(x), contiguous(weight));
        let y = Flex::marscf_conv2d(x.clone(), weight.clone(), bias, spec);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((x, weight, spec), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn marscf_actnorm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        logs: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        let ((x, x_node), (bias, b_node), (logs, l_node)) =
            (x.into_parts(), bias.into_parts(), logs.into_parts());
        let prep = ActNormBackward
            .prepare::<C>([x_node, b_node, l_node])
            .compute_bound()
            .stateful();
        let logs = contiguous(logs);
        let y = Flex::marscf_actnorm(contiguous(x), bias, logs.clone(), relu);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), logs, relu), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn marscf_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let ((x, x_node), (gamma, g_node), (beta, b_node)) =
            (x.into_parts(), gamma.into_parts(), beta.into_parts());
        let prep = LayerNormBackward
            .prepare::<C>([x_node, g_node, b_node])
            .compute_bound()
            .stateful();
        let (x, gamma) = (contiguous(x), contiguous(gamma));
        let y = Flex::marscf_layer_norm(x.clone(), gamma.clone(), beta, epsilon);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((x, gamma, epsilon), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn marscf_lstm_cell(pre: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self> {
        let ((pre, pre_node), (c, c_node)) = (pre.into_parts(), c.into_parts());
        let prep = LstmCellBackward
            .prepare::<C>([pre_node, c_node])
            .compute_bound()
            .stateful();
        let (pre, c) = (contiguous(pre), contiguous(c));
        let out = Flex::marscf_lstm_cell(pre.clone(), c.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish((pre, c), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn marscf_conv_lstm_layer(
        gates: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        steps: usize,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let ((gates, g_node), (weight, w_node)) = (gates.into_parts(), weight.into_parts());
        let prep = ConvLstmLayerBackward
            .prepare::<C>([g_node, w_node])
            .compute_bound()
            .stateful();
        let (gates, weight) = (contiguous(gates), contiguous(weight));
        let shape = dims4(&gates);
        let geometry = recurrent_geometry(shape, dims4(&weight), steps, spec);
        let trace = conv_lstm::forward(&values(&gates), &values(&weight), &geometry, steps);
        let state_shape = [shape[0], geometry.c_in, shape[2], shape[3]];
        let h = tensor(trace.h, state_shape);
        match prep {
            OpsKind::Tracked(prep) => {
                let state = ConvLstmLayerState {
                    pre: tensor(trace.pre, shape),
                    h: h.clone(),
                    c: tensor(trace.c, state_shape),
                    weight,
                    geometry,
                    steps,
                };
                prep.finish(state, h)
            }
            OpsKind::UnTracked(prep) => prep.finish(h),
        }
    }

    fn marscf_concat_elu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary::<C, _>(
            x,
            |x| (x.clone(), Flex::marscf_concat_elu(x)),
            |x, dy| {
                tensor(
                    elu::backward(&values(&x), &values(dy), dims4(&x)[0]),
                    dims4(&x),
                )
            },
        )
    }

    fn marscf_gate(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        unary::<C, _>(
            x,
            |x| ((x.clone(), dim), Flex::marscf_gate(x, dim)),
            |(x, dim), dy| {
                let shape = x.shape();
                let dx = gate::backward(&values(&x), &values(dy), gate_blocks(&shape, dim));
                tensor(dx, shape)
            },
        )
    }

    fn marscf_mixture_log_densities(
        log_weights: FloatTensor<Self>,
        mu: FloatTensor<Self>,
        log_s: FloatTensor<Self>,
        x: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [(lw, lw_node), (mu, mu_node), (ls, ls_node), (x, x_node)] =
            [log_weights, mu, log_s, x].map(|t| t.into_parts());
        let prep = MixtureBackward
            .prepare::<C>([lw_node, mu_node, ls_node, x_node])
            .compute_bound()
            .stateful();
        let [lw, mu, ls, x] = [lw, mu, ls, x].map(contiguous);
        let out = Flex::marscf_mixture_log_densities(lw.clone(), mu.clone(), ls.clone(), x.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish([lw, mu, ls, x, out.clone()], out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn marscf_bisect(
        weights: FloatTensor<Self>,
        mu: FloatTensor<Self>,
        inv_scale: FloatTensor<Self>,
        y: FloatTensor<Self>,
        lower: FloatTensor<Self>,
        upper: FloatTensor<Self>,
        limits: (usize, f64),
    ) -> FloatTensor<Self> {
        // The result is a constant: a new leaf, tracking nothing.
        <FloatTensor<Self>>::new(Flex::marscf_bisect(
            weights.into_primitive(),
            mu.into_primitive(),
            inv_scale.into_primitive(),
            y.into_primitive(),
            lower.into_primitive(),
            upper.into_primitive(),
            limits,
        ))
    }

    fn marscf_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary::<C, _>(
            x,
            |x| {
                let p = Flex::marscf_softmax(x);
                (p.clone(), p)
            },
            |p, dp| {
                let shape = p.shape();
                let dx = rows::softmax_backward(&values(&p), &values(dp), last_dim(&shape));
                tensor(dx, shape)
            },
        )
    }

    fn marscf_dropout(x: FloatTensor<Self>, mask: Mask) -> FloatTensor<Self> {
        unary::<C, _>(
            x,
            |x| (mask, Flex::marscf_dropout(x, mask)),
            |mask, dy| Flex::marscf_dropout(dy.clone(), mask),
        )
    }

    fn marscf_attention(
        packed: FloatTensor<Self>,
        heads: usize,
        mask: Option<Mask>,
    ) -> FloatTensor<Self> {
        let (packed, node) = packed.into_parts();
        let prep = AttentionBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful();
        let packed = contiguous(packed);
        match prep {
            OpsKind::Tracked(prep) => {
                let s = attention_shape(&packed, heads);
                let mut weights = vec![0.0f32; s.batch * heads * s.len * s.len];
                let out = attention::forward(&values(&packed), s, mask, Some(&mut weights));
                let out = tensor(out, [s.batch, s.len, heads * s.width]);
                let weights = tensor(weights, [s.batch, heads, s.len, s.len]);
                prep.finish((packed, weights, s, mask), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::marscf_attention(packed, heads, mask)),
        }
    }
}
