//! The lexical leg: BM25 over the identifier words of each document (`parseHttpRequest` → parse,
//! http, request), so a question that names a function finds it even when the embedding does not.

use super::table::{put_u32s, u32_at, Dictionary, Shared};
use std::collections::HashMap;

/// Lower-case words of identifiers and text: split at every non-alphanumeric character, at
/// `_`, at lower→upper case changes (`parseHttpRequest` → parse, http, request), at acronym ends
/// (`HTTPServer` → http, server) and between letters and digits. Words of one character are dropped.
pub fn identifier_tokens(text: &str) -> Vec<String> {
    split_words(text, Digits::Apart, 2)
}

/// Where a run of digits ends a word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digits {
    /// Between every letter and digit (`http2` → http; the BM25 leg).
    Apart,
    /// Only where letters follow digits: digits stay with the letters before them (`http2`).
    WithLetters,
}

/// The one identifier splitter behind [`identifier_tokens`] and name matching: lower-case words
/// split at non-alphanumerics, `_`, lower→upper changes and acronym ends, digits as `digits` says;
/// words shorter than `min_len` characters are dropped.
pub(crate) fn split_words(text: &str, digits: Digits, min_len: usize) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = raw.chars().collect();
        let mut start = 0;
        for i in 1..=chars.len() {
            let split = i == chars.len() || {
                let (p, c) = (chars[i - 1], chars[i]);
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
                (p.is_lowercase() && c.is_uppercase())
                    || (p.is_uppercase() && c.is_uppercase() && next_lower)
                    || match digits {
                        Digits::Apart => p.is_alphabetic() != c.is_alphabetic(),
                        Digits::WithLetters => p.is_numeric() && c.is_alphabetic(),
                    }
            };
            if split {
                if i - start >= min_len {
                    out.push(chars[start..i].iter().collect::<String>().to_lowercase());
                }
                start = i;
            }
        }
    }
    out
}

/// Each distinct [`identifier_tokens`] word of `text` with how often it occurs, sorted by word.
pub fn term_counts(text: &str) -> Vec<(String, u32)> {
    let mut words = identifier_tokens(text);
    words.sort_unstable();
    let mut out: Vec<(String, u32)> = Vec::new();
    for w in words {
        match out.last_mut() {
            Some((last, n)) if *last == w => *n += 1,
            _ => out.push((w, 1)),
        }
    }
    out
}

/// A BM25 index (Okapi BM25, `k1` = 1.2, `b` = 0.75, idf = ln(1 + (N − df + ½)/(df + ½)))
/// over [`identifier_tokens`] of each document.
///
/// It is kept as the byte tables the index's lexical file holds ([`super::table`]): each
/// document's length, a sorted dictionary of the words, and each word's postings `(document, term
/// frequency)`, documents ascending. Built in memory ([`Bm25::new`]) or read in place from the
/// mapped file, it scores the same: a question reads only its own words' postings.
#[derive(Clone, Default)]
pub struct Bm25 {
    bytes: Shared,
    parts: Bm25Parts,
}

/// Where a [`Bm25`]'s sections are in its bytes, and what the file's header says about them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bm25Parts {
    pub docs: usize,
    pub avg_len: f32,
    pub doc_len: (usize, usize),
    pub terms: Dictionary,
    pub postings: (usize, usize),
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("docs", &self.parts.docs)
            .field("terms", &self.parts.terms.len())
            .finish_non_exhaustive()
    }
}

/// Bytes per posting: `u32` document, `u32` term frequency.
const POSTING: usize = 8;

impl Bm25 {
    const K1: f32 = 1.2;
    const B: f32 = 0.75;

    /// Indexes `docs`; document `i` is row `i`.
    pub fn new<S: AsRef<str>>(docs: &[S]) -> Bm25 {
        let counts: Vec<Vec<(String, u32)>> =
            docs.iter().map(|d| term_counts(d.as_ref())).collect();
        Bm25::from_term_counts(&counts)
    }

    /// Indexes documents given as their [`term_counts`]; document `i` is row `i`.
    pub fn from_term_counts(docs: &[Vec<(String, u32)>]) -> Bm25 {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        for (i, terms) in docs.iter().enumerate() {
            for (t, f) in terms {
                postings.entry(t.clone()).or_default().push((i as u32, *f));
            }
        }
        Bm25::from_postings(postings, docs.len())
    }

