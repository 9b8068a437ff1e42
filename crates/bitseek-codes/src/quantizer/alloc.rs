//! Bits spent where they buy recall: PCA-rotated codes whose segments each get their own width,
//! chosen by an exact multiple-choice knapsack under a byte budget (CalibTIP's integer program,
//! methods.md §9 and §16.5).
//!
//! **Code.** A vector is centred and rotated onto the principal axes of the data (`y = P(x − m)`),
//! whose coordinates are cut into segments of [`SEGMENT`] dimensions. A segment of width `b`
//! (0, 1, 2, 3, 4 or 8 bits per dimension) holds each coordinate on the uniform grid
//! `Δ_i·(u − (2^b − 1)/2)`, `u ∈ 0..2^b`, whose step `Δ_i = g_b·σ_i` is the Gaussian-optimal step
//! for `b` bits ([`GAUSS_STEP`]) scaled by the axis's spread; width 0 drops the segment. The `u`
//! are stored as `b` bit-planes per segment, so every row is `Σ_s b_s·|s|/8` bytes plus one float,
//! the least-squares scale `α = ⟨y, ŷ⟩/⟨ŷ, ŷ⟩` that undoes the grid's shrinkage.
//!
//! **Score.** `⟨x, q⟩ ≈ ⟨m, q⟩ + α·⟨ŷ, Pq⟩`. For a query `v = Pq` the weights `v_i Δ_i` of each
//! code byte (8 coordinates of one plane) are summed into a 256-entry table once per query, and a
//! row scores as the sum of one table entry per byte ([`Kernels::lut_sum`]): one kernel serves
//! every mix of widths.
//!
//! **Allocation.** On a calibration split (held-out rows of the data as queries against a sample
//! of the rest) the fit measures, for every segment `s` and width `b`, the recall@10 lost when only
//! `s` is at `b` and every other segment at 8 bits, plus a tie-break proportional to the variance
//! `b` bits leave unexplained (recall moves in steps of `1/(10·queries)`). Assuming the losses add
//! up, the widths minimising the total loss with the code and its factor within the budget are an
//! exact multiple-choice knapsack, solved by dynamic programming over bytes.
//!
//! [`Kernels::lut_sum`]: crate::kernels::Kernels::lut_sum

use super::{dot64, mean, Codes, QueryCode};
use crate::pca::{matmul_abt, principal_axes};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Dimensions per segment (a multiple of 8, so every plane of a segment is whole bytes).
pub const SEGMENT: usize = 32;

/// The widths a segment may take, in bits per dimension.
pub const WIDTHS: [u8; 6] = [0, 1, 2, 3, 4, 8];

/// Bytes of per-vector factors (the scale `α`).
pub const FACTOR_BYTES: usize = 4;

/// Rows used as calibration queries at most.
pub const CALIB_QUERIES: usize = 200;

/// Rows searched by the calibration queries at most.
pub const CALIB_BASE: usize = 10_000;

/// Neighbours whose recall the allocation protects.
pub const CALIB_K: usize = 10;

/// The step, in standard deviations, of the uniform quantizer with least squared error for a
/// Gaussian at `b` bits (Max 1960, Table I), indexed by `b` (0 unused).
pub const GAUSS_STEP: [f64; 9] = [
    0.0, 1.596, 0.9957, 0.5860, 0.3352, 0.1881, 0.1041, 0.0568, 0.0307,
];

/// The squared error of that quantizer, as a fraction of the variance, indexed like
/// [`GAUSS_STEP`] (width 0 loses all of it).
pub const GAUSS_ERROR: [f64; 9] = [
    1.0, 0.3634, 0.1188, 0.03744, 0.01154, 0.00349, 0.00101, 0.00029, 0.00008,
];

/// What the allocation measured and chose, for reports (`bitseek build --json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Allocation {
    /// Bits per dimension of each segment, in order of decreasing variance.
    pub widths: Vec<u8>,
    /// Bytes per vector of the code and its factor.
    pub bytes: usize,
    /// Recall@10 on the calibration split with every segment at 8 bits.
    pub calib_recall_8bit: f64,
    /// Recall@10 on the calibration split with the chosen widths.
    pub calib_recall: f64,
    /// Calibration queries and the rows they searched.
    pub calib_queries: usize,
    /// Rows searched by the calibration queries.
    pub calib_rows: usize,
}

