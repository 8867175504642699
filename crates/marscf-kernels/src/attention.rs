//! Multi-head self-attention from packed key, value and query projections.

use burn::tensor::Tensor;

/// Multi-head self-attention of `packed` `(B, L, 3c)`, which holds `[k | v | q]` along its
/// last dimension (`c = heads d`): per head `h` (channels `h d..(h + 1) d` of each),
/// `softmax(q_h k_hᵀ / √d) v_h`, the heads side by side: `(B, L, c)`. With `dropout > 0`
/// the attention weights are dropped out per element, as [`crate::dropout`] does, before
/// the product with `v`.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/attention.rs`);
/// elsewhere (and for empty tensors), [`multi_head_attention_portable`].
///
/// # Panics
/// If `heads` is zero or `3 heads` does not divide the last dimension.
pub fn multi_head_attention(packed: Tensor<3>, heads: usize, dropout: f64) -> Tensor<3> {
    check_heads(&packed, heads);
    #[cfg(feature = "flex")]
    if crate::flex::runs(&packed.device(), packed.dtype()) && packed.shape().num_elements() > 0 {
        return crate::flex::multi_head_attention(packed, heads, dropout);
    }
    multi_head_attention_portable(packed, heads, dropout)
}

/// The portable default of [`multi_head_attention`]: the heads split out by reshapes,
/// batched matrix products, [`crate::softmax`] and [`crate::dropout`].
///
/// # Panics
/// As [`multi_head_attention`].
pub fn multi_head_attention_portable(packed: Tensor<3>, heads: usize, dropout: f64) -> Tensor<3> {
    check_heads(&packed, heads);
    let [b, l, packed_width] = packed.dims();
    let c = packed_width / 3;
    if packed.shape().num_elements() == 0 {
        // The empty `(B, L, c)` (Burn's reshapes read a 0 as "keep this dimension").
        return packed.slice_dim(2, 0..c);
    }
    let d = c / heads;
    let head = |i: usize| {
        packed
            .clone()
            .slice_dim(2, i * c..(i + 1) * c)
            .reshape([b, l, heads, d])
            .swap_dims(1, 2)
    };
    let (key, value) = (head(0), head(1));
    let query = head(2).mul_scalar((d as f64).powf(-0.5));
    let mut weights = crate::softmax(query.matmul(key.swap_dims(2, 3)));
    if dropout > 0.0 {
        weights = crate::dropout(weights, dropout, false);
    }
    weights.matmul(value).swap_dims(1, 2).reshape([b, l, c])
}

/// Panics unless `heads` is positive and `3 heads` divides the last dimension of `packed`.
fn check_heads(packed: &Tensor<3>, heads: usize) {
    assert!(
        heads > 0 && packed.dims()[2].is_multiple_of(3 * heads),
        "the packed projections do not split into 3 x {heads} heads"
    );
}
