//! Seeded random orthogonal rotations (the JLT of RaBitQ).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A `dim × dim` orthogonal matrix, row-major, drawn from the Haar measure: QR (modified
/// Gram-Schmidt in f64) of a Gaussian matrix seeded by `seed`.
pub fn random_orthogonal(dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m: Vec<f64> = (0..dim * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    for i in 0..dim {
        for j in 0..i {
            let dot: f64 = (0..dim).map(|c| m[i * dim + c] * m[j * dim + c]).sum();
            for c in 0..dim {
                m[i * dim + c] -= dot * m[j * dim + c];
            }
        }
        let norm = (0..dim)
            .map(|c| m[i * dim + c] * m[i * dim + c])
            .sum::<f64>()
            .sqrt();
        for c in 0..dim {
            m[i * dim + c] /= norm;
        }
    }
    m.into_iter().map(|v| v as f32).collect()
}

/// `out = rows · Pᵀ` for `n = rows.len() / dim` row vectors of `dim` (i.e. each row `x` becomes
/// `P x`); a trailing partial row of `rows` is ignored.
///
/// # Panics
/// When `dim` is zero, `p` is not `dim × dim` or `out` does not hold `n × dim` values: the matrix
/// product below reads and writes through raw pointers, so every shape is checked first.
pub fn rotate_rows(p: &[f32], dim: usize, rows: &[f32], out: &mut [f32]) {
    assert!(dim > 0, "rotation dimension must be positive");
    assert_eq!(p.len(), dim * dim, "rotation is not dim × dim");
    let n = rows.len() / dim;
    assert_eq!(
        out.len(),
        n * dim,
        "output does not hold one row per input row"
    );
    // SAFETY: the shapes are checked above: matrixmultiply reads `rows` (its first n×dim values,
    // row-major), `p` as its transpose (dim×dim with swapped strides) and writes `out` (n×dim),
    // which is borrowed mutably and so aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            n,
            dim,
            dim,
            1.0,
            rows.as_ptr(),
            dim as isize,
            1,
            p.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            dim as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_orthogonal_and_seeded() {
        let d = 37;
        let p = random_orthogonal(d, 7);
        for i in 0..d {
            for j in 0..d {
                let dot: f32 = (0..d).map(|c| p[i * d + c] * p[j * d + c]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "P Pᵀ[{i},{j}] = {dot}");
            }
        }
        assert_eq!(p, random_orthogonal(d, 7));
        assert_ne!(p, random_orthogonal(d, 8));
    }

    #[test]
    #[should_panic(expected = "rotation is not dim × dim")]
    fn rotate_rows_rejects_a_short_rotation() {
        let mut out = vec![0.0; 8];
        rotate_rows(&[1.0; 15], 4, &[0.0; 8], &mut out);
    }

    #[test]
    fn rotate_rows_matches_naive() {
        let d = 5;
        let p = random_orthogonal(d, 1);
        let x: Vec<f32> = (0..2 * d).map(|i| i as f32 * 0.3 - 1.0).collect();
        let mut out = vec![0.0; 2 * d];
        rotate_rows(&p, d, &x, &mut out);
        for r in 0..2 {
            for i in 0..d {
                let want: f32 = (0..d).map(|c| p[i * d + c] * x[r * d + c]).sum();
                assert!((out[r * d + i] - want).abs() < 1e-5);
            }
        }
    }
}
