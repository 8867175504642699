//! Splitting the channels in halves, and the tuple flip that swaps them.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::layer::InvertibleLayer;

/// `(B, C, H, W) -> ((B, C/2, H, W), (B, C/2, H, W))`: first and second half of the
/// channels. `C` must be even.
pub fn split(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let half = x.dims()[1] / 2;
    let second = x.clone().narrow(1, half, half);
    (x.narrow(1, 0, half), second)
}

/// The inverse of [`split`]: concatenation along the channels.
pub fn merge(first: Tensor<4>, second: Tensor<4>) -> Tensor<4> {
    Tensor::cat(vec![first, second], 1)
}

/// `(A, B) -> (B, A)` on the channel halves (log-det 0); its own inverse.
#[derive(Module, Debug, Default)]
pub struct TupleFlip;

impl InvertibleLayer for TupleFlip {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let zeros = Tensor::zeros([x.dims()[0]], &x.device());
        let (a, b) = split(x);
        (merge(b, a), zeros)
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        self.forward(y)
    }
}
