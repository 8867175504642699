//! The processes one training runs in, and the collective operations between them: every
//! process (rank) takes its shard of each global batch, the gradients are summed over the
//! processes, and every process applies the same update (docs/distributed.md).
//!
//! [`Collective`] is the one interface the trainer uses; [`OneProcess`] is the world of a
//! single process (every operation the identity), `MpiWorld` (feature `mpi`,
//! `marscf::train::mpi`) the processes an MPI launcher (`mpirun`, `srun`) started. A GPU-side
//! implementation (NCCL's all-reduce on device buffers) fits the same interface.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::Tensor;

use crate::host::{device_f32, host_f64};
use crate::params::for_each_param;

/// The processes of one training and the operations that involve all of them. Every
/// process must make the same calls in the same order (each call returns once every
/// process has made it); an MPI error ends the whole job.
pub trait Collective {
    /// This process's rank, `0..size()`; rank 0 writes the run's files.
    fn rank(&self) -> usize;

    /// The number of processes.
    fn size(&self) -> usize;

    /// This process's rank among the processes of its machine (which of the machine's
    /// GPUs it takes).
    fn local_rank(&self) -> usize;

    /// `values[i] ← Σ_processes values[i]`, on every process.
    fn sum_f32(&self, values: &mut [f32]);

    /// `values[i] ← Σ_processes values[i]`, on every process.
    fn sum_f64(&self, values: &mut [f64]);

    /// `values ← rank 0's values`, on every process (same length everywhere).
    fn broadcast_f64(&self, values: &mut [f64]);

    /// Ends every process of the job with exit status `code`, after this one failed: the
    /// others may be waiting in a collective operation and would otherwise never return.
    fn abort(&self, code: i32) -> !;
}

/// `result`'s value; an error in a world of several processes is printed with this
/// process's rank and ends every process ([`Collective::abort`], status 1), so that no
/// process waits forever for one that stopped. In one process the error is returned.
pub fn end_every_process_on_error<T, E: std::fmt::Display>(
    world: &dyn Collective,
    result: Result<T, E>,
) -> Result<T, E> {
    match result {
        Err(error) if world.size() > 1 => {
            eprintln!(
                "error on rank {} of {}: {error}; ending every rank",
                world.rank(),
                world.size()
            );
            world.abort(1)
        }
        result => result,
    }
}

/// The world of a single process: sums and broadcasts leave the values as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OneProcess;

impl Collective for OneProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn local_rank(&self) -> usize {
        0
    }

    fn sum_f32(&self, _: &mut [f32]) {}

    fn sum_f64(&self, _: &mut [f64]) {}

    fn broadcast_f64(&self, _: &mut [f64]) {}

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// `module` with every float parameter replaced by rank 0's, in one broadcast of all of
/// them (in the order of their paths).
pub fn broadcast_params<M: Module>(module: M, world: &dyn Collective) -> M {
    if world.size() == 1 {
        return module;
    }
    let mut ids = Vec::new();
    let mut flat = Vec::new();
    let mut device = None;
    for_each_param(&module, |_, info, value| {
        device.get_or_insert_with(|| value.device());
        ids.push((info.id, value.dims()[0]));
        flat.push(value);
    });
    let Some(device) = device else {
        return module;
    };
    let mut values = host_f64(Tensor::cat(flat, 0));
    world.broadcast_f64(&mut values);
    let mut start = 0;
    let mut by_id = HashMap::new();
    for (id, len) in ids {
        let part = values[start..start + len]
            .iter()
            .map(|&v| v as f32)
            .collect();
        by_id.insert(id, device_f32(part, &device));
        start += len;
    }
    module.map(&mut Replace { values: &by_id })
}

/// What the trainer compares between processes ([`same_on_every_rank`]): `Σ θ`, `Σ θ²` (in
/// f64) over every float parameter of `module`, and `extra`.
pub fn checksum<M: Module>(module: &M, extra: &[f64]) -> Vec<f64> {
    let mut parts = Vec::new();
    for_each_param(module, |_, _, value| {
        parts.push(value.clone().sum());
        parts.push(value.square().sum());
    });
    let sums = if parts.is_empty() {
        Vec::new()
    } else {
        host_f64(Tensor::cat(parts, 0))
    };
    let (mut total, mut squares) = (0.0, 0.0);
    for pair in sums.chunks(2) {
        total += pair[0];
        squares += pair[1];
    }
    let mut out = vec![total, squares];
    out.extend_from_slice(extra);
    out
}

/// Whether every process's `values` equal rank 0's, bit for bit; every process gets the
/// same answer (the ranks that differ are counted with one sum).
pub fn same_on_every_rank(values: &[f64], world: &dyn Collective) -> Result<(), usize> {
    if world.size() == 1 {
        return Ok(());
    }
    let mut rank0 = values.to_vec();
    world.broadcast_f64(&mut rank0);
    let differs = rank0
        .iter()
        .zip(values)
        .any(|(a, b)| a.to_bits() != b.to_bits());
    let mut count = [f64::from(u8::from(differs))];
    world.sum_f64(&mut count);
    match count[0] as usize {
        0 => Ok(()),
        ranks => Err(ranks),
    }
}

struct Replace<'a> {
    values: &'a HashMap<ParamId, Tensor<1>>,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(value) = self.values.get(&param.id).cloned() else {
            return param;
        };
        param.map(|old| {
            let shape = old.dims();
            value.reshape(shape)
        })
    }
}
