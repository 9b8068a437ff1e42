//! The model fingerprint ([`crate::ModelInfo::fingerprint`]), hashed once per model files rather
//! than on every `bitseek search`.
//!
//! Hashing the 87 MB of weights cost a search about 8 ms. The fingerprint is recorded in the
//! user's cache (`$XDG_CACHE_HOME/bitseek/fingerprints/<key>`, else `~/.cache/...`), keyed by the
//! files' paths and identities (length, modification time, inode), like the index's
//! `verified.json`: a file replaced, rewritten or touched has a new identity and is hashed again.
//! What the key cannot see is a file rewritten in place keeping its length and times; model files
//! are installed by rename (`bitseek model fetch`), so that takes deliberate effort. The record
//! is a cache, written best effort: without one (no cache directory, a read-only one) every
//! search hashes, as before.

use crate::CodeError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// The fingerprint of `files` (xxh3-128 over each file's length and bytes, 32 hex digits; a
/// missing file that `optional` accepts counts as `u64::MAX`), from the record in `records` when
/// one matches the files as they are now.
pub(crate) fn fingerprint(
    files: &[PathBuf],
    optional: impl Fn(&Path) -> bool,
    records: Option<&Path>,
) -> Result<String, CodeError> {
    let record = records.and_then(|dir| key(files).map(|k| dir.join(k)));
    if let Some(found) = record
        .as_ref()
        .and_then(|r| fs::read_to_string(r).ok())
        .filter(|f| f.len() == 32 && f.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Ok(found);
    }
    let mut h = Xxh3::new();
    for path in files {
        match hash_file(path, &mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && optional(path) => {
                h.update(&u64::MAX.to_le_bytes());
            }
            Err(source) => {
                return Err(CodeError::Io {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    let fingerprint = format!("{:032x}", h.digest128());
    if let Some(record) = record {
        // Keyed by the identities taken before hashing: a file changed while it was hashed no
        // longer matches the key.
        let tmp = record.with_extension(format!("tmp{}", std::process::id()));
        let written = record
            .parent()
            .is_some_and(|d| fs::create_dir_all(d).is_ok())
            && fs::write(&tmp, &fingerprint).is_ok()
            && fs::rename(&tmp, &record).is_ok();
        if !written {
            let _ = fs::remove_file(&tmp);
        }
    }
    Ok(fingerprint)
}

/// Where the records live: `<cache>/bitseek/fingerprints`.
pub(crate) fn records_dir() -> Option<PathBuf> {
    bitseek_embed::cache_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
        .map(|c| c.join("bitseek").join("fingerprints"))
}

/// The record's name for `files` as they are now: xxh3-128 of each absolute path and its
/// identity (a missing file has none). `None` when a path cannot be made absolute.
fn key(files: &[PathBuf]) -> Option<String> {
    let mut text = String::new();
    for path in files {
        let abs = std::path::absolute(path).ok()?;
        text.push_str(&abs.to_string_lossy());
        match fs::metadata(path) {
            Ok(m) => {
                let id = bitseek_store::FileIdentity::of(&m)?;
                text.push_str(&format!("\0{} {} {}\n", id.len, id.modified_ns, id.inode));
            }
            Err(_) => text.push_str("\0missing\n"),
        }
    }
    Some(format!("{:032x}", xxh3_128(text.as_bytes())))
}

/// Feeds a file's length and bytes to `h`, reading them through a read-only mapping.
fn hash_file(path: &Path, h: &mut Xxh3) -> io::Result<()> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    h.update(&len.to_le_bytes());
    if len == 0 {
        // Mapping an empty file fails on some systems; there is nothing to hash.
        return Ok(());
    }
    // SAFETY: read-only and dropped before returning. Model files are replaced by rename, not
    // rewritten in place; one rewritten while hashed gives a wrong fingerprint, which the next
    // check reports as a model mismatch, never unsoundness in our code (the bytes are only hashed).
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    h.update(&map);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_used_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records");
        let (a, b) = (dir.path().join("a"), dir.path().join("optional"));
        fs::write(&a, b"weights").unwrap();
        let files = [a.clone(), b.clone()];
        let optional = |p: &Path| p.ends_with("optional");
        let plain = fingerprint(&files, optional, None).unwrap();
        assert_eq!(
            fingerprint(&files, optional, Some(&records)).unwrap(),
            plain
        );
        let record = fs::read_dir(&records)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // The record answers while the files keep their identities (a planted value proves it).
        fs::write(&record, "0123456789abcdef0123456789abcdef").unwrap();
        let planted = fingerprint(&files, optional, Some(&records)).unwrap();
        assert_eq!(planted, "0123456789abcdef0123456789abcdef");
        // A changed file has a new identity: hashed again, and the fingerprint changes with it.
        fs::write(&a, b"other weights").unwrap();
        let changed = fingerprint(&files, optional, Some(&records)).unwrap();
        assert_eq!(changed, fingerprint(&files, optional, None).unwrap());
        assert_ne!(changed, plain);
        // So does an optional file appearing.
        fs::write(&b, b"{}").unwrap();
        let more = fingerprint(&files, optional, Some(&records)).unwrap();
        assert_ne!(more, changed);
        assert_eq!(more, fingerprint(&files, optional, None).unwrap());
        // A missing required file is an error naming it.
        fs::remove_file(&a).unwrap();
        let err = fingerprint(&files, optional, Some(&records)).unwrap_err();
        assert!(err.to_string().contains(&a.display().to_string()), "{err}");
    }
}
