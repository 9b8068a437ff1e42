//! Live collections: upserts, deletes and searches on a collection directory that survives
//! crashes, with many readers and one writer.
//!
//! A live collection is the same directory as a code-search collection (see the crate docs), at
//! manifest version 2:
//!
//! ```text
//! manifest.json         version 2: {"segments": [{"file", "rows", "payloads": {"file", "rows", "xxh3"}}],
//!                       "tombstones": {"file", "rows", "xxh3"} | absent, "log": {"file", "flushed_lsn"},
//!                       "durability", "checksum": "xxh3:…" (of the compact JSON of the rest), …}
//! seg-<g>.bitseek       an immutable segment (bitseek-index file: codes, external u64 ids sorted,
//!                       the kept rescoring copy), written by generation g (seg-<g>-<i>.bitseek:
//!                       segment i rewritten without its dead rows by a compaction under keep
//!                       int8/none)
//! payloads-<g>.jsonl    its payloads, one JSON value per row in row (= id) order
//! tombstones-<g>.bin    the dead rows of every segment as of generation g (deleted or replaced)
//! wal-<g>.log           the write-ahead log of everything acknowledged since generation g
//! ```
//!
//! **Writes** go to the log first ([`crate::wal`]), are made durable ([`Durability`]), then land
//! in the *memtable* (an in-memory list of batches, searched exactly) and mark older copies of the
//! same ids dead in per-segment live bitmasks. Once the memtable holds [`DbOptions::flush_rows`]
//! rows, the next write first *flushes* it into a new segment: new segment, payload, tombstone and
//! empty log files are written and synced, then the manifest is swapped (temporary file, fsync,
//! rename, fsync of the directory), and only then are files of older generations deleted. A crash
//! at any point leaves either the old generation with its full log or the new one.
//!
//! **Reads** take the current [`Snapshot`] (an `Arc` swapped by the writer; the lock guarding it
//! is held only to clone the `Arc`), so a search never waits for a write, a flush or a
//! compaction, and always sees one consistent state. Deleted and filtered-out rows are removed
//! inside the scan ([`bitseek_index::Index::search_batch_allowed`]), so `k` hits come back
//! whenever `k` live rows pass the filter.
//!
//! **Compaction** (and a quantizer change) rewrites every live point from the kept `f32` copy into
//! one segment, holding the writer lock meanwhile (writes wait; searches do not). Filters name
//! payload fields; each segment indexes a field's values on first use, so a filter costs a few
//! lookups rather than a JSON comparison per row.
//!
//! **Opening** replays the log on top of the manifest's segments. A log whose tail is torn (a
//! record cut short, failing its checksum, or zero-filled) is cut at the last good record; what
//! was cut is reported in [`CollectionInfo::recovery`].

use crate::filter::Filter;
use crate::wal::{self, Op};
use crate::{
    parse_manifest, plain_name, sync_dir, write_synced, Manifest, PayloadsEntry, SegmentEntry,
    StoreError, FORMAT, MANIFEST,
};
use bitseek_codes::quantizer::QuantizerKind;
use bitseek_index::input::Vectors;
use bitseek_index::vector::{check_row, dot, normalize};
use bitseek_index::{BuildOptions, Index, IndexError, Keep, Metric, SearchParams, VectorBatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use xxhash_rust::xxh3::xxh3_64;

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

const TOMB_MAGIC: &[u8; 8] = b"BSTOMB01";
/// Memtable batches kept apart before they are merged into one.
const MAX_MEM_BATCHES: usize = 64;

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
    Grouped { window_ms: u64 },
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
    pub dim: usize,
    /// `"cosine"`, `"dot"` or `"l2"`.
    pub metric: Metric,
    /// `"rabitq"` (default), `"sign"`, `"residual2"`…`"residual8"`, `"int8"`.
    #[serde(default = "default_quantizer")]
    pub quantizer: String,
    /// The rescoring copy: `"f32"` (default), `"int8"` or `"none"`.
    #[serde(default = "default_keep")]
    pub keep: Keep,
    #[serde(default)]
    pub durability: Durability,
}

impl CollectionConfig {
    fn build_options(&self, quantizer: &str) -> Result<BuildOptions, StoreError> {
        let kind = parse_quantizer(quantizer)?;
        Ok(BuildOptions {
            quantizer: kind,
            metric: self.metric,
            keep: self.keep,
            ..BuildOptions::default()
        })
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(StoreError::Input(format!(
                "dimension {} is out of range; give 1 to {MAX_DIM}",
                self.dim
            )));
        }
        parse_quantizer(&self.quantizer)?;
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

fn parse_quantizer(name: &str) -> Result<QuantizerKind, StoreError> {
    let kind: QuantizerKind = name.parse().map_err(|e| {
        StoreError::Input(format!(
            "{e}; collections take rabitq, sign, residual2..residual8 or int8"
        ))
    })?;
    if name.starts_with("learned") {
        return Err(StoreError::Input(format!(
            "quantizer {name:?} is built from an encoder file and cannot be fitted by a collection; \
             use rabitq, sign, residualB or int8"
        )));
    }
    Ok(kind)
}

/// A point to insert or replace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    pub id: u64,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: Value,
}

/// A stored point as [`Collection::get`] returns it; `vector` is `None` unless the collection
/// keeps an `f32` copy (it is the stored vector: normalised under cosine).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Record {
    pub id: u64,
    pub vector: Option<Vec<f32>>,
    pub payload: Value,
}

/// A search's parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Hits per query.
    pub k: usize,
    /// Candidates taken from the codes per hit before rescoring (default
    /// [`DEFAULT_OVERSAMPLE`]; ignored without a kept copy).
    #[serde(default)]
    pub oversample: Option<f32>,
    #[serde(default)]
    pub filter: Option<Filter>,
}

/// One hit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScoredPoint {
    pub id: u64,
    /// Cosine similarity or dot product (higher is better) or squared L2 distance (lower is
    /// better); exact when rescored from an `f32` copy or found in the memtable.
    pub score: f32,
    pub payload: Value,
}

/// A collection's state as [`Collection::info`] reports it.
#[derive(Clone, Debug, Serialize)]
pub struct CollectionInfo {
    pub name: String,
    pub config: CollectionConfig,
    /// Live points.
    pub points: usize,
    pub segments: usize,
    /// Records in the write-ahead log (writes since the last flush).
    pub wal_records: usize,
    pub generation: u64,
    /// Bytes of the collection's files on disk.
    pub size_bytes: u64,
    /// The sequence number of the last acknowledged write.
    pub last_lsn: u64,
    /// What opening had to repair (a cut log tail), in words; empty when nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<String>,
}

/// What [`Collection::compact`] did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CompactReport {
    pub generation: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Rows stored (live and dead, memtable included) before and after.
    pub rows_before: usize,
    pub rows_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// What an HTTP layer maps errors to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    BadInput,
    Internal,
}

impl StoreError {
    /// The class of the error: the caller's fault (`BadInput`), a name that is or is not there
    /// (`NotFound`, `Conflict`) or the store's (`Internal`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::UnknownCollection { .. } | StoreError::NotFound { .. } => {
                ErrorKind::NotFound
            }
            StoreError::AlreadyExists { .. } => ErrorKind::Conflict,
            StoreError::Input(_) | StoreError::Refused(_) => ErrorKind::BadInput,
            StoreError::Index(
                IndexError::Input(_)
                | IndexError::DimensionMismatch { .. }
                | IndexError::NonFiniteQuery { .. }
                | IndexError::ZeroQuery { .. }
                | IndexError::BadParam(_),
            ) => ErrorKind::BadInput,
            _ => ErrorKind::Internal,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Options of a [`Db`].
