//! The live manifest: `manifest.json` at version 2 (checksummed), and the names of the files
//! each generation writes, so that stale ones can be found and deleted. A manifest naming a frozen
//! log (a flush under way) is written as version 3, so that a bitseek from before background
//! flushes refuses it ("newer than this bitseek reads") instead of ignoring the frozen writes.

use super::config::{CollectionConfig, Durability, SegmentIndex, LIVE_VERSION, MAX_DIM};
use crate::error::{Fix, StoreError};
use crate::files::{plain_name, read_manifest_bytes, sync_dir, write_synced};
use crate::manifest::{parse_manifest, Manifest, PayloadsEntry, SegmentEntry, FORMAT, MANIFEST};
use bitseek_index::{Keep, Metric};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

/// The version written while a frozen log is named: readers that do not know `frozen_log` must
/// refuse the manifest rather than skip the writes in it.
pub const FLUSHING_VERSION: u32 = 3;

/// The log named by a version-2 manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    /// File name inside the collection directory.
    pub file: String,
    /// Every write up to this sequence number is in the segments.
    pub flushed_lsn: u64,
}

/// `manifest.json` at version 2 (a version-1 manifest reads as one with one segment, ids = rows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LiveManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`LIVE_VERSION`] (1 for a version-1 collection not yet written to).
    pub version: u32,
    /// Increases with every flush, compaction or quantizer change.
    pub generation: u64,
    /// Vector dimension.
    pub dim: usize,
    /// Live points in the segments.
    pub rows: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// The quantizer new segments are encoded with (its command-line name).
    pub quantizer: String,
    /// The rescoring copy kept next to the codes.
    pub keep: Keep,
    /// How acknowledged writes are made durable.
    #[serde(default)]
    pub durability: Durability,
    /// The sub-linear index big segments get (absent: flat).
    #[serde(default, skip_serializing_if = "SegmentIndex::is_flat")]
    pub index: SegmentIndex,
    /// Oldest first: a newer segment's copy of an id replaces an older one's.
    pub segments: Vec<SegmentEntry>,
    /// The tombstone file, when some segment has dead rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstones: Option<PayloadsEntry>,
    /// `None` only for a version-1 collection that has not been written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogEntry>,
    /// The log of the frozen memtable, while its segment is being written in the background:
    /// replayed before `log` on open. Absent when no flush is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_log: Option<LogEntry>,
    /// The caller's own metadata, stored as given.
    #[serde(default = "empty_object")]
    pub extra: Value,
    /// `xxh3:` and the xxh3-64 (16 hex digits) of the compact JSON of every other field, so a
    /// flipped digit (a sequence number, a row count) cannot pass for a valid manifest.
    #[serde(default)]
    pub checksum: String,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl LiveManifest {
    pub(super) fn from_v1(m: Manifest) -> LiveManifest {
        let segments = m
            .segments
            .into_iter()
            .map(|s| SegmentEntry {
                payloads: Some(m.payloads.clone()),
                ..s
            })
            .collect();
        LiveManifest {
            format: m.format,
            version: 1,
            generation: m.generation,
            dim: m.dim,
            rows: m.rows,
            metric: m.metric,
            quantizer: m.quantizer,
            keep: m.keep,
            durability: Durability::default(),
            index: SegmentIndex::default(),
            segments,
            tombstones: None,
            log: None,
            frozen_log: None,
            extra: m.extra,
            checksum: String::new(),
        }
    }

    /// Reads and checks `dir/manifest.json` (version 1 or 2).
    pub fn read(dir: &Path) -> Result<LiveManifest, StoreError> {
        let (path, bytes) = read_manifest_bytes(dir)?;
        Self::parse(&path, &bytes)
    }

    /// Parses manifest bytes read from `path`. Never panics, whatever the bytes.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<LiveManifest, StoreError> {
        let err = |reason: String, fix: Fix| StoreError::Manifest {
            path: path.to_owned(),
            reason,
            fix,
        };
        let bad = |reason: String| err(reason, Fix::Restore);
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON ({e})")))?;
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v < LIVE_VERSION as u64 => {
                return Ok(Self::from_v1(parse_manifest(path, bytes)?))
            }
            Some(v) if v == LIVE_VERSION as u64 || v == FLUSHING_VERSION as u64 => {}
            Some(v) => {
                return Err(err(
                    format!(
                        "collection format version {v} is newer than this bitseek reads ({FLUSHING_VERSION})"
                    ),
                    Fix::Upgrade,
                ))
            }
            None => return Err(bad("no collection format version".into())),
        }
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(format!(
                "format is not {FORMAT:?}; this is not a bitseek collection manifest"
            )));
        }
        let stored = value
            .get("checksum")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_owned();
        let computed = manifest_checksum(&value);
        if stored != computed {
            return Err(bad(format!(
                "checksum mismatch (stored {stored:?}, computed {computed:?})"
            )));
        }
        let mut m: LiveManifest = serde_json::from_value(value)
            .map_err(|e| bad(format!("does not describe a collection ({e})")))?;
        // Version 3 differs from 2 only by naming a frozen log; in memory both are the live format.
        m.version = LIVE_VERSION;
        if m.dim == 0 || m.dim > MAX_DIM {
            return Err(bad(format!("dimension {} is out of range", m.dim)));
        }
        let Some(log) = &m.log else {
            return Err(bad("a version-2 manifest must name its log".into()));
        };
        let mut names = vec![&log.file];
        if let Some(f) = &m.frozen_log {
            names.push(&f.file);
        }
        for s in &m.segments {
            let Some(p) = &s.payloads else {
                return Err(bad(format!("segment {} names no payload file", s.file)));
            };
            if p.rows != s.rows {
                return Err(bad(format!(
                    "segment {} has {} rows but its payload file {}",
                    s.file, s.rows, p.rows
                )));
            }
            names.push(&s.file);
            names.push(&p.file);
        }
        if let Some(t) = &m.tombstones {
            names.push(&t.file);
        }
        for f in names {
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

    /// Writes the manifest atomically (temporary file, fsync, rename, fsync of the directory).
    pub(super) fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let path = dir.join(MANIFEST);
        let cannot = |e: serde_json::Error| {
            StoreError::Internal(format!(
                "{}: the manifest cannot be serialised ({e})",
                path.display()
            ))
        };
        let mut value = serde_json::to_value(self).map_err(cannot)?;
        if self.frozen_log.is_some() {
            value["version"] = Value::from(FLUSHING_VERSION);
        }
        let sum = manifest_checksum(&value);
        value["checksum"] = Value::String(sum);
        let bytes = serde_json::to_vec_pretty(&value).map_err(cannot)?;
        write_synced(&path, &bytes)?;
        sync_dir(dir)
    }

    pub(super) fn config(&self) -> CollectionConfig {
        CollectionConfig {
            dim: self.dim,
            metric: self.metric,
            quantizer: self.quantizer.clone(),
            keep: self.keep,
            durability: self.durability,
            index: self.index,
        }
    }

    /// Every file the manifest names, itself included.
    pub fn files(&self) -> HashSet<String> {
        let mut out: HashSet<String> = [MANIFEST.to_string()].into();
        for s in &self.segments {
            out.insert(s.file.clone());
            if let Some(p) = &s.payloads {
                out.insert(p.file.clone());
            }
        }
        if let Some(t) = &self.tombstones {
            out.insert(t.file.clone());
        }
        for l in self.log.iter().chain(&self.frozen_log) {
            out.insert(l.file.clone());
        }
        out
    }
}

