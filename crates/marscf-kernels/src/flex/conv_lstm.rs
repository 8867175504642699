//! One ConvLSTM layer over a whole sequence from zero states, forward and backward, on
//! contiguous `f32` slices. The states of every step live in buffers of the whole
//! sequence, so no step allocates, copies or concatenates one.
//!
//! With `T` steps of a batch `B` (step-major), the input gates `G` `(T B, 4h, H, W)`, the
//! hidden-to-gates kernel `W` and `h_{-1} = c_{-1} = 0`:
//! `a_t = G_t + conv(h_{t-1}, W)`, `(h_t, c_t) = cell(a_t, c_{t-1})`.

use super::conv::{self, ConvGeometry};
use super::glue::prelude::*;
use super::lstm_cell::{self, CellInputs};
use crate::ConvSpec;

/// What the forward pass keeps for the backward: `a` `(T B, 4h, H, W)`, `h` and `c`
/// `(T B, h, H, W)`.
pub struct Trace {
    /// Gate pre-activations of every step.
    pub pre: Vec<f32>,
    /// Hidden states of every step (the layer's output).
    pub h: Vec<f32>,
    /// Cell states of every step.
    pub c: Vec<f32>,
}

/// The lengths of one step's state `B h H W` and gates `B 4h H W`, for the recurrent
/// convolution `g` of one step (`N = B`, `h -> 4h`).
fn lengths(g: &ConvGeometry) -> (usize, usize) {
    let plane = g.batch * g.size[0] * g.size[1];
    (g.c_in * plane, g.c_out * plane)
}

/// Runs the layer over `gates` (`steps` steps) with the recurrent kernel `w`.
pub fn forward(gates: &[f32], w: &[f32], g: &ConvGeometry, steps: usize) -> Trace {
    let (state, gate_len) = lengths(g);
    let mut pre = gates.to_vec();
    let mut h = vec![0.0f32; steps * state];
    let mut c = vec![0.0f32; steps * state];
    let zeros = vec![0.0f32; state];
    let recurrent = conv::Prepared::new(w, g, conv::Uses::Many);
    for t in 0..steps {
        let (h_done, h_rest) = h.split_at_mut(t * state);
        let (c_done, c_rest) = c.split_at_mut(t * state);
        let a = &mut pre[t * gate_len..][..gate_len];
        let c_prev = match t {
            0 => &zeros[..],
            _ => {
                recurrent.forward_into(&h_done[(t - 1) * state..][..state], None, a, true);
                &c_done[(t - 1) * state..]
            }
        };
        let inputs = CellInputs {
            pre: a,
            c: c_prev,
            batch: g.batch,
        };
        lstm_cell::forward_into(inputs, &mut h_rest[..state], &mut c_rest[..state]);
    }
    Trace { pre, h, c }
}

