//! Glow's zero-initialised convolution (`Conv2dZeros`), the last layer of every coupling
//! network and the layer that gives Glow's learned prior its mean and scale.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use marscf_kernels::conv2d_module;

/// Configuration of [`ZeroConv2d`].
#[derive(Config, Debug)]
pub struct ZeroConv2dConfig {
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Side of the square kernel (odd; padded to keep the spatial size).
    #[config(default = 3)]
    pub kernel: usize,
}

impl ZeroConv2dConfig {
    /// The convolution with zero weights, zero bias and zero log-scales: its output is 0
    /// until it learns otherwise.
    pub fn init(&self, device: &Device) -> ZeroConv2d {
        let pad = self.kernel / 2;
        ZeroConv2d {
            conv: Conv2dConfig::new(
                [self.channels_in, self.channels_out],
                [self.kernel, self.kernel],
            )
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(true)
            .with_initializer(Initializer::Zeros)
            .init(device),
            logs: Param::from_tensor(Tensor::zeros([self.channels_out, 1, 1], device)),
        }
    }
}

/// A zero-initialised convolution whose output is scaled per channel:
/// `y = (W * x + b) · exp(3 logs)`, `(B, C_in, H, W) -> (B, C_out, H, W)` (zero padding).
/// The factor 3 is Glow's `logscale_factor`: it makes the scale learn faster than `W`, `b`.
#[derive(Module, Debug)]
pub struct ZeroConv2d {
    /// The convolution, with bias. Weight of shape `[C_out, C_in, k, k]`.
    pub conv: Conv2d,
    /// Log-scale per output channel, `[C_out, 1, 1]`.
    pub logs: Param<Tensor<3>>,
}

impl ZeroConv2d {
    /// `(B, C_in, H, W) -> (B, C_out, H, W)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d_module(&self.conv, x) * self.logs.val().mul_scalar(3.0).exp().unsqueeze_dim::<4>(0)
    }
}
