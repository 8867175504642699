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
/// On Flex (float32) our own kernel runs, with its own backward (`src/flex/conv.rs`);
/// elsewhere, [`conv2d_portable`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    spec: ConvSpec,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&x.device(), x.dtype()) && weight.dtype() == x.dtype() {
        let (live, spec_live) = live_taps(x.dims(), weight.dims(), spec);
        let weight_live = match live {
            Some([rows, cols]) => weight
                .clone()
                .narrow(2, rows.0, rows.1)
                .narrow(3, cols.0, cols.1),
            None => weight.clone(),
        };
        if crate::flex::conv_supported(x.dims(), weight_live.dims(), spec_live) {
            return crate::flex::conv2d(x, weight_live, bias, spec_live);
        }
    }
    conv2d_portable(x, weight, bias, spec)
}

/// The kernel taps that can reach the input, `[(first, count); 2]` along height and width,
/// and the padding that keeps the output's size with only those, if some taps never do:
/// on a map smaller than the kernel's reach (a 5x5 kernel with dilation 2 on 4x4 maps), a
/// tap whose offset is off the map for every output position multiplies only zero padding.
/// Leaving it out changes nothing but the work (and its weight's gradient, zero either way).
#[cfg(any(feature = "flex", test))]
fn live_taps(
    x: [usize; 4],
    weight: [usize; 4],
    spec: ConvSpec,
) -> (Option<[(usize, usize); 2]>, ConvSpec) {
    let axis = |i: usize| -> Option<((usize, usize), (usize, usize))> {
        let (n, k, d) = (
            x[2 + i] as isize,
            weight[2 + i] as isize,
            spec.dilation[i] as isize,
        );
        let (before, after) = (spec.padding[i].0 as isize, spec.padding[i].1 as isize);
        let out = n + before + after - d * (k - 1);
        // Tap t reads input p + t d - before for outputs p in 0..out.
        let live = |t: isize| t * d - before < n && t * d - before > -out;
        let first = (0..k).find(|&t| live(t))?;
        let last = (0..k).rev().find(|&t| live(t))?;
        let before_live = before - first * d;
        let after_live = out - n - before_live + d * (last - first);
        (before_live >= 0 && after_live >= 0).then_some((
            (first as usize, (last - first + 1) as usize),
            (before_live as usize, after_live as usize),
        ))
    };
    match (axis(0), axis(1)) {
        (Some((rows, pad_rows)), Some((cols, pad_cols)))
            if rows.1 < weight[2] || cols.1 < weight[3] =>
        {
            let spec = ConvSpec {
                padding: [pad_rows, pad_cols],
                dilation: spec.dilation,
            };
            (Some([rows, cols]), spec)
        }
        _ => (None, spec),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_off_the_map_are_left_out_and_the_output_keeps_its_size() {
        // 5x5, dilation 2, same padding (4, 4): offsets -4, -2, 0, 2, 4.
        let spec = ConvSpec::same([5, 5], [2, 2]);
        // 4x4 maps: offsets ±4 never land on the map; the inner 3x3 with padding 2 does.
        let (live, cropped) = live_taps([1, 1, 4, 4], [1, 1, 5, 5], spec);
        assert_eq!(live, Some([(1, 3), (1, 3)]));
        assert_eq!(cropped.padding, [(2, 2), (2, 2)]);
        // 8x8 maps: every tap reaches the map.
        assert_eq!(live_taps([1, 1, 8, 8], [1, 1, 5, 5], spec), (None, spec));
        // One axis only: 1x6 maps with a 3x3 kernel keep all columns, one row.
        let (live, cropped) = live_taps([1, 1, 1, 6], [1, 1, 3, 3], ConvSpec::same([3, 3], [1, 1]));
        assert_eq!(live, Some([(1, 1), (0, 3)]));
        assert_eq!(cropped.padding, [(0, 0), (1, 1)]);
    }
}
