//! Softmax over the last dimension.

use burn::tensor::Tensor;
use burn::tensor::activation;

/// `softmax(x)` over the last dimension, `exp(x_i - max x) / Σ_j exp(x_j - max x)`; any
/// shape in, the same shape out.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/softmax.rs`);
/// elsewhere, [`softmax_portable`].
pub fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) {
        return crate::flex::softmax(x);
    }
    softmax_portable(x)
}

/// The portable default of [`softmax`]: Burn's `softmax` (an empty `x`, whose rows Burn's
/// maximum cannot reduce when they are empty, is its own softmax).
pub fn softmax_portable<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.shape().num_elements() == 0 {
        return x;
    }
    activation::softmax(x, D - 1)
}
