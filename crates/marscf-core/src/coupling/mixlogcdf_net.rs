//! The conditioning network of the MixLogCDF coupling (Flow++): weight-normalised
//! convolutions, gated residual blocks with channel dropout, gated multi-head
//! self-attention over pixels, and layer norms over channels.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor};
use marscf_kernels::{gate, layer_norm, multi_head_attention};

/// `elu(cat(x, -x))` along the channels, `(B, C, H, W) -> (B, 2C, H, W)` (kept here, where
/// the network uses it, for the crate's users).
pub use marscf_kernels::concat_elu;

use crate::CoreError;
use crate::dropout::{Dropout, DropoutConfig};
use crate::weight_norm::{
    WnConv2d, WnConv2dConfig, WnLinear, WnLinearConfig, WnScale, WnScaleConfig,
};

/// The parameters of a model's MixLogCDF couplings beyond their sizes (what
/// [`CouplingKind::MixLogCdf`](crate::CouplingKind::MixLogCdf) carries and a checkpoint
/// saves); the defaults are the reference's.
/// [`MixLogCdfCouplingConfig`](super::mixlogcdf::MixLogCdfCouplingConfig) adds the sizes of
/// one coupling.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct MixLogCdfConfig {
    /// Mixture components `k`.
    #[config(default = 32)]
    pub components: usize,
    /// Residual blocks of the network.
    #[config(default = 10)]
    pub blocks: usize,
    /// Attention heads.
    #[config(default = 4)]
    pub heads: usize,
    /// Dropout probability (channel dropout and attention weights), training only.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Bisection iterations of the inverse at most.
    #[config(default = 100)]
    pub max_bisection_iters: usize,
}

impl Default for MixLogCdfConfig {
    /// [`MixLogCdfConfig::new`]: the reference's parameters.
    fn default() -> Self {
        Self::new()
    }
}

/// Configuration of [`GatedConv`].
#[derive(Config, Debug)]
pub struct GatedConvConfig {
    /// Width `h` of the block's input and output.
    pub hidden: usize,
    /// Probability of the channel dropout between the convolutions (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl GatedConvConfig {
    /// The block, its convolutions initialised as [`WnConv2dConfig::init`] does (the 3x3
    /// first). Fails if the dropout probability is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<GatedConv, CoreError> {
        let h = self.hidden;
        Ok(GatedConv {
            conv: WnConv2dConfig::new([2 * h, h], 3).init(device),
            dropout: DropoutConfig::new(self.dropout)
                .with_whole_channels(true)
                .init()?,
            gate: WnConv2dConfig::new([2 * h, 2 * h], 1).init(device),
        })
    }
}

/// `concat_elu -> WN conv 3x3 (2h -> h) -> concat_elu -> channel dropout ->
/// WN conv 1x1 (2h -> 2h) -> a * sigmoid(b)`: `(B, h, H, W) -> (B, h, H, W)`.
#[derive(Module, Debug)]
pub struct GatedConv {
    /// 3x3, `2h -> h`.
    pub conv: WnConv2d,
    /// Channel dropout between the two convolutions.
    pub dropout: Dropout,
    /// 1x1, `2h -> 2h`: the value and gate halves.
    pub gate: WnConv2d,
}

impl GatedConv {
    /// `(B, h, H, W) -> (B, h, H, W)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(concat_elu(x));
        gate(self.gate.forward(self.dropout.forward(concat_elu(x))), 1)
    }
}

/// The sinusoidal position encoding of `positions` positions in `channels` channels:
/// `[sin(p ω_j), cos(p ω_j)]` with `ω_j = exp(-j ln(10⁴) / (n - 1))`, `n = channels / 2`,
/// zero-padded to `channels`: `(positions, channels)`.
pub fn position_encoding(positions: usize, channels: usize, device: &Device) -> Tensor<2> {
    let timescales = channels / 2;
    let increment = 10_000f64.ln() / (timescales as f64 - 1.0).max(1.0);
    let position = Tensor::<1, Int>::arange(0..positions as i64, device)
        .float()
        .unsqueeze_dim::<2>(1);
    let inverse = Tensor::<1, Int>::arange(0..timescales as i64, device)
        .float()
        .mul_scalar(-increment)
        .exp()
        .unsqueeze_dim::<2>(0);
    let angle = position * inverse;
    let mut parts = vec![angle.clone().sin(), angle.cos()];
    if channels % 2 == 1 {
        parts.push(Tensor::zeros([positions, 1], device));
    }
    Tensor::cat(parts, 1)
}

