//! The log-density and log-CDF of a mixture of logistics, the two terms of the MixLogCDF
//! coupling's forward pass.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, softplus};

/// A mixture of `k` logistics per element of `(B, C, H, W)` in log form.
#[derive(Debug, Clone)]
pub struct LogMixture {
    /// Normalised log-weights `ln π_j` (log-sum-exp 0 over `j`), `(B, k, C, H, W)`.
    pub log_weights: Tensor<5>,
    /// Locations `μ_j`, `(B, k, C, H, W)`.
    pub mu: Tensor<5>,
    /// Log-scales `ln s_j`, `(B, k, C, H, W)`.
    pub log_s: Tensor<5>,
}

/// The mixture's log-density and log-CDF at `x`, each `(B, C, H, W)`.
#[derive(Debug, Clone)]
pub struct MixtureLogDensities {
    /// `ln Σ_j π_j p_j(x)`, `ln p_j = z_j - ln s_j - 2 softplus(z_j)`.
    pub log_pdf: Tensor<4>,
    /// `ln Σ_j π_j σ(z_j)`, `ln σ(z) = -softplus(-z)`.
    pub log_cdf: Tensor<4>,
}

/// The log-density and log-CDF of `mixture` at `x` `(B, C, H, W)`, with
/// `z_j = (x - μ_j) e^{-ln s_j}` and each sum over components a log-sum-exp.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/mixture.rs`);
/// elsewhere, [`mixture_log_densities_portable`].
pub fn mixture_log_densities(mixture: &LogMixture, x: Tensor<4>) -> MixtureLogDensities {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) {
        return crate::flex::mixture_log_densities(mixture, x);
    }
    mixture_log_densities_portable(mixture, x)
}

/// The portable default of [`mixture_log_densities`], in standard tensor operations.
pub fn mixture_log_densities_portable(mixture: &LogMixture, x: Tensor<4>) -> MixtureLogDensities {
    if x.shape().num_elements() == 0 {
        // Nothing to evaluate (and Burn's reshapes read a 0 as "keep this dimension").
        return MixtureLogDensities {
            log_pdf: x.clone(),
            log_cdf: x,
        };
    }
    let [b, _, c, h, w] = mixture.mu.dims();
    let z = (x.unsqueeze_dim::<5>(1) - mixture.mu.clone()) * mixture.log_s.clone().neg().exp();
    let log_pdf = z.clone() - mixture.log_s.clone() - softplus(z.clone(), 1.0).mul_scalar(2.0);
    let log_cdf = log_sigmoid(z);
    let combine =
        |terms: Tensor<5>| logsumexp(mixture.log_weights.clone() + terms, 1).reshape([b, c, h, w]);
    MixtureLogDensities {
        log_pdf: combine(log_pdf),
        log_cdf: combine(log_cdf),
    }
}

/// `ln Σ exp(x)` along `dim`, keeping it, shifted by the (constant) maximum.
fn logsumexp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let max = x.clone().max_dim(dim).detach();
    (x - max.clone()).exp().sum_dim(dim).log() + max
}
