//! What an index is built and searched with: metric, kept copy, build and search options, the
//! metadata stored in its file, and the hits it returns.

use bitseek_codes::quantizer::{
    Allocation, ByteFormat, FitOptions, Fp8Format, LearnedConfig, QuantizerKind, QueryMode,
    ScaleSearch,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The similarity an index ranks by, chosen at build time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity: vectors and queries are L2-normalised, then compared by dot product.
    Cosine,
    /// Inner product.
    Dot,
    /// Squared Euclidean distance (lower is better; hits are still returned best first).
    L2,
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            "l2" => Ok(Metric::L2),
            _ => Err(format!("unknown metric {s:?}: expected cosine, dot or l2")),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        })
    }
}

/// What the index keeps besides the codes, for rescoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The vectors as `f32` (exact rescoring, 4 bytes per dimension).
    F32,
    /// An `int8` copy (1 byte per dimension, near-exact rescoring).
    Int8,
    /// An FP8 (E4M3) copy with per-dimension scales (1 byte per dimension).
    Fp8,
    /// An `int4` copy (half a byte per dimension; coarser rescoring).
    Int4,
    /// Codes only: no rescoring.
    None,
}

impl FromStr for Keep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Keep::F32),
            "int8" => Ok(Keep::Int8),
            "fp8" => Ok(Keep::Fp8),
            "int4" => Ok(Keep::Int4),
            "none" => Ok(Keep::None),
            _ => Err(format!(
                "unknown --keep {s:?}: expected f32, int8, fp8, int4 or none"
            )),
        }
    }
}

impl Keep {
    /// The byte format of the kept copy, for the copies that are quantized.
    pub fn byte_format(self) -> Option<ByteFormat> {
        match self {
            Keep::Int8 => Some(ByteFormat::Int8),
            Keep::Fp8 => Some(ByteFormat::Fp8(Fp8Format::E4m3)),
            Keep::Int4 => Some(ByteFormat::Int4),
            Keep::F32 | Keep::None => None,
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Keep::F32 => "f32",
            Keep::Int8 => "int8",
            Keep::Fp8 => "fp8",
            Keep::Int4 => "int4",
            Keep::None => "none",
        })
    }
}

/// The codes to build, as a user names them (`--quantizer`, or `quantizer=` in Python): a family
/// fitted at build time (`rabitq`, `sign`, ...), or an encoder trained by `bitseek train`
/// (`learned:FILE`). [`Index::build_choice`](super::Index::build_choice) builds either.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantizerChoice {
    /// A quantizer family, fitted to the vectors.
    Kind(QuantizerKind),
    /// The encoder file written by `bitseek train --out`.
    Learned(PathBuf),
    /// The fitted format with the best raw recall within this many bytes per vector, found by
    /// [`tune`](crate::tune::tune) on a calibration split of the vectors.
    Auto(usize),
}

impl FromStr for QuantizerChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(bytes) = s.strip_prefix("auto:") {
            return match bytes.parse::<usize>() {
                Ok(b) if b > 0 => Ok(QuantizerChoice::Auto(b)),
                _ => Err(format!(
                    "auto:{bytes}: the budget must be a positive number of bytes per vector, e.g. auto:64"
                )),
            };
        }
        match s.strip_prefix("learned:") {
            Some("") => Err("learned: needs the encoder file written by `bitseek train --out`, e.g. learned:enc.bitseek".into()),
            Some(path) => Ok(QuantizerChoice::Learned(PathBuf::from(path))),
            None => s.parse().map(QuantizerChoice::Kind).map_err(|e| format!("{e}, learned:ENCODER_FILE or auto:BYTES")),
        }
    }
}

/// Build-time choices.
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    /// The code family to fit.
    pub quantizer: QuantizerKind,
    /// The similarity to rank by; cosine normalises vectors first.
    pub metric: Metric,
    /// What to keep besides the codes, for rescoring.
    pub keep: Keep,
    /// Seed of the fit's random choices (rotations), so a rebuild gives the same codes.
    pub seed: u64,
    /// How lattice codes pick their per-vector scale.
    pub scale_search: ScaleSearch,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            quantizer: QuantizerKind::Rabitq,
            metric: Metric::Cosine,
            keep: Keep::F32,
            seed: FitOptions::default().seed,
            scale_search: ScaleSearch::Optimal,
        }
    }
}

/// The metadata document stored in the index file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// `"bitseek-flat"`, `"bitseek-ivf"` when the file also holds an inverted file, or
    /// `"bitseek-graph"` when it holds a proximity graph.
    pub kind: String,
    /// Values per vector.
    pub dim: usize,
    /// Vectors in the index.
    pub rows: usize,
    /// The similarity the index ranks by; queries must use it too.
    pub metric: Metric,
    /// The code family.
    pub quantizer: QuantizerKind,
    /// What the index keeps for rescoring.
    pub keep: Keep,
    /// The build's seed (see [`BuildOptions::seed`]).
    pub seed: u64,
    /// The build's scale search (see [`BuildOptions::scale_search`]).
    pub scale_search: ScaleSearch,
    /// Bit-planes of the codes (0 for int8 codes).
    pub planes: usize,
    /// 64-bit words per bit-plane (0 for int8 codes).
    pub words: usize,
    /// Number of per-vector factor arrays.
    pub factors: usize,
    /// Version of bitseek that wrote the file.
    pub written_by: String,
    /// Shape of the trained encoder (learned codes only; its weights are `q.learned.*` sections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<LearnedConfig>,
    /// The widths `alloc` codes chose and the calibration behind them (its fitted axes are
    /// `q.*` sections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<Allocation>,
    /// Why `auto:BYTES` chose this format: every candidate's measurements on the calibration split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<crate::tune::Tuning>,
    /// The inverted file over RaBitQ codes (`kind: bitseek-ivf` only; its arrays are `ivf.*`
    /// sections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivf: Option<crate::ivf::IvfMeta>,
    /// The proximity graph over RaBitQ codes (`kind: bitseek-graph` only; its arrays are
    /// `graph.*` sections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<crate::graph::GraphMeta>,
}

/// Search-time choices.
#[derive(Clone, Copy, Debug)]
pub struct SearchParams {
    /// Hits per query.
    pub k: usize,
    /// Candidates taken from the codes per hit, when rescoring.
    pub oversample: usize,
    /// Rescore candidates from the kept copy (ignored when the index keeps none).
    pub rescore: bool,
    /// Asymmetric (quantized float query) or symmetric (code vs code) scoring for lattice codes.
    pub mode: QueryMode,
    /// Bits of the asymmetric query for lattice codes; `None` = 4 for `rabitq`, 8 for `residualB`.
    pub query_bits: Option<usize>,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            k: 10,
            oversample: 1,
            rescore: true,
            mode: QueryMode::Asymmetric,
            query_bits: None,
        }
    }
}

/// Largest `k × oversample` a search accepts (a guard against accidental huge requests).
pub const MAX_CANDIDATES: usize = 1 << 20;

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// The vector's id.
    pub id: u64,
    /// Cosine similarity, dot product or squared L2 distance (exact when rescored, estimated
    /// otherwise; sign codes without rescoring report `1 − 2·hamming/dim`).
    pub score: f32,
    /// Half-width of the estimate's error bound (RaBitQ-family codes, not rescored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<f32>,
}