    /// An index over `docs` documents from each term's postings `(document, term frequency)`.
    /// A document's length is the sum of its term frequencies. Fails when a posting names a
    /// document `>= docs`, a frequency is 0, or a term lists a document twice.
    pub fn try_from_postings(
        postings: HashMap<String, Vec<(u32, u32)>>,
        docs: usize,
    ) -> Result<Bm25, String> {
        let mut seen = vec![u32::MAX; docs];
        for (term_no, (t, post)) in postings.iter().enumerate() {
            for &(d, f) in post {
                let slot = seen
                    .get_mut(d as usize)
                    .ok_or_else(|| format!("term {t:?} names document {d} of {docs}"))?;
                if f == 0 || *slot == term_no as u32 {
                    return Err(format!("term {t:?} has a bad posting for document {d}"));
                }
                *slot = term_no as u32;
            }
        }
        Ok(Bm25::from_postings(postings, docs))
    }

    fn from_postings(postings: HashMap<String, Vec<(u32, u32)>>, docs: usize) -> Bm25 {
        let mut doc_len = vec![0u32; docs];
        let mut terms: Vec<(String, Vec<(u32, u32)>)> = postings.into_iter().collect();
        terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut flat = Vec::new();
        for (_, post) in terms.iter_mut() {
            post.sort_unstable();
            for &(d, f) in post.iter() {
                doc_len[d as usize] += f;
                flat.extend_from_slice(&d.to_le_bytes());
                flat.extend_from_slice(&f.to_le_bytes());
            }
        }
        let avg_len = doc_len.iter().map(|&l| l as f32).sum::<f32>() / docs.max(1) as f32;
        let mut bytes = Vec::new();
        put_u32s(&mut bytes, &doc_len);
        let doc_len_end = bytes.len();
        let (mut index, mut words) = (Vec::new(), Vec::new());
        let keys: Vec<&[u8]> = terms.iter().map(|t| t.0.as_bytes()).collect();
        let counts: Vec<usize> = terms.iter().map(|t| t.1.len()).collect();
        Dictionary::encode(&keys, &counts, &mut index, &mut words);
        let index_end = doc_len_end + index.len();
        let words_end = index_end + words.len();
        bytes.extend_from_slice(&index);
        bytes.extend_from_slice(&words);
        bytes.extend_from_slice(&flat);
        let parts = Bm25Parts {
            docs,
            avg_len: avg_len.max(1e-6),
            doc_len: (0, doc_len_end),
            terms: Dictionary {
                index: (doc_len_end, index_end),
                words: (index_end, words_end),
            },
            postings: (words_end, bytes.len()),
        };
        Bm25 {
            bytes: Shared::new(bytes),
            parts,
        }
    }

    /// The index whose sections `parts` names in `bytes` (already checked to lie inside them).
    pub(crate) fn from_parts(bytes: Shared, parts: Bm25Parts) -> Bm25 {
        Bm25 { bytes, parts }
    }

    /// Its bytes and where its sections are (what the lexical file writes).
    pub(crate) fn parts(&self) -> (&[u8], Bm25Parts) {
        (self.bytes.bytes(), self.parts)
    }

    /// The postings of records `r` of the dictionary.
    fn posting_bytes(&self, r: std::ops::Range<usize>) -> &[u8] {
        let (start, end) = self.parts.postings;
        let at = |i: usize| start.saturating_add(i.saturating_mul(POSTING));
        if at(r.end) > end || r.start > r.end {
            return &[];
        }
        self.bytes.get(at(r.start)..at(r.end))
    }

