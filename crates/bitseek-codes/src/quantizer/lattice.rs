//! Rotated lattice codes: RaBitQ (1 bit) and its multi-bit extension (2..=8 bits).
//!
//! A vector `x` is centred (`o = x − mean`), normalised, zero-padded to `D'` (a multiple of 64) and
//! rotated by a seeded random orthogonal `P` (`o' = P·o/‖o‖`). Its code is a point of the lattice
//! `y_i = U_i − (2^B − 1)/2`, `U_i ∈ 0..2^B`, stored as `B` unsigned bit-planes (plane 0 least
//! significant). This is the lattice of Extended RaBitQ (Gao et al., SIGMOD 2025) and of recurrent
//! binarization (BEBR, Gan et al., KDD 2023; methods.md §1.2, §16.1), so learned codes can share it.
//!
//! Estimator (RaBitQ, unbiased): `⟨o', v⟩ ≈ ⟨y, v⟩ / ⟨y, o'⟩` for any query `v = P(q − mean)`, hence
//! `⟨x, q⟩ ≈ ‖o‖·⟨y, v⟩/⟨y, o'⟩ + ⟨o, mean⟩ + ⟨mean, q⟩`. With `v` quantized to 4-bit `Q` (randomized
//! rounding, `v ≈ v_l + Δ·Q`), `⟨y, v⟩ = Δ⟨U,Q⟩ + v_l ΣU − c_B Δ ΣQ − c_B v_l D'` where
//! `⟨U,Q⟩ = Σ_p Σ_j 2^(p+j) popcnt(U_p AND Q_j)` is one kernel call. Symmetric (SDC) queries are
//! encoded like stored vectors and use `⟨y_x, y_q⟩ = ⟨U,V⟩ − c_B(ΣU + ΣV) + c_B² D'`.
//!
//! How the lattice point is chosen ([`ScaleSearch`]): `Optimal` is Extended RaBitQ's search for the
//! scale `t` that maximises `cos(y, o')` with `|y_i| = min(⌊t|o'_i|⌋, 2^(B−1) − 1) + ½`, swept exactly
//! over all critical values of `t`; `Greedy` takes sign planes of the residual with fixed weights
//! `s, s/2, s/4, …` (`s = mean|o'_i|`), the training-free analogue of recurrent binarization.

use super::{dot64, mean, Codes, Factor, QueryCode, QueryMode};
use crate::layout::{words_for, BitPlanes};
use crate::rotation::{random_orthogonal, rotate_rows};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// RaBitQ's confidence parameter ε₀ for the error bound (the paper's practical choice).
pub const EPSILON0: f32 = 1.9;

/// Bits of the asymmetric query for 1-bit codes (RaBitQ's choice: the rounding error is negligible
/// next to the code's).
pub const QUERY_BITS: usize = 4;

/// Bits of the asymmetric query for multi-bit codes. With 4-bit codes a 4-bit query becomes the
/// larger error (recall@10 0.905 vs 0.938 on the MiniLM code embeddings), so multi-bit codes get
/// 8-bit queries by default; the scan then does twice the AND-popcounts.
pub const QUERY_BITS_MULTI: usize = 8;

/// How the per-vector lattice scale is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleSearch {
    /// Extended RaBitQ: the scale maximising the cosine between code and vector.
    Optimal,
    /// Greedy residual sign planes with halving weights.
    Greedy,
}

impl std::str::FromStr for ScaleSearch {
    type Err = String;

    /// `optimal` or `greedy`, as the command line and the Python package spell them.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "optimal" => Ok(ScaleSearch::Optimal),
            "greedy" => Ok(ScaleSearch::Greedy),
            _ => Err(format!(
                "unknown scale search {s:?}: expected optimal or greedy"
            )),
        }
    }
}

/// A fitted rotated-lattice quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Lattice {
    /// Input dimension.
    pub dim: usize,
    /// Padded dimension `D'` (multiple of 64).
    pub padded: usize,
    /// Bits per dimension `B`.
    pub bits: usize,
    /// Data mean subtracted before rotating.
    pub mean: Vec<f32>,
    /// `D' × D'` orthogonal rotation, row-major.
    pub rotation: Vec<f32>,
    /// Seed of the rotation and of the query's randomized rounding.
    pub seed: u64,
    /// How lattice points are chosen.
    pub scale_search: ScaleSearch,
}

