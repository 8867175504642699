//! Multi-head self-attention straight from the packed projections `[K | V | Q]`
//! `(B, L, 3c)`, one sample per task and head after head, on contiguous `f32` slices.
//!
//! Per sample and head `h` (channels `h d..(h + 1) d` of each third, `d = c / heads`):
//! `S = Q Kᵀ` (`L x L`), `P = softmax(S / √d)` row by row, `D = P ⊙ M / keep` (dropout,
//! training only), `O = D V` written into the output's channels of the head. Without
//! dropout and with no `P` to keep for a backward, `O = diag(1 / Σ_row E) (E V)` from
//! `E = e^{S / √d - max_row}`: the output's `d` values of a row are scaled, not the `L`
//! weights. The operands are read in place through their strides: no per-head copies, no
//! `(B, heads, L, L)` tensor unless the backward needs `P`.
//!
//! Backward, with `s = 1 / √d`: `dV = Dᵀ dO`, `dD = dO Vᵀ`, `dP = dD ⊙ M / keep`,
//! `dS = s P ⊙ (dP - Σ_row dP ⊙ P)`, `dQ = dS K`, `dK = dSᵀ Q`.

use rayon::prelude::*;

use super::dropout::{Mask, mask_in_place};
use super::gemm::{Accum, MatMut, MatRef, matmul, per_sample_parallelism, sized, with_scratch};
use super::glue::prelude::*;
use super::simd::with_widest_simd;
use super::softmax::{softmax_grad_in_place, softmax_in_place, unnormalised_softmax_in_place};

/// The sizes of one attention: `batch` samples of `len` positions, `heads` heads of
/// `width` channels each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Samples `B`.
    pub batch: usize,
    /// Positions `L`.
    pub len: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head `d`.
    pub width: usize,
}

impl AttentionShape {
    /// Channels `c = heads d` of the output.
    fn channels(&self) -> usize {
        self.heads * self.width
    }

    /// `1 / √d`, the scale of the scores.
    fn scale(&self) -> f32 {
        (self.width as f64).powf(-0.5) as f32
    }

    /// The dropout index of the first weight of head `head` of sample `sample` in the
    /// `(B, heads, L, L)` weights (the numbering [`super::dropout::forward`] uses).
    fn first_weight(&self, sample: usize, head: usize) -> u64 {
        ((sample * self.heads + head) * self.len * self.len) as u64
    }

    /// One head's `L x d` matrix at the start of `data`, `row_stride` apart row to row
    /// (a head's queries, keys or values in the packed input, or its slice of the output).
    fn head<'a>(&self, data: &'a [f32], row_stride: usize) -> MatRef<'a> {
        MatRef::strided(data, self.len, self.width, [row_stride, 1])
    }

    /// [`Self::head`], to write.
    fn head_mut<'a>(&self, data: &'a mut [f32], row_stride: usize) -> MatMut<'a> {
        MatMut::strided(data, self.len, self.width, [row_stride, 1])
    }

    /// One head's `L x L` scores or weights, row-major.
    fn square<'a>(&self, data: &'a [f32]) -> MatRef<'a> {
        MatRef::row_major(data, self.len, self.len)
    }

    /// [`Self::square`], to write.
    fn square_mut<'a>(&self, data: &'a mut [f32]) -> MatMut<'a> {
        MatMut::row_major(data, self.len, self.len)
    }

    /// The offsets of head `h`'s key, value and query channels in a packed row.
    fn offsets(&self, h: usize) -> (usize, usize, usize) {
        let (c, d) = (self.channels(), self.width);
        (h * d, c + h * d, 2 * c + h * d)
    }
}

/// `D = P ⊙ M / keep` in `buf` for the weights `p` numbered from `first` in the mask, or
/// `p` itself without dropout.
fn dropped_out<'a>(
    p: &'a [f32],
    buf: &'a mut Vec<f32>,
    mask: Option<Mask>,
    first: u64,
) -> &'a [f32] {
    let Some(mask) = mask else { return p };
    let dropped = sized(buf, p.len());
    dropped.copy_from_slice(p);
    with_widest_simd(
        #[inline(always)]
        || mask_in_place(dropped, first, mask),
    );
    dropped
}

