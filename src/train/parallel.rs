//! Data parallelism: one training step's global batch split into a contiguous shard per
//! process ([`Collective`]) and, within a process, a shard per device; each shard's loss and
//! gradient computed on its own device, the gradients moved to the process's main device and
//! summed there (burn-train 0.22.1's `MultiDevice` strategy with the optimizer on the main
//! device), then summed over the processes in one all-reduce of a flat buffer. Every process
//! then applies the same update to the same weights.
//!
//! The shards are queued in order from one thread: every shard's forward pass is queued
//! before any loss is read, so devices that compute asynchronously (the GPU backends) work
//! at the same time, and the random draws of dropout come in the same order in every run
//! (Burn keeps one generator per backend, shared by its devices). On a CPU backend the
//! shards run one after the other.

use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use crate::host::{device_f32, host_f32};
use crate::params::{ParamInfo, flat_gradient, set_flat_gradient};
use crate::train::TrainError;
use crate::train::collective::{Collective, OneProcess};
use crate::{MarScf, ModelError};

/// The processes and devices a training step runs on. The first device is the process's
/// main device: it holds the model, the optimizer state and the weight average, makes the
/// batches, and receives the gradients. A device may appear more than once (two shards on
/// one device).
#[derive(Clone)]
pub struct DataParallel {
    devices: Vec<Device>,
    world: Rc<dyn Collective>,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("devices", &self.devices)
            .field("rank", &self.world.rank())
            .field("processes", &self.world.size())
            .finish()
    }
}

/// A batch's loss and its gradient, on the main device.
pub struct BatchGradient {
    /// Mean bits/dim of the global batch.
    pub bits_per_dim: f64,
    /// `∂ mean bits/dim / ∂θ` per parameter (summed over every process); `None` when the
    /// loss is not finite (no backward pass is run then, on any process).
    pub gradients: Option<GradientsParams>,
    /// The gradients' all-reduce over the processes, if there are several.
    pub reduce: Option<Reduction>,
}

/// One all-reduce of the gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reduction {
    /// Values summed (every gradient, flattened into one buffer of f32).
    pub values: usize,
    /// Seconds from copying the gradients off the device to having the sums back on it.
    pub seconds: f64,
}

impl DataParallel {
    /// Training on `devices` (made autodiff devices), the first the main one.
    pub fn new(devices: Vec<Device>) -> Result<Self, TrainError> {
        if devices.is_empty() {
            return Err(TrainError::NoDevices);
        }
        Ok(Self {
            devices: devices.into_iter().map(Device::autodiff).collect(),
            world: Rc::new(OneProcess),
        })
    }

    /// Training on one device.
    pub fn single(device: &Device) -> Self {
        Self {
            devices: vec![device.clone().autodiff()],
            world: Rc::new(OneProcess),
        }
    }

    /// The same devices in each process of `world`: every global batch is split over the
    /// processes first (see [`gradient`](Self::gradient)). Shared by `Rc`: MPI is called
    /// from the thread that initialised it only.
    pub fn across(mut self, world: Rc<dyn Collective>) -> Self {
        self.world = world;
        self
    }

    /// The processes of the training.
    pub fn world(&self) -> &dyn Collective {
        self.world.as_ref()
    }