impl Lattice {
    /// Fits the mean on `rows` and draws the rotation from `opts.seed`.
    pub fn fit(dim: usize, bits: usize, rows: &[f32], opts: super::FitOptions) -> Lattice {
        assert!((1..=8).contains(&bits), "lattice codes have 1 to 8 bits");
        let padded = words_for(dim) * 64;
        Lattice {
            dim,
            padded,
            bits,
            mean: mean(dim, rows),
            rotation: random_orthogonal(padded, opts.seed),
            seed: opts.seed,
            scale_search: opts.scale_search,
        }
    }

    /// `c_B = (2^B − 1)/2`, the lattice's offset.
    pub fn offset(&self) -> f32 {
        ((1u32 << self.bits) - 1) as f32 / 2.0
    }

    fn words(&self) -> usize {
        self.padded / 64
    }

    /// Centres and zero-pads `rows` into a `n × D'` matrix and returns it with the centred norms.
    fn centre(&self, rows: &[f32]) -> (Vec<f32>, Vec<f32>) {
        centre_pad(self.dim, self.padded, &self.mean, rows)
    }

    /// Rotates the rows of a `n × D'` matrix.
    fn rotate(&self, centred: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; centred.len()];
        rotate_rows(&self.rotation, self.padded, centred, &mut out);
        out
    }

    /// The unsigned lattice values `U` of a rotated unit vector `o'`.
    pub fn lattice_point(&self, rotated: &[f32], u: &mut [u8]) {
        let half = 1u32 << (self.bits - 1);
        match self.scale_search {
            ScaleSearch::Optimal => {
                let mut levels = vec![0u32; rotated.len()];
                optimal_levels(rotated, half - 1, &mut levels);
                for ((u, &v), &k) in u.iter_mut().zip(rotated).zip(&levels) {
                    *u = if v >= 0.0 { half + k } else { half - 1 - k } as u8;
                }
            }
            ScaleSearch::Greedy => {
                let s = rotated.iter().map(|v| v.abs() as f64).sum::<f64>() / rotated.len() as f64;
                for (u, &v) in u.iter_mut().zip(rotated) {
                    let (mut residual, mut weight, mut value) = (v as f64, s, 0u32);
                    for k in 0..self.bits {
                        let up = residual >= 0.0;
                        residual -= if up { weight } else { -weight };
                        weight /= 2.0;
                        value |= (up as u32) << (self.bits - 1 - k);
                    }
                    *u = value as u8;
                }
            }
        }
    }

    /// Encodes stored vectors: bit-planes plus the [`Factor`]s `Scale`, `SumU`, `DotMean`, `Bound`.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let n = rows.len() / self.dim;
        let (centred, norms) = self.centre(rows);
        let mut unit = centred.clone();
        for (row, &norm) in unit.chunks_exact_mut(self.padded).zip(&norms) {
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        let rotated = self.rotate(&unit);
        let words = self.words();
        let mut planes = BitPlanes::zeros(n, self.bits, words);
        let mut factors = vec![vec![0f32; n]; 4];
        let mut u = vec![0u8; self.padded];
        let mut code = vec![0u64; self.bits * words];
        let c = self.offset() as f64;
        let d = self.padded as f64;
        for r in 0..n {
            let o = &rotated[r * self.padded..(r + 1) * self.padded];
            self.lattice_point(o, &mut u);
            code.iter_mut().for_each(|w| *w = 0);
            let (mut y_o, mut y_y, mut sum_u) = (0f64, 0f64, 0u64);
            for (i, (&ui, &oi)) in u.iter().zip(o).enumerate() {
                let y = ui as f64 - c;
                y_o += y * oi as f64;
                y_y += y * y;
                sum_u += ui as u64;
                for p in 0..self.bits {
                    code[p * words + i / 64] |= (((ui >> p) & 1) as u64) << (i % 64);
                }
            }
            planes.set(r, &code);
            let norm = norms[r] as f64;
            // A zero vector (x == mean) keeps scale 0: its estimate is exactly ⟨mean, q⟩.
            let (scale, bound) = if norm > 0.0 && y_o > 0.0 {
                let a = y_o / y_y.sqrt(); // cos(y, o'), RaBitQ's ⟨ō, o⟩
                let bound = norm * ((1.0 - a * a).max(0.0)).sqrt() / a * EPSILON0 as f64
                    / (d - 1.0).max(1.0).sqrt();
                (norm / y_o, bound)
            } else {
                (0.0, 0.0)
            };
            factors[Factor::Scale as usize][r] = scale as f32;
            factors[Factor::SumU as usize][r] = sum_u as f32;
            factors[Factor::DotMean as usize][r] = dot64(
                &centred[r * self.padded..r * self.padded + self.dim],
                &self.mean,
            ) as f32;
            factors[Factor::Bound as usize][r] = bound as f32;
        }
        Codes {
            len: n,
            planes: self.bits,
            words,
            bits: planes.data,
            bytes: Vec::new(),
            factors,
        }
    }

    /// Prepares a query: asymmetric (4-bit bit-planes, randomized rounding seeded by `seed` and
    /// `nonce`) or symmetric (encoded as a stored vector).
    pub fn encode_query(&self, q: &[f32], mode: QueryMode, nonce: u64) -> QueryCode {
        self.encode_query_bits(q, mode, self.default_query_bits(), nonce)
    }

    /// Default asymmetric query bits: [`QUERY_BITS`] for 1-bit codes, [`QUERY_BITS_MULTI`] else.
    pub fn default_query_bits(&self) -> usize {
        if self.bits == 1 {
            QUERY_BITS
        } else {
            QUERY_BITS_MULTI
        }
    }

    /// [`Lattice::encode_query`] with an explicit number of asymmetric query bits (1..=16).
    pub fn encode_query_bits(
        &self,
        q: &[f32],
        mode: QueryMode,
        query_bits: usize,
        nonce: u64,
    ) -> QueryCode {
        let query_bits = query_bits.clamp(1, 16);
        let (centred, norms) = self.centre(q);
        let v = self.rotate(&centred);
        let offset = dot64(&self.mean, q) as f32;
        let words = self.words();
        let c = self.offset();
        let d = self.padded as f32;
        match mode {
            QueryMode::Asymmetric => {
                let (planes, lo, delta, sum_q) =
                    quantize_query(&v, query_bits, words, self.seed, nonce);
                QueryCode {
                    planes,
                    qplanes: query_bits,
                    a: delta,
                    b: lo,
                    c: -c * delta * sum_q - c * lo * d,
                    centred_norm: norms[0],
                    offset,
                    ..Default::default()
                }
            }
            QueryMode::Symmetric => {
                let mut unit = v.clone();
                if norms[0] > 0.0 {
                    unit.iter_mut().for_each(|x| *x /= norms[0]);
                }
                let mut u = vec![0u8; self.padded];
                self.lattice_point(&unit, &mut u);
                let mut planes = vec![0u64; self.bits * words];
                let (mut y_v, mut sum_v) = (0f64, 0f64);
                for (i, (&ui, &vi)) in u.iter().zip(&unit).enumerate() {
                    y_v += (ui as f64 - c as f64) * vi as f64;
                    sum_v += ui as f64;
                    for p in 0..self.bits {
                        planes[p * words + i / 64] |= (((ui >> p) & 1) as u64) << (i % 64);
                    }
                }
                let qs = if y_v > 0.0 {
                    (norms[0] as f64 / y_v) as f32
                } else {
                    0.0
                };
                QueryCode {
                    planes,
                    qplanes: self.bits,
                    a: qs,
                    b: -qs * c,
                    c: qs * (c * c * d - c * sum_v as f32),
                    centred_norm: norms[0],
                    offset,
                    ..Default::default()
                }
            }
        }
    }

    /// Estimates `⟨x, q⟩ − offset` for the rows of `blocks` (rows past the end score `-inf`);
    /// `ip` is scratch for the kernel's integer products.
    pub fn score(
        &self,
        codes: &super::CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        ip: &mut [u32],
        est: &mut [f32],
    ) {
        let bw = self.bits * codes.words * crate::BLOCK;
        let data = &codes.bits[blocks.start * bw..blocks.end * bw];
        let rows = (blocks.end - blocks.start) * crate::BLOCK;
        let (ip, est) = (&mut ip[..rows], &mut est[..rows]);
        (crate::kernels::kernels().ip_planes_blocks)(
            &query.planes,
            query.qplanes,
            data,
            self.bits,
            codes.words,
            ip,
        );
        let first = blocks.start * crate::BLOCK;
        let valid = codes.len.saturating_sub(first).min(rows);
        let f = |k: Factor| &codes.factors[k as usize][first..first + valid];
        let (scale, sum_u, dot_mean) = (f(Factor::Scale), f(Factor::SumU), f(Factor::DotMean));
        for i in 0..valid {
            est[i] =
                scale[i] * (query.a * ip[i] as f32 + query.b * sum_u[i] + query.c) + dot_mean[i];
        }
        est[valid..].iter_mut().for_each(|e| *e = f32::NEG_INFINITY);
    }
}

