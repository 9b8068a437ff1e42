//! What a live collection is configured with, and the values its API takes and returns.

use crate::error::StoreError;
use crate::filter::Filter;
use bitseek_codes::quantizer::QuantizerKind;
use bitseek_index::graph::{DEFAULT_DEGREE, MAX_DEGREE};
use bitseek_index::{BuildOptions, Keep, Metric};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The manifest version of live collections (version 1, one segment whose ids are its rows, is
/// still read).
pub const LIVE_VERSION: u32 = 2;
/// Memtable rows that trigger a flush into a new segment, unless [`DbOptions`] says otherwise.
pub const DEFAULT_FLUSH_ROWS: usize = 20_000;
/// Largest grouped-commit window accepted, in milliseconds.
pub const MAX_WINDOW_MS: u64 = 10_000;
/// Largest vector dimension a collection accepts.
pub const MAX_DIM: usize = 65_536;
/// Oversampling used when a request does not say (candidates per hit taken from the codes
/// before rescoring from the kept copy).
pub const DEFAULT_OVERSAMPLE: f32 = 4.0;

/// Rows at or above which a segment gets its sub-linear index, unless the configuration says.
pub const DEFAULT_INDEX_MIN_ROWS: usize = 10_000;
/// Smallest `min_rows` accepted: an IVF needs at least one full block of 32 rows per list.
pub const MIN_INDEX_ROWS: usize = 64;

/// The index a segment gets once it holds [`SegmentIndex::min_rows`] rows. Every kind keeps the
/// flat codes too, so a segment is searched flat until its index is built.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Every code scanned (the default).
    #[default]
    Flat,
    /// An inverted file over RaBitQ codes ([`bitseek_index::ivf`]): `effort` lists probed.
    Ivf,
    /// A proximity graph over RaBitQ codes ([`bitseek_index::graph`], degree
    /// [`bitseek_index::graph::DEFAULT_DEGREE`]): a beam `effort` wide walked through it.
    /// Immutable like every segment; deletes and filters are the allowed-rows mask the walk
    /// passes through.
    Graph,
}

impl IndexKind {
    /// The name used in configurations and file names.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Flat => "flat",
            IndexKind::Ivf => "ivf",
            IndexKind::Graph => "graph",
        }
    }
}

fn default_min_rows() -> usize {
    DEFAULT_INDEX_MIN_ROWS
}

/// Which sub-linear index segments get, and from what size. Smaller segments and the memtable
/// stay flat: below a few thousand rows a scan is as fast as probing lists.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SegmentIndex {
    /// `"flat"` (default), `"ivf"` or `"graph"`.
    #[serde(default)]
    pub kind: IndexKind,
    /// Segments with at least this many rows get the index (default
    /// [`DEFAULT_INDEX_MIN_ROWS`], at least [`MIN_INDEX_ROWS`]).
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
    /// Neighbours per node of a `"graph"` segment: a multiple of 32 up to
    /// [`bitseek_index::graph::MAX_DEGREE`] (default [`bitseek_index::graph::DEFAULT_DEGREE`]).
    /// A wider graph reaches higher recall at the same effort and costs more bytes and build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degree: Option<usize>,
}

impl Default for SegmentIndex {
    fn default() -> Self {
        SegmentIndex {
            kind: IndexKind::Flat,
            min_rows: DEFAULT_INDEX_MIN_ROWS,
            degree: None,
        }
    }
}

impl SegmentIndex {
    /// Whether this is the default (flat), which manifests leave out.
    pub fn is_flat(&self) -> bool {
        self.kind == IndexKind::Flat
    }
}

/// How acknowledged writes are made durable.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Durability {
    /// `fsync` of the log before every acknowledgement (the default).
    #[default]
    Fsync,
    /// Grouped commit: a write is acknowledged after the next shared `fsync`, which the first
    /// waiting writer issues `window_ms` after it arrives; every write that arrived meanwhile
    /// shares it. Acknowledged writes are as durable as with `Fsync`; latency grows by up to the
    /// window, `fsync`s per second fall to at most `1000 / window_ms`.
    Grouped {
        /// How long the first waiting writer waits before the shared `fsync`, in milliseconds.
        window_ms: u64,
    },
}

fn default_quantizer() -> String {
    "rabitq".into()
}
fn default_keep() -> Keep {
    Keep::F32
}

