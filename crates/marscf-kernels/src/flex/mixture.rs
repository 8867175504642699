//! The mixture of logistics' log-density and log-CDF on contiguous `f32` slices: sample
//! `b`, component `j` and position `p` (of `P = C H W`) at `(b k + j) P + p`; `x` at
//! `b P + p`.
//!
//! Forward, with `z_j = (x - μ_j) e^{-ln s_j}` and `l_j = ln(1 + e^{-|z_j|})` (so that
//! `ln p_j = -|z_j| - ln s_j - 2 l_j` and `ln σ(z_j) = min(z_j, 0) - l_j`, accurate in both
//! tails): `A = lse_j(ln π_j + ln p_j)`, `B = lse_j(ln π_j + ln σ(z_j))`.
//! Backward, with the responsibilities `a_j = e^{ln π_j + ln p_j - A}` and
//! `b_j = e^{ln π_j + ln σ(z_j) - B}` and the upstream `dA`, `dB`:
//! `g_j = dA a_j (1 - 2 σ(z_j)) + dB b_j (1 - σ(z_j))`, then `dx = Σ_j g_j e^{-ln s_j}`,
//! `dμ_j = -g_j e^{-ln s_j}`, `d ln s_j = -g_j z_j - dA a_j`, `d ln π_j = dA a_j + dB b_j`.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::{exp, ln, ln_1p, sigmoid};
use super::reduce::chunk_len;
use super::simd::with_widest_simd;
use super::tuning::MIXTURE_BLOCK;

/// A batch of mixtures and the points they are evaluated at.
#[derive(Clone, Copy)]
pub struct Mixture<'a> {
    /// `ln π`, `(B, k, P)` flattened.
    pub log_weights: &'a [f32],
    /// `μ`, `(B, k, P)`.
    pub mu: &'a [f32],
    /// `ln s`, `(B, k, P)`.
    pub log_s: &'a [f32],
    /// `x`, `(B, P)`.
    pub x: &'a [f32],
    /// Components `k`.
    pub components: usize,
    /// Positions `P` per sample.
    pub positions: usize,
}

/// The gradients of the mixture's inputs: `(B, k, P)` each, and `x` `(B, P)`.
pub struct MixtureGrads {
    /// `d ln π`.
    pub log_weights: Vec<f32>,
    /// `dμ`.
    pub mu: Vec<f32>,
    /// `d ln s`.
    pub log_s: Vec<f32>,
    /// `dx`.
    pub x: Vec<f32>,
}

/// `z` and the two per-component terms `(ln π + ln p, ln π + ln σ(z))` of one element.
#[inline(always)]
fn element(x: f32, log_weight: f32, mu: f32, log_s: f32) -> (f32, f32, f32) {
    let z = (x - mu) * exp(-log_s);
    let tail = ln_1p(exp(-z.abs()));
    (
        z,
        log_weight - z.abs() - log_s - 2.0 * tail,
        log_weight + z.min(0.0) - tail,
    )
}

impl Mixture<'_> {
    /// Component `j`'s row of sample `b` over positions `p0..p0 + n`, in `values`.
    #[inline(always)]
    fn row<'v>(&self, values: &'v [f32], b: usize, j: usize, p0: usize, n: usize) -> &'v [f32] {
        &values[(b * self.components + j) * self.positions + p0..][..n]
    }

    /// `(A, B)` of positions `p0..p0 + n` of sample `b`, into `pdf` and `cdf`; `terms`
    /// (`2 k MIXTURE_BLOCK`) holds each component's two terms between the passes.
    #[inline(always)]
    fn block_forward(&self, b: usize, p0: usize, [pdf, cdf]: [&mut [f32]; 2], terms: &mut [f32]) {
        let n = pdf.len();
        let x = &self.x[b * self.positions + p0..][..n];
        let (terms_pdf, terms_cdf) = terms.split_at_mut(self.components * MIXTURE_BLOCK);
        let (mut max_pdf, mut max_cdf) = (
            [f32::NEG_INFINITY; MIXTURE_BLOCK],
            [f32::NEG_INFINITY; MIXTURE_BLOCK],
        );
        for j in 0..self.components {
            let (lw, mu, ls) = (
                self.row(self.log_weights, b, j, p0, n),
                self.row(self.mu, b, j, p0, n),
                self.row(self.log_s, b, j, p0, n),
            );
            let (tp, tc) = (
                &mut terms_pdf[j * MIXTURE_BLOCK..][..n],
                &mut terms_cdf[j * MIXTURE_BLOCK..][..n],
            );
            for i in 0..n {
                let (_, p, c) = element(x[i], lw[i], mu[i], ls[i]);
                (tp[i], tc[i]) = (p, c);
                max_pdf[i] = max_pdf[i].max(p);
                max_cdf[i] = max_cdf[i].max(c);
            }
        }
        let (mut sum_pdf, mut sum_cdf) = ([0.0f32; MIXTURE_BLOCK], [0.0f32; MIXTURE_BLOCK]);
        for j in 0..self.components {
            let (tp, tc) = (
                &terms_pdf[j * MIXTURE_BLOCK..][..n],
                &terms_cdf[j * MIXTURE_BLOCK..][..n],
            );
            for i in 0..n {
                sum_pdf[i] += exp(tp[i] - max_pdf[i]);
                sum_cdf[i] += exp(tc[i] - max_cdf[i]);
            }
        }
        for i in 0..n {
            pdf[i] = max_pdf[i] + ln(sum_pdf[i]);
            cdf[i] = max_cdf[i] + ln(sum_cdf[i]);
        }
    }
}

