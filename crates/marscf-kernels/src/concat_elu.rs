//! The concatenated ELU of PixelCNN++ and Flow++.

use burn::tensor::Tensor;
use burn::tensor::activation::elu;

/// `elu(cat(x, -x))` along the channels: `(B, C, H, W) -> (B, 2C, H, W)`, with
/// `elu(v) = v` for `v > 0` and `e^v - 1` otherwise.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/concat_elu.rs`);
/// elsewhere, [`concat_elu_portable`].
pub fn concat_elu(x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) {
        return crate::flex::concat_elu(x);
    }
    concat_elu_portable(x)
}

/// The portable default of [`concat_elu`]: a concatenation and Burn's `elu`.
pub fn concat_elu_portable(x: Tensor<4>) -> Tensor<4> {
    elu(Tensor::cat(vec![x.clone(), x.neg()], 1), 1.0)
}
