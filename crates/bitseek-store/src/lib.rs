//! A bitseek collection on disk: vectors searched through their codes, with one JSON payload per
//! vector, replaced as a whole and atomically.
//!
//! A collection is a directory:
//!
//! ```text
//! manifest.json          {"format": "bitseek-collection", "version": 1, "generation": 7, "dim",
//!                         "rows", "metric", "quantizer", "keep", "segments": [{"file", "rows"}],
//!                         "payloads": {"file", "rows", "xxh3"}, "extra": {…}}
//! seg-7.bitseek          one immutable segment: a bitseek-index file (codes, kept f32 copy);
//!                        ids are row numbers
//! payloads-7.jsonl       one JSON value per row, in row order
//! ```
//!
//! `manifest.json` is the only file that is ever replaced, and it is replaced by rename: a writer
//! first writes and syncs the new generation's segment and payload files under new names, then
//! swaps the manifest (write a temporary file, sync, rename, sync the directory), and only then
//! deletes the older generation's files. A reader therefore always sees one complete generation,
//! and a writer that dies at any point leaves the previous generation openable. `extra` belongs to
//! the caller (the code index keeps its model fingerprint and file hashes there).
//!
//! This is **the one collection format** of bitseek. Version 1 (above, written by
//! [`Collection::create_or_replace`] for code search) holds exactly one segment (none for an empty
//! collection). Version 2 ([`db`], the live collections the server serves) adds fields and files
//! to the same manifest: several segments with external ids and their own payload files,
//! tombstones, and a write-ahead log. [`db::Collection`] reads both versions; [`Collection::open`]
//! reads version 1 and refuses others with a clear error.
//!
//! Not here: embedding (`bitseek-embed`), chunking code (`bitseek-chunk`), the code layout and the
//! scan (`bitseek-codes`, `bitseek-index`), and concurrent writers (one writer at a time; readers
//! may run alongside it).

pub mod db;
pub mod filter;
pub mod wal;

pub use bitseek_index::{Keep, Metric};
/// The live collection of a [`Db`] (`bitseek_store::db::Collection`); the crate-root
/// [`Collection`] is the single-generation one code search rebuilds whole.
pub use db::Collection as LiveCollection;
pub use db::{
    CollectionConfig, CollectionInfo, CompactReport, Db, DbOptions, Durability, ErrorKind, Point,
    Record, ScoredPoint, SearchRequest,
};
pub use filter::Filter;

use bitseek_index::index::MAX_CANDIDATES;
use bitseek_index::input::Vectors;
use bitseek_index::vector::check_rows;
use bitseek_index::{BuildOptions, Hit, Index, IndexError, SearchParams};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

/// The value of the manifest's `format` field.
pub const FORMAT: &str = "bitseek-collection";
/// The manifest version this code writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name inside a collection directory.
pub const MANIFEST: &str = "manifest.json";

/// What `bitseek` says to do about a damaged collection.
const FIX: &str = "the collection is damaged or incomplete: rebuild it (for a code index, re-run `bitseek index`)";

/// Everything that can go wrong creating, opening or searching a collection. Messages name the file
/// and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory has no manifest.
    #[error("no collection at {}: {} is missing", dir.display(), dir.join(MANIFEST).display())]
    NotFound { dir: PathBuf },
    /// The manifest cannot be read or does not describe a collection this version understands.
    #[error("{}: {reason}; {FIX}", path.display())]
    Manifest { path: PathBuf, reason: String },
    /// The segment file is missing or fails its checks.
    #[error("{}: {reason}; {FIX}", path.display())]
    Segment { path: PathBuf, reason: String },
    /// The payload file is missing, damaged, or does not have one value per row.
    #[error("{}: {reason}; {FIX}", path.display())]
    Payloads { path: PathBuf, reason: String },
    /// Writing, renaming or syncing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The caller passed something a collection cannot hold.
    #[error("invalid input: {0}")]
    Input(String),
    /// Building the segment or searching it failed (bad vectors, bad queries, bad parameters).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// No collection of that name in the database.
    #[error("no collection named {name:?}; create it first (PUT /collections/{name})")]
    UnknownCollection { name: String },
    /// A collection of that name exists already.
    #[error("collection {name:?} already exists; drop it first or choose another name")]
    AlreadyExists { name: String },
    /// The write-ahead log cannot be read.
    #[error("{}: {reason}", path.display())]
    Log { path: PathBuf, reason: String },
    /// The operation is impossible for this collection; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// The store cannot go on safely (a failed fsync, a panicked writer).
    #[error("internal store error: {0}")]
    Internal(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

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
    pub dim: usize,
    pub rows: usize,
    pub metric: Metric,
    /// The quantizer's command-line name (`rabitq`, `sign`, `residual2`, …).
    pub quantizer: String,
    pub keep: Keep,
    /// The segments, in row order (exactly one in version 1, none when `rows` is 0).
    pub segments: Vec<SegmentEntry>,
    pub payloads: PayloadsEntry,
    /// The caller's own metadata, stored as given.
    pub extra: serde_json::Value,
}