/// `[A; B]`: the log-densities of every sample, then the log-CDFs, `(2B, P)` flattened.
pub fn forward(m: Mixture) -> Vec<f32> {
    let total = m.x.len();
    let mut out = vec![0.0f32; 2 * total];
    let (pdf, cdf) = out.split_at_mut(total);
    let sample = chunk_len(m.positions);
    pdf.par_chunks_mut(sample)
        .zip(cdf.par_chunks_mut(sample))
        .enumerate()
        .for_each(|(b, (pdf, cdf))| {
            let mut terms = vec![0.0f32; 2 * m.components * MIXTURE_BLOCK];
            with_widest_simd(
                #[inline(always)]
                || {
                    let blocks = pdf
                        .chunks_mut(MIXTURE_BLOCK)
                        .zip(cdf.chunks_mut(MIXTURE_BLOCK));
                    for (block, (pdf, cdf)) in blocks.enumerate() {
                        m.block_forward(b, block * MIXTURE_BLOCK, [pdf, cdf], &mut terms);
                    }
                },
            )
        });
    out
}

/// The gradients of every input from `out = [A; B]` (the forward's output) and its
/// gradient `d_out = [dA; dB]`, both `(2B, P)` flattened.
pub fn backward(m: Mixture, out: &[f32], d_out: &[f32]) -> MixtureGrads {
    let (total, per_sample) = (m.x.len(), chunk_len(m.components * m.positions));
    let mut grads = MixtureGrads {
        log_weights: vec![0.0; m.log_weights.len()],
        mu: vec![0.0; m.mu.len()],
        log_s: vec![0.0; m.log_s.len()],
        x: vec![0.0; total],
    };
    let (a_all, b_all) = out.split_at(total);
    let (da_all, db_all) = d_out.split_at(total);
    grads
        .log_weights
        .par_chunks_mut(per_sample)
        .zip(grads.mu.par_chunks_mut(per_sample))
        .zip(grads.log_s.par_chunks_mut(per_sample))
        .zip(grads.x.par_chunks_mut(chunk_len(m.positions)))
        .enumerate()
        .for_each(|(b, (((d_lw, d_mu), d_ls), dx))| {
            let at = b * m.positions..(b + 1) * m.positions;
            let upstream = [
                &a_all[at.clone()],
                &b_all[at.clone()],
                &da_all[at.clone()],
                &db_all[at],
            ];
            with_widest_simd(
                #[inline(always)]
                || sample_backward(&m, b, upstream, [d_lw, d_mu, d_ls], dx),
            )
        });
    grads
}

