//! ActNorm (and a ReLU) on contiguous `f32` slices of `(N, C, P)`:
//! `y = (x + b_c) s_c` with `s_c = e^{logs_c}` (then `max(y, 0)`), and its gradients
//! `dx = dy m s_c`, `db_c = Σ dx`, `dlogs_c = Σ dy y`, with `m = [y > 0]` after a ReLU
//! (else 1), the sums over `(N, P)`. One worker per sample.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::exp;
use super::reduce::{chunk_len, dot, lanes};
use super::simd::with_widest_simd;

/// `y` from `x`, `bias` and `logs` (`C` each), `p` pixels per plane.
pub fn forward(x: &[f32], bias: &[f32], logs: &[f32], p: usize, relu: bool) -> Vec<f32> {
    let c = bias.len();
    let scale: Vec<f32> = logs.iter().map(|&l| exp(l)).collect();
    let scale = scale.as_slice();
    let mut y = vec![0.0f32; x.len()];
    let sample = chunk_len(c * p);
    y.par_chunks_mut(sample)
        .zip(x.par_chunks(sample))
        .for_each(|(y, x)| {
            with_widest_simd(
                #[inline(always)]
                move || {
                    for (((y, x), &b), &s) in y
                        .chunks_exact_mut(p)
                        .zip(x.chunks_exact(p))
                        .zip(bias)
                        .zip(scale)
                    {
                        for (y, &x) in y.iter_mut().zip(x) {
                            let v = (x + b) * s;
                            // `v <= 0` is false for NaN, which passes through as in Burn.
                            *y = if relu && v <= 0.0 { 0.0 } else { v };
                        }
                    }
                },
            )
        });
    y
}

/// The three gradients of [`forward`]'s inputs.
pub struct ActNormGradients {
    /// `dx`, `(N, C, P)`.
    pub x: Vec<f32>,
    /// `d bias`, `C`.
    pub bias: Vec<f32>,
    /// `d logs`, `C`.
    pub logs: Vec<f32>,
}

/// The gradients from the output `y`, `dy` and `logs`.
pub fn backward(y: &[f32], dy: &[f32], logs: &[f32], p: usize, relu: bool) -> ActNormGradients {
    let c = logs.len();
    let scale: Vec<f32> = logs.iter().map(|&l| exp(l)).collect();
    let scale = scale.as_slice();
    let mut dx = vec![0.0f32; y.len()];
    // Per sample, per channel: (Σ dx, Σ dy y).
    let sample = chunk_len(c * p);
    let sums: Vec<Vec<[f32; 2]>> = dx
        .par_chunks_mut(sample)
        .zip(y.par_chunks(sample).zip(dy.par_chunks(sample)))
        .map(|(dx, (y, dy))| {
            with_widest_simd(
                #[inline(always)]
                move || {
                    let mut sums = Vec::with_capacity(c);
                    let planes = dx
                        .chunks_exact_mut(p)
                        .zip(y.chunks_exact(p).zip(dy.chunks_exact(p)));
                    for ((dx, (y, dy)), &s) in planes.zip(scale) {
                        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                            // After a ReLU the outputs `<= 0` pass no gradient.
                            *dx = if relu && y <= 0.0 { 0.0 } else { dy * s };
                        }
                        sums.push([lanes(dx, 0.0, |s, v| s + v), dot(dy, y)]);
                    }
                    sums
                },
            )
        })
        .collect();
    let (mut bias, mut d_logs) = (vec![0.0f64; c], vec![0.0f64; c]);
    for sample in sums {
        for ((db, dl), [sdx, sdy]) in bias.iter_mut().zip(&mut d_logs).zip(sample) {
            *db += sdx as f64;
            *dl += sdy as f64;
        }
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    ActNormGradients {
        x: dx,
        bias: narrow(bias),
        logs: narrow(d_logs),
    }
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::actnorm`].
pub fn actnorm(x: Tensor<4>, bias: Tensor<4>, logs: Tensor<4>, relu: bool) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_actnorm(
        x.into_dispatch(),
        bias.into_dispatch(),
        logs.into_dispatch(),
        relu,
    ))
}

/// [`FlexKernels::marscf_actnorm`] on Flex.
pub fn on_flex(x: FlexTensor, bias: FlexTensor, logs: FlexTensor, relu: bool) -> FlexTensor {
    let shape = dims4(&x);
    let (x, bias, logs) = (values(&x), values(&bias), values(&logs));
    tensor(forward(&x, &bias, &logs, shape[2] * shape[3], relu), shape)
}

/// Backward of [`on_flex`]: parents `[x, bias, logs]`, state the output, `logs` and
/// whether a ReLU followed.
#[derive(Debug)]
pub struct ActNormBackward;

impl Backward<Flex, 3> for ActNormBackward {
    type State = (FlexTensor, FlexTensor, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((y, logs, relu), dy, parents) = unpack(ops, grads);
        let shape = dims4(&y);
        let (y, dy, logs) = (values(&y), values(&dy), values(&logs));
        let g = backward(&y, &dy, &logs, shape[2] * shape[3], relu);
        let channel = [1, shape[1], 1, 1];
        let gradients = [
            tensor(g.x, shape),
            tensor(g.bias, channel),
            tensor(g.logs, channel),
        ];
        register(grads, parents, gradients);
    }
}

/// [`FlexKernels::marscf_actnorm`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(
    x: AutodiffTensor<C>,
    bias: AutodiffTensor<C>,
    logs: AutodiffTensor<C>,
    relu: bool,
) -> AutodiffTensor<C> {
    record::<C, _, _>(ActNormBackward, [x, bias, logs], |[x, bias, logs], _| {
        let y = on_flex(x, bias, logs.clone(), relu);
        (y.clone(), Some((y, logs, relu)))
    })
}
