//! Weight-normalised layers (Salimans & Kingma 2016): `w = g v / ||v||`, the norm taken
//! per output unit, over every dimension but the first. Parameter names follow PyTorch's
//! `weight_norm` (`weight_g`, `weight_v`).

use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};
use marscf_kernels::{ConvSpec, conv2d};

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

/// `g` initialised to `||v||`, so that the initial weight is `v`.
fn norm_param<const D: usize>(v: &Param<Tensor<D>>) -> Param<Tensor<D>> {
    Param::from_tensor(unit_norm(v.val()).detach())
}

/// A weight-normalised 2D convolution with "same" zero padding (odd kernels).
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
    /// A `k x k` convolution `c_in -> c_out` with PyTorch's default initialisation.
    pub fn new(c_in: usize, c_out: usize, kernel: usize, device: &Device) -> Self {
        let init = default_init(c_in * kernel * kernel);
        let weight_v = init.init([c_out, c_in, kernel, kernel], device);
        Self {
            weight_g: norm_param(&weight_v),
            weight_v,
            bias: init.init([c_out], device),
        }
    }

    /// `w = g v / ||v||`, `[C_out, C_in, k, k]`.
    pub fn weight(&self) -> Tensor<4> {
        let v = self.weight_v.val();
        v.clone() * (self.weight_g.val() / unit_norm(v))
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

/// A weight-normalised linear map on the last dimension, weight stored `[out, in]` as in
/// PyTorch.
#[derive(Module, Debug)]
pub struct WnLinear {
    /// Direction `v`, `[out, in]`.
    pub weight_v: Param<Tensor<2>>,
    /// Gain `g`, `[out, 1]`.
    pub weight_g: Param<Tensor<2>>,
    /// Bias, `[out]`, if any.
    pub bias: Option<Param<Tensor<1>>>,
}

impl WnLinear {
    /// `d_in -> d_out` with PyTorch's default initialisation.
    pub fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        let init = default_init(d_in);
        let weight_v = init.init([d_out, d_in], device);
        Self {
            weight_g: norm_param(&weight_v),
            weight_v,
            bias: bias.then(|| init.init([d_out], device)),
        }
    }

    /// `(B, L, d_in) -> (B, L, d_out)`: `x w^T + b`, `w = g v / ||v||`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let v = self.weight_v.val();
        let w = v.clone() * (self.weight_g.val() / unit_norm(v));
        let y = x.matmul(w.transpose().unsqueeze_dim::<3>(0));
        match &self.bias {
            Some(b) => y + b.val().unsqueeze_dims::<3>(&[0, 1]),
            None => y,
        }
    }
}

/// A weight-normalised per-channel scale `w_c = g_c v_c / |v_c|` (initially 1), applied as
/// `(B, C, H, W) -> (B, C, H, W)`.
#[derive(Module, Debug)]
pub struct WnScale {
    /// Direction `v`, `[C, 1, 1]`.
    pub weight_v: Param<Tensor<3>>,
    /// Gain `g`, `[C, 1, 1]`.
    pub weight_g: Param<Tensor<3>>,
}

impl WnScale {
    /// A scale of 1 on every one of `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        let ones = || Param::from_tensor(Tensor::ones([channels, 1, 1], device));
        Self {
            weight_v: ones(),
            weight_g: ones(),
        }
    }

    /// `x * w` per channel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let v = self.weight_v.val();
        let w = v.clone() * (self.weight_g.val() / unit_norm(v));
        x * w.unsqueeze_dim::<4>(0)
    }
}
