//! The numeric tests, one module per subject, in one test binary (one link instead of six,
//! in the CPU build and in the GPU build alike): reference parity, invertibility and
//! log-dets of the layers and of the multi-scale flow, the MixLogCDF coupling, the priors,
//! and (with a second backend compiled in) cross-backend consistency. `cargo gpu-tests
//! --features wgpu` runs this binary on the selected device.

mod backends;
mod flow_layers;
mod mixlogcdf;
mod multiscale_flow;
mod parity;
mod prior;