/// An open collection: the manifest, the mapped segment and the payloads in memory.
pub struct Collection {
    dir: PathBuf,
    manifest: Manifest,
    segment: Option<Index>,
    payloads: Vec<serde_json::Value>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("dir", &self.dir)
            .field("generation", &self.manifest.generation)
            .field("rows", &self.manifest.rows)
            .finish_non_exhaustive()
    }
}

/// A new generation written to disk but not yet made current. [`commit`](Self::commit) swaps the
/// manifest; dropping it instead deletes its files and leaves the collection as it was.
#[derive(Debug)]
pub struct PendingGeneration {
    dir: PathBuf,
    manifest: Manifest,
    files: Vec<PathBuf>,
    committed: bool,
}

impl Collection {
    /// Writes `vectors` (no ids: row `i` gets id `i`) and one payload per row as a new generation
    /// of the collection in `dir` (created if needed), makes it current atomically, and deletes
    /// older generations' files. Returns the new collection, opened from disk.
    pub fn create_or_replace(
        dir: &Path,
        vectors: Vectors,
        payloads: &[serde_json::Value],
        opts: &BuildOptions,
        extra: serde_json::Value,
    ) -> Result<Collection, StoreError> {
        Self::write_generation(dir, vectors, payloads, opts, extra)?.commit()
    }

