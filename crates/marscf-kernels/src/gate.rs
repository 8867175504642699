//! The gated linear unit.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

/// `a σ(b)` with `[a, b]` the two halves of `x` along `dim`: the size of `dim` halves.
///
/// On Flex (float32) one pass forward and one backward. Elsewhere, [`gate_portable`].
pub fn gate<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) && x.dims()[dim].is_multiple_of(2) {
        return crate::flex::gate(x, dim);
    }
    gate_portable(x, dim)
}

/// The portable default of [`gate`]: `chunk`, Burn's `sigmoid` and a product.
pub fn gate_portable<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let [a, b]: [Tensor<D>; 2] = x
        .chunk(2, dim)
        .try_into()
        .expect("an even size along the gated dimension");
    a * sigmoid(b)
}
