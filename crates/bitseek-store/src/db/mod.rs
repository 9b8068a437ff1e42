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
//! **Background flushes** (the default, [`DbOptions::background_flush`]): the write that finds
//! the memtable full does not write the segment. It *freezes* the memtable instead: the log is
//! synced, a new empty log is created and the manifest is swapped to name it as `log` and the
//! old one as `frozen_log` (a few fsyncs, no segment written), and writes go on into a new
//! memtable. The frozen memtable stays searched and its rows stay in its log; the flusher thread
//! (`flush.rs`) writes them into `seg-<g>.bitseek` outside the writer lock, then, under the lock
//! for a tombstone file and a manifest swap, adds the segment and drops the frozen log. Rows of
//! the frozen memtable replaced or deleted meanwhile are dead in the new segment in memory; on
//! disk the new generation holds every segment as of the freeze, and the active log, replayed
//! on top, brings it up to date, so damage to that log loses only its own writes. Opening
//! replays `frozen_log`, freezes it again and flushes it again; a segment file the crash left
//! unnamed is deleted. Back-pressure: when the new memtable fills too before the flush lands,
//! the write that needs room waits for it (the writer released meanwhile); a failed background
//! flush is redone by that write, under the lock, which then gets its error. Compaction, a
//! checkpoint or a quantizer change write the frozen rows with the rest; a flush under way then
//! finds its memtable gone and deletes its file.
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
//! **Sub-linear segments**: with [`CollectionConfig::index`] set (IVF), a segment of at least
//! `min_rows` rows gets its index from a background thread (`builds.rs`), built from the kept
//! `f32` copy outside the writer lock. The segment is searched flat until then; the writer then
//! swaps it in under its lock: the built file (`seg-<g>-<kind>-<old>.bitseek`, synced) is named in
//! the flat file's place by a new manifest generation, and the flat file is deleted. A crash before
//! the manifest lands leaves the flat segment and an orphan build file, deleted on open. Searches
//! probe `effort` lists with the allowed-rows mask, or score only the allowed rows exactly when
//! the filter passes too few for probing to pay (see `snapshot.rs`).
//!
//! **Opening** replays the log on top of the manifest's segments. A log whose tail is torn (a
//! record cut short, failing its checksum, or zero-filled) is cut at the last good record. Damage
//! in the middle, with intact records after it, is stepped over ([`crate::wal::scan`]): the later
//! records are replayed, the log is rewritten without the damaged bytes, and the lost writes'
//! sequence numbers are reported ([`CollectionInfo::lost_writes`]). What was cut or skipped is
//! reported in [`CollectionInfo::recovery`].
//!
//! Where each part lives: `database.rs` the [`Db`] (collections in a directory); `config.rs` the
//! configuration and the values the API takes and returns; `collection.rs` the public
//! [`LiveCollection`] API; `writer.rs` the writer's state, log replay and every change of
//! generation; `flush.rs` the background flusher; `group_commit.rs` appending to the log and the shared `fsync`; `snapshot.rs`
//! [`Snapshot`] and search; `segment.rs` segments, their field indexes and filter masks, and
//! segment writing; `builds.rs` the background index builder; `tombstones.rs` dead rows on disk; `manifest.rs` the [`LiveManifest`] and the
//! file names each generation writes.

mod builds;
mod collection;
mod config;
mod database;
mod flush;
mod group_commit;
mod manifest;
mod read_only;
mod segment;
mod snapshot;
mod tombstones;
mod worker;
mod writer;

pub use collection::{BuildPause, FlushPause, LiveCollection, WritePause};
pub use config::{
    CollectionConfig, CollectionInfo, CompactReport, DbOptions, Durability, IndexKind, LostWrites,
    Point, Record, ScoredPoint, SearchRequest, SegmentIndex, DEFAULT_FLUSH_ROWS,
    DEFAULT_INDEX_MIN_ROWS, DEFAULT_OVERSAMPLE, LIVE_VERSION, MAX_DIM, MAX_WINDOW_MS,
};
pub use database::{valid_name, Db};
pub use manifest::{LiveManifest, LogEntry};
pub use snapshot::Snapshot;
pub use tombstones::parse_tombstones;

use crate::error::StoreError;
use crate::row_mask::RowMask;
use std::sync::{Arc, Mutex, MutexGuard};

/// The live rows of a segment or memtable batch, shared by snapshots and copied when the writer
/// changes it.
type Live = Arc<RowMask>;

/// Locks `m`; a poisoned lock means a writer panicked half-way, so the collection refuses to go on.
fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| {
        StoreError::Internal("a writer panicked; restart to recover from the log".into())
    })
}
