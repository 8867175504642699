//! Stride-1 2-D convolution with zero padding and dilation.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::module;
use burn::tensor::ops::ConvOptions;

/// Zero padding and dilation of a stride-1, ungrouped convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Zero padding `[(top, bottom), (left, right)]`.
    pub padding: [(usize, usize); 2],
    /// Dilation `[dh, dw]`.
    pub dilation: [usize; 2],
}

impl ConvSpec {
    /// "Same" padding for a `kernel` with `dilation`: the output is the input's size, with
    /// `d (k - 1) / 2` zeros before and the rest after (PyTorch's `padding="same"`).
    pub fn same(kernel: [usize; 2], dilation: [usize; 2]) -> Self {
        let pad = |i: usize| {
            let span = dilation[i] * kernel[i].saturating_sub(1);
            (span / 2, span.div_ceil(2))
        };
        Self {
            padding: [pad(0), pad(1)],
            dilation,
        }
    }

    /// Burn's options for the same convolution.
    pub fn options(&self) -> ConvOptions<2> {
        ConvOptions::new_with_padding([1, 1], self.padding, self.dilation, 1)
    }
}

/// `y = conv(x, weight) + bias`, stride 1:
/// `x` `(N, Ci, H, W)`, `weight` `(Co, Ci, kh, kw)`, `bias` `(Co)` -> `(N, Co, Ho, Wo)`,
/// `Ho = H + p_top + p_bottom - dh (kh - 1)` (likewise `Wo`).
///
/// On Flex (float32) our kernel runs: the whole batch as tiled im2col + one gemm per tile,
/// the weight gradient as one product whose inner dimension is `N Ho Wo`, the input
/// gradient as `Wᵀ dY` per tile and a col2im. Elsewhere, [`conv2d_portable`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    spec: ConvSpec,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype())
        && weight.dtype() == x.dtype()
        && crate::flex::conv_supported(x.dims(), weight.dims(), spec)
    {
        return crate::flex::conv2d(x, weight, bias, spec);
    }
    conv2d_portable(x, weight, bias, spec)
}

/// The portable default of [`conv2d`]: Burn's `conv2d`.
pub fn conv2d_portable(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    spec: ConvSpec,
) -> Tensor<4> {
    module::conv2d(x, weight, bias, spec.options())
}

/// A Burn [`Conv2d`] module's forward through [`conv2d`]. Stride-1, ungrouped modules
/// (every convolution of this model) take our kernel; any other runs the module's own
/// forward.
pub fn conv2d_module(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if conv.stride != [1, 1] || conv.groups != 1 {
        return conv.forward(x);
    }
    let spec = match conv.padding {
        PaddingConfig2d::Same => ConvSpec::same(conv.kernel_size, conv.dilation),
        PaddingConfig2d::Valid => ConvSpec {
            padding: [(0, 0); 2],
            dilation: conv.dilation,
        },
        PaddingConfig2d::Explicit(top, left, bottom, right) => ConvSpec {
            padding: [(top, bottom), (left, right)],
            dilation: conv.dilation,
        },
    };
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        spec,
    )
}
