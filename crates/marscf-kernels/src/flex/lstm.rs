//! The ConvLSTM cell's element-wise part in one pass, forward and backward, on contiguous
//! `f32` slices.
//!
//! Per sample, `a = gates + recurrent` holds the four gate pre-activations `[i, f, g, o]`,
//! each `hidden · H · W` long; with `σ` the sigmoid:
//! `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`. The output is `[h'; c']`
//! stacked over the batch, `(2B, hidden, H, W)`.

use rayon::prelude::*;

use super::math::{sigmoid, tanh, with_widest_simd};

/// The cell's inputs: `gates` and `recurrent` `(B, 4 hidden, H, W)`, `c` `(B, hidden, H, W)`.
#[derive(Clone, Copy)]
pub struct CellInputs<'a> {
    /// Input-to-gates pre-activations.
    pub gates: &'a [f32],
    /// Hidden-to-gates pre-activations (added to `gates`).
    pub recurrent: &'a [f32],
    /// Previous cell state.
    pub c: &'a [f32],
    /// Batch `B`.
    pub batch: usize,
}

impl<'a> CellInputs<'a> {
    /// `hidden · H · W`, the length of one gate of one sample.
    fn plane(&self) -> usize {
        self.c.len() / self.batch
    }

    /// Sample `b`'s slices: `([i, f, g, o] of gates, [i, f, g, o] of recurrent, c)`.
    fn sample(&self, b: usize) -> ([&'a [f32]; 4], [&'a [f32]; 4], &'a [f32]) {
        let p = self.plane();
        let split = |t: &'a [f32]| -> [&'a [f32]; 4] {
            let s = &t[4 * b * p..][..4 * p];
            [&s[..p], &s[p..2 * p], &s[2 * p..3 * p], &s[3 * p..]]
        };
        (
            split(self.gates),
            split(self.recurrent),
            &self.c[b * p..][..p],
        )
    }
}

/// `[h'; c']`, `(2B, hidden, H, W)`.
pub fn forward(inputs: CellInputs<'_>) -> Vec<f32> {
    let p = inputs.plane();
    let mut out = vec![0.0f32; 2 * inputs.c.len()];
    let (hs, cs) = out.split_at_mut(inputs.c.len());
    hs.par_chunks_mut(p)
        .zip(cs.par_chunks_mut(p))
        .enumerate()
        .for_each(|(b, (h_out, c_out))| {
            let (a, r, c) = inputs.sample(b);
            with_widest_simd(
                #[inline(always)]
                || forward_sample(a, r, c, h_out, c_out),
            );
        });
    out
}

#[inline(always)]
fn forward_sample(a: [&[f32]; 4], r: [&[f32]; 4], c: &[f32], h_out: &mut [f32], c_out: &mut [f32]) {
    let n = c.len();
    let ([ai, af, ag, ao], [ri, rf, rg, ro]) = (a.map(|s| &s[..n]), r.map(|s| &s[..n]));
    let (h_out, c_out) = (&mut h_out[..n], &mut c_out[..n]);
    for e in 0..n {
        let i = sigmoid(ai[e] + ri[e]);
        let f = sigmoid(af[e] + rf[e]);
        let g = tanh(ag[e] + rg[e]);
        let o = sigmoid(ao[e] + ro[e]);
        let c_new = f * c[e] + i * g;
        c_out[e] = c_new;
        h_out[e] = o * tanh(c_new);
    }
}

/// The gradients `(d gates, d c)` (`d recurrent = d gates`) given `d_out = [dh'; dc']`.
pub fn backward(inputs: CellInputs<'_>, d_out: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let p = inputs.plane();
    let (dh, dc_out) = d_out.split_at(inputs.c.len());
    let mut d_gates = vec![0.0f32; inputs.gates.len()];
    let mut d_c = vec![0.0f32; inputs.c.len()];
    d_gates
        .par_chunks_mut(4 * p)
        .zip(d_c.par_chunks_mut(p))
        .enumerate()
        .for_each(|(b, (dg, dc))| {
            let (a, r, c) = inputs.sample(b);
            let (dh, dc_out) = (&dh[b * p..][..p], &dc_out[b * p..][..p]);
            with_widest_simd(
                #[inline(always)]
                || backward_sample(a, r, c, dh, dc_out, dg, dc),
            );
        });
    (d_gates, d_c)
}

#[inline(always)]
fn backward_sample(
    a: [&[f32]; 4],
    r: [&[f32]; 4],
    c: &[f32],
    dh: &[f32],
    dc_out: &[f32],
    dg: &mut [f32],
    dc: &mut [f32],
) {
    let n = c.len();
    let ([ai, af, ag, ao], [ri, rf, rg, ro]) = (a.map(|s| &s[..n]), r.map(|s| &s[..n]));
    let (dh, dc_out, dc) = (&dh[..n], &dc_out[..n], &mut dc[..n]);
    let (dgi, rest) = dg.split_at_mut(n);
    let (dgf, rest) = rest.split_at_mut(n);
    let (dgg, dgo) = rest.split_at_mut(n);
    let dgo = &mut dgo[..n];
    for e in 0..n {
        let i = sigmoid(ai[e] + ri[e]);
        let f = sigmoid(af[e] + rf[e]);
        let g = tanh(ag[e] + rg[e]);
        let o = sigmoid(ao[e] + ro[e]);
        let tc = tanh(f * c[e] + i * g);
        let dct = dc_out[e] + dh[e] * o * (1.0 - tc * tc);
        dgi[e] = dct * g * i * (1.0 - i);
        dgf[e] = dct * c[e] * f * (1.0 - f);
        dgg[e] = dct * i * (1.0 - g * g);
        dgo[e] = dh[e] * tc * o * (1.0 - o);
        dc[e] = dct * f;
    }
}
