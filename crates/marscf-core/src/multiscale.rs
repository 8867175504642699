//! The multi-scale flow: squeeze, K steps and a split per level, the split-off halves
//! handed to a [`Prior`].

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::CoreError;
use crate::coupling::CouplingKind;
use crate::flow_step::{FlowStep, FlowStepConfig};
use crate::inv_conv::InvConvKind;
use crate::layer::{FlowState, InvertibleLayer};
use crate::prior::Prior;
use crate::split::{merge, split};
use crate::squeeze::{Squeeze, unsqueeze};

/// Configuration of [`MultiScaleFlow`].
#[derive(Config, Debug)]
pub struct MultiScaleFlowConfig {
    /// Input shape `[C, H, W]`; `H` and `W` must divide by `2^levels`.
    pub image: [usize; 3],
    /// Number of levels `L`.
    pub levels: usize,
    /// Flow steps per level `K`.
    pub steps: usize,
    /// Hidden width `C` of the coupling networks.
    pub hidden: usize,
    /// The coupling of every step.
    #[config(default = "CouplingKind::Affine")]
    pub coupling: CouplingKind,
    /// Parametrisation of the 1x1 convolutions.
    #[config(default = "InvConvKind::Lu")]
    pub inv_conv: InvConvKind,
}

impl MultiScaleFlowConfig {
    /// Checks the configuration: positive sizes, sides divisible by `2^L`.
    pub fn validate(&self) -> Result<(), CoreError> {
        let [c, h, w] = self.image;
        for (value, what) in [
            (c, "image channels"),
            (h, "image height"),
            (w, "image width"),
            (self.levels, "levels L"),
            (self.steps, "steps per level K"),
            (self.hidden, "hidden width C"),
        ] {
            if value == 0 {
                return Err(CoreError::ZeroSize { what });
            }
        }
        let factor = 1usize
            .checked_shl(self.levels as u32)
            .filter(|f| *f <= h.min(w))
            .ok_or(CoreError::NotDivisible {
                height: h,
                width: w,
                levels: self.levels,
            })?;
        if h % factor != 0 || w % factor != 0 {
            return Err(CoreError::NotDivisible {
                height: h,
                width: w,
                levels: self.levels,
            });
        }
        Ok(())
    }

    /// The tensor shape `[C, H, W]` that the steps of each level work on.
    pub fn level_shapes(&self) -> Vec<[usize; 3]> {
        let [mut c, mut h, mut w] = self.image;
        (0..self.levels)
            .map(|level| {
                if level > 0 {
                    c /= 2; // the split before this level kept half
                }
                (c, h, w) = (4 * c, h / 2, w / 2);
                [c, h, w]
            })
            .collect()
    }

    /// The shape `[C, H, W]` of each level's latent: the split-off half for `l < L-1`, the
    /// whole last tensor for the top level.
    pub fn latent_shapes(&self) -> Vec<[usize; 3]> {
        let shapes = self.level_shapes();
        let top = shapes.len() - 1;
        shapes
            .into_iter()
            .enumerate()
            .map(|(level, [c, h, w])| {
                if level < top {
                    [c / 2, h, w]
                } else {
                    [c, h, w]
                }
            })
            .collect()
    }

    /// A new flow (ActNorms uninitialised).
    pub fn init(&self, device: &Device) -> Result<MultiScaleFlow, CoreError> {
        self.validate()?;
        let levels = self
            .level_shapes()
            .into_iter()
            .map(|[c, _, _]| {
                let step = FlowStepConfig::new(c, self.hidden)
                    .with_coupling(self.coupling.clone())
                    .with_inv_conv(self.inv_conv);
                let steps = (0..self.steps)
                    .map(|_| step.init(device))
                    .collect::<Result<_, _>>()?;
                Ok(FlowLevel { steps })
            })
            .collect::<Result<_, CoreError>>()?;
        Ok(MultiScaleFlow {
            levels,
            config: self.clone(),
        })
    }
}

/// The steps of one level.
#[derive(Module, Debug)]
pub struct FlowLevel {
    /// `K` flow steps.
    pub steps: Vec<FlowStep>,
}

