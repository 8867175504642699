//! Dropout as the reference applies it: per element (`F.dropout`, on the attention
//! weights) or per channel (`nn.Dropout2d`, in the gated residual blocks).

use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor};

/// During training, zeroes each element (or each channel of each sample) with probability
/// `prob` and scales the rest by `1 / (1 - prob)`; the identity otherwise (non-autodiff
/// device, `valid()` model, or `prob = 0`).
///
/// The mask is drawn as `u < 1 - prob` with `u ~ U[0, 1)`, the same distribution as
/// Burn's `Bernoulli`, which builds a sampler per element and is twice as slow on Flex
/// (48 against 26 ms for the 4.2 M attention weights of a level-1 block at batch 16).
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability of dropping an element or a channel.
    pub prob: f64,
    /// Drop whole channels of `(B, C, H, W)` inputs instead of single elements.
    pub whole_channels: bool,
    /// Whether the layer is in training mode.
    pub training: Param<Flag>,
}

impl Dropout {
    /// Per-element dropout with probability `prob` (in `[0, 1)`).
    pub fn elements(prob: f64) -> Self {
        Self {
            prob,
            whole_channels: false,
            training: Param::from_bool(true),
        }
    }

    /// Whole-channel dropout with probability `prob` (in `[0, 1)`), for `(B, C, ...)`
    /// inputs: one draw per sample and channel.
    pub fn channels(prob: f64) -> Self {
        Self {
            whole_channels: true,
            ..Self::elements(prob)
        }
    }

    /// Same shape in and out.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.prob == 0.0 || !self.training.is_enabled() || !x.device().is_autodiff() {
            return x;
        }
        let mut mask_shape = x.dims();
        if self.whole_channels {
            mask_shape.iter_mut().skip(2).for_each(|d| *d = 1);
        }
        let keep = 1.0 - self.prob;
        let uniform = Tensor::<D>::random(mask_shape, Distribution::Default, &x.device());
        let mask = uniform.lower_elem(keep).float().div_scalar(keep);
        x * mask
    }
}
