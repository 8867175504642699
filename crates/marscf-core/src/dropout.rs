//! Dropout as the reference applies it: per element (`F.dropout`, on the attention
//! weights) or per channel (`nn.Dropout2d`, in the gated residual blocks).

use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::tensor::{Device, Tensor};

use crate::CoreError;

/// Configuration of [`Dropout`].
#[derive(Config, Debug)]
pub struct DropoutConfig {
    /// Probability `p` of dropping an element (or a channel), in `[0, 1)`.
    pub prob: f64,
    /// Drop whole channels of `(B, C, ...)` inputs (one draw per sample and channel,
    /// `nn.Dropout2d`) instead of single elements (`F.dropout`).
    #[config(default = false)]
    pub whole_channels: bool,
}

impl DropoutConfig {
    /// The layer, in training mode. Fails with [`CoreError::InvalidProbability`] unless
    /// `p` is in `[0, 1)`.
    pub fn init(&self) -> Result<Dropout, CoreError> {
        if !(0.0..1.0).contains(&self.prob) {
            return Err(CoreError::InvalidProbability {
                what: "dropout probability",
                value: self.prob,
            });
        }
        Ok(Dropout {
            prob: self.prob,
            whole_channels: self.whole_channels,
            training: Param::from_bool(true),
        })
    }
}

/// During training, zeroes each element (or each channel of each sample) with probability
/// `p` and scales the rest by `1 / (1 - p)`, so that `E[y] = x`; the identity otherwise
/// (non-autodiff device, `valid()` model, or `p = 0`).
///
/// The mask is drawn by [`marscf_kernels::dropout`] from the device's random generator, so
/// seeding the device reproduces it.
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability `p` of dropping an element or a channel.
    pub prob: f64,
    /// Drop whole channels of `(B, C, H, W)` inputs instead of single elements.
    pub whole_channels: bool,
    /// Whether the layer is in training mode.
    pub training: Param<Flag>,
}

impl Dropout {
    /// Any shape, `(B, C, ...)` for whole channels; same shape out.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let prob = self.active_prob(&x.device());
        if prob == 0.0 {
            return x;
        }
        marscf_kernels::dropout(x, prob, self.whole_channels)
    }

    /// The probability the layer drops with on `device`: `p` while training on an autodiff
    /// device, else 0.
    pub fn active_prob(&self, device: &Device) -> f64 {
        if self.training.is_enabled() && device.is_autodiff() {
            self.prob
        } else {
            0.0
        }
    }
}