/// What a forward pass produces.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// One latent per level: the split-off half `z2` of levels `0..L-1`, then the top tensor.
    pub latents: Vec<Tensor<4>>,
    /// `ln p(z_l | z1_l)` of each level's latent, `(B)` each.
    pub log_priors: Vec<Tensor<1>>,
    /// The starting log-det plus every layer's log-det and every level's prior
    /// log-density, `(B)`.
    pub objective: Tensor<1>,
}

/// A point in a traced forward pass ([`MultiScaleFlow::forward_traced`]); levels and
/// steps count from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    /// After the squeeze that starts `level`.
    Squeeze {
        /// The level.
        level: usize,
    },
    /// After flow step `step` of `level`.
    Step {
        /// The level.
        level: usize,
        /// The step within the level.
        step: usize,
    },
    /// After the split that ends `level` (below the top) and its prior term.
    Split {
        /// The level.
        level: usize,
    },
}

/// The multi-scale flow `x -> (z_1, ..., z_L)`. For level `l`: squeeze, `K` flow steps,
/// and (below the top) a split whose second half `z_l` goes to the prior, conditioned on
/// the kept half.
#[derive(Module, Debug)]
pub struct MultiScaleFlow {
    /// `L` levels.
    pub levels: Vec<FlowLevel>,
    /// The configuration it was built from.
    #[module(skip)]
    pub config: MultiScaleFlowConfig,
}

impl MultiScaleFlow {
    /// Checks that `x` is `(B, C, H, W)` with this flow's `[C, H, W]` and `B > 0`.
    pub fn check_input(&self, x: &Tensor<4>) -> Result<(), CoreError> {
        let dims = x.dims();
        let [c, h, w] = self.config.image;
        if dims[0] == 0 || dims[1..] != [c, h, w] {
            return Err(CoreError::ShapeMismatch {
                what: "flow input (B, C, H, W)",
                expected: vec![0, c, h, w],
                got: dims.to_vec(),
            });
        }
        Ok(())
    }

    /// Data-dependent initialisation of every ActNorm from a batch `(B, C, H, W)`.
    pub fn initialize(self, x: Tensor<4>) -> Result<Self, CoreError> {
        self.check_input(&x)?;
        let top = self.levels.len() - 1;
        let mut x = x.detach();
        let mut levels = Vec::with_capacity(self.levels.len());
        for (index, level) in self.levels.into_iter().enumerate() {
            x = Squeeze.forward(x).0;
            let mut steps = Vec::with_capacity(level.steps.len());
            for step in level.steps {
                let step = step.initialize(&x);
                x = step.forward(x).0;
                steps.push(step);
            }
            if index < top {
                x = split(x).0;
            }
            levels.push(FlowLevel { steps });
        }
        Ok(Self {
            levels,
            config: self.config,
        })
    }

    /// `x -> latents`, accumulating log-dets and prior log-densities onto `logdet` (`(B)`).
    pub fn forward(
        &self,
        x: Tensor<4>,
        logdet: Tensor<1>,
        prior: &(impl Prior + ?Sized),
    ) -> Result<Encoded, CoreError> {
        self.forward_traced(x, logdet, prior, |_, _| {})
    }

    /// [`forward`](Self::forward), calling `trace` with the state after every squeeze,
    /// flow step and split (after a split: the kept half, the log-det including that
    /// level's prior term), in the order the reference's module list runs them.
    pub fn forward_traced(
        &self,
        x: Tensor<4>,
        logdet: Tensor<1>,
        prior: &(impl Prior + ?Sized),
        mut trace: impl FnMut(FlowEvent, &FlowState),
    ) -> Result<Encoded, CoreError> {
        self.check_input(&x)?;
        let top = self.levels.len() - 1;
        let mut state = FlowState::new(x, logdet);
        let mut latents = Vec::with_capacity(self.levels.len());
        let mut log_priors = Vec::with_capacity(self.levels.len());
        for (level, steps) in self.levels.iter().enumerate() {
            state = state.forward(&Squeeze);
            trace(FlowEvent::Squeeze { level }, &state);
            for (step, layer) in steps.steps.iter().enumerate() {
                state = state.forward(layer);
                trace(FlowEvent::Step { level, step }, &state);
            }
            let (kept, latent) = if level < top {
                split(state.x)
            } else {
                (state.x.clone(), state.x)
            };
            let condition = (level < top).then(|| kept.clone());
            let log_p = prior.log_prob(level, latent.clone(), condition);
            state = FlowState::new(kept, state.logdet).add_log_density(log_p.clone());
            if level < top {
                trace(FlowEvent::Split { level }, &state);
            }
            latents.push(latent);
            log_priors.push(log_p);
        }
        Ok(Encoded {
            latents,
            log_priors,
            objective: state.logdet,
        })
    }

