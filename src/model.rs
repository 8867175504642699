//! The whole mAR-SCF model: a multi-scale flow and its prior, with the reference's
//! dequantised objective in bits per dimension.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf_core::{
    Encoded, FlowEvent, FlowState, GlowPrior, GlowPriorConfig, MultiScaleFlow,
    MultiScaleFlowConfig, Prior, StandardNormal,
};
use marscf_data::BIT_DEPTHS;
use marscf_prior::{MarPrior, MarPriorConfig};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::objective::{bits_per_dim, objective_start};

/// The density of the latents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriorKind {
    /// The multi-scale autoregressive ConvLSTM prior (mAR-SCF).
    Mar {
        /// Width of the embeddings and LSTM states.
        hidden: usize,
        /// Stacked LSTM layers per level.
        lstm_layers: usize,
    },
    /// Independent standard normals: a Glow-style baseline.
    StandardNormal,
    /// Glow's learned prior: each split-off half `N(mu, sigma)` from a zero-initialised
    /// convolution of the kept half, the top latent's `mu`, `sigma` learned per position
    /// (see [`GlowPrior`]).
    Glow,
}

impl PriorKind {
    /// Every prior, the mAR prior at the reference's size.
    pub fn all() -> [Self; 3] {
        [Self::default(), Self::StandardNormal, Self::Glow]
    }

    /// The prior's name on the command line: `mar`, `standard-normal`, `glow`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mar { .. } => "mar",
            Self::StandardNormal => "standard-normal",
            Self::Glow => "glow",
        }
    }
}

impl std::fmt::Display for PriorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PriorKind {
    type Err = ModelError;

    /// The prior named `name` ([`PriorKind::name`]), the mAR prior at the reference's size.
    fn from_str(name: &str) -> Result<Self, ModelError> {
        Self::all()
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| ModelError::UnknownPrior {
                name: name.to_string(),
            })
    }
}

impl Default for PriorKind {
    fn default() -> Self {
        Self::Mar {
            hidden: 32,
            lstm_layers: 3,
        }
    }
}

/// Configuration of [`MarScf`]; saved as JSON beside every checkpoint.
///
/// Written by hand rather than with `#[derive(Config)]`: the derived deserializer has no
/// per-field defaults, and `bits` must read as 8 from JSON written before it existed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarScfConfig {
    /// The flow: image shape, levels `L`, steps `K`, hidden width `C`, coupling.
    pub flow: MultiScaleFlowConfig,
    /// The prior.
    pub prior: PriorKind,
    /// Bits per pixel value of the data it models, `1..=8`: pixels take `2^bits` values,
    /// the dequantisation noise is `U(0, 1/2^bits)` and the objective starts at
    /// `-D ln 2^bits` (see [`crate::objective`]). 8, the reference's, unless recorded.
    #[serde(default = "default_bits")]
    pub bits: u32,
}

fn default_bits() -> u32 {
    8
}

impl burn::config::Config for MarScfConfig {}

impl std::fmt::Display for MarScfConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&burn::config::config_to_json(self))
    }
}

impl MarScfConfig {
    /// The model of `flow` with the mAR prior ([`PriorKind::default`]) on 8-bit data.
    pub fn new(flow: MultiScaleFlowConfig) -> Self {
        Self {
            flow,
            prior: PriorKind::default(),
            bits: default_bits(),
        }
    }

    /// With the prior `prior`.
    pub fn with_prior(self, prior: PriorKind) -> Self {
        Self { prior, ..self }
    }

    /// For data of `bits` bits per value.
    pub fn with_bits(self, bits: u32) -> Self {
        Self { bits, ..self }
    }

