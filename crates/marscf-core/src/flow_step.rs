//! One step of flow: ActNorm -> invertible 1x1 convolution -> coupling (-> tuple flip).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::CoreError;
use crate::actnorm::{ActNorm, ActNormConfig};
use crate::coupling::{Coupling, CouplingKind};
use crate::inv_conv::{InvConv1x1, InvConv1x1Config, InvConvKind};
use crate::layer::{FlowState, InvertibleLayer};
use crate::split::TupleFlip;

/// Configuration of [`FlowStep`].
#[derive(Config, Debug)]
pub struct FlowStepConfig {
    /// Channels `C` of the tensor the step works on.
    pub channels: usize,
    /// Hidden width of the coupling's network.
    pub hidden: usize,
    /// The coupling.
    #[config(default = "CouplingKind::Affine")]
    pub coupling: CouplingKind,
    /// Parametrisation of the 1x1 convolution.
    #[config(default = "InvConvKind::Lu")]
    pub inv_conv: InvConvKind,
}

impl FlowStepConfig {
    /// The step, its parameters drawn in the order ActNorm, 1x1 convolution, coupling
    /// (ActNorm uninitialised). Fails as [`InvConv1x1Config::init`] and
    /// [`CouplingKind::init`] do.
    pub fn init(&self, device: &Device) -> Result<FlowStep, CoreError> {
        Ok(FlowStep {
            actnorm: ActNormConfig::new(self.channels).init(device),
            inv_conv: InvConv1x1Config::new(self.channels)
                .with_kind(self.inv_conv)
                .init(device)?,
            coupling: self.coupling.init(self.channels, self.hidden, device)?,
        })
    }
}

/// A flow step on `C` channels, `(B, C, H, W) -> (B, C, H, W)`. Forward: ActNorm, 1x1 convolution, coupling, and a
/// [`TupleFlip`] when the coupling asks for one; inverse in the reverse order.
#[derive(Module, Debug)]
pub struct FlowStep {
    /// Per-channel normalisation.
    pub actnorm: ActNorm,
    /// Channel mixing.
    pub inv_conv: InvConv1x1,
    /// The coupling.
    pub coupling: Coupling,
}

impl InvertibleLayer for FlowStep {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let state = FlowState::zero(x)
            .forward(&self.actnorm)
            .forward(&self.inv_conv)
            .forward(&self.coupling);
        let state = if self.coupling.flips_after() {
            state.forward(&TupleFlip)
        } else {
            state
        };
        (state.x, state.logdet)
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let state = FlowState::zero(y);
        let state = if self.coupling.flips_after() {
            state.inverse(&TupleFlip)
        } else {
            state
        };
        let state = state
            .inverse(&self.coupling)
            .inverse(&self.inv_conv)
            .inverse(&self.actnorm);
        // FlowState subtracted the terms; this layer reports the forward log-det.
        (state.x, state.logdet.neg())
    }

    fn initialize(self, x: &Tensor<4>) -> Self {
        let actnorm = self.actnorm.initialize(x);
        let h = actnorm.forward(x.clone()).0;
        let h = self.inv_conv.forward(h).0;
        let coupling = self.coupling.initialize(&h);
        Self {
            actnorm,
            inv_conv: self.inv_conv,
            coupling,
        }
    }
}
