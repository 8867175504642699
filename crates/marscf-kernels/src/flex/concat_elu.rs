//! `concat_elu` on contiguous `f32` slices: per sample, `[elu(x); elu(-x)]` over the
//! channels, and its gradient `dx = dy₁ elu'(x) - dy₂ elu'(-x)`.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::exp;
use super::reduce::chunk_len;
use super::simd::with_widest_simd;

/// `elu(v) = v` for `v > 0`, `e^v - 1` otherwise; with its derivative (`1` or `e^v`).
#[inline(always)]
fn elu_and_slope(v: f32) -> (f32, f32) {
    let e = exp(v.min(0.0));
    if v > 0.0 { (v, 1.0) } else { (e - 1.0, e) }
}

/// `(B, C·H·W)` as `batch` samples of `plane` elements -> `(B, 2 C·H·W)` (empty if `x` is).
pub fn forward(x: &[f32], batch: usize) -> Vec<f32> {
    let plane = chunk_len(x.len().checked_div(batch).unwrap_or(0));
    let mut y = vec![0.0f32; 2 * x.len()];
    y.par_chunks_mut(2 * plane)
        .zip(x.par_chunks(plane))
        .for_each(|(y, x)| {
            with_widest_simd(
                #[inline(always)]
                || {
                    let (pos, neg) = y.split_at_mut(plane);
                    for ((p, n), &v) in pos.iter_mut().zip(neg.iter_mut()).zip(x) {
                        *p = elu_and_slope(v).0;
                        *n = elu_and_slope(-v).0;
                    }
                },
            )
        });
    y
}

/// `dx` from the input `x` and `dy` `(B, 2 C·H·W)`.
pub fn backward(x: &[f32], dy: &[f32], batch: usize) -> Vec<f32> {
    let plane = chunk_len(x.len().checked_div(batch).unwrap_or(0));
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(plane)
        .zip(x.par_chunks(plane).zip(dy.par_chunks(2 * plane)))
        .for_each(|(dx, (x, dy))| {
            with_widest_simd(
                #[inline(always)]
                || {
                    let (dpos, dneg) = dy.split_at(plane);
                    for (((d, &v), &a), &b) in dx.iter_mut().zip(x).zip(dpos).zip(dneg) {
                        *d = a * elu_and_slope(v).1 - b * elu_and_slope(-v).1;
                    }
                },
            )
        });
    dx
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::concat_elu`].
pub fn concat_elu(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_concat_elu(
        x.into_dispatch(),
    ))
}

/// [`FlexKernels::marscf_concat_elu`] on Flex.
pub fn on_flex(x: FlexTensor) -> FlexTensor {
    let [b, c, h, w] = dims4(&x);
    tensor(forward(&values(&x), b), [b, 2 * c, h, w])
}

/// Backward of [`on_flex`]: parent `x`, state the contiguous `x`.
#[derive(Debug)]
pub struct ConcatEluBackward;

impl Backward<Flex, 1> for ConcatEluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, dy, parents) = unpack(ops, grads);
        let shape = dims4(&x);
        let dx = backward(&values(&x), &values(&dy), shape[0]);
        register(grads, parents, [tensor(dx, shape)]);
    }
}

/// [`FlexKernels::marscf_concat_elu`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(x: AutodiffTensor<C>) -> AutodiffTensor<C> {
    record::<C, _, _>(ConcatEluBackward, [x], |[x], _| {
        (on_flex(x.clone()), Some(x))
    })
}