#[derive(Clone, Copy, Debug)]
pub struct DbOptions {
    /// Memtable rows that trigger a flush into a new segment.
    pub flush_rows: usize,
}

impl Default for DbOptions {
    /// [`DEFAULT_FLUSH_ROWS`], or the environment variable `BITSEEK_FLUSH_ROWS` when it holds a
    /// positive number (the crash test sets it low so that flushes happen under fire).
    fn default() -> Self {
        let flush_rows = std::env::var("BITSEEK_FLUSH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(DEFAULT_FLUSH_ROWS);
        DbOptions { flush_rows }
    }
}

/// A directory of named collections (`<root>/<name>/`), locked against a second process.
///
/// Thread-safe: every method takes `&self`.
pub struct Db {
    root: PathBuf,
    options: DbOptions,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    /// Serialises create and drop.
    admin: Mutex<()>,
    /// Held (locked) while the database is open.
    _lock: File,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("root", &self.root).finish()
    }
}

/// Collection names: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::Input(format!(
            "collection name {name:?} is invalid; use 1 to 64 of A-Z, a-z, 0-9, _ and -"
        )))
    }
}

impl Db {
    /// Opens (creating it if missing) the database in `root` with default options.
    pub fn open(root: &Path) -> Result<Db, StoreError> {
        Db::open_with(root, DbOptions::default())
    }

