//! The objective of the reference: a discrete log-likelihood in bits per dimension.
//!
//! Pixels `x` in `[-0.5, 0.5]` are dequantised as `x + u / 256`, `u ~ U(0, 1)`; the
//! objective starts at `-D ln 256` (`D = C H W`, the density of the uniform noise over a
//! bin of width 1/256) and accumulates every log-det and prior log-density. The negative
//! log-likelihood in bits per dimension is `-objective / (D ln 2)`.

use burn::tensor::{Distribution, Tensor};

/// `x + u / 256` with `u ~ U(0, 1)` drawn from the device's RNG: `(B, C, H, W)`.
pub fn dequantize(x: Tensor<4>) -> Tensor<4> {
    let noise = x.random_like(Distribution::Default);
    x + noise.div_scalar(256.0)
}

/// The starting objective `-D ln 256` for a batch of `batch` inputs of `dims` dimensions,
/// `(B)`.
pub fn objective_start(batch: usize, dims: usize, device: &burn::tensor::Device) -> Tensor<1> {
    Tensor::full([batch], -(dims as f64) * 256f64.ln(), device)
}

/// `-objective / (D ln 2)`, per sample: `(B) -> (B)`.
pub fn bits_per_dim(objective: Tensor<1>, dims: usize) -> Tensor<1> {
    objective.div_scalar(-(dims as f64) * std::f64::consts::LN_2)
}
