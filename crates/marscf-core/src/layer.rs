//! The invertible-layer trait and the one place where log-determinants are accumulated.

use burn::tensor::Tensor;

/// An invertible map `y = f(x)` on image-shaped tensors `(B, C, H, W)` that knows its
/// log-determinant.
///
/// Implementors only compute `ln |det ∂f/∂x|` per sample; the running log-det is updated by
/// [`FlowState`] alone (forward adds, inverse subtracts), so no layer repeats the bookkeeping.
pub trait InvertibleLayer: Sized {
    /// `y = f(x)` and `ln |det ∂f/∂x|` per sample, shape `(B)`.
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>);

    /// `x = f⁻¹(y)` and `ln |det ∂f/∂x|` at that `x` per sample, shape `(B)` (the term that
    /// [`forward`](Self::forward) added, so that inverse can subtract it).
    fn inverse(&self, y: Tensor<4>) -> (Tensor<4>, Tensor<1>);

    /// Data-dependent initialisation from a batch `x` seen at this layer's input. Layers
    /// without such an initialisation, and layers already initialised, return themselves
    /// unchanged.
    fn initialize(self, _x: &Tensor<4>) -> Self {
        self
    }
}

/// A batch in flight through a flow: the tensor and its running per-sample log-det.
#[derive(Debug, Clone)]
pub struct FlowState {
    /// The current tensor, `(B, C, H, W)`.
    pub x: Tensor<4>,
    /// The accumulated log-det (or objective), `(B)`.
    pub logdet: Tensor<1>,
}

impl FlowState {
    /// Starts a batch with the given running log-det, `(B)`.
    pub fn new(x: Tensor<4>, logdet: Tensor<1>) -> Self {
        Self { x, logdet }
    }

    /// Starts a batch with a zero log-det.
    pub fn zero(x: Tensor<4>) -> Self {
        let logdet = Tensor::zeros([x.dims()[0]], &x.device());
        Self { x, logdet }
    }

    /// `x <- f(x)`, `logdet <- logdet + ln |det ∂f/∂x|`.
    pub fn forward<L: InvertibleLayer>(self, layer: &L) -> Self {
        let (x, term) = layer.forward(self.x);
        Self {
            x,
            logdet: self.logdet + term,
        }
    }

    /// `x <- f⁻¹(x)`, `logdet <- logdet - ln |det ∂f/∂x|`.
    pub fn inverse<L: InvertibleLayer>(self, layer: &L) -> Self {
        let (x, term) = layer.inverse(self.x);
        Self {
            x,
            logdet: self.logdet - term,
        }
    }

    /// Adds a per-sample log-density (a prior term), `(B)`.
    pub fn add_log_density(self, term: Tensor<1>) -> Self {
        Self {
            logdet: self.logdet + term,
            ..self
        }
    }
}

/// A log-det that is the same for every sample (a scalar tensor of shape `(1)`), broadcast
/// to the batch: `(1) -> (B)`.
pub(crate) fn per_sample(term: Tensor<1>, batch: usize) -> Tensor<1> {
    term.expand([batch])
}

/// Sum over all but the batch dimension: `(B, C, H, W) -> (B)`.
pub fn sum_per_sample(x: Tensor<4>) -> Tensor<1> {
    let b = x.dims()[0];
    x.reshape([b as i32, -1]).sum_dim(1).reshape([b])
}
