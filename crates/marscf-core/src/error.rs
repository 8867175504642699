//! Errors of the flow layers.

/// What can go wrong when building or running a flow: invalid configurations and
/// inputs whose shape does not match the layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A coupling name that is none of [`crate::CouplingKind::name`]'s.
    #[error("unknown coupling {name:?}: expected one of {}", crate::CouplingKind::all().map(|kind| kind.name()).join(", "))]
    UnknownCoupling {
        /// The name given.
        name: String,
    },
    /// A size that must be positive is zero.
    #[error("{what} must be positive, got 0")]
    ZeroSize {
        /// Which size.
        what: &'static str,
    },
    /// A layer that splits its channels in halves got an odd channel count.
    #[error("{layer} splits its channels in halves and needs an even count, got {channels}")]
    OddChannels {
        /// The layer that needs the even count.
        layer: &'static str,
        /// The channel count it got.
        channels: usize,
    },
    /// A probability outside its range.
    #[error("{what} must be in [0, 1), got {value}")]
    InvalidProbability {
        /// Which probability.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// The attention heads do not divide the hidden width.
    #[error("hidden width {hidden} does not divide into {heads} attention heads")]
    HeadsMismatch {
        /// Hidden width.
        hidden: usize,
        /// Heads.
        heads: usize,
    },
    /// A spatial size cannot be squeezed `levels` times.
    #[error("image {height}x{width} cannot be squeezed {levels} times: both sides must divide by 2^{levels} = {}", 1usize << levels)]
    NotDivisible {
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// Number of levels (squeezes).
        levels: usize,
    },
    /// An input tensor has the wrong shape.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// What was being checked.
        what: &'static str,
        /// Expected shape (0 = any size).
        expected: Vec<usize>,
        /// Shape received.
        got: Vec<usize>,
    },
    /// A matrix that must be invertible is singular.
    #[error("{size}x{size} matrix is singular")]
    SingularMatrix {
        /// Side length.
        size: usize,
    },
    /// A diagonal entry `sign_s[i] exp(log_s[i])` of an LU-parametrised 1x1 convolution's
    /// `U` is zero, or it or its reciprocal is outside f32's normal range: `W` is singular
    /// in f32 (`exp(log_s)` underflows to 0 below `log_s ≈ -87.3`) or `W⁻¹` overflows.
    #[error(
        "1x1 convolution: U's diagonal entry {index} is sign_s * exp(log_s) = {sign_s} * exp({log_s}), \
         which is zero or outside f32's range (|log_s| must be at most {max_abs_log_s:.2}): W cannot be inverted"
    )]
    LuDiagonalOutOfRange {
        /// Index `i` of the entry.
        index: usize,
        /// `sign_s[i]`.
        sign_s: f64,
        /// `log_s[i]`.
        log_s: f64,
        /// The largest `|log_s|` for which `exp(log_s)` and `exp(-log_s)` are normal f32
        /// numbers, `-ln(f32::MIN_POSITIVE)`.
        max_abs_log_s: f64,
    },
    /// A matrix's inverse has entries that f32 cannot hold (infinite, NaN, or beyond
    /// `f32::MAX`): the matrix is singular to f32 precision.
    #[error(
        "the inverse of the {size}x{size} matrix has entries beyond f32's range (largest magnitude {largest:e}): \
         the matrix is singular to f32 precision"
    )]
    InverseOutOfRange {
        /// Side length.
        size: usize,
        /// The largest magnitude among the inverse's entries (NaN if one is NaN).
        largest: f64,
    },
    /// The 1x1 convolution of a flow step cannot be inverted, so the flow cannot be run
    /// backwards (`decode`, `sample`).
    #[error("flow level {level}, step {step}: {reason}")]
    StepNotInvertible {
        /// Level (from 0).
        level: usize,
        /// Flow step within the level (from 0).
        step: usize,
        /// Why its 1x1 convolution cannot be inverted.
        reason: Box<CoreError>,
    },
    /// The number of latents given to `decode` does not match the number of levels.
    #[error("expected {expected} latents (one per level), got {got}")]
    LatentCount {
        /// Number of levels.
        expected: usize,
        /// Number of latents given.
        got: usize,
    },
}
