//! Quantizers: fitted on data, they turn stored vectors into codes ([`Quantizer::encode`]) and
//! queries into query codes ([`Quantizer::encode_query`]), and score codes against a query.
//!
//! Every quantizer estimates the inner product `⟨x, q⟩` of the original vectors; the metric layer
//! (`bitseek-index`) turns that into cosine, dot or L2 scores with the exact `‖x‖²` kept per vector.
//!
//! | kind | code | query | score |
//! |---|---|---|---|
//! | `sign` | 1 bit/dim of `x − mean` | same | Hamming distance (integer) |
//! | `rabitq` | 1 bit/dim of the rotated, centred, normalised vector + 3 floats | 4-bit, randomized rounding | RaBitQ unbiased estimator, with error bound |
//! | `residualB` | B bits/dim on the lattice `s·(U − (2^B−1)/2)` + 3 floats | 4-bit (asymmetric) or B-bit (symmetric, SDC) | Extended-RaBitQ estimator |
//! | `int8` | one `i8` per dim, per-dimension affine ranges | `i8` | scaled integer dot |
//! | `ternary` | {−1, 0, +1} per rotated dim by the absmean rule, two planes + 3 floats | 4-bit (asymmetric) or ternary (symmetric) | RaBitQ-style estimator over signed popcounts |
//! | `fp8`, `fp8-e5m2` | one FP8 byte per dim, per-dimension scale | `f32` weights | float dot over decoded bytes |
//! | `int4` | 4 bits per dim (two per byte), per-dimension affine ranges | `f32` weights | float dot over nibbles |
//! | `alloc:BYTES` | PCA segments at 0–8 bits each, widths chosen by a knapsack on measured recall, + 1 float | 16-entry `u8` tables per half-byte | FastScan table sums over blocks of 32 codes |
//! | `learnedB` | B bits/dim from a trained recurrent binarizer, same lattice + 2 floats | B-bit code (symmetric) or 4–8-bit relaxation (asymmetric) | cosine of codes |
//!
//! `rabitq` is the `B = 1` case of the rotated lattice ([`lattice::Lattice`]), so one code path and
//! one set of kernels serves 1 to 8 bits.

pub mod alloc;
pub mod byte_code;
pub mod fp8;
pub mod int4;
pub mod int8;
pub mod lattice;
pub mod learned;
pub mod sign;
pub mod ternary;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use alloc::{Alloc, Allocation};
pub use byte_code::{ByteCode, ByteFormat};
pub use fp8::{Fp8, Fp8Format};
pub use int4::Int4;
pub use int8::Int8;
pub use lattice::{Lattice, ScaleSearch};
pub use learned::{Learned, LearnedConfig};
pub use sign::Sign;
pub use ternary::Ternary;

/// Which quantizer, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum QuantizerKind {
    /// Centred sign bits, Hamming distance.
    Sign,
    /// RaBitQ: rotated 1-bit codes with per-vector corrections and 4-bit asymmetric queries.
    Rabitq,
    /// B-bit codes on the recurrent-binarization / Extended-RaBitQ lattice (B = 2..=8).
    Residual {
        /// Bits per dimension, 2..=8.
        bits: u8,
    },
    /// Per-dimension scalar quantization to `i8`.
    Int8,
    /// {−1, 0, +1} per rotated dimension (two planes), absmean threshold, RaBitQ-style estimator.
    Ternary,
    /// One FP8 byte per dimension with a per-dimension scale.
    Fp8 {
        /// E4M3 (`fp8`) or E5M2 (`fp8-e5m2`).
        format: Fp8Format,
    },
    /// Per-dimension affine 4-bit codes, two per byte.
    Int4,
    /// PCA segments whose widths a knapsack chose for `bytes` bytes per vector ([`alloc`]).
    Alloc {
        /// The budget: bytes per vector of code and factor.
        bytes: u32,
    },
    /// B-bit codes (B = 1..=4) of a trained encoder ([`learned`]); built from an encoder file,
    /// never fitted from vectors.
    Learned {
        /// Bits per dimension, 1..=4.
        bits: u8,
    },
}