/// A fitted allocated quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Alloc {
    /// Input dimension.
    pub dim: usize,
    /// Rotated dimension: `dim` rounded up to whole segments (the extra axes are zero).
    pub padded: usize,
    /// Data mean.
    pub mean: Vec<f32>,
    /// Principal axes, `padded × dim` row-major, by decreasing variance.
    pub axes: Vec<f32>,
    /// Standard deviation along each axis (`padded`).
    pub sigma: Vec<f32>,
    /// Bits per dimension of each segment.
    pub widths: Vec<u8>,
    /// What the fit measured and chose (`None` when restored from a file without it).
    pub report: Option<Allocation>,
}

/// Why an allocation cannot be fitted.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AllocError {
    /// The budget cannot hold the factor and one segment at 1 bit.
    #[error("alloc:{budget} is too small: codes need at least {min} bytes per vector ({FACTOR_BYTES} for the scale factor and {} for one {SEGMENT}-dimension segment at 1 bit); raise the budget", SEGMENT / 8)]
    BudgetTooSmall {
        /// The budget asked for.
        budget: usize,
        /// The smallest budget that works.
        min: usize,
    },
    /// Too few rows to calibrate on.
    #[error("alloc needs at least {min} rows to fit ({segments} segments, held-out calibration queries and rows for them to search), but the data has {rows}; use a fixed format such as rabitq or int8 for so few vectors")]
    TooFewRows {
        /// Rows given.
        rows: usize,
        /// Rows needed.
        min: usize,
        /// Segments of the code.
        segments: usize,
    },
}

/// Segments for dimension `dim`.
pub fn segments(dim: usize) -> usize {
    dim.div_ceil(SEGMENT)
}

/// Checks that `alloc:budget` can be fitted on `rows` vectors of dimension `dim`.
pub fn check(dim: usize, rows: usize, budget: usize) -> Result<(), AllocError> {
    let min = FACTOR_BYTES + SEGMENT / 8;
    if budget < min {
        return Err(AllocError::BudgetTooSmall { budget, min });
    }
    let s = segments(dim);
    let min_rows = (2 * s).max(8 * CALIB_K);
    if rows < min_rows {
        return Err(AllocError::TooFewRows {
            rows,
            min: min_rows,
            segments: s,
        });
    }
    Ok(())
}

impl Alloc {
    /// Fits the principal axes on `rows` and allocates `budget` bytes per vector by measured
    /// recall; `seed` picks the calibration split. Call [`check`] first.
    ///
    /// # Panics
    /// When [`check`] would refuse.
    pub fn fit(dim: usize, rows: &[f32], budget: usize, seed: u64) -> Alloc {
        let n = rows.len() / dim;
        check(dim, n, budget).expect("alloc parameters were checked");
        let m = mean(dim, rows);
        let (axes, var) = principal_axes(dim, rows, &m);
        let padded = segments(dim) * SEGMENT;
        let mut all_axes = axes;
        all_axes.resize(padded * dim, 0.0);
        let mut sigma: Vec<f32> = var.iter().map(|v| v.sqrt() as f32).collect();
        sigma.resize(padded, 0.0);
        let mut alloc = Alloc {
            dim,
            padded,
            mean: m,
            axes: all_axes,
            sigma,
            widths: vec![8; segments(dim)],
            report: None,
        };
        let report = alloc.allocate(rows, budget, seed);
        alloc.widths = report.widths.clone();
        alloc.report = Some(report);
        alloc
    }

    /// Restores a fitted quantizer.
    pub fn from_parts(
        dim: usize,
        mean: Vec<f32>,
        axes: Vec<f32>,
        sigma: Vec<f32>,
        widths: Vec<u8>,
    ) -> Alloc {
        Alloc {
            dim,
            padded: widths.len() * SEGMENT,
            mean,
            axes,
            sigma,
            widths,
            report: None,
        }
    }

