//! Exponential moving average of the weights (Polyak averaging):
//! `θ_ema ← d θ_ema + (1 - d) θ` after every optimizer step.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::Tensor;

use crate::MarScf;
use crate::params::for_each_param;

/// The averaged weights, kept as a model without autodiff.
#[derive(Debug, Clone)]
pub struct Ema {
    /// Decay `d` per step.
    pub decay: f64,
    /// The averaged model (same parameter ids as the trained one).
    pub model: MarScf,
}

struct Blend<'a> {
    current: &'a HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(current) = self.current.get(&param.id).cloned() else {
            return param;
        };
        let decay = self.decay;
        param.map(|average| {
            let shape = average.dims();
            average.mul_scalar(decay) + current.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

impl Ema {
    /// Starts the average at `model`'s weights.
    pub fn new(model: &MarScf, decay: f64) -> Self {
        Self {
            decay,
            model: model.valid(),
        }
    }

    /// Blends `model`'s current weights into the average.
    pub fn update(&mut self, model: &MarScf) {
        let mut current = HashMap::new();
        for_each_param(&model.valid(), |_, info, value| {
            current.insert(info.id, value);
        });
        let model = std::mem::replace(&mut self.model, model.valid());
        self.model = model.map(&mut Blend {
            current: &current,
            decay: self.decay,
        });
    }
}
