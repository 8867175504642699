//! Our kernels on Burn's Flex CPU backend, as a backend extension: the forward on `Flex`,
//! and on `Autodiff<Flex>` the same forward with a hand-written backward.
//!
//! One file per op (named as the portable op's file, `src/X.rs`): its slice kernels, the
//! function on Burn tensors that the public op in `src/X.rs` calls, its forward on Flex
//! (`on_flex`), its `Backward` and its recording under autodiff (`on_autodiff`). This file
//! is the table Burn's extension mechanism needs: one trait, one impl per backend, each
//! method a call into its op's file. [`glue`] holds what every op's glue shares; `gemm`,
//! `polynomial`, `reduce`, `simd` and `tuning` what the kernels share.

mod actnorm;
mod attention;
mod bisect;
mod concat_elu;
mod conv;
mod conv_lstm;
mod dropout;
mod gate;
mod gemm;
mod glue;
mod kernel_cache;
mod layer_norm;
mod lstm_cell;
mod mixture;
mod polynomial;
mod reduce;
mod simd;
mod softmax;
mod tuning;
mod weight_norm;
mod winograd;
mod winograd6;

use std::sync::OnceLock;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Device};

use crate::ConvSpec;
pub use actnorm::actnorm;
pub use attention::multi_head_attention;
pub use bisect::bisect_mixture;
pub use concat_elu::concat_elu;
pub use conv::{conv_supported, conv2d};
pub use conv_lstm::conv_lstm_layer;
use dropout::Mask;
pub use dropout::dropout;
pub use gate::gate;
pub use layer_norm::layer_norm;
pub use lstm_cell::lstm_cell;
pub use mixture::mixture_log_densities;
pub use softmax::softmax;
pub use weight_norm::weight_norm;

/// Whether our Flex kernels take tensors on `device` of type `dtype`: on Flex, float32,
/// unless [`crate::PORTABLE_ENV`] is set to `1` (checked once).
pub fn runs(device: &Device, dtype: DType) -> bool {
    static PORTABLE: OnceLock<bool> = OnceLock::new();
    if *PORTABLE.get_or_init(|| std::env::var(crate::PORTABLE_ENV).is_ok_and(|v| v == "1")) {
        return false;
    }
    let flex = match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    };
    flex && dtype == DType::F32
}

