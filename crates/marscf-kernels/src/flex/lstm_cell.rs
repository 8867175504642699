//! The ConvLSTM cell's element-wise part in one pass, forward and backward, on contiguous
//! `f32` slices.
//!
//! Per sample, `a` holds the four gate pre-activations `[i, f, g, o]` (the input and the
//! recurrent convolutions summed), each `hidden · H · W` long; with `σ` the sigmoid:
//! `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`. The output is `[h'; c']`
//! stacked over the batch, `(2B, hidden, H, W)`.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::{sigmoid, tanh};
use super::reduce::chunk_len;
use super::simd::with_widest_simd;

/// The cell's inputs: the pre-activations `a` `(B, 4 hidden, H, W)` and the previous cell
/// state `c` `(B, hidden, H, W)`.
#[derive(Clone, Copy)]
pub struct CellInputs<'a> {
    /// Gate pre-activations `a = gates + recurrent`.
    pub pre: &'a [f32],
    /// Previous cell state.
    pub c: &'a [f32],
    /// Batch `B`.
    pub batch: usize,
}

impl<'a> CellInputs<'a> {
    /// `hidden · H · W`, the length of one gate of one sample (0 without samples).
    fn plane(&self) -> usize {
        self.c.len().checked_div(self.batch).unwrap_or(0)
    }