/// The forward: the output `(B, L, c)`; the softmax weights `P` before dropout are written
/// to `weights` `(B, heads, L, L)` if given.
pub fn forward(
    packed: &[f32],
    s: AttentionShape,
    mask: Option<Mask>,
    weights: Option<&mut [f32]>,
) -> Vec<f32> {
    let (l, c, d) = (s.len, s.channels(), s.width);
    let block = l * l;
    let stride = 3 * c;
    let mut out = vec![0.0f32; s.batch * l * c];
    let parallelism = per_sample_parallelism(s.batch);
    let product = |dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>| {
        matmul(dst, a, b, Accum::Replace, parallelism)
    };
    let keep_weights = weights.is_some();
    let sample = |b: usize, out: &mut [f32], mut weights: Option<&mut [f32]>| {
        let packed = &packed[b * l * 3 * c..][..l * 3 * c];
        with_scratch(|[scores, buf]| {
            for h in 0..s.heads {
                let p = match weights.as_deref_mut() {
                    Some(w) => &mut w[h * block..][..block],
                    None => sized(scores, block),
                };
                let (key, value, query) = s.offsets(h);
                // S = Q Kᵀ, P = softmax(S / √d) in place, D = P ⊙ M / keep, O = D V.
                let (q, k) = (
                    s.head(&packed[query..], stride),
                    s.head(&packed[key..], stride),
                );
                product(s.square_mut(p), q, k.t());
                let (scale, v) = (s.scale(), s.head(&packed[value..], stride));
                if keep_weights || mask.is_some() {
                    with_widest_simd(
                        #[inline(always)]
                        || {
                            p.chunks_exact_mut(l)
                                .for_each(|row| softmax_in_place(row, scale))
                        },
                    );
                    let p = dropped_out(p, buf, mask, s.first_weight(b, h));
                    product(s.head_mut(&mut out[h * d..], c), s.square(p), v);
                } else {
                    // O = diag(1 / Σ_row E) (E V) with E = e^{S / √d - max}: the rows of
                    // O (d values) normalised instead of those of P (L values).
                    let inv_sums = sized(buf, l);
                    with_widest_simd(
                        #[inline(always)]
                        || {
                            for (row, inv_sum) in p.chunks_exact_mut(l).zip(inv_sums.iter_mut()) {
                                *inv_sum = unnormalised_softmax_in_place(row, scale);
                            }
                        },
                    );
                    let o = &mut out[h * d..];
                    product(s.head_mut(o, c), s.square(p), v);
                    for (row, inv_sum) in o.chunks_mut(c).zip(inv_sums.iter()) {
                        row[..d].iter_mut().for_each(|o| *o *= inv_sum);
                    }
                }
            }
        });
    };
    let outs = out.par_chunks_mut(l * c).enumerate();
    match weights {
        Some(w) => outs
            .zip(w.par_chunks_mut(s.heads * block))
            .for_each(|((b, out), w)| sample(b, out, Some(w))),
        None => outs.for_each(|(b, out)| sample(b, out, None)),
    }
    out
}

