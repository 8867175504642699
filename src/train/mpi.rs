//! [`Collective`] over MPI (feature `mpi`, rsmpi over the system's MPI library): the
//! processes that `mpirun -np W` or Slurm's `srun` started, one training among them.

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::train::collective::Collective;

/// The environment variables by which the common launchers tell a process it is one of
/// several: Open MPI's `mpirun`, PMI (MPICH, Intel MPI, Slurm's `srun --mpi=pmi2`) and
/// PMIx (`srun --mpi=pmix`, Open MPI 5).
const LAUNCHER_VARIABLES: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"];

/// The processes of an MPI job (its `MPI_COMM_WORLD`). MPI is initialised when this is made
/// and finalised when it is dropped; errors in MPI end the job (MPI's default handler).
pub struct MpiWorld {
    world: SimpleCommunicator,
    local_rank: usize,
    // Dropped last: `MPI_Finalize`.
    _universe: Universe,
}

impl MpiWorld {
    /// The job's processes when a launcher started this one (its environment says so),
    /// else `None`: a process started on its own trains alone, without initialising MPI.
    /// Also `None` when MPI is already initialised in this process.
    pub fn launched() -> Option<Self> {
        if !LAUNCHER_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some())
        {
            return None;
        }
        // Only the thread that made the world calls MPI.
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        let world = universe.world();
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Some(Self {
            world,
            local_rank,
            _universe: universe,
        })
    }
}

impl Drop for MpiWorld {
    /// A panic on one process ends them all: unwinding would otherwise reach
    /// `MPI_Finalize`, which waits for processes that wait in a collective for this one.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "panic on rank {} of {}; ending every rank",
                self.rank(),
                self.size()
            );
            self.abort(1);
        }
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn sum_f32(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn broadcast_f64(&self, values: &mut [f64]) {
        self.world.process_at_rank(0).broadcast_into(values);
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
