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
//! **Score.** `⟨x, q⟩ ≈ ⟨m, q⟩ + α·⟨ŷ, Pq⟩`. For a query `v = Pq` each half-byte of a code
//! (4 coordinates of one plane) gets a 16-entry table of its partial sums `Σ v_i Δ_i 2^p`,
//! quantized to `u8` on one scale shared by every table (FAISS's FastScan tables). The codes are
//! stored in FastScan blocks of 32 rows ([`crate::kernels::fastscan`]), so a block is scored
//! with two register shuffles per half-byte and the integer sums are exact; one kernel serves every
//! mix of widths (with an 8-bit segment, two passes over `u16` entries' high and low bytes). The `u8` rounding moves an estimate by at most `|α|·a·groups/2` (`a` the
//! table step, see [`Alloc::encode_query`]).
//!
//! **Allocation.** On a calibration split (held-out rows of the data as queries against a sample
//! of the rest) the fit measures, for every segment `s` and width `b`, the recall@10 lost when only
//! `s` is at `b` and every other segment at 8 bits, plus a tie-break proportional to the variance
//! `b` bits leave unexplained (recall moves in steps of `1/(10·queries)`). Assuming the losses add
//! up, the widths minimising the total loss with the code and its factor within the budget are an
//! exact multiple-choice knapsack, solved by dynamic programming over bytes.

use super::{dot64, mean, Codes, QueryCode};
use crate::pca::{matmul_abt, principal_axes};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Dimensions per segment (a multiple of 8, so every plane of a segment is whole bytes).
pub const SEGMENT: usize = 32;

/// The widths a segment may take, in bits per dimension.
pub const WIDTHS: [u8; 6] = [0, 1, 2, 3, 4, 8];

/// Rows per FastScan block of stored codes.
pub const ROWS_PER_BLOCK: usize = crate::kernels::fastscan::FS_BLOCK;

/// The layout of stored codes this version writes and reads: 2 = FastScan blocks of
/// [`ROWS_PER_BLOCK`] rows (1 was one row after another, bitseek 0.1's first `alloc`).
pub const LAYOUT: u32 = 2;

/// Bytes of per-vector factors (the scale `α`).
pub const FACTOR_BYTES: usize = 4;

/// Rows used as calibration queries at most.
pub const CALIB_QUERIES: usize = 200;

/// Given calibration queries ([`Alloc::fit_calibrated`]) used at most.
pub const CALIB_QUERIES_GIVEN: usize = 1000;

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
    /// How the codes are stored ([`LAYOUT`]); files without it hold layout 1.
    #[serde(default = "first_layout")]
    pub layout: u32,
}

