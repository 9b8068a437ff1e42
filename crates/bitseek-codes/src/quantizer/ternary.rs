//! Ternary codes: each rotated coordinate becomes `−1`, `0` or `+1`, stored as two bit-planes.
//!
//! A vector is centred, normalised and rotated exactly as for RaBitQ (`o' = P·(x − mean)/‖o‖`,
//! see [`super::lattice`]). Its code follows the threshold rule of ternary LLMs (TBT's
//! statistics-based scales; Spectra/TriLM's absmean; methods.md §7): with `α = (4/3)·mean|o'_i|`,
//! `t_i = 0` where `|o'_i| < α/2`, else `sign(o'_i)`. About a third of the coordinates become zero,
//! so the code carries `log2 3 ≈ 1.58` bits of information in two planes: plane 0 the nonzero mask
//! `n`, plane 1 the sign `s` (set only where `n` is), `t = 2s − n`.
//!
//! Scoring uses RaBitQ's unbiased estimator with `t` in place of the lattice point:
//! `⟨o', v⟩ ≈ ⟨t, v⟩ / ⟨t, o'⟩`, so the stored [`Factor::Scale`] is `‖o‖ / ⟨t, o'⟩` (not `α`: the
//! ratio corrects for the direction `t` loses, `α` only for its length). With an asymmetric query
//! `v ≈ lo + Δ·Q` (4-bit by default, randomized rounding) `⟨t, v⟩ = Δ·⟨t, Q⟩ + lo·Σt`, where
//! `⟨t, Q⟩ = Σ_j 2^j (2·popcnt(s ∧ Q_j) − popcnt(n ∧ Q_j))` is one call of
//! [`Kernels::ternary_ip_blocks`](crate::kernels::Kernels::ternary_ip_blocks) and `Σt` is stored as
//! [`Factor::SumU`]. A symmetric query is ternary too, kept as its own two planes (`n′`, `s′`), and
//! `⟨t, t'⟩ = popcnt(n∧n′∧¬(s⊕s′)) − popcnt(n∧n′∧(s⊕s′))` is one call of
//! [`Kernels::ternary_sym_blocks`](crate::kernels::Kernels::ternary_sym_blocks): two popcounts per
//! word, where handing `t' + 1 ∈ {0, 1, 2}` to the asymmetric kernel as two unsigned planes
//! (`⟨t, t' + 1⟩ − Σt`, the path before it) costs four.

use super::lattice::{centre_pad, quantize_query};
use super::{dot64, mean, Codes, Factor, QueryCode, QueryMode};
use crate::layout::{words_for, BitPlanes};
use crate::rotation::{random_orthogonal, rotate_rows};

/// Bits of the asymmetric query (as RaBitQ's: the query's rounding error stays small next to the
/// code's).
pub const QUERY_BITS: usize = 4;

/// A fitted ternary quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternary {
    /// Input dimension.
    pub dim: usize,
    /// Padded dimension `D'` (multiple of 64).
    pub padded: usize,
    /// Data mean subtracted before rotating.
    pub mean: Vec<f32>,
    /// `D' × D'` orthogonal rotation, row-major.
    pub rotation: Vec<f32>,
    /// Seed of the rotation and of the query's randomized rounding.
    pub seed: u64,
}

/// The ternary values of a rotated unit vector by the absmean rule: `t_i = sign(x_i)` where
/// `|x_i| ≥ (2/3)·mean|x|`, else 0.
pub fn ternarize(x: &[f32], t: &mut [i8]) {
    let mean_abs = x.iter().map(|v| v.abs() as f64).sum::<f64>() / x.len().max(1) as f64;
    let threshold = (2.0 / 3.0 * mean_abs) as f32; // α/2 with α = (4/3)·mean|x|
    for (t, &v) in t.iter_mut().zip(x) {
        *t = if v.abs() < threshold || v == 0.0 {
            0
        } else if v > 0.0 {
            1
        } else {
            -1
        };
    }
}

impl Ternary {
    /// Fits the mean on `rows` and draws the rotation from `seed`.
    pub fn fit(dim: usize, rows: &[f32], seed: u64) -> Ternary {
        let padded = words_for(dim) * 64;
        Ternary {
            dim,
            padded,
            mean: mean(dim, rows),
            rotation: random_orthogonal(padded, seed),
            seed,
        }
    }

    fn words(&self) -> usize {
        self.padded / 64
    }

    /// Centred, zero-padded and rotated rows, with their centred norms.
    fn rotated(&self, rows: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (centred, norms) = centre_pad(self.dim, self.padded, &self.mean, rows);
        let mut out = vec![0f32; centred.len()];
        rotate_rows(&self.rotation, self.padded, &centred, &mut out);
        (centred, out, norms)
    }

    /// The two planes (`n`, then `s`) of ternary values `t`, plane-major.
    fn planes(&self, t: &[i8]) -> Vec<u64> {
        let words = self.words();
        let mut code = vec![0u64; 2 * words];
        for (i, &v) in t.iter().enumerate() {
            if v != 0 {
                code[i / 64] |= 1 << (i % 64);
            }
            if v > 0 {
                code[words + i / 64] |= 1 << (i % 64);
            }
        }
        code
    }