    fn postings_of(&self, r: std::ops::Range<usize>) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.posting_bytes(r)
            .chunks_exact(POSTING)
            .map(|c| (u32_at(c, 0), u32_at(c, 4)))
    }

    fn doc_len(&self, doc: u32) -> f32 {
        let (start, end) = self.parts.doc_len;
        let at = start + doc as usize * 4;
        if at + 4 > end {
            return 0.0;
        }
        u32_at(self.bytes.bytes(), at) as f32
    }

    /// Every term with its postings `(document, term frequency)`, documents ascending; terms
    /// sorted.
    pub fn postings(&self) -> impl Iterator<Item = (&str, Vec<(u32, u32)>)> {
        let bytes = self.bytes.bytes();
        (0..self.parts.terms.len()).map(move |i| {
            let (word, r) = self.parts.terms.entry(bytes, i);
            (
                std::str::from_utf8(word).unwrap_or(""),
                self.postings_of(r).collect(),
            )
        })
    }

    /// The [`term_counts`] of every document, recovered from the postings (terms sorted).
    pub fn doc_term_counts(&self) -> Vec<Vec<(String, u32)>> {
        let mut docs: Vec<Vec<(String, u32)>> = vec![Vec::new(); self.parts.docs];
        for (t, post) in self.postings() {
            for (d, f) in post {
                if let Some(doc) = docs.get_mut(d as usize) {
                    doc.push((t.to_owned(), f));
                }
            }
        }
        docs
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.parts.docs
    }

    /// Whether no document was indexed.
    pub fn is_empty(&self) -> bool {
        self.parts.docs == 0
    }

    /// BM25 score of every document for `query` into `out` (length [`Bm25::len`]); a query word
    /// counts once however often it occurs.
    pub fn scores(&self, query: &str, out: &mut [f32]) {
        self.scores_words(&identifier_tokens(query), out);
    }

    /// [`Bm25::scores`] for a question already cut into words.
    pub fn scores_words(&self, words: &[String], out: &mut [f32]) {
        out.iter_mut().for_each(|s| *s = 0.0);
        let mut words: Vec<&String> = words.iter().collect();
        words.sort();
        words.dedup();
        let bytes = self.bytes.bytes();
        for w in words {
            let Some(r) = self.parts.terms.find(bytes, w.as_bytes()) else {
                continue;
            };
            let idf = self.idf_of(r.len());
            for (doc, tf) in self.postings_of(r) {
                let tf = tf as f32;
                let norm =
                    Self::K1 * (1.0 - Self::B + Self::B * self.doc_len(doc) / self.parts.avg_len);
                if let Some(o) = out.get_mut(doc as usize) {
                    *o += idf * tf * (Self::K1 + 1.0) / (tf + norm);
                }
            }
        }
    }

    /// Checks what reading in place trusts: the dictionary, every posting (a document of the
    /// index, a frequency above 0, documents ascending within a word), and each document's length
    /// and the average against the postings. Reads every byte; run when a file is verified.
    pub(crate) fn check(&self) -> Result<(), String> {
        let bytes = self.bytes.bytes();
        let (start, end) = self.parts.postings;
        let records = (end - start) / POSTING;
        self.parts
            .terms
            .check(bytes, records)
            .map_err(|e| format!("the word dictionary is damaged: {e}"))?;
        let docs = self.parts.docs;
        let mut len = vec![0u64; docs];
        for i in 0..self.parts.terms.len() {
            let (word, r) = self.parts.terms.entry(bytes, i);
            let word = String::from_utf8_lossy(word);
            let mut last = None;
            for (d, f) in self.postings_of(r) {
                if d as usize >= docs || f == 0 || last.is_some_and(|l| l >= d) {
                    return Err(format!(
                        "the word {word:?} has a bad posting for document {d}"
                    ));
                }
                len[d as usize] += f as u64;
                last = Some(d);
            }
        }
        for (d, &l) in len.iter().enumerate() {
            if l != self.doc_len(d as u32) as u64 {
                return Err(format!("document {d}'s length disagrees with its postings"));
            }
        }
        let avg = len.iter().map(|&l| l as f32).sum::<f32>() / docs.max(1) as f32;
        if avg.max(1e-6).to_bits() != self.parts.avg_len.to_bits() {
            return Err("the average document length disagrees with the postings".into());
        }
        Ok(())
    }
}

impl Bm25 {
    /// The BM25 rarity of `word` (0 for a word no document has).
    pub fn idf(&self, word: &str) -> f32 {
        self.parts
            .terms
            .find(self.bytes.bytes(), word.as_bytes())
            .map_or(0.0, |r| self.idf_of(r.len()))
    }