impl QuantizerKind {
    /// Bits of code per dimension (the widest segment's for `alloc`).
    pub fn bits(&self) -> usize {
        match self {
            QuantizerKind::Sign | QuantizerKind::Rabitq => 1,
            QuantizerKind::Residual { bits } | QuantizerKind::Learned { bits } => *bits as usize,
            QuantizerKind::Int8 | QuantizerKind::Fp8 { .. } => 8,
            QuantizerKind::Ternary => 2,
            QuantizerKind::Int4 => 4,
            // Widths differ by segment; 8 is the widest.
            QuantizerKind::Alloc { .. } => 8,
        }
    }
}

impl QuantizerKind {
    /// Bytes per vector of the code and its per-vector factors at dimension `dim` (as
    /// [`Codes::bytes_per_vector`] will report), known before fitting; `None` for learned codes,
    /// whose shape comes from their encoder.
    pub fn bytes_per_vector(&self, dim: usize) -> Option<usize> {
        let plane = crate::layout::words_for(dim) * 8;
        Some(match self {
            QuantizerKind::Sign => plane,
            QuantizerKind::Rabitq => plane + 16,
            QuantizerKind::Residual { bits } => *bits as usize * plane + 16,
            QuantizerKind::Ternary => 2 * plane + 12,
            QuantizerKind::Int8 | QuantizerKind::Fp8 { .. } => dim,
            QuantizerKind::Int4 => dim.div_ceil(2),
            QuantizerKind::Alloc { bytes } => *bytes as usize,
            QuantizerKind::Learned { .. } => return None,
        })
    }
}

impl fmt::Display for QuantizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizerKind::Sign => write!(f, "sign"),
            QuantizerKind::Rabitq => write!(f, "rabitq"),
            QuantizerKind::Residual { bits } => write!(f, "residual{bits}"),
            QuantizerKind::Int8 => write!(f, "int8"),
            QuantizerKind::Ternary => write!(f, "ternary"),
            QuantizerKind::Fp8 {
                format: Fp8Format::E4m3,
            } => write!(f, "fp8"),
            QuantizerKind::Fp8 {
                format: Fp8Format::E5m2,
            } => write!(f, "fp8-e5m2"),
            QuantizerKind::Int4 => write!(f, "int4"),
            QuantizerKind::Alloc { bytes } => write!(f, "alloc:{bytes}"),
            QuantizerKind::Learned { bits } => write!(f, "learned{bits}"),
        }
    }
}

/// A quantizer name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown quantizer {0:?}: expected sign, rabitq, residual2 .. residual8, ternary, int4, fp8, fp8-e5m2, int8 or alloc:BYTES"
)]
pub struct UnknownQuantizer(pub String);

impl FromStr for QuantizerKind {
    type Err = UnknownQuantizer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sign" => Ok(QuantizerKind::Sign),
            "rabitq" => Ok(QuantizerKind::Rabitq),
            "int8" => Ok(QuantizerKind::Int8),
            "ternary" => Ok(QuantizerKind::Ternary),
            "int4" => Ok(QuantizerKind::Int4),
            "fp8" | "fp8-e4m3" => Ok(QuantizerKind::Fp8 {
                format: Fp8Format::E4m3,
            }),
            "fp8-e5m2" => Ok(QuantizerKind::Fp8 {
                format: Fp8Format::E5m2,
            }),
            _ => {
                if let Some(Ok(bytes @ 1..)) = s.strip_prefix("alloc:").map(str::parse::<u32>) {
                    return Ok(QuantizerKind::Alloc { bytes });
                }
                match s.strip_prefix("residual").map(str::parse::<u8>) {
                    Some(Ok(bits @ 2..=8)) => Ok(QuantizerKind::Residual { bits }),
                    _ => Err(UnknownQuantizer(s.to_string())),
                }
            }
        }
    }
}

