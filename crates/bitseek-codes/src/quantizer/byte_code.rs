//! The byte-per-row scalar formats (`int8`, `fp8`, `int4`) behind one type, for the rescoring copy
//! an index keeps next to its codes (`--keep int8|fp8|int4`): each turns a query into float weights
//! and a constant, then scores a stored row with one dot product.

use super::{Fp8, Fp8Format, Int4, Int8};

/// A fitted scalar quantizer of whole rows.
#[derive(Clone, Debug, PartialEq)]
pub enum ByteCode {
    /// One `i8` per dimension.
    Int8(Int8),
    /// One FP8 byte per dimension.
    Fp8(Fp8),
    /// Two 4-bit values per byte.
    Int4(Int4),
}

/// Which [`ByteCode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteFormat {
    /// [`ByteCode::Int8`].
    Int8,
    /// [`ByteCode::Fp8`] in the given format.
    Fp8(Fp8Format),
    /// [`ByteCode::Int4`].
    Int4,
}

impl ByteCode {
    /// Fits `format` on `rows` (`dim` values each).
    pub fn fit(format: ByteFormat, dim: usize, rows: &[f32]) -> ByteCode {
        match format {
            ByteFormat::Int8 => ByteCode::Int8(Int8::fit(dim, rows)),
            ByteFormat::Fp8(f) => ByteCode::Fp8(Fp8::fit(dim, f, rows)),
            ByteFormat::Int4 => ByteCode::Int4(Int4::fit(dim, rows)),
        }
    }

    /// Bytes per stored row.
    pub fn row_bytes(&self) -> usize {
        match self {
            ByteCode::Int8(q) => q.dim,
            ByteCode::Fp8(q) => q.dim,
            ByteCode::Int4(q) => q.row_bytes(),
        }
    }

    /// The rows' codes, row-major, `row_bytes()` each.
    pub fn encode_bytes(&self, rows: &[f32]) -> Vec<i8> {
        match self {
            ByteCode::Int8(q) => q.encode(rows).bytes,
            ByteCode::Fp8(q) => q.encode_bytes(rows),
            ByteCode::Int4(q) => q.encode_bytes(rows),
        }
    }

    /// The query's weights and constant term.
    pub fn weights(&self, q: &[f32]) -> (Vec<f32>, f32) {
        match self {
            ByteCode::Int8(k) => k.weights(q),
            ByteCode::Fp8(k) => k.weights(q),
            ByteCode::Int4(k) => k.weights(q),
        }
    }

    /// Estimate of `⟨x, q⟩` for one stored row from [`ByteCode::weights`].
    pub fn dot(&self, weights: &[f32], constant: f32, code: &[i8]) -> f32 {
        match self {
            ByteCode::Int8(k) => k.dot(weights, constant, code),
            ByteCode::Fp8(k) => k.dot(weights, constant, code),
            ByteCode::Int4(k) => k.dot(weights, constant, code),
        }
    }

    /// The fitted parameters, named as index sections are (`lo`/`step` or `mean`/`scale`).
    pub fn params(&self) -> Vec<(&'static str, &[f32])> {
        match self {
            ByteCode::Int8(q) => vec![("lo", &q.lo), ("step", &q.step)],
            ByteCode::Fp8(q) => vec![("mean", &q.mean), ("scale", &q.scale)],
            ByteCode::Int4(q) => vec![("lo", &q.lo), ("step", &q.step)],
        }
    }

    /// Restores `format` from the parameters [`ByteCode::params`] named.
    pub fn from_params<E>(
        format: ByteFormat,
        mut get: impl FnMut(&str) -> Result<Vec<f32>, E>,
    ) -> Result<ByteCode, E> {
        Ok(match format {
            ByteFormat::Int8 => ByteCode::Int8(Int8::from_parts(get("lo")?, get("step")?)),
            ByteFormat::Fp8(f) => ByteCode::Fp8(Fp8::from_parts(f, get("mean")?, get("scale")?)),
            ByteFormat::Int4 => ByteCode::Int4(Int4::from_parts(get("lo")?, get("step")?)),
        })
    }
}
