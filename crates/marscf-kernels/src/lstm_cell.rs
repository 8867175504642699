//! The ConvLSTM cell's element-wise part.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

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
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/lstm_cell.rs`);
/// elsewhere, [`lstm_cell_portable`].
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

/// `tanh(x) = 2 σ(2x) - 1`, equal up to rounding (absolute error about 1e-7).
fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}
