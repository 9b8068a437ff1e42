//! The payload file's row-offset table (`payloads-<g>.offsets`): where each row's line starts, so
//! that a search reads its `k` hits' lines without scanning the whole payload file for newlines
//! (at 100k rows that scan was most of an open-and-search).
//!
//! Version 1, all integers little-endian:
//!
//! ```text
//! bytes 0..8    magic  b"bsrowoff"
//! bytes 8..12   u32    version (1)
//! bytes 12..16  u32    0
//! bytes 16..24  u64    rows
//! bytes 24..    u64 × (rows + 1): the byte where row i's line starts; the last is the payload
//!               file's length. Row i's line is [start i, start i+1 - 1), its '\n' excluded.
//! ```
//!
//! The manifest names the table (`payload_offsets`, with its rows and xxh3 like the payload file)
//! and the generation's verification checks its checksum and that every offset is the start of
//! the line the payload file has there. A generation without one (written before the table) is
//! read by scanning for newlines; the next write adds it. Between verifications every lookup
//! still checks that its two offsets are in order, inside the file and on line boundaries, so a
//! damaged table is an error, never a read out of bounds or half a line.

use memmap2::Mmap;
use std::fs::File;

/// The table's magic bytes.
const MAGIC: &[u8; 8] = b"bsrowoff";
/// The version this code writes and reads.
pub(crate) const ROW_OFFSETS_VERSION: u32 = 1;
/// Bytes before the first offset.
const HEADER: usize = 24;

/// The table's bytes for line starts `starts` (one per row) of a payload file of `len` bytes.
pub(crate) fn encode(starts: &[u64], len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 8 * (starts.len() + 1));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&ROW_OFFSETS_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(starts.len() as u64).to_le_bytes());
    for &s in starts.iter().chain([&len]) {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A mapped table whose header and length were checked against the promised rows.
#[derive(Debug)]
pub(crate) struct RowOffsets {
    map: Mmap,
    rows: usize,
}

impl RowOffsets {
    /// Maps `file` and checks its header and length for `rows` rows; the error says what is
    /// wrong (the caller names the file).
    pub(crate) fn open(file: &File, rows: usize) -> Result<RowOffsets, String> {
        // SAFETY: read-only. Offset tables are written once under a new name and never modified
        // in place (the crate docs); every read below is checked against the map's length.
        let map = unsafe { Mmap::map(file) }.map_err(|e| format!("cannot be mapped ({e})"))?;
        check_header(&map, rows)?;
        Ok(RowOffsets { map, rows })
    }

    /// The start of line `i` (`i == rows`: the payload file's length).
    fn at(&self, i: usize) -> u64 {
        let at = HEADER + 8 * i;
        u64::from_le_bytes(self.map[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The byte range of `row`'s line in `payloads` (without its '\n'), checked to lie inside
    /// the file on line boundaries; `Ok(None)` past the last row.
    pub(crate) fn line(
        &self,
        payloads: &[u8],
        row: usize,
    ) -> Result<Option<(usize, usize)>, String> {
        if row >= self.rows {
            return Ok(None);
        }
        let (start, next) = (self.at(row), self.at(row + 1));
        let len = payloads.len() as u64;
        let bounded = start < next && next <= len;
        if !bounded
            || payloads[next as usize - 1] != b'\n'
            || (start > 0 && payloads[start as usize - 1] != b'\n')
        {
            return Err(format!(
                "the row-offset table's line of row {row} ({start}..{next}) is not a line of the \
                 {len}-byte payload file"
            ));
        }
        Ok(Some((start as usize, next as usize - 1)))
    }

    /// Checks that the table holds exactly the line starts `starts` of a file of `len` bytes.
    pub(crate) fn check_against(&self, starts: &[usize], len: usize) -> Result<(), String> {
        if starts.len() != self.rows {
            return Err(format!(
                "the row-offset table holds {} rows, the payload file {}",
                self.rows,
                starts.len()
            ));
        }
        for (row, &s) in starts.iter().chain([&len]).enumerate() {
            if self.at(row) != s as u64 {
                return Err(format!(
                    "the row-offset table puts line {row} at byte {}, the payload file at {s}",
                    self.at(row)
                ));
            }
        }
        Ok(())
    }

    /// The table's bytes (for its checksum).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }
}

fn check_header(bytes: &[u8], rows: usize) -> Result<(), String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("not a row-offset table (bad magic)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != ROW_OFFSETS_VERSION {
        return Err(format!(
            "row-offset table version {version}; this bitseek reads version {ROW_OFFSETS_VERSION}"
        ));
    }
    let held = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if held != rows as u64 {
        return Err(format!(
            "the row-offset table is for {held} rows, the manifest promises {rows}"
        ));
    }
    let want = HEADER as u64 + 8 * (rows as u64 + 1);
    if bytes.len() as u64 != want {
        return Err(format!(
            "the row-offset table is {} bytes, {want} for {rows} rows (truncated or extended)",
            bytes.len()
        ));
    }
    Ok(())
}

/// The byte where each non-empty line of `bytes` starts.
pub(crate) fn line_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]) {
        if end > start {
            starts.push(start);
        }
        start = end + 1;
    }
    starts
}

/// The table file's name for payload file `payloads` (`payloads-7.jsonl` → `payloads-7.offsets`).
pub(crate) fn table_name(payloads: &str) -> String {
    let stem = payloads.strip_suffix(".jsonl").unwrap_or(payloads);
    format!("{stem}.offsets")
}
