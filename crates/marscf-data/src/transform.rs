//! Preprocessing: bytes to the reference's pixel range, and the layouts of MNIST digits
//! (see [`ImageSet::from_mnist`](crate::ImageSet::from_mnist) and [`make_batch`](crate::make_batch)).

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
