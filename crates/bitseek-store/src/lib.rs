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
//! payloads-7.offsets     where each row's line starts (`row_offsets.rs`; the manifest's
//!                        "payload_offsets": {"file", "rows", "xxh3"}; absent in older generations)
//! verified.json          which files of which generation were last verified (a cache; `verified.rs`)
//! ```
//!
//! `manifest.json` is the only file that is ever replaced, and it is replaced by rename: a writer
//! first writes and syncs the new generation's segment and payload files under new names, then
//! swaps the manifest (write a temporary file, sync, rename, sync the directory), and only then
//! deletes the older generation's files. A reader therefore always sees one complete generation,
//! and a writer that dies at any point leaves the previous generation openable. `extra` belongs to
//! the caller (the code index keeps its model fingerprint and file hashes there).
//!
//! This is **the one collection format** of bitseek, read by two kinds of collection:
//!
//! - [`GenerationCollection`] (`generation.rs`, what code search keeps): version 1 (above), one
//!   segment (none for an empty collection) whose ids are its rows, every write a whole new
//!   generation ([`GenerationCollection::create_or_replace`]). It reads version 1 and refuses
//!   others with an error that says what to do.
//! - [`LiveCollection`] (`db/`, what the server serves, grouped in a [`Db`]): version 2 adds fields
//!   and files to the same manifest: several segments with external ids and their own payload
//!   files, tombstones, and a write-ahead log, for upserts and deletes in place. It reads both
//!   versions.
//!
//! Both build on `manifest.rs` (the version-1 manifest) and `files.rs` (atomic writes, segment
//! and payload files checked against the manifest), and filter inside the scan through an
//! allowed-rows mask (`row_mask.rs`), so `k` hits come back whenever `k` rows pass.
//!
//! Not here: embedding (`bitseek-embed`), chunking code (`bitseek-chunk`), the code layout and the
//! scan (`bitseek-codes`, `bitseek-index`), and concurrent writers (one writer at a time; readers
//! may run alongside it).

#![warn(missing_docs)]

pub mod db;
mod error;
pub mod faults;
mod files;
pub mod filter;
mod generation;
mod lazy_payloads;
mod manifest;
mod row_mask;
mod row_offsets;
mod verified;
pub mod wal;

pub use bitseek_index::{Keep, Metric};
pub use db::{
    CollectionConfig, CollectionInfo, CompactReport, Db, DbOptions, Durability, IndexKind,
    LiveCollection, LostWrites, Point, Record, ScoredPoint, SearchRequest, SegmentIndex,
};
pub use error::{ErrorKind, Fix, StoreError};
pub use filter::Filter;
pub use generation::{GenerationCollection, PendingGeneration};
pub use manifest::{Manifest, PayloadsEntry, SegmentEntry, FORMAT, MANIFEST, VERSION};
pub use verified::FileIdentity;