    /// Opens the database in `root`: takes its lock file and opens every collection in it,
    /// replaying their logs. Directories with names that are not collection names are ignored;
    /// a directory without a manifest is an unfinished create and is ignored too.
    pub fn open_with(root: &Path, options: DbOptions) -> Result<Db, StoreError> {
        if options.flush_rows == 0 {
            return Err(StoreError::Input("flush_rows must be at least 1".into()));
        }
        fs::create_dir_all(root).map_err(io_err(root))?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Input(format!(
                "{} is in use by another bitseek process; stop it or choose another data directory",
                root.display()
            )))
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let mut collections = BTreeMap::new();
        let mut names: Vec<String> = fs::read_dir(root)
            .map_err(io_err(root))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        for name in names {
            let dir = root.join(&name);
            if !dir.join(MANIFEST).exists() {
                continue;
            }
            let c = Collection::open_named(&dir, &name, options)?;
            collections.insert(name, Arc::new(c));
        }
        Ok(Db {
            root: root.to_owned(),
            options,
            collections: RwLock::new(collections),
            admin: Mutex::new(()),
            _lock: lock,
        })
    }

    /// The database directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates an empty collection; `AlreadyExists` if the name is taken.
    pub fn create(
        &self,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Arc<Collection>, StoreError> {
        check_name(name)?;
        config.validate()?;
        let _admin = lock(&self.admin)?;
        if self.read_map()?.contains_key(name) {
            return Err(StoreError::AlreadyExists { name: name.into() });
        }
        let dir = self.root.join(name);
        if dir.join(MANIFEST).exists() {
            return Err(StoreError::AlreadyExists { name: name.into() });
        }
        if dir.exists() {
            // An unfinished create (no manifest): nothing in it was ever acknowledged.
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let log = "wal-1.log".to_string();
        write_synced(&dir.join(&log), wal::MAGIC)?;
        let manifest = LiveManifest {
            format: FORMAT.into(),
            version: LIVE_VERSION,
            generation: 1,
            dim: config.dim,
            rows: 0,
            metric: config.metric,
            quantizer: config.quantizer.clone(),
            keep: config.keep,
            durability: config.durability,
            segments: Vec::new(),
            tombstones: None,
            log: Some(LogEntry {
                file: log,
                flushed_lsn: 0,
            }),
            extra: Value::Object(Default::default()),
            checksum: String::new(),
        };
        manifest.write(&dir)?;
        sync_dir(&self.root)?;
        let c = Arc::new(Collection::open_named(&dir, name, self.options)?);
        self.write_map()?.insert(name.into(), c.clone());
        Ok(c)
    }

    /// The collection called `name`; `UnknownCollection` if there is none.
    pub fn get(&self, name: &str) -> Result<Arc<Collection>, StoreError> {
        self.read_map()?
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownCollection { name: name.into() })
    }

    /// Every collection's info, by name.
    pub fn list(&self) -> Vec<CollectionInfo> {
        match self.read_map() {
            Ok(m) => m.values().map(|c| c.info()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Deletes a collection and its files. Searches already running on it finish on their
    /// snapshot; later writes through a handle still held fail with `UnknownCollection`.
    pub fn drop_collection(&self, name: &str) -> Result<(), StoreError> {
        let _admin = lock(&self.admin)?;
        let c = self
            .write_map()?
            .remove(name)
            .ok_or_else(|| StoreError::UnknownCollection { name: name.into() })?;
        let mut w = c.writer()?;
        w.dropped = true;
        drop(w);
        let dir = self.root.join(name);
        // Remove the manifest first: a crash half-way leaves an unfinished create, not a
        // half-deleted collection.
        let m = dir.join(MANIFEST);
        fs::remove_file(&m).map_err(io_err(&m))?;
        sync_dir(&dir)?;
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        sync_dir(&self.root)
    }

    fn read_map(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Collection>>>, StoreError> {
        self.collections
            .read()
            .map_err(|_| StoreError::Internal("collection map lock poisoned".into()))
    }

    fn write_map(
        &self,
    ) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Collection>>>, StoreError>
    {
        self.collections
            .write()
            .map_err(|_| StoreError::Internal("collection map lock poisoned".into()))
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| {
        StoreError::Internal("a writer panicked; restart to recover from the log".into())
    })
}

/// The log named by a version-2 manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub file: String,
    /// Every write up to this sequence number is in the segments.
    pub flushed_lsn: u64,
}

/// `manifest.json` at version 2 (a version-1 manifest reads as one with one segment, ids = rows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LiveManifest {
    pub format: String,
    pub version: u32,
    pub generation: u64,
    pub dim: usize,
    /// Live points in the segments.
    pub rows: usize,
    pub metric: Metric,
    pub quantizer: String,
    pub keep: Keep,
    #[serde(default)]
    pub durability: Durability,
    /// Oldest first: a newer segment's copy of an id replaces an older one's.
    pub segments: Vec<SegmentEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstones: Option<PayloadsEntry>,
    /// `None` only for a version-1 collection that has not been written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogEntry>,
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
    fn from_v1(m: Manifest) -> LiveManifest {
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
            segments,
            tombstones: None,
            log: None,
            extra: m.extra,
            checksum: String::new(),
        }
    }

    /// Reads and checks `dir/manifest.json` (version 1 or 2).
    pub fn read(dir: &Path) -> Result<LiveManifest, StoreError> {
        let (path, bytes) = crate::read_manifest_bytes(dir)?;
        Self::parse(&path, &bytes)
    }

    /// Parses manifest bytes read from `path`. Never panics, whatever the bytes.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<LiveManifest, StoreError> {
        let bad = |reason: String| StoreError::Manifest {
            path: path.to_owned(),
            reason,
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON ({e})")))?;
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v < LIVE_VERSION as u64 => {
                return Ok(Self::from_v1(parse_manifest(path, bytes)?))
            }
            Some(v) if v == LIVE_VERSION as u64 => {}
            Some(v) => {
                return Err(bad(format!(
                "collection format version {v} is newer than this bitseek reads ({LIVE_VERSION})"
            )))
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
                "checksum mismatch (stored {stored:?}, computed {computed:?}): the manifest is damaged; restore the collection from a snapshot"
            )));
        }
        let m: LiveManifest = serde_json::from_value(value)
            .map_err(|e| bad(format!("does not describe a collection ({e})")))?;
        if m.dim == 0 || m.dim > MAX_DIM {
            return Err(bad(format!("dimension {} is out of range", m.dim)));
        }
        let Some(log) = &m.log else {
            return Err(bad("a version-2 manifest must name its log".into()));
        };
        let mut names = vec![&log.file];
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
    fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let path = dir.join(MANIFEST);
        let cannot = |e: serde_json::Error| StoreError::Manifest {
            path: path.clone(),
            reason: format!("cannot serialise: {e}"),
        };
        let mut value = serde_json::to_value(self).map_err(cannot)?;
        let sum = manifest_checksum(&value);
        value["checksum"] = Value::String(sum);
        let bytes = serde_json::to_vec_pretty(&value).map_err(cannot)?;
        write_synced(&path, &bytes)?;
        sync_dir(dir)
    }

    fn config(&self) -> CollectionConfig {
        CollectionConfig {
            dim: self.dim,
            metric: self.metric,
            quantizer: self.quantizer.clone(),
            keep: self.keep,
            durability: self.durability,
        }
    }

    /// Every file the manifest names, itself included.
    fn files(&self) -> HashSet<String> {
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
        if let Some(l) = &self.log {
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

/// An immutable segment: the mapped index and its payloads.
struct Segment {
    entry: SegmentEntry,
    index: Index,
    payloads: Vec<Value>,
    /// Per payload field a filter has named: value key → rows holding it, built on first use.
    fields: Mutex<HashMap<String, Arc<FieldIndex>>>,
}

/// Rows by the value of one payload field ([`crate::filter::value_key`]).
type FieldIndex = HashMap<String, Vec<u32>>;

impl Segment {
    fn open(dir: &Path, entry: &SegmentEntry, m: &LiveManifest) -> Result<Segment, StoreError> {
        let path = dir.join(&entry.file);
        let index = crate::open_segment(
            &path,
            &crate::Promise {
                generation: m.generation,
                rows: entry.rows,
                dim: m.dim,
                metric: m.metric,
                keep: m.keep,
                quantizer: None,
                row_ids: m.version == 1,
            },
        )?;
        let bad = |reason: String| StoreError::Segment {
            path: path.clone(),
            reason,
        };
        let pe = entry
            .payloads
            .as_ref()
            .ok_or_else(|| bad("no payload file".into()))?;
        let payloads = crate::read_payloads(dir, pe)?;
        Ok(Segment {
            entry: entry.clone(),
            index,
            payloads,
            fields: Mutex::new(HashMap::new()),
        })
    }

    fn field_index(&self, field: &str) -> Arc<FieldIndex> {
        let mut fields = match self.fields.lock() {
            Ok(f) => f,
            Err(e) => e.into_inner(),
        };
        fields
            .entry(field.to_owned())
            .or_insert_with(|| {
                let mut idx = FieldIndex::new();
                for (r, p) in self.payloads.iter().enumerate() {
                    if let Some(v) = crate::filter::lookup(p, field) {
                        idx.entry(crate::filter::value_key(v))
                            .or_default()
                            .push(r as u32);
                    }
                }
                Arc::new(idx)
            })
            .clone()
    }

    /// The rows whose payload `filter` accepts, as a bitmask (the same answer as
    /// [`Filter::accepts`] row by row, from the field indexes).
    fn filter_mask(&self, filter: &Filter) -> Vec<u64> {
        let rows = self.rows();
        let from_values = |field: &str, values: &[&Value]| {
            let idx = self.field_index(field);
            let mut m = vec![0u64; rows.div_ceil(64)];
            for v in values {
                for &r in idx.get(&crate::filter::value_key(v)).into_iter().flatten() {
                    m[r as usize / 64] |= 1 << (r % 64);
                }
            }
            m
        };
        match filter {
            Filter::Eq { field, eq } => from_values(field, &[eq]),
            Filter::In { field, r#in } => from_values(field, &r#in.iter().collect::<Vec<_>>()),
            Filter::All { all } => {
                let mut m = all_live(rows);
                for f in all {
                    for (a, b) in m.iter_mut().zip(self.filter_mask(f)) {
                        *a &= b;
                    }
                }
                m
            }
        }
    }

    fn rows(&self) -> usize {
        self.entry.rows
    }

    fn row_of(&self, id: u64) -> Option<usize> {
        self.index.ids().binary_search(&id).ok()
    }

    fn vector(&self, row: usize) -> Option<&[f32]> {
        let dim = self.index.meta().dim;
        self.index
            .kept_f32()
            .and_then(|k| k.get(row * dim..(row + 1) * dim))
    }
}

/// One acknowledged upsert batch in memory.
struct MemChunk {
    ids: Vec<u64>,
    /// Row-major, normalised under cosine.
    vectors: Vec<f32>,
    payloads: Vec<Value>,
    rows_by_id: HashMap<u64, usize>,
}

/// A bitmask of live rows, shared by snapshots and copied when the writer changes it.
type Live = Arc<Vec<u64>>;

fn all_live(rows: usize) -> Vec<u64> {
    let mut v = vec![u64::MAX; rows.div_ceil(64)];
    if !rows.is_multiple_of(64) {
        if let Some(last) = v.last_mut() {
            *last = (1u64 << (rows % 64)) - 1;
        }
    }
    v
}

fn is_set(bits: &[u64], row: usize) -> bool {
    bitseek_index::flat::row_allowed(bits, row)
}

fn clear(bits: &mut [u64], row: usize) {
    bits[row / 64] &= !(1u64 << (row % 64));
}

fn count(bits: &[u64]) -> usize {
    bits.iter().map(|w| w.count_ones() as usize).sum()
}

/// A consistent view of a collection: what one search sees, start to finish.
#[derive(Clone)]
pub struct Snapshot {
    config: CollectionConfig,
    generation: u64,
    segments: Vec<(Arc<Segment>, Live)>,
    mem: Vec<(Arc<MemChunk>, Live)>,
    points: usize,
    wal_records: usize,
    last_lsn: u64,
}

/// Where an id's live copy is.
#[derive(Clone, Copy, Debug)]
enum Loc {
    Seg(usize, usize),
    Mem(usize, usize),
}

/// The open log file.
struct LogFile {
    file: File,
    path: PathBuf,
    len: u64,
    records: usize,
}

/// The writer's state, behind the collection's mutex.
struct Writer {
    manifest: LiveManifest,
    log: Option<LogFile>,
    next_lsn: u64,
    where_is: HashMap<u64, Loc>,
    segments: Vec<(Arc<Segment>, Live)>,
    mem: Vec<(Arc<MemChunk>, Live)>,
    mem_rows: usize,
    points: usize,
    flush_rows: usize,
    dropped: bool,
    /// Set when an fsync failed: the log's state on disk is unknown, so no more writes.
    poisoned: Option<String>,
}

/// Grouped commit: waiters share one fsync.
#[derive(Default)]
struct GroupSync {
    state: Mutex<GroupState>,
    cv: Condvar,
}

#[derive(Default)]
struct GroupState {
    synced: u64,
    leader: bool,
    failed: Option<String>,
}

/// A live collection. Thread-safe: `Send + Sync`, every method takes `&self`; writes are
/// serialised by an internal mutex, searches run on a [`Snapshot`] and never wait for them.
pub struct Collection {
    name: String,
    dir: PathBuf,
    snapshot: RwLock<Arc<Snapshot>>,
    writer: Mutex<Writer>,
    group: GroupSync,
    /// The log file of the newest write and its sequence number, for the grouped fsync.
    sync_target: Mutex<Option<(Arc<File>, u64)>>,
    recovery: Vec<String>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Collection {
    /// Opens the collection in `dir` on its own (a snapshot, say), outside any [`Db`]; its name
    /// is the directory's name.
    pub fn open(dir: &Path) -> Result<Collection, StoreError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Collection::open_named(dir, &name, DbOptions::default())
    }

    fn open_named(dir: &Path, name: &str, options: DbOptions) -> Result<Collection, StoreError> {
        let manifest = LiveManifest::read(dir)?;
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for entry in &manifest.segments {
            segments.push(Arc::new(Segment::open(dir, entry, &manifest)?));
        }
        let dead = match &manifest.tombstones {
            None => vec![Vec::new(); segments.len()],
            Some(t) => read_tombstones(dir, t, &segments)?,
        };
        let mut w = Writer {
            manifest,
            log: None,
            next_lsn: 1,
            where_is: HashMap::new(),
            segments: Vec::new(),
            mem: Vec::new(),
            mem_rows: 0,
            points: 0,
            flush_rows: options.flush_rows,
            dropped: false,
            poisoned: None,
        };
        for (i, (seg, dead)) in segments.into_iter().zip(dead).enumerate() {
            let mut live = all_live(seg.rows());
            for r in dead {
                clear(&mut live, r as usize);
            }
            let mut live = Arc::new(live);
            for (row, &id) in seg.index.ids().iter().enumerate() {
                if !is_set(&live, row) {
                    continue;
                }
                if let Some(old) = w.where_is.insert(id, Loc::Seg(i, row)) {
                    // Two live copies: the newer segment's wins (a flush records this itself,
                    // so this only happens in a collection written by hand).
                    w.kill(old, Some((&mut live, i)));
                } else {
                    w.points += 1;
                }
            }
            w.segments.push((seg, live));
        }
        let mut recovery = Vec::new();
        if let Some(log) = w.manifest.log.clone() {
            let path = dir.join(&log.file);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::Log {
                        path,
                        reason: format!(
                            "the log of generation {} is missing; restore the collection from a snapshot",
                            w.manifest.generation
                        ),
                    })
                }
                Err(e) => return Err(io_err(&path)(e)),
            };
            let scan = wal::scan(&bytes, w.manifest.dim).map_err(|reason| StoreError::Log {
                path: path.clone(),
                reason: format!("{reason}; restore the collection from a snapshot"),
            })?;
            w.next_lsn = log.flushed_lsn + 1;
            let mut records = 0;
            for rec in scan.records {
                if rec.lsn <= log.flushed_lsn {
                    continue;
                }
                w.next_lsn = rec.lsn + 1;
                records += 1;
                match rec.op {
                    Op::Upsert {
                        ids,
                        mut vectors,
                        payloads,
                    } => {
                        if w.manifest.metric == Metric::Cosine {
                            vectors.chunks_exact_mut(w.manifest.dim).for_each(normalize);
                        }
                        w.apply_upsert(ids, vectors, payloads);
                    }
                    Op::Delete { ids } => {
                        w.apply_delete(&ids);
                    }
                }
            }
            let mut file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            if let Some(why) = scan.stopped {
                let cut = bytes.len() - scan.good_len;
                recovery.push(format!(
                    "{}: cut {cut} bytes at offset {} after {records} good records (last sequence \
                     number {}): {why}; writes in the cut tail were never acknowledged as durable",
                    path.display(),
                    scan.good_len,
                    w.next_lsn - 1
                ));
                file.set_len(scan.good_len as u64).map_err(io_err(&path))?;
                if scan.good_len < wal::MAGIC.len() {
                    file.write_all(wal::MAGIC).map_err(io_err(&path))?;
                }
                file.sync_all().map_err(io_err(&path))?;
            }
            let len = file.metadata().map_err(io_err(&path))?.len();
            w.log = Some(LogFile {
                file,
                path,
                len,
                records,
            });
        }
        let c = Collection {
            name: name.to_owned(),
            dir: dir.to_owned(),
            snapshot: RwLock::new(Arc::new(w.snapshot())),
            writer: Mutex::new(w),
            group: GroupSync::default(),
            sync_target: Mutex::new(None),
            recovery,
        };
        {
            let w = c.writer()?;
            lock(&c.group.state)?.synced = w.next_lsn - 1;
        }
        Ok(c)
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        lock(&self.writer)
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot_view(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    fn publish(&self, w: &Writer) {
        let s = Arc::new(w.snapshot());
        match self.snapshot.write() {
            Ok(mut g) => *g = s,
            Err(e) => *e.into_inner() = s,
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening had to repair, in words (empty when nothing).
    pub fn recovery(&self) -> &[String] {
        &self.recovery
    }

    /// Counts and sizes.
    pub fn info(&self) -> CollectionInfo {
        let s = self.snapshot_view();
        CollectionInfo {
            name: self.name.clone(),
            config: s.config.clone(),
            points: s.points,
            segments: s.segments.len(),
            wal_records: s.wal_records,
            generation: s.generation,
            size_bytes: dir_size(&self.dir),
            last_lsn: s.last_lsn,
            recovery: self.recovery.clone(),
        }
    }

    /// Inserts or replaces `points` (a later point with the same id in one batch wins). Durable
    /// on return, per the collection's [`Durability`]; returns the write's sequence number.
    pub fn upsert(&self, points: Vec<Point>) -> Result<u64, StoreError> {
        let s = self.snapshot_view();
        let dim = s.config.dim;
        let metric = s.config.metric;
        let mut ids = Vec::with_capacity(points.len());
        let mut vectors = Vec::with_capacity(points.len() * dim);
        let mut payloads = Vec::with_capacity(points.len());
        for (i, p) in points.into_iter().enumerate() {
            check_row(&p.vector, dim, metric).map_err(|problem| {
                StoreError::Input(format!("point {i} (id {}) {problem}", p.id))
            })?;
            ids.push(p.id);
            vectors.extend_from_slice(&p.vector);
            payloads.push(p.payload);
        }
        let mut w = self.writer()?;
        w.ready(&self.name)?;
        if ids.is_empty() {
            return Ok(w.next_lsn - 1);
        }
        w.maybe_flush(&self.dir)?;
        let lsn = w.next_lsn;
        let op = Op::Upsert {
            ids,
            vectors,
            payloads,
        };
        let bytes = wal::encode(&wal::Record { lsn, op }, dim);
        self.append(&mut w, &bytes, lsn)?;
        let wal::Record { op, .. } = wal::parse_record(&bytes, dim)
            .map(|(r, _)| r)
            .map_err(|e| StoreError::Internal(format!("a record just encoded reads back: {e}")))?;
        let Op::Upsert {
            ids,
            mut vectors,
            payloads,
        } = op
        else {
            return Err(StoreError::Internal(
                "an upsert record read back as a delete".into(),
            ));
        };
        if metric == Metric::Cosine {
            vectors.chunks_exact_mut(dim).for_each(normalize);
        }
        w.apply_upsert(ids, vectors, payloads);
        self.publish(&w);
        drop(w);
        self.wait_durable(lsn)?;
        Ok(lsn)
    }

    /// Deletes `ids`; returns how many of them existed. Durable on return.
    pub fn delete(&self, ids: &[u64]) -> Result<usize, StoreError> {
        let mut w = self.writer()?;
        w.ready(&self.name)?;
        let mut present: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| w.where_is.contains_key(id))
            .collect();
        present.sort_unstable();
        present.dedup();
        if present.is_empty() {
            return Ok(0);
        }
        w.maybe_flush(&self.dir)?;
        let lsn = w.next_lsn;
        let dim = w.manifest.dim;
        let bytes = wal::encode(
            &wal::Record {
                lsn,
                op: Op::Delete {
                    ids: present.clone(),
                },
            },
            dim,
        );
        self.append(&mut w, &bytes, lsn)?;
        let n = w.apply_delete(&present);
        self.publish(&w);
        drop(w);
        self.wait_durable(lsn)?;
        Ok(n)
    }

    /// Appends one encoded record to the log, and under `Fsync` syncs it.
    fn append(&self, w: &mut Writer, bytes: &[u8], lsn: u64) -> Result<(), StoreError> {
        w.ensure_log(&self.dir)?;
        let fsync = w.manifest.durability == Durability::Fsync;
        let log = w.log.as_mut().expect("ensure_log opened the log");
        if let Err(e) = log.file.write_all(bytes) {
            // Leave no partial record behind.
            let _ = log.file.set_len(log.len);
            return Err(io_err(&log.path)(e));
        }
        if fsync {
            if let Err(e) = log.file.sync_data() {
                let msg = format!(
                    "fsync of {} failed ({e}); writes are refused until the collection is reopened",
                    log.path.display()
                );
                w.poisoned = Some(msg.clone());
                return Err(StoreError::Internal(msg));
            }
        } else {
            let file = Arc::new(log.file.try_clone().map_err(io_err(&log.path))?);
            *lock(&self.sync_target)? = Some((file, lsn));
        }
        log.len += bytes.len() as u64;
        log.records += 1;
        w.next_lsn = lsn + 1;
        Ok(())
    }

    /// Under grouped commit, waits until a shared fsync covers `lsn`.
    fn wait_durable(&self, lsn: u64) -> Result<(), StoreError> {
        let window = match self.snapshot_view().config.durability {
            Durability::Fsync => {
                lock(&self.group.state)?.synced = lsn;
                return Ok(());
            }
            Durability::Grouped { window_ms } => Duration::from_millis(window_ms),
        };
        let mut st = lock(&self.group.state)?;
        loop {
            if let Some(f) = &st.failed {
                return Err(StoreError::Internal(f.clone()));
            }
            if st.synced >= lsn {
                return Ok(());
            }
            if !st.leader {
                st.leader = true;
                drop(st);
                std::thread::sleep(window);
                let target = lock(&self.sync_target)?.clone();
                let result = match &target {
                    Some((file, _)) => file.sync_data(),
                    None => Ok(()),
                };
                st = lock(&self.group.state)?;
                st.leader = false;
                match result {
                    Ok(()) => {
                        if let Some((_, upto)) = target {
                            st.synced = st.synced.max(upto);
                        }
                    }
                    Err(e) => {
                        let msg = format!(
                            "grouped fsync of the log failed ({e}); writes are refused until the collection is reopened"
                        );
                        st.failed = Some(msg.clone());
                        if let Ok(mut w) = self.writer() {
                            w.poisoned = Some(msg);
                        }
                    }
                }
                self.group.cv.notify_all();
            } else {
                st = self
                    .group
                    .cv
                    .wait(st)
                    .map_err(|_| StoreError::Internal("group commit lock poisoned".into()))?;
            }
        }
    }

    /// Makes every acknowledged write durable (for grouped commit: syncs the log now). For a
    /// graceful shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        if let Some(log) = w.log.as_mut() {
            log.file.sync_all().map_err(io_err(&log.path))?;
        }
        let last = w.next_lsn - 1;
        drop(w);
        let mut st = lock(&self.group.state)?;
        st.synced = st.synced.max(last);
        self.group.cv.notify_all();
        Ok(())
    }

    /// Moves the memtable into a new segment now (normally done once it holds
    /// [`DbOptions::flush_rows`] rows).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        w.ready(&self.name)?;
        w.flush_memtable(&self.dir)?;
        self.publish(&w);
        drop(w);
        self.release_waiters()
    }

    /// After a new generation: everything before it is in synced segment files.
    fn release_waiters(&self) -> Result<(), StoreError> {
        let last = self.writer()?.next_lsn - 1;
        let mut st = lock(&self.group.state)?;
        st.synced = st.synced.max(last);
        self.group.cv.notify_all();
        Ok(())
    }

    /// The point with `id`, if it is live.
    pub fn get(&self, id: u64) -> Option<Record> {
        let s = self.snapshot_view();
        let keep_f32 = s.config.keep == Keep::F32;
        for (chunk, live) in s.mem.iter().rev() {
            if let Some(&row) = chunk.rows_by_id.get(&id) {
                if is_set(live, row) {
                    let dim = s.config.dim;
                    return Some(Record {
                        id,
                        vector: keep_f32
                            .then(|| chunk.vectors[row * dim..(row + 1) * dim].to_vec()),
                        payload: chunk.payloads[row].clone(),
                    });
                }
            }
        }
        for (seg, live) in s.segments.iter().rev() {
            if let Some(row) = seg.row_of(id) {
                if is_set(live, row) {
                    return Some(Record {
                        id,
                        vector: seg.vector(row).map(<[f32]>::to_vec),
                        payload: seg.payloads[row].clone(),
                    });
                }
            }
        }
        None
    }

    /// The best `req.k` live points for `query`, best first.
    pub fn search(
        &self,
        query: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>, StoreError> {
        let dim = self.snapshot_view().config.dim;
        if query.len() != dim {
            return Err(IndexError::DimensionMismatch {
                expected: dim,
                found: query.len(),
            }
            .into());
        }
        Ok(self.search_batch(query, req)?.pop().unwrap_or_default())
    }

    /// [`search`](Self::search) for each row of row-major `queries` (n × dim), on one snapshot.
    pub fn search_batch(
        &self,
        queries: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Vec<ScoredPoint>>, StoreError> {
        self.snapshot_view().search(queries, req)
    }

    /// Merges the segments and the memtable into one segment without the dead rows, and starts
    /// a new log. Merging re-encodes from the `f32` copy: with [`Keep::Int8`] or [`Keep::None`]
    /// the memtable becomes a segment and every segment with dead rows is rewritten without them
    /// (codes copied as they are, each segment keeping its own fitted quantizer), unmerged.
    pub fn compact(&self) -> Result<CompactReport, StoreError> {
        let mut w = self.writer()?;
        w.ready(&self.name)?;
        let before = (w.segments.len(), w.stored_rows(), dir_size(&self.dir));
        let quantizer = w.manifest.quantizer.clone();
        w.rebuild(&self.dir, &quantizer)?;
        self.publish(&w);
        let report = CompactReport {
            generation: w.manifest.generation,
            segments_before: before.0,
            segments_after: w.segments.len(),
            rows_before: before.1,
            rows_after: w.stored_rows(),
            bytes_before: before.2,
            bytes_after: dir_size(&self.dir),
        };
        drop(w);
        self.release_waiters()?;
        Ok(report)
    }

    /// Re-encodes every point with `quantizer`, from the kept `f32` copy. Refused when the
    /// collection keeps no `f32` copy: codes cannot be turned back into vectors.
    pub fn set_quantizer(&self, quantizer: &str) -> Result<(), StoreError> {
        parse_quantizer(quantizer)?;
        let mut w = self.writer()?;
        w.ready(&self.name)?;
        if w.manifest.keep != Keep::F32 {
            return Err(StoreError::Refused(format!(
                "collection {:?} keeps {} instead of the f32 vectors, so its points cannot be \
                 re-encoded with {quantizer:?}; create a new collection with keep \"f32\" (or the \
                 quantizer you want) and upsert the vectors again",
                self.name, w.manifest.keep
            )));
        }
        w.rebuild(&self.dir, quantizer)?;
        self.publish(&w);
        drop(w);
        self.release_waiters()
    }

    /// Writes a consistent copy of the collection to `dest` (a new or empty directory), openable
    /// with [`Collection::open`] or by placing it in a [`Db`]'s directory. Writes wait while the
    /// files are copied; searches do not.
    pub fn snapshot(&self, dest: &Path) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        w.ready(&self.name)?;
        if dest.exists() && fs::read_dir(dest).map_err(io_err(dest))?.next().is_some() {
            return Err(StoreError::Input(format!(
                "{} is not empty; give a new or empty directory for the snapshot",
                dest.display()
            )));
        }
        fs::create_dir_all(dest).map_err(io_err(dest))?;
        if let Some(log) = w.log.as_mut() {
            log.file.sync_all().map_err(io_err(&log.path))?;
        }
        let m = &w.manifest;
        for f in m.files() {
            if f == MANIFEST {
                continue;
            }
            let from = self.dir.join(&f);
            let to = dest.join(&f);
            if Some(&f) == m.log.as_ref().map(|l| &l.file) {
                let len = w.log.as_ref().map_or(0, |l| l.len) as usize;
                let bytes = fs::read(&from).map_err(io_err(&from))?;
                write_synced(&to, &bytes[..len.min(bytes.len())])?;
            } else if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).map_err(io_err(&to))?;
                File::open(&to)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err(&to))?;
            }
        }
        let mut m = m.clone();
        if m.log.is_none() {
            // A version-1 collection: give the copy its (empty) log.
            let file = format!("wal-{}.log", m.generation);
            write_synced(&dest.join(&file), wal::MAGIC)?;
            m.log = Some(LogEntry {
                file,
                flushed_lsn: 0,
            });
            m.version = LIVE_VERSION;
        }
        m.write(dest)?;
        if let Some(parent) = dest.parent() {
            let _ = sync_dir(parent);
        }
        Ok(())
    }
}