/// How a query meets the codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    /// The query keeps more precision than the codes (4-bit bit-planes for lattice codes).
    Asymmetric,
    /// The query is encoded exactly like a stored vector (code vs code: Hamming, SDC).
    Symmetric,
}

/// Codes of a run of vectors, as produced by [`Quantizer::encode`]: bit-planes in the blocked
/// layout or `i8` rows, plus per-vector correction factors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Codes {
    /// Number of vectors.
    pub len: usize,
    /// Bit-planes per code (0 for `int8`).
    pub planes: usize,
    /// 64-bit words per plane.
    pub words: usize,
    /// Bit-plane codes in the blocked layout (`crate::layout`), empty for `int8`.
    pub bits: Vec<u64>,
    /// `i8` codes, row-major (`int8` only).
    pub bytes: Vec<i8>,
    /// Per-vector factors, one array per [`Factor`] the quantizer uses, each `len` long.
    pub factors: Vec<Vec<f32>>,
}

/// The named per-vector factors of the lattice quantizers, in storage order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    /// `‖o‖ / ⟨y, o'⟩`: rescales the lattice inner product into `⟨x − mean, ·⟩`.
    Scale = 0,
    /// `ΣU`: sum of the unsigned lattice values (popcount for 1-bit codes).
    SumU = 1,
    /// `⟨x − mean, mean⟩`: completes `⟨x, q⟩` from the centred product.
    DotMean = 2,
    /// Half-width of RaBitQ's error bound per unit of `‖q − mean‖`.
    Bound = 3,
}

/// A borrowed view of [`Codes`] (from memory or from a memory-mapped index).
#[derive(Clone, Copy, Debug)]
pub struct CodesRef<'a> {
    /// Number of vectors.
    pub len: usize,
    /// Bit-planes per code (0 for `int8`).
    pub planes: usize,
    /// 64-bit words per plane.
    pub words: usize,
    /// Bit-plane codes in the blocked layout, empty for `int8`.
    pub bits: &'a [u64],
    /// `i8` codes, row-major (`int8` only).
    pub bytes: &'a [i8],
    /// Per-vector factors by [`Factor`] index; empty slices for factors the quantizer lacks.
    pub factors: [&'a [f32]; 4],
}

impl Codes {
    /// An empty set of codes with the given shape.
    pub fn empty(planes: usize, words: usize, factors: usize) -> Self {
        Codes {
            len: 0,
            planes,
            words,
            factors: vec![Vec::new(); factors],
            ..Default::default()
        }
    }

    /// Appends `other`, which must have the same shape; `self.len` must be a multiple of
    /// [`crate::BLOCK`] so the blocked layout stays contiguous.
    pub fn append(&mut self, other: Codes) {
        assert_eq!(
            (self.planes, self.words),
            (other.planes, other.words),
            "code shapes differ"
        );
        assert!(
            self.len.is_multiple_of(crate::BLOCK),
            "append after a partial block"
        );
        self.len += other.len;
        self.bits.extend(other.bits);
        self.bytes.extend(other.bytes);
        for (mine, theirs) in self.factors.iter_mut().zip(other.factors) {
            mine.extend(theirs);
        }
    }

    /// Borrows the codes.
    pub fn as_ref(&self) -> CodesRef<'_> {
        let f = |i: usize| self.factors.get(i).map(Vec::as_slice).unwrap_or(&[]);
        CodesRef {
            len: self.len,
            planes: self.planes,
            words: self.words,
            bits: &self.bits,
            bytes: &self.bytes,
            factors: [f(0), f(1), f(2), f(3)],
        }
    }

    /// Bytes per vector of the code itself and its factors.
    pub fn bytes_per_vector(&self) -> usize {
        self.planes * self.words * 8 + self.bytes.len() / self.len.max(1) + self.factors.len() * 4
    }
}