/// The backward from the saved `packed` input and weights `P` and the output gradient
/// `d_out` `(B, L, c)`: the gradient of `packed`, `(B, L, 3c)`.
pub fn backward(
    packed: &[f32],
    weights: &[f32],
    d_out: &[f32],
    s: AttentionShape,
    mask: Option<Mask>,
) -> Vec<f32> {
    let (l, c, d) = (s.len, s.channels(), s.width);
    let block = l * l;
    let stride = 3 * c;
    let parallelism = per_sample_parallelism(s.batch);
    let product = |dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>| {
        matmul(dst, a, b, Accum::Replace, parallelism)
    };
    let mut d_packed = vec![0.0f32; packed.len()];
    d_packed
        .par_chunks_mut(l * 3 * c)
        .enumerate()
        .for_each(|(b, d_packed)| {
            let packed = &packed[b * l * 3 * c..][..l * 3 * c];
            let d_out = &d_out[b * l * c..][..l * c];
            let weights = &weights[b * s.heads * block..][..s.heads * block];
            with_scratch(|[dropped_buf, d_scores]| {
                for h in 0..s.heads {
                    let p = &weights[h * block..][..block];
                    let (key, value, query) = s.offsets(h);
                    let first = s.first_weight(b, h);
                    let dropped = dropped_out(p, dropped_buf, mask, first);
                    let (d_o, v) = (s.head(&d_out[h * d..], c), s.head(&packed[value..], stride));
                    // dV = Dᵀ dO.
                    let dv = s.head_mut(&mut d_packed[value..], stride);
                    product(dv, s.square(dropped).t(), d_o);
                    // dD = dO Vᵀ, then dP and dS in place.
                    let ds = sized(d_scores, block);
                    product(s.square_mut(ds), d_o, v.t());
                    let scale = s.scale();
                    with_widest_simd(
                        #[inline(always)]
                        || {
                            if let Some(mask) = mask {
                                mask_in_place(ds, first, mask);
                            }
                            for (p, ds) in p.chunks_exact(l).zip(ds.chunks_exact_mut(l)) {
                                softmax_grad_in_place(p, ds, scale);
                            }
                        },
                    );
                    // dQ = dS K, dK = dSᵀ Q.
                    let (q, k) = (
                        s.head(&packed[query..], stride),
                        s.head(&packed[key..], stride),
                    );
                    product(s.head_mut(&mut d_packed[query..], stride), s.square(ds), k);
                    product(
                        s.head_mut(&mut d_packed[key..], stride),
                        s.square(ds).t(),
                        q,
                    );
                }
            });
        });
    d_packed
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::multi_head_attention`]; a dropout mask is drawn as
/// [`crate::dropout`]'s is, so both drop the same weights.
pub fn multi_head_attention(packed: Tensor<3>, heads: usize, dropout: f64) -> Tensor<3> {
    let mask = (dropout > 0.0).then(|| Mask::drawn(&packed.device(), 1.0 - dropout, 1));
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_multi_head_attention(
        packed.into_dispatch(),
        heads,
        mask,
    ))
}

impl AttentionShape {
    /// The sizes of the attention of `packed` `(B, L, 3c)` over `heads` heads.
    fn of(packed: &FlexTensor, heads: usize) -> Self {
        let shape = packed.shape();
        Self {
            batch: shape[0],
            len: shape[1],
            heads,
            width: shape[2] / (3 * heads),
        }
    }
}

/// [`FlexKernels::marscf_multi_head_attention`] on Flex.
pub fn on_flex(packed: FlexTensor, heads: usize, mask: Option<Mask>) -> FlexTensor {
    let s = AttentionShape::of(&packed, heads);
    let out = forward(&values(&packed), s, mask, None);
    tensor(out, [s.batch, s.len, heads * s.width])
}

/// Backward of [`on_flex`]: parent `packed`, state the contiguous `packed`, the softmax
/// weights, the sizes and the dropout mask.
#[derive(Debug)]
pub struct MultiHeadAttentionBackward;

impl Backward<Flex, 1> for MultiHeadAttentionBackward {
    type State = (FlexTensor, FlexTensor, AttentionShape, Option<Mask>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ((packed, weights, s, mask), d_out, parents) = unpack(ops, grads);
        let (p, w, d) = (values(&packed), values(&weights), values(&d_out));
        let d_packed = backward(&p, &w, &d, s, mask);
        register(grads, parents, [tensor(d_packed, packed.shape())]);
    }
}

/// [`FlexKernels::marscf_multi_head_attention`] under autodiff: tracked, the forward keeps
/// the softmax weights.
pub fn on_autodiff<C: CheckpointStrategy>(
    packed: AutodiffTensor<C>,
    heads: usize,
    mask: Option<Mask>,
) -> AutodiffTensor<C> {
    record::<C, _, _>(MultiHeadAttentionBackward, [packed], |[packed], tracked| {
        if !tracked {
            return (on_flex(packed, heads, mask), None);
        }
        let s = AttentionShape::of(&packed, heads);
        let mut weights = vec![0.0f32; s.batch * heads * s.len * s.len];
        let out = forward(&values(&packed), s, mask, Some(&mut weights));
        let out = tensor(out, [s.batch, s.len, heads * s.width]);
        let weights = tensor(weights, [s.batch, heads, s.len, s.len]);
        (out, Some((packed, weights, s, mask)))
    })
}