    /// Sample `b`'s slices: `([i, f, g, o] of a, c)`.
    fn sample(&self, b: usize) -> ([&'a [f32]; 4], &'a [f32]) {
        let p = self.plane();
        let s = &self.pre[4 * b * p..][..4 * p];
        (
            [&s[..p], &s[p..2 * p], &s[2 * p..3 * p], &s[3 * p..]],
            &self.c[b * p..][..p],
        )
    }
}

/// `[h'; c']`, `(2B, hidden, H, W)`.
pub fn forward(inputs: CellInputs<'_>) -> Vec<f32> {
    let mut out = vec![0.0f32; 2 * inputs.c.len()];
    let (h, c) = out.split_at_mut(inputs.c.len());
    forward_into(inputs, h, c);
    out
}

/// `h'` and `c'` written into `h_out` and `c_out`, `(B, hidden, H, W)` each.
pub fn forward_into(inputs: CellInputs<'_>, h_out: &mut [f32], c_out: &mut [f32]) {
    let p = inputs.plane();
    h_out
        .par_chunks_mut(chunk_len(p))
        .zip(c_out.par_chunks_mut(chunk_len(p)))
        .enumerate()
        .for_each(|(b, (h_out, c_out))| {
            let (a, c) = inputs.sample(b);
            with_widest_simd(
                #[inline(always)]
                || forward_sample(a, c, h_out, c_out),
            );
        });
}

#[inline(always)]
fn forward_sample(a: [&[f32]; 4], c: &[f32], h_out: &mut [f32], c_out: &mut [f32]) {
    let n = c.len();
    let [ai, af, ag, ao] = a.map(|s| &s[..n]);
    let (h_out, c_out) = (&mut h_out[..n], &mut c_out[..n]);
    for e in 0..n {
        let i = sigmoid(ai[e]);
        let f = sigmoid(af[e]);
        let g = tanh(ag[e]);
        let o = sigmoid(ao[e]);
        let c_new = f * c[e] + i * g;
        c_out[e] = c_new;
        h_out[e] = o * tanh(c_new);
    }
}

/// The gradients `(d a, d c)` given `d_out = [dh'; dc']`.
pub fn backward(inputs: CellInputs<'_>, d_out: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (dh, dc_out) = d_out.split_at(inputs.c.len());
    let mut d_pre = vec![0.0f32; inputs.pre.len()];
    let mut d_c = vec![0.0f32; inputs.c.len()];
    backward_into(inputs, [dh, dc_out], &mut d_pre, &mut d_c);
    (d_pre, d_c)
}

/// `d a` `(B, 4 hidden, H, W)` and `d c` `(B, hidden, H, W)` written into `d_pre` and
/// `d_c`, given `[dh', dc']`.
pub fn backward_into(
    inputs: CellInputs<'_>,
    [dh, dc_out]: [&[f32]; 2],
    d_pre: &mut [f32],
    d_c: &mut [f32],
) {
    let p = inputs.plane();
    d_pre
        .par_chunks_mut(chunk_len(4 * p))
        .zip(d_c.par_chunks_mut(chunk_len(p)))
        .enumerate()
        .for_each(|(b, (da, dc))| {
            let (a, c) = inputs.sample(b);
            let (dh, dc_out) = (&dh[b * p..][..p], &dc_out[b * p..][..p]);
            with_widest_simd(
                #[inline(always)]
                || backward_sample(a, c, [dh, dc_out], da, dc),
            );
        });
}

#[inline(always)]
fn backward_sample(
    a: [&[f32]; 4],
    c: &[f32],
    [dh, dc_out]: [&[f32]; 2],
    da: &mut [f32],
    dc: &mut [f32],
) {
    let n = c.len();
    let [ai, af, ag, ao] = a.map(|s| &s[..n]);
    let (dh, dc_out, dc) = (&dh[..n], &dc_out[..n], &mut dc[..n]);
    let (dai, rest) = da.split_at_mut(n);
    let (daf, rest) = rest.split_at_mut(n);
    let (dag, dao) = rest.split_at_mut(n);
    let dao = &mut dao[..n];
    for e in 0..n {
        let i = sigmoid(ai[e]);
        let f = sigmoid(af[e]);
        let g = tanh(ag[e]);
        let o = sigmoid(ao[e]);
        let tc = tanh(f * c[e] + i * g);
        let dct = dc_out[e] + dh[e] * o * (1.0 - tc * tc);
        dai[e] = dct * g * i * (1.0 - i);
        daf[e] = dct * c[e] * f * (1.0 - f);
        dag[e] = dct * i * (1.0 - g * g);
        dao[e] = dh[e] * tc * o * (1.0 - o);
        dc[e] = dct * f;
    }
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::lstm_cell`] from the pre-activations, `[h'; c']`
/// `(2B, h, H, W)`.
pub fn lstm_cell(pre: Tensor<4>, c: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_lstm_cell(
        pre.into_dispatch(),
        c.into_dispatch(),
    ))
}

/// [`FlexKernels::marscf_lstm_cell`] on Flex.
pub fn on_flex(pre: FlexTensor, c: FlexTensor) -> FlexTensor {
    let [b, h, height, width] = dims4(&c);
    let out = forward(CellInputs {
        pre: &values(&pre),
        c: &values(&c),
        batch: b,
    });
    tensor(out, [2 * b, h, height, width])
}

/// Backward of [`on_flex`]: parents `[pre, c]`, state the two inputs (the activations are
/// recomputed).
#[derive(Debug)]
pub struct LstmCellBackward;

impl Backward<Flex, 2> for LstmCellBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((pre, c), d_out, parents) = unpack(ops, grads);
        let inputs = CellInputs {
            pre: &values(&pre),
            c: &values(&c),
            batch: dims4(&c)[0],
        };
        let (d_pre, d_c) = backward(inputs, &values(&d_out));
        let gradients = [tensor(d_pre, dims4(&pre)), tensor(d_c, dims4(&c))];
        register(grads, parents, gradients);
    }
}

/// [`FlexKernels::marscf_lstm_cell`] under autodiff.
pub fn on_autodiff<C: CheckpointStrategy>(
    pre: AutodiffTensor<C>,
    c: AutodiffTensor<C>,
) -> AutodiffTensor<C> {
    record::<C, _, _>(LstmCellBackward, [pre, c], |[pre, c], _| {
        (on_flex(pre.clone(), c.clone()), Some((pre, c)))
    })
}
