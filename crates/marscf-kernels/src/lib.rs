//! The hot operations of mAR-SCF as kernels of our own, each behind a portable default.
//!
//! Every function here takes and returns ordinary Burn tensors and runs on any backend:
//! - on Burn's Flex CPU backend (with the `flex` feature, float32), our kernels run, as a
//!   Burn backend extension with hand-written backward passes under autodiff;
//! - everywhere else (wgpu, Vulkan, CUDA, NdArray, other dtypes) the portable default runs,
//!   made of standard tensor operations and differentiated by Burn's autodiff.
//!
//! The Flex kernels are tested against the portable defaults, forward and every gradient.
//!
//! Adding a kernel touches these files, `X` the op's name (`conv`, `layer_norm`, ...) and `f`
//! its public function (`conv2d`, `layer_norm`, ...):
//! - `src/X.rs`: the public function `f` (its contract and shapes; it calls the Flex kernel
//!   where `flex::runs` says so) and `f_portable` in standard tensor operations;
//! - `src/flex/X.rs`: the algorithm in its module doc, the slice kernels, the function on
//!   Burn tensors that `f` calls, `on_flex`, `FBackward` (`f` in CamelCase; none for an op
//!   without gradient) and `on_autodiff` (with the helpers of `src/flex/glue.rs`);
//! - `src/flex/mod.rs`: a method `marscf_f` in the trait and one line in each of its two
//!   impls;
//! - `src/lib.rs`: the module and its exports;
//! - `tests/against_portable.rs`: the kernel against `f_portable`, forward and every
//!   gradient (and `benches/kernels.rs` if it is hot).

#![warn(missing_docs)]

mod actnorm;
mod attention;
mod bisect;
mod concat_elu;
mod conv;
mod conv_lstm;
mod dropout;
#[cfg(feature = "flex")]
mod flex;
mod gate;
mod layer_norm;
mod lstm_cell;
mod mixture;
mod softmax;
mod weight_norm;

pub use actnorm::{actnorm, actnorm_portable};
pub use attention::{multi_head_attention, multi_head_attention_portable};
pub use bisect::{MixtureCdf, bisect_mixture, bisect_mixture_portable};
pub use concat_elu::{concat_elu, concat_elu_portable};
pub use conv::{ConvSpec, conv2d, conv2d_module, conv2d_portable};
pub use conv_lstm::{conv_lstm_layer, conv_lstm_layer_portable};
pub use dropout::{dropout, dropout_portable};
pub use gate::{gate, gate_portable};
pub use layer_norm::{layer_norm, layer_norm_portable};
pub use lstm_cell::{LstmCellState, lstm_cell, lstm_cell_portable};
pub use mixture::{
    LogMixture, MixtureLogDensities, mixture_log_densities, mixture_log_densities_portable,
};
pub use softmax::{softmax, softmax_portable};
pub use weight_norm::{weight_norm, weight_norm_portable};

use burn::tensor::{DType, Device};

/// Set to `1`, this environment variable makes every operation take its portable default
/// on Flex too: the same build then times (or checks) our kernels against Burn's.
pub const PORTABLE_ENV: &str = "MARSCF_PORTABLE_KERNELS";

/// Whether float32 tensors on `device` run our own kernels (Flex, with or without
/// autodiff, in a build with the `flex` feature) rather than the portable defaults.
pub fn own_kernels(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    return flex::runs(device, DType::F32);
    #[cfg(not(feature = "flex"))]
    {
        let _ = (device, DType::F32);
        false
    }
}
