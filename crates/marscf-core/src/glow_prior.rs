//! Glow's learned prior (Kingma & Dhariwal 2018, `openai/glow` `model.py`): a diagonal
//! Gaussian at every level whose mean and scale are learned.
//!
//! - Below the top (Glow's `split2d_prior`): the split-off half `z2` of level `l` is
//!   `N(mu, exp(logs)²)` with `h = ZeroConv2d(z1)` (3x3, `C -> 2C`, see [`ZeroConv2d`]),
//!   `mu = h[:, 0::2]`, `logs = h[:, 1::2]` (Glow's interleaving), `z1` the kept half.
//! - The top latent (Glow's `learntop`): `h = Conv2dZeros(0)`, a zero-initialised
//!   convolution of a zeros tensor. With zero padding such a convolution is its bias alone,
//!   constant over positions; Glow's edge padding (an extra input channel that is 1 in the
//!   padding) lets the border positions differ. Here `mu` and `logs` are one zero-initialised
//!   parameter per channel and position (`[C, H, W]` each), which holds every output that
//!   convolution can give and starts at the same place, `N(0, 1)`.
//!
//! `ln p(z) = Σ -(2 logs + (z - mu)² exp(-2 logs) + ln 2π) / 2`; a sample at temperature
//! `T` is `mu + T exp(logs) ε`, `ε ~ N(0, 1)` (Glow's `eps_std`), so `T = 0` gives `mu`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::CoreError;
use crate::layer::sum_per_sample;
use crate::multiscale::MultiScaleFlowConfig;
use crate::prior::{Prior, gaussian_log_density};
use crate::zero_conv::{ZeroConv2d, ZeroConv2dConfig};

/// Configuration of [`GlowPrior`].
#[derive(Config, Debug)]
pub struct GlowPriorConfig {
    /// `[C, H, W]` of each level's latent, bottom first: the split-off halves (each as
    /// wide as the kept half that conditions it), then the top tensor.
    pub latents: Vec<[usize; 3]>,
}

impl GlowPriorConfig {
    /// The prior for a flow's latents ([`MultiScaleFlowConfig::latent_shapes`]).
    pub fn for_flow(flow: &MultiScaleFlowConfig) -> Self {
        Self::new(flow.latent_shapes())
    }

    /// A new prior, `N(0, 1)` at every level until it learns. Fails on no levels or an
    /// empty latent.
    pub fn init(&self, device: &Device) -> Result<GlowPrior, CoreError> {
        let (&[c, h, w], below) = self.latents.split_last().ok_or(CoreError::ZeroSize {
            what: "GlowPrior levels",
        })?;
        if self.latents.iter().any(|shape| shape.contains(&0)) {
            return Err(CoreError::ZeroSize {
                what: "GlowPrior latent size",
            });
        }
        let splits = below
            .iter()
            .map(|&[c, _, _]| ZeroConv2dConfig::new(c, 2 * c).init(device))
            .collect();
        Ok(GlowPrior {
            splits,
            top_mean: Param::from_tensor(Tensor::zeros([c, h, w], device)),
            top_logs: Param::from_tensor(Tensor::zeros([c, h, w], device)),
        })
    }
}

/// Glow's learned prior over a multi-scale flow's latents (see the module's documentation).
#[derive(Module, Debug)]
pub struct GlowPrior {
    /// One per split, bottom first: `z1 (B, C, h, w) -> (mu, logs) interleaved, (B, 2C, h, w)`.
    pub splits: Vec<ZeroConv2d>,
    /// Mean of the top latent, `[C, H, W]`.
    pub top_mean: Param<Tensor<3>>,
    /// Log standard deviation of the top latent, `[C, H, W]`.
    pub top_logs: Param<Tensor<3>>,
}

impl GlowPrior {
    /// `(mu, logs)` of `level`'s latent, each `(B, C, h, w)`: from the kept half
    /// `condition` below the top, the learned parameters (repeated `batch` times) at it.
    ///
    /// # Panics
    /// Below the top without a condition: [`MultiScaleFlow`](crate::MultiScaleFlow) always
    /// gives one there.
    pub fn mean_and_log_scale(
        &self,
        level: usize,
        condition: Option<Tensor<4>>,
        batch: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        match self.splits.get(level) {
            Some(conv) => {
                let z1 = condition.expect("a level below the top is conditioned on its kept half");
                let h = conv.forward(z1);
                let [b, c2, height, width] = h.dims();
                // Channel 2j is the mean of channel j, channel 2j+1 its log-scale.
                let h = h.reshape([b, c2 / 2, 2, height, width]);
                let shape = [b, c2 / 2, height, width];
                let mean = h.clone().narrow(2, 0, 1).reshape(shape);
                let logs = h.narrow(2, 1, 1).reshape(shape);
                (mean, logs)
            }
            None => {
                let [c, h, w] = self.top_mean.dims();
                let repeat =
                    |p: &Param<Tensor<3>>| p.val().unsqueeze::<4>().expand([batch, c, h, w]);
                (repeat(&self.top_mean), repeat(&self.top_logs))
            }
        }
    }
}

impl Prior for GlowPrior {
    fn log_prob(&self, level: usize, z: Tensor<4>, condition: Option<Tensor<4>>) -> Tensor<1> {
        let (mean, logs) = self.mean_and_log_scale(level, condition, z.dims()[0]);
        sum_per_sample(gaussian_log_density(z, mean, logs))
    }

    fn sample(
        &self,
        level: usize,
        shape: [usize; 4],
        condition: Option<Tensor<4>>,
        temperature: f64,
        device: &Device,
    ) -> Tensor<4> {
        let (mean, logs) = self.mean_and_log_scale(level, condition, shape[0]);
        let eps = Tensor::random(shape, Distribution::Normal(0.0, 1.0), device);
        mean + logs.exp() * eps.mul_scalar(temperature)
    }
}