    /// The devices, main first.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The main device.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The mean bits/dim of the global batch `batch` `(B, C, H, W)` (the same on every
    /// process) under `model` (on the main device) and its gradient with respect to
    /// `params`. Process `r` of W takes the `r`-th of W contiguous shards of the batch
    /// (sizes differing by at most one image; `B >= W`); within it, device `i` of N takes
    /// the `i`-th of N contiguous shards (fewer when the shard has fewer than N images),
    /// computes `Σ_shard bits/dim / B` and its gradient on a fork of the model, and the N
    /// gradients are summed on the main device, then over the processes: the gradient of
    /// the global batch's mean. The losses are summed over the processes first; a global
    /// loss that is not finite runs no backward pass on any process.
    pub fn gradient(
        &self,
        model: &MarScf,
        batch: Tensor<4>,
        params: &BTreeMap<String, ParamInfo>,
    ) -> Result<BatchGradient, ModelError> {
        let size = batch.dims()[0];
        let world = self.world();
        // Refused on every process alike, before any collective call.
        if size < world.size() {
            return Err(ModelError::Setting {
                name: "batch_size",
                value: size as f64,
                rule: "at least one image per process",
            });
        }
        let batch = if world.size() == 1 {
            batch
        } else {
            let range = shard_ranges(size, world.size())[world.rank()].clone();
            batch.narrow(0, range.start, range.len())
        };
        let mut shards = Vec::with_capacity(self.devices.len());
        if self.devices.len() == 1 && world.size() == 1 {
            shards.push((model.clone(), model.forward(batch)?.bits_per_dim.mean()));
        } else {
            let local = batch.dims()[0];
            for (range, device) in shard_ranges(local, self.devices.len())
                .into_iter()
                .zip(&self.devices)
            {
                let replica = model.clone().fork(device);
                let shard = batch.clone().narrow(0, range.start, range.len());
                let bits_per_dim = replica.forward(shard.to_device(device))?.bits_per_dim;
                shards.push((replica, bits_per_dim.sum().div_scalar(size as f64)));
            }
        }
        let mut bits_per_dim = [shards
            .iter()
            .map(|(_, loss)| loss.clone().into_scalar::<f32>() as f64)
            .sum::<f64>()];
        world.sum_f64(&mut bits_per_dim);
        let [bits_per_dim] = bits_per_dim;
        if !bits_per_dim.is_finite() {
            return Ok(BatchGradient {
                bits_per_dim,
                gradients: None,
                reduce: None,
            });
        }
        let mut sum = GradientsAccumulator::new();
        for (replica, loss) in shards {
            let gradients = GradientsParams::from_grads(loss.backward(), &replica);
            sum.accumulate(model, gradients.to_device(self.main(), &replica));
        }
        let mut gradients = sum.grads();
        let reduce = (world.size() > 1).then(|| all_reduce(&mut gradients, params, world));
        Ok(BatchGradient {
            bits_per_dim,
            gradients: Some(gradients),
            reduce,
        })
    }
}

/// Sums `grads` over the processes of `world`: every parameter's gradient (in the order of
/// their paths) in one flat f32 buffer, one all-reduce, and back.
fn all_reduce(
    grads: &mut GradientsParams,
    params: &BTreeMap<String, ParamInfo>,
    world: &dyn Collective,
) -> Reduction {
    let started = Instant::now();
    let present: Vec<(&ParamInfo, Tensor<1>)> = params
        .values()
        .filter_map(|info| flat_gradient(grads, info).map(|g| (info, g)))
        .collect();
    let Some(device) = present.first().map(|(_, g)| g.device()) else {
        return Reduction {
            values: 0,
            seconds: 0.0,
        };
    };
    let lengths: Vec<usize> = present.iter().map(|(_, g)| g.dims()[0]).collect();
    let flat = Tensor::cat(present.iter().map(|(_, g)| g.clone()).collect(), 0);
    let mut values = host_f32(flat);
    world.sum_f32(&mut values);
    let summed = device_f32(values, &device);
    let mut start = 0;
    for ((info, _), len) in present.iter().zip(&lengths) {
        set_flat_gradient(grads, info, summed.clone().narrow(0, start, *len));
        start += len;
    }
    Reduction {
        values: start,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// `size` images in `parts` contiguous ranges whose lengths differ by at most one, the
/// longer first; empty ranges left out.
pub fn shard_ranges(size: usize, parts: usize) -> Vec<Range<usize>> {
    let (base, longer) = (size / parts, size % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < longer);
            start += len;
            start - len..start
        })
        .filter(|range| !range.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::shard_ranges;

    #[test]
    fn shards_cover_the_batch_in_order_and_differ_by_at_most_one() {
        assert_eq!(shard_ranges(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shard_ranges(8, 2), vec![0..4, 4..8]);
        assert_eq!(shard_ranges(2, 4), vec![0..1, 1..2]);
        assert_eq!(shard_ranges(5, 1), vec![0..5]);
    }
}
