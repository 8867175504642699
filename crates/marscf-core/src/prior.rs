//! The interface between a multi-scale flow and the density of its latents.

use burn::tensor::{Device, Distribution, Tensor};

use crate::layer::sum_per_sample;

/// The density of a multi-scale flow's latents.
///
/// Level `l < L-1` (0-based) models the half split off at that level, `z2`, given the kept
/// half `z1` as `condition`; the top level `L-1` models the last tensor, with no condition.
pub trait Prior {
    /// `ln p(z | condition)` per sample, `(B, C, H, W) -> (B)`.
    fn log_prob(&self, level: usize, z: Tensor<4>, condition: Option<Tensor<4>>) -> Tensor<1>;

    /// A sample of shape `shape` given `condition`, with the noise scaled by `temperature`
    /// (1 is the model; 0 gives the mode).
    fn sample(
        &self,
        level: usize,
        shape: [usize; 4],
        condition: Option<Tensor<4>>,
        temperature: f64,
        device: &Device,
    ) -> Tensor<4>;
}

/// The log-density of `N(mean, exp(logs)²)` at `z`, elementwise:
/// `-(2 logs + (z - mean)² exp(-2 logs) + ln 2π) / 2`.
pub fn gaussian_log_density(z: Tensor<4>, mean: Tensor<4>, logs: Tensor<4>) -> Tensor<4> {
    let ln_2pi = (2.0 * std::f64::consts::PI).ln();
    let scaled = (z - mean).square() * logs.clone().mul_scalar(-2.0).exp();
    (logs.mul_scalar(2.0) + scaled + ln_2pi).mul_scalar(-0.5)
}

/// Independent standard normals at every level (the Glow-style baseline):
/// `ln p(z) = Σ -(z² + ln 2π) / 2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardNormal;

impl Prior for StandardNormal {
    fn log_prob(&self, _level: usize, z: Tensor<4>, _condition: Option<Tensor<4>>) -> Tensor<1> {
        let zeros = z.zeros_like();
        sum_per_sample(gaussian_log_density(z, zeros.clone(), zeros))
    }

    fn sample(
        &self,
        _level: usize,
        shape: [usize; 4],
        _condition: Option<Tensor<4>>,
        temperature: f64,
        device: &Device,
    ) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device).mul_scalar(temperature)
    }
}
