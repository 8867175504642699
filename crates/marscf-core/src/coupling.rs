//! The coupling of a flow step, selectable per model.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::affine_coupling::{AffineCoupling, AffineCouplingConfig};
use crate::layer::InvertibleLayer;
use crate::mixlogcdf_coupling::{MixLogCdfConfig, MixLogCdfCoupling};

/// Which coupling a flow step uses, with the parameters specific to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CouplingKind {
    /// Glow's affine coupling.
    #[default]
    Affine,
    /// Flow++'s mixture-of-logistics CDF coupling, followed by a tuple flip.
    MixLogCdf(MixLogCdfConfig),
}

impl CouplingKind {
    /// The coupling for a tensor with `channels` channels, its network `hidden` wide.
    pub fn init(
        &self,
        channels: usize,
        hidden: usize,
        device: &Device,
    ) -> Result<Coupling, CoreError> {
        match self {
            Self::Affine => Ok(Coupling::Affine(
                AffineCouplingConfig::new(channels, hidden).init(device)?,
            )),
            Self::MixLogCdf(config) => {
                check_coupling_sizes("MixLogCdfCoupling", channels, hidden)?;
                if config.components == 0 {
                    return Err(CoreError::ZeroSize {
                        what: "MixLogCDF components",
                    });
                }
                if config.heads == 0 || !hidden.is_multiple_of(config.heads) {
                    return Err(CoreError::HeadsMismatch {
                        hidden,
                        heads: config.heads,
                    });
                }
                Ok(Coupling::MixLogCdf(MixLogCdfCoupling::new(
                    channels, hidden, config, device,
                )))
            }
        }
    }
}

/// Checks what every coupling needs: positive, even `channels` and a positive `hidden`.
pub(crate) fn check_coupling_sizes(
    layer: &'static str,
    channels: usize,
    hidden: usize,
) -> Result<(), CoreError> {
    if channels == 0 {
        return Err(CoreError::ZeroSize {
            what: "coupling channels",
        });
    }
    if hidden == 0 {
        return Err(CoreError::ZeroSize {
            what: "coupling hidden width",
        });
    }
    if !channels.is_multiple_of(2) {
        return Err(CoreError::OddChannels { layer, channels });
    }
    Ok(())
}

/// A coupling layer; every variant is an [`InvertibleLayer`].
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Coupling {
    /// See [`AffineCoupling`].
    Affine(AffineCoupling),
    /// See [`MixLogCdfCoupling`].
    MixLogCdf(MixLogCdfCoupling),
}

impl Coupling {
    /// Whether the flow step swaps the channel halves after this coupling.
    pub fn flips_after(&self) -> bool {
        match self {
            Self::Affine(_) => false,
            Self::MixLogCdf(_) => true,
        }
    }
}

impl InvertibleLayer for Coupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        match self {
            Self::Affine(c) => c.forward(x),
            Self::MixLogCdf(c) => c.forward(x),
        }
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        match self {
            Self::Affine(c) => c.inverse(y),
            Self::MixLogCdf(c) => c.inverse(y),
        }
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        match self {
            Self::Affine(c) => Self::Affine(c.initialize(x)),
            Self::MixLogCdf(c) => Self::MixLogCdf(c.initialize(x)),
        }
    }
}