/// The checksum a version-2 manifest carries: xxh3 of the compact JSON without `checksum`.
fn manifest_checksum(value: &Value) -> String {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("checksum");
    }
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    format!("xxh3:{:016x}", xxh3_64(&bytes))
}

/// The generation in a file name this module writes (`seg-<g>.bitseek`, `payloads-<g>.jsonl`,
/// `tombstones-<g>.bin`, `wal-<g>.log`, and `.tmp` twins).
fn generation_in(name: &str) -> Option<u64> {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    [
        ("seg-", ".bitseek"),
        ("payloads-", ".jsonl"),
        ("tombstones-", ".bin"),
        ("wal-", ".log"),
    ]
    .iter()
    .find_map(|(p, s)| name.strip_prefix(p).and_then(|r| r.strip_suffix(s)))
    // `<g>` or `<g>-<i>` (the i-th segment a generation rewrote).
    .and_then(|g| g.split('-').next())
    .and_then(|g| g.parse().ok())
}

/// One past the newest generation named by the manifest or by any file in `dir`.
pub(super) fn next_generation(dir: &Path, m: &LiveManifest) -> u64 {
    let from_files = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| generation_in(&e.file_name().to_string_lossy()))
        .max()
        .unwrap_or(0);
    m.generation.max(from_files) + 1
}

/// Whether `name` is a segment's index built in the background (`seg-<g>-<kind>-<i>.bitseek`,
/// or its `.tmp` twin).
pub(super) fn is_build_file(name: &str) -> bool {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    name.strip_prefix("seg-")
        .and_then(|r| r.strip_suffix(".bitseek"))
        .is_some_and(|r| {
            let mut parts = r.split('-');
            parts.next().is_some_and(|g| g.parse::<u64>().is_ok())
                && parts
                    .next()
                    .is_some_and(|k| k.chars().all(|c| c.is_ascii_lowercase()) && !k.is_empty())
        })
}

/// Deletes files of this module's kinds that `keep` does not name. Best effort.
pub(super) fn remove_stale(dir: &Path, keep: &HashSet<String>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = generation_in(&name).is_some() || name == format!("{MANIFEST}.tmp");
        if ours && !keep.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
