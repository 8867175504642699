//! Weight normalisation (Salimans & Kingma 2016).

use burn::tensor::Tensor;

/// `w = g v / ||v||`, the norm taken per output unit over every dimension of `v` but the
/// first: `v` `(out, ...)`, `g` `(out, 1, ..., 1)`; `w` has `v`'s shape. A unit whose `v`
/// is all zeros gets NaNs, as the definition does.
///
/// On Flex (float32) our own kernel runs, one pass per unit for the norm and one for `w`,
/// with its own backward (`src/flex/weight_norm.rs`); elsewhere, [`weight_norm_portable`].
///
/// # Panics
/// If `g` does not hold one value per output unit of `v`.
pub fn weight_norm<const D: usize>(v: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    check_gain(&v, &g);
    // An empty `v` stays with the portable default: a unit without values has the norm 0,
    // whose gradients the definition makes NaN, not the kernel's zeros.
    #[cfg(feature = "flex")]
    if crate::flex::runs(&v.device(), v.dtype()) && v.shape().num_elements() > 0 {
        return crate::flex::weight_norm(v, g);
    }
    weight_norm_portable(v, g)
}

/// The portable default of [`weight_norm`]: `v (g / sqrt(Σ v²))` in Burn's operations.
///
/// # Panics
/// As [`weight_norm`].
pub fn weight_norm_portable<const D: usize>(v: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    check_gain(&v, &g);
    let dims: Vec<usize> = (1..D).collect();
    let norm = v.clone().square().sum_dims(&dims).sqrt();
    v * (g / norm)
}

/// Panics unless `g` is `(out, 1, ..., 1)` for `v` `(out, ...)`.
fn check_gain<const D: usize>(v: &Tensor<D>, g: &Tensor<D>) {
    let (v_dims, g_dims) = (v.dims(), g.dims());
    assert!(
        g_dims[0] == v_dims[0] && g_dims[1..].iter().all(|&d| d == 1),
        "weight_norm: gain {g_dims:?} for direction {v_dims:?}, want one value per output unit"
    );
}