/// Centres `rows` (`dim` values each) by `mean` and zero-pads them to `padded`; returns the
/// `n × padded` matrix and the centred norms.
pub(crate) fn centre_pad(
    dim: usize,
    padded: usize,
    mean: &[f32],
    rows: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len() / dim;
    let mut out = vec![0f32; n * padded];
    let mut norms = vec![0f32; n];
    for (r, x) in rows.chunks_exact(dim).enumerate() {
        let o = &mut out[r * padded..r * padded + dim];
        for i in 0..dim {
            o[i] = x[i] - mean[i];
        }
        norms[r] = dot64(o, o).sqrt() as f32;
    }
    (out, norms)
}

/// The asymmetric query: `v` rounded to `bits`-bit unsigned `Q` with randomized rounding (seeded by
/// `seed` and `nonce`) so that `v ≈ lo + Δ·Q`; returns the planes of `Q` (plane-major, `words`
/// words each), `lo`, `Δ` and `ΣQ`.
pub(crate) fn quantize_query(
    v: &[f32],
    bits: usize,
    words: usize,
    seed: u64,
    nonce: u64,
) -> (Vec<u64>, f32, f32, f32) {
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let levels = ((1u32 << bits) - 1) as f32;
    let delta = if hi > lo { (hi - lo) / levels } else { 1.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ nonce.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut planes = vec![0u64; bits * words];
    let mut sum_q = 0f32;
    for (i, &vi) in v.iter().enumerate() {
        let qi = ((vi - lo) / delta + rng.gen::<f32>())
            .floor()
            .clamp(0.0, levels) as u32;
        sum_q += qi as f32;
        for j in 0..bits {
            planes[j * words + i / 64] |= (((qi >> j) & 1) as u64) << (i % 64);
        }
    }
    (planes, lo, delta, sum_q)
}

/// Extended RaBitQ's scale search: levels `k_i = min(⌊t|o_i|⌋, kmax)` for the `t` maximising
/// `Σ|o_i|(k_i + ½) / ‖k + ½‖`, found by sweeping every critical `t = m/|o_i|` in order.
///
/// The `D·kmax` critical values are packed as `(t bits, dim)` into `u64`s and sorted once (for
/// positive floats the bit patterns sort like the values), which is several times faster than
/// the priority queue of the reference implementation.
pub fn optimal_levels(o: &[f32], kmax: u32, levels: &mut [u32]) {
    levels.iter_mut().for_each(|k| *k = 0);
    if kmax == 0 {
        return;
    }
    let mut events: Vec<u64> = Vec::with_capacity(o.len() * kmax as usize);
    for (i, v) in o.iter().enumerate() {
        let a = v.abs();
        if a > 0.0 {
            for m in 1..=kmax {
                let t = m as f32 / a;
                if t.is_finite() {
                    events.push(((t.to_bits() as u64) << 32) | i as u64);
                }
            }
        }
    }
    events.sort_unstable();
    let mut ip = 0.5 * o.iter().map(|v| v.abs() as f64).sum::<f64>();
    let mut y2 = 0.25 * o.len() as f64;
    let mut best = ip * ip / y2;
    let mut best_len = 0;
    let mut cur = vec![0u32; o.len()];
    for (n, e) in events.iter().enumerate() {
        let i = (e & 0xffff_ffff) as usize;
        let k = cur[i];
        cur[i] = k + 1;
        ip += o[i].abs() as f64;
        y2 += 2.0 * k as f64 + 2.0;
        // ip > 0 throughout, so comparing ip²/y2 ranks like the cosine without a square root.
        let score = ip * ip / y2;
        if score > best {
            best = score;
            best_len = n + 1;
        }
    }
    for e in &events[..best_len] {
        levels[(e & 0xffff_ffff) as usize] += 1;
    }
}
