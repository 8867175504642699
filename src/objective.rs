//! The objective of the reference: a discrete log-likelihood in bits per dimension.
//!
//! Pixels quantised to `n` bits and scaled to `[-0.5, 0.5]` (`n = 8`: `k / 255 - 0.5`, see
//! [`marscf_data::quantize_to_unit`]) are dequantised as `x + u / 2^n`, `u ~ U(0, 1)`; the
//! objective starts at `-D ln 2^n` (`D = C H W`, the log-density of the uniform noise over
//! a bin of width `1/2^n`; `-D ln 256` for the reference's 8 bits) and accumulates every
//! log-det and prior log-density. The negative log-likelihood in bits per dimension is
//! `-objective / (D ln 2)`.

use burn::tensor::{Distribution, Tensor};

/// `x + u / 2^bits` with `u ~ U(0, 1)` drawn from the device's RNG: `(B, C, H, W)`.
pub fn dequantize(x: Tensor<4>, bits: u32) -> Tensor<4> {
    let noise = x.random_like(Distribution::Default);
    x + noise.div_scalar(2f64.powi(bits as i32))
}

/// The starting objective `-D ln 2^bits` for a batch of `batch` inputs of `dims`
/// dimensions, `(B)`.
pub fn objective_start(
    batch: usize,
    dims: usize,
    bits: u32,
    device: &burn::tensor::Device,
) -> Tensor<1> {
    Tensor::full([batch], -(dims as f64) * bin_count(bits).ln(), device)
}

/// `2^bits`, the number of values a pixel takes.
fn bin_count(bits: u32) -> f64 {
    2f64.powi(bits as i32)
}

/// `-objective / (D ln 2)`, per sample: `(B) -> (B)`.
pub fn bits_per_dim(objective: Tensor<1>, dims: usize) -> Tensor<1> {
    objective.div_scalar(-(dims as f64) * std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objective_starts_at_minus_d_ln_2_to_the_bits() {
        let device = crate::select_device().expect("a backend is compiled in");
        let start = |bits| objective_start(1, 10, bits, &device).into_scalar::<f32>();
        // 8 bits: today's constant, -D ln 256, bit for bit.
        assert_eq!(start(8), (-(10f64) * 256f64.ln()) as f32);
        assert_eq!(start(5), (-10.0 * 32f64.ln()) as f32);
        // An input with zero log-density otherwise scores exactly `bits` bits/dim.
        for bits in 1..=8u32 {
            let bpd = bits_per_dim(objective_start(1, 10, bits, &device), 10);
            assert!((bpd.into_scalar::<f32>() - bits as f32).abs() < 1e-6);
        }
    }
}
