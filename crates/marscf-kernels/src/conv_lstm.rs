//! One ConvLSTM layer over a whole sequence.

use burn::tensor::Tensor;

use crate::{ConvSpec, LstmCellState, conv2d_portable, lstm_cell_portable};

/// One ConvLSTM layer over a sequence of `steps` steps from zero states: `gates`
/// `(T B, 4h, H, W)` is the input convolution of every step with both biases (step-major,
/// `T` dividing the first dimension), `weight_hh` `(4h, h, k, k)` the hidden-to-gates
/// kernel with the "same" padding `spec`. Per step `a_t = gates_t + conv(h_{t-1}, W_hh)`,
/// `(h_t, c_t) = cell(a_t, c_{t-1})` as in [`crate::lstm_cell`]; returns every `h_t`,
/// `(T B, h, H, W)`.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/conv_lstm.rs`);
/// elsewhere, [`conv_lstm_layer_portable`].
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