impl Writer {
    fn ready(&self, name: &str) -> Result<(), StoreError> {
        if self.dropped {
            return Err(StoreError::UnknownCollection { name: name.into() });
        }
        if let Some(p) = &self.poisoned {
            return Err(StoreError::Internal(p.clone()));
        }
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            config: self.manifest.config(),
            generation: self.manifest.generation,
            segments: self.segments.clone(),
            mem: self.mem.clone(),
            points: self.points,
            wal_records: self.log.as_ref().map_or(0, |l| l.records),
            last_lsn: self.next_lsn - 1,
        }
    }

    fn stored_rows(&self) -> usize {
        self.segments.iter().map(|(s, _)| s.rows()).sum::<usize>() + self.mem_rows
    }

    /// Marks the copy at `loc` dead. `current` is a live mask being built for segment index
    /// `.1`, not yet in `self.segments`.
    fn kill(&mut self, loc: Loc, current: Option<(&mut Live, usize)>) {
        match loc {
            Loc::Seg(i, r) => match current {
                Some((live, ci)) if ci == i => clear(Arc::<Vec<u64>>::make_mut(live), r),
                _ => clear(Arc::<Vec<u64>>::make_mut(&mut self.segments[i].1), r),
            },
            Loc::Mem(i, r) => clear(Arc::<Vec<u64>>::make_mut(&mut self.mem[i].1), r),
        }
    }

    fn apply_upsert(&mut self, ids: Vec<u64>, vectors: Vec<f32>, payloads: Vec<Value>) {
        let ci = self.mem.len();
        let rows = ids.len();
        let rows_by_id = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        let chunk = Arc::new(MemChunk {
            ids,
            vectors,
            payloads,
            rows_by_id,
        });
        self.mem.push((chunk.clone(), Arc::new(all_live(rows))));
        self.mem_rows += rows;
        for (r, &id) in chunk.ids.iter().enumerate() {
            match self.where_is.insert(id, Loc::Mem(ci, r)) {
                Some(old) => self.kill(old, None),
                None => self.points += 1,
            }
        }
        if self.mem.len() > MAX_MEM_BATCHES {
            self.consolidate();
        }
    }

    /// Merges the memtable's batches into one (live rows only), so that publishing a snapshot,
    /// which copies the list of batches, stays cheap under many small writes.
    fn consolidate(&mut self) {
        let dim = self.manifest.dim;
        let (mut ids, mut vectors, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
        for (chunk, live) in &self.mem {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if is_set(live, r) {
                    ids.push(id);
                    vectors.extend_from_slice(&chunk.vectors[r * dim..(r + 1) * dim]);
                    payloads.push(chunk.payloads[r].clone());
                }
            }
        }
        let rows = ids.len();
        for (r, &id) in ids.iter().enumerate() {
            self.where_is.insert(id, Loc::Mem(0, r));
        }
        let rows_by_id = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        let chunk = MemChunk {
            ids,
            vectors,
            payloads,
            rows_by_id,
        };
        self.mem = vec![(Arc::new(chunk), Arc::new(all_live(rows)))];
        self.mem_rows = rows;
    }

    fn apply_delete(&mut self, ids: &[u64]) -> usize {
        let mut n = 0;
        for id in ids {
            if let Some(old) = self.where_is.remove(id) {
                self.kill(old, None);
                self.points -= 1;
                n += 1;
            }
        }
        n
    }

    /// A version-1 collection gets its log (and becomes version 2) on its first write.
    fn ensure_log(&mut self, dir: &Path) -> Result<(), StoreError> {
        if self.log.is_some() {
            return Ok(());
        }
        let mut m = self.manifest.clone();
        m.generation = next_generation(dir, &m);
        let file = format!("wal-{}.log", m.generation);
        write_synced(&dir.join(&file), wal::MAGIC)?;
        m.log = Some(LogEntry {
            file,
            flushed_lsn: self.next_lsn - 1,
        });
        m.version = LIVE_VERSION;
        m.write(dir)?;
        self.manifest = m;
        self.open_log(dir)
    }

    fn open_log(&mut self, dir: &Path) -> Result<(), StoreError> {
        let log = self.manifest.log.as_ref().expect("a log is named");
        let path = dir.join(&log.file);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        self.log = Some(LogFile {
            file,
            path,
            len,
            records: 0,
        });
        Ok(())
    }

    fn maybe_flush(&mut self, dir: &Path) -> Result<(), StoreError> {
        if self.mem_rows >= self.flush_rows {
            self.flush_memtable(dir)?;
        }
        Ok(())
    }

    /// The live memtable rows, in id order: ids, vectors, payloads.
    fn live_mem(&self) -> (Vec<u64>, Vec<f32>, Vec<Value>) {
        let dim = self.manifest.dim;
        let mut rows: Vec<(u64, &MemChunk, usize)> = Vec::new();
        for (chunk, live) in &self.mem {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if is_set(live, r) {
                    rows.push((id, chunk, r));
                }
            }
        }
        rows.sort_unstable_by_key(|x| x.0);
        let mut ids = Vec::with_capacity(rows.len());
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        let mut payloads = Vec::with_capacity(rows.len());
        for (id, c, r) in rows {
            ids.push(id);
            vectors.extend_from_slice(&c.vectors[r * dim..(r + 1) * dim]);
            payloads.push(c.payloads[r].clone());
        }
        (ids, vectors, payloads)
    }

    /// Moves the live memtable rows into a new segment and starts a new log.
    fn flush_memtable(&mut self, dir: &Path) -> Result<(), StoreError> {
        if self.mem.is_empty() && self.log.as_ref().is_none_or(|l| l.records == 0) {
            return Ok(());
        }
        let generation = next_generation(dir, &self.manifest);
        let (ids, vectors, payloads) = self.live_mem();
        let mut segments: Vec<(Arc<Segment>, Live)> = self.segments.clone();
        let quantizer = self.manifest.quantizer.clone();
        if !ids.is_empty() {
            let seg = write_segment(
                dir,
                generation,
                &self.manifest,
                &quantizer,
                ids,
                vectors,
                payloads,
            )?;
            let rows = seg.rows();
            segments.push((Arc::new(seg), Arc::new(all_live(rows))));
        }
        self.commit(dir, generation, segments, quantizer)
    }

    /// Rewrites every live point into one segment encoded with `quantizer` (compaction, quantizer
    /// change). Without an f32 copy: memtable flushed, and each segment with dead rows rewritten
    /// without them by copying codes (see [`Collection::compact`]).
    fn rebuild(&mut self, dir: &Path, quantizer: &str) -> Result<(), StoreError> {
        let dim = self.manifest.dim;
        if self.manifest.keep != Keep::F32 {
            // No vectors to re-encode: each segment keeps its fitted quantizer and loses its
            // dead rows (codes copied as they are); segments are not merged.
            self.flush_memtable(dir)?;
            let generation = next_generation(dir, &self.manifest);
            let mut kept: Vec<(Arc<Segment>, Live)> = Vec::new();
            let mut changed = false;
            for (i, (seg, live)) in self.segments.iter().enumerate() {
                let alive: Vec<usize> = (0..seg.rows()).filter(|&r| is_set(live, r)).collect();
                if alive.len() == seg.rows() {
                    kept.push((seg.clone(), live.clone()));
                    continue;
                }
                changed = true;
                if alive.is_empty() {
                    continue;
                }
                let index = seg.index.select_rows(&alive)?;
                let payloads: Vec<Value> = alive.iter().map(|&r| seg.payloads[r].clone()).collect();
                let name = format!("{generation}-{i}");
                let new = save_segment(
                    dir,
                    &name,
                    &self.manifest,
                    &self.manifest.quantizer,
                    &index,
                    &payloads,
                )?;
                kept.push((Arc::new(new), Arc::new(all_live(alive.len()))));
            }
            if !changed {
                return Ok(());
            }
            return self.commit(dir, generation, kept, quantizer.to_owned());
        }
        let mut rows: Vec<(u64, &[f32], &Value)> = Vec::with_capacity(self.points);
        for (seg, live) in &self.segments {
            for (r, &id) in seg.index.ids().iter().enumerate() {
                if is_set(live, r) {
                    let v = seg.vector(r).ok_or_else(|| StoreError::Segment {
                        path: dir.join(&seg.entry.file),
                        reason: "keeps no f32 copy though the manifest says it does".into(),
                    })?;
                    rows.push((id, v, &seg.payloads[r]));
                }
            }
        }
        for (chunk, live) in &self.mem {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if is_set(live, r) {
                    rows.push((
                        id,
                        &chunk.vectors[r * dim..(r + 1) * dim],
                        &chunk.payloads[r],
                    ));
                }
            }
        }
        rows.sort_unstable_by_key(|x| x.0);
        let generation = next_generation(dir, &self.manifest);
        let mut segments = Vec::new();
        if !rows.is_empty() {
            let ids = rows.iter().map(|r| r.0).collect();
            let vectors = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
            let payloads = rows.iter().map(|r| r.2.clone()).collect();
            let seg = write_segment(
                dir,
                generation,
                &self.manifest,
                quantizer,
                ids,
                vectors,
                payloads,
            )?;
            let n = seg.rows();
            segments.push((Arc::new(seg), Arc::new(all_live(n))));
        }
        self.commit(dir, generation, segments, quantizer.to_owned())
    }

    /// Makes `segments` (with their live masks) generation `generation` with an empty memtable
    /// and a new empty log: tombstones and log written and synced, manifest swapped, writer
    /// state switched, older files deleted.
    fn commit(
        &mut self,
        dir: &Path,
        generation: u64,
        segments: Vec<(Arc<Segment>, Live)>,
        quantizer: String,
    ) -> Result<(), StoreError> {
        let mut m = self.manifest.clone();
        m.generation = generation;
        m.version = LIVE_VERSION;
        m.quantizer = quantizer;
        m.segments = segments.iter().map(|(s, _)| s.entry.clone()).collect();
        m.rows = segments.iter().map(|(_, l)| count(l)).sum();
        m.tombstones = write_tombstones(dir, generation, &segments)?;
        let log = format!("wal-{generation}.log");
        write_synced(&dir.join(&log), wal::MAGIC)?;
        m.log = Some(LogEntry {
            file: log,
            flushed_lsn: self.next_lsn - 1,
        });
        sync_dir(dir)?;
        m.write(dir)?;
        // The new generation is current: switch to it.
        self.manifest = m;
        if let Err(e) = self.open_log(dir) {
            // The files on disk are right but this writer no longer matches them.
            self.poisoned = Some(format!(
                "the new log cannot be opened ({e}); writes are refused until the collection is reopened"
            ));
            return Err(e);
        }
        self.where_is.clear();
        self.points = 0;
        for (i, (seg, live)) in segments.iter().enumerate() {
            for (r, &id) in seg.index.ids().iter().enumerate() {
                if is_set(live, r) {
                    self.where_is.insert(id, Loc::Seg(i, r));
                    self.points += 1;
                }
            }
        }
        self.segments = segments;
        self.mem.clear();
        self.mem_rows = 0;
        remove_stale(dir, &self.manifest.files());
        Ok(())
    }
}

