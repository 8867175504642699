//! Errors of the flow layers.

/// What can go wrong when building or running a flow: invalid configurations and
/// inputs whose shape does not match the layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
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
    /// The number of latents given to `decode` does not match the number of levels.
    #[error("expected {expected} latents (one per level), got {got}")]
    LatentCount {
        /// Number of levels.
        expected: usize,
        /// Number of latents given.
        got: usize,
    },
}
