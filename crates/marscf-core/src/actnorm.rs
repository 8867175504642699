//! ActNorm: a per-channel affine map with data-dependent initialisation (Glow).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use marscf_kernels::actnorm;

use crate::layer::{InvertibleLayer, per_sample};

/// Configuration of [`ActNorm`].
#[derive(Config, Debug)]
pub struct ActNormConfig {
    /// Number of channels `C`.
    pub channels: usize,
}

impl ActNormConfig {
    /// An uninitialised ActNorm (identity until [`InvertibleLayer::initialize`] runs).
    pub fn init(&self, device: &Device) -> ActNorm {
        let c = self.channels;
        ActNorm {
            bias: Param::from_tensor(Tensor::zeros([1, c, 1, 1], device)),
            logs: Param::from_tensor(Tensor::zeros([1, c, 1, 1], device)),
            initialized: Param::from_tensor(Tensor::zeros([1], device)).set_require_grad(false),
        }
    }
}

/// `y = (x + bias) * exp(logs)` per channel; `ln |det| = H W Σ_c logs_c`.
///
/// Data-dependent initialisation on a batch: `bias = -mean(x)`,
/// `logs = ln(1 / (std(x) + 1e-6))` over `(B, H, W)`, so that the output has zero mean and
/// unit variance per channel.
#[derive(Module, Debug)]
pub struct ActNorm {
    /// Tensor of shape `[1, C, 1, 1]`.
    pub bias: Param<Tensor<4>>,
    /// Log-scale, tensor of shape `[1, C, 1, 1]`.
    pub logs: Param<Tensor<4>>,
    /// `[1.0]` once initialised from data, `[0.0]` before (saved with the weights, not
    /// trained).
    pub initialized: Param<Tensor<1>>,
}

impl ActNorm {
    /// Whether the data-dependent initialisation has run (reads one value from the device).
    pub fn is_initialized(&self) -> bool {
        self.initialized.val().into_scalar::<f32>() != 0.0
    }

    /// `(x + bias) * exp(logs)` without the log-det: `(B, C, H, W) -> (B, C, H, W)`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        actnorm(x, self.bias.val(), self.logs.val(), false)
    }

    /// `max((x + bias) * exp(logs), 0)`, [`Self::apply`] and a ReLU in one operation.
    pub fn apply_relu(&self, x: Tensor<4>) -> Tensor<4> {
        actnorm(x, self.bias.val(), self.logs.val(), true)
    }

    fn logdet(&self, x: &Tensor<4>) -> Tensor<1> {
        let [b, _, h, w] = x.dims();
        per_sample(self.logs.val().sum().mul_scalar((h * w) as f64), b)
    }
}

impl InvertibleLayer for ActNorm {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let logdet = self.logdet(&x);
        (self.apply(x), logdet)
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let logdet = self.logdet(&y);
        (y * self.logs.val().neg().exp() - self.bias.val(), logdet)
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        if self.is_initialized() {
            return self;
        }
        let x = x.clone().detach();
        let mean = x.clone().mean_dims(&[0, 2, 3]);
        let bias = mean.neg();
        let std = (x + bias.clone()).square().mean_dims(&[0, 2, 3]).sqrt();
        let logs = (std + 1e-6).recip().log();
        let initialized = self.initialized.val().ones_like();
        Self {
            bias: self.bias.map(|_| bias).set_require_grad(true),
            logs: self.logs.map(|_| logs).set_require_grad(true),
            initialized: self.initialized.map(|_| initialized),
        }
    }
}
