//! The Gaussian statistics of a feature set and the Fréchet distance between two:
//! `d² = |μ1 - μ2|² + tr Σ1 + tr Σ2 - 2 tr (Σ1^½ Σ2 Σ1^½)^½`.
//!
//! `tr (Σ1^½ Σ2 Σ1^½)^½` equals pytorch-fid's `tr sqrtm(Σ1 Σ2)` (the two matrices are
//! similar), and is computed from two symmetric eigendecompositions (faer's): `Σ1 = U Λ Uᵀ`
//! gives `Σ1^½ = U Λ^½ Uᵀ`, and the trace is the sum of the square roots of the eigenvalues
//! of the symmetric positive semi-definite `Σ1^½ Σ2 Σ1^½`. Eigenvalues within rounding of
//! zero (below `d·ε·λ_max`, negative ones included) count as 0. Unlike scipy's `sqrtm` of the non-symmetric product, this
//! needs no diagonal offset for singular covariances (fewer samples than dimensions).

use std::io::Write;
use std::path::Path;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par, Side};
use marscf_data::atomic_file::Existing;
use marscf_data::npy::{Npz, NpzMember, write_npz};

use crate::{ModelError, files};

/// The mean `μ` and covariance `Σ` (sample covariance, `N - 1` in the denominator, as
/// `numpy.cov`) of `N` feature vectors of `d` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct FidStatistics {
    /// `μ`, `d` values.
    pub mu: Vec<f64>,
    /// `Σ`, `d x d` row-major.
    pub sigma: Vec<f64>,
}

impl FidStatistics {
    /// The dimension `d`.
    pub fn dims(&self) -> usize {
        self.mu.len()
    }

    /// Reads pytorch-fid's statistics file: an `.npz` with `mu` `(d,)` and `sigma` `(d, d)`,
    /// float64 or float32.
    pub fn read_npz(path: &Path) -> Result<Self, ModelError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(ModelError::io("read", path))?;
        let mut npz = Npz::new(file, &name).map_err(ModelError::format(path, "not an .npz"))?;
        let mut array = |key: &str| -> Result<(Vec<usize>, Vec<f64>), ModelError> {
            let array = npz
                .array(key)
                .map_err(ModelError::format(path, "unreadable statistics"))?
                .ok_or_else(|| ModelError::invalid(path, format!("no array {key:?}")))?;
            let values = array
                .to_f64(&name)
                .map_err(ModelError::format(path, "unreadable statistics"))?;
            Ok((array.shape, values))
        };
        let (mu_shape, mu) = array("mu")?;
        let (sigma_shape, sigma) = array("sigma")?;
        let d = mu.len();
        if mu_shape != [d] || sigma_shape != [d, d] {
            return Err(ModelError::invalid(
                path,
                format!("mu {mu_shape:?} and sigma {sigma_shape:?} are not (d,) and (d, d)"),
            ));
        }
        Ok(Self { mu, sigma })
    }

    /// Writes pytorch-fid's statistics file (`mu`, `sigma` as float64, as `numpy.savez`),
    /// whole or not at all; an existing `path` is replaced, or with [`Existing::Keep`] left
    /// as it is ([`ModelError::Exists`]).
    pub fn write_npz(&self, path: &Path, existing: Existing) -> Result<(), ModelError> {
        let d = self.dims();
        let bytes =
            |values: &[f64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let (mu, sigma) = (bytes(&self.mu), bytes(&self.sigma));
        fn member<'a>(name: &'a str, shape: &'a [usize], data: &'a [u8]) -> NpzMember<'a> {
            NpzMember {
                name,
                descr: "<f8",
                shape,
                data: Box::new(move |out: &mut dyn Write| out.write_all(data)),
            }
        }
        files::write_with(path, existing, |file| {
            write_npz(
                file,
                vec![member("mu", &[d], &mu), member("sigma", &[d, d], &sigma)],
            )
            .map_err(ModelError::format(path, "cannot write the archive"))
        })
    }
}

/// Feature vectors gathered batch by batch into [`FidStatistics`], in memory that does
/// not grow with their number: the count, the sum and the sum of outer products of the
/// vectors shifted by the first one (so that the covariance does not subtract two large
/// numbers).
#[derive(Debug)]
pub struct FeatureMoments {
    dims: usize,
    count: usize,
    shift: Vec<f64>,
    sum: Vec<f64>,
    cross: Mat<f64>,
}

