//! The MixLogCDF coupling of Flow++ as mAR-SCF uses it.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::checks::check_coupling_sizes;
use super::mixlogcdf_net::{MixLogCdfConfig, MixLogCdfNet, MixLogCdfNetConfig, MixLogCdfParams};
use crate::CoreError;
use crate::layer::{InvertibleLayer, sum_per_sample};
use crate::mixture::{LogisticMixture, logit_with_log_det, sigmoid_with_log_det};
use crate::split::{merge, split};

/// Configuration of [`MixLogCdfCoupling`].
#[derive(Config, Debug)]
pub struct MixLogCdfCouplingConfig {
    /// Channels `C` of the coupled tensor (even).
    pub channels: usize,
    /// Hidden width `h` of the conditioning network.
    pub hidden: usize,
    /// Mixture, network and inverse parameters.
    #[config(default = "MixLogCdfConfig::new()")]
    pub options: MixLogCdfConfig,
}

impl MixLogCdfCouplingConfig {
    /// The coupling, its network on `C/2` channels built by [`MixLogCdfNetConfig::init`].
    /// Fails on zero or odd `C`, a zero `h` or `k`, heads that do not divide `h`, or a
    /// dropout probability outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<MixLogCdfCoupling, CoreError> {
        let (c, h, options) = (self.channels, self.hidden, &self.options);
        check_coupling_sizes("MixLogCdfCoupling", c, h)?;
        Ok(MixLogCdfCoupling {
            net: MixLogCdfNetConfig::new(c / 2, h)
                .with_blocks(options.blocks)
                .with_components(options.components)
                .with_heads(options.heads)
                .with_dropout(options.dropout)
                .init(device)?,
            max_bisection_iters: options.max_bisection_iters,
        })
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
    fn mixture(params: &MixLogCdfParams) -> LogisticMixture {
        LogisticMixture::new(params.pi.clone(), params.mu.clone(), params.log_s.clone())
    }
}

impl InvertibleLayer for MixLogCdfCoupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (x_change, x_id) = split(x);
        let params = self.net.forward(x_id.clone());
        let mixture = Self::mixture(&params);
        let densities = mixture.log_densities(x_change);
        let (logit, logit_ldj) = logit_with_log_det(densities.log_cdf);
        let out = (logit + params.b) * params.a.clone().exp();
        let logdet = sum_per_sample(densities.log_pdf + logit_ldj + params.a);
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
