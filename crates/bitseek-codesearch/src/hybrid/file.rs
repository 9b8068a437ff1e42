//! The lexical leg on disk: the BM25 index of a code index's units (identifier words, `parseHttp`
//! → parse, http), kept beside the collection so a search does not re-read the repository.
//!
//! The file is `DIR/.bitseek/lexical-<xxh3>.bin`, named by the xxh3-64 of its bytes and recorded in
//! the manifest's `extra.lexical`, so it is part of the generation the manifest names: a writer
//! writes it (temporary file, sync, rename) before it swaps the manifest, and deletes the other
//! `lexical-*.bin` files after. Layout, little-endian:
//!
//! ```text
//! b"BSLEXv1\0"  u32 documents  u32 terms
//! terms × { u32 word bytes, word (UTF-8), u32 postings, postings × { u32 row, u32 frequency } }
//! ```
//!
//! Rows are the collection's rows. Reading checks the hash, every length against the file's end,
//! and every posting against the row count, so a damaged file is an error, never a wrong ranking.

use super::Bm25;
use crate::CodeError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"BSLEXv1\0";

/// Where the lexical file of a generation is and what its bytes hash to (the manifest's
/// `extra.lexical`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LexicalFile {
    /// File name inside the index directory.
    pub file: String,
    /// xxh3-64 of the file's bytes, 16 lowercase hex digits.
    pub xxh3: String,
}

/// The bytes of `bm25`'s file (terms sorted, so equal indexes give equal files).
pub(crate) fn encode(bm25: &Bm25) -> Vec<u8> {
    let mut terms: Vec<(&str, &[(u32, u32)])> = bm25.postings().collect();
    terms.sort_unstable_by_key(|t| t.0);
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(bm25.len() as u32).to_le_bytes());
    out.extend_from_slice(&(terms.len() as u32).to_le_bytes());
    for (word, post) in terms {
        out.extend_from_slice(&(word.len() as u32).to_le_bytes());
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(&(post.len() as u32).to_le_bytes());
        for &(row, f) in post {
            out.extend_from_slice(&row.to_le_bytes());
            out.extend_from_slice(&f.to_le_bytes());
        }
    }
    out
}

/// Parses a lexical file of an index with `rows` rows.
pub(crate) fn decode(bytes: &[u8], rows: usize) -> Result<Bm25, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err("not a bitseek lexical file (bad magic)".into());
    }
    let docs = r.u32()? as usize;
    if docs != rows {
        return Err(format!("it has {docs} documents but the index {rows} rows"));
    }
    let terms = r.u32()? as usize;
    let mut postings = HashMap::with_capacity(terms.min(bytes.len() / 12));
    for _ in 0..terms {
        let len = r.u32()? as usize;
        let word = std::str::from_utf8(r.take(len)?)
            .map_err(|_| format!("a word at byte {} is not UTF-8", r.at - len))?;
        let n = r.u32()? as usize;
        let raw = r.take(n.checked_mul(8).ok_or("a posting count overflows")?)?;
        let post: Vec<(u32, u32)> = raw
            .chunks_exact(8)
            .map(|c| {
                let (a, b) = c.split_at(4);
                (le(a), le(b))
            })
            .collect();
        if postings.insert(word.to_owned(), post).is_some() {
            return Err(format!("the word {word:?} is listed twice"));
        }
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes follow the last term", bytes.len() - r.at));
    }
    Bm25::try_from_postings(postings, docs)
}

fn le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {} of {}", self.at, self.bytes.len()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.take(4).map(le)
    }
}

/// Writes `bm25` into `dir` (temporary file, sync, rename) and returns its manifest entry.
pub(crate) fn write(dir: &Path, bm25: &Bm25) -> Result<LexicalFile, CodeError> {
    let bytes = encode(bm25);
    let xxh3 = format!("{:016x}", xxh3_64(&bytes));
    let file = format!("lexical-{xxh3}.bin");
    let path = dir.join(&file);
    let tmp = dir.join(format!("{file}.tmp"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CodeError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(LexicalFile { file, xxh3 })
}

/// Reads and checks the lexical file `entry` of an index with `rows` rows in `dir`.
pub(crate) fn read(
    dir: &Path,
    entry: &LexicalFile,
    rows: usize,
) -> Result<Bm25, (PathBuf, String)> {
    let plain = !entry.file.is_empty()
        && !entry.file.contains(['/', '\\'])
        && entry.file != "."
        && entry.file != "..";
    let path = dir.join(&entry.file);
    if !plain {
        return Err((path, "the manifest names a file outside the index".into()));
    }
    let bytes = fs::read(&path).map_err(|e| (path.clone(), e.to_string()))?;
    let found = format!("{:016x}", xxh3_64(&bytes));
    if found != entry.xxh3 {
        return Err((
            path,
            format!(
                "checksum mismatch (the manifest says {}, the file hashes to {found})",
                entry.xxh3
            ),
        ));
    }
    decode(&bytes, rows).map_err(|e| (path, e))
}

/// Deletes `lexical-*.bin` files (and their temporaries) in `dir` other than `keep`. Best effort:
/// a file that cannot be deleted now is deleted by the next writer.
pub(crate) fn remove_others(dir: &Path, keep: Option<&str>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("lexical-") && Some(name.as_str()) != keep {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bm25 {
        Bm25::new(&["fn parse_request(req: HttpRequest)", "", "struct Index"])
    }

    #[test]
    fn file_round_trips_and_is_deterministic() {
        let bm = sample();
        let bytes = encode(&bm);
        assert_eq!(
            bytes,
            encode(&Bm25::from_term_counts(&bm.doc_term_counts()))
        );
        let back = decode(&bytes, 3).unwrap();
        let (mut a, mut b) = (vec![0f32; 3], vec![0f32; 3]);
        bm.scores("http request index", &mut a);
        back.scores("http request index", &mut b);
        assert_eq!(a, b);
        assert!(a[0] > 0.0 && a[1] == 0.0 && a[2] > 0.0);
    }

    #[test]
    fn every_truncation_and_wrong_row_count_is_an_error() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 3).is_err(), "cut at {cut}");
        }
        let err = decode(&bytes, 4).unwrap_err();
        assert!(err.contains("3 documents but the index 4 rows"), "{err}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, 3)
            .unwrap_err()
            .contains("follow the last term"));
    }

    #[test]
    fn checksum_and_names_are_checked_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let entry = write(dir.path(), &sample()).unwrap();
        assert!(read(dir.path(), &entry, 3).is_ok());
        let path = dir.path().join(&entry.file);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let (_, why) = read(dir.path(), &entry, 3).unwrap_err();
        assert!(why.contains("checksum mismatch"), "{why}");
        let outside = LexicalFile {
            file: "../x".into(),
            xxh3: entry.xxh3.clone(),
        };
        let (_, why) = read(dir.path(), &outside, 3).unwrap_err();
        assert!(why.contains("outside the index"), "{why}");
        remove_others(dir.path(), None);
        assert!(!path.exists());
    }
}