    /// Bytes per row of the codes (without the factor).
    pub fn row_bytes(&self) -> usize {
        self.widths.iter().map(|&b| b as usize * SEGMENT / 8).sum()
    }

    /// The step of axis `i` at width `b`.
    fn step(&self, i: usize, b: u8) -> f32 {
        (GAUSS_STEP[b as usize] * self.sigma[i] as f64) as f32
    }

    /// `y = P(x − m)` for every row, `padded` values each.
    fn project(&self, rows: &[f32], centre: bool) -> Vec<f32> {
        let n = rows.len() / self.dim;
        let shifted: Vec<f32> = if centre {
            rows.chunks_exact(self.dim)
                .flat_map(|r| r.iter().zip(&self.mean).map(|(&x, &m)| x - m))
                .collect()
        } else {
            rows[..n * self.dim].to_vec()
        };
        matmul_abt(&shifted, n, self.dim, &self.axes, self.padded)
    }

    /// The grid level `u` of coordinate `y` on axis `i` at width `b > 0`.
    fn level(&self, i: usize, b: u8, y: f32) -> u32 {
        let top = (1u32 << b) - 1;
        let step = self.step(i, b);
        if step <= 0.0 {
            return top / 2 + 1; // a constant axis: any level, its weight is zero
        }
        (y / step + (1u32 << (b - 1)) as f32)
            .floor()
            .clamp(0.0, top as f32) as u32
    }

    /// The reconstruction `Δ_i (u − (2^b − 1)/2)` of level `u` on axis `i` at width `b`.
    fn value(&self, i: usize, b: u8, u: u32) -> f32 {
        if b == 0 {
            return 0.0;
        }
        self.step(i, b) * (u as f32 - ((1u32 << b) - 1) as f32 / 2.0)
    }

    /// The rotated query `Pq` (`padded` values), which [`Alloc::decode`]d codes meet.
    pub fn rotate_query(&self, q: &[f32]) -> Vec<f32> {
        self.project(q, false)
    }

