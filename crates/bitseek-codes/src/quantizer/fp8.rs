//! FP8 codes (OCP E4M3 and E5M2), one byte per dimension with a per-dimension scale, as a code and
//! as the rescoring copy.
//!
//! Each dimension is centred by the data mean and divided by its scale `s_i = max|x_i − m_i| / M`
//! (`M` the format's largest finite value), so the widest value of every dimension lands on the
//! format's largest and the rest keep the format's relative precision (low-bit floating point as
//! in methods.md §9: 3 mantissa bits for E4M3, 2 for E5M2 with a wider range). Then
//! `⟨x̂, q⟩ = Σ (q_i s_i)·fp8(c_i) + ⟨m, q⟩`, one [`Kernels::dot_f32_fp8`] per vector: the kernel
//! reads each byte's bits straight into an `f32`, and the weights carry the `2^(127 − bias)` that
//! makes that exact (subnormals included).
//!
//! [`Kernels::dot_f32_fp8`]: crate::kernels::Kernels::dot_f32_fp8

use super::{mean, Codes, QueryCode};
use serde::{Deserialize, Serialize};

/// Which 8-bit floating-point format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fp8Format {
    /// 4 exponent bits (bias 7), 3 mantissa bits, largest 448, no infinities (OCP FP8 "E4M3FN").
    E4m3,
    /// 5 exponent bits (bias 15), 2 mantissa bits, largest 57344 (OCP FP8 E5M2).
    E5m2,
}

impl Fp8Format {
    /// Mantissa bits.
    pub fn mant(self) -> u32 {
        match self {
            Fp8Format::E4m3 => 3,
            Fp8Format::E5m2 => 2,
        }
    }

    /// Exponent bias.
    pub fn bias(self) -> i32 {
        match self {
            Fp8Format::E4m3 => 7,
            Fp8Format::E5m2 => 15,
        }
    }

    /// The largest finite code (sign bit clear).
    pub fn max_code(self) -> u8 {
        match self {
            Fp8Format::E4m3 => 0x7e,
            Fp8Format::E5m2 => 0x7b,
        }
    }

    /// The largest finite value.
    pub fn max_value(self) -> f64 {
        self.decode(self.max_code())
    }

    /// The exact value of a finite code, in `f64` (the reference the kernels are checked against).
    pub fn decode(self, code: u8) -> f64 {
        let m = self.mant();
        let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
        let e = ((code & 0x7f) >> m) as i32;
        let frac = (code & ((1 << m) - 1)) as f64 / (1u32 << m) as f64;
        let mag = if e == 0 {
            frac * 2f64.powi(1 - self.bias())
        } else {
            (1.0 + frac) * 2f64.powi(e - self.bias())
        };
        sign * mag
    }

    /// The nearest finite code to `v` (ties to the even code; beyond the largest value, the
    /// largest). `−0` and NaN encode as `+0`.
    pub fn encode(self, v: f32) -> u8 {
        if v.is_nan() || v == 0.0 {
            return 0;
        }
        let sign = if v < 0.0 { 0x80 } else { 0 };
        let a = (v.abs() as f64).min(self.max_value());
        let m = self.mant() as i32;
        let min_normal_exp = 1 - self.bias();
        let code = if a < 2f64.powi(min_normal_exp) {
            // Subnormal: multiples of 2^(1 − bias − m); reaching 2^m is the smallest normal.
            (a / 2f64.powi(min_normal_exp - m)).round_ties_even() as u32
        } else {
            let mut e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
            let mut q = ((a / 2f64.powi(e) - 1.0) * (1u32 << m) as f64).round_ties_even() as u32;
            if q == 1 << m {
                e += 1;
                q = 0;
            }
            (((e + self.bias()) as u32) << m) | q
        };
        sign | (code.min(self.max_code() as u32) as u8)
    }
}

impl std::fmt::Display for Fp8Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fp8Format::E4m3 => "e4m3",
            Fp8Format::E5m2 => "e5m2",
        })
    }
}

/// A fitted FP8 quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Fp8 {
    /// Input dimension.
    pub dim: usize,
    /// The format of every byte.
    pub format: Fp8Format,
    /// Per-dimension mean, subtracted before scaling.
    pub mean: Vec<f32>,
    /// Per-dimension scale (`max|x_i − m_i|` over the format's largest value; never zero).
    pub scale: Vec<f32>,
}

