//! Softmax over rows of length `L` on contiguous `f32` slices, whole tensors or row by
//! row (attention uses the row functions): `p = e^{x - max x} / Σ e^{x - max x}` and the
//! gradient from the saved output, `dx = p ⊙ (dp - Σ dp ⊙ p)`.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::exp_nonpositive;
use super::reduce::{chunk_len, dot, lanes, map_lanes};
use super::simd::with_widest_simd;
use super::tuning::ROWS_PER_TASK;

/// `p = softmax(x)` over each row of length `len`.
pub fn forward(x: &[f32], len: usize) -> Vec<f32> {
    let mut p = x.to_vec();
    p.par_chunks_mut(chunk_len(len * ROWS_PER_TASK))
        .for_each(|p| {
            with_widest_simd(
                #[inline(always)]
                || {
                    p.chunks_exact_mut(len)
                        .for_each(|row| softmax_in_place(row, 1.0))
                },
            )
        });
    p
}

/// `row = softmax(scale row)` in place (`scale > 0`).
#[inline(always)]
pub fn softmax_in_place(row: &mut [f32], scale: f32) {
    let inv_sum = unnormalised_softmax_in_place(row, scale);
    row.iter_mut().for_each(|p| *p *= inv_sum);
}

/// `row = e^{scale (row - max row)}` in place (`scale > 0`), the softmax before its
/// normalisation; returns `1 / Σ row`, the factor that normalises it.
#[inline(always)]
pub fn unnormalised_softmax_in_place(row: &mut [f32], scale: f32) -> f32 {
    debug_assert!(scale > 0.0, "softmax scale {scale}");
    // NaNs pass over the max (as `f32::max` lets them) and make their own exponent NaN.
    let max = lanes(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    1.0 / map_lanes(
        row,
        0.0,
        |v| exp_nonpositive(scale * (v - max)),
        |s, v| s + v,
    )
}

/// `dx = p ⊙ (dp - Σ_row dp ⊙ p)`, the gradient of `p = softmax(x)`.
pub fn backward(p: &[f32], dp: &[f32], len: usize) -> Vec<f32> {
    let mut dx = dp.to_vec();
    let task = chunk_len(len * ROWS_PER_TASK);
    dx.par_chunks_mut(task)
        .zip(p.par_chunks(task))
        .for_each(|(dx, p)| {
            with_widest_simd(
                #[inline(always)]
                || {
                    for (dx, p) in dx.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
                        softmax_grad_in_place(p, dx, 1.0);
                    }
                },
            )
        });
    dx
}

/// `d = scale p ⊙ (d - Σ d ⊙ p)` in place: from `d = ∂/∂p` of one row `p = softmax(scale
/// x)`, the gradient with respect to `x`.
#[inline(always)]
pub fn softmax_grad_in_place(p: &[f32], d: &mut [f32], scale: f32) {
    let dot = dot(p, d);
    for (d, p) in d.iter_mut().zip(p) {
        *d = scale * p * (*d - dot);
    }
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::softmax`].
pub fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_softmax(x.into_dispatch()))
}

/// The length of the last dimension, the rows softmax normalises.
fn row_len(shape: &Shape) -> usize {
    shape[shape.num_dims() - 1]
}

/// [`FlexKernels::marscf_softmax`] on Flex.
pub fn on_flex(x: FlexTensor) -> FlexTensor {
    let shape = x.shape();
    tensor(forward(&values(&x), row_len(&shape)), shape)
}

/// Backward of [`on_flex`]: parent `x`, state the output `p`.
#[derive(Debug)]
pub struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (p, dp, parents) = unpack(ops, grads);
        let shape = p.shape();
        let dx = backward(&values(&p), &values(&dp), row_len(&shape));
        register(grads, parents, [tensor(dx, shape)]);
    }
}

/// [`FlexKernels::marscf_softmax`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(x: AutodiffTensor<C>) -> AutodiffTensor<C> {
    record::<C, _, _>(SoftmaxBackward, [x], |[x], _| {
        let p = on_flex(x);
        (p.clone(), Some(p))
    })
}
