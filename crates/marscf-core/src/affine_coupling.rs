//! The affine coupling of Glow as mAR-SCF uses it, with its conditioning network.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor};

use marscf_kernels::conv2d_module;

use crate::CoreError;
use crate::actnorm::{ActNorm, ActNormConfig};
use crate::coupling::check_coupling_sizes;
use crate::layer::{InvertibleLayer, sum_per_sample};
use crate::split::{merge, split};
pub use crate::zero_conv::ZeroConv2d;
use crate::zero_conv::ZeroConv2dConfig;

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
