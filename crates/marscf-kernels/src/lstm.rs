//! The ConvLSTM cell's element-wise part.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

use crate::{ConvSpec, conv2d_portable};

/// The new state of a ConvLSTM cell: hidden `h'` and cell `c'`, each `(B, hidden, H, W)`.
#[derive(Debug, Clone)]
pub struct LstmCellState {
    /// Hidden state `h'`.
    pub h: Tensor<4>,
    /// Cell state `c'`.
    pub c: Tensor<4>,
}

/// One ConvLSTM step from its gate pre-activations, PyTorch's gate order `[i, f, g, o]`:
/// `a = gates + recurrent` `(B, 4 hidden, H, W)` (`recurrent` `None` = zeros), `c`
/// `(B, hidden, H, W)` (`None` = zeros), and
/// `c' = σ(a_f) c + σ(a_i) tanh(a_g)`, `h' = σ(a_o) tanh(c')`.
///
/// On Flex (float32) one fused pass computes both states (and one pass their gradients).
/// Elsewhere, [`lstm_cell_portable`].
///
/// # Panics
/// If the gates' channels are not a multiple of 4.
pub fn lstm_cell(
    gates: Tensor<4>,
    recurrent: Option<Tensor<4>>,
    c: Option<Tensor<4>>,
) -> LstmCellState {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&gates.device(), gates.dtype()) {
        let hidden = check_gates(&gates);
        let [b, _, height, width] = gates.dims();
        let pre = match recurrent {
            Some(r) => gates + r,
            None => gates,
        };
        let c = c.unwrap_or_else(|| Tensor::zeros([b, hidden, height, width], &pre.device()));
        let out = crate::flex::lstm_cell(pre, c);
        return LstmCellState {
            h: out.clone().slice_dim(0, 0..b),
            c: out.slice_dim(0, b..2 * b),
        };
    }
    lstm_cell_portable(gates, recurrent, c)
}

/// The hidden width of `gates` `(B, 4 hidden, H, W)`; panics unless its channels are 4 gates.
fn check_gates(gates: &Tensor<4>) -> usize {
    let channels = gates.dims()[1];
    assert!(
        channels.is_multiple_of(4),
        "lstm_cell: {channels} gate channels are not 4 gates"
    );
    channels / 4
}

/// The portable default of [`lstm_cell`], in standard tensor operations
/// (`tanh(x) = 2 σ(2x) - 1`: Flex's `sigmoid` is cheaper than its `tanh`, see
/// docs/performance.md).
///
/// # Panics
/// As [`lstm_cell`].
pub fn lstm_cell_portable(
    gates: Tensor<4>,
    recurrent: Option<Tensor<4>>,
    c: Option<Tensor<4>>,
) -> LstmCellState {
    let gates = match recurrent {
        Some(r) => gates + r,
        None => gates,
    };
    let hidden = check_gates(&gates);
    let [i, f, g, o] =
        [0, 1, 2, 3].map(|k| gates.clone().slice_dim(1, k * hidden..(k + 1) * hidden));
    let new_c = sigmoid(i) * tanh(g);
    let new_c = match c {
        Some(c) => sigmoid(f) * c + new_c,
        None => new_c,
    };
    LstmCellState {
        h: sigmoid(o) * tanh(new_c.clone()),
        c: new_c,
    }
}

/// One ConvLSTM layer over a sequence of `steps` steps from zero states: `gates`
/// `(T B, 4h, H, W)` is the input convolution of every step with both biases (step-major,
/// `T` dividing the first dimension), `weight_hh` `(4h, h, k, k)` the hidden-to-gates
/// kernel with the "same" padding `spec`. Per step `a_t = gates_t + conv(h_{t-1}, W_hh)`,
/// `(h_t, c_t) = cell(a_t, c_{t-1})` as in [`lstm_cell`]; returns every `h_t`,
/// `(T B, h, H, W)`.
///
/// On Flex (float32) the whole sequence is one operation, forward and backward, with the
/// states of all steps in one buffer each; the weight gradient is one product over all
/// steps. Elsewhere, [`conv_lstm_layer_portable`].
///
/// # Panics
/// If `steps` does not divide the gates into equal steps, or the kernel does not map
/// `h` channels to the gates' `4h`.
pub fn conv_lstm_layer(
    gates: Tensor<4>,
    weight_hh: Tensor<4>,
    steps: usize,
    spec: ConvSpec,
) -> Tensor<4> {
    check_layer(&gates, &weight_hh, steps);
    #[cfg(feature = "flex")]
    if crate::flex::runs(&gates.device(), gates.dtype()) {
        let ([n, _, h, w], [_, hidden, _, _]) = (gates.dims(), weight_hh.dims());
        let state = [n / steps, hidden, h, w];
        if crate::flex::conv_supported(state, weight_hh.dims(), spec) {
            return crate::flex::conv_lstm_layer(gates, weight_hh, steps, spec);
        }
    }
    conv_lstm_layer_portable(gates, weight_hh, steps, spec)
}

/// Panics unless `steps` divides the gates into equal steps and the kernel maps `h`
/// channels to the gates' `4h`.
fn check_layer(gates: &Tensor<4>, weight_hh: &Tensor<4>, steps: usize) {
    let ([n, four_hidden, _, _], [k_out, hidden, _, _]) = (gates.dims(), weight_hh.dims());
    assert!(
        steps > 0 && n.is_multiple_of(steps),
        "conv_lstm_layer: {n} gate maps are not {steps} equal steps"
    );
    assert!(
        four_hidden == k_out && k_out == 4 * hidden,
        "conv_lstm_layer: gates of {four_hidden} channels, recurrent kernel {k_out} x {hidden}"
    );
}

/// The portable default of [`conv_lstm_layer`]: step by step, [`conv2d_portable`] and
/// [`lstm_cell_portable`].
///
/// # Panics
/// As [`conv_lstm_layer`].
pub fn conv_lstm_layer_portable(
    gates: Tensor<4>,
    weight_hh: Tensor<4>,
    steps: usize,
    spec: ConvSpec,
) -> Tensor<4> {
    check_layer(&gates, &weight_hh, steps);
    let batch = gates.dims()[0] / steps;
    let mut state: Option<(Tensor<4>, Tensor<4>)> = None;
    let mut outputs = Vec::with_capacity(steps);
    for t in 0..steps {
        let step_gates = gates.clone().slice_dim(0, t * batch..(t + 1) * batch);
        let (recurrent, c) = match state {
            Some((h, c)) => (
                Some(conv2d_portable(h, weight_hh.clone(), None, spec)),
                Some(c),
            ),
            None => (None, None),
        };
        let LstmCellState { h, c } = lstm_cell_portable(step_gates, recurrent, c);
        outputs.push(h.clone());
        state = Some((h, c));
    }
    Tensor::cat(outputs, 0)
}

/// `tanh(x) = 2 σ(2x) - 1`, equal up to rounding (absolute error about 1e-7).
fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}