/// A query prepared for scoring against codes.
#[derive(Clone, Debug, Default)]
pub struct QueryCode {
    /// Query bit-planes, plane-major (`planes[j * words + w]`), plane 0 least significant.
    pub planes: Vec<u64>,
    /// Number of query planes.
    pub qplanes: usize,
    /// `i8` query (for `int8` codes).
    pub bytes: Vec<i8>,
    /// Float weights of the query (for `fp8` and `int4` codes).
    pub weights: Vec<f32>,
    /// Affine terms of the estimate: `est = Scale·(a·ip + b·ΣU + c) + DotMean`. `a` multiplies
    /// the kernel's integer product `ip`.
    pub a: f32,
    /// Multiplies the code's `ΣU` (see `a`).
    pub b: f32,
    /// The constant term (see `a`).
    pub c: f32,
    /// `‖q − mean‖`, which scales the error bound.
    pub centred_norm: f32,
    /// `⟨mean, q⟩` (or for `int8` the query's constant term), added to every estimate.
    pub offset: f32,
    /// The planes are the query's own code, scored by a kernel of its own rather than as
    /// unsigned query planes: set by ternary's symmetric queries (planes `n′`, `s′`, for
    /// [`Kernels::ternary_sym_blocks`](crate::kernels::Kernels::ternary_sym_blocks)). Formats whose
    /// symmetric product the asymmetric kernel computes (the lattice's) leave it false.
    pub symmetric: bool,
}

/// How a quantizer's raw kernel output ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranking {
    /// Integer distances in `0..=max`, lower is better (Hamming).
    Distance {
        /// The largest distance there can be (the dimension).
        max: u32,
    },
    /// Float estimates of `⟨x, q⟩`, higher is better.
    Estimate,
}

/// A fitted quantizer.
#[derive(Clone, Debug, PartialEq)]
pub enum Quantizer {
    /// Centred sign bits ([`QuantizerKind::Sign`]).
    Sign(Sign),
    /// Rotated lattice codes of 1 to 8 bits ([`QuantizerKind::Rabitq`], [`QuantizerKind::Residual`]).
    Lattice(Lattice),
    /// Per-dimension `i8` ([`QuantizerKind::Int8`]).
    Int8(Int8),
    /// Two-plane ternary codes ([`QuantizerKind::Ternary`]).
    Ternary(Ternary),
    /// FP8 bytes ([`QuantizerKind::Fp8`]).
    Fp8(Fp8),
    /// 4-bit codes ([`QuantizerKind::Int4`]).
    Int4(Int4),
    /// Allocated PCA segments ([`QuantizerKind::Alloc`]), boxed to keep the enum small.
    Alloc(Box<Alloc>),
    /// A trained encoder ([`QuantizerKind::Learned`]), boxed to keep the enum small.
    Learned(Box<Learned>),
}

/// Options for fitting a quantizer.
#[derive(Clone, Copy, Debug)]
pub struct FitOptions {
    /// Seed of the random rotation and of the query's randomized rounding.
    pub seed: u64,
    /// How B-bit lattice codes pick their per-vector scale.
    pub scale_search: ScaleSearch,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            seed: 0x5eed,
            scale_search: ScaleSearch::Optimal,
        }
    }
}

