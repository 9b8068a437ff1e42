//! The checks every vector passes at the boundary, and the arithmetic they share.
//!
//! A vector an index cannot rank silently corrupts results: a NaN poisons every score it touches, a
//! wrong length misreads the next row, and a zero vector has no direction for cosine. So vectors are
//! checked once, where they enter (a file, a request, a query batch), by [`check_row`] or
//! [`VectorBatch::new`], and the scan trusts them. Each boundary words a [`Problem`] for its own
//! audience (a file row, an HTTP field, a query number).
//!
//! [`dot`] and [`normalize`] are the one copy of the float arithmetic that cosine normalisation and
//! squared norms use. `dot` is the kernels' scalar reference on purpose, not the dispatched SIMD
//! one: normalised vectors and stored norms stay bit-for-bit what earlier builds computed.

use crate::index::Metric;

/// `Σ aᵢbᵢ` in index order: the kernels' scalar reference, so every caller rounds alike.
pub use bitseek_codes::kernels::scalar::dot_f32 as dot;

/// Scales `x` to unit length; a zero vector stays zero (callers refuse those first).
pub fn normalize(x: &mut [f32]) {
    let n = dot(x, x).sqrt();
    if n > 0.0 {
        x.iter_mut().for_each(|v| *v /= n);
    }
}

/// What is wrong with one vector; the caller names which vector it is.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The vector's length is not the dimension it must have.
    #[error("has dimension {found} but dimension {expected} is expected")]
    Dimension {
        /// The dimension the vectors must have.
        expected: usize,
        /// The vector's length.
        found: usize,
    },
    /// A NaN or ±inf, which would poison every score it touches.
    #[error("has a non-finite value ({value}) at column {column}")]
    NonFinite {
        /// The first bad column.
        column: usize,
        /// Its value.
        value: f32,
    },
    /// All zeros (or a squared norm that underflows to zero): no direction for cosine.
    #[error("is a zero vector, which cosine cannot normalise")]
    Zero,
}

/// Why a batch of row-major vectors was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum VectorError {
    /// A dimension of 0, which would make every batch empty.
    #[error("dimension 0: a vector needs at least one value")]
    NoDimension,
    /// The values do not split into whole rows.
    #[error("{values} values are not a whole number of {dim}-dimensional vectors")]
    NotWholeRows {
        /// Values given.
        values: usize,
        /// The dimension they should split by.
        dim: usize,
    },
    /// One row failed [`check_row`].
    #[error("row {row} {problem}")]
    Row {
        /// 0-based row in the batch.
        row: usize,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// Checks one vector: length `dim`, finite, and non-zero under cosine.
pub fn check_row(row: &[f32], dim: usize, metric: Metric) -> Result<(), Problem> {
    if row.len() != dim {
        return Err(Problem::Dimension {
            expected: dim,
            found: row.len(),
        });
    }
    check_values(row, metric == Metric::Cosine)
}

/// Checks row-major `data` of dimension `dim` under `metric` and returns the number of rows.
pub fn check_rows(data: &[f32], dim: usize, metric: Metric) -> Result<usize, VectorError> {
    if dim == 0 {
        return Err(VectorError::NoDimension);
    }
    if !data.len().is_multiple_of(dim) {
        return Err(VectorError::NotWholeRows {
            values: data.len(),
            dim,
        });
    }
    for (row, values) in data.chunks_exact(dim).enumerate() {
        check_values(values, metric == Metric::Cosine)
            .map_err(|problem| VectorError::Row { row, problem })?;
    }
    Ok(data.len() / dim)
}

/// Finiteness (first bad column) and, when `reject_zero`, a non-zero squared norm. Whether a sum
/// of squares is zero does not depend on the order it is added in, so the fast lane-wise
/// [`row_scan`] decides the same as [`dot`] would.
pub(crate) fn check_values(row: &[f32], reject_zero: bool) -> Result<(), Problem> {
    let (finite, norm2) = row_scan(row);
    if !finite {
        let column = row.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(Problem::NonFinite {
            column,
            value: row.get(column).copied().unwrap_or(f32::NAN),
        });
    }
    if reject_zero && norm2 == 0.0 {
        return Err(Problem::Zero);
    }
    Ok(())
}

/// Whether a row is all finite, and its squared norm, in one pass the compiler can vectorise
/// (eight independent lanes; `x * 0.0` is NaN exactly when `x` is NaN or infinite).
fn row_scan(row: &[f32]) -> (bool, f32) {
    const LANES: usize = 8;
    let mut norm2 = [0.0f32; LANES];
    let mut poison = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            norm2[j] += chunk[j] * chunk[j];
            poison[j] += chunk[j] * 0.0;
        }
    }
    for (j, &x) in tail.iter().enumerate() {
        norm2[j] += x * x;
        poison[j] += x * 0.0;
    }
    let finite = poison.iter().all(|p| *p == 0.0);
    (finite, norm2.iter().sum())
}

/// Row-major vectors that passed [`check_rows`] and, under cosine, were normalised: the one
/// checked constructor for vectors that reach a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorBatch {
    dim: usize,
    data: Vec<f32>,
}

impl VectorBatch {
    /// Checks `data` (row-major, dimension `dim`) under `metric` and normalises every row for
    /// cosine.
    pub fn new(mut data: Vec<f32>, dim: usize, metric: Metric) -> Result<Self, VectorError> {
        check_rows(&data, dim, metric)?;
        if metric == Metric::Cosine {
            data.chunks_exact_mut(dim).for_each(normalize);
        }
        Ok(VectorBatch { dim, data })
    }

    /// Values per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// The checked values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The checked values, row-major, without a copy.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names_the_row_and_the_problem() {
        let e = VectorBatch::new(vec![1.0, 0.0, 0.0, 0.0], 2, Metric::Cosine).unwrap_err();
        assert_eq!(
            e,
            VectorError::Row {
                row: 1,
                problem: Problem::Zero
            }
        );
        assert_eq!(
            e.to_string(),
            "row 1 is a zero vector, which cosine cannot normalise"
        );
        let e = VectorBatch::new(vec![1.0, f32::NAN], 2, Metric::Dot).unwrap_err();
        assert!(e.to_string().contains("non-finite value (NaN) at column 1"));
        assert!(VectorBatch::new(vec![1.0; 3], 2, Metric::Dot).is_err());
        assert!(VectorBatch::new(vec![], 0, Metric::Dot).is_err());
        // Zero rows are fine without cosine; an underflowing norm counts as zero under it.
        assert!(VectorBatch::new(vec![0.0; 4], 2, Metric::L2).is_ok());
        assert!(VectorBatch::new(vec![1e-30; 2], 2, Metric::Cosine).is_err());
    }

    #[test]
    fn cosine_rows_come_back_unit_length() {
        let b = VectorBatch::new(vec![3.0, 4.0, 0.0, 2.0], 2, Metric::Cosine).unwrap();
        assert_eq!(b.as_slice(), &[0.6, 0.8, 0.0, 1.0]);
        assert_eq!((b.dim(), b.rows()), (2, 2));
        let b = VectorBatch::new(vec![3.0, 4.0], 2, Metric::Dot).unwrap();
        assert_eq!(b.into_data(), vec![3.0, 4.0]);
    }

    #[test]
    fn check_row_checks_the_length_first() {
        assert_eq!(
            check_row(&[f32::NAN], 2, Metric::Dot),
            Err(Problem::Dimension {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(check_row(&[0.0, 0.0], 2, Metric::Dot), Ok(()));
    }
}
