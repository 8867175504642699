//! The additive coupling of NICE (Dinh et al. 2015), Glow's `flow_coupling = 0`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::checks::check_coupling_sizes;
use super::glow_net::{AffineCouplingNet, AffineCouplingNetConfig};
use crate::CoreError;
use crate::layer::InvertibleLayer;
use crate::split::{merge, split};

/// Configuration of [`AdditiveCoupling`].
#[derive(Config, Debug)]
pub struct AdditiveCouplingConfig {
    /// Channels `C` of the coupled tensor (even).
    pub channels: usize,
    /// Hidden width of the conditioning network.
    pub hidden: usize,
}

impl AdditiveCouplingConfig {
    /// The coupling with the affine coupling's network (N(0, 0.05) convolutions, a zero
    /// last one), `C/2` outputs wide: a new coupling is the identity.
    pub fn init(&self, device: &Device) -> Result<AdditiveCoupling, CoreError> {
        let (c, hidden) = (self.channels, self.hidden);
        check_coupling_sizes("AdditiveCoupling", c, hidden)?;
        Ok(AdditiveCoupling {
            net: AffineCouplingNetConfig::new(c / 2, hidden, c / 2).init(device),
        })
    }
}

/// Additive coupling: `x = (x1, x2)` halves of the channels, `t = NN(x1)`,
/// `y = (x1, x2 + t)`; the Jacobian is unit triangular, so `ln |det| = 0`.
/// Inverse: `x2 = y2 - NN(y1)`. `NN` is [`AffineCouplingNet`] with `C/2` outputs.
#[derive(Module, Debug)]
pub struct AdditiveCoupling {
    /// The conditioning network `t`, `(B, C/2, H, W) -> (B, C/2, H, W)`.
    pub net: AffineCouplingNet,
}

impl InvertibleLayer for AdditiveCoupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let batch = x.dims()[0];
        let device = x.device();
        let (x1, x2) = split(x);
        let y2 = x2 + self.net.forward(x1.clone());
        (merge(x1, y2), Tensor::zeros([batch], &device))
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let batch = y.dims()[0];
        let device = y.device();
        let (y1, y2) = split(y);
        let x2 = y2 - self.net.forward(y1.clone());
        (merge(y1, x2), Tensor::zeros([batch], &device))
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        let (x1, _) = split(x.clone());
        Self {
            net: self.net.initialize(&x1),
        }
    }
}
