//! The multi-scale autoregressive prior: one [`ChannelPrior`] per level of the flow.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf_core::{MultiScaleFlowConfig, Prior};

use crate::channel_prior::{ChannelPrior, ChannelPriorConfig};

/// Configuration of [`MarPrior`].
#[derive(Config, Debug)]
pub struct MarPriorConfig {
    /// Channels of each level's latent, bottom level first (the split-off halves, then
    /// the top tensor).
    pub latent_channels: Vec<usize>,
    /// Width of the embeddings and LSTM states.
    #[config(default = 32)]
    pub hidden: usize,
    /// Stacked LSTM layers per level.
    #[config(default = 3)]
    pub lstm_layers: usize,
}

impl MarPriorConfig {
    /// The prior for a flow's latents.
    pub fn for_flow(flow: &MultiScaleFlowConfig) -> Self {
        Self::new(flow.latent_shapes().iter().map(|[c, _, _]| *c).collect())
    }

    /// Kernel size and dilation of the LSTM at `level` (0-based): `(5, 2)` at the first,
    /// `(5, 1)` at the second, `(3, 1)` above.
    pub fn kernel_and_dilation(level: usize) -> (usize, usize) {
        match level {
            0 => (5, 2),
            1 => (5, 1),
            _ => (3, 1),
        }
    }

    /// A new prior.
    pub fn init(&self, device: &Device) -> MarPrior {
        let top = self.latent_channels.len().saturating_sub(1);
        let levels = self
            .latent_channels
            .iter()
            .enumerate()
            .map(|(level, &channels)| {
                let (kernel, dilation) = Self::kernel_and_dilation(level);
                ChannelPriorConfig::new(channels, level < top, kernel, dilation)
                    .with_hidden(self.hidden)
                    .with_lstm_layers(self.lstm_layers)
                    .init(device)
            })
            .collect();
        MarPrior { levels }
    }
}

/// `p(z_1, ..., z_L) = p(z_L) Π_{l<L} p(z_l | z1_l)`, each factor a [`ChannelPrior`]
/// over the channels of that level's latent.
#[derive(Module, Debug)]
pub struct MarPrior {
    /// One prior per level, bottom first.
    pub levels: Vec<ChannelPrior>,
}

impl Prior for MarPrior {
    fn log_prob(&self, level: usize, z: Tensor<4>, condition: Option<Tensor<4>>) -> Tensor<1> {
        self.levels[level].log_prob(z, condition)
    }

    fn sample(
        &self,
        level: usize,
        shape: [usize; 4],
        condition: Option<Tensor<4>>,
        temperature: f64,
        device: &Device,
    ) -> Tensor<4> {
        self.levels[level].sample(shape, condition, temperature, device)
    }
}
