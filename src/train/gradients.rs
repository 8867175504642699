//! Whole-model gradient operations: the global norm (which also detects NaN/inf) and
//! clipping to a maximum global norm, as PyTorch's `clip_grad_norm_`.

use std::collections::BTreeMap;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::params::{ParamInfo, flat_gradient, set_flat_gradient};

/// `sqrt(Σ ||g||²)` over every parameter's gradient (one read from the device);
/// NaN or infinite when any gradient is.
pub fn global_norm(grads: &GradientsParams, params: &BTreeMap<String, ParamInfo>) -> f64 {
    let squares: Vec<Tensor<1>> = params
        .values()
        .filter_map(|info| flat_gradient(grads, info))
        .map(|g| g.square().sum())
        .collect();
    if squares.is_empty() {
        return 0.0;
    }
    (Tensor::cat(squares, 0).sum().into_scalar::<f32>() as f64).sqrt()
}

/// Scales every gradient by `max_norm / norm` when `norm > max_norm`.
pub fn clip_to_norm(
    mut grads: GradientsParams,
    params: &BTreeMap<String, ParamInfo>,
    norm: f64,
    max_norm: f64,
) -> GradientsParams {
    if norm <= max_norm {
        return grads;
    }
    let factor = max_norm / (norm + 1e-6);
    for info in params.values() {
        if let Some(g) = flat_gradient(&grads, info) {
            set_flat_gradient(&mut grads, info, g.mul_scalar(factor));
        }
    }
    grads
}
