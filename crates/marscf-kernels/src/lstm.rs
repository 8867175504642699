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
/// On Flex (float32) one fused pass computes both states (and one pass their gradients).
/// Elsewhere, [`lstm_cell_portable`].
pub fn lstm_cell(
    gates: Tensor<4>,
    recurrent: Option<Tensor<4>>,
    c: Option<Tensor<4>>,
) -> LstmCellState {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&gates.device(), gates.dtype()) {
        let [b, four_hidden, height, width] = gates.dims();
        let hidden = four_hidden / 4;
        let recurrent = recurrent.unwrap_or_else(|| gates.zeros_like());
        let c = c.unwrap_or_else(|| Tensor::zeros([b, hidden, height, width], &gates.device()));
        let out = crate::flex::lstm_cell(gates, recurrent, c);
        return LstmCellState {
            h: out.clone().narrow(0, 0, b),
            c: out.narrow(0, b, b),
        };
    }
    lstm_cell_portable(gates, recurrent, c)
}

/// The portable default of [`lstm_cell`], in standard tensor operations
/// (`tanh(x) = 2 σ(2x) - 1`: Flex's `sigmoid` is cheaper than its `tanh`, see
/// docs/performance.md).
pub fn lstm_cell_portable(
    gates: Tensor<4>,
    recurrent: Option<Tensor<4>>,
    c: Option<Tensor<4>>,
) -> LstmCellState {
    let gates = match recurrent {
        Some(r) => gates + r,
        None => gates,
    };
    let [i, f, g, o]: [Tensor<4>; 4] = gates
        .chunk(4, 1)
        .try_into()
        .expect("4 * hidden gate channels chunk into 4");
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
