//! Invertible layers of the mAR-SCF normalizing flow, with exact log-determinants.
//!
//! Every layer implements [`InvertibleLayer`]: `forward` maps `x -> y` and reports
//! `ln |det ∂y/∂x|` per sample, `inverse` maps back. [`FlowState`] carries a batch and its
//! running log-det through a chain of layers (forward adds, inverse subtracts).
//! [`MultiScaleFlow`] arranges [`FlowStep`]s (ActNorm, invertible 1x1 convolution,
//! coupling) over `L` levels with squeezes and splits, and hands each split-off half to a
//! [`Prior`].
//!
//! All tensors are `(B, C, H, W)`, float32, on any Burn [`Device`](burn::tensor::Device).

#![warn(missing_docs)]

pub mod actnorm;
pub mod coupling;
pub mod dropout;
mod error;
pub mod flow_step;
pub mod glow_prior;
pub mod host_linalg;
pub mod inv_conv;
pub mod layer;
pub mod mixture;
pub mod multiscale;
pub mod prior;
pub mod split;
pub mod squeeze;
pub mod weight_norm;
pub mod zero_conv;

pub use actnorm::{ActNorm, ActNormConfig};
pub use coupling::additive::{AdditiveCoupling, AdditiveCouplingConfig};
pub use coupling::affine::{AffineCoupling, AffineCouplingConfig};
pub use coupling::glow_net::{AffineCouplingNet, AffineCouplingNetConfig};
pub use coupling::mixlogcdf::{MixLogCdfCoupling, MixLogCdfCouplingConfig};
pub use coupling::mixlogcdf_net::MixLogCdfConfig;
pub use coupling::{Coupling, CouplingKind};
pub use dropout::{Dropout, DropoutConfig};
pub use error::CoreError;
pub use flow_step::{FlowStep, FlowStepConfig};
pub use glow_prior::{GlowPrior, GlowPriorConfig};
pub use inv_conv::{InvConv1x1, InvConv1x1Config, InvConvKind};
pub use layer::{FlowState, InvertibleLayer, sum_per_sample};
pub use multiscale::{Encoded, FlowEvent, FlowLevel, MultiScaleFlow, MultiScaleFlowConfig};
pub use prior::{Prior, StandardNormal, gaussian_log_density};
pub use split::{TupleFlip, merge, split};
pub use squeeze::{Squeeze, squeeze, unsqueeze};
pub use zero_conv::{ZeroConv2d, ZeroConv2dConfig};
