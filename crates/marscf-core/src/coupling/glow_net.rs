//! Glow's coupling network, shared by the affine and the additive couplings:
//! conv 3x3 + ActNorm -> ReLU -> conv 1x1 + ActNorm -> ReLU -> zero conv 3x3.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use marscf_kernels::conv2d_module;

use crate::actnorm::{ActNorm, ActNormConfig};
use crate::layer::InvertibleLayer;
pub use crate::zero_conv::ZeroConv2d;
use crate::zero_conv::ZeroConv2dConfig;

/// Configuration of [`AffineCouplingNet`].
#[derive(Config, Debug)]
pub struct AffineCouplingNetConfig {
    /// Input channels (the pass-through half, `C/2`).
    pub channels_in: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Output channels: `C` for the affine coupling (shift and scale of each channel),
    /// `C/2` for the additive one (shift only).
    pub channels_out: usize,
}

impl AffineCouplingNetConfig {
    /// The network with N(0, 0.05) weights in its first two convolutions and zeros in the
    /// last (its output is 0 until it learns). Sizes are the caller's to check.
    pub fn init(&self, device: &Device) -> AffineCouplingNet {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.05,
        };
        let conv = |c_in, c_out, k: usize, pad: usize| {
            Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .with_initializer(normal.clone())
                .init(device)
        };
        AffineCouplingNet {
            conv1: ConvActNorm {
                conv: conv(self.channels_in, self.hidden, 3, 1),
                actnorm: ActNormConfig::new(self.hidden).init(device),
            },
            conv2: ConvActNorm {
                conv: conv(self.hidden, self.hidden, 1, 0),
                actnorm: ActNormConfig::new(self.hidden).init(device),
            },
            conv3: ZeroConv2dConfig::new(self.hidden, self.channels_out).init(device),
        }
    }
}

/// A bias-free convolution followed by its own [`ActNorm`] (whose log-det is discarded)
/// and a ReLU: `(B, C_in, H, W) -> (B, C_out, H, W)`.
#[derive(Module, Debug)]
pub struct ConvActNorm {
    /// The convolution, no bias.
    pub conv: Conv2d,
    /// Its normalisation, initialised from data.
    pub actnorm: ActNorm,
}

impl ConvActNorm {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.actnorm.apply_relu(conv2d_module(&self.conv, x))
    }

    fn initialize(self, x: &Tensor<4>) -> (Self, Tensor<4>) {
        let h = conv2d_module(&self.conv, x.clone());
        let actnorm = self.actnorm.initialize(&h);
        let out = actnorm.apply_relu(h);
        (
            Self {
                conv: self.conv,
                actnorm,
            },
            out,
        )
    }
}

/// The coupling's conditioning network, `(B, C/2, H, W) -> (B, C_out, H, W)`:
/// conv 3x3 + ActNorm -> ReLU -> conv 1x1 + ActNorm -> ReLU -> zero conv 3x3.
#[derive(Module, Debug)]
pub struct AffineCouplingNet {
    /// 3x3, `C/2 -> hidden`.
    pub conv1: ConvActNorm,
    /// 1x1, `hidden -> hidden`.
    pub conv2: ConvActNorm,
    /// 3x3, `hidden -> C_out`, zero-initialised.
    pub conv3: ZeroConv2d,
}

impl AffineCouplingNet {
    /// `(B, C/2, H, W) -> (B, C_out, H, W)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(x);
        let h = self.conv2.forward(h);
        self.conv3.forward(h)
    }

    /// Data-dependent initialisation of both ActNorms from a batch of the network's input.
    pub(crate) fn initialize(self, x: &Tensor<4>) -> Self {
        let (conv1, h) = self.conv1.initialize(x);
        let (conv2, _) = self.conv2.initialize(&h);
        Self {
            conv1,
            conv2,
            conv3: self.conv3,
        }
    }
}
