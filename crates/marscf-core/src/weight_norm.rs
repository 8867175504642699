//! Weight-normalised layers (Salimans & Kingma 2016): `w = g v / ||v||`, the norm taken
//! per output unit, over every dimension but the first. Parameter names follow PyTorch's
//! `weight_norm` (`weight_g`, `weight_v`).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};
use marscf_kernels::{ConvSpec, conv2d, weight_norm};

/// PyTorch's default initialisation of a weight with `fan_in` inputs:
/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (also used for biases).
fn default_init(fan_in: usize) -> Initializer {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Initializer::Uniform {
        min: -bound,
        max: bound,
    }
}

/// `||v||` per output unit, keeping dims: `[out, ...] -> [out, 1, ...]`.
fn unit_norm<const D: usize>(v: Tensor<D>) -> Tensor<D> {
    let dims: Vec<usize> = (1..D).collect();
    v.square().sum_dims(&dims).sqrt()
}

/// `w = g v / ||v||`, `v` of shape `[out, ...]`, `g` of shape `[out, 1, ...]`; `w` has
/// the shape of `v` ([`marscf_kernels::weight_norm`]).
fn normalized_weight<const D: usize>(v: &Param<Tensor<D>>, g: &Param<Tensor<D>>) -> Tensor<D> {
    weight_norm(v.val(), g.val())
}

/// `g` initialised to `||v||`, so that the initial weight is `v`.
fn norm_param<const D: usize>(v: &Param<Tensor<D>>) -> Param<Tensor<D>> {
    Param::from_tensor(unit_norm(v.val()).detach())
}

/// Configuration of [`WnConv2d`].
#[derive(Config, Debug)]
pub struct WnConv2dConfig {
    /// Channels `[C_in, C_out]`.
    pub channels: [usize; 2],
    /// Side `k` of the square kernel (odd, for "same" padding).
    pub kernel_size: usize,
}

impl WnConv2dConfig {
    /// The convolution with PyTorch's default initialisation: `v` and the bias drawn from
    /// `U(-1/sqrt(C_in k²), 1/sqrt(C_in k²))` (`v` first), `g = ||v||`.
    pub fn init(&self, device: &Device) -> WnConv2d {
        let ([c_in, c_out], k) = (self.channels, self.kernel_size);
        let init = default_init(c_in * k * k);
        let weight_v = init.init([c_out, c_in, k, k], device);
        WnConv2d {
            weight_g: norm_param(&weight_v),
            weight_v,
            bias: init.init([c_out], device),
        }
    }
}

/// A weight-normalised 2D convolution with "same" zero padding (odd kernels):
/// `y = conv(x, g v / ||v||) + bias`.
#[derive(Module, Debug)]
pub struct WnConv2d {
    /// Direction `v`, `[C_out, C_in, k, k]`.
    pub weight_v: Param<Tensor<4>>,
    /// Gain `g`, `[C_out, 1, 1, 1]`.
    pub weight_g: Param<Tensor<4>>,
    /// Bias, `[C_out]`.
    pub bias: Param<Tensor<1>>,
}

impl WnConv2d {
    /// `w = g v / ||v||`, `[C_out, C_in, k, k]`.
    pub fn weight(&self) -> Tensor<4> {
        normalized_weight(&self.weight_v, &self.weight_g)
    }

    /// `(B, C_in, H, W) -> (B, C_out, H, W)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, kw] = self.weight_v.dims();
        conv2d(
            x,
            self.weight(),
            Some(self.bias.val()),
            ConvSpec::same([kh, kw], [1, 1]),
        )
    }
}

/// Configuration of [`WnLinear`].
#[derive(Config, Debug)]
pub struct WnLinearConfig {
    /// Input features `d_in`.
    pub d_input: usize,
    /// Output features `d_out`.
    pub d_output: usize,
    /// Whether the map adds a bias.
    #[config(default = true)]
    pub bias: bool,
}

impl WnLinearConfig {
    /// The map with PyTorch's default initialisation: `v` and the bias drawn from
    /// `U(-1/sqrt(d_in), 1/sqrt(d_in))` (`v` first), `g = ||v||`.
    pub fn init(&self, device: &Device) -> WnLinear {
        let (d_in, d_out) = (self.d_input, self.d_output);
        let init = default_init(d_in);
        let weight_v = init.init([d_out, d_in], device);
        WnLinear {
            weight_g: norm_param(&weight_v),
            weight_v,
            bias: self.bias.then(|| init.init([d_out], device)),
        }
    }
}

/// A weight-normalised linear map on the last dimension, `y = x w^T + b` with
/// `w = g v / ||v||` stored `[out, in]` as in PyTorch.
#[derive(Module, Debug)]
pub struct WnLinear {
    /// Direction `v`, `[d_out, d_in]`.
    pub weight_v: Param<Tensor<2>>,
    /// Gain `g`, `[d_out, 1]`.
    pub weight_g: Param<Tensor<2>>,
    /// Bias, `[d_out]`, if any.
    pub bias: Option<Param<Tensor<1>>>,
}

impl WnLinear {
    /// `(B, L, d_in) -> (B, L, d_out)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let w = normalized_weight(&self.weight_v, &self.weight_g);
        let y = x.matmul(w.transpose().unsqueeze_dim::<3>(0));
        match &self.bias {
            Some(b) => y + b.val().unsqueeze_dims::<3>(&[0, 1]),
            None => y,
        }
    }
}

/// Configuration of [`WnScale`].
#[derive(Config, Debug)]
pub struct WnScaleConfig {
    /// Channels `C`.
    pub channels: usize,
}

impl WnScaleConfig {
    /// A scale of 1 on every channel: `v = g = 1`.
    pub fn init(&self, device: &Device) -> WnScale {
        let ones = || Param::from_tensor(Tensor::ones([self.channels, 1, 1], device));
        WnScale {
            weight_v: ones(),
            weight_g: ones(),
        }
    }
}

/// A weight-normalised per-channel scale `y_c = w_c x_c`, `w_c = g_c v_c / |v_c|`.
#[derive(Module, Debug)]
pub struct WnScale {
    /// Direction `v`, `[C, 1, 1]`.
    pub weight_v: Param<Tensor<3>>,
    /// Gain `g`, `[C, 1, 1]`.
    pub weight_g: Param<Tensor<3>>,
}

impl WnScale {
    /// `(B, C, H, W) -> (B, C, H, W)`: `x * w` per channel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let w = normalized_weight(&self.weight_v, &self.weight_g);
        x * w.unsqueeze_dim::<4>(0)
    }
}
