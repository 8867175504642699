//! The gated linear unit `a σ(b)` on contiguous `f32` slices, `[a; b]` the two halves of
//! each of `outer` blocks, and its gradient `(dy σ(b), dy a σ(b) (1 - σ(b)))`.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::sigmoid;
use super::reduce::chunk_len;
use super::simd::with_widest_simd;

/// `x` as `outer` blocks `[a; b]` -> `outer` blocks `a σ(b)` (half as long).
pub fn forward(x: &[f32], outer: usize) -> Vec<f32> {
    let half = chunk_len(x.len().checked_div(outer).unwrap_or(0) / 2);
    let mut y = vec![0.0f32; x.len() / 2];
    y.par_chunks_mut(half)
        .zip(x.par_chunks(2 * half))
        .for_each(|(y, x)| {
            with_widest_simd(
                #[inline(always)]
                || {
                    let (a, b) = x.split_at(half);
                    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                        *y = a * sigmoid(b);
                    }
                },
            )
        });
    y
}

/// `dx = [dy σ(b); dy a σ(b) (1 - σ(b))]` per block.
pub fn backward(x: &[f32], dy: &[f32], outer: usize) -> Vec<f32> {
    let half = chunk_len(x.len().checked_div(outer).unwrap_or(0) / 2);
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(2 * half)
        .zip(x.par_chunks(2 * half).zip(dy.par_chunks(half)))
        .for_each(|(dx, (x, dy))| {
            with_widest_simd(
                #[inline(always)]
                || {
                    let (a, b) = x.split_at(half);
                    let (da, db) = dx.split_at_mut(half);
                    for ((((da, db), &a), &b), &dy) in da.iter_mut().zip(db).zip(a).zip(b).zip(dy) {
                        let s = sigmoid(b);
                        *da = dy * s;
                        *db = dy * a * s * (1.0 - s);
                    }
                },
            )
        });
    dx
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::gate`].
pub fn gate<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_gate(
        x.into_dispatch(),
        dim,
    ))
}

/// Blocks `[a; b]` of `shape` gated along `dim`: the product of the sizes before `dim`.
fn blocks(shape: &Shape, dim: usize) -> usize {
    shape.iter().take(dim).product()
}

/// [`FlexKernels::marscf_gate`] on Flex.
pub fn on_flex(x: FlexTensor, dim: usize) -> FlexTensor {
    let mut shape = x.shape();
    let y = forward(&values(&x), blocks(&shape, dim));
    shape[dim] /= 2;
    tensor(y, shape)
}

/// Backward of [`on_flex`]: parent `x`, state the contiguous `x` and the gated dimension.
#[derive(Debug)]
pub struct GateBackward;

impl Backward<Flex, 1> for GateBackward {
    type State = (FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((x, dim), dy, parents) = unpack(ops, grads);
        let shape = x.shape();
        let dx = backward(&values(&x), &values(&dy), blocks(&shape, dim));
        register(grads, parents, [tensor(dx, shape)]);
    }
}

/// [`FlexKernels::marscf_gate`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(x: AutodiffTensor<C>, dim: usize) -> AutodiffTensor<C> {
    record::<C, _, _>(GateBackward, [x], |[x], _| {
        (on_flex(x.clone(), dim), Some((x, dim)))
    })
}
