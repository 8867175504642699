//! Squeeze: trade spatial resolution for channels by a factor of 2.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::layer::InvertibleLayer;

/// `(B, C, H, W) -> (B, 4C, H/2, W/2)`: output channel `4c + 2dy + dx` holds pixel
/// `(2i + dy, 2j + dx)` of input channel `c`. `H` and `W` must be even.
pub fn squeeze(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, 4 * c, h / 2, w / 2])
}

/// The inverse of [`squeeze`]: `(B, 4C, H, W) -> (B, C, 2H, 2W)`.
pub fn unsqueeze(x: Tensor<4>) -> Tensor<4> {
    let [b, c4, h, w] = x.dims();
    x.reshape([b, c4 / 4, 2, 2, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, c4 / 4, 2 * h, 2 * w])
}

/// [`squeeze`] as a layer (log-det 0).
#[derive(Module, Debug, Default)]
pub struct Squeeze;

impl InvertibleLayer for Squeeze {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let zeros = Tensor::zeros([x.dims()[0]], &x.device());
        (squeeze(x), zeros)
    }

    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let zeros = Tensor::zeros([y.dims()[0]], &y.device());
        (unsqueeze(y), zeros)
    }
}
