//! Data parallelism: one training step's batch split into a shard per device, each shard's
//! loss and gradient computed on its own device, and the gradients moved to the main device
//! and summed there (burn-train 0.22.1's `MultiDevice` strategy with the optimizer on the
//! main device). One optimizer update follows, on the main device, so every replica starts
//! the next step from the same weights.
//!
//! The shards are queued in order from one thread: every shard's forward pass is queued
//! before any loss is read, so devices that compute asynchronously (the GPU backends) work
//! at the same time, and the random draws of dropout come in the same order in every run
//! (Burn keeps one generator per backend, shared by its devices). On a CPU backend the
//! shards run one after the other.

use std::ops::Range;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use crate::train::TrainError;
use crate::{MarScf, ModelError};

/// The devices a training step runs on. The first is the main device: it holds the model,
/// the optimizer state and the weight average, makes the batches, and receives the
/// gradients. A device may appear more than once (two shards on one device).
#[derive(Debug, Clone, PartialEq)]
pub struct DataParallel {
    devices: Vec<Device>,
}

/// A batch's loss and its gradient, on the main device.
pub struct BatchGradient {
    /// Mean bits/dim of the batch.
    pub bits_per_dim: f64,
    /// `∂ mean bits/dim / ∂θ` per parameter; `None` when the loss is not finite (no backward
    /// pass is run then).
    pub gradients: Option<GradientsParams>,
}

impl DataParallel {
    /// Training on `devices` (made autodiff devices), the first the main one.
    pub fn new(devices: Vec<Device>) -> Result<Self, TrainError> {
        if devices.is_empty() {
            return Err(TrainError::NoDevices);
        }
        Ok(Self {
            devices: devices.into_iter().map(Device::autodiff).collect(),
        })
    }

    /// Training on one device.
    pub fn single(device: &Device) -> Self {
        Self {
            devices: vec![device.clone().autodiff()],
        }
    }

    /// The devices, main first.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The main device.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The mean bits/dim of `batch` `(B, C, H, W)` under `model` (on the main device) and
    /// its gradient. With N devices, device `i` takes the `i`-th of N contiguous shards
    /// (sizes differing by at most one image; fewer shards when `B < N`), computes
    /// `Σ_shard bits/dim / B` and its gradient on a fork of the model, and the N gradients
    /// are summed on the main device: the gradient of the global batch's mean. A loss that
    /// is not finite runs no backward pass.
    pub fn gradient(&self, model: &MarScf, batch: Tensor<4>) -> Result<BatchGradient, ModelError> {
        let size = batch.dims()[0];
        let mut shards = Vec::with_capacity(self.devices.len());
        if self.devices.len() == 1 {
            shards.push((model.clone(), model.forward(batch)?.bits_per_dim.mean()));
        } else {
            for (range, device) in shard_ranges(size, self.devices.len())
                .into_iter()
                .zip(&self.devices)
            {
                let replica = model.clone().fork(device);
                let shard = batch.clone().narrow(0, range.start, range.len());
                let bits_per_dim = replica.forward(shard.to_device(device))?.bits_per_dim;
                shards.push((replica, bits_per_dim.sum().div_scalar(size as f64)));
            }
        }
        let bits_per_dim: f64 = shards
            .iter()
            .map(|(_, loss)| loss.clone().into_scalar::<f32>() as f64)
            .sum();
        if !bits_per_dim.is_finite() {
            return Ok(BatchGradient {
                bits_per_dim,
                gradients: None,
            });
        }
        let mut sum = GradientsAccumulator::new();
        for (replica, loss) in shards {
            let gradients = GradientsParams::from_grads(loss.backward(), &replica);
            sum.accumulate(model, gradients.to_device(self.main(), &replica));
        }
        Ok(BatchGradient {
            bits_per_dim,
            gradients: Some(sum.grads()),
        })
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
