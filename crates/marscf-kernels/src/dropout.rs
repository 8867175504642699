//! Dropout's mask and scaling.

use burn::tensor::{Distribution, Tensor};

/// Zeroes each element of `x` (or, with `whole_channels`, each channel of each sample of
/// an `(B, C, ...)` tensor) with probability `prob` in `[0, 1)` and scales the rest by
/// `1 / (1 - prob)`; the gradient is masked and scaled alike. Always applies the mask:
/// whether a model is training is the caller's decision.
///
/// Seeding the device reproduces the mask. On Flex (float32) our own kernel runs, with its
/// own backward (`src/flex/dropout.rs`); elsewhere, [`dropout_portable`].
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64, whole_channels: bool) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) {
        return crate::flex::dropout(x, prob, whole_channels);
    }
    dropout_portable(x, prob, whole_channels)
}

/// The portable default of [`dropout`]: a mask `u < 1 - prob` of `u ~ U[0, 1)` drawn from
/// the device (Burn's `Bernoulli` builds a sampler per element and is slower).
pub fn dropout_portable<const D: usize>(
    x: Tensor<D>,
    prob: f64,
    whole_channels: bool,
) -> Tensor<D> {
    let mut mask_shape = x.dims();
    if whole_channels {
        mask_shape.iter_mut().skip(2).for_each(|d| *d = 1);
    }
    let keep = 1.0 - prob;
    let uniform = Tensor::<D>::random(mask_shape, Distribution::Default, &x.device());
    x * uniform.lower_elem(keep).float().div_scalar(keep)
}
