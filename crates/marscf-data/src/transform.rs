//! Preprocessing: bytes to the reference's pixel range, MNIST layouts, batching.

use burn::tensor::{Device, Tensor, TensorData};

/// How an MNIST digit becomes a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MnistLayout {
    /// The reference's: zero-padded by 2 pixels to 32x32, the grey channel repeated to 3
    /// channels: `3 x 32 x 32`.
    #[default]
    Reference,
    /// One grey channel, padded to `1 x 32 x 32`.
    Grey32,
    /// One grey channel as stored: `1 x 28 x 28`.
    Grey28,
}

impl MnistLayout {
    /// The input shape `[C, H, W]`.
    pub fn shape(self) -> [usize; 3] {
        match self {
            Self::Reference => [3, 32, 32],
            Self::Grey32 => [1, 32, 32],
            Self::Grey28 => [1, 28, 28],
        }
    }
}

/// A byte as the reference feeds it to the flow: `v / 255 - 0.5`, in `[-0.5, 0.5]`.
pub fn byte_to_unit(v: u8) -> f32 {
    v as f32 / 255.0 - 0.5
}

/// A batch of 28x28 digits (`n * 784` bytes) as a tensor `(n, C, H, W)` in the layout's shape.
pub fn mnist_batch(pixels: &[u8], layout: MnistLayout, device: &Device) -> Tensor<4> {
    let n = pixels.len() / 784;
    let [c, h, w] = layout.shape();
    let pad = (h - 28) / 2;
    // The padding is 0 in bytes, i.e. -0.5 after scaling.
    let mut values = vec![byte_to_unit(0); n * c * h * w];
    for i in 0..n {
        for ch in 0..c {
            for y in 0..28 {
                let src = &pixels[i * 784 + y * 28..i * 784 + y * 28 + 28];
                let dst = ((i * c + ch) * h + y + pad) * w + pad;
                for (d, &s) in values[dst..dst + 28].iter_mut().zip(src) {
                    *d = byte_to_unit(s);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [n, c, h, w]), device)
}