    /// `latents -> x`, the exact inverse of [`forward`](Self::forward). Fails on latents of
    /// the wrong number or shape, and as [`check_invertible`](Self::check_invertible) does.
    pub fn decode(&self, latents: Vec<Tensor<4>>) -> Result<Tensor<4>, CoreError> {
        if latents.len() != self.levels.len() {
            return Err(CoreError::LatentCount {
                expected: self.levels.len(),
                got: latents.len(),
            });
        }
        let batch = latents[0].dims()[0];
        for (z, [c, h, w]) in latents.iter().zip(self.latent_shapes()) {
            if z.dims() != [batch, c, h, w] {
                return Err(CoreError::ShapeMismatch {
                    what: "latent",
                    expected: vec![batch, c, h, w],
                    got: z.dims().to_vec(),
                });
            }
        }
        let mut latents = latents.into_iter().map(Some).collect::<Vec<_>>();
        self.reverse(|level, _| {
            latents[level]
                .take()
                .expect("each level's latent is taken once")
        })
    }

    /// `n` samples from the prior pushed through the inverse flow, noise scaled by
    /// `temperature`. Run it on a model without autodiff (`model.valid()`). Fails as
    /// [`check_invertible`](Self::check_invertible) does.
    pub fn sample(
        &self,
        prior: &(impl Prior + ?Sized),
        n: usize,
        temperature: f64,
        device: &Device,
    ) -> Result<Tensor<4>, CoreError> {
        let shapes = self.latent_shapes();
        self.reverse(|level, condition| {
            let [c, h, w] = shapes[level];
            prior.sample(level, [n, c, h, w], condition, temperature, device)
        })
    }

    /// Checks that every step's 1x1 convolution can be inverted in f32 (a checkpoint can
    /// hold a singular `W`, or an LU `log_s` whose `exp` underflows): the first that
    /// cannot is [`CoreError::StepNotInvertible`] naming its level and step.
    pub fn check_invertible(&self) -> Result<(), CoreError> {
        for (level, steps) in self.levels.iter().enumerate() {
            for (step, flow_step) in steps.steps.iter().enumerate() {
                flow_step.inv_conv.inverse_weight().map_err(|reason| {
                    CoreError::StepNotInvertible {
                        level,
                        step,
                        reason: Box::new(reason),
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Runs the flow backwards from the top level. `latent(level, z1)` supplies each
    /// level's latent, given the kept half `z1` below the top. Checks first that every
    /// step inverts (the steps' own inverses cannot return an error).
    fn reverse(
        &self,
        mut latent: impl FnMut(usize, Option<Tensor<4>>) -> Tensor<4>,
    ) -> Result<Tensor<4>, CoreError> {
        self.check_invertible()?;
        let top = self.levels.len() - 1;
        let mut x = latent(top, None);
        for (index, level) in self.levels.iter().enumerate().rev() {
            if index < top {
                let z2 = latent(index, Some(x.clone()));
                x = merge(x, z2);
            }
            for step in level.steps.iter().rev() {
                x = step.inverse(x).0;
            }
            x = unsqueeze(x);
        }
        Ok(x)
    }

    /// See [`MultiScaleFlowConfig::latent_shapes`].
    pub fn latent_shapes(&self) -> Vec<[usize; 3]> {
        self.config.latent_shapes()
    }
}
