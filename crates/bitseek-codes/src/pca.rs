//! Principal components of a sample, for codes that spend their bits by variance (`alloc`).
//!
//! The covariance is one `f64` matrix product; its eigenvectors come from the cyclic Jacobi method,
//! which is exact to rounding, needs no dependency and takes well under a second at embedding
//! dimensions (a few hundred).

/// `A·Bᵀ` for row-major `A` (`m × k`) and `B` (`n × k`), as a row-major `m × n` matrix.
///
/// # Panics
/// When the slices do not hold those shapes (the product reads through raw pointers).
pub(crate) fn matmul_abt(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "A is not m × k");
    assert_eq!(b.len(), n * k, "B is not n × k");
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    // SAFETY: shapes checked above; A is read as m×k (row stride k), B as its transpose k×n
    // (strides 1, k) and `out` (m×n, row stride n) is borrowed mutably, aliasing neither.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    out
}

/// The principal axes of `rows` (row-major, `dim` values each) about `mean`: `dim` unit rows
/// (row-major `dim × dim`), sorted by decreasing variance, and the variances.
pub fn principal_axes(dim: usize, rows: &[f32], mean: &[f32]) -> (Vec<f32>, Vec<f64>) {
    let n = rows.len() / dim;
    let mut cov = vec![0f64; dim * dim];
    if n > 0 {
        let centred: Vec<f64> = rows
            .chunks_exact(dim)
            .flat_map(|r| r.iter().zip(mean).map(|(&x, &m)| x as f64 - m as f64))
            .collect();
        // SAFETY: `centred` is n×dim row-major, read as its transpose (dim×n: strides 1, dim) and
        // as itself (n×dim); `cov` is dim×dim, borrowed mutably, aliasing neither.
        unsafe {
            matrixmultiply::dgemm(
                dim,
                n,
                dim,
                1.0 / n as f64,
                centred.as_ptr(),
                1,
                dim as isize,
                centred.as_ptr(),
                dim as isize,
                1,
                0.0,
                cov.as_mut_ptr(),
                dim as isize,
                1,
            );
        }
    }
    let (values, vectors) = jacobi_eigen(dim, cov);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut axes = vec![0f32; dim * dim];
    for (row, &j) in order.iter().enumerate() {
        for i in 0..dim {
            axes[row * dim + i] = vectors[i * dim + j] as f32;
        }
    }
    (axes, order.iter().map(|&j| values[j].max(0.0)).collect())
}

/// Eigenvalues and eigenvectors (as the columns of a row-major matrix) of the symmetric `a`, by
/// cyclic Jacobi rotations until the off-diagonal mass is negligible.
pub fn jacobi_eigen(n: usize, mut a: Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..50 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= 1e-22 * total.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let n = 6;
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = ((i * 7 + j * 3) % 11) as f64 - 5.0;
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let (values, v) = jacobi_eigen(n, a.clone());
        // A·v_j = λ_j·v_j for every column, and V is orthonormal.
        for j in 0..n {
            for i in 0..n {
                let av: f64 = (0..n).map(|k| a[i * n + k] * v[k * n + j]).sum();
                assert!((av - values[j] * v[i * n + j]).abs() < 1e-9);
            }
            for k in 0..n {
                let d: f64 = (0..n).map(|i| v[i * n + j] * v[i * n + k]).sum();
                assert!((d - if j == k { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn principal_axes_find_the_widest_direction_first() {
        // Points along (1, 1)/√2 with a little spread across it.
        let rows: Vec<f32> = (0..200)
            .flat_map(|i| {
                let t = i as f32 / 10.0 - 10.0;
                let e = if i % 2 == 0 { 0.1 } else { -0.1 };
                [t + e, t - e]
            })
            .collect();
        let (axes, var) = principal_axes(2, &rows, &[0.0, 0.0]);
        assert!(var[0] > 100.0 * var[1]);
        // Along (1, 1) up to the small correlation of the alternating spread with t.
        assert!((axes[0].abs() - 0.5f32.sqrt()).abs() < 1e-2, "{axes:?}");
        assert!(
            (axes[0] - axes[1]).abs() < 1e-2,
            "first axis along (1, 1): {axes:?}"
        );
        let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>();
        assert!((norm(&axes[..2]) - 1.0).abs() < 1e-5 && (norm(&axes[2..]) - 1.0).abs() < 1e-5);
        assert!(
            (axes[0] * axes[2] + axes[1] * axes[3]).abs() < 1e-5,
            "orthogonal axes"
        );
    }
}
