//! The gated linear unit.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

/// `a σ(b)` with `[a, b]` the two halves of `x` along `dim`: the size of `dim` halves.
///
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/gate.rs`);
/// elsewhere, [`gate_portable`].
///
/// # Panics
/// If the size of `dim` is odd.
pub fn gate<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) && x.dims()[dim].is_multiple_of(2) {
        return crate::flex::gate(x, dim);
    }
    gate_portable(x, dim)
}

/// The portable default of [`gate`]: two slices, Burn's `sigmoid` and a product.
///
/// # Panics
/// If the size of `dim` is odd.
pub fn gate_portable<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let size = x.dims()[dim];
    assert!(
        size.is_multiple_of(2),
        "gate: an odd size {size} along dimension {dim}"
    );
    let half = size / 2;
    let [a, b] = [0..half, half..2 * half].map(|range| x.clone().slice_dim(dim, range));
    a * sigmoid(b)
}
