//! The files of a collection directory, shared by both kinds of collection: atomic replacement,
//! directory syncs, and segment and payload files checked against what the manifest promises.

use crate::error::{io_err, Fix, StoreError};
use crate::faults;
use crate::manifest::{PayloadsEntry, MANIFEST};
use crate::row_offsets;
use bitseek_index::{Index, Keep, Metric};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

/// Writes `bytes` to `path` through a temporary file that is synced and renamed into place.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = faults::open(
            OpenOptions::new().write(true).create(true).truncate(true),
            &tmp,
        )?;
        faults::write_all(&mut f, &tmp, bytes)?;
        faults::sync(&f, &tmp, false)?;
        drop(f);
        faults::rename(&tmp, path)
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
        .and_then(|d| faults::sync(&d, dir, false))
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

/// A file name from a manifest must name a file inside the collection directory.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && Path::new(name).file_name().is_some()
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
    /// What to do when the file breaks the promise.
    pub fix: Fix,
}

/// Opens the segment at `path` and checks it against the manifest's `promise`: the file is there,
/// passes its checksums ([`Index::open`]), and holds the promised rows, dimension, metric, kept
/// copy (and quantizer and ids, when promised). Every failure names the file.
pub(crate) fn open_segment(path: &Path, promise: &Promise) -> Result<Index, StoreError> {
    open_segment_with(path, promise, true)
}

/// [`open_segment`], verifying the section checksums and the ids only when `verify` (a caller
/// that verified this very file before passes `false`: structure, header and shapes are still
/// checked, so a search can never read out of bounds).
pub(crate) fn open_segment_with(
    path: &Path,
    promise: &Promise,
    verify: bool,
) -> Result<Index, StoreError> {
    let bad = |reason: String| StoreError::Segment {
        path: path.to_owned(),
        reason,
        fix: promise.fix,
    };
    if !path.is_file() {
        return Err(bad(format!(
            "segment file of generation {} is missing",
            promise.generation
        )));
    }
    let index = if verify {
        Index::open(path)
    } else {
        Index::open_unverified(path)
    }
    .map_err(|e| bad(e.to_string()))?;
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
    if verify
        && promise.row_ids
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

/// Writes `payloads` (one compact JSON value a line) to `dir/file`, synced, and returns the
/// manifest's entry for it.
pub(crate) fn write_payloads(
    dir: &Path,
    file: String,
    payloads: &[serde_json::Value],
) -> Result<PayloadsEntry, StoreError> {
    let (bytes, _) = payload_lines(payloads)?;
    write_entry(dir, file, payloads.len(), &bytes)
}

/// [`write_payloads`], and beside it the file's row-offset table (`row_offsets.rs`) named after
/// it; returns the manifest's entries for both.
pub(crate) fn write_payloads_with_offsets(
    dir: &Path,
    file: String,
    payloads: &[serde_json::Value],
) -> Result<(PayloadsEntry, PayloadsEntry), StoreError> {
    let (bytes, starts) = payload_lines(payloads)?;
    let table = row_offsets::encode(&starts, bytes.len() as u64);
    let offsets = write_entry(dir, row_offsets::table_name(&file), payloads.len(), &table)?;
    Ok((write_entry(dir, file, payloads.len(), &bytes)?, offsets))
}

/// One compact JSON value a line, and where each line starts.
fn payload_lines(payloads: &[serde_json::Value]) -> Result<(Vec<u8>, Vec<u64>), StoreError> {
    let mut bytes = Vec::with_capacity(payloads.len() * 64);
    let mut starts = Vec::with_capacity(payloads.len());
    for p in payloads {
        starts.push(bytes.len() as u64);
        serde_json::to_writer(&mut bytes, p)
            .map_err(|e| StoreError::Input(format!("payload cannot be written: {e}")))?;
        bytes.push(b'\n');
    }
    Ok((bytes, starts))
}

/// Writes `bytes` to `dir/file`, synced, and returns its manifest entry.
fn write_entry(
    dir: &Path,
    file: String,
    rows: usize,
    bytes: &[u8],
) -> Result<PayloadsEntry, StoreError> {
    let entry = PayloadsEntry {
        file,
        rows,
        xxh3: format!("{:016x}", xxh3_64(bytes)),
    };
    write_synced(&dir.join(&entry.file), bytes)?;
    Ok(entry)
}

/// Reads the payload file `entry` names, checking its checksum and that it holds one JSON value
/// per row.
pub(crate) fn read_payloads(
    dir: &Path,
    entry: &PayloadsEntry,
    fix: Fix,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let path = dir.join(&entry.file);
    let bad = |reason: String| StoreError::Payloads {
        path: path.clone(),
        reason,
        fix,
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