impl Quantizer {
    /// Fits `kind` on `rows` (row-major, `dim` floats each; a sample is enough).
    ///
    /// # Panics
    /// For [`QuantizerKind::Learned`], which is trained, not fitted: load its encoder instead.
    pub fn fit(kind: QuantizerKind, dim: usize, rows: &[f32], opts: FitOptions) -> Quantizer {
        match kind {
            QuantizerKind::Sign => Quantizer::Sign(Sign::fit(dim, rows)),
            QuantizerKind::Rabitq => Quantizer::Lattice(Lattice::fit(dim, 1, rows, opts)),
            QuantizerKind::Residual { bits } => {
                Quantizer::Lattice(Lattice::fit(dim, bits as usize, rows, opts))
            }
            QuantizerKind::Int8 => Quantizer::Int8(Int8::fit(dim, rows)),
            QuantizerKind::Ternary => Quantizer::Ternary(Ternary::fit(dim, rows, opts.seed)),
            QuantizerKind::Fp8 { format } => Quantizer::Fp8(Fp8::fit(dim, format, rows)),
            QuantizerKind::Int4 => Quantizer::Int4(Int4::fit(dim, rows)),
            QuantizerKind::Alloc { bytes } => {
                Quantizer::Alloc(Box::new(Alloc::fit(dim, rows, bytes as usize, opts.seed)))
            }
            QuantizerKind::Learned { .. } => {
                panic!("learned codes are trained, not fitted: load the encoder file instead")
            }
        }
    }

