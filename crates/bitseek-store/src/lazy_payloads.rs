//! A generation's payload file, mapped and parsed only as far as it is used.
//!
//! A search needs the payloads of its `k` hits, not all of them: parsing every line of the file on
//! each open cost more than the search itself at 100k rows. The file is mapped, and so is its
//! row-offset table ([`crate::row_offsets`]): a row's payload is its line, found in the table and
//! parsed alone. A generation written before the table finds its lines with one `memchr` pass on
//! first lookup instead. The first call for all payloads (a filter, a re-index) checks the file's
//! checksum and parses every line once. A generation being verified ([`crate::verified`]) is read
//! whole at open, and its table is checked against the lines it read.

use crate::error::{io_err, Fix, StoreError};
use crate::manifest::PayloadsEntry;
use crate::row_offsets::{line_starts, RowOffsets};
use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use xxhash_rust::xxh3::xxh3_64;

/// The payload file of an open generation.
#[derive(Debug)]
pub(crate) struct LazyPayloads {
    path: PathBuf,
    entry: PayloadsEntry,
    fix: Fix,
    /// The file's bytes (`None` for an empty file, which cannot be mapped everywhere).
    map: Option<Mmap>,
    /// The row-offset table, header and length checked (`None` in older generations).
    offsets: Option<(PathBuf, PayloadsEntry, RowOffsets)>,
    /// Where each row's line starts and ends, found on first use.
    lines: OnceLock<Result<Vec<(usize, usize)>, String>>,
    /// Every payload, checksum checked, parsed on first use.
    all: OnceLock<Result<Vec<serde_json::Value>, String>>,
}

impl LazyPayloads {
    /// Maps the payload file `entry` names in `dir`, and its row-offset table when `offsets`
    /// names one (checking the table's header and length). With `verify`, checks both checksums,
    /// parses every line now (failing as [`read_payloads`](crate::files::read_payloads) does) and
    /// checks that the table holds exactly the lines' starts.
    pub(crate) fn open(
        dir: &Path,
        entry: &PayloadsEntry,
        offsets: Option<&PayloadsEntry>,
        fix: Fix,
        verify: bool,
    ) -> Result<LazyPayloads, StoreError> {
        let path = dir.join(&entry.file);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Payloads {
                    path,
                    reason: "payload file is missing".into(),
                    fix,
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: read-only. Payload files are written once under a new name and never
            // modified in place (the crate docs); every range read from the map is checked
            // against its length.
            Some(unsafe { Mmap::map(&file) }.map_err(io_err(&path))?)
        };
        let offsets = match offsets {
            None => None,
            Some(o) => {
                let path = dir.join(&o.file);
                let bad = |reason: String| StoreError::Payloads {
                    path: path.clone(),
                    reason,
                    fix,
                };
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(bad("the payload file's row-offset table is missing".into()))
                    }
                    Err(e) => return Err(io_err(&path)(e)),
                };
                let table = RowOffsets::open(&file, entry.rows).map_err(bad)?;
                Some((path, o.clone(), table))
            }
        };
        let payloads = LazyPayloads {
            path,
            entry: entry.clone(),
            fix,
            map,
            offsets,
            lines: OnceLock::new(),
            all: OnceLock::new(),
        };
        if verify {
            payloads.all()?;
            payloads.check_offsets()?;
        }
        Ok(payloads)
    }

    /// Checks the row-offset table's checksum and that it holds exactly the payload file's line
    /// starts (nothing to check without a table).
    fn check_offsets(&self) -> Result<(), StoreError> {
        let Some((path, entry, table)) = &self.offsets else {
            return Ok(());
        };
        let bad = |reason: String| StoreError::Payloads {
            path: path.clone(),
            reason,
            fix: self.fix,
        };
        let hash = format!("{:016x}", xxh3_64(table.bytes()));
        if hash != entry.xxh3 {
            return Err(bad(format!(
                "checksum mismatch (xxh3 {hash}, the manifest records {})",
                entry.xxh3
            )));
        }
        let bytes = self.bytes();
        table
            .check_against(&line_starts(bytes), bytes.len())
            .map_err(bad)
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    fn bad(&self, reason: String) -> StoreError {
        StoreError::Payloads {
            path: self.path.clone(),
            reason,
            fix: self.fix,
        }
    }

    /// Every payload in row order, after checking the file's checksum and that it holds one JSON
    /// value per row.
    pub(crate) fn all(&self) -> Result<&[serde_json::Value], StoreError> {
        let parsed = self.all.get_or_init(|| {
            let bytes = self.bytes();
            let hash = format!("{:016x}", xxh3_64(bytes));
            if hash != self.entry.xxh3 {
                return Err(format!(
                    "checksum mismatch (xxh3 {hash}, the manifest records {})",
                    self.entry.xxh3
                ));
            }
            let mut out = Vec::with_capacity(self.entry.rows);
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let v = serde_json::from_slice(line)
                    .map_err(|e| format!("line {} is not valid JSON ({e})", i + 1))?;
                out.push(v);
            }
            if out.len() != self.entry.rows {
                return Err(format!(
                    "{} payloads for {} rows",
                    out.len(),
                    self.entry.rows
                ));
            }
            Ok(out)
        });
        parsed.as_deref().map_err(|reason| self.bad(reason.clone()))
    }

    /// Each row's line, as byte ranges: the non-empty lines of the file, one per row.
    fn lines(&self) -> Result<&[(usize, usize)], StoreError> {
        let found = self.lines.get_or_init(|| {
            let bytes = self.bytes();
            let mut lines = Vec::with_capacity(self.entry.rows);
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]) {
                if end > start {
                    lines.push((start, end));
                }
                start = end + 1;
            }
            if lines.len() != self.entry.rows {
                return Err(format!(
                    "{} payloads for {} rows",
                    lines.len(),
                    self.entry.rows
                ));
            }
            Ok(lines)
        });
        found.as_deref().map_err(|reason| self.bad(reason.clone()))
    }

    /// The payload of `row`: `Ok(None)` past the last row, an error when its line is not JSON.
    pub(crate) fn get(&self, row: usize) -> Result<Option<serde_json::Value>, StoreError> {
        if let Some(Ok(all)) = self.all.get() {
            return Ok(all.get(row).cloned());
        }
        let line = match &self.offsets {
            Some((path, _, table)) => {
                table
                    .line(self.bytes(), row)
                    .map_err(|reason| StoreError::Payloads {
                        path: path.clone(),
                        reason,
                        fix: self.fix,
                    })?
            }
            None => self.lines()?.get(row).copied(),
        };
        let Some((start, end)) = line else {
            return Ok(None);
        };
        serde_json::from_slice(&self.bytes()[start..end])
            .map(Some)
            .map_err(|e| self.bad(format!("the payload of row {row} is not valid JSON ({e})")))
    }
}