    /// Checks the flow ([`MultiScaleFlowConfig::validate`]) and the bit depth (`1..=8`).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.flow.validate()?;
        if !BIT_DEPTHS.contains(&self.bits) {
            return Err(ModelError::BitDepth { bits: self.bits });
        }
        Ok(())
    }

    /// The model on `device` (ActNorms uninitialised: call [`MarScf::initialize`]).
    pub fn init(&self, device: &Device) -> Result<MarScf, ModelError> {
        self.validate()?;
        let flow = self.flow.init(device)?;
        let (mut prior, mut glow_prior) = (None, None);
        match self.prior {
            PriorKind::Mar {
                hidden,
                lstm_layers,
            } => {
                prior = Some(
                    MarPriorConfig::for_flow(&self.flow)
                        .with_hidden(hidden)
                        .with_lstm_layers(lstm_layers)
                        .init(device),
                )
            }
            PriorKind::Glow => {
                glow_prior = Some(GlowPriorConfig::for_flow(&self.flow).init(device)?)
            }
            PriorKind::StandardNormal => {}
        }
        Ok(MarScf {
            flow,
            prior,
            glow_prior,
            config: self.clone(),
        })
    }

    /// Dimensions `D = C H W` of one image.
    pub fn dims_per_sample(&self) -> usize {
        self.flow.image.iter().product()
    }
}

/// mAR-SCF: `x -> (z_1, ..., z_L)` through a [`MultiScaleFlow`], the latents scored by a
/// [`MarPrior`] (or Glow's learned prior, or standard normals).
#[derive(Module, Debug)]
pub struct MarScf {
    /// The flow.
    pub flow: MultiScaleFlow,
    /// The mAR prior; `None` for the other priors. (Private, like `glow_prior`: only
    /// [`MarScfConfig::init`] sets them, so that at most one is there.)
    prior: Option<MarPrior>,
    /// Glow's learned prior; `None` for the other priors. (A field of its own, so that the
    /// mAR prior's parameters keep the names checkpoints know them by.)
    glow_prior: Option<GlowPrior>,
    /// The configuration it was built from.
    #[module(skip)]
    pub config: MarScfConfig,
}

/// What [`MarScf::forward`] computes for a batch.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `-D ln 2^bits + Σ log-dets + Σ prior log-densities`, `(B)`.
    pub objective: Tensor<1>,
    /// `-objective / (D ln 2)`, `(B)`.
    pub bits_per_dim: Tensor<1>,
    /// The latents and each level's prior term.
    pub encoded: Encoded,
}

impl MarScf {
    /// The prior its configuration names: [`MarScfConfig::init`] builds exactly one of the
    /// two learned priors, or neither for standard normals, and nothing else can set them.
    fn prior(&self) -> &dyn Prior {
        match (&self.prior, &self.glow_prior) {
            (Some(prior), _) => prior,
            (None, Some(prior)) => prior,
            (None, None) => &StandardNormal,
        }
    }

    /// Data-dependent initialisation (every ActNorm) from a dequantised batch
    /// `(B, C, H, W)`; an initialised model is returned unchanged.
    pub fn initialize(self, x: Tensor<4>) -> Result<Self, ModelError> {
        Ok(Self {
            flow: self.flow.initialize(x)?,
            ..self
        })
    }

    /// The objective and bits/dim of a dequantised batch `x` (pixels in `[-0.5, 0.5]`
    /// plus `U(0, 1/2^bits)` noise, `bits` the configuration's), `(B, C, H, W)`.
    pub fn forward(&self, x: Tensor<4>) -> Result<ModelOutput, ModelError> {
        self.forward_traced(x, |_, _| {})
    }

    /// [`forward`](Self::forward), reporting the state after every squeeze, step and split
    /// (see [`MultiScaleFlow::forward_traced`]).
    pub fn forward_traced(
        &self,
        x: Tensor<4>,
        trace: impl FnMut(FlowEvent, &FlowState),
    ) -> Result<ModelOutput, ModelError> {
        let dims = self.config.dims_per_sample();
        let start = objective_start(x.dims()[0], dims, self.config.bits, &x.device());
        let encoded = self.flow.forward_traced(x, start, self.prior(), trace)?;
        Ok(ModelOutput {
            bits_per_dim: bits_per_dim(encoded.objective.clone(), dims),
            objective: encoded.objective.clone(),
            encoded,
        })
    }

