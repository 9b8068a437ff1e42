//! Tombstones: which rows of each segment are dead (deleted, or replaced by a newer copy), kept
//! in memory as live-row masks and on disk, per generation, as `tombstones-<g>.bin`.

use super::segment::Segment;
use super::Live;
use crate::error::{Fix, StoreError};
use crate::files::write_synced;
use crate::manifest::PayloadsEntry;
use crate::row_mask::RowMask;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

const TOMB_MAGIC: &[u8; 8] = b"BSTOMB01";

/// The live rows of a segment of `rows` rows whose `dead` rows are known.
pub(super) fn live_rows(rows: usize, dead: &[u32]) -> RowMask {
    let mut live = RowMask::all(rows);
    for &r in dead {
        live.remove(r as usize);
    }
    live
}

/// `tombstones-<g>.bin`: magic, then per segment a `u32` count and that many `u32` dead rows,
/// increasing. `None` when no segment has a dead row.
pub(super) fn write_tombstones(
    dir: &Path,
    generation: u64,
    segments: &[(Arc<Segment>, Live)],
) -> Result<Option<PayloadsEntry>, StoreError> {
    let mut bytes = TOMB_MAGIC.to_vec();
    let mut total = 0;
    for (seg, live) in segments {
        let dead: Vec<u32> = (0..seg.rows())
            .filter(|&r| !live.contains(r))
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

pub(super) fn read_tombstones(
    dir: &Path,
    entry: &PayloadsEntry,
    segments: &[Arc<Segment>],
) -> Result<Vec<Vec<u32>>, StoreError> {
    let path = dir.join(&entry.file);
    let bytes = fs::read(&path).map_err(|e| StoreError::Segment {
        path: path.clone(),
        reason: format!("tombstone file cannot be read ({e})"),
        fix: Fix::Restore,
    })?;
    let hash = format!("{:016x}", xxh3_64(&bytes));
    if hash != entry.xxh3 {
        return Err(StoreError::Segment {
            path,
            reason: format!(
                "tombstone checksum mismatch (xxh3 {hash}, the manifest records {})",
                entry.xxh3
            ),
            fix: Fix::Restore,
        });
    }
    let rows: Vec<usize> = segments.iter().map(|s| s.rows()).collect();
    parse_tombstones(&bytes, &rows, entry.rows).map_err(|reason| StoreError::Segment {
        path,
        reason,
        fix: Fix::Restore,
    })
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