/// `(d G, d W)` given the forward's `[a, h, c]` (a [`Trace`]'s buffers) and `dh`
/// `(T B, h, H, W)`, the gradient of every step's `h_t`. Back through the steps, `dh_t`
/// gains the recurrent convolution's input gradient from step `t + 1` and `dc_t` the
/// cell's; `d W` is one product over all `(T - 1) B` pairs `(h_{t-1}, d a_t)`.
pub fn backward(
    [pre, h, c]: [&[f32]; 3],
    w: &[f32],
    g: &ConvGeometry,
    steps: usize,
    dh_out: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (state, gate_len) = lengths(g);
    let mut d_pre = vec![0.0f32; steps * gate_len];
    let zeros = vec![0.0f32; state];
    let mut dh = dh_out[(steps - 1) * state..].to_vec();
    let (mut dc_next, mut dc) = (vec![0.0f32; state], vec![0.0f32; state]);
    let recurrent_grad = conv::InputGrad::new(w, g, conv::Uses::Many);
    for t in (0..steps).rev() {
        let c_prev = match t {
            0 => &zeros[..],
            _ => &c[(t - 1) * state..][..state],
        };
        let inputs = CellInputs {
            pre: &pre[t * gate_len..][..gate_len],
            c: c_prev,
            batch: g.batch,
        };
        let da = &mut d_pre[t * gate_len..][..gate_len];
        lstm_cell::backward_into(inputs, [&dh, &dc_next], da, &mut dc);
        std::mem::swap(&mut dc, &mut dc_next);
        if t > 0 {
            dh = recurrent_grad.run(da);
            let upstream = &dh_out[(t - 1) * state..][..state];
            dh.iter_mut().zip(upstream).for_each(|(d, u)| *d += u);
        }
    }
    let dw = match steps {
        1 => vec![0.0f32; w.len()],
        _ => {
            let pairs = ConvGeometry {
                batch: (steps - 1) * g.batch,
                ..*g
            };
            conv::weight_grad(&h[..(steps - 1) * state], &d_pre[gate_len..], &pairs).0
        }
    };
    (d_pre, dw)
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

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

/// The recurrent convolution of one step of a layer whose input gates are `gates`
/// `(T B, 4h, H, W)`, with `weight` `(4h, h, k, k)`.
fn recurrent_geometry(
    gates: &FlexTensor,
    weight: &FlexTensor,
    steps: usize,
    spec: ConvSpec,
) -> ConvGeometry {
    let ([n, _, h, w], weight) = (dims4(gates), dims4(weight));
    ConvGeometry::of([n / steps, weight[1], h, w], weight, spec)
}

/// [`FlexKernels::marscf_conv_lstm_layer`] on Flex.
pub fn on_flex(gates: FlexTensor, weight: FlexTensor, steps: usize, spec: ConvSpec) -> FlexTensor {
    traced(gates, weight, steps, spec).h
}

/// The layer's output `h` `(T B, h, H, W)` in the state its backward keeps.
fn traced(
    gates: FlexTensor,
    weight: FlexTensor,
    steps: usize,
    spec: ConvSpec,
) -> ConvLstmLayerState {
    let shape = dims4(&gates);
    let geometry = recurrent_geometry(&gates, &weight, steps, spec);
    let trace = forward(&values(&gates), &values(&weight), &geometry, steps);
    let state_shape = [shape[0], geometry.c_in, shape[2], shape[3]];
    ConvLstmLayerState {
        pre: tensor(trace.pre, shape),
        h: tensor(trace.h, state_shape),
        c: tensor(trace.c, state_shape),
        weight,
        geometry,
        steps,
    }
}

/// Backward of [`on_flex`]: parents `[gates, weight]`, state a [`ConvLstmLayerState`].
#[derive(Debug)]
pub struct ConvLstmLayerBackward;

/// The state [`ConvLstmLayerBackward`] keeps: `a`, `h`, `c` of every step, the weight, the
/// recurrent geometry and the number of steps.
#[derive(Clone, Debug)]
pub struct ConvLstmLayerState {
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
        let (s, dh, parents) = unpack(ops, grads);
        let (pre, h, c) = (values(&s.pre), values(&s.h), values(&s.c));
        let (d_gates, d_weight) = backward(
            [&pre, &h, &c],
            &values(&s.weight),
            &s.geometry,
            s.steps,
            &values(&dh),
        );
        let gradients = [
            tensor(d_gates, s.pre.shape()),
            tensor(d_weight, s.weight.shape()),
        ];
        register(grads, parents, gradients);
    }
}

/// [`FlexKernels::marscf_conv_lstm_layer`] under autodiff: tracked, the forward keeps
/// every step's states.
pub fn on_autodiff<C: CheckpointStrategy>(
    gates: AutodiffTensor<C>,
    weight: AutodiffTensor<C>,
    steps: usize,
    spec: ConvSpec,
) -> AutodiffTensor<C> {
    record::<C, _, _>(
        ConvLstmLayerBackward,
        [gates, weight],
        |[gates, weight], tracked| {
            let state = traced(gates, weight, steps, spec);
            (state.h.clone(), tracked.then_some(state))
        },
    )
}
