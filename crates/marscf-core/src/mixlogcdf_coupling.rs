//! The MixLogCDF coupling of Flow++ as mAR-SCF uses it.

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::layer::{InvertibleLayer, sum_per_sample};
use crate::mixlogcdf_net::{MixLogCdfNet, MixLogCdfParams};
use crate::mixture::{LogisticMixture, logit_with_log_det, sigmoid_with_log_det};
use crate::split::{merge, split};

/// Parameters of the MixLogCDF coupling beyond the hidden width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MixLogCdfConfig {
    /// Mixture components `k`.
    pub components: usize,
    /// Residual blocks of the network.
    pub blocks: usize,
    /// Attention heads.
    pub heads: usize,
    /// Dropout probability (channel dropout and attention weights), training only.
    pub dropout: f64,
    /// Bisection iterations of the inverse at most.
    pub max_bisection_iters: usize,
}

impl Default for MixLogCdfConfig {
    /// The reference's: 32 components, 10 blocks, 4 heads, dropout 0.2, 100 iterations.
    fn default() -> Self {
        Self {
            components: 32,
            blocks: 10,
            heads: 4,
            dropout: 0.2,
            max_bisection_iters: 100,
        }
    }
}

/// The bisection's stopping tolerance (largest change of any element), the reference's.
pub const BISECTION_TOLERANCE: f64 = 1e-10;

/// The reference's clamp of the sigmoid before the inverse CDF.
pub const INVERSE_CLAMP: f64 = 1e-5;

/// MixLogCDF coupling: `x = (x_change, x_id)` halves of the channels,
/// `(a, b, π, μ, s) = NN(x_id)`, `y = logit(F(x_change))`, `F` the mixture-of-logistics
/// CDF, `out = (y + b) exp(a)`; output `(out, x_id)`.
/// `ln |det| = Σ ln f(x_change) + ln |logit'(F)| + a` over `(C/2, H, W)`.
#[derive(Module, Debug)]
pub struct MixLogCdfCoupling {
    /// The conditioning network.
    pub net: MixLogCdfNet,
    /// Bisection iterations of the inverse at most.
    pub max_bisection_iters: usize,
}

impl MixLogCdfCoupling {
    /// A coupling on `channels` channels with a network `hidden` wide.
    pub fn new(
        channels: usize,
        hidden: usize,
        config: &MixLogCdfConfig,
        device: &burn::tensor::Device,
    ) -> Self {
        Self {
            net: MixLogCdfNet::new(
                channels / 2,
                hidden,
                config.blocks,
                config.components,
                config.heads,
                config.dropout,
                device,
            ),
            max_bisection_iters: config.max_bisection_iters,
        }
    }

    fn mixture(params: &MixLogCdfParams) -> LogisticMixture {
        LogisticMixture::new(params.pi.clone(), params.mu.clone(), params.log_s.clone())
    }
}

impl InvertibleLayer for MixLogCdfCoupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (x_change, x_id) = split(x);
        let params = self.net.forward(x_id.clone());
        let mixture = Self::mixture(&params);
        let (logit, logit_ldj) = logit_with_log_det(mixture.log_cdf(x_change.clone()));
        let out = (logit + params.b) * params.a.clone().exp();
        let logdet = sum_per_sample(mixture.log_pdf(x_change) + logit_ldj + params.a);
        (merge(out, x_id), logdet)
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (out, x_id) = split(y);
        let params = self.net.forward(x_id.clone());
        let mixture = Self::mixture(&params);
        let (cdf, logit_ldj) = sigmoid_with_log_det(out * params.a.clone().neg().exp() - params.b);
        let cdf = cdf.clamp(INVERSE_CLAMP, 1.0 - INVERSE_CLAMP);
        let x_change = mixture.inverse_cdf(cdf, self.max_bisection_iters, BISECTION_TOLERANCE);
        let logdet = sum_per_sample(mixture.log_pdf(x_change.clone()) + logit_ldj + params.a);
        (merge(x_change, x_id), logdet)
    }
}
