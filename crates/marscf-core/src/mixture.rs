//! The mixture of logistics of the MixLogCDF coupling (Flow++): log-pdf, log-cdf, the
//! clamped logit, and the inverse CDF by bisection.
//!
//! A mixture over `k` components is held as `(B, k, C, H, W)` tensors and evaluated at
//! `x` of shape `(B, C, H, W)`; the log-pdf and log-cdf reduce over components with a
//! log-sum-exp (both at once: [`marscf_kernels::mixture_log_densities`]), the bisection
//! (which only compares the CDF with a target) with a plain sum.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, sigmoid, softplus};
use marscf_kernels::{
    LogMixture, MixtureCdf, MixtureLogDensities, bisect_mixture, mixture_log_densities,
};

/// The smallest value the reference lets into a logarithm (`safe_log`).
pub const LOG_FLOOR: f64 = 1e-22;

/// `ln(max(x, 1e-22))`.
pub fn safe_log<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp_min(LOG_FLOOR).log()
}

/// A mixture of `k` logistics per element: the kernels' [`LogMixture`] (normalised
/// log-weights, locations, log-scales, each `(B, k, C, H, W)`) with what the coupling does
/// with it.
#[derive(Debug, Clone)]
pub struct LogisticMixture(pub LogMixture);

impl LogisticMixture {
    /// From unnormalised weight logits `pi` (`(B, k, C, H, W)`), locations and log-scales.
    pub fn new(pi: Tensor<5>, mu: Tensor<5>, log_s: Tensor<5>) -> Self {
        Self(LogMixture {
            log_weights: log_softmax(pi, 1),
            mu,
            log_s,
        })
    }

    /// The log-density and log-CDF at `x` `(B, C, H, W)`, both from one evaluation of
    /// the components ([`mixture_log_densities`]).
    pub fn log_densities(&self, x: Tensor<4>) -> MixtureLogDensities {
        mixture_log_densities(&self.0, x)
    }

    /// `ln Σ_j π_j logistic_pdf(x; mu_j, s_j)`, `(B, C, H, W)`, with
    /// `ln logistic_pdf = z - ln s - 2 softplus(z)`, `z = (x - mu) / s`.
    pub fn log_pdf(&self, x: Tensor<4>) -> Tensor<4> {
        self.log_densities(x).log_pdf
    }

    /// `ln Σ_j π_j σ((x - mu_j) / s_j)`, `(B, C, H, W)`.
    pub fn log_cdf(&self, x: Tensor<4>) -> Tensor<4> {
        self.log_densities(x).log_cdf
    }

    /// `x` with `cdf(x) = y` for `y` in `(0, 1)`, `(B, C, H, W)`, by bisection as the
    /// reference runs it: start at 0 within `[min_j mu_j - 20 Σ s, max_j mu_j + 20 Σ s]`
    /// (`Σ s` over components), halve towards the side the CDF says, until no element moves
    /// by more than `tolerance` or `max_iters` is reached. Convergence is checked every
    /// 8 iterations only ([`bisect_mixture`]; one host read each off Flex): once no
    /// element moves, every later iteration is the identity, so the result is the
    /// reference's. Where the CDF is flat the result is a point of the flat stretch, which
    /// has the same CDF.
    ///
    /// Each iteration evaluates the CDF directly, `Σ_j π_j σ((x - mu_j) / s_j)` with `π`
    /// and `1/s` computed once: one transcendental per component instead of the
    /// log-space form's three. The reference compares `exp(log_cdf(x))` with `y`; the two
    /// differ by rounding only, so a comparison can change only where `x` is already
    /// within a few ulps of the root.
    pub fn inverse_cdf(&self, y: Tensor<4>, max_iters: usize, tolerance: f64) -> Tensor<4> {
        let LogMixture {
            log_weights,
            mu,
            log_s,
        } = &self.0;
        let [b, _, c, h, w] = mu.dims();
        let spread = log_s.clone().exp().sum_dim(1).mul_scalar(20.0);
        let lower = (mu.clone() - spread.clone())
            .min_dim(1)
            .reshape([b, c, h, w]);
        let upper = (mu.clone() + spread).max_dim(1).reshape([b, c, h, w]);
        let cdf = MixtureCdf {
            weights: log_weights.clone().exp(),
            mu: mu.clone(),
            inv_scale: log_s.clone().neg().exp(),
        };
        bisect_mixture(&cdf, y, [lower, upper], max_iters, tolerance)
    }
}

/// The logit `ln(y / (1 - y))` of `y = exp(log_y)` and its log-derivative
/// `-ln y - ln(1 - y)`, each `(B, C, H, W)`, with the reference's clamps: above
/// `y = 1/2` as the reference computes them, `-ln(max(1/y - 1, 1e-22))` and
/// `-ln(max(y, 1e-22)) - ln(max(1 - y, 1e-22))` (so they saturate at about 50.7 as `y`
/// rounds to 1); below, from `log_y` directly (`log_y - ln(1 - y)`), which agrees with the
/// reference where both are finite and stays finite where `y` underflows.
pub fn logit_with_log_det(log_y: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let y = log_y.clone().exp();
    let log_one_minus_y = safe_log(y.clone().neg() + 1.0);
    let upper = log_y.clone().greater_elem(-std::f64::consts::LN_2);
    let logit_upper = safe_log(y.clone().recip() - 1.0).neg();
    let logit_lower = log_y.clone() - log_one_minus_y.clone();
    let ldj_upper = safe_log(y).neg() - log_one_minus_y.clone();
    let ldj_lower = log_y.neg() - log_one_minus_y;
    (
        logit_lower.mask_where(upper.clone(), logit_upper),
        ldj_lower.mask_where(upper, ldj_upper),
    )
}

/// `sigmoid(v)` and the logit's log-derivative at it, `softplus(v) + softplus(-v)`
/// (the inverse direction of [`logit_with_log_det`]).
pub fn sigmoid_with_log_det(v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let ldj = softplus(v.clone(), 1.0) + softplus(v.clone().neg(), 1.0);
    (sigmoid(v), ldj)
}
