//! Weight normalisation on a contiguous `f32` direction `v` of `out` rows of `n` values and
//! gains `g` `(out)`: `w = v g / √s` row by row with `s = Σ v²`; backward, with
//! `a = Σ dw ⊙ v`: `dg = a / √s`, `dv = (g / √s) (dw - v a / s)`.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::reduce::{chunk_len, dot};
use super::simd::with_widest_simd;
use super::tuning::ROWS_PER_TASK;

/// `w` of `v` `(out, n)` and `g` `(out)`.
pub fn forward(v: &[f32], g: &[f32]) -> Vec<f32> {
    let n = chunk_len(v.len() / g.len().max(1));
    let mut w = vec![0.0f32; v.len()];
    w.par_chunks_mut(n)
        .zip(v.par_chunks(n).zip(g))
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(w, (v, &g))| {
            with_widest_simd(
                #[inline(always)]
                || {
                    let scale = g / dot(v, v).sqrt();
                    w.iter_mut().zip(v).for_each(|(w, v)| *w = v * scale);
                },
            )
        });
    w
}

/// `(dv, dg)` given `dw`, for `v` `(out, n)` and `g` `(out)`.
pub fn backward(v: &[f32], g: &[f32], dw: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = chunk_len(v.len() / g.len().max(1));
    let (mut dv, mut dg) = (vec![0.0f32; v.len()], vec![0.0f32; g.len()]);
    dv.par_chunks_mut(n)
        .zip(dg.par_iter_mut())
        .zip(v.par_chunks(n).zip(dw.par_chunks(n)).zip(g))
        .with_min_len(ROWS_PER_TASK)
        .for_each(|((dv, dg), ((v, dw), &g))| {
            with_widest_simd(
                #[inline(always)]
                || {
                    let (s, a) = (dot(v, v), dot(dw, v));
                    let norm = s.sqrt();
                    *dg = a / norm;
                    let (scale, shift) = (g / norm, a / s);
                    for (dv, (v, dw)) in dv.iter_mut().zip(v.iter().zip(dw)) {
                        *dv = scale * (dw - v * shift);
                    }
                },
            )
        });
    (dv, dg)
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::weight_norm`].
pub fn weight_norm<const D: usize>(v: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_weight_norm(
        v.into_dispatch(),
        g.into_dispatch(),
    ))
}

/// [`FlexKernels::marscf_weight_norm`] on Flex.
pub fn on_flex(v: FlexTensor, g: FlexTensor) -> FlexTensor {
    tensor(forward(&values(&v), &values(&g)), v.shape())
}

/// Backward of [`on_flex`]: parents `[v, g]`, state the contiguous `v` and `g`.
#[derive(Debug)]
pub struct WeightNormBackward;

impl Backward<Flex, 2> for WeightNormBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((v, g), dw, parents) = unpack(ops, grads);
        let (dv, dg) = backward(&values(&v), &values(&g), &values(&dw));
        register(
            grads,
            parents,
            [tensor(dv, v.shape()), tensor(dg, g.shape())],
        );
    }
}

/// [`FlexKernels::marscf_weight_norm`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(
    v: AutodiffTensor<C>,
    g: AutodiffTensor<C>,
) -> AutodiffTensor<C> {
    record::<C, _, _>(WeightNormBackward, [v, g], |[v, g], tracked| {
        let w = on_flex(v.clone(), g.clone());
        (w, tracked.then_some((v, g)))
    })
}
