//! The lexical leg and the name table on disk: the BM25 index of a code index's units (identifier
//! words, `parseHttp` → parse, http) and the units' names ([`Names`]), kept beside the collection
//! so a search reads neither the repository nor every payload.
//!
//! The file is `DIR/.bitseek/lexical-<xxh3>.bin`, named by the xxh3-64 of its bytes and recorded in
//! the manifest's `extra.lexical`, so it is part of the generation the manifest names: a writer
//! writes it (temporary file, sync, rename) before it swaps the manifest, and deletes the other
//! `lexical-*` files after. Version 2 is read in place through a read-only mapping: a search
//! binary-searches its question's words in the sorted dictionary and reads only their postings,
//! so opening it costs the same at any index size. Layout, little-endian:
//!
//! ```text
//! b"BSLEXv2\0"  u32 documents  f32 average document length  9 × u64 section ends
//! documents × u32 length (sum of its term frequencies)
//! words × { u32 offset, u32 length, u32 first posting, u32 postings }   sorted by word bytes
//! the words' UTF-8 bytes
//! postings × { u32 row, u32 frequency }                                  rows ascending per word
//! names × { u32 offset, u32 length, u32 first row, u32 rows }            sorted by name words
//! the names' words (each name's `name_words` joined by spaces)
//! rows × u32
//! documents × { u32 name offset, u32 name length, u32 owner offset, u32 owner length or
//!               u32::MAX, u32 role | test << 8 }
//! the names as written and the owners' words
//! ```
//!
//! Rows are the collection's rows. Every open checks the header, the section sizes and the row
//! count. The first open of a file checks its hash, every posting against the row count, the
//! dictionaries' order and the name table, and records that it did beside it
//! (`lexical-<xxh3>.bin.verified`: the file's length, modification time and inode, like the
//! store's `verified.json`); later opens of the same unchanged file trust that, and
//! `bitseek index --verify` checks everything again. A damaged file is an error, never a wrong
//! ranking. Version 1 files (the dictionary decoded on every open, no name table) are still read,
//! the old way; the next `bitseek index` rewrites them as version 2.

use super::lexical::Bm25Parts;
use super::names::{NamesParts, UNIT};
use super::table::{Dictionary, Shared, ENTRY};
use super::{Bm25, Names};
use crate::CodeError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC_V1: &[u8; 8] = b"BSLEXv1\0";
const MAGIC: &[u8; 8] = b"BSLEXv2\0";
/// Sections after the header, in file order.
const SECTIONS: usize = 9;
const HEADER: usize = 8 + 4 + 4 + 8 * SECTIONS;

/// Where the lexical file of a generation is and what its bytes hash to (the manifest's
/// `extra.lexical`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LexicalFile {
    /// File name inside the index directory.
    pub file: String,
    /// xxh3-64 of the file's bytes, 16 lowercase hex digits.
    pub xxh3: String,
}

/// What a lexical file holds: the BM25 index, and the name table (`None` in version 1 files,
/// which have none: the caller builds it from the payloads).
#[derive(Debug)]
pub(crate) struct Tables {
    pub bm25: Bm25,
    pub names: Option<Names>,
}