    /// Checks that `kind` can be fitted on `rows` vectors of dimension `dim` (a budget too small
    /// for `alloc`, too few rows to calibrate it), so callers refuse clearly before
    /// [`Quantizer::fit`], which panics instead.
    pub fn check_fit(kind: QuantizerKind, dim: usize, rows: usize) -> Result<(), String> {
        match kind {
            QuantizerKind::Alloc { bytes } => {
                alloc::check(dim, rows, bytes as usize).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// The kind this quantizer was fitted as.
    pub fn kind(&self) -> QuantizerKind {
        match self {
            Quantizer::Sign(_) => QuantizerKind::Sign,
            Quantizer::Lattice(l) if l.bits == 1 => QuantizerKind::Rabitq,
            Quantizer::Lattice(l) => QuantizerKind::Residual { bits: l.bits as u8 },
            Quantizer::Int8(_) => QuantizerKind::Int8,
            Quantizer::Ternary(_) => QuantizerKind::Ternary,
            Quantizer::Fp8(q) => QuantizerKind::Fp8 { format: q.format },
            Quantizer::Int4(_) => QuantizerKind::Int4,
            Quantizer::Alloc(a) => QuantizerKind::Alloc {
                bytes: a
                    .report
                    .as_ref()
                    .map_or(a.row_bytes() + alloc::FACTOR_BYTES, |r| r.bytes)
                    as u32,
            },
            Quantizer::Learned(l) => QuantizerKind::Learned {
                bits: l.bits() as u8,
            },
        }
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        match self {
            Quantizer::Sign(q) => q.dim,
            Quantizer::Lattice(q) => q.dim,
            Quantizer::Int8(q) => q.dim,
            Quantizer::Ternary(q) => q.dim,
            Quantizer::Fp8(q) => q.dim,
            Quantizer::Int4(q) => q.dim,
            Quantizer::Alloc(q) => q.dim,
            Quantizer::Learned(q) => q.dim(),
        }
    }

    /// Bytes per row of the row-major byte codes (`int8`, `fp8`, `int4`); 0 for bit-plane codes.
    pub fn row_bytes(&self) -> usize {
        match self {
            Quantizer::Int8(q) => q.dim,
            Quantizer::Fp8(q) => q.dim,
            Quantizer::Int4(q) => q.row_bytes(),
            Quantizer::Alloc(q) => q.row_bytes(),
            _ => 0,
        }
    }

    /// Length of the byte codes of `rows` vectors: `rows · row_bytes()`, except `alloc`'s, which are
    /// stored in whole FastScan blocks of 32 rows.
    pub fn code_bytes_len(&self, rows: usize) -> usize {
        match self {
            Quantizer::Alloc(q) => q.code_len(rows),
            _ => rows * self.row_bytes(),
        }
    }

    /// The byte codes of `rows` (indices into `bytes`, which holds this quantizer's codes).
    pub fn gather_bytes(&self, bytes: &[i8], rows: &[usize]) -> Vec<i8> {
        if let Quantizer::Alloc(q) = self {
            let packed = q.gather(bytemuck::cast_slice(bytes), rows);
            return packed.into_iter().map(|b| b as i8).collect();
        }
        let rb = self.row_bytes();
        rows.iter()
            .flat_map(|&r| bytes[r * rb..(r + 1) * rb].iter().copied())
            .collect()
    }

    /// The byte codes of `a_len` rows followed by those of `b_len` rows.
    pub fn concat_bytes(&self, a: &[i8], a_len: usize, b: &[i8], b_len: usize) -> Vec<i8> {
        if let Quantizer::Alloc(q) = self {
            let (a, b) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
            let joined = q.concat(a, a_len, b, b_len);
            return joined.into_iter().map(|b| b as i8).collect();
        }
        [a, b].concat()
    }

    /// Encodes stored vectors (row-major).
    pub fn encode(&self, rows: &[f32]) -> Codes {
        match self {
            Quantizer::Sign(q) => q.encode(rows),
            Quantizer::Lattice(q) => q.encode(rows),
            Quantizer::Int8(q) => q.encode(rows),
            Quantizer::Ternary(q) => q.encode(rows),
            Quantizer::Fp8(q) => q.encode(rows),
            Quantizer::Int4(q) => q.encode(rows),
            Quantizer::Alloc(q) => q.encode(rows),
            Quantizer::Learned(q) => q.encode(rows),
        }
    }

    /// Prepares a query; `nonce` seeds the randomized rounding so results are reproducible.
    pub fn encode_query(&self, query: &[f32], mode: QueryMode, nonce: u64) -> QueryCode {
        self.encode_query_bits(query, mode, None, nonce)
    }

    /// [`Quantizer::encode_query`] with the asymmetric query's bits chosen (`None` = the
    /// quantizer's default: 4 for RaBitQ and ternary, 8 for multi-bit codes); ignored by sign and
    /// the byte codes (int8, fp8, int4).
    pub fn encode_query_bits(
        &self,
        query: &[f32],
        mode: QueryMode,
        query_bits: Option<usize>,
        nonce: u64,
    ) -> QueryCode {
        if let Quantizer::Lattice(q) = self {
            let bits = query_bits.unwrap_or_else(|| q.default_query_bits());
            return q.encode_query_bits(query, mode, bits, nonce);
        }
        match self {
            Quantizer::Sign(q) => q.encode_query(query),
            Quantizer::Lattice(q) => q.encode_query(query, mode, nonce),
            Quantizer::Int8(q) => q.encode_query(query),
            Quantizer::Ternary(q) => q.encode_query_bits(
                query,
                mode,
                query_bits.unwrap_or(ternary::QUERY_BITS),
                nonce,
            ),
            Quantizer::Fp8(q) => q.encode_query(query),
            Quantizer::Int4(q) => q.encode_query(query),
            Quantizer::Alloc(q) => q.encode_query(query),
            Quantizer::Learned(q) => {
                q.encode_query_bits(query, mode, query_bits.unwrap_or(lattice::QUERY_BITS_MULTI))
            }
        }
    }

    /// How [`Quantizer::score`] output ranks.
    pub fn ranking(&self) -> Ranking {
        match self {
            Quantizer::Sign(q) => Ranking::Distance { max: q.dim as u32 },
            _ => Ranking::Estimate,
        }
    }

    /// Scores the codes of blocks `blocks` (block `b` holds rows `8b..8b+8`) against `query`:
    /// Hamming distances into `dist` for [`Ranking::Distance`], estimates of `⟨x, q⟩` into `est`
    /// otherwise (`dist` is then scratch space). Both buffers hold one entry per row of the blocks.
    pub fn score(
        &self,
        codes: &CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        dist: &mut [u32],
        est: &mut [f32],
    ) {
        let k = crate::kernels::kernels();
        match self {
            Quantizer::Sign(_) => {
                let bw = codes.words * crate::BLOCK;
                let data = &codes.bits[blocks.start * bw..blocks.end * bw];
                (k.hamming_blocks)(&query.planes, data, codes.words, dist);
            }
            Quantizer::Lattice(q) => q.score(codes, query, blocks, dist, est),
            Quantizer::Int8(q) => q.score(codes, query, blocks, est),
            Quantizer::Ternary(q) => q.score(codes, query, blocks, dist, est),
            Quantizer::Fp8(q) => q.score(codes, query, blocks, est),
            Quantizer::Int4(q) => q.score(codes, query, blocks, est),
            Quantizer::Alloc(q) => q.score(codes, query, blocks, est),
            Quantizer::Learned(q) => q.score(codes, query, blocks, dist, est),
        }
    }

    /// The arithmetic computation effort of scoring one stored row (PokeBNN's ACE): each
    /// multiply-accumulate counted as the product of its operands' bit widths. A 1-bit code against
    /// a 4-bit query is `4·D'`; an `f32` weight against an FP8 byte is `32·8` per dimension; an
    /// `alloc` table sum counts every code bit as meeting an 8-bit table entry in each of its
    /// passes. `query_bits` as in
    /// [`Quantizer::encode_query_bits`].
    pub fn ace_per_row(&self, mode: QueryMode, query_bits: Option<usize>) -> u64 {
        let d = self.dim() as u64;
        let asym = |default: usize| match mode {
            QueryMode::Asymmetric => query_bits.unwrap_or(default) as u64,
            QueryMode::Symmetric => 0,
        };
        match self {
            Quantizer::Sign(_) => crate::layout::words_for(self.dim()) as u64 * 64,
            Quantizer::Lattice(l) => {
                let q = asym(l.default_query_bits());
                l.padded as u64 * l.bits as u64 * if q == 0 { l.bits as u64 } else { q }
            }
            Quantizer::Ternary(t) => {
                let q = asym(ternary::QUERY_BITS);
                t.padded as u64 * 2 * if q == 0 { 2 } else { q }
            }
            Quantizer::Int8(_) => d * 8 * 8,
            Quantizer::Fp8(_) => d * 8 * 32,
            Quantizer::Int4(_) => d * 4 * 32,
            Quantizer::Alloc(a) => a.row_bytes() as u64 * 8 * 8 * a.table_passes() as u64,
            Quantizer::Learned(l) => {
                let b = l.bits() as u64;
                let q = asym(lattice::QUERY_BITS_MULTI);
                l.words() as u64 * 64 * b * if q == 0 { b } else { q }
            }
        }
    }

    /// A similarity in `[-1, 1]`-like units for an integer distance (sign codes report
    /// `1 − 2·hamming/dim`, the cosine of ±1 codes).
    pub fn distance_to_score(&self, dist: u32) -> f32 {
        1.0 - 2.0 * dist as f32 / self.dim().max(1) as f32
    }

    /// Half-width of the error bound of the estimate of `⟨x, q⟩` for `row` (RaBitQ codes only):
    /// the true value lies within `estimate ± bound` with high probability (ε₀ = 1.9).
    pub fn error_bound(&self, codes: &CodesRef<'_>, query: &QueryCode, row: usize) -> Option<f32> {
        match self {
            Quantizer::Lattice(_) => codes.factors[Factor::Bound as usize]
                .get(row)
                .map(|b| b * query.centred_norm),
            _ => None,
        }
    }
}

/// `Σ a_i b_i` in f64, for fitting and tests.
pub(crate) fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Per-dimension mean of row-major `rows`.
pub(crate) fn mean(dim: usize, rows: &[f32]) -> Vec<f32> {
    let n = rows.len() / dim.max(1);
    let mut acc = vec![0f64; dim];
    for r in rows.chunks_exact(dim) {
        for (a, &x) in acc.iter_mut().zip(r) {
            *a += x as f64;
        }
    }
    acc.into_iter()
        .map(|a| if n > 0 { (a / n as f64) as f32 } else { 0.0 })
        .collect()
}