    /// Encodes stored vectors: two planes plus the [`Factor`]s `Scale` (`‖o‖/⟨t, o'⟩`), `SumU`
    /// (`Σt`) and `DotMean`.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let n = rows.len() / self.dim;
        let (centred, rotated, norms) = self.rotated(rows);
        let words = self.words();
        let mut planes = BitPlanes::zeros(n, 2, words);
        let mut factors = vec![vec![0f32; n]; 3];
        let mut t = vec![0i8; self.padded];
        for r in 0..n {
            let v = &rotated[r * self.padded..(r + 1) * self.padded];
            ternarize(v, &mut t);
            planes.set(r, &self.planes(&t));
            // ⟨t, o⟩ / ‖o‖ = ⟨t, o'⟩, so Scale = ‖o‖ / ⟨t, o'⟩ = ‖o‖² / ⟨t, P·o⟩.
            let t_v: f64 = t.iter().zip(v).map(|(&a, &b)| a as f64 * b as f64).sum();
            let norm = norms[r] as f64;
            factors[Factor::Scale as usize][r] = if t_v > 0.0 {
                (norm * norm / t_v) as f32
            } else {
                0.0
            };
            factors[Factor::SumU as usize][r] = t.iter().map(|&x| x as f32).sum();
            factors[Factor::DotMean as usize][r] = dot64(
                &centred[r * self.padded..r * self.padded + self.dim],
                &self.mean,
            ) as f32;
        }
        Codes {
            len: n,
            planes: 2,
            words,
            bits: planes.data,
            bytes: Vec::new(),
            factors,
        }
    }

    /// Prepares a query: asymmetric (`query_bits` unsigned planes of the rotated, centred query,
    /// randomized rounding seeded by `seed` and `nonce`) or symmetric (ternary, its planes `n′`
    /// and `s′`, marked [`QueryCode::symmetric`]).
    pub fn encode_query_bits(
        &self,
        q: &[f32],
        mode: QueryMode,
        query_bits: usize,
        nonce: u64,
    ) -> QueryCode {
        let (_, v, norms) = self.rotated(q);
        let offset = dot64(&self.mean, q) as f32;
        let words = self.words();
        match mode {
            QueryMode::Asymmetric => {
                let bits = query_bits.clamp(1, 16);
                let (planes, lo, delta, _) = quantize_query(&v, bits, words, self.seed, nonce);
                QueryCode {
                    planes,
                    qplanes: bits,
                    a: delta,
                    b: lo,
                    centred_norm: norms[0],
                    offset,
                    ..Default::default()
                }
            }
            QueryMode::Symmetric => {
                let mut t = vec![0i8; self.padded];
                ternarize(&v, &mut t);
                let planes = self.planes(&t);
                let t_v: f64 = t.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum();
                // ⟨x − mean, q − mean⟩ ≈ Scale·⟨t, t'⟩·‖v‖²/⟨t', v⟩.
                let norm = norms[0] as f64;
                let qs = if t_v > 0.0 {
                    (norm * norm / t_v) as f32
                } else {
                    0.0
                };
                QueryCode {
                    planes,
                    qplanes: 2,
                    a: qs,
                    b: 0.0,
                    centred_norm: norms[0],
                    offset,
                    symmetric: true,
                    ..Default::default()
                }
            }
        }
    }

    /// Estimates `⟨x, q⟩ − offset` for the rows of `blocks` (rows past the end score `-inf`);
    /// `ip` is scratch for the kernel's products.
    pub fn score(
        &self,
        codes: &super::CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        ip: &mut [u32],
        est: &mut [f32],
    ) {
        let bw = 2 * codes.words * crate::BLOCK;
        let data = &codes.bits[blocks.start * bw..blocks.end * bw];
        let rows = (blocks.end - blocks.start) * crate::BLOCK;
        let ip: &mut [i32] = bytemuck::cast_slice_mut(&mut ip[..rows]);
        let est = &mut est[..rows];
        let k = crate::kernels::kernels();
        if query.symmetric {
            (k.ternary_sym_blocks)(&query.planes, data, codes.words, ip);
        } else {
            (k.ternary_ip_blocks)(&query.planes, query.qplanes, data, codes.words, ip);
        }
        let first = blocks.start * crate::BLOCK;
        let valid = codes.len.saturating_sub(first).min(rows);
        let f = |k: Factor| &codes.factors[k as usize][first..first + valid];
        let (scale, sum_t, dot_mean) = (f(Factor::Scale), f(Factor::SumU), f(Factor::DotMean));
        for i in 0..valid {
            est[i] = scale[i] * (query.a * ip[i] as f32 + query.b * sum_t[i]) + dot_mean[i];
        }
        est[valid..].iter_mut().for_each(|e| *e = f32::NEG_INFINITY);
    }
}
