//! mAR-SCF: normalizing flows with multi-scale autoregressive priors (Bhattacharyya,
//! Mahajan, Fritz, Schiele, Roth, CVPR 2020), on Burn.
//!
//! The flow layers live in [`marscf_core`] (re-exported as [`core`]), the autoregressive
//! prior in [`marscf_prior`], the datasets in [`marscf_data`]. This crate selects the
//! backend ([`select_device`]) and assembles the model.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod data_info;
pub mod device;
mod error;
pub mod fid;
mod files;
mod host;
pub mod import;
mod memory;
pub mod model;
pub mod objective;
pub mod params;
pub mod report;
pub mod samples;
pub mod train;

pub use data_info::DataInfo;
pub use device::{DeviceError, select_device, select_devices, select_process_devices};
pub use error::ModelError;
pub use marscf_core as core;
pub use marscf_data as data;
pub use marscf_kernels as kernels;
pub use marscf_prior as prior;
pub use memory::{AllocatorError, FreedMemoryPolicy, keep_freed_memory};
pub use model::{MarScf, MarScfConfig, ModelOutput, PriorKind};
pub use objective::{bits_per_dim, dequantize, objective_start};

/// The README's code, compiled by `cargo test` (doctests) so that it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
