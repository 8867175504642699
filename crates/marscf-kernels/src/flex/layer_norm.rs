//! Layer normalisation on contiguous `f32` rows of length `C`:
//! `x̂ = (x - μ) r` with `r = 1 / √(σ² + ε)`, `y = x̂ ⊙ γ + β`, and its gradients
//! `dx = r (g - mean(g) - x̂ mean(g ⊙ x̂))` with `g = dy ⊙ γ`, `dγ = Σ dy ⊙ x̂`, `dβ = Σ dy`
//! (sums over the rows in `f64`, in one contiguous run of rows per worker, added in order).

use rayon::prelude::*;

use super::glue::prelude::*;
use super::reduce::{chunk_len, lanes, run_len, sum_runs};
use super::simd::with_widest_simd;
use super::tuning::ROWS_PER_TASK;

/// `(μ, r)` of one row.
#[inline(always)]
fn moments(x: &[f32], epsilon: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lanes(x, 0.0, |s, v| s + v) / n;
    let mut var = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|&v| (v - mean) * (v - mean))
        .sum();
    for chunk in chunks {
        for (s, &v) in var.iter_mut().zip(chunk) {
            *s += (v - mean) * (v - mean);
        }
    }
    let var = (var.iter().sum::<f32>() + rest) / n;
    (mean, 1.0 / (var + epsilon).sqrt())
}

/// `y` from `x` (rows of `gamma.len()`), `gamma`, `beta`.
pub fn forward(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Vec<f32> {
    let c = gamma.len();
    let mut y = vec![0.0f32; x.len()];
    let task = chunk_len(c * ROWS_PER_TASK);
    y.par_chunks_mut(task)
        .zip(x.par_chunks(task))
        .for_each(|(y, x)| {
            with_widest_simd(
                #[inline(always)]
                move || {
                    for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                        let (mean, r) = moments(x, epsilon);
                        for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                            *y = (x - mean) * r * g + b;
                        }
                    }
                },
            )
        });
    y
}

/// The three gradients of [`forward`]'s inputs.
pub struct LayerNormGradients {
    /// `dx`, the shape of `x`.
    pub x: Vec<f32>,
    /// `dγ`, `C`.
    pub gamma: Vec<f32>,
    /// `dβ`, `C`.
    pub beta: Vec<f32>,
}

/// The gradients from the input `x`, `gamma` and `dy` (the row moments are recomputed).
pub fn backward(x: &[f32], gamma: &[f32], dy: &[f32], epsilon: f32) -> LayerNormGradients {
    let c = gamma.len();
    let rows = x.len() / c.max(1);
    let run = chunk_len(run_len(rows) * c);
    let mut dx = vec![0.0f32; x.len()];
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(run)
        .zip(x.par_chunks(run).zip(dy.par_chunks(run)))
        .map(|(dx, (x, dy))| {
            with_widest_simd(
                #[inline(always)]
                move || {
                    let (mut d_gamma, mut d_beta) = (vec![0.0f64; c], vec![0.0f64; c]);
                    let mut g = vec![0.0f32; c];
                    let rows = dx
                        .chunks_exact_mut(c)
                        .zip(x.chunks_exact(c).zip(dy.chunks_exact(c)));
                    for (dx, (x, dy)) in rows {
                        let (mean, r) = moments(x, epsilon);
                        // g = dy γ; the two row means of g and g x̂.
                        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                        for ((((g, &x), &dy), &gm), (dg, db)) in g
                            .iter_mut()
                            .zip(x)
                            .zip(dy)
                            .zip(gamma)
                            .zip(d_gamma.iter_mut().zip(d_beta.iter_mut()))
                        {
                            let xhat = (x - mean) * r;
                            *g = dy * gm;
                            sum_g += *g;
                            sum_gx += *g * xhat;
                            *dg += (dy * xhat) as f64;
                            *db += dy as f64;
                        }
                        let (mean_g, mean_gx) = (sum_g / c as f32, sum_gx / c as f32);
                        for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(&g) {
                            let xhat = (x - mean) * r;
                            *dx = r * (g - mean_g - xhat * mean_gx);
                        }
                    }
                    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
                    (narrow(d_gamma), narrow(d_beta))
                },
            )
        })
        .collect();
    let (gamma_sum, beta_sum) = sum_runs(partials, [c, c]);
    LayerNormGradients {
        x: dx,
        gamma: gamma_sum,
        beta: beta_sum,
    }
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::layer_norm`].
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// [`FlexKernels::marscf_layer_norm`] on Flex.
pub fn on_flex(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> FlexTensor {
    let y = forward(&values(&x), &values(&gamma), &values(&beta), epsilon as f32);
    tensor(y, x.shape())
}

/// Backward of [`on_flex`]: parents `[x, gamma, beta]`, state the contiguous `x`, `gamma`
/// and `epsilon`.
#[derive(Debug)]
pub struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = (FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((x, gamma, epsilon), dy, parents) = unpack(ops, grads);
        let g = backward(&values(&x), &values(&gamma), &values(&dy), epsilon as f32);
        let c = g.gamma.len();
        let gradients = [
            tensor(g.x, x.shape()),
            tensor(g.gamma, [c]),
            tensor(g.beta, [c]),
        ];
        register(grads, parents, gradients);
    }
}

/// [`FlexKernels::marscf_layer_norm`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(
    x: AutodiffTensor<C>,
    gamma: AutodiffTensor<C>,
    beta: AutodiffTensor<C>,
    epsilon: f64,
) -> AutodiffTensor<C> {
    record::<C, _, _>(
        LayerNormBackward,
        [x, gamma, beta],
        |[x, gamma, beta], _| {
            let y = on_flex(x.clone(), gamma.clone(), beta, epsilon);
            (y, Some((x, gamma, epsilon)))
        },
    )
}