    /// The first half of [`create_or_replace`](Self::create_or_replace): writes and syncs the new
    /// generation's segment and payload files without touching the manifest.
    pub fn write_generation(
        dir: &Path,
        vectors: Vectors,
        payloads: &[serde_json::Value],
        opts: &BuildOptions,
        extra: serde_json::Value,
    ) -> Result<PendingGeneration, StoreError> {
        if vectors.ids.is_some() {
            return Err(StoreError::Input(
                "collection rows are their own ids; pass vectors without ids".into(),
            ));
        }
        if vectors.dim == 0 {
            return Err(StoreError::Input("dimension 0".into()));
        }
        if !vectors.data.len().is_multiple_of(vectors.dim) {
            return Err(StoreError::Input(format!(
                "{} values are not a whole number of {}-dimensional vectors",
                vectors.data.len(),
                vectors.dim
            )));
        }
        let rows = vectors.rows();
        if payloads.len() != rows {
            return Err(StoreError::Input(format!(
                "{rows} vectors but {} payloads; give one payload per vector",
                payloads.len()
            )));
        }
        if !extra.is_object() {
            return Err(StoreError::Input("extra must be a JSON object".into()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let generation = next_generation(dir);
        let dim = vectors.dim;
        let mut pending = PendingGeneration {
            dir: dir.to_owned(),
            manifest: Manifest {
                format: FORMAT.into(),
                version: VERSION,
                generation,
                dim,
                rows,
                metric: opts.metric,
                quantizer: opts.quantizer.to_string(),
                keep: opts.keep,
                segments: Vec::new(),
                payloads: PayloadsEntry {
                    file: format!("payloads-{generation}.jsonl"),
                    rows,
                    xxh3: String::new(),
                },
                extra,
            },
            files: Vec::new(),
            committed: false,
        };

        if rows > 0 {
            let file = format!("seg-{generation}.bitseek");
            let path = dir.join(&file);
            let index = Index::build(vectors, &path, opts, &|_| {})?;
            pending.files.push(path.clone());
            index.save(&path)?;
            pending.manifest.segments.push(SegmentEntry {
                file,
                rows,
                payloads: None,
            });
        }

        let mut bytes = Vec::with_capacity(rows * 128);
        for p in payloads {
            serde_json::to_writer(&mut bytes, p)
                .map_err(|e| StoreError::Input(format!("payload cannot be written: {e}")))?;
            bytes.push(b'\n');
        }
        pending.manifest.payloads.xxh3 = format!("{:016x}", xxh3_64(&bytes));
        let path = dir.join(&pending.manifest.payloads.file);
        pending.files.push(path.clone());
        write_synced(&path, &bytes)?;
        sync_dir(dir)?;
        Ok(pending)
    }

    /// Opens the collection in `dir`: reads and checks the manifest, opens (and checksums) the
    /// segment, and reads the payloads, checking there is one per row.
    pub fn open(dir: &Path) -> Result<Collection, StoreError> {
        let (path, bytes) = read_manifest_bytes(dir)?;
        let manifest = parse_manifest(&path, &bytes)?;

        let segment = match manifest.segments.first() {
            None => None,
            Some(entry) => Some(open_segment(
                &dir.join(&entry.file),
                &Promise {
                    generation: manifest.generation,
                    rows: entry.rows,
                    dim: manifest.dim,
                    metric: manifest.metric,
                    keep: manifest.keep,
                    quantizer: Some(&manifest.quantizer),
                    row_ids: true,
                },
            )?),
        };

        let payloads = read_payloads(dir, &manifest.payloads)?;
        Ok(Collection {
            dir: dir.to_owned(),
            manifest,
            segment,
            payloads,
        })
    }

    /// The directory the collection lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The caller's metadata from the manifest.
    pub fn extra(&self) -> &serde_json::Value {
        &self.manifest.extra
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.manifest.rows
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// The payload of `row`, if there is such a row.
    pub fn payload(&self, row: usize) -> Option<&serde_json::Value> {
        self.payloads.get(row)
    }

    /// All payloads in row order.
    pub fn payloads(&self) -> &[serde_json::Value] {
        &self.payloads
    }

    /// The segment, if the collection has rows.
    pub fn segment(&self) -> Option<&Index> {
        self.segment.as_ref()
    }

    /// Bytes on disk of the current generation: manifest, segment and payloads.
    pub fn size_bytes(&self) -> u64 {
        let mut files = vec![MANIFEST.to_string(), self.manifest.payloads.file.clone()];
        files.extend(self.manifest.segments.iter().map(|s| s.file.clone()));
        files
            .iter()
            .filter_map(|f| fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The kept `f32` vectors of `rows`, concatenated in the order given (normalised when the
    /// metric is cosine), so a caller can carry them into the next generation without recomputing
    /// them.
    pub fn vectors_of(&self, rows: &[usize]) -> Result<Vec<f32>, StoreError> {
        let dim = self.dim();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let kept = self
            .segment
            .as_ref()
            .and_then(|s| s.kept_f32())
            .ok_or_else(|| {
                StoreError::Input(format!(
                    "the collection in {} keeps no f32 vectors (keep = {}); rebuild it with keep f32 to reuse vectors",
                    self.dir.display(),
                    self.manifest.keep
                ))
            })?;
        let mut out = Vec::with_capacity(rows.len() * dim);
        for &r in rows {
            let v = kept.get(r * dim..(r + 1) * dim).ok_or_else(|| {
                StoreError::Input(format!("row {r} is past the {} rows", self.rows()))
            })?;
            out.extend_from_slice(v);
        }
        Ok(out)
    }

    /// Top-`params.k` rows for each row-major query (of the collection's dimension), best first;
    /// a hit's `id` is its row.
    ///
    /// With a `filter`, only rows whose payload it accepts come back: the search takes more
    /// candidates from the codes (4× k, then 4× more each round, up to every row) until each query
    /// has `k` accepted hits or no row is left, so `k` hits come back whenever `k` rows pass.
    pub fn search(
        &self,
        queries: &[f32],
        params: &SearchParams,
        filter: Option<&dyn Fn(&serde_json::Value) -> bool>,
    ) -> Result<Vec<Vec<Hit>>, StoreError> {
        let dim = self.dim();
        if params.k == 0 {
            return Err(IndexError::BadParam("k must be at least 1".into()).into());
        }
        // Checked here too, so an empty collection refuses what a full one would.
        let n = check_rows(queries, dim, self.manifest.metric).map_err(IndexError::from)?;
        let Some(segment) = &self.segment else {
            return Ok(vec![Vec::new(); n]);
        };
        let rows = self.rows();
        let Some(filter) = filter else {
            return Ok(segment.search_batch(queries, dim, params)?);
        };
        let most = rows.min(MAX_CANDIDATES);
        let mut out: Vec<Vec<Hit>> = vec![Vec::new(); n];
        let mut pending: Vec<usize> = (0..n).collect();
        let mut want = params.k.saturating_mul(4);
        while !pending.is_empty() {
            let take = want.min(most);
            let mut p = *params;
            p.k = take;
            p.oversample = params.oversample.min(MAX_CANDIDATES / take).max(1);
            let mut batch = Vec::with_capacity(pending.len() * dim);
            for &q in &pending {
                batch.extend_from_slice(&queries[q * dim..(q + 1) * dim]);
            }
            let found = segment.search_batch(&batch, dim, &p)?;
            let mut again = Vec::new();
            for (&q, hits) in pending.iter().zip(found) {
                let accepted: Vec<Hit> = hits
                    .into_iter()
                    .filter(|h| self.payloads.get(h.id as usize).is_some_and(filter))
                    .take(params.k)
                    .collect();
                if accepted.len() < params.k && take < most {
                    again.push(q);
                } else {
                    out[q] = accepted;
                }
            }
            pending = again;
            want = want.saturating_mul(4);
        }
        Ok(out)
    }
}

impl PendingGeneration {
    /// The generation this will become.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// Makes this generation current (manifest written to a temporary file, synced, renamed over
    /// `manifest.json`, directory synced), deletes older generations' files, and opens the result.
    pub fn commit(mut self) -> Result<Collection, StoreError> {
        let bytes =
            serde_json::to_vec_pretty(&self.manifest).map_err(|e| StoreError::Manifest {
                path: self.dir.join(MANIFEST),
                reason: format!("cannot serialise: {e}"),
            })?;
        let path = self.dir.join(MANIFEST);
        write_synced(&path, &bytes)?;
        sync_dir(&self.dir)?;
        self.committed = true;
        remove_stale(&self.dir, self.manifest.generation);
        Collection::open(&self.dir)
    }
}

impl Drop for PendingGeneration {
    fn drop(&mut self) {
        if !self.committed {
            for f in &self.files {
                let _ = fs::remove_file(f);
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file that is synced and renamed into place.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(())
}

/// Makes renames in `dir` durable (POSIX needs the directory itself synced).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = (dir, File::open);
    Ok(())
}

/// The path and bytes of `dir/manifest.json`; a missing one is [`StoreError::NotFound`].
pub(crate) fn read_manifest_bytes(dir: &Path) -> Result<(PathBuf, Vec<u8>), StoreError> {
    let path = dir.join(MANIFEST);
    match fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound {
            dir: dir.to_owned(),
        }),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// What a manifest promises about one of its segment files.
pub(crate) struct Promise<'a> {
    /// The manifest's generation (named when the file is missing).
    pub generation: u64,
    pub rows: usize,
    pub dim: usize,
    pub metric: Metric,
    pub keep: Keep,
    /// The quantizer's name, when every segment must use the manifest's.
    pub quantizer: Option<&'a str>,
    /// Whether the segment's ids must be its row numbers (collections before external ids).
    pub row_ids: bool,
}

/// Opens the segment at `path` and checks it against the manifest's `promise`: the file is there,
/// passes its checksums ([`Index::open`]), and holds the promised rows, dimension, metric, kept
/// copy (and quantizer and ids, when promised). Every failure names the file.
pub(crate) fn open_segment(path: &Path, promise: &Promise) -> Result<Index, StoreError> {
    let bad = |reason: String| StoreError::Segment {
        path: path.to_owned(),
        reason,
    };
    if !path.is_file() {
        return Err(bad(format!(
            "segment file of generation {} is missing",
            promise.generation
        )));
    }
    let index = Index::open(path).map_err(|e| bad(e.to_string()))?;
    let m = index.meta();
    let quantizer = m.quantizer.to_string();
    if m.dim != promise.dim
        || m.rows != promise.rows
        || m.metric != promise.metric
        || m.keep != promise.keep
        || promise.quantizer.is_some_and(|q| q != quantizer)
    {
        let promised_q = promise
            .quantizer
            .map_or(String::new(), |q| format!("{q}, "));
        return Err(bad(format!(
            "segment holds {} rows of dimension {} ({}, {quantizer}, keep {}) but the manifest \
             promises {} rows of dimension {} ({}, {promised_q}keep {})",
            m.rows,
            m.dim,
            m.metric,
            m.keep,
            promise.rows,
            promise.dim,
            promise.metric,
            promise.keep
        )));
    }
    if promise.row_ids
        && index
            .ids()
            .iter()
            .enumerate()
            .any(|(i, &id)| id != i as u64)
    {
        return Err(bad("segment ids are not its row numbers".into()));
    }
    Ok(index)
}

/// The generation number in a file name this crate writes: `seg-<g>.bitseek`, `payloads-<g>.jsonl`
/// (and their `.tmp` twins).
fn generation_of(name: &str) -> Option<u64> {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    let g = name
        .strip_prefix("seg-")
        .and_then(|s| s.strip_suffix(".bitseek"))
        .or_else(|| {
            name.strip_prefix("payloads-")
                .and_then(|s| s.strip_suffix(".jsonl"))
        })?;
    g.parse().ok()
}

/// One past the newest generation in `dir`: the manifest's, or any file's left by an interrupted
/// writer (so a new generation never shares a name with an old file).
fn next_generation(dir: &Path) -> u64 {
    let from_manifest = fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("generation").and_then(|g| g.as_u64()))
        .unwrap_or(0);
    let from_files = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| generation_of(&e.file_name().to_string_lossy()))
        .max()
        .unwrap_or(0);
    from_manifest.max(from_files) + 1
}

/// Deletes every generation's files but `keep`'s, and stray temporary files. Best effort: a file
/// that cannot be deleted now is deleted by the next writer.
fn remove_stale(dir: &Path, keep: u64) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = match generation_of(&name) {
            Some(g) => g != keep || name.ends_with(".tmp"),
            None => name == format!("{MANIFEST}.tmp"),
        };
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A file name from a manifest must name a file inside the collection directory.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && Path::new(name).file_name().is_some()
}

pub(crate) fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, StoreError> {
    let bad = |reason: String| StoreError::Manifest {
        path: path.to_owned(),
        reason,
    };
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
        Some(v) if v == db::LIVE_VERSION as u64 => {
            return Err(bad(format!(
                "a live collection (format version {v}, with a write-ahead log): open it with \
                 bitseek_store::db::Collection::open or serve it with `bitseek serve`"
            )))
        }
        Some(v) if v > VERSION as u64 => {
            return Err(StoreError::Manifest {
                path: path.to_owned(),
                reason: format!(
                    "collection format version {v} is newer than this bitseek reads ({VERSION})"
                ),
            })
        }
        other => return Err(bad(format!("unknown collection format version {other:?}"))),
    }
    let m: Manifest = serde_json::from_value(value)
        .map_err(|e| bad(format!("does not describe a collection ({e})")))?;
    if m.dim == 0 {
        return Err(bad("dimension 0".into()));
    }
    if m.segments.len() > 1 {
        return Err(bad(format!(
            "{} segments; this version of bitseek reads collections of one segment",
            m.segments.len()
        )));
    }
    let seg_rows: usize = m.segments.iter().map(|s| s.rows).sum();
    if seg_rows != m.rows || m.payloads.rows != m.rows || (m.rows > 0) == m.segments.is_empty() {
        return Err(bad(format!(
            "{} rows, but the segments hold {seg_rows} and the payloads {}",
            m.rows, m.payloads.rows
        )));
    }
    for f in m.segments.iter().map(|s| &s.file).chain([&m.payloads.file]) {
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

pub(crate) fn read_payloads(
    dir: &Path,
    entry: &PayloadsEntry,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let path = dir.join(&entry.file);
    let bad = |reason: String| StoreError::Payloads {
        path: path.clone(),
        reason,
    };
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(bad("payload file is missing".into()))
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let hash = format!("{:016x}", xxh3_64(&bytes));
    if hash != entry.xxh3 {
        return Err(bad(format!(
            "checksum mismatch (xxh3 {hash}, the manifest records {})",
            entry.xxh3
        )));
    }
    let mut out = Vec::with_capacity(entry.rows);
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let v = serde_json::from_slice(line)
            .map_err(|e| bad(format!("line {} is not valid JSON ({e})", i + 1)))?;
        out.push(v);
    }
    if out.len() != entry.rows {
        return Err(bad(format!(
            "{} payloads for {} rows",
            out.len(),
            entry.rows
        )));
    }
    Ok(out)
}
