//! The coupling of a flow step, selectable per model.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::affine_coupling::{AffineCoupling, AffineCouplingConfig};
use crate::layer::InvertibleLayer;

/// Which coupling a flow step uses, with the parameters specific to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CouplingKind {
    /// Glow's affine coupling.
    #[default]
    Affine,
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
        }
    }
}

/// A coupling layer; every variant is an [`InvertibleLayer`].
#[derive(Module, Debug)]
pub enum Coupling {
    /// See [`AffineCoupling`].
    Affine(AffineCoupling),
}

impl Coupling {
    /// Whether the flow step swaps the channel halves after this coupling.
    pub fn flips_after(&self) -> bool {
        match self {
            Self::Affine(_) => false,
        }
    }
}

impl InvertibleLayer for Coupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        match self {
            Self::Affine(c) => c.forward(x),
        }
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        match self {
            Self::Affine(c) => c.inverse(y),
        }
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        match self {
            Self::Affine(c) => Self::Affine(c.initialize(x)),
        }
    }
}