/// What a collection holds and how it is encoded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CollectionConfig {
    /// Vector dimension, 1 to [`MAX_DIM`].
    pub dim: usize,
    /// `"cosine"`, `"dot"` or `"l2"`.
    pub metric: Metric,
    /// `"rabitq"` (default), `"sign"`, `"residual2"`…`"residual8"`, `"ternary"`, `"int4"`, `"fp8"`,
    /// `"fp8-e5m2"`, `"int8"`.
    #[serde(default = "default_quantizer")]
    pub quantizer: String,
    /// The rescoring copy: `"f32"` (default), `"int8"`, `"fp8"`, `"int4"` or `"none"`.
    #[serde(default = "default_keep")]
    pub keep: Keep,
    /// How acknowledged writes are made durable (default: `fsync` before every acknowledgement).
    #[serde(default)]
    pub durability: Durability,
    /// The sub-linear index big segments get, built in the background (default: none, flat).
    #[serde(default, skip_serializing_if = "SegmentIndex::is_flat")]
    pub index: SegmentIndex,
}

impl CollectionConfig {
    pub(super) fn build_options(&self, quantizer: &str) -> Result<BuildOptions, StoreError> {
        let kind = parse_quantizer(quantizer)?;
        Ok(BuildOptions {
            quantizer: kind,
            metric: self.metric,
            keep: self.keep,
            ..BuildOptions::default()
        })
    }

    pub(super) fn validate(&self) -> Result<(), StoreError> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(StoreError::Input(format!(
                "dimension {} is out of range; give 1 to {MAX_DIM}",
                self.dim
            )));
        }
        parse_quantizer(&self.quantizer)?;
        if !self.index.is_flat() {
            if self.keep != Keep::F32 {
                return Err(StoreError::Input(format!(
                    "index {:?} is built in the background from the kept f32 vectors, but keep is \"{}\"; use keep \"f32\", or index \"flat\"",
                    self.index.kind.name(),
                    self.keep
                )));
            }
            if self.index.min_rows < MIN_INDEX_ROWS {
                return Err(StoreError::Input(format!(
                    "index min_rows {} is too small; give at least {MIN_INDEX_ROWS} (smaller segments are scanned as fast as they are probed)",
                    self.index.min_rows
                )));
            }
        }
        if let Some(degree) = self.index.degree {
            if self.index.kind != IndexKind::Graph {
                return Err(StoreError::Input(format!(
                    "index degree {degree} applies to graph segments only, but index kind is {:?}; drop degree, or use kind \"graph\"",
                    self.index.kind.name()
                )));
            }
            if degree == 0 || !degree.is_multiple_of(32) || degree > MAX_DEGREE {
                return Err(StoreError::Input(format!(
                    "index degree {degree} is out of range; give a multiple of 32 up to {MAX_DEGREE} (default {DEFAULT_DEGREE})"
                )));
            }
        }
        if let Durability::Grouped { window_ms } = self.durability {
            if window_ms == 0 || window_ms > MAX_WINDOW_MS {
                return Err(StoreError::Input(format!(
                    "grouped commit window {window_ms} ms is out of range; give 1 to {MAX_WINDOW_MS}"
                )));
            }
        }
        Ok(())
    }
}

pub(super) fn parse_quantizer(name: &str) -> Result<QuantizerKind, StoreError> {
    if name.starts_with("auto:") {
        // auto builds every format on a calibration split; segments are built per flush.
        return Err(StoreError::Input(format!(
            "{name:?}: auto searches every format on a calibration split when an index is built,              but a collection builds small segments as points arrive; run `bitseek tune` on a              sample offline and give its winner (rabitq, ternary, int4, fp8, int8, ...)"
        )));
    }
    let kind: QuantizerKind = name.parse().map_err(|e| {
        StoreError::Input(format!(
            "{e}; collections take rabitq, sign, residual2..residual8, ternary, int4, fp8, fp8-e5m2 or int8"
        ))
    })?;
    if let QuantizerKind::Alloc { .. } = kind {
        // alloc calibrates on each build and refuses small ones; a collection builds a segment
        // per flush, however few its points.
        return Err(StoreError::Input(format!(
            "{name:?}: alloc codes calibrate on each build and need many rows, but a collection \
             builds small segments as points arrive; use a fixed format (rabitq, ternary, int4, \
             fp8, int8, ...), or `bitseek tune` offline to pick one"
        )));
    }
    Ok(kind)
}

/// A point to insert or replace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// The caller's id; a point with the same id replaces this one.
    pub id: u64,
    /// The vector, of the collection's dimension.
    pub vector: Vec<f32>,
    /// Any JSON value, returned with hits and matched by filters (default `null`).
    #[serde(default)]
    pub payload: Value,
}

/// A stored point as [`LiveCollection::get`](super::LiveCollection::get) returns it; `vector` is `None` unless the collection
/// keeps an `f32` copy (it is the stored vector: normalised under cosine).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Record {
    /// The point's id.
    pub id: u64,
    /// The stored vector, when the collection keeps an `f32` copy.
    pub vector: Option<Vec<f32>>,
    /// The point's payload.
    pub payload: Value,
}

