//! The invertible 1x1 convolution (Glow), LU-parametrised or as a plain matrix.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use marscf_kernels::{ConvSpec, conv2d};
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::host_linalg::{self, from_host, to_host};
use crate::layer::{InvertibleLayer, per_sample};

/// How the 1x1 convolution's `C x C` matrix is parametrised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum InvConvKind {
    /// `W = P L U` with a fixed permutation (the reference's choice): log-det in O(C).
    #[default]
    Lu,
    /// A free matrix `W`: log-det by an LU decomposition per call.
    Plain,
}

/// Configuration of [`InvConv1x1`].
#[derive(Config, Debug)]
pub struct InvConv1x1Config {
    /// Number of channels `C`.
    pub channels: usize,
    /// Parametrisation of the matrix.
    #[config(default = "InvConvKind::Lu")]
    pub kind: InvConvKind,
}

impl InvConv1x1Config {
    /// Initialises `W` to a random orthogonal matrix (QR of a Gaussian matrix drawn from the
    /// device's RNG), decomposed as `P L U` for the LU parametrisation.
    pub fn init(&self, device: &Device) -> Result<InvConv1x1, CoreError> {
        let c = self.channels;
        if c == 0 {
            return Err(CoreError::ZeroSize {
                what: "InvConv1x1 channels",
            });
        }
        let gaussian = to_host(Tensor::<2>::random(
            [c, c],
            Distribution::Normal(0.0, 1.0),
            device,
        ));
        let w = host_linalg::orthogonal_factor(&gaussian, c)?;
        let matrix = |m: &[f64]| from_host(m.to_vec(), [c, c], device);
        Ok(match self.kind {
            InvConvKind::Plain => InvConv1x1::Plain(PlainInvConv1x1 {
                weight: Param::from_tensor(matrix(&w)),
            }),
            InvConvKind::Lu => {
                let f = host_linalg::lu_decompose(&w, c)?;
                let diag: Vec<f64> = (0..c).map(|i| f.u[i * c + i]).collect();
                let sign: Vec<f64> = diag.iter().map(|d| d.signum()).collect();
                let log_s: Vec<f64> = diag.iter().map(|d| d.abs().ln()).collect();
                let vector = |v: Vec<f64>| from_host(v, [c], device);
                InvConv1x1::Lu(LuInvConv1x1 {
                    p: Param::from_tensor(matrix(&f.p)).set_require_grad(false),
                    sign_s: Param::from_tensor(vector(sign)).set_require_grad(false),
                    l: Param::from_tensor(matrix(&f.l).tril(-1)),
                    u: Param::from_tensor(matrix(&f.u).triu(1)),
                    log_s: Param::from_tensor(vector(log_s)),
                })
            }
        })
    }
}

/// `z[:, o] = Σ_i W[o, i] x[:, i]` at every pixel; `ln |det| = H W ln |det W|`.
// Both variants are a handful of parameter handles; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum InvConv1x1 {
    /// LU-parametrised matrix.
    Lu(LuInvConv1x1),
    /// Free matrix.
    Plain(PlainInvConv1x1),
}

/// `W = P (tril(l, -1) + I) (triu(u, 1) + diag(sign_s * exp(log_s)))`;
/// `ln |det W| = Σ log_s`.
#[derive(Module, Debug)]
pub struct LuInvConv1x1 {
    /// Fixed permutation, `[C, C]`.
    pub p: Param<Tensor<2>>,
    /// Fixed signs of `U`'s diagonal, `[C]`.
    pub sign_s: Param<Tensor<1>>,
    /// Strictly lower part of `L`, `[C, C]` (the rest is masked out).
    pub l: Param<Tensor<2>>,
    /// Strictly upper part of `U`, `[C, C]` (the rest is masked out).
    pub u: Param<Tensor<2>>,
    /// Log-magnitudes of `U`'s diagonal, `[C]`.
    pub log_s: Param<Tensor<1>>,
}

/// A free `[C, C]` matrix.
#[derive(Module, Debug)]
pub struct PlainInvConv1x1 {
    /// `W`, `[C_out, C_in]`.
    pub weight: Param<Tensor<2>>,
}

impl InvConv1x1 {
    /// The matrix `W`, `[C, C]`.
    pub fn weight(&self) -> Tensor<2> {
        match self {
            Self::Plain(plain) => plain.weight.val(),
            Self::Lu(lu) => {
                let p = lu.p.val();
                let c = p.dims()[0];
                let eye = Tensor::<2>::eye(c, &p.device());
                let lower = lu.l.val().tril(-1) + eye.clone();
                let diag = eye * (lu.sign_s.val() * lu.log_s.val().exp()).unsqueeze_dim::<2>(0);
                let upper = lu.u.val().triu(1) + diag;
                p.matmul(lower).matmul(upper)
            }
        }
    }

