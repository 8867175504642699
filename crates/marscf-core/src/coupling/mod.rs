//! The coupling of a flow step, selectable per model: [`CouplingKind`] names it and
//! carries its parameters, [`Coupling`] is the layer.
//!
//! A new coupling is a new file here (its config, its layer, `InvertibleLayer` for it)
//! and a variant of [`CouplingKind`] and [`Coupling`] in this one: the compiler then points
//! at the matches to extend, all in this file; add it to [`CouplingKind::all`] too (a test
//! checks that the error for an unknown name lists every coupling in it).

pub mod additive;
pub mod affine;
mod checks;
pub mod glow_net;
pub mod mixlogcdf;
pub mod mixlogcdf_net;

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::layer::InvertibleLayer;
use additive::{AdditiveCoupling, AdditiveCouplingConfig};
use affine::{AffineCoupling, AffineCouplingConfig};
use mixlogcdf::{MixLogCdfCoupling, MixLogCdfCouplingConfig};
use mixlogcdf_net::MixLogCdfConfig;

/// Which coupling a flow step uses, with the parameters specific to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CouplingKind {
    /// Glow's affine coupling.
    #[default]
    Affine,
    /// Flow++'s mixture-of-logistics CDF coupling, followed by a tuple flip.
    MixLogCdf(MixLogCdfConfig),
    /// NICE's additive coupling (Glow's cheaper option): `y2 = x2 + NN(x1)`, log-det 0.
    Additive,
}

impl CouplingKind {
    /// Every coupling, MixLogCDF with the reference's parameters.
    pub fn all() -> [Self; 3] {
        [
            Self::Affine,
            Self::MixLogCdf(MixLogCdfConfig::new()),
            Self::Additive,
        ]
    }

    /// The coupling's name: on the command line, in checkpoint names and JSON
    /// (`affine`, `mixlogcdf`, `additive`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Affine => "affine",
            Self::MixLogCdf(_) => "mixlogcdf",
            Self::Additive => "additive",
        }
    }

    /// The coupling for a tensor with `channels` channels, its network `hidden` wide
    /// ([`AffineCouplingConfig::init`], [`MixLogCdfCouplingConfig::init`] or
    /// [`AdditiveCouplingConfig::init`], which validate).
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
            Self::MixLogCdf(options) => Ok(Coupling::MixLogCdf(
                MixLogCdfCouplingConfig::new(channels, hidden)
                    .with_options(*options)
                    .init(device)?,
            )),
            Self::Additive => Ok(Coupling::Additive(
                AdditiveCouplingConfig::new(channels, hidden).init(device)?,
            )),
        }
    }
}

impl fmt::Display for CouplingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CouplingKind {
    type Err = CoreError;

    /// The coupling named `name` ([`CouplingKind::name`]), MixLogCDF with the reference's
    /// parameters.
    fn from_str(name: &str) -> Result<Self, CoreError> {
        Self::all()
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| CoreError::UnknownCoupling {
                name: name.to_string(),
            })
    }
}

/// A coupling layer; every variant is an [`InvertibleLayer`].
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Coupling {
    /// See [`AffineCoupling`].
    Affine(AffineCoupling),
    /// See [`MixLogCdfCoupling`].
    MixLogCdf(MixLogCdfCoupling),
    /// See [`AdditiveCoupling`].
    Additive(AdditiveCoupling),
}

impl Coupling {
    /// Whether the flow step swaps the channel halves after this coupling.
    pub fn flips_after(&self) -> bool {
        match self {
            Self::Affine(_) | Self::Additive(_) => false,
            Self::MixLogCdf(_) => true,
        }
    }
}

impl InvertibleLayer for Coupling {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        match self {
            Self::Affine(c) => c.forward(x),
            Self::MixLogCdf(c) => c.forward(x),
            Self::Additive(c) => c.forward(x),
        }
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        match self {
            Self::Affine(c) => c.inverse(y),
            Self::MixLogCdf(c) => c.inverse(y),
            Self::Additive(c) => c.inverse(y),
        }
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        match self {
            Self::Affine(c) => Self::Affine(c.initialize(x)),
            Self::MixLogCdf(c) => Self::MixLogCdf(c.initialize(x)),
            Self::Additive(c) => Self::Additive(c.initialize(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MultiScaleFlowConfig;

    /// A flow configuration as checkpoints of earlier versions saved it (the serde-derived
    /// `MixLogCdfConfig`), with every MixLogCDF field away from its default.
    const SAVED: &str = r#"{
        "image": [3, 32, 32], "levels": 3, "steps": 4, "hidden": 64,
        "coupling": {"kind": "mixlogcdf", "components": 4, "blocks": 2, "heads": 2,
                     "dropout": 0.1, "max_bisection_iters": 50},
        "inv_conv": "Lu"
    }"#;

    #[test]
    fn saved_mixlogcdf_configurations_read_back_unchanged() {
        let config: MultiScaleFlowConfig = serde_json::from_str(SAVED).unwrap();
        let expected = MixLogCdfConfig {
            components: 4,
            blocks: 2,
            heads: 2,
            dropout: 0.1,
            max_bisection_iters: 50,
        };
        assert_eq!(config.coupling, CouplingKind::MixLogCdf(expected));
        let written: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        let saved: serde_json::Value = serde_json::from_str(SAVED).unwrap();
        assert_eq!(written, saved, "the written form is the saved one");

        let defaults = r#"{"kind": "mixlogcdf", "components": 32, "blocks": 10, "heads": 4,
                           "dropout": 0.2, "max_bisection_iters": 100}"#;
        let kind: CouplingKind = serde_json::from_str(defaults).unwrap();
        assert_eq!(kind, CouplingKind::MixLogCdf(MixLogCdfConfig::default()));
        // As before, every field must be present: a partial configuration is an error,
        // not silently completed.
        let partial = r#"{"kind": "mixlogcdf", "components": 32}"#;
        assert!(serde_json::from_str::<CouplingKind>(partial).is_err());
    }

    #[test]
    fn each_kind_reads_back_from_its_name() {
        for kind in CouplingKind::all() {
            assert_eq!(kind.to_string().parse::<CouplingKind>().unwrap(), kind);
        }
        let unknown = "glow".parse::<CouplingKind>().unwrap_err();
        assert!(matches!(&unknown, CoreError::UnknownCoupling { name } if name == "glow"));
        for kind in CouplingKind::all() {
            assert!(unknown.to_string().contains(kind.name()), "{unknown}");
        }
    }

    #[test]
    fn each_kind_has_its_written_form() {
        for (kind, json) in [
            (CouplingKind::Affine, r#"{"kind":"affine"}"#),
            (CouplingKind::Additive, r#"{"kind":"additive"}"#),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), json);
            assert_eq!(serde_json::from_str::<CouplingKind>(json).unwrap(), kind);
        }
    }
}