impl Fp8 {
    /// Fits the mean and each dimension's scale on `rows`.
    pub fn fit(dim: usize, format: Fp8Format, rows: &[f32]) -> Fp8 {
        let mean = mean(dim, rows);
        let mut widest = vec![0f32; dim];
        for r in rows.chunks_exact(dim) {
            for i in 0..dim {
                widest[i] = widest[i].max((r[i] - mean[i]).abs());
            }
        }
        let top = format.max_value() as f32;
        let scale = widest
            .into_iter()
            .map(|w| if w > 0.0 { w / top } else { 1.0 })
            .collect();
        Fp8 {
            dim,
            format,
            mean,
            scale,
        }
    }

    /// Restores a fitted quantizer from its parameters.
    pub fn from_parts(format: Fp8Format, mean: Vec<f32>, scale: Vec<f32>) -> Fp8 {
        Fp8 {
            dim: mean.len(),
            format,
            mean,
            scale,
        }
    }

    /// Quantizes one vector into `dim` bytes.
    pub fn quantize(&self, x: &[f32], out: &mut [u8]) {
        for i in 0..self.dim {
            out[i] = self.format.encode((x[i] - self.mean[i]) / self.scale[i]);
        }
    }

    /// The reconstruction `m_i + s_i·fp8(c_i)` of one code (for tests and reports).
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        (0..self.dim)
            .map(|i| {
                (self.mean[i] as f64 + self.scale[i] as f64 * self.format.decode(code[i])) as f32
            })
            .collect()
    }

    /// Encodes stored vectors: one byte per dimension, row-major, no factors.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        Codes {
            len: rows.len() / self.dim,
            bytes: self.encode_bytes(rows),
            ..Default::default()
        }
    }

    /// The codes of `rows`, row-major, as stored (`i8` bit patterns of the FP8 bytes).
    pub fn encode_bytes(&self, rows: &[f32]) -> Vec<i8> {
        let mut out = vec![0u8; rows.len() / self.dim * self.dim];
        for (x, o) in rows
            .chunks_exact(self.dim)
            .zip(out.chunks_exact_mut(self.dim))
        {
            self.quantize(x, o);
        }
        out.into_iter().map(|b| b as i8).collect()
    }

    /// The query weights `q_i·s_i·2^(127 − bias)` and constant `⟨m, q⟩`.
    pub fn weights(&self, q: &[f32]) -> (Vec<f32>, f32) {
        let unit = 2f32.powi(127 - self.format.bias());
        let w = q
            .iter()
            .zip(&self.scale)
            .map(|(&v, &s)| v * s * unit)
            .collect();
        let k = super::dot64(q, &self.mean) as f32;
        (w, k)
    }

    /// Estimate of `⟨x, q⟩` for one code from [`Fp8::weights`].
    pub fn dot(&self, weights: &[f32], constant: f32, code: &[i8]) -> f32 {
        (crate::kernels::kernels().dot_f32_fp8)(
            weights,
            bytemuck::cast_slice(code),
            self.format.mant(),
        ) + constant
    }

    /// The query: float weights, `offset` = `⟨m, q⟩`.
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
        let dot = crate::kernels::kernels().dot_f32_fp8;
        let bytes: &[u8] = bytemuck::cast_slice(codes.bytes);
        let mant = self.format.mant();
        score_rows(codes.len, blocks, est, |row| {
            dot(
                &query.weights,
                &bytes[row * self.dim..(row + 1) * self.dim],
                mant,
            )
        });
    }
}

/// Fills `est` for the rows of `blocks` with `f(row)`, and `-inf` past `len`.
pub(crate) fn score_rows(
    len: usize,
    blocks: std::ops::Range<usize>,
    est: &mut [f32],
    f: impl Fn(usize) -> f32,
) {
    let first = blocks.start * crate::BLOCK;
    for (slot, row) in est.iter_mut().zip(first..blocks.end * crate::BLOCK) {
        *slot = if row < len { f(row) } else { f32::NEG_INFINITY };
    }
}