/// Builds, saves (synced) and reopens (mapped, checksummed) a segment of generation `generation`.
fn write_segment(
    dir: &Path,
    generation: u64,
    m: &LiveManifest,
    quantizer: &str,
    ids: Vec<u64>,
    vectors: Vec<f32>,
    payloads: Vec<Value>,
) -> Result<Segment, StoreError> {
    let opts = m.config().build_options(quantizer)?;
    let name = format!("{generation}");
    let index = Index::build(
        Vectors {
            dim: m.dim,
            data: vectors,
            ids: Some(ids),
        },
        &dir.join(format!("seg-{name}.bitseek")),
        &opts,
        &|_| {},
    )?;
    save_segment(dir, &name, m, quantizer, &index, &payloads)
}

/// Saves `index` and `payloads` as `seg-<name>.bitseek` and `payloads-<name>.jsonl` (synced) and
/// reopens the segment (mapped, checksummed).
fn save_segment(
    dir: &Path,
    name: &str,
    m: &LiveManifest,
    quantizer: &str,
    index: &Index,
    payloads: &[Value],
) -> Result<Segment, StoreError> {
    let rows = payloads.len();
    let file = format!("seg-{name}.bitseek");
    index.save(&dir.join(&file))?;
    let mut bytes = Vec::with_capacity(rows * 64);
    for p in payloads {
        serde_json::to_writer(&mut bytes, p)
            .map_err(|e| StoreError::Input(format!("payload cannot be written: {e}")))?;
        bytes.push(b'\n');
    }
    let pe = PayloadsEntry {
        file: format!("payloads-{name}.jsonl"),
        rows,
        xxh3: format!("{:016x}", xxh3_64(&bytes)),
    };
    write_synced(&dir.join(&pe.file), &bytes)?;
    let entry = SegmentEntry {
        file,
        rows,
        payloads: Some(pe),
    };
    let mut probe = m.clone();
    probe.quantizer = quantizer.to_owned();
    probe.version = LIVE_VERSION;
    Segment::open(dir, &entry, &probe)
}

