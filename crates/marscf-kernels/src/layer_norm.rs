//! Layer normalisation over the last dimension.

use burn::tensor::Tensor;
use burn::tensor::module;

/// `y = (x - μ) / √(σ² + ε) ⊙ γ + β` over the last dimension `C` of `x` (any rank):
/// `μ` and the biased `σ²` per row, `gamma` and `beta` `(C)`.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/layer_norm.rs`);
/// elsewhere, [`layer_norm_portable`].
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype())
        && [&gamma, &beta]
            .iter()
            .all(|p| p.dims() == [x.dims()[D - 1]])
    {
        return crate::flex::layer_norm(x, gamma, beta, epsilon);
    }
    layer_norm_portable(x, gamma, beta, epsilon)
}

/// The portable default of [`layer_norm`]: Burn's `layer_norm`.
pub fn layer_norm_portable<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    module::layer_norm(x, gamma, Some(beta), epsilon)
}
