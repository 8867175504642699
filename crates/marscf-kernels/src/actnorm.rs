//! ActNorm's per-channel affine map, optionally followed by a ReLU.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

/// `y = (x + bias) e^logs` per channel, then `max(y, 0)` with `relu`:
/// `x` `(B, C, H, W)`, `bias` and `logs` `(1, C, 1, 1)` -> `(B, C, H, W)`.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/actnorm.rs`);
/// elsewhere, [`actnorm_portable`].
pub fn actnorm(x: Tensor<4>, bias: Tensor<4>, logs: Tensor<4>, relu: bool) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype())
        && [&bias, &logs]
            .iter()
            .all(|p| p.dims() == [1, x.dims()[1], 1, 1])
    {
        return crate::flex::actnorm(x, bias, logs, relu);
    }
    actnorm_portable(x, bias, logs, relu)
}

/// The portable default of [`actnorm`]: Burn's broadcast add, `exp`, product and `relu`.
pub fn actnorm_portable(
    x: Tensor<4>,
    bias: Tensor<4>,
    logs: Tensor<4>,
    then_relu: bool,
) -> Tensor<4> {
    let y = (x + bias) * logs.exp();
    if then_relu { relu(y) } else { y }
}