/// `tombstones-<g>.bin`: magic, then per segment a `u32` count and that many `u32` dead rows,
/// increasing. `None` when no segment has a dead row.
fn write_tombstones(
    dir: &Path,
    generation: u64,
    segments: &[(Arc<Segment>, Live)],
) -> Result<Option<PayloadsEntry>, StoreError> {
    let mut bytes = TOMB_MAGIC.to_vec();
    let mut total = 0;
    for (seg, live) in segments {
        let dead: Vec<u32> = (0..seg.rows())
            .filter(|&r| !is_set(live, r))
            .map(|r| r as u32)
            .collect();
        total += dead.len();
        bytes.extend_from_slice(&(dead.len() as u32).to_le_bytes());
        for r in dead {
            bytes.extend_from_slice(&r.to_le_bytes());
        }
    }
    if total == 0 {
        return Ok(None);
    }
    let entry = PayloadsEntry {
        file: format!("tombstones-{generation}.bin"),
        rows: total,
        xxh3: format!("{:016x}", xxh3_64(&bytes)),
    };
    write_synced(&dir.join(&entry.file), &bytes)?;
    Ok(Some(entry))
}

fn read_tombstones(
    dir: &Path,
    entry: &PayloadsEntry,
    segments: &[Arc<Segment>],
) -> Result<Vec<Vec<u32>>, StoreError> {
    let path = dir.join(&entry.file);
    let bytes = fs::read(&path).map_err(|e| StoreError::Segment {
        path: path.clone(),
        reason: format!("tombstone file cannot be read ({e})"),
    })?;
    let hash = format!("{:016x}", xxh3_64(&bytes));
    if hash != entry.xxh3 {
        return Err(StoreError::Segment {
            path,
            reason: format!(
                "tombstone checksum mismatch (xxh3 {hash}, the manifest records {})",
                entry.xxh3
            ),
        });
    }
    let rows: Vec<usize> = segments.iter().map(|s| s.rows()).collect();
    parse_tombstones(&bytes, &rows, entry.rows)
        .map_err(|reason| StoreError::Segment { path, reason })
}

