//! The affine coupling of Glow as mAR-SCF uses it.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor};

use super::checks::check_coupling_sizes;
use super::glow_net::{AffineCouplingNet, AffineCouplingNetConfig};
use crate::CoreError;
use crate::layer::{InvertibleLayer, sum_per_sample};
use crate::split::{merge, split};

/// Configuration of [`AffineCoupling`].
#[derive(Config, Debug)]
pub struct AffineCouplingConfig {
    /// Channels `C` of the coupled tensor (even).
    pub channels: usize,
    /// Hidden width of the conditioning network.
    pub hidden: usize,
}

impl AffineCouplingConfig {
    /// The coupling with its network initialised as the reference does (see
    /// [`AffineCouplingNetConfig::init`]): a new coupling is the identity up to
    /// `scale = sigmoid(2)`.
    pub fn init(&self, device: &Device) -> Result<AffineCoupling, CoreError> {
        let (c, hidden) = (self.channels, self.hidden);
        check_coupling_sizes("AffineCoupling", c, hidden)?;
        Ok(AffineCoupling {
            net: AffineCouplingNetConfig::new(c / 2, hidden, c).init(device),
        })
    }
}

/// Affine coupling: `x = (x1, x2)` halves of the channels,
/// `h = NN(x1)`, `shift = h[:, 0::2]`, `scale = sigmoid(h[:, 1::2] + 2)`,
/// `y = (x1, x2 * scale + shift)`; `ln |det| = Σ ln scale` over `(C/2, H, W)`.
#[derive(Module, Debug)]
pub struct AffineCoupling {
    /// The conditioning network.
    pub net: AffineCouplingNet,
}

impl AffineCoupling {
    /// `(shift, ln scale)`, each `(B, C/2, H, W)`, from the pass-through half `x1`.
    fn shift_and_log_scale(&self, x1: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let h = self.net.forward(x1);
        let [b, c, height, width] = h.dims();
        // Channel 2j is the shift of channel j, channel 2j+1 its raw scale.
        let h = h.reshape([b, c / 2, 2, height, width]);
        let shift = h.clone().narrow(2, 0, 1).reshape([b, c / 2, height, width]);
        let raw = h.narrow(2, 1, 1).reshape([b, c / 2, height, width]);
        (shift, log_sigmoid(raw + 2.0))
    }
}

impl InvertibleLayer for AffineCoupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (x1, x2) = split(x);
        let (shift, log_scale) = self.shift_and_log_scale(x1.clone());
        let y2 = x2 * log_scale.clone().exp() + shift;
        (merge(x1, y2), sum_per_sample(log_scale))
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (x1, y2) = split(y);
        let (shift, log_scale) = self.shift_and_log_scale(x1.clone());
        let x2 = (y2 - shift) * log_scale.clone().neg().exp();
        (merge(x1, x2), sum_per_sample(log_scale))
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        let (x1, _) = split(x.clone());
        Self {
            net: self.net.initialize(&x1),
        }
    }
}