    /// The grid point `ŷ` (`padded` values, in the rotated space) that one code's bytes stand for.
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; self.padded];
        let mut at = 0;
        for (s, &b) in self.widths.iter().enumerate() {
            for k in 0..SEGMENT {
                let i = s * SEGMENT + k;
                let u = (0..b as usize)
                    .map(|p| (((code[at + p * SEGMENT / 8 + k / 8] >> (k % 8)) & 1) as u32) << p)
                    .sum();
                out[i] = self.value(i, b, u);
            }
            at += b as usize * SEGMENT / 8;
        }
        out
    }

    /// Encodes stored vectors: `row_bytes()` bytes of planes per row and the factor `α`.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let n = rows.len() / self.dim;
        let y = self.project(rows, true);
        let rb = self.row_bytes();
        let mut bytes = vec![0u8; n * rb];
        let mut alpha = vec![0f32; n];
        for r in 0..n {
            let yr = &y[r * self.padded..(r + 1) * self.padded];
            let out = &mut bytes[r * rb..(r + 1) * rb];
            let (mut y_hat, mut hat_hat, mut at) = (0f64, 0f64, 0);
            for (s, &b) in self.widths.iter().enumerate() {
                if b == 0 {
                    continue;
                }
                for k in 0..SEGMENT {
                    let i = s * SEGMENT + k;
                    let u = self.level(i, b, yr[i]);
                    let v = self.value(i, b, u) as f64;
                    y_hat += yr[i] as f64 * v;
                    hat_hat += v * v;
                    for p in 0..b as usize {
                        out[at + p * SEGMENT / 8 + k / 8] |= (((u >> p) & 1) as u8) << (k % 8);
                    }
                }
                at += b as usize * SEGMENT / 8;
            }
            alpha[r] = if hat_hat > 0.0 {
                (y_hat / hat_hat) as f32
            } else {
                0.0
            };
        }
        Codes {
            len: n,
            bytes: bytes.into_iter().map(|b| b as i8).collect(),
            factors: vec![alpha],
            ..Default::default()
        }
    }

    /// The query: one 256-entry table per code byte in `weights`, the constant `−Σ v_i Δ_i c_b`
    /// in `c` and `⟨m, q⟩` in `offset`.
    pub fn encode_query(&self, q: &[f32]) -> QueryCode {
        let v = self.project(q, false);
        let rb = self.row_bytes();
        let mut luts = vec![0f32; rb * 256];
        let mut constant = 0f64;
        let mut j = 0;
        for (s, &b) in self.widths.iter().enumerate() {
            if b == 0 {
                continue;
            }
            let c = ((1u32 << b) - 1) as f64 / 2.0;
            for k in 0..SEGMENT {
                let i = s * SEGMENT + k;
                constant -= v[i] as f64 * self.step(i, b) as f64 * c;
            }
            for p in 0..b as usize {
                for byte in 0..SEGMENT / 8 {
                    let lut = &mut luts[j * 256..(j + 1) * 256];
                    let w: Vec<f32> = (0..8)
                        .map(|bit| {
                            let i = s * SEGMENT + byte * 8 + bit;
                            v[i] * self.step(i, b) * (1u32 << p) as f32
                        })
                        .collect();
                    for x in 1..256usize {
                        lut[x] = lut[x & (x - 1)] + w[x.trailing_zeros() as usize];
                    }
                    j += 1;
                }
            }
        }
        QueryCode {
            weights: luts,
            c: constant as f32,
            offset: dot64(&self.mean, q) as f32,
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
        let lut_sum = crate::kernels::kernels().lut_sum;
        let bytes: &[u8] = bytemuck::cast_slice(codes.bytes);
        let rb = self.row_bytes();
        let alpha = codes.factors[0];
        super::fp8::score_rows(codes.len, blocks, est, |row| {
            alpha[row] * (lut_sum(&query.weights, &bytes[row * rb..(row + 1) * rb]) + query.c)
        });
    }

    /// Measures every segment's recall loss at every width on a calibration split of `rows` and
    /// returns the knapsack's choice of widths for `budget` bytes.
    fn allocate(&self, rows: &[f32], budget: usize, seed: u64) -> Allocation {
        let n = rows.len() / self.dim;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let nq = CALIB_QUERIES.min(n / 4).max(1);
        let nb = CALIB_BASE.min(n - nq);
        let pick = |idx: &[usize]| -> Vec<f32> {
            idx.iter()
                .flat_map(|&r| rows[r * self.dim..(r + 1) * self.dim].iter().copied())
                .collect()
        };
        let queries = pick(&order[..nq]);
        let base = pick(&order[nq..nq + nb]);
        let truth = exact_top(&base, &queries, self.dim, CALIB_K);
        let y = self.project(&base, true);
        let v = self.project(&queries, false);
        let segs = self.widths.len();
        // Per-segment score contributions ⟨ŷ_s, v_s⟩ (queries × rows) at a width.
        let (y, v) = (&y, &v);
        let contribution = |s: usize, b: u8| -> Vec<f32> {
            let cols = s * SEGMENT..(s + 1) * SEGMENT;
            let yq: Vec<f32> = y
                .chunks_exact(self.padded)
                .flat_map(|r| {
                    cols.clone().map(move |i| {
                        if b == 0 {
                            0.0
                        } else {
                            self.value(i, b, self.level(i, b, r[i]))
                        }
                    })
                })
                .collect();
            let vq: Vec<f32> = v
                .chunks_exact(self.padded)
                .flat_map(|r| r[cols.clone()].iter().copied())
                .collect();
            matmul_abt(&vq, nq, SEGMENT, &yq, nb)
        };
        let mut full = vec![0f32; nq * nb];
        for s in 0..segs {
            for (t, c) in full.iter_mut().zip(contribution(s, 8)) {
                *t += c;
            }
        }
        let base_recall = recall_of(&full, nb, &truth);
        let total_var: f64 = self.sigma.iter().map(|s| (*s as f64).powi(2)).sum::<f64>();
        // loss[s][w]: recall lost with only segment s at WIDTHS[w], plus the variance tie-break
        // (below one recall step, so it only orders equal recalls).
        let step = 1.0 / (CALIB_K * nq) as f64;
        let mut loss = vec![[0f64; WIDTHS.len()]; segs];
        let mut scores = vec![0f32; nq * nb];
        for (s, row) in loss.iter_mut().enumerate() {
            let at8 = contribution(s, 8);
            let seg_var: f64 = (s * SEGMENT..(s + 1) * SEGMENT)
                .map(|i| (self.sigma[i] as f64).powi(2))
                .sum();
            for (w, &b) in WIDTHS.iter().enumerate() {
                let tie = 0.5 * step * seg_var / total_var.max(f64::MIN_POSITIVE)
                    * GAUSS_ERROR[b as usize];
                if b == 8 {
                    row[w] = tie;
                    continue;
                }
                let at_b = contribution(s, b);
                for ((o, &f), (&a, &c)) in scores.iter_mut().zip(&full).zip(at8.iter().zip(&at_b)) {
                    *o = f - a + c;
                }
                row[w] = (base_recall - recall_of(&scores, nb, &truth)).max(0.0) + tie;
            }
        }
        let widths = knapsack(&loss, budget - FACTOR_BYTES);
        let mut chosen = vec![0f32; nq * nb];
        for (s, &b) in widths.iter().enumerate() {
            for (t, c) in chosen.iter_mut().zip(contribution(s, b)) {
                *t += c;
            }
        }
        Allocation {
            bytes: widths
                .iter()
                .map(|&b| b as usize * SEGMENT / 8)
                .sum::<usize>()
                + FACTOR_BYTES,
            widths,
            calib_recall_8bit: base_recall,
            calib_recall: recall_of(&chosen, nb, &truth),
            calib_queries: nq,
            calib_rows: nb,
        }
    }
}

