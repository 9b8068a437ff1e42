//! Per-dimension 4-bit scalar quantization, two values per byte, as a code and as the rescoring
//! copy.
//!
//! Each dimension maps its fitted range `[lo_i, lo_i + 15·Δ_i]` onto `0..=15` (the affine 4-bit
//! quantization of the quantization survey, methods.md §8): `x̂_i = lo_i + Δ_i·u_i`, so
//! `⟨x̂, q⟩ = Σ (q_i Δ_i)·u_i + Σ q_i lo_i`, one [`Kernels::dot_f32_u4`] per vector. Dimension
//! `2k` is the low nibble of byte `k`, `2k + 1` the high one; an odd dimension leaves the last
//! high nibble zero.
//!
//! [`Kernels::dot_f32_u4`]: crate::kernels::Kernels::dot_f32_u4

use super::fp8::score_rows;
use super::{Codes, QueryCode};

/// A fitted int4 quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Int4 {
    /// Input dimension.
    pub dim: usize,
    /// Lower end of each dimension's range.
    pub lo: Vec<f32>,
    /// Step of each dimension (range / 15; never zero).
    pub step: Vec<f32>,
}

impl Int4 {
    /// Fits each dimension's range to the minimum and maximum of `rows`.
    pub fn fit(dim: usize, rows: &[f32]) -> Int4 {
        let (lo, step) = super::int8::fit_ranges(dim, rows, 15.0);
        Int4 { dim, lo, step }
    }

    /// Restores a fitted quantizer from its ranges.
    pub fn from_parts(lo: Vec<f32>, step: Vec<f32>) -> Int4 {
        Int4 {
            dim: lo.len(),
            lo,
            step,
        }
    }

    /// Bytes per code: `⌈dim / 2⌉`.
    pub fn row_bytes(&self) -> usize {
        self.dim.div_ceil(2)
    }

    /// The 4-bit value of `x_i` (clamped to the fitted range).
    pub fn level(&self, i: usize, x: f32) -> u8 {
        ((x - self.lo[i]) / self.step[i]).round().clamp(0.0, 15.0) as u8
    }

    /// Quantizes one vector into `row_bytes()` bytes.
    pub fn quantize(&self, x: &[f32], out: &mut [u8]) {
        out.iter_mut().for_each(|b| *b = 0);
        for i in 0..self.dim {
            out[i / 2] |= self.level(i, x[i]) << (4 * (i % 2));
        }
    }

    /// The reconstruction `lo_i + Δ_i·u_i` of one code.
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        (0..self.dim)
            .map(|i| self.lo[i] + self.step[i] * ((code[i / 2] >> (4 * (i % 2))) & 15) as f32)
            .collect()
    }

    /// Encodes stored vectors: `row_bytes()` bytes each, row-major, no factors.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        Codes {
            len: rows.len() / self.dim,
            bytes: self.encode_bytes(rows),
            ..Default::default()
        }
    }

    /// The codes of `rows`, row-major, as stored.
    pub fn encode_bytes(&self, rows: &[f32]) -> Vec<i8> {
        let rb = self.row_bytes();
        let mut out = vec![0u8; rows.len() / self.dim * rb];
        for (x, o) in rows.chunks_exact(self.dim).zip(out.chunks_exact_mut(rb)) {
            self.quantize(x, o);
        }
        out.into_iter().map(|b| b as i8).collect()
    }

    /// The query weights `q_i Δ_i` and constant `Σ q_i lo_i`.
    pub fn weights(&self, q: &[f32]) -> (Vec<f32>, f32) {
        let w = q.iter().zip(&self.step).map(|(&v, &s)| v * s).collect();
        let k = super::dot64(q, &self.lo) as f32;
        (w, k)
    }

    /// Estimate of `⟨x, q⟩` for one code from [`Int4::weights`].
    pub fn dot(&self, weights: &[f32], constant: f32, code: &[i8]) -> f32 {
        (crate::kernels::kernels().dot_f32_u4)(weights, bytemuck::cast_slice(code)) + constant
    }

    /// The query: float weights, `offset` = `Σ q_i lo_i`.
    pub fn encode_query(&self, q: &[f32]) -> QueryCode {
        let (weights, offset) = self.weights(q);
        QueryCode {
            weights,
            offset,
            ..Default::default()
        }
    }

    /// Estimates `⟨x, q⟩ − offset` for the rows of `blocks` (rows past the end score `-inf`).
    pub fn score(
        &self,
        codes: &super::CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        est: &mut [f32],
    ) {
        let dot = crate::kernels::kernels().dot_f32_u4;
        let bytes: &[u8] = bytemuck::cast_slice(codes.bytes);
        let rb = self.row_bytes();
        score_rows(codes.len, blocks, est, |row| {
            dot(&query.weights, &bytes[row * rb..(row + 1) * rb])
        });
    }
}