/// Configuration of [`GatedAttention`].
#[derive(Config, Debug)]
pub struct GatedAttentionConfig {
    /// Channels `c` of every position (divisible by `heads`).
    pub channels: usize,
    /// Number of attention heads `n`.
    pub heads: usize,
    /// Dropout probability on the attention weights (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl GatedAttentionConfig {
    /// The attention, its maps initialised as [`WnLinearConfig::init`] does (`in_proj`
    /// first). Fails with [`CoreError::HeadsMismatch`] unless `heads` is positive and
    /// divides `channels`, or if the dropout probability is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<GatedAttention, CoreError> {
        let (c, heads) = (self.channels, self.heads);
        if heads == 0 || !c.is_multiple_of(heads) {
            return Err(CoreError::HeadsMismatch { hidden: c, heads });
        }
        let dropout = DropoutConfig::new(self.dropout).init()?;
        Ok(GatedAttention {
            in_proj: WnLinearConfig::new(c, 3 * c).with_bias(false).init(device),
            gate: WnLinearConfig::new(c, 2 * c).init(device),
            dropout,
            heads,
        })
    }
}

/// Gated multi-head self-attention over the `H W` pixels: `(B, L, c) -> (B, L, c)`.
/// `q, k, v` from one WN linear map (no bias) of `x + position encoding`;
/// `softmax(q k^T / sqrt(c / heads)) v` per head; a WN linear gate `a * sigmoid(b)`.
#[derive(Module, Debug)]
pub struct GatedAttention {
    /// `c -> 3c`: key, value, query.
    pub in_proj: WnLinear,
    /// `c -> 2c`: value and gate halves.
    pub gate: WnLinear,
    /// Dropout on the attention weights (training only), per element: its
    /// `whole_channels` is not used.
    pub dropout: Dropout,
    /// Number of heads.
    pub heads: usize,
}

impl GatedAttention {
    /// `(B, L, c) -> (B, L, c)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, l, c] = x.dims();
        let encoding = position_encoding(l, c, &x.device());
        let x = x + encoding.unsqueeze_dim::<3>(0);
        let dropout = self.dropout.active_prob(&x.device());
        let attended = multi_head_attention(self.in_proj.forward(x), self.heads, dropout);
        gate(self.gate.forward(attended), 2)
    }
}

/// Configuration of [`ConvAttnBlock`].
#[derive(Config, Debug)]
pub struct ConvAttnBlockConfig {
    /// Width `h` of the block's input and output (divisible by `heads`).
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Dropout probability of the convolution's channels and the attention weights
    /// (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl ConvAttnBlockConfig {
    /// The block: the gated convolution, then the attention (the order in which their
    /// weights are drawn); the layer norms start with unit gain and zero bias. Fails as
    /// [`GatedAttentionConfig::init`] and [`GatedConvConfig::init`] do.
    pub fn init(&self, device: &Device) -> Result<ConvAttnBlock, CoreError> {
        let h = self.hidden;
        Ok(ConvAttnBlock {
            gated_conv: GatedConvConfig::new(h)
                .with_dropout(self.dropout)
                .init(device)?,
            norm_1: LayerNormConfig::new(h)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            attention: GatedAttentionConfig::new(h, self.heads)
                .with_dropout(self.dropout)
                .init(device)?,
            norm_2: LayerNormConfig::new(h)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
        })
    }
}

/// `x = GatedConv(x) + x; LayerNorm; x = GatedAttention(x) + x; LayerNorm`, the norms
/// over the channels of each pixel: `(B, h, H, W) -> (B, h, H, W)`.
#[derive(Module, Debug)]
pub struct ConvAttnBlock {
    /// Gated residual convolution.
    pub gated_conv: GatedConv,
    /// LayerNorm after the convolution.
    pub norm_1: LayerNorm,
    /// Gated self-attention.
    pub attention: GatedAttention,
    /// LayerNorm after the attention.
    pub norm_2: LayerNorm,
}

impl ConvAttnBlock {
    /// `(B, h, H, W) -> (B, h, H, W)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let x = self.gated_conv.forward(x.clone()) + x;
        let x = normalise(&self.norm_1, x.permute([0, 2, 3, 1]).reshape([b, h * w, c]));
        let x = normalise(&self.norm_2, self.attention.forward(x.clone()) + x);
        x.reshape([b, h, w, c]).permute([0, 3, 1, 2])
    }
}

/// The `ε` of the blocks' layer norms (PyTorch's and Burn's default).
const LAYER_NORM_EPSILON: f64 = 1e-5;

/// `norm`'s forward through [`layer_norm`], with the `ε` it was made with
/// ([`LAYER_NORM_EPSILON`]; Burn keeps a module's own private).
fn normalise(norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    match &norm.beta {
        Some(beta) => layer_norm(x, norm.gamma.val(), beta.val(), LAYER_NORM_EPSILON),
        None => norm.forward(x),
    }
}

