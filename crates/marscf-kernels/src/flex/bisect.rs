//! The bisection for the inverse CDF of a logistic mixture, on contiguous `f32` slices:
//! every element's bracket halves eight iterations at a time, with the mixture's
//! parameters of a block of elements kept in cache across those iterations.

use rayon::prelude::*;

use super::glue::prelude::*;
use super::polynomial::sigmoid;
use super::simd::with_widest_simd;
use super::tuning::MIXTURE_BLOCK;

/// The mixture, `(B, k, P)` each (`P = C H W` elements per sample), and the target `y`,
/// `(B, P)`.
#[derive(Clone, Copy)]
pub struct Mixture<'a> {
    /// Component weights `π_j`.
    pub weights: &'a [f32],
    /// Locations `μ_j`.
    pub mu: &'a [f32],
    /// Inverse scales `1 / s_j`.
    pub inv_scale: &'a [f32],
    /// Targets `y`.
    pub y: &'a [f32],
    /// Batch `B`.
    pub batch: usize,
}

/// The bisection's state, `(B, P)` each: the current point and its bracket.
pub struct Bracket {
    /// The current point `x`.
    pub x: Vec<f32>,
    /// Lower end.
    pub lower: Vec<f32>,
    /// Upper end.
    pub upper: Vec<f32>,
}

/// Runs `iterations` steps `above = F(x) > y; lower = above ? lower : x;
/// upper = above ? x : upper; x = (lower + upper) / 2` on every element, with
/// `F(x) = Σ_j π_j σ((x - μ_j) / s_j)`. Returns the largest `|Δx|` of the last step (0 for
/// no element).
///
/// Each sample's `P` elements are cut into blocks of at most [`MIXTURE_BLOCK`], so that a block
/// never spans two samples (whose mixtures lie `k P` apart).
pub fn steps(m: Mixture<'_>, state: &mut Bracket, iterations: usize) -> f32 {
    if m.y.is_empty() {
        return 0.0;
    }
    let p = m.y.len() / m.batch;
    let k = m.weights.len() / m.y.len();
    state
        .x
        .par_chunks_mut(p)
        .zip(state.lower.par_chunks_mut(p))
        .zip(state.upper.par_chunks_mut(p))
        .enumerate()
        .flat_map(|(b, ((x, lower), upper))| {
            x.par_chunks_mut(MIXTURE_BLOCK)
                .zip(lower.par_chunks_mut(MIXTURE_BLOCK))
                .zip(upper.par_chunks_mut(MIXTURE_BLOCK))
                .enumerate()
                .map(move |(block, bracket)| {
                    with_widest_simd(
                        #[inline(always)]
                        || block_steps(m, [b, block * MIXTURE_BLOCK, k, p], bracket, iterations),
                    )
                })
        })
        .reduce(|| 0.0, f32::max)
}

#[inline(always)]
fn block_steps(
    m: Mixture<'_>,
    [b, e, k, p]: [usize; 4],
    ((x, lower), upper): ((&mut [f32], &mut [f32]), &mut [f32]),
    iterations: usize,
) -> f32 {
    let n = x.len();
    let y = &m.y[b * p + e..][..n];
    let mut cdf = [0.0f32; MIXTURE_BLOCK];
    let mut moved = 0.0f32;
    for iteration in 0..iterations {
        cdf[..n].fill(0.0);
        for j in 0..k {
            let offset = (b * k + j) * p + e;
            let (w, mu, inv) = (
                &m.weights[offset..][..n],
                &m.mu[offset..][..n],
                &m.inv_scale[offset..][..n],
            );
            for i in 0..n {
                cdf[i] += w[i] * sigmoid((x[i] - mu[i]) * inv[i]);
            }
        }
        moved = 0.0;
        for i in 0..n {
            let above = cdf[i] > y[i];
            lower[i] = if above { lower[i] } else { x[i] };
            upper[i] = if above { x[i] } else { upper[i] };
            let next = (lower[i] + upper[i]) * 0.5;
            if iteration + 1 == iterations {
                moved = moved.max((next - x[i]).abs());
            }
            x[i] = next;
        }
    }
    moved
}

// Burn's tensors in and out: the op on Burn tensors, on Flex, its backward, and its
// recording under autodiff.

/// The Flex kernel of [`crate::bisect_mixture`].
pub fn bisect_mixture(
    mixture: &crate::MixtureCdf,
    y: Tensor<4>,
    [lower, upper]: [Tensor<4>; 2],
    max_iters: usize,
    tolerance: f64,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexKernels>::marscf_bisect_mixture(
        mixture.weights.clone().into_dispatch(),
        mixture.mu.clone().into_dispatch(),
        mixture.inv_scale.clone().into_dispatch(),
        y.into_dispatch(),
        lower.into_dispatch(),
        upper.into_dispatch(),
        (max_iters, tolerance),
    ))
}

/// [`FlexKernels::marscf_bisect_mixture`] on Flex, on [`crate::bisect`]'s schedule.
pub fn on_flex(
    weights: FlexTensor,
    mu: FlexTensor,
    inv_scale: FlexTensor,
    y: FlexTensor,
    lower: FlexTensor,
    upper: FlexTensor,
    (max_iters, tolerance): (usize, f64),
) -> FlexTensor {
    let shape = dims4(&y);
    let [weights, mu, inv_scale, y] = [&weights, &mu, &inv_scale, &y].map(values);
    let mixture = Mixture {
        weights: &weights,
        mu: &mu,
        inv_scale: &inv_scale,
        y: &y,
        batch: shape[0],
    };
    let start = Bracket {
        x: vec![0.0; y.len()],
        lower: values(&lower).into_owned(),
        upper: values(&upper).into_owned(),
    };
    let end = crate::bisect::schedule(max_iters, tolerance, start, |mut bracket, n, _checked| {
        let moved = steps(mixture, &mut bracket, n);
        (bracket, f64::from(moved))
    });
    tensor(end.x, shape)
}

/// [`FlexKernels::marscf_bisect_mixture`] under autodiff: the result is a constant, a new
/// leaf tracking nothing.
pub fn on_autodiff<C: CheckpointStrategy>(
    weights: AutodiffTensor<C>,
    mu: AutodiffTensor<C>,
    inv_scale: AutodiffTensor<C>,
    y: AutodiffTensor<C>,
    lower: AutodiffTensor<C>,
    upper: AutodiffTensor<C>,
    limits: (usize, f64),
) -> AutodiffTensor<C> {
    AutodiffTensor::<C>::new(on_flex(
        weights.into_primitive(),
        mu.into_primitive(),
        inv_scale.into_primitive(),
        y.into_primitive(),
        lower.into_primitive(),
        upper.into_primitive(),
        limits,
    ))
}