/// Parses a tombstone file for segments of `rows` rows holding `total` dead rows. Never panics.
pub fn parse_tombstones(
    bytes: &[u8],
    rows: &[usize],
    total: usize,
) -> Result<Vec<Vec<u32>>, String> {
    let body = bytes
        .strip_prefix(TOMB_MAGIC.as_slice())
        .ok_or("not a tombstone file (bad magic)")?;
    let mut words = body
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")));
    if body.len() % 4 != 0 {
        return Err("length is not a whole number of 4-byte words".into());
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut seen = 0;
    for (i, &n) in rows.iter().enumerate() {
        let c = words.next().ok_or(format!("ends before segment {i}"))? as usize;
        if c > n {
            return Err(format!("segment {i} has {n} rows but {c} dead"));
        }
        let mut dead = Vec::with_capacity(c);
        for _ in 0..c {
            let r = words.next().ok_or(format!("ends inside segment {i}"))?;
            if r as usize >= n || dead.last().is_some_and(|&l| l >= r) {
                return Err(format!("segment {i}: dead row {r} out of order or range"));
            }
            dead.push(r);
        }
        seen += c;
        out.push(dead);
    }
    if words.next().is_some() {
        return Err("bytes after the last segment".into());
    }
    if seen != total {
        return Err(format!("{seen} dead rows, the manifest records {total}"));
    }
    Ok(out)
}

/// One past the newest generation named by the manifest or by any file in `dir`.
fn next_generation(dir: &Path, m: &LiveManifest) -> u64 {
    let from_files = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| generation_in(&e.file_name().to_string_lossy()))
        .max()
        .unwrap_or(0);
    m.generation.max(from_files) + 1
}

