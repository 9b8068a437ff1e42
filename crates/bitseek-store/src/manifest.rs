//! `manifest.json` at version 1, the format both kinds of collection share: which segment and
//! payload files make up the current generation, and how it was built.

use crate::db::LIVE_VERSION;
use crate::error::{Fix, StoreError};
use crate::files::plain_name;
use bitseek_index::{Keep, Metric};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The value of the manifest's `format` field.
pub const FORMAT: &str = "bitseek-collection";
/// The manifest version a [`GenerationCollection`](crate::GenerationCollection) writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name inside a collection directory.
pub const MANIFEST: &str = "manifest.json";

/// One segment named by the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SegmentEntry {
    /// File name inside the collection directory.
    pub file: String,
    /// Rows in the segment.
    pub rows: usize,
    /// The segment's own payload file (version 2; version 1 has one payload file per manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payloads: Option<PayloadsEntry>,
}

/// The payload file named by the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PayloadsEntry {
    /// File name inside the collection directory.
    pub file: String,
    /// Lines (one JSON value per row).
    pub rows: usize,
    /// xxh3-64 of the file's bytes, 16 lowercase hex digits.
    pub xxh3: String,
}

/// `manifest.json`: which files make up the current generation, and how it was built.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] for manifests this code writes.
    pub version: u32,
    /// Increases by one with every replacement.
    pub generation: u64,
    /// Vector dimension.
    pub dim: usize,
    /// Rows in the collection.
    pub rows: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// The quantizer's command-line name (`rabitq`, `sign`, `residual2`, …).
    pub quantizer: String,
    /// The rescoring copy kept next to the codes.
    pub keep: Keep,
    /// The segments, in row order (exactly one in version 1, none when `rows` is 0).
    pub segments: Vec<SegmentEntry>,
    /// The payload file, one JSON value per row.
    pub payloads: PayloadsEntry,
    /// The payload file's row-offset table (`row_offsets.rs`): where each row's line starts.
    /// Absent in generations written before it (their lines are found by scanning the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_offsets: Option<PayloadsEntry>,
    /// The caller's own metadata, stored as given.
    pub extra: serde_json::Value,
}

/// Parses and checks version-1 manifest bytes read from `path`. Never panics, whatever the bytes.
pub(crate) fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, StoreError> {
    let err = |reason: String, fix: Fix| StoreError::Manifest {
        path: path.to_owned(),
        reason,
        fix,
    };
    let bad = |reason: String| err(reason, Fix::Rebuild);
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        other => {
            return Err(bad(format!(
            "format is {other:?}, expected {FORMAT:?}; this is not a bitseek collection manifest"
        )))
        }
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => {}
        Some(v) if v == LIVE_VERSION as u64 => {
            return Err(err(
                format!(
                "a live collection (format version {v}, with a write-ahead log), not a code index"
            ),
                Fix::Serve,
            ))
        }
        Some(v) if v > VERSION as u64 => {
            return Err(err(
                format!(
                    "collection format version {v} is newer than this bitseek reads ({VERSION})"
                ),
                Fix::Upgrade,
            ))
        }
        other => return Err(bad(format!("unknown collection format version {other:?}"))),
    }
    let m: Manifest = serde_json::from_value(value)
        .map_err(|e| bad(format!("does not describe a collection ({e})")))?;
    if m.dim == 0 {
        return Err(bad("dimension 0".into()));
    }
    if m.segments.len() > 1 {
        return Err(err(
            format!(
                "{} segments; this version of bitseek reads collections of one segment",
                m.segments.len()
            ),
            Fix::Upgrade,
        ));
    }
    let seg_rows: usize = m.segments.iter().map(|s| s.rows).sum();
    if seg_rows != m.rows || m.payloads.rows != m.rows || (m.rows > 0) == m.segments.is_empty() {
        return Err(bad(format!(
            "{} rows, but the segments hold {seg_rows} and the payloads {}",
            m.rows, m.payloads.rows
        )));
    }
    if let Some(o) = &m.payload_offsets {
        if o.rows != m.rows {
            return Err(bad(format!(
                "{} rows, but the row-offset table holds {}",
                m.rows, o.rows
            )));
        }
    }
    for f in m
        .segments
        .iter()
        .map(|s| &s.file)
        .chain([&m.payloads.file])
        .chain(m.payload_offsets.as_ref().map(|o| &o.file))
    {
        if !plain_name(f) {
            return Err(bad(format!(
                "file name {f:?} is not a plain file name in the collection directory"
            )));
        }
    }
    if !m.extra.is_object() {
        return Err(bad("extra is not a JSON object".into()));
    }
    Ok(m)
}
