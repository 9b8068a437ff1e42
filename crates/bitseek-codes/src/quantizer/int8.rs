//! Per-dimension scalar quantization to `i8`, as a code and as the rescoring copy.
//!
//! Each dimension `i` maps its fitted range `[lo_i, lo_i + 255·Δ_i]` onto `-128..=127`:
//! `x̂_i = lo_i + Δ_i·(c_i + 128)`. Then `⟨x̂, q⟩ = Σ w_i c_i + K(q)` with `w_i = Δ_i q_i` and
//! `K(q) = Σ q_i (lo_i + 128 Δ_i)`, so scoring is one dot product per vector. Per-dimension ranges
//! (FAISS `SQ8`) follow embedding dimensions whose spreads differ by an order of magnitude.

use super::{Codes, QueryCode};

/// A fitted int8 quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8 {
    /// Input dimension.
    pub dim: usize,
    /// Lower end of each dimension's range.
    pub lo: Vec<f32>,
    /// Step of each dimension (range / 255; never zero).
    pub step: Vec<f32>,
}

/// Each dimension's lower end and step for `levels` steps between the minimum and maximum of
/// `rows` (a zero range gets a tiny step, so decoding never divides by zero): the affine fit
/// shared by int8 and int4.
pub(super) fn fit_ranges(dim: usize, rows: &[f32], levels: f32) -> (Vec<f32>, Vec<f32>) {
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for r in rows.chunks_exact(dim) {
        for i in 0..dim {
            lo[i] = lo[i].min(r[i]);
            hi[i] = hi[i].max(r[i]);
        }
    }
    let step = lo
        .iter()
        .zip(&hi)
        .map(|(&l, &h)| if h > l { (h - l) / levels } else { 1e-12 })
        .collect();
    let lo = lo
        .into_iter()
        .map(|l| if l.is_finite() { l } else { 0.0 })
        .collect();
    (lo, step)
}

impl Int8 {
    /// Fits each dimension's range to the minimum and maximum of `rows`.
    pub fn fit(dim: usize, rows: &[f32]) -> Int8 {
        let (lo, step) = fit_ranges(dim, rows, 255.0);
        Int8 { dim, lo, step }
    }

    /// Restores a fitted quantizer from its ranges.
    pub fn from_parts(lo: Vec<f32>, step: Vec<f32>) -> Int8 {
        Int8 {
            dim: lo.len(),
            lo,
            step,
        }
    }

    /// Quantizes one vector (values outside the fitted range are clamped).
    pub fn quantize(&self, x: &[f32], out: &mut [i8]) {
        for i in 0..self.dim {
            let u = ((x[i] - self.lo[i]) / self.step[i])
                .round()
                .clamp(0.0, 255.0);
            out[i] = (u as i32 - 128) as i8;
        }
    }

    /// Encodes stored vectors: one `i8` per dimension, row-major, no factors.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let n = rows.len() / self.dim;
        let mut bytes = vec![0i8; n * self.dim];
        for (x, out) in rows
            .chunks_exact(self.dim)
            .zip(bytes.chunks_exact_mut(self.dim))
        {
            self.quantize(x, out);
        }
        Codes {
            len: n,
            bytes,
            ..Default::default()
        }
    }

    /// The query weights `w_i = Δ_i q_i` and constant `K(q)` (exact float rescoring uses these).
    pub fn weights(&self, q: &[f32]) -> (Vec<f32>, f32) {
        let w = q.iter().zip(&self.step).map(|(&v, &s)| v * s).collect();
        let k = (0..self.dim)
            .map(|i| q[i] * (self.lo[i] + 128.0 * self.step[i]))
            .sum();
        (w, k)
    }

    /// Estimate of `⟨x, q⟩` for one code from float weights (`dot_f32_i8` + constant).
    pub fn dot(&self, weights: &[f32], constant: f32, code: &[i8]) -> f32 {
        (crate::kernels::kernels().dot_f32_i8)(weights, code) + constant
    }

    /// The integer query: weights quantized to `i8` with one scale (`a`), so the scan is an
    /// exact `i8·i8` dot product; `offset` carries `K(q)`.
    pub fn encode_query(&self, q: &[f32]) -> QueryCode {
        let (w, k) = self.weights(q);
        let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let bytes = w
            .iter()
            .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        QueryCode {
            bytes,
            a: scale,
            offset: k,
            ..Default::default()
        }
    }

    /// Estimates `⟨x, q⟩ − offset` for the rows of `blocks` (8 rows per block; rows past the end
    /// score `-inf`).
    pub fn score(
        &self,
        codes: &super::CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        est: &mut [f32],
    ) {
        let dot = crate::kernels::kernels().dot_i8;
        let first = blocks.start * crate::BLOCK;
        let last = (blocks.end * crate::BLOCK).min(codes.len);
        for (slot, row) in est.iter_mut().zip(first..blocks.end * crate::BLOCK) {
            *slot = if row < last {
                let code = &codes.bytes[row * self.dim..(row + 1) * self.dim];
                dot(&query.bytes, code) as f32 * query.a
            } else {
                f32::NEG_INFINITY
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstruction_error_is_within_half_a_step() {
        let rows: Vec<f32> = (0..64 * 5)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let q = Int8::fit(5, &rows);
        let mut code = [0i8; 5];
        for x in rows.chunks_exact(5) {
            q.quantize(x, &mut code);
            for i in 0..5 {
                let back = q.lo[i] + q.step[i] * (code[i] as f32 + 128.0);
                assert!((back - x[i]).abs() <= q.step[i] * 0.5 + 1e-6);
            }
        }
    }
}