    /// The latents of `x`, one per level (see [`Encoded::latents`]).
    pub fn encode(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>, ModelError> {
        Ok(self.forward(x)?.encoded.latents)
    }

    /// The images of `latents`: the exact inverse of [`encode`](Self::encode).
    pub fn decode(&self, latents: Vec<Tensor<4>>) -> Result<Tensor<4>, ModelError> {
        Ok(self.flow.decode(latents)?)
    }

    /// `max |decode(encode(x)) - x|` over a batch `(B, C, H, W)`: how exactly the flow
    /// inverts on these inputs (float32 rounding alone leaves about `1e-6`).
    pub fn reconstruction_error(&self, x: Tensor<4>) -> Result<f64, ModelError> {
        let back = self.decode(self.encode(x.clone())?)?;
        Ok((back - x).abs().max().into_scalar::<f32>() as f64)
    }

    /// The images on the straight line between the latents of `a` and `b` (each
    /// `(1, C, H, W)`): `decode((1 - t) z(a) + t z(b))` at `t = i / steps`, `i = 0..=steps`,
    /// level by level, `(steps + 1, C, H, W)`; the first and last are `a` and `b` again.
    pub fn interpolate(
        &self,
        a: Tensor<4>,
        b: Tensor<4>,
        steps: usize,
    ) -> Result<Tensor<4>, ModelError> {
        let (za, zb) = (self.encode(a)?, self.encode(b)?);
        let steps = steps.max(1);
        let latents = za
            .into_iter()
            .zip(zb)
            .map(|(za, zb)| {
                let points = (0..=steps).map(|i| {
                    let t = i as f64 / steps as f64;
                    za.clone().mul_scalar(1.0 - t) + zb.clone().mul_scalar(t)
                });
                Tensor::cat(points.collect(), 0)
            })
            .collect();
        self.decode(latents)
    }

    /// `n` samples `(n, C, H, W)`, the prior's noise scaled by `temperature`. Runs without
    /// autodiff whatever the model's device. Fails when a flow step's 1x1 convolution
    /// cannot be inverted (see [`marscf_core::MultiScaleFlow::check_invertible`]).
    pub fn sample(&self, n: usize, temperature: f64) -> Result<Tensor<4>, ModelError> {
        let model = self.valid();
        let device = model
            .devices()
            .into_iter()
            .next()
            .expect("a model has parameters on a device");
        Ok(model.flow.sample(model.prior(), n, temperature, &device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_prior_reads_back_from_its_name() {
        for kind in PriorKind::all() {
            assert_eq!(kind.to_string().parse::<PriorKind>().unwrap(), kind);
        }
        let unknown = "gaussian".parse::<PriorKind>().unwrap_err();
        assert!(matches!(&unknown, ModelError::UnknownPrior { name } if name == "gaussian"));
        for kind in PriorKind::all() {
            assert!(unknown.to_string().contains(kind.name()), "{unknown}");
        }
    }

    #[test]
    fn configurations_saved_before_bit_depths_read_as_8_bits() {
        let saved = r#"{"flow": {"image": [1, 28, 28], "levels": 2, "steps": 1, "hidden": 8,
                        "coupling": {"kind": "affine"}, "inv_conv": "Lu"},
                        "prior": {"kind": "mar", "hidden": 8, "lstm_layers": 1}}"#;
        let config: MarScfConfig = serde_json::from_str(saved).unwrap();
        assert_eq!(config.bits, 8);
        let written = serde_json::to_value(config.with_bits(5)).unwrap();
        assert_eq!(written["bits"], 5);
        let back: MarScfConfig = serde_json::from_value(written).unwrap();
        assert_eq!(back.bits, 5);
        // The prior is still required, as before.
        let without_prior = r#"{"flow": {"image": [1, 28, 28], "levels": 2, "steps": 1,
                                "hidden": 8, "coupling": {"kind": "affine"}, "inv_conv": "Lu"}}"#;
        assert!(serde_json::from_str::<MarScfConfig>(without_prior).is_err());
        let glow: PriorKind = serde_json::from_str(r#"{"kind": "glow"}"#).unwrap();
        assert_eq!(glow, PriorKind::Glow);
    }

    #[test]
    fn bit_depths_outside_1_to_8_are_errors() {
        let flow = MultiScaleFlowConfig::new([1, 8, 8], 2, 1, 4);
        for bits in [0, 9] {
            let config = MarScfConfig::new(flow.clone()).with_bits(bits);
            assert!(matches!(
                config.init(&crate::select_device().expect("a backend is compiled in")),
                Err(ModelError::BitDepth { bits: b }) if b == bits
            ));
        }
    }
}