/// The operations we implement ourselves on Flex, one per public op of the crate (whose
/// documentation gives the contract), named after it.
#[backend_extension(Flex, Autodiff)]
pub trait FlexKernels: Backend {
    /// [`crate::conv2d`], bias given: `(N, Ci, H, W), (Co, Ci, kh, kw), (Co) -> (N, Co, Ho, Wo)`.
    fn marscf_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// [`crate::actnorm`]: `(N, C, H, W), (1, C, 1, 1) x 2 -> (N, C, H, W)`.
    fn marscf_actnorm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        logs: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// [`crate::layer_norm`]: `x` any shape `(..., C)`, `gamma` and `beta` `(C)`.
    fn marscf_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// [`crate::lstm_cell`] from the pre-activations: `(B, 4h, H, W), (B, h, H, W) ->
    /// (2B, h, H, W)` (`[h'; c']`).
    fn marscf_lstm_cell(pre: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`crate::conv_lstm_layer`]: `(T B, 4h, H, W), (4h, h, k, k) -> (T B, h, H, W)`.
    fn marscf_conv_lstm_layer(
        gates: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        steps: usize,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// [`crate::concat_elu`]: `(B, C, H, W) -> (B, 2C, H, W)`.
    fn marscf_concat_elu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`crate::gate`]: any shape, halved along `dim`.
    fn marscf_gate(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self>;

    /// [`crate::mixture_log_densities`]: `(B, k, C, H, W) x 3, (B, C, H, W) -> (2B, C, H,
    /// W)` (`[ln pdf; ln cdf]`).
    fn marscf_mixture_log_densities(
        log_weights: FloatTensor<Self>,
        mu: FloatTensor<Self>,
        log_s: FloatTensor<Self>,
        x: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// [`crate::bisect_mixture`]: `(B, k, C, H, W) x 3, (B, C, H, W) x 3 -> (B, C, H, W)`,
    /// `limits` `(max_iters, tolerance)`.
    fn marscf_bisect_mixture(
        weights: FloatTensor<Self>,
        mu: FloatTensor<Self>,
        inv_scale: FloatTensor<Self>,
        y: FloatTensor<Self>,
        lower: FloatTensor<Self>,
        upper: FloatTensor<Self>,
        limits: (usize, f64),
    ) -> FloatTensor<Self>;

    /// [`crate::softmax`] over the last dimension, any shape.
    fn marscf_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`crate::weight_norm`]: `v` `(out, ...)`, `g` `(out, 1, ..., 1)`.
    fn marscf_weight_norm(v: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`crate::dropout`] with the mask `mask`, any shape.
    fn marscf_dropout(x: FloatTensor<Self>, mask: Mask) -> FloatTensor<Self>;

    /// [`crate::multi_head_attention`] with an optional dropout mask: `(B, L, 3c) -> (B, L,
    /// c)`.
    fn marscf_multi_head_attention(
        packed: FloatTensor<Self>,
        heads: usize,
        mask: Option<Mask>,
    ) -> FloatTensor<Self>;
}

/// Short names for the two tables below: a Flex tensor, an `Autodiff<Flex, C>` tensor.
type F = FlexTensor;

impl FlexKernels for Flex {
    fn marscf_conv2d(x: F, weight: F, bias: F, spec: ConvSpec) -> F {
        conv::on_flex(x, weight, bias, spec)
    }
    fn marscf_actnorm(x: F, bias: F, logs: F, relu: bool) -> F {
        actnorm::on_flex(x, bias, logs, relu)
    }
    fn marscf_layer_norm(x: F, gamma: F, beta: F, epsilon: f64) -> F {
        layer_norm::on_flex(x, gamma, beta, epsilon)
    }
    fn marscf_lstm_cell(pre: F, c: F) -> F {
        lstm_cell::on_flex(pre, c)
    }
    fn marscf_conv_lstm_layer(gates: F, weight: F, steps: usize, spec: ConvSpec) -> F {
        conv_lstm::on_flex(gates, weight, steps, spec)
    }
    fn marscf_concat_elu(x: F) -> F {
        concat_elu::on_flex(x)
    }
    fn marscf_gate(x: F, dim: usize) -> F {
        gate::on_flex(x, dim)
    }
    fn marscf_mixture_log_densities(log_weights: F, mu: F, log_s: F, x: F) -> F {
        mixture::on_flex(log_weights, mu, log_s, x)
    }
    fn marscf_bisect_mixture(w: F, mu: F, inv_s: F, y: F, lo: F, hi: F, limits: (usize, f64)) -> F {
        bisect::on_flex(w, mu, inv_s, y, lo, hi, limits)
    }
    fn marscf_softmax(x: F) -> F {
        softmax::on_flex(x)
    }
    fn marscf_weight_norm(v: F, g: F) -> F {
        weight_norm::on_flex(v, g)
    }
    fn marscf_dropout(x: F, mask: Mask) -> F {
        dropout::on_flex(x, mask)
    }
    fn marscf_multi_head_attention(packed: F, heads: usize, mask: Option<Mask>) -> F {
        attention::on_flex(packed, heads, mask)
    }
}

/// See [`F`].
type A<C> = glue::AutodiffTensor<C>;

impl<C: CheckpointStrategy> FlexKernels for Autodiff<Flex, C> {
    fn marscf_conv2d(x: A<C>, weight: A<C>, bias: A<C>, spec: ConvSpec) -> A<C> {
        conv::on_autodiff::<C>(x, weight, bias, spec)
    }
    fn marscf_actnorm(x: A<C>, bias: A<C>, logs: A<C>, relu: bool) -> A<C> {
        actnorm::on_autodiff::<C>(x, bias, logs, relu)
    }
    fn marscf_layer_norm(x: A<C>, gamma: A<C>, beta: A<C>, epsilon: f64) -> A<C> {
        layer_norm::on_autodiff::<C>(x, gamma, beta, epsilon)
    }
    fn marscf_lstm_cell(pre: A<C>, c: A<C>) -> A<C> {
        lstm_cell::on_autodiff::<C>(pre, c)
    }
    fn marscf_conv_lstm_layer(gates: A<C>, weight: A<C>, steps: usize, spec: ConvSpec) -> A<C> {
        conv_lstm::on_autodiff::<C>(gates, weight, steps, spec)
    }
    fn marscf_concat_elu(x: A<C>) -> A<C> {
        concat_elu::on_autodiff::<C>(x)
    }
    fn marscf_gate(x: A<C>, dim: usize) -> A<C> {
        gate::on_autodiff::<C>(x, dim)
    }
    fn marscf_mixture_log_densities(log_weights: A<C>, mu: A<C>, log_s: A<C>, x: A<C>) -> A<C> {
        mixture::on_autodiff::<C>(log_weights, mu, log_s, x)
    }
    #[rustfmt::skip]
    fn marscf_bisect_mixture(
        w: A<C>, mu: A<C>, inv_s: A<C>, y: A<C>, lo: A<C>, hi: A<C>, limits: (usize, f64),
    ) -> A<C> {
        bisect::on_autodiff::<C>(w, mu, inv_s, y, lo, hi, limits)
    }
    fn marscf_softmax(x: A<C>) -> A<C> {
        softmax::on_autodiff::<C>(x)
    }
    fn marscf_weight_norm(v: A<C>, g: A<C>) -> A<C> {
        weight_norm::on_autodiff::<C>(v, g)
    }
    fn marscf_dropout(x: A<C>, mask: Mask) -> A<C> {
        dropout::on_autodiff::<C>(x, mask)
    }
    fn marscf_multi_head_attention(packed: A<C>, heads: usize, mask: Option<Mask>) -> A<C> {
        attention::on_autodiff::<C>(packed, heads, mask)
    }
}
