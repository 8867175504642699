//! The inverse CDF of a mixture of logistics by bisection.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

/// A mixture of `k` logistics per element of `(B, C, H, W)`, as the bisection reads it.
#[derive(Debug, Clone)]
pub struct MixtureCdf {
    /// Component weights `π_j` (summing to 1 over `j`), `(B, k, C, H, W)`.
    pub weights: Tensor<5>,
    /// Locations `μ_j`, `(B, k, C, H, W)`.
    pub mu: Tensor<5>,
    /// Inverse scales `1 / s_j`, `(B, k, C, H, W)`.
    pub inv_scale: Tensor<5>,
}

/// `x` with `F(x) = y`, `F(x) = Σ_j π_j σ((x - μ_j) / s_j)`, by bisection from `x = 0`
/// in `[lower, upper]` (each `(B, C, H, W)`): each iteration sets `lower = x` where
/// `F(x) <= y`, `upper = x` where `F(x) > y`, then `x = (lower + upper) / 2`; every 8
/// iterations it stops if no element moved by more than `tolerance`, and after
/// `max_iters` in any case. The result is a constant (no gradient flows through it).
///
/// On Flex (float32) our own kernel runs (`src/flex/bisect.rs`; no gradient, as here);
/// elsewhere, [`bisect_mixture_portable`].
pub fn bisect_mixture(
    mixture: &MixtureCdf,
    y: Tensor<4>,
    [lower, upper]: [Tensor<4>; 2],
    max_iters: usize,
    tolerance: f64,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if crate::flex::runs(&y.device(), y.dtype()) {
        return crate::flex::bisect_mixture(mixture, y, [lower, upper], max_iters, tolerance);
    }
    bisect_mixture_portable(mixture, y, [lower, upper], max_iters, tolerance)
}

/// The portable default of [`bisect_mixture`], in standard tensor operations (one host
/// read per convergence check).
pub fn bisect_mixture_portable(
    mixture: &MixtureCdf,
    y: Tensor<4>,
    [lower, upper]: [Tensor<4>; 2],
    max_iters: usize,
    tolerance: f64,
) -> Tensor<4> {
    if y.shape().num_elements() == 0 {
        // No element to solve for (and no maximum over them to check).
        return y.zeros_like().detach();
    }
    let [b, c, h, w] = y.dims();
    let cdf = |x: Tensor<4>| {
        let z = (x.unsqueeze_dim::<5>(1) - mixture.mu.clone()) * mixture.inv_scale.clone();
        (sigmoid(z) * mixture.weights.clone())
            .sum_dim(1)
            .reshape([b, c, h, w])
    };
    let start = (y.zeros_like(), lower, upper);
    let (x, _, _) = schedule(
        max_iters,
        tolerance,
        start,
        |(mut x, mut lower, mut upper), n, checked| {
            let mut moved = 0.0;
            for i in 1..=n {
                // The reference's `x' = (x + lower) / 2` or `(x + upper) / 2` is the midpoint
                // of the new bracket, computed with the same two operands.
                let above = cdf(x.clone()).greater(y.clone());
                lower = x.clone().mask_where(above.clone(), lower);
                upper = upper.mask_where(above, x.clone());
                let next = (lower.clone() + upper.clone()).mul_scalar(0.5);
                if checked && i == n {
                    moved = (next.clone() - x).abs().max().into_scalar::<f32>() as f64;
                }
                x = next;
            }
            ((x, lower, upper), moved)
        },
    );
    x.detach()
}

/// Iterations between two convergence checks.
const CHECK_EVERY: usize = 8;

/// The bisection's schedule, on every backend: `round(state, n, checked)` runs `n`
/// iterations and returns the state and, where `checked`, the largest move of its last
/// (any value otherwise); rounds of [`CHECK_EVERY`] run until a checked one moves no element
/// by more than `tolerance`, or `max_iters` are done (a last, shorter round is not checked).
pub(crate) fn schedule<S>(
    max_iters: usize,
    tolerance: f64,
    mut state: S,
    round: impl Fn(S, usize, bool) -> (S, f64),
) -> S {
    let mut done = 0;
    while done < max_iters {
        let iterations = CHECK_EVERY.min(max_iters - done);
        let checked = iterations == CHECK_EVERY;
        let (next, moved) = round(state, iterations, checked);
        state = next;
        done += iterations;
        if checked && moved <= tolerance {
            break;
        }
    }
    state
}
