//! Small dense linear algebra on the host, in f64.
//!
//! Burn 0.22 has no matrix inverse or triangular solve, and the matrices of a flow's
//! invertible 1x1 convolutions are tiny (C x C with C at most a few hundred), so they are
//! inverted and decomposed here, once per call, in double precision. Matrices are row-major
//! `Vec<f64>` of length `n * n`.

use burn::tensor::{Device, Tensor, TensorData};

use crate::CoreError;

/// Reads a tensor back to the host as f64 values (row-major).
pub fn to_host<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("float tensor data converts to f64")
}

/// An f32 tensor of the given shape from f64 host values (row-major).
pub fn from_host<const D: usize>(
    values: Vec<f64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape).convert::<f32>(), device)
}

/// The factors of a partially pivoted LU decomposition `A = P L U`.
#[derive(Debug, Clone, PartialEq)]
pub struct LuFactors {
    /// Side length of the square matrix.
    pub n: usize,
    /// Permutation matrix `P` (row-major, `n * n`).
    pub p: Vec<f64>,
    /// Unit lower-triangular `L` (row-major, ones on the diagonal).
    pub l: Vec<f64>,
    /// Upper-triangular `U` (row-major).
    pub u: Vec<f64>,
}

/// Decomposes `a` (`n x n`, row-major) as `P L U` with partial pivoting.
///
/// Fails with [`CoreError::SingularMatrix`] when a pivot is exactly zero.
pub fn lu_decompose(a: &[f64], n: usize) -> Result<LuFactors, CoreError> {
    assert_eq!(a.len(), n * n, "lu_decompose: a must be n x n");
    let mut u = a.to_vec();
    let mut l = vec![0.0; n * n];
    // perm[i] = index of the original row now at row i: (P^T A)[i] = A[perm[i]].
    let mut perm: Vec<usize> = (0..n).collect();
    for k in 0..n {
        let pivot = (k..n)
            .max_by(|&i, &j| u[i * n + k].abs().total_cmp(&u[j * n + k].abs()))
            .unwrap_or(k);
        if u[pivot * n + k] == 0.0 {
            return Err(CoreError::SingularMatrix { size: n });
        }
        if pivot != k {
            for c in 0..n {
                u.swap(k * n + c, pivot * n + c);
                l.swap(k * n + c, pivot * n + c);
            }
            perm.swap(k, pivot);
        }
        for i in k + 1..n {
            let factor = u[i * n + k] / u[k * n + k];
            l[i * n + k] = factor;
            for c in k..n {
                u[i * n + c] -= factor * u[k * n + c];
            }
        }
    }
    for i in 0..n {
        l[i * n + i] = 1.0;
    }
    // A = P L U with P[perm[i], i] = 1.
    let mut p = vec![0.0; n * n];
    for (i, &row) in perm.iter().enumerate() {
        p[row * n + i] = 1.0;
    }
    Ok(LuFactors { n, p, l, u })
}

/// `A^-1` for `a` (`n x n`, row-major), by LU with partial pivoting and two triangular
/// solves per column.
pub fn inverse(a: &[f64], n: usize) -> Result<Vec<f64>, CoreError> {
    let LuFactors { p, l, u, .. } = lu_decompose(a, n)?;
    let mut inv = vec![0.0; n * n];
    let mut column = vec![0.0; n];
    for j in 0..n {
        // Solve A x = e_j, i.e. L U x = P^T e_j; (P^T e_j)[i] = P[j, i].
        for i in 0..n {
            column[i] = p[j * n + i];
        }
        for i in 0..n {
            let s: f64 = (0..i).map(|k| l[i * n + k] * column[k]).sum();
            column[i] -= s;
        }
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|k| u[i * n + k] * column[k]).sum();
            column[i] = (column[i] - s) / u[i * n + i];
        }
        for i in 0..n {
            inv[i * n + j] = column[i];
        }
    }
    Ok(inv)
}