/// The layout of files written before the layout was recorded.
fn first_layout() -> u32 {
    1
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
        Alloc::fit_calibrated(dim, rows, budget, seed, None)
    }

    /// [`Alloc::fit`] with the recall measured for `calib` (row-major queries, at most
    /// [`CALIB_QUERIES_GIVEN`] of them used) instead of rows held out of the data: the queries
    /// the index will serve, when they differ from the stored vectors (text queries against code,
    /// say).
    ///
    /// # Panics
    /// When [`check`] would refuse.
    pub fn fit_calibrated(
        dim: usize,
        rows: &[f32],
        budget: usize,
        seed: u64,
        calib: Option<&[f32]>,
    ) -> Alloc {
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
        let report = alloc.allocate(rows, budget, seed, calib);
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
            bytes: self.pack(&bytes, n).into_iter().map(|b| b as i8).collect(),
            factors: vec![alpha],
            ..Default::default()
        }
    }

    /// Bytes that `rows` stored codes take: whole FastScan blocks (`32·row_bytes` each).
    pub fn code_len(&self, rows: usize) -> usize {
        rows.div_ceil(ROWS_PER_BLOCK) * ROWS_PER_BLOCK * self.row_bytes()
    }

    /// Packs `n` codes given one row after another into FastScan blocks: byte `j` of half-byte
    /// group `g` of a block holds row `j`'s group `g` in its low half and row `j + 16`'s in its
    /// high half (rows past `n` are zero).
    pub fn pack(&self, rows: &[u8], n: usize) -> Vec<u8> {
        let rb = self.row_bytes();
        let mut out = vec![0u8; self.code_len(n)];
        if rb == 0 {
            return out;
        }
        for (b, block) in out.chunks_exact_mut(ROWS_PER_BLOCK * rb).enumerate() {
            for lane in 0..ROWS_PER_BLOCK.min(n - b * ROWS_PER_BLOCK) {
                let code = &rows[(b * ROWS_PER_BLOCK + lane) * rb..][..rb];
                let (j, shift) = (lane % 16, 4 * (lane / 16));
                for (t, &byte) in code.iter().enumerate() {
                    block[2 * t * 16 + j] |= (byte & 15) << shift;
                    block[(2 * t + 1) * 16 + j] |= (byte >> 4) << shift;
                }
            }
        }
        out
    }

    /// Code `row` (`row_bytes()` bytes, planes of each segment in turn) read back from stored
    /// FastScan blocks.
    pub fn row(&self, stored: &[u8], row: usize) -> Vec<u8> {
        let rb = self.row_bytes();
        let block = &stored[row / ROWS_PER_BLOCK * ROWS_PER_BLOCK * rb..][..ROWS_PER_BLOCK * rb];
        let lane = row % ROWS_PER_BLOCK;
        (0..rb)
            .map(|t| {
                let lo = crate::kernels::fastscan::unpack_nibble(block, lane, 2 * t);
                let hi = crate::kernels::fastscan::unpack_nibble(block, lane, 2 * t + 1);
                lo | (hi << 4)
            })
            .collect()
    }

    /// The stored codes of `rows` (indices into `stored`), packed anew (for selections).
    pub fn gather(&self, stored: &[u8], rows: &[usize]) -> Vec<u8> {
        let flat: Vec<u8> = rows.iter().flat_map(|&r| self.row(stored, r)).collect();
        self.pack(&flat, rows.len())
    }

    /// Stored codes of `a_len` rows followed by those of `b_len` rows (for appends).
    pub fn concat(&self, a: &[u8], a_len: usize, b: &[u8], b_len: usize) -> Vec<u8> {
        if a_len.is_multiple_of(ROWS_PER_BLOCK) {
            return [&a[..self.code_len(a_len)], &b[..self.code_len(b_len)]].concat();
        }
        let flat: Vec<u8> = (0..a_len)
            .map(|r| self.row(a, r))
            .chain((0..b_len).map(|r| self.row(b, r)))
            .flatten()
            .collect();
        self.pack(&flat, a_len + b_len)
    }

    /// The query: one 16-entry table per half-byte group of a code in `bytes` (groups in code
    /// order: low then high half of each byte), their common step in `a`, the constant
    /// (`−Σ v_i Δ_i c_b` plus every table's offset) in `c` and `⟨m, q⟩` in `offset`, so that a
    /// row's estimate is `α·(a·Σ_g table_g[half-byte g] + c)`.
    ///
    /// Entry `x` of a group's table is its partial sum `T(x) = Σ_{bit t of x} v_i Δ_i 2^p`, stored
    /// as `round((T(x) − min T)/a)` with `a = max_g (max T − min T)/top`: each entry is off by at
    /// most `a/2`, a row's sum by at most `a·groups/2`. With one pass (`qplanes` 1, see
    /// [`Alloc::table_passes`]) `top` is 255 and `bytes` holds the `u8` entries; with two, `top`
    /// is 65535 and `bytes` holds every table's high bytes, then every table's low bytes.
    pub fn encode_query(&self, q: &[f32]) -> QueryCode {
        let v = self.project(q, false);
        let tables = self.float_tables(&v);
        let mut constant = 0f64;
        for (s, &b) in self.widths.iter().enumerate() {
            if b == 0 {
                continue;
            }
            let c = ((1u32 << b) - 1) as f64 / 2.0;
            for k in 0..SEGMENT {
                let i = s * SEGMENT + k;
                constant -= v[i] as f64 * self.step(i, b) as f64 * c;
            }
        }
        let range = |t: &[f64]| {
            let lo = t.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi - lo)
        };
        let widest = tables
            .chunks_exact(16)
            .map(|t| range(t).1)
            .fold(0f64, f64::max);
        let passes = self.table_passes();
        let top = if passes == 2 { 65535.0 } else { 255.0 };
        let step = if widest > 0.0 { widest / top } else { 1.0 };
        let mut entries = Vec::with_capacity(tables.len());
        for t in tables.chunks_exact(16) {
            let (lo, _) = range(t);
            constant += lo;
            entries.extend(
                t.iter()
                    .map(|&x| ((x - lo) / step).round().clamp(0.0, top) as u32),
            );
        }
        // One pass: the entries are bytes. Two: their high bytes, then their low bytes.
        let lut: Vec<i8> = if passes == 2 {
            let high = entries.iter().map(|&e| (e >> 8) as u8 as i8);
            high.chain(entries.iter().map(|&e| e as u8 as i8)).collect()
        } else {
            entries.iter().map(|&e| e as u8 as i8).collect()
        };
        QueryCode {
            bytes: lut,
            qplanes: passes,
            a: step as f32,
            c: constant as f32,
            offset: dot64(&self.mean, q) as f32,
            ..Default::default()
        }
    }

    /// FastScan passes per query: 1 (`u8` table entries) unless a segment is at 8 bits, whose
    /// grid is finer than a `u8` step of the widest table; then 2, the high and low bytes of
    /// `u16` entries (measured on dev-python: `alloc:112`, one 8-bit segment, keeps 0.894 raw
    /// recall@10 with two passes and drops to 0.870 with one).
    pub fn table_passes(&self) -> usize {
        if self.widths.contains(&8) {
            2
        } else {
            1
        }
    }

    /// The exact 16-entry tables of every half-byte group for the rotated query `v`, in code
    /// order (the `f64` values [`Alloc::encode_query`] rounds).
    pub fn float_tables(&self, v: &[f32]) -> Vec<f64> {
        let mut tables = Vec::with_capacity(self.row_bytes() * 32);
        for (s, &b) in self.widths.iter().enumerate() {
            for p in 0..b as usize {
                for half in 0..SEGMENT / 4 {
                    let w: Vec<f64> = (0..4)
                        .map(|bit| {
                            let i = s * SEGMENT + half * 4 + bit;
                            v[i] as f64 * self.step(i, b) as f64 * (1u64 << p) as f64
                        })
                        .collect();
                    let at = tables.len();
                    tables.push(0.0);
                    for x in 1..16usize {
                        let t = tables[at + (x & (x - 1))] + w[x.trailing_zeros() as usize];
                        tables.push(t);
                    }
                }
            }
        }
        tables
    }

    /// Estimates `⟨x, q⟩ − offset` for the rows of `blocks` (rows past the end score `-inf`):
    /// FastScan sums over the 32-row blocks that cover them.
    pub fn score(
        &self,
        codes: &super::CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        est: &mut [f32],
    ) {
        let rb = self.row_bytes();
        let alpha = codes.factors[0];
        let first = blocks.start * crate::BLOCK;
        let end = (blocks.end * crate::BLOCK).min(codes.len);
        let b0 = first / ROWS_PER_BLOCK;
        let b1 = if end > first {
            end.div_ceil(ROWS_PER_BLOCK)
        } else {
            b0
        };
        let mut sums = vec![0u32; (b1 - b0) * ROWS_PER_BLOCK];
        if rb > 0 && b1 > b0 {
            let bytes: &[u8] = bytemuck::cast_slice(codes.bytes);
            let bb = ROWS_PER_BLOCK * rb;
            let blocks = &bytes[b0 * bb..b1 * bb];
            let fastscan = crate::kernels::kernels().fastscan_blocks;
            let lut: &[u8] = bytemuck::cast_slice(&query.bytes);
            let (first, low) = lut.split_at(32 * rb);
            fastscan(first, blocks, 2 * rb, &mut sums);
            if query.qplanes == 2 {
                let mut low_sums = vec![0u32; sums.len()];
                fastscan(low, blocks, 2 * rb, &mut low_sums);
                for (s, l) in sums.iter_mut().zip(low_sums) {
                    *s = (*s << 8) + l;
                }
            }
        }
        let base = b0 * ROWS_PER_BLOCK;
        super::fp8::score_rows(codes.len, blocks, est, |row| {
            alpha[row] * (query.a * sums[row - base] as f32 + query.c)
        });
    }

    /// Measures every segment's recall loss at every width on a calibration split of `rows` and
    /// returns the knapsack's choice of widths for `budget` bytes.
    fn allocate(
        &self,
        rows: &[f32],
        budget: usize,
        seed: u64,
        calib: Option<&[f32]>,
    ) -> Allocation {
        let n = rows.len() / self.dim;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let pick = |idx: &[usize]| -> Vec<f32> {
            idx.iter()
                .flat_map(|&r| rows[r * self.dim..(r + 1) * self.dim].iter().copied())
                .collect()
        };
        // Given queries leave every row to search; otherwise some rows are held out as queries.
        let given = calib.map(|c| &c[..(c.len() / self.dim).min(CALIB_QUERIES_GIVEN) * self.dim]);
        let nq = match given {
            Some(c) => c.len() / self.dim,
            None => CALIB_QUERIES.min(n / 4).max(1),
        };
        let held = if given.is_some() { 0 } else { nq };
        let nb = CALIB_BASE.min(n - held);
        let queries = given.map_or_else(|| pick(&order[..nq]), <[f32]>::to_vec);
        let base = pick(&order[held..held + nb]);
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
            layout: LAYOUT,
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
