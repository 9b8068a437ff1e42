//! The byte tables the lexical leg and the name table are read from in place: little-endian
//! `u32` arrays and sorted dictionaries (byte-string key → a run of records), over a mapped file
//! or the same bytes built in memory, so that a search at any index size reads only the words and
//! postings its question touches instead of decoding the whole file on every open.
//!
//! Reads never panic, whatever the bytes: a range outside the bytes reads as empty or 0. That
//! keeps a damaged file memory-safe; the checks that make it an error instead of a wrong ranking
//! run when the file is verified ([`super::file`]).

use std::ops::Range;
use std::sync::Arc;

/// Bytes shared by the tables read from them: a mapped file or a buffer built in memory.
#[derive(Clone)]
pub struct Shared(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Shared {
    /// Shares `bytes` (a `Vec<u8>`, a `memmap2::Mmap`).
    pub fn new(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Shared {
        Shared(Arc::new(bytes))
    }

    /// All of the bytes.
    pub fn bytes(&self) -> &[u8] {
        (*self.0).as_ref()
    }

    /// The bytes in `range`, empty when it is not inside them.
    pub fn get(&self, range: Range<usize>) -> &[u8] {
        self.bytes().get(range).unwrap_or(&[])
    }
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new(Vec::new())
    }
}

/// The little-endian `u32` at byte `at` of `bytes` (0 past the end).
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at.wrapping_add(4)) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// `n` little-endian `u32`s, appended.
pub fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A dictionary in two sections: `index`, one 16-byte entry per key sorted by key bytes
/// (`u32` key offset and length in `words`, `u32` first record and record count), and `words`,
/// the keys' bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dictionary {
    pub index: (usize, usize),
    pub words: (usize, usize),
}

/// Bytes per dictionary entry.
pub const ENTRY: usize = 16;

impl Dictionary {
    /// Keys in the dictionary.
    pub fn len(&self) -> usize {
        (self.index.1 - self.index.0) / ENTRY
    }

    /// The key of entry `i` and its records' range.
    pub fn entry<'b>(&self, bytes: &'b [u8], i: usize) -> (&'b [u8], Range<usize>) {
        let at = self.index.0 + i * ENTRY;
        let (off, len) = (u32_at(bytes, at) as usize, u32_at(bytes, at + 4) as usize);
        let (first, count) = (
            u32_at(bytes, at + 8) as usize,
            u32_at(bytes, at + 12) as usize,
        );
        let start = self.words.0.saturating_add(off);
        let key = match start.checked_add(len) {
            Some(end) if end <= self.words.1 => bytes.get(start..end).unwrap_or(&[]),
            _ => &[],
        };
        (key, first..first.saturating_add(count))
    }

    /// The records' range of `key`, if the dictionary has it (binary search over the keys).
    pub fn find(&self, bytes: &[u8], key: &[u8]) -> Option<Range<usize>> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, records) = self.entry(bytes, mid);
            match k.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(records),
            }
        }
        None
    }

    /// Writes a dictionary of `keys` (sorted, distinct) with `records[i]` records each, numbered
    /// from 0 in key order: the index section into `index`, the keys into `words`.
    pub fn encode(keys: &[&[u8]], records: &[usize], index: &mut Vec<u8>, words: &mut Vec<u8>) {
        let mut first = 0usize;
        for (k, &n) in keys.iter().zip(records) {
            put_u32s(
                index,
                &[words.len() as u32, k.len() as u32, first as u32, n as u32],
            );
            words.extend_from_slice(k);
            first += n;
        }
    }

    /// Checks that every key is inside `words`, valid UTF-8 and after the one before, and that the
    /// records are consecutive runs covering `0..records` exactly.
    pub fn check(&self, bytes: &[u8], records: usize) -> Result<(), String> {
        let mut next = 0usize;
        let mut last: Option<&[u8]> = None;
        for i in 0..self.len() {
            let at = self.index.0 + i * ENTRY;
            let (off, len) = (u32_at(bytes, at) as usize, u32_at(bytes, at + 4) as usize);
            if off
                .checked_add(len)
                .is_none_or(|e| e > self.words.1 - self.words.0)
            {
                return Err(format!("key {i} lies outside its section"));
            }
            let (key, range) = self.entry(bytes, i);
            if std::str::from_utf8(key).is_err() {
                return Err(format!("key {i} is not UTF-8"));
            }
            if last.is_some_and(|l| l >= key) {
                return Err(format!("key {i} is out of order or repeated"));
            }
            if range.start != next || range.end > records {
                return Err(format!(
                    "the records of key {i} are not where they should be"
                ));
            }
            next = range.end;
            last = Some(key);
        }
        if next != records {
            return Err(format!("the keys name {next} records of {records}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_finds_every_key_and_nothing_else() {
        let keys: Vec<&[u8]> = vec![b"", b"a", b"ab", b"b", b"zz"];
        let (mut index, mut words) = (Vec::new(), Vec::new());
        Dictionary::encode(&keys, &[1, 2, 0, 3, 1], &mut index, &mut words);
        let mut bytes = index.clone();
        bytes.extend_from_slice(&words);
        let d = Dictionary {
            index: (0, index.len()),
            words: (index.len(), bytes.len()),
        };
        d.check(&bytes, 7).unwrap();
        assert_eq!(d.find(&bytes, b"a"), Some(1..3));
        assert_eq!(d.find(&bytes, b"ab"), Some(3..3));
        assert_eq!(d.find(&bytes, b"zz"), Some(6..7));
        assert_eq!(d.find(&bytes, b""), Some(0..1));
        assert_eq!(d.find(&bytes, b"c"), None);
        assert!(d.check(&bytes, 8).is_err());
        // Out of order keys, and any truncation, never panic and fail the check.
        let mut swapped = bytes.clone();
        swapped[d.words.0 + 1] = b'c';
        assert!(d.check(&swapped, 7).is_err());
        for cut in 0..bytes.len() {
            let _ = d.find(&bytes[..cut], b"b");
        }
    }
}