impl FeatureMoments {
    /// No vectors yet, of `dims` dimensions.
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            count: 0,
            shift: Vec::new(),
            sum: vec![0.0; dims],
            cross: Mat::zeros(dims, dims),
        }
    }

    /// Adds `features`: whole vectors of `dims` values, one after the other.
    ///
    /// # Panics
    /// If `features` does not hold whole vectors.
    pub fn add(&mut self, features: &[f32]) {
        let d = self.dims;
        assert_eq!(features.len() % d, 0, "whole feature vectors");
        let rows = features.len() / d;
        if rows == 0 {
            return;
        }
        if self.shift.is_empty() {
            self.shift = features[..d].iter().map(|&v| v as f64).collect();
        }
        let centred = Mat::from_fn(rows, d, |i, j| features[i * d + j] as f64 - self.shift[j]);
        for i in 0..rows {
            for (j, sum) in self.sum.iter_mut().enumerate() {
                *sum += centred[(i, j)];
            }
        }
        matmul(
            self.cross.as_mut(),
            Accum::Add,
            centred.transpose(),
            centred.as_ref(),
            1.0,
            Par::rayon(0),
        );
        self.count += rows;
    }

    /// The vectors added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `μ` and `Σ`; `None` below two vectors (no sample covariance).
    pub fn finish(&self) -> Option<FidStatistics> {
        let (n, d) = (self.count as f64, self.dims);
        if self.count < 2 {
            return None;
        }
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let mu = mean.iter().zip(&self.shift).map(|(m, s)| m + s).collect();
        let mut sigma = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                sigma[i * d + j] = (self.cross[(i, j)] - n * mean[i] * mean[j]) / (n - 1.0);
            }
        }
        Some(FidStatistics { mu, sigma })
    }
}

/// The Fréchet distance between the Gaussians `a` and `b` (see the module doc).
pub fn frechet_distance(a: &FidStatistics, b: &FidStatistics) -> Result<f64, ModelError> {
    let d = a.dims();
    if b.dims() != d {
        return Err(ModelError::FidDimensions {
            first: d,
            second: b.dims(),
        });
    }
    let matrix = |s: &FidStatistics| Mat::from_fn(d, d, |i, j| s.sigma[i * d + j]);
    let (s1, s2) = (matrix(a), matrix(b));
    let eigen = s1
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| ModelError::Eigen(format!("{e:?}")))?;
    let (u, lambda) = (eigen.U(), eigen.S().column_vector());
    let root = Mat::from_fn(d, d, |i, j| u[(i, j)] * lambda[j].max(0.0).sqrt()) * u.transpose();
    let product = &root * &s2 * &root;
    let eigenvalues = product
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| ModelError::Eigen(format!("{e:?}")))?;
    // Eigenvalues within rounding of zero (`d·ε` of the largest) are zero: their square
    // roots would add `√(d·ε)·λ_max` each where the covariances are singular.
    let largest = eigenvalues.iter().fold(0.0, |m: f64, &l| m.max(l));
    let noise = d as f64 * f64::EPSILON * largest;
    let trace_root: f64 = eigenvalues
        .iter()
        .filter(|&&l| l > noise)
        .map(|l| l.sqrt())
        .sum();
    let difference: f64 = a.mu.iter().zip(&b.mu).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |s: &Mat<f64>| (0..d).map(|i| s[(i, i)]).sum::<f64>();
    Ok(difference + trace(&s1) + trace(&s2) - 2.0 * trace_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1-d Gaussians: `(μ1 - μ2)² + (σ1 - σ2)²`.
    #[test]
    fn one_dimension_by_hand() {
        let a = FidStatistics {
            mu: vec![1.0],
            sigma: vec![4.0],
        };
        let b = FidStatistics {
            mu: vec![-2.0],
            sigma: vec![9.0],
        };
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - (9.0 + 1.0)).abs() < 1e-12, "{d}");
        assert!(frechet_distance(&a, &a).unwrap().abs() < 1e-12);
    }

    /// Commuting covariances (both diagonal): `Σ_i (√a_i - √b_i)²` plus the means' term.
    #[test]
    fn diagonal_covariances_by_hand() {
        let diag = |v: &[f64]| {
            let d = v.len();
            let mut m = vec![0.0; d * d];
            for i in 0..d {
                m[i * d + i] = v[i];
            }
            m
        };
        let a = FidStatistics {
            mu: vec![0.0, 1.0, 2.0],
            sigma: diag(&[1.0, 4.0, 0.0]),
        };
        let b = FidStatistics {
            mu: vec![0.5, 1.0, 2.0],
            sigma: diag(&[9.0, 1.0, 16.0]),
        };
        let want = 0.25 + 4.0 + 1.0 + 16.0;
        assert!((frechet_distance(&a, &b).unwrap() - want).abs() < 1e-10);
        let short = FidStatistics {
            mu: vec![0.0],
            sigma: vec![1.0],
        };
        assert!(matches!(
            frechet_distance(&a, &short),
            Err(ModelError::FidDimensions {
                first: 3,
                second: 1
            })
        ));
    }

    /// The moments of batches equal the two-pass mean and covariance of all the vectors.
    #[test]
    fn moments_match_the_two_pass_formula() {
        let (n, d) = (37, 5);
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919 % 113) as f32 / 17.0 + 100.0) * if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let mut moments = FeatureMoments::new(d);
        for batch in x.chunks(3 * d) {
            moments.add(batch);
        }
        let stats = moments.finish().unwrap();
        for j in 0..d {
            let mean = (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64;
            assert!((stats.mu[j] - mean).abs() < 1e-12);
            for k in 0..d {
                let mean_k = (0..n).map(|i| x[i * d + k] as f64).sum::<f64>() / n as f64;
                let cov = (0..n)
                    .map(|i| (x[i * d + j] as f64 - mean) * (x[i * d + k] as f64 - mean_k))
                    .sum::<f64>()
                    / (n - 1) as f64;
                assert!((stats.sigma[j * d + k] - cov).abs() < 1e-10, "{j} {k}");
            }
        }
        assert!(FeatureMoments::new(2).finish().is_none());
    }
}
