//! The multi-scale autoregressive (mAR) prior of mAR-SCF.
//!
//! Each level's latent `(B, N, h, w)` is modelled one channel at a time by a stacked
//! convolutional LSTM ([`ConvLstm`]), conditioned (below the top level) on the half the
//! flow kept. [`MarPrior`] implements [`marscf_core::Prior`], so it plugs into a
//! [`marscf_core::MultiScaleFlow`] in place of the standard-normal prior.

#![warn(missing_docs)]

pub mod channel_prior;
pub mod conv_lstm;
pub mod mar_prior;

pub use channel_prior::{ChannelPrior, ChannelPriorConfig, ConditionNet};
pub use conv_lstm::{ConvLstm, ConvLstmCell, ConvLstmConfig, ConvLstmState, ConvLstmSteps};
pub use mar_prior::{MarPrior, MarPriorConfig};