/// The orthogonal factor `Q` of the QR decomposition of `a` (`n x n`, row-major), by
/// modified Gram-Schmidt on the columns, signs fixed so that `diag(R) > 0`.
pub fn orthogonal_factor(a: &[f64], n: usize) -> Result<Vec<f64>, CoreError> {
    let mut q = a.to_vec();
    for j in 0..n {
        for k in 0..j {
            let dot: f64 = (0..n).map(|i| q[i * n + k] * q[i * n + j]).sum();
            for i in 0..n {
                q[i * n + j] -= dot * q[i * n + k];
            }
        }
        let norm = (0..n).map(|i| q[i * n + j].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(CoreError::SingularMatrix { size: n });
        }
        for i in 0..n {
            q[i * n + j] /= norm;
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row-major product of two `n x n` matrices.
    fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                let aik = a[i * n + k];
                for j in 0..n {
                    c[i * n + j] += aik * b[k * n + j];
                }
            }
        }
        c
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    fn identity(n: usize) -> Vec<f64> {
        (0..n * n)
            .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
            .collect()
    }

    /// A fixed, non-symmetric matrix that needs pivoting (zero in the first pivot position).
    fn sample() -> Vec<f64> {
        vec![
            0.0, 2.0, 1.0, 4.0, 1.0, -3.0, 1.0, 5.0, 2.0, 1.0, -1.0, 0.5, 3.0, -2.0, 1.0, 2.0,
        ]
    }

    #[test]
    fn lu_reconstructs_the_matrix() {
        let a = sample();
        let f = lu_decompose(&a, 4).unwrap();
        let plu = matmul(&matmul(&f.p, &f.l, 4), &f.u, 4);
        assert!(max_abs_diff(&plu, &a) < 1e-12);
        for i in 0..4 {
            assert_eq!(f.l[i * 4 + i], 1.0);
            for j in 0..4 {
                if j > i {
                    assert_eq!(f.l[i * 4 + j], 0.0);
                }
                if j < i {
                    assert_eq!(f.u[i * 4 + j], 0.0);
                }
            }
        }
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let a = sample();
        let inv = inverse(&a, 4).unwrap();
        assert!(max_abs_diff(&matmul(&a, &inv, 4), &identity(4)) < 1e-12);
        assert!(max_abs_diff(&matmul(&inv, &a, 4), &identity(4)) < 1e-12);
    }

    #[test]
    fn lu_determinant_matches_cofactor_expansion() {
        // ln |det A| = Σ ln |U_ii| (det P = ±1, det L = 1).
        let log_abs_det = |a: &[f64], n: usize| -> Result<f64, CoreError> {
            let lu = lu_decompose(a, n)?;
            Ok((0..n).map(|i| lu.u[i * n + i].abs().ln()).sum())
        };
        // det of [[2, 1, 0], [1, 3, 1], [0, 1, 4]] = 2(12-1) - 1(4-0) = 18.
        let a = [2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0];
        assert!((log_abs_det(&a, 3).unwrap() - 18f64.ln()).abs() < 1e-12);
        // A row swap flips the sign, not the magnitude.
        let b = [1.0, 3.0, 1.0, 2.0, 1.0, 0.0, 0.0, 1.0, 4.0];
        assert!((log_abs_det(&b, 3).unwrap() - 18f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn singular_matrices_are_errors() {
        let a = [1.0, 2.0, 2.0, 4.0];
        assert!(matches!(
            inverse(&a, 2),
            Err(CoreError::SingularMatrix { size: 2 })
        ));
        assert!(orthogonal_factor(&[0.0; 4], 2).is_err());
    }

    #[test]
    fn orthogonal_factor_is_orthogonal() {
        let q =
            orthogonal_factor(&sample().iter().map(|v| v + 0.5).collect::<Vec<_>>(), 4).unwrap();
        let qt: Vec<f64> = (0..16).map(|i| q[(i % 4) * 4 + i / 4]).collect();
        assert!(max_abs_diff(&matmul(&qt, &q, 4), &identity(4)) < 1e-12);
    }
}