/// Sample `b`'s gradients: `upstream = [A, B, dA, dB]` over its positions, `rows =
/// [d ln π, dμ, d ln s]` (`k P`), `dx` (`P`).
#[inline(always)]
fn sample_backward(
    m: &Mixture,
    b: usize,
    [a, bc, da, db]: [&[f32]; 4],
    [d_lw, d_mu, d_ls]: [&mut [f32]; 3],
    dx: &mut [f32],
) {
    let p = m.positions;
    let x = &m.x[b * p..][..p];
    for j in 0..m.components {
        let (lw, mu, ls) = (
            m.row(m.log_weights, b, j, 0, p),
            m.row(m.mu, b, j, 0, p),
            m.row(m.log_s, b, j, 0, p),
        );
        let rows = j * p..(j + 1) * p;
        let (g_lw, g_mu, g_ls) = (
            &mut d_lw[rows.clone()],
            &mut d_mu[rows.clone()],
            &mut d_ls[rows],
        );
        for i in 0..p {
            let (z, tp, tc) = element(x[i], lw[i], mu[i], ls[i]);
            let (resp_pdf, resp_cdf) = (da[i] * exp(tp - a[i]), db[i] * exp(tc - bc[i]));
            let s = sigmoid(z);
            let g = resp_pdf * (1.0 - 2.0 * s) + resp_cdf * (1.0 - s);
            let inv_scale = exp(-ls[i]);
            dx[i] += g * inv_scale;
            g_mu[i] = -g * inv_scale;
            g_ls[i] = -g * z - resp_pdf;
            g_lw[i] = resp_pdf + resp_cdf;
        }
    }
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::mixture_log_densities`].
pub fn mixture_log_densities(
    mixture: &crate::LogMixture,
    x: Tensor<4>,
) -> crate::MixtureLogDensities {
    let [b, c, h, w] = x.dims();
    let both = Tensor::<4>::from_dispatch(<Dispatch as FlexKernels>::marscf_mixture_log_densities(
        mixture.log_weights.clone().into_dispatch(),
        mixture.mu.clone().into_dispatch(),
        mixture.log_s.clone().into_dispatch(),
        x.into_dispatch(),
    ));
    crate::MixtureLogDensities {
        log_pdf: both.clone().slice([0..b, 0..c, 0..h, 0..w]),
        log_cdf: both.slice([b..2 * b, 0..c, 0..h, 0..w]),
    }
}

impl<'a> Mixture<'a> {
    /// The slices of a mixture `(B, k, C, H, W)` each and its points `(B, C, H, W)`.
    fn of([log_weights, mu, log_s, x]: [&'a [f32]; 4], shape: [usize; 5]) -> Self {
        let [_, k, c, h, w] = shape;
        Self {
            log_weights,
            mu,
            log_s,
            x,
            components: k,
            positions: c * h * w,
        }
    }
}

/// [`FlexKernels::marscf_mixture_log_densities`] on Flex.
pub fn on_flex(
    log_weights: FlexTensor,
    mu: FlexTensor,
    log_s: FlexTensor,
    x: FlexTensor,
) -> FlexTensor {
    let [b, c, h, w] = dims4(&x);
    let shape = dims5(&mu);
    let [lw, mu, ls, x] = [&log_weights, &mu, &log_s, &x].map(values);
    tensor(
        forward(Mixture::of([&lw, &mu, &ls, &x], shape)),
        [2 * b, c, h, w],
    )
}

/// Backward of [`on_flex`]: parents `[ln π, μ, ln s, x]`, state the four inputs and the
/// output.
#[derive(Debug)]
pub struct MixtureLogDensitiesBackward;

impl Backward<Flex, 4> for MixtureLogDensitiesBackward {
    type State = [FlexTensor; 5];

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ([log_weights, mu, log_s, x, out], d_out, parents) = unpack(ops, grads);
        let (shape, x_shape) = (dims5(&mu), dims4(&x));
        let [lw, mu, ls, x] = [&log_weights, &mu, &log_s, &x].map(values);
        let m = Mixture::of([&lw, &mu, &ls, &x], shape);
        let g = backward(m, &values(&out), &values(&d_out));
        let gradients = [
            tensor(g.log_weights, shape),
            tensor(g.mu, shape),
            tensor(g.log_s, shape),
            tensor(g.x, x_shape),
        ];
        register(grads, parents, gradients);
    }
}

/// [`FlexKernels::marscf_mixture_log_densities`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(
    log_weights: AutodiffTensor<C>,
    mu: AutodiffTensor<C>,
    log_s: AutodiffTensor<C>,
    x: AutodiffTensor<C>,
) -> AutodiffTensor<C> {
    let inputs = [log_weights, mu, log_s, x];
    record::<C, _, _>(MixtureLogDensitiesBackward, inputs, |[lw, mu, ls, x], _| {
        let out = on_flex(lw.clone(), mu.clone(), ls.clone(), x.clone());
        (out.clone(), Some([lw, mu, ls, x, out]))
    })
}
