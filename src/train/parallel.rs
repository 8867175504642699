//! Data parallelism: one training step's batch split into a shard per device, each shard's
//! loss and gradient computed on its own device at the same time, and the gradients moved
//! to the main device and summed there (burn-train 0.22.1's `MultiDevice` strategy with
//! the optimizer on the main device). One optimizer update follows, on the main device, so
//! every replica starts the next step from the same weights.

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
            return Err(TrainError::Devices(
                "data-parallel training needs at least one device".into(),
            ));
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
    /// are summed on the main device: the gradient of the global batch's mean.
    pub fn gradient(&self, model: &MarScf, batch: Tensor<4>) -> Result<BatchGradient, ModelError> {
        if self.devices.len() == 1 {
            let loss = model.forward(batch)?.bits_per_dim.mean();
            return Ok(backward(loss, model));
        }
        let size = batch.dims()[0];
        let shards = std::thread::scope(|scope| {
            let workers: Vec<_> = shard_ranges(size, self.devices.len())
                .into_iter()
                .zip(&self.devices)
                .map(|(range, device)| {
                    let shard = batch
                        .clone()
                        .narrow(0, range.start, range.len())
                        .to_device(device);
                    let replica = model.clone().fork(device);
                    scope.spawn(move || shard_gradient(replica, shard, size, self.main()))
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Result<Vec<_>, ModelError>>()
        })?;
        let bits_per_dim = shards.iter().map(|shard| shard.bits_per_dim).sum();
        let mut sum = GradientsAccumulator::new();
        for shard in shards {
            match shard.gradients {
                Some(gradients) => sum.accumulate(model, gradients),
                None => {
                    return Ok(BatchGradient {
                        bits_per_dim,
                        gradients: None,
                    });
                }
            }
        }
        Ok(BatchGradient {
            bits_per_dim,
            gradients: Some(sum.grads()),
        })
    }
}

/// `Σ_shard bits/dim / batch` and its gradient under `replica`, moved to `main`.
fn shard_gradient(
    replica: MarScf,
    shard: Tensor<4>,
    batch: usize,
    main: &Device,
) -> Result<BatchGradient, ModelError> {
    let loss = replica
        .forward(shard)?
        .bits_per_dim
        .sum()
        .div_scalar(batch as f64);
    let mut gradient = backward(loss, &replica);
    gradient.gradients = gradient
        .gradients
        .map(|gradients| gradients.to_device(main, &replica));
    Ok(gradient)
}

/// The loss's value and, when finite, its gradient with respect to `model`'s parameters.
fn backward(loss: Tensor<1>, model: &MarScf) -> BatchGradient {
    let bits_per_dim = loss.clone().into_scalar::<f32>() as f64;
    let gradients = bits_per_dim
        .is_finite()
        .then(|| GradientsParams::from_grads(loss.backward(), model));
    BatchGradient {
        bits_per_dim,
        gradients,
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