/// The widths (one per segment, from [`WIDTHS`]) with the least total `loss` whose codes fit in
/// `bytes`: an exact multiple-choice knapsack by dynamic programming over bytes.
pub fn knapsack(loss: &[[f64; WIDTHS.len()]], bytes: usize) -> Vec<u8> {
    let cost = |w: usize| WIDTHS[w] as usize * SEGMENT / 8;
    let segs = loss.len();
    // best[s][c]: least loss of segments 0..s using at most c bytes; choice[s][c] its last width.
    let mut best = vec![vec![0f64; bytes + 1]; segs + 1];
    let mut choice = vec![vec![0usize; bytes + 1]; segs];
    for s in 0..segs {
        for c in 0..=bytes {
            let mut top = f64::INFINITY;
            for w in 0..WIDTHS.len() {
                if cost(w) <= c {
                    let total = best[s][c - cost(w)] + loss[s][w];
                    if total < top {
                        top = total;
                        choice[s][c] = w;
                    }
                }
            }
            best[s + 1][c] = top;
        }
    }
    let mut widths = vec![0u8; segs];
    let mut c = bytes;
    for s in (0..segs).rev() {
        let w = choice[s][c];
        widths[s] = WIDTHS[w];
        c -= cost(w);
    }
    widths
}

/// Exact top-`k` rows of `base` by inner product for each query (ties by row).
fn exact_top(base: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<u32>> {
    let nb = base.len() / dim;
    let nq = queries.len() / dim;
    let scores = matmul_abt(queries, nq, dim, base, nb);
    scores.chunks_exact(nb.max(1)).map(|s| top(s, k)).collect()
}

/// The `k` best rows of one query's scores.
fn top(scores: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    let k = k.min(idx.len());
    let by = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if k < idx.len() {
        idx.select_nth_unstable_by(k, by);
        idx.truncate(k);
    }
    idx
}

/// Mean recall@k of the top rows of `scores` (queries × `nb`) against `truth`.
fn recall_of(scores: &[f32], nb: usize, truth: &[Vec<u32>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (s, want) in scores.chunks_exact(nb).zip(truth) {
        let got = top(s, want.len());
        hit += got.iter().filter(|r| want.contains(r)).count();
        total += want.len();
    }
    hit as f64 / total.max(1) as f64
}