/// Configuration of [`MixLogCdfNet`]; the defaults are [`MixLogCdfConfig`]'s.
#[derive(Config, Debug)]
pub struct MixLogCdfNetConfig {
    /// Channels `c` of the input `x_id` (and of `x_change`).
    pub channels: usize,
    /// Hidden width `h`.
    pub hidden: usize,
    /// Residual [`ConvAttnBlock`]s.
    #[config(default = "MixLogCdfConfig::new().blocks")]
    pub blocks: usize,
    /// Mixture components `k`.
    #[config(default = "MixLogCdfConfig::new().components")]
    pub components: usize,
    /// Attention heads (dividing `hidden`).
    #[config(default = "MixLogCdfConfig::new().heads")]
    pub heads: usize,
    /// Dropout probability in the blocks (training only).
    #[config(default = "MixLogCdfConfig::new().dropout")]
    pub dropout: f64,
}

impl MixLogCdfNetConfig {
    /// The network with PyTorch's default initialisation, weights drawn in the order
    /// `in_conv`, `blocks`, `out_conv` (`rescale` starts at 1). Fails on a zero size or
    /// as [`ConvAttnBlockConfig::init`] does.
    pub fn init(&self, device: &Device) -> Result<MixLogCdfNet, CoreError> {
        let (c, h, k) = (self.channels, self.hidden, self.components);
        for (value, what) in [
            (c, "MixLogCdfNet channels"),
            (h, "MixLogCdfNet hidden width"),
            (k, "MixLogCDF components"),
        ] {
            if value == 0 {
                return Err(CoreError::ZeroSize { what });
            }
        }
        let block = ConvAttnBlockConfig::new(h, self.heads).with_dropout(self.dropout);
        Ok(MixLogCdfNet {
            in_conv: WnConv2dConfig::new([c, h], 3).init(device),
            blocks: (0..self.blocks)
                .map(|_| block.init(device))
                .collect::<Result<_, _>>()?,
            out_conv: WnConv2dConfig::new([h, c * (2 + 3 * k)], 3).init(device),
            rescale: WnScaleConfig::new(c).init(device),
            components: k,
        })
    }
}

/// The network `x_id -> (a, b, pi, mu, log_s)` of the MixLogCDF coupling:
/// WN conv 3x3 (`c -> h`), `blocks` [`ConvAttnBlock`]s, WN conv 3x3 (`h -> c (2 + 3k)`).
#[derive(Module, Debug)]
pub struct MixLogCdfNet {
    /// `c -> hidden`.
    pub in_conv: WnConv2d,
    /// Residual blocks.
    pub blocks: Vec<ConvAttnBlock>,
    /// `hidden -> c (2 + 3k)`.
    pub out_conv: WnConv2d,
    /// Per-channel scale of `tanh(a_raw)`.
    pub rescale: WnScale,
    /// Mixture components `k`.
    pub components: usize,
}

/// The coupling parameters for `x_change` `(B, c, H, W)`.
#[derive(Debug, Clone)]
pub struct MixLogCdfParams {
    /// Log-scale of the output, `rescale(tanh(a_raw))`, `(B, c, H, W)`.
    pub a: Tensor<4>,
    /// Shift of the output, `(B, c, H, W)`.
    pub b: Tensor<4>,
    /// Component logits, `(B, k, c, H, W)`.
    pub pi: Tensor<5>,
    /// Component locations, `(B, k, c, H, W)`.
    pub mu: Tensor<5>,
    /// Component log-scales, clamped below at -7, `(B, k, c, H, W)`.
    pub log_s: Tensor<5>,
}

/// The reference's lower clamp of the components' log-scales.
pub const MIN_LOG_SCALE: f64 = -7.0;

impl MixLogCdfNet {
    /// `(B, c, H, W) -> (a, b, pi, mu, log_s)`. The output's channel `j c + i` is
    /// parameter `j` of input channel `i`, `j` running over `a, b, pi_1..k, mu_1..k, s_1..k`.
    pub fn forward(&self, x: Tensor<4>) -> MixLogCdfParams {
        let [batch, c, h, w] = x.dims();
        let k = self.components;
        let mut y = self.in_conv.forward(x);
        for block in &self.blocks {
            y = block.forward(y);
        }
        let y = self
            .out_conv
            .forward(y)
            .reshape([batch, 2 + 3 * k, c, h, w]);
        let plane = |j: usize| y.clone().narrow(1, j, 1).reshape([batch, c, h, w]);
        MixLogCdfParams {
            a: self.rescale.forward(plane(0).tanh()),
            b: plane(1),
            pi: y.clone().narrow(1, 2, k),
            mu: y.clone().narrow(1, 2 + k, k),
            log_s: y.narrow(1, 2 + 2 * k, k).clamp_min(MIN_LOG_SCALE),
        }
    }
}
