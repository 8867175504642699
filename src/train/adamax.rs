//! Adamax (Kingma & Ba 2015, §7.1) with PyTorch's update rule, as a Burn optimizer whose
//! state saves and loads with the rest of the training state.
//!
//! Per parameter, at step `t` with gradient `g`:
//! `m = β1 m + (1 - β1) g`, `u = max(β2 u, |g| + ε)`, `θ -= lr / (1 - β1^t) · m / u`
//! (`m = u = 0` before the first step).

use burn::config::Config;
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::store::burn_pack::Scalar;
use burn::tensor::{Device, Tensor};

/// Configuration of [`Adamax`]; the defaults are PyTorch's.
#[derive(Config, Debug)]
pub struct AdamaxConfig {
    /// Decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// Decay of the infinity norm.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// Added to `|g|` inside the maximum.
    #[config(default = 1e-8)]
    pub epsilon: f64,
}

impl AdamaxConfig {
    /// The per-tensor rule.
    pub fn build(&self) -> Adamax {
        Adamax {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
        }
    }

    /// The optimizer for a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// The per-tensor Adamax rule (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Adamax {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
}

/// Adamax's state for one parameter tensor.
#[derive(Debug, Clone)]
pub struct AdamaxState<const D: usize> {
    /// First moment `m`.
    pub moment: Tensor<D>,
    /// Infinity norm `u`.
    pub norm: Tensor<D>,
    /// Steps taken `t`.
    pub step: u64,
}

impl<const D: usize> RecordState for AdamaxState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, "moment", self.moment.to_data());
        out.push_tensor(prefix, "norm", self.norm.to_data());
        out.push_scalar(prefix, "step", Scalar::UInt(self.step));
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let moment = Tensor::from_data(src.take_tensor(prefix, "moment")?, device);
        let norm = Tensor::from_data(src.take_tensor(prefix, "norm")?, device);
        let Scalar::UInt(step) = src.take_scalar(prefix, "step")? else {
            return None;
        };
        Some(Self { moment, norm, step })
    }
}

impl Optimizer for Adamax {
    type State<const D: usize> = AdamaxState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let bound = grad.clone().abs() + self.epsilon;
        let scaled_grad = grad.mul_scalar(1.0 - self.beta_1);
        let (moment, norm, step) = match state {
            Some(s) => (
                s.moment.mul_scalar(self.beta_1) + scaled_grad,
                s.norm.mul_scalar(self.beta_2).max_pair(bound),
                s.step + 1,
            ),
            None => (scaled_grad, bound, 1),
        };
        let step_size = lr / (1.0 - self.beta_1.powi(step as i32));
        let update = (moment.clone() / norm.clone()).mul_scalar(step_size);
        (tensor - update, Some(AdamaxState { moment, norm, step }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamaxState {
            moment: state.moment.to_device(device),
            norm: state.norm.to_device(device),
            ..state
        }
    }
}