/// A search's parameters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Hits per query.
    pub k: usize,
    /// Candidates taken from the codes per hit before rescoring (default
    /// [`DEFAULT_OVERSAMPLE`]; ignored without a kept copy).
    #[serde(default)]
    pub oversample: Option<f32>,
    /// Only points whose payload passes come back (default: every point).
    #[serde(default)]
    pub filter: Option<Filter>,
    /// The one speed/recall knob of segments that carry a sub-linear index (lists probed for an
    /// IVF; `None` = the index's default). At least 1; flat segments and the memtable, which
    /// score every row, ignore it.
    #[serde(default)]
    pub effort: Option<usize>,
}

/// One hit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScoredPoint {
    /// The point's id.
    pub id: u64,
    /// Cosine similarity or dot product (higher is better) or squared L2 distance (lower is
    /// better); exact when rescored from an `f32` copy or found in the memtable.
    pub score: f32,
    /// The point's payload.
    pub payload: Value,
}

/// A collection's state as [`LiveCollection::info`](super::LiveCollection::info) reports it.
#[derive(Clone, Debug, Serialize)]
pub struct CollectionInfo {
    /// The collection's name.
    pub name: String,
    /// What it holds and how it is encoded.
    pub config: CollectionConfig,
    /// Live points.
    pub points: usize,
    /// Segments on disk.
    pub segments: usize,
    /// Records in the write-ahead log (writes since the memtable was last frozen or flushed).
    pub wal_records: usize,
    /// Rows in the memtable (live or replaced since).
    pub memtable_rows: usize,
    /// Rows in the frozen memtable whose segment is being written in the background (0 when
    /// no flush is under way).
    pub flushing_rows: usize,
    /// The current generation (one more with every flush, compaction or quantizer change).
    pub generation: u64,
    /// Bytes of the collection's files on disk.
    pub size_bytes: u64,
    /// The sequence number of the last acknowledged write.
    pub last_lsn: u64,
    /// What opening had to repair (a cut log tail, damaged log bytes skipped), in words; empty
    /// when nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<String>,
    /// The writes opening found lost to damage in the middle of the log, by sequence number, in
    /// order; empty when none. Reported until the next flush starts a new log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_writes: Vec<LostWrites>,
    /// Why the collection refuses writes (a log `fsync` or a manifest swap failed), when it does;
    /// the next write retries writing its state into new files and clears this once that works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    /// Each segment's index kind, oldest first (`"flat"` until its index is swapped in); only
    /// for collections configured with a sub-linear index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segment_indexes: Vec<String>,
}

/// Acknowledged writes lost to damage in the log: sequence numbers `first_lsn..=last_lsn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LostWrites {
    /// The first lost sequence number.
    pub first_lsn: u64,
    /// The last lost sequence number.
    pub last_lsn: u64,
}

/// What [`LiveCollection::compact`](super::LiveCollection::compact) did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CompactReport {
    /// The generation compaction made.
    pub generation: u64,
    /// Segments before.
    pub segments_before: usize,
    /// Segments after.
    pub segments_after: usize,
    /// Rows stored (live and dead, memtable included) before and after.
    pub rows_before: usize,
    /// Rows stored after.
    pub rows_after: usize,
    /// Bytes of the collection's files before.
    pub bytes_before: u64,
    /// Bytes of the collection's files after.
    pub bytes_after: u64,
}

/// Options of a [`Db`](super::Db).
#[derive(Clone, Copy, Debug)]
pub struct DbOptions {
    /// Memtable rows that trigger a flush into a new segment.
    pub flush_rows: usize,
    /// Whether a full memtable is frozen and flushed by a background thread while writes go on
    /// into a new one (the default), or flushed by the write that finds it full, holding the
    /// writer meanwhile (`false`: the behaviour before background flushes, kept to measure
    /// against).
    pub background_flush: bool,
}

impl Default for DbOptions {
    /// [`DEFAULT_FLUSH_ROWS`], background flushes.
    fn default() -> Self {
        DbOptions {
            flush_rows: DEFAULT_FLUSH_ROWS,
            background_flush: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_take_the_fixed_formats_by_name_and_refuse_alloc() {
        for name in ["ternary", "int4", "fp8", "fp8-e5m2", "rabitq"] {
            assert_eq!(parse_quantizer(name).unwrap().to_string(), name);
        }
        let e = parse_quantizer("auto:64").unwrap_err().to_string();
        assert!(e.contains("auto:64") && e.contains("bitseek tune"), "{e}");
        let e = parse_quantizer("alloc:64").unwrap_err().to_string();
        assert!(
            e.contains("alloc codes calibrate") && e.contains("fixed format"),
            "{e}"
        );
        let e = parse_quantizer("fp16").unwrap_err().to_string();
        assert!(e.contains("ternary"), "{e}");
    }
}