/// The bytes of the file of `bm25` and `names` (one entry per row each; terms and names sorted,
/// so equal indexes give equal files).
pub(crate) fn encode(bm25: &Bm25, names: &Names) -> Vec<u8> {
    assert_eq!(bm25.len(), names.len(), "one name per document");
    let (b, bp) = bm25.parts();
    let (n, np) = names.parts();
    let sections: [&[u8]; SECTIONS] = [
        &b[bp.doc_len.0..bp.doc_len.1],
        &b[bp.terms.index.0..bp.terms.index.1],
        &b[bp.terms.words.0..bp.terms.words.1],
        &b[bp.postings.0..bp.postings.1],
        &n[np.keys.index.0..np.keys.index.1],
        &n[np.keys.words.0..np.keys.words.1],
        &n[np.rows.0..np.rows.1],
        &n[np.table.0..np.table.1],
        &n[np.strings.0..np.strings.1],
    ];
    let mut out = Vec::with_capacity(HEADER + sections.iter().map(|s| s.len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(bm25.len() as u32).to_le_bytes());
    out.extend_from_slice(&bp.avg_len.to_le_bytes());
    let mut end = HEADER as u64;
    for s in &sections {
        end += s.len() as u64;
        out.extend_from_slice(&end.to_le_bytes());
    }
    for s in sections {
        out.extend_from_slice(s);
    }
    out
}

/// The tables of a version 2 file of an index with `rows` rows, read in place. Checks the header
/// and the sections' sizes only (constant time); [`check`] checks the rest.
pub(crate) fn view(bytes: Shared, rows: usize) -> Result<Tables, String> {
    let b = bytes.bytes();
    if b.len() < HEADER || &b[..8] != MAGIC {
        return Err("not a bitseek lexical file (bad magic or truncated header)".into());
    }
    let le32 = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let docs = le32(8) as usize;
    if docs != rows {
        return Err(format!("it has {docs} documents but the index {rows} rows"));
    }
    let avg_len = f32::from_bits(le32(12));
    let mut ranges = [(0usize, 0usize); SECTIONS];
    let mut start = HEADER;
    for (i, r) in ranges.iter_mut().enumerate() {
        let at = 16 + 8 * i;
        let end = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let end = usize::try_from(end).unwrap_or(usize::MAX);
        if end < start || end > b.len() {
            return Err(format!("section {i} ends outside the file (truncated?)"));
        }
        *r = (start, end);
        start = end;
    }
    if start != b.len() {
        return Err(format!("{} bytes follow the last section", b.len() - start));
    }
    let size = |r: (usize, usize)| r.1 - r.0;
    let strides = [(0, 4), (1, ENTRY), (3, 8), (4, ENTRY), (6, 4), (7, UNIT)];
    for (i, stride) in strides {
        if size(ranges[i]) % stride != 0 {
            return Err(format!("section {i} is not a whole number of entries"));
        }
    }
    if size(ranges[0]) != docs * 4 || size(ranges[7]) != docs * UNIT {
        return Err("the per-document sections do not match the document count".into());
    }
    let bm25 = Bm25::from_parts(
        bytes.clone(),
        Bm25Parts {
            docs,
            avg_len,
            doc_len: ranges[0],
            terms: Dictionary {
                index: ranges[1],
                words: ranges[2],
            },
            postings: ranges[3],
        },
    );
    let names = Names::from_parts(
        bytes,
        NamesParts {
            units: docs,
            keys: Dictionary {
                index: ranges[4],
                words: ranges[5],
            },
            rows: ranges[6],
            table: ranges[7],
            strings: ranges[8],
        },
    );
    Ok(Tables {
        bm25,
        names: Some(names),
    })
}

/// Checks everything [`view`] does not: the dictionaries, every posting and name row, the name
/// table. Reads every byte of the file.
pub(crate) fn check(tables: &Tables) -> Result<(), String> {
    tables.bm25.check()?;
    if let Some(names) = &tables.names {
        names.check()?;
    }
    Ok(())
}

/// Parses a version 1 lexical file of an index with `rows` rows (no name table).
fn decode_v1(bytes: &[u8], rows: usize) -> Result<Bm25, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MAGIC_V1 {
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

/// Writes the file of `bm25` and `names` into `dir` (temporary file, sync, rename) and returns its
/// manifest entry.
pub(crate) fn write(dir: &Path, bm25: &Bm25, names: &Names) -> Result<LexicalFile, CodeError> {
    let bytes = encode(bm25, names);
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

/// How much of a file [`read`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Checks {
    /// Everything the first time this file is opened, then only its header and sizes while it
    /// keeps the identity recorded beside it.
    Once,
    /// Everything, whatever was recorded (`bitseek index --verify`).
    All,
}

/// Opens and checks the lexical file `entry` of an index with `rows` rows in `dir`.
pub(crate) fn read(
    dir: &Path,
    entry: &LexicalFile,
    rows: usize,
    checks: Checks,
) -> Result<Tables, (PathBuf, String)> {
    let plain = !entry.file.is_empty()
        && !entry.file.contains(['/', '\\'])
        && entry.file != "."
        && entry.file != "..";
    let path = dir.join(&entry.file);
    if !plain {
        return Err((path, "the manifest names a file outside the index".into()));
    }
    let fail = |why: String| (path.clone(), why);
    let file = fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    let stamp = dir.join(format!("{}.verified", entry.file));
    let trusted = checks == Checks::Once
        && stamp_of(&meta)
            .is_some_and(|now| fs::read_to_string(&stamp).is_ok_and(|recorded| recorded == now));
    let bytes = if meta.len() == 0 {
        Shared::default()
    } else {
        // SAFETY: read-only. The file is written once under a temporary name and renamed into
        // place; writers never modify it afterwards (a new generation gets a new file), so the
        // bytes do not change under the mapping. Damage by a third party can give wrong bytes but
        // not unsoundness: every read of the tables is bounds-checked (`table` module).
        Shared::new(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| fail(e.to_string()))?)
    };
    if !trusted {
        let _ = fs::remove_file(&stamp);
        let found = format!("{:016x}", xxh3_64(bytes.bytes()));
        if found != entry.xxh3 {
            return Err(fail(format!(
                "checksum mismatch (the manifest says {}, the file hashes to {found})",
                entry.xxh3
            )));
        }
    }
    if bytes.bytes().starts_with(MAGIC_V1) {
        // Version 1: decoded whole on every open, as it always was (its hash was checked above
        // unless trusted; a version 1 file is never stamped, so it always is).
        let bm25 = decode_v1(bytes.bytes(), rows).map_err(fail)?;
        return Ok(Tables { bm25, names: None });
    }
    let tables = view(bytes, rows).map_err(fail)?;
    if !trusted {
        check(&tables).map_err(fail)?;
        if let Some(now) = stamp_of(&meta) {
            // Best effort: an index on a read-only disk is checked on every open instead.
            let tmp = dir.join(format!("{}.verified.tmp", entry.file));
            if fs::write(&tmp, now).is_err() || fs::rename(&tmp, &stamp).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
    }
    Ok(tables)
}

/// The identity a verified file is recorded by: length, modification time, inode.
fn stamp_of(meta: &fs::Metadata) -> Option<String> {
    let id = bitseek_store::FileIdentity::of(meta)?;
    Some(format!("{} {} {}\n", id.len, id.modified_ns, id.inode))
}

/// Deletes `lexical-*` files (and their temporaries and stamps) in `dir` other than `keep` and its
/// stamp. Best effort: a file that cannot be deleted now is deleted by the next writer.
pub(crate) fn remove_others(dir: &Path, keep: Option<&str>) {
    let stamp = keep.map(|k| format!("{k}.verified"));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("lexical-")
            && Some(name.as_str()) != keep
            && Some(&name) != stamp.as_ref()
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The version 1 encoder, for the tests that old files are still read and rank as new ones.
#[cfg(test)]
pub(crate) fn encode_v1(bm25: &Bm25) -> Vec<u8> {
    let mut out = MAGIC_V1.to_vec();
    out.extend_from_slice(&(bm25.len() as u32).to_le_bytes());
    let terms: Vec<_> = bm25.postings().collect();
    out.extend_from_slice(&(terms.len() as u32).to_le_bytes());
    for (word, post) in terms {
        out.extend_from_slice(&(word.len() as u32).to_le_bytes());
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(&(post.len() as u32).to_le_bytes());
        for (row, f) in post {
            out.extend_from_slice(&row.to_le_bytes());
            out.extend_from_slice(&f.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Question, UnitInfo};
    use super::*;

    const DOCS: [&str; 4] = [
        "fn parse_request(req: HttpRequest)",
        "",
        "struct Index",
        "fn parse_request() in tests",
    ];

    fn sample() -> (Bm25, Names) {
        let u = |name: &str, owner: Option<&str>, kind: &str, test: bool| UnitInfo {
            name: name.into(),
            owner: owner.map(String::from),
            kind: kind.into(),
            test,
        };
        (
            Bm25::new(&DOCS),
            Names::new([
                u("parse_request", Some("Server"), "method", false),
                u("lib.rs", None, "window", false),
                u("Index", None, "struct", false),
                u("parse_request", None, "function", true),
            ]),
        )
    }

    use super::encode_v1;

    fn same(a: &Tables, bm: &Bm25, names: &Names) {
        for q in ["http request index", "parse request", "nothing", "index"] {
            let (mut x, mut y) = (vec![0f32; 4], vec![0f32; 4]);
            a.bm25.scores(q, &mut x);
            bm.scores(q, &mut y);
            assert_eq!(x, y, "{q}");
            assert_eq!(a.bm25.idf("parse"), bm.idf("parse"));
            if let Some(n) = &a.names {
                let q = Question::new(q);
                assert_eq!(n.exact(&q), names.exact(&q));
                let w = |w: &[String]| w.len() as f32;
                assert_eq!(n.phrases(&q, w), names.phrases(&q, w));
            }
        }
        assert_eq!(a.bm25.doc_term_counts(), bm.doc_term_counts());
    }

    #[test]
    fn file_round_trips_and_is_deterministic() {
        let (bm, names) = sample();
        let bytes = encode(&bm, &names);
        let again = Bm25::from_term_counts(&bm.doc_term_counts());
        assert_eq!(bytes, encode(&again, &names));
        let back = view(Shared::new(bytes), 4).unwrap();
        check(&back).unwrap();
        same(&back, &bm, &names);
        let n = back.names.as_ref().unwrap();
        let q = Question::new("Server::parse_request");
        assert_eq!(n.exact(&q)[0].0, 0);
        assert!(n.is_test(3) && !n.is_test(0) && !n.is_test(99));
    }

    #[test]
    fn every_truncation_and_wrong_row_count_is_an_error() {
        let (bm, names) = sample();
        let bytes = encode(&bm, &names);
        for cut in 0..bytes.len() {
            let cut = Shared::new(bytes[..cut].to_vec());
            assert!(view(cut, 4).and_then(|t| check(&t)).is_err());
        }
        let err = view(Shared::new(bytes.clone()), 5).unwrap_err();
        assert!(err.contains("4 documents but the index 5 rows"), "{err}");
        let mut longer = bytes.clone();
        longer.push(0);
        let err = view(Shared::new(longer), 4).unwrap_err();
        assert!(err.contains("follow the last section"), "{err}");
    }

    #[test]
    fn damage_inside_the_tables_fails_the_check_never_a_read() {
        let (bm, names) = sample();
        let bytes = encode(&bm, &names);
        let mut caught = 0;
        for i in HEADER..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] = bad[i].wrapping_add(97);
            let Ok(t) = view(Shared::new(bad), 4) else {
                caught += 1;
                continue;
            };
            // Reads of damaged tables stay in bounds whatever the bytes.
            let mut out = vec![0f32; 4];
            t.bm25.scores("parse request index http", &mut out);
            let _ = t
                .names
                .as_ref()
                .unwrap()
                .exact(&Question::new("parse_request"));
            caught += check(&t).is_err() as usize;
        }
        // Only bytes of words and names can change without breaking a structure (the file's
        // hash catches those).
        let text = DOCS.iter().map(|d| d.len()).sum::<usize>() + 40;
        assert!(
            caught + text >= bytes.len() - HEADER,
            "{caught} of {}",
            bytes.len() - HEADER
        );
    }

    #[test]
    fn checksum_stamp_and_version_1_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let (bm, names) = sample();
        let entry = write(dir.path(), &bm, &names).unwrap();
        let stamp = dir.path().join(format!("{}.verified", entry.file));
        assert!(!stamp.exists());
        same(
            &read(dir.path(), &entry, 4, Checks::Once).unwrap(),
            &bm,
            &names,
        );
        assert!(stamp.exists(), "the first open records its verification");
        let path = dir.path().join(&entry.file);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        // Damage that changes the file's identity is checked again.
        fs::write(&path, &bytes).unwrap();
        let (_, why) = read(dir.path(), &entry, 4, Checks::Once).unwrap_err();
        assert!(why.contains("checksum mismatch"), "{why}");
        assert!(!stamp.exists());
        let outside = LexicalFile {
            file: "../x".into(),
            xxh3: entry.xxh3.clone(),
        };
        let (_, why) = read(dir.path(), &outside, 4, Checks::Once).unwrap_err();
        assert!(why.contains("outside the index"), "{why}");

        // A version 1 file reads as it did, without a name table.
        let old = encode_v1(&bm);
        let xxh3 = format!("{:016x}", xxh3_64(&old));
        let v1 = LexicalFile {
            file: format!("lexical-{xxh3}.bin"),
            xxh3,
        };
        fs::write(dir.path().join(&v1.file), &old).unwrap();
        let t = read(dir.path(), &v1, 4, Checks::Once).unwrap();
        assert!(t.names.is_none());
        same(&t, &bm, &names);
        remove_others(dir.path(), Some(&v1.file));
        assert!(!path.exists() && dir.path().join(&v1.file).exists());
        remove_others(dir.path(), None);
        assert!(!dir.path().join(&v1.file).exists());
    }
}
