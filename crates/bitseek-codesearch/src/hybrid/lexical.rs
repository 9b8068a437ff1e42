//! The lexical leg: BM25 over the identifier words of each document (`parseHttpRequest` → parse,
//! http, request), so a question that names a function finds it even when the embedding does not.

use std::collections::HashMap;

/// Lower-case words of identifiers and text: split at every non-alphanumeric character, at
/// `_`, at lower→upper case changes (`parseHttpRequest` → parse, http, request), at acronym ends
/// (`HTTPServer` → http, server) and between letters and digits. Words of one character are dropped.
pub fn identifier_tokens(text: &str) -> Vec<String> {
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
                    || (p.is_alphabetic() != c.is_alphabetic())
            };
            if split {
                if i - start > 1 {
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

/// An in-memory BM25 index (Okapi BM25, `k1` = 1.2, `b` = 0.75, idf = ln(1 + (N − df + ½)/(df + ½)))
/// over [`identifier_tokens`] of each document.
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u32)>>,
    doc_len: Vec<f32>,
    avg_len: f32,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("docs", &self.doc_len.len())
            .field("terms", &self.postings.len())
            .finish_non_exhaustive()
    }
}

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
        let mut doc_len = vec![0f32; docs];
        for post in postings.values() {
            for &(d, f) in post {
                doc_len[d as usize] += f as f32;
            }
        }
        let avg_len = doc_len.iter().sum::<f32>() / doc_len.len().max(1) as f32;
        Bm25 {
            postings,
            doc_len,
            avg_len: avg_len.max(1e-6),
        }
    }

    /// Every term with its postings `(document, term frequency)`, documents ascending; terms in
    /// no particular order.
    pub fn postings(&self) -> impl Iterator<Item = (&str, &[(u32, u32)])> {
        self.postings
            .iter()
            .map(|(t, p)| (t.as_str(), p.as_slice()))
    }

    /// The [`term_counts`] of every document, recovered from the postings (terms sorted).
    pub fn doc_term_counts(&self) -> Vec<Vec<(String, u32)>> {
        let mut docs: Vec<Vec<(String, u32)>> = vec![Vec::new(); self.doc_len.len()];
        for (t, post) in &self.postings {
            for &(d, f) in post {
                docs[d as usize].push((t.clone(), f));
            }
        }
        docs.iter_mut().for_each(|d| d.sort());
        docs
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    /// Whether no document was indexed.
    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
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
        for w in words {
            let Some(post) = self.postings.get(w.as_str()) else {
                continue;
            };
            let idf = self.idf_of(post.len());
            for &(doc, tf) in post {
                let tf = tf as f32;
                let norm = Self::K1
                    * (1.0 - Self::B + Self::B * self.doc_len[doc as usize] / self.avg_len);
                out[doc as usize] += idf * tf * (Self::K1 + 1.0) / (tf + norm);
            }
        }
    }
}

impl Bm25 {
    /// The BM25 rarity of `word` (0 for a word no document has).
    pub fn idf(&self, word: &str) -> f32 {
        self.postings
            .get(word)
            .map_or(0.0, |post| self.idf_of(post.len()))
    }

    fn idf_of(&self, df: usize) -> f32 {
        let (n, df) = (self.doc_len.len() as f32, df as f32);
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
        let postings: HashMap<String, Vec<(u32, u32)>> = direct
            .postings()
            .map(|(t, p)| (t.to_owned(), p.to_vec()))
            .collect();
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
}
