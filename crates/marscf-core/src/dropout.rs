//! Dropout as the reference applies it: per element (`F.dropout`, on the attention
//! weights) or per channel (`nn.Dropout2d`, in the gated residual blocks).

use burn::module::{Flag, Module, Param};
use burn::tensor::Tensor;

/// During training, zeroes each element (or each channel of each sample) with probability
/// `prob` and scales the rest by `1 / (1 - prob)`; the identity otherwise (non-autodiff
/// device, `valid()` model, or `prob = 0`).
///
/// The mask is drawn by [`marscf_kernels::dropout`] from the device's random generator, so
/// seeding the device reproduces it.
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
        marscf_kernels::dropout(x, self.prob, self.whole_channels)
    }
}
