//! Parameters by path: the checkpoint-style names of a module's float parameters
//! (`flow.levels.0.steps.1.actnorm.logs`; enum variants left out, as in records), for
//! comparing, averaging and reporting them.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// A float parameter's identity and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Its id (what optimisers and gradients are keyed by).
    pub id: ParamId,
    /// Its shape.
    pub shape: Vec<usize>,
}

struct Collect<F> {
    path: Vec<String>,
    on_param: F,
}

impl<F: FnMut(String, ParamInfo, Tensor<1>)> ModuleVisitor for Collect<F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(if container_type.starts_with("Enum:") {
            String::new()
        } else {
            name.to_string()
        });
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self
            .path
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        let value = param.val();
        let shape = value.dims().to_vec();
        let n: usize = shape.iter().product();
        (self.on_param)(
            path,
            ParamInfo {
                id: param.id,
                shape,
            },
            value.reshape([n]),
        );
    }
}

/// Calls `on_param(path, info, flattened value)` for every float parameter of `module`.
pub fn for_each_param<M: Module>(module: &M, on_param: impl FnMut(String, ParamInfo, Tensor<1>)) {
    module.visit(&mut Collect {
        path: Vec::new(),
        on_param,
    });
}

/// Every float parameter's id and shape, by path.
pub fn param_paths<M: Module>(module: &M) -> BTreeMap<String, ParamInfo> {
    let mut out = BTreeMap::new();
    for_each_param(module, |path, info, _| {
        out.insert(path, info);
    });
    out
}

/// Every float parameter's value, flattened, by path.
pub fn param_values<M: Module>(module: &M) -> BTreeMap<String, Tensor<1>> {
    let mut out = BTreeMap::new();
    for_each_param(module, |path, _, value| {
        out.insert(path, value);
    });
    out
}

/// The gradient of the parameter `info`, flattened, if it has one.
pub fn flat_gradient(grads: &GradientsParams, info: &ParamInfo) -> Option<Tensor<1>> {
    let n: usize = info.shape.iter().product();
    match info.shape.len() {
        1 => grads.get::<1>(info.id),
        2 => grads.get::<2>(info.id).map(|g| g.reshape([n])),
        3 => grads.get::<3>(info.id).map(|g| g.reshape([n])),
        4 => grads.get::<4>(info.id).map(|g| g.reshape([n])),
        5 => grads.get::<5>(info.id).map(|g| g.reshape([n])),
        rank => panic!("parameters of rank {rank} do not occur in this crate"),
    }
}

/// Replaces the gradient of the parameter `info` by `flat` (its values in order).
pub fn set_flat_gradient(grads: &mut GradientsParams, info: &ParamInfo, flat: Tensor<1>) {
    let shape = &info.shape;
    match shape.len() {
        1 => grads.register(info.id, flat),
        2 => grads.register(info.id, flat.reshape([shape[0], shape[1]])),
        3 => grads.register(info.id, flat.reshape([shape[0], shape[1], shape[2]])),
        4 => grads.register(
            info.id,
            flat.reshape([shape[0], shape[1], shape[2], shape[3]]),
        ),
        5 => grads.register(
            info.id,
            flat.reshape([shape[0], shape[1], shape[2], shape[3], shape[4]]),
        ),
        rank => panic!("parameters of rank {rank} do not occur in this crate"),
    }
}