    /// `ln |det W|`, shape `(1)`.
    fn log_abs_det(&self) -> Tensor<1> {
        match self {
            Self::Lu(lu) => lu.log_s.val().sum(),
            Self::Plain(plain) => {
                let (_, _, u) = burn::linalg::lu::<2, 1>(plain.weight.val());
                burn::linalg::diag::<2, 1, _>(u).abs().log().sum()
            }
        }
    }

    fn logdet(&self, x: &Tensor<4>) -> Tensor<1> {
        let [b, _, h, w] = x.dims();
        per_sample(self.log_abs_det().mul_scalar((h * w) as f64), b)
    }

    /// `W⁻¹`, `[C, C]`, computed on the host in f64 (one read-back per call).
    ///
    /// Fails when `W` cannot be inverted in f32, as a corrupt or diverged checkpoint can
    /// make it: [`CoreError::LuDiagonalOutOfRange`] when an LU diagonal entry
    /// `sign_s[i] exp(log_s[i])` is zero or `|log_s[i]| > -ln(f32::MIN_POSITIVE) ≈ 87.3`
    /// (then `exp(log_s)` underflows to 0 in f32 and `W` is singular, or `W⁻¹` overflows),
    /// [`CoreError::SingularMatrix`] for an exactly singular `W`, and
    /// [`CoreError::InverseOutOfRange`] when an entry of `W⁻¹` is not a finite f32.
    pub fn inverse_weight(&self) -> Result<Tensor<2>, CoreError> {
        if let Self::Lu(lu) = self {
            lu.check_diagonal()?;
        }
        let w = self.weight();
        let (device, c) = (w.device(), w.dims()[0]);
        let inv = host_linalg::inverse(&to_host(w), c)?;
        // `v.abs() <= MAX` is false for NaN too.
        if !inv.iter().all(|v| v.abs() <= f32::MAX as f64) {
            let largest = if inv.iter().any(|v| v.is_nan()) {
                f64::NAN
            } else {
                inv.iter().map(|v| v.abs()).fold(0.0, f64::max)
            };
            return Err(CoreError::InverseOutOfRange { size: c, largest });
        }
        Ok(from_host(inv, [c, c], &device))
    }

    /// The inverse map with its error: `x = W⁻¹ y` at every pixel, `(B, C, H, W) ->
    /// (B, C, H, W)`, and the forward log-det `H W ln |det W|` per sample, `(B)`. Fails as
    /// [`inverse_weight`](Self::inverse_weight) does.
    pub fn try_inverse(&self, y: Tensor<4>) -> Result<(Tensor<4>, Tensor<1>), CoreError> {
        let inv = self.inverse_weight()?;
        let logdet = self.logdet(&y);
        Ok((mix_channels(y, inv), logdet))
    }
}

impl LuInvConv1x1 {
    /// Checks every diagonal entry `sign_s[i] exp(log_s[i])` of `U`: nonzero sign and
    /// `|log_s[i]| <= -ln(f32::MIN_POSITIVE)`, so that the entry and its reciprocal are
    /// normal f32 numbers.
    fn check_diagonal(&self) -> Result<(), CoreError> {
        let max_abs_log_s = -(f32::MIN_POSITIVE as f64).ln();
        let signs = to_host(self.sign_s.val());
        let log_s = to_host(self.log_s.val());
        for (index, (&sign_s, &log_s)) in signs.iter().zip(&log_s).enumerate() {
            let out_of_range = log_s.is_nan() || log_s.abs() > max_abs_log_s;
            if sign_s == 0.0 || sign_s.is_nan() || out_of_range {
                return Err(CoreError::LuDiagonalOutOfRange {
                    index,
                    sign_s,
                    log_s,
                    max_abs_log_s,
                });
            }
        }
        Ok(())
    }
}

/// `(B, C, H, W) -> (B, C, H, W)`: `y[:, o] = Σ_i m[o, i] x[:, i]`.
fn mix_channels(x: Tensor<4>, m: Tensor<2>) -> Tensor<4> {
    let [c_out, c_in] = m.dims();
    conv2d(
        x,
        m.reshape([c_out, c_in, 1, 1]),
        None,
        ConvSpec::same([1, 1], [1, 1]),
    )
}

impl InvertibleLayer for InvConv1x1 {
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let logdet = self.logdet(&x);
        (mix_channels(x, self.weight()), logdet)
    }

    /// # Panics
    ///
    /// If `W` cannot be inverted (see [`InvConv1x1::inverse_weight`]); the trait's inverse
    /// has no error. [`MultiScaleFlow::decode`](crate::MultiScaleFlow::decode) and
    /// [`sample`](crate::MultiScaleFlow::sample) check every step first and return the
    /// error; call [`InvConv1x1::try_inverse`] to get it for one layer.
    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        self.try_inverse(y).unwrap_or_else(|e| {
            panic!("InvConv1x1::inverse on a matrix that cannot be inverted ({e}); decode and sample check for this first")
        })
    }
}