    fn idf_of(&self, df: usize) -> f32 {
        let (n, df) = (self.parts.docs as f32, df as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_on_case_and_underscores() {
        assert_eq!(
            identifier_tokens("def parse_http_request(self, rawHTTPData2x):"),
            ["def", "parse", "http", "request", "self", "raw", "http", "data", "x"]
                .iter()
                .filter(|w| w.len() > 1)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(identifier_tokens("fn from_str"), ["fn", "from", "str"]);
    }

    #[test]
    fn bm25_prefers_matching_rare_words() {
        let docs = [
            "def read_file(path): return open(path).read()",
            "def write_file(path, data): open(path, 'w').write(data)",
            "def add(a, b): return a + b",
        ];
        let bm = Bm25::new(&docs);
        let mut s = vec![0f32; 3];
        bm.scores("Read a file", &mut s);
        assert!(s[0] > s[1] && s[1] > s[2], "{s:?}");
        assert_eq!(s[2], 0.0);
    }

    #[test]
    fn bm25_round_trips_through_term_counts_and_postings() {
        let docs = [
            "fn parse_http_request(req: HttpRequest)",
            "",
            "parse parse parse",
            "struct Index; impl Index { fn open() }",
        ];
        let direct = Bm25::new(&docs);
        let counts = direct.doc_term_counts();
        assert_eq!(counts[2], [("parse".to_string(), 3)]);
        assert!(counts[1].is_empty());
        let again = Bm25::from_term_counts(&counts);
        let postings: HashMap<String, Vec<(u32, u32)>> =
            direct.postings().map(|(t, p)| (t.to_owned(), p)).collect();
        let third = Bm25::try_from_postings(postings, docs.len()).unwrap();
        for q in ["parse request", "index open", "nothing here"] {
            let mut a = vec![0f32; 4];
            let mut b = vec![0f32; 4];
            let mut c = vec![0f32; 4];
            direct.scores(q, &mut a);
            again.scores(q, &mut b);
            third.scores(q, &mut c);
            assert_eq!(a, b, "{q}");
            assert_eq!(a, c, "{q}");
        }
        let bad = |t: &str, p: Vec<(u32, u32)>| {
            Bm25::try_from_postings(HashMap::from([(t.to_string(), p)]), 2).is_err()
        };
        assert!(bad("x", vec![(2, 1)]), "document out of range");
        assert!(bad("x", vec![(0, 0)]), "zero frequency");
        assert!(bad("x", vec![(1, 1), (1, 2)]), "document twice");
    }

    #[test]
    fn scores_match_the_formula_document_by_document() {
        let vocab = [
            "parse", "http", "request", "notify", "one", "spawn", "read", "index",
        ];
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let docs: Vec<String> = (0..300)
            .map(|_| {
                let n = next() % 12;
                let words: Vec<&str> = (0..n).map(|_| vocab[(next() % 8) as usize]).collect();
                words.join(" ")
            })
            .collect();
        let bm = Bm25::new(&docs);
        let counts: Vec<Vec<(String, u32)>> = docs.iter().map(|d| term_counts(d)).collect();
        let n = docs.len() as f32;
        let len = |c: &[(String, u32)]| c.iter().map(|t| t.1).sum::<u32>() as f32;
        let avg = (counts.iter().map(|c| len(c)).sum::<f32>() / n).max(1e-6);
        for q in [
            "parse http",
            "one one notify",
            "missing",
            "read index spawn request",
        ] {
            let mut words = identifier_tokens(q);
            words.sort();
            words.dedup();
            let mut got = vec![0f32; docs.len()];
            bm.scores(q, &mut got);
            for (d, c) in counts.iter().enumerate() {
                let mut want = 0f32;
                for w in &words {
                    let df = counts
                        .iter()
                        .filter(|c| c.iter().any(|t| &t.0 == w))
                        .count();
                    if let Some(&(_, tf)) = c.iter().find(|t| &t.0 == w) {
                        let df = df as f32;
                        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                        assert_eq!(bm.idf(w), idf);
                        let tf = tf as f32;
                        let norm = 1.2 * (1.0 - 0.75 + 0.75 * len(c) / avg);
                        want += idf * tf * (1.2f32 + 1.0) / (tf + norm);
                    }
                }
                assert_eq!(got[d], want, "{q:?}, document {d}");
            }
        }
    }
}