/// Deletes files of this module's kinds that `keep` does not name. Best effort.
fn remove_stale(dir: &Path, keep: &HashSet<String>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = generation_in(&name).is_some() || name == format!("{MANIFEST}.tmp");
        if ours && !keep.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

impl Snapshot {
    /// The collection's configuration at this snapshot.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Live points.
    pub fn points(&self) -> usize {
        self.points
    }

    fn search(
        &self,
        queries: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Vec<ScoredPoint>>, StoreError> {
        let dim = self.config.dim;
        let metric = self.config.metric;
        if req.k == 0 {
            return Err(IndexError::BadParam("k must be at least 1".into()).into());
        }
        let oversample = req.oversample.unwrap_or(DEFAULT_OVERSAMPLE);
        if !oversample.is_finite() || !(1.0..=1024.0).contains(&oversample) {
            return Err(IndexError::BadParam(format!(
                "oversample {oversample} is out of range; give 1 to 1024"
            ))
            .into());
        }
        if let Some(f) = &req.filter {
            f.validate().map_err(StoreError::Input)?;
        }
        let queries = VectorBatch::new(queries.to_vec(), dim, metric)
            .map_err(IndexError::from)?
            .into_data();
        let n = queries.len() / dim;
        let k = req.k;
        let lower_is_better = metric == Metric::L2;
        // (score, id, payload) candidates per query.
        let mut found: Vec<Vec<(f32, u64, &Value)>> = vec![Vec::new(); n];
        let params = SearchParams {
            k,
            oversample: oversample.ceil() as usize,
            ..SearchParams::default()
        };
        for (seg, live) in &self.segments {
            let allowed: Live = match &req.filter {
                None => live.clone(),
                Some(f) => {
                    let mut a = seg.filter_mask(f);
                    for (x, l) in a.iter_mut().zip(live.iter()) {
                        *x &= l;
                    }
                    Arc::new(a)
                }
            };
            if count(&allowed) == 0 {
                continue;
            }
            let hits = seg
                .index
                .search_batch_allowed(&queries, dim, &params, Some(&allowed))?;
            for (q, hits) in hits.into_iter().enumerate() {
                for h in hits {
                    if let Some(r) = seg.row_of(h.id) {
                        found[q].push((h.score, h.id, &seg.payloads[r]));
                    }
                }
            }
        }
        // The memtable is searched exactly.
        let dot_f32 = bitseek_codes::kernels::kernels().dot_f32;
        let q2: Vec<f32> = queries.chunks_exact(dim).map(|q| dot(q, q)).collect();
        for (chunk, live) in &self.mem {
            let rows: Vec<usize> = (0..chunk.ids.len())
                .filter(|&r| is_set(live, r))
                .filter(|&r| {
                    req.filter
                        .as_ref()
                        .is_none_or(|f| f.accepts(&chunk.payloads[r]))
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let rows_n = chunk.ids.len();
            let mut scores = vec![0f32; n * rows_n];
            if n >= 8 {
                bitseek_index::exact::product(&queries, &chunk.vectors, dim, &mut scores);
            } else {
                // A product packs the whole batch first; for a few queries, SIMD dots are faster.
                for (q, out) in queries
                    .chunks_exact(dim)
                    .zip(scores.chunks_exact_mut(rows_n))
                {
                    for &r in &rows {
                        out[r] = dot_f32(q, &chunk.vectors[r * dim..(r + 1) * dim]);
                    }
                }
            }
            for (q, row_scores) in scores.chunks_exact(rows_n).enumerate() {
                for &r in &rows {
                    let ip = row_scores[r];
                    let score = match metric {
                        Metric::L2 => {
                            let x = &chunk.vectors[r * dim..(r + 1) * dim];
                            (q2[q] - 2.0 * ip + dot(x, x)).max(0.0)
                        }
                        _ => ip,
                    };
                    found[q].push((score, chunk.ids[r], &chunk.payloads[r]));
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|mut c| {
                let order = |a: &(f32, u64, &Value), b: &(f32, u64, &Value)| {
                    let o = if lower_is_better {
                        a.0.total_cmp(&b.0)
                    } else {
                        b.0.total_cmp(&a.0)
                    };
                    o.then(a.1.cmp(&b.1))
                };
                if c.len() > k {
                    c.select_nth_unstable_by(k - 1, order);
                    c.truncate(k);
                }
                c.sort_unstable_by(order);
                c.into_iter()
                    .map(|(score, id, payload)| ScoredPoint {
                        id,
                        score,
                        payload: payload.clone(),
                    })
                    .collect()
            })
            .collect())
    }
}
