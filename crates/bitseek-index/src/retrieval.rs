//! Paired-retrieval evaluation (CodeSearchNet-style): every query has exactly one relevant
//! document (its own, at the same row), and is scored against the whole pool of documents.
//!
//! * [`rank_of`]: rank = 1 + the number of *other* documents scoring higher than **or equal to**
//!   the own document (ties count against the method; a NaN own score ranks last).
//! * [`Metrics`] / [`metrics`]: MRR (mean of 1/rank, no cut-off), recall@1, recall@10, over all
//!   queries or over the subset a mask keeps (e.g. the queries that do not name their function).
//! * [`top_candidates`] and [`rescored_rank`]: rank after "codes, then exact rescoring of the best
//!   `c` candidates" (definition at [`rescored_rank`]).
//! * [`exact_scores`] and [`code_scores`]: full score rows (every query × every document) by exact
//!   `f32` inner products or by a quantizer's own estimate, for the ranks above;
//!   [`for_query_batches`] and [`own_ranks`] walk the queries in batches with one reused buffer.
//! * [`Bm25`], [`identifier_tokens`] and [`rrf_rank`]: a lexical leg over identifiers split at
//!   `_` and camelCase, and reciprocal rank fusion with a semantic ranking.
//!
//! Everything here is pure (no I/O); the `bitseek eval-code` command reads the files.

use bitseek_codes::quantizer::{CodesRef, Quantizer, QueryCode, Ranking};
use bitseek_codes::BLOCK;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// Rank of document `own` in `scores`: 1 + the number of other documents whose score is `>=` the
/// own score (ties count against). Incomparable (NaN) scores count against as well.
pub fn rank_of(scores: &[f32], own: usize) -> usize {
    let s = scores[own];
    // Counts the own document once, so this is already 1 + the others; with a NaN own score every
    // comparison fails the `<` test and the rank is the pool size.
    scores.iter().filter(|&&x| counts_against(x, s)).count()
}

/// Whether a document scoring `x` counts against an own document scoring `own`: higher, equal,
/// or incomparable (NaN).
fn counts_against(x: f32, own: f32) -> bool {
    x.partial_cmp(&own) != Some(std::cmp::Ordering::Less)
}

/// MRR and recall over a set of queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Queries averaged.
    pub queries: usize,
    /// Mean reciprocal rank, no cut-off.
    pub mrr: f64,
    /// Fraction of queries whose own document has rank 1.
    pub recall_at_1: f64,
    /// Fraction of queries whose own document has rank <= 10.
    pub recall_at_10: f64,
}

/// Metrics of the ranks whose `keep` entry is true (`None`: all ranks). Ranks start at 1.
/// An empty set gives zero queries and NaN averages.
pub fn metrics(ranks: &[usize], keep: Option<&[bool]>) -> Metrics {
    let (mut n, mut rr, mut r1, mut r10) = (0usize, 0f64, 0usize, 0usize);
    for (i, &r) in ranks.iter().enumerate() {
        if keep.is_some_and(|k| !k[i]) {
            continue;
        }
        debug_assert!(r >= 1, "ranks start at 1");
        n += 1;
        rr += 1.0 / r as f64;
        r1 += usize::from(r <= 1);
        r10 += usize::from(r <= 10);
    }
    let avg = |x: f64| if n == 0 { f64::NAN } else { x / n as f64 };
    Metrics {
        queries: n,
        mrr: avg(rr),
        recall_at_1: avg(r1 as f64),
        recall_at_10: avg(r10 as f64),
    }
}

/// The best `c` rows of `scores` (higher is better), best first; ties go to the lower row, as in
/// the index's scan. `scratch` is reused between calls.
pub fn top_candidates(scores: &[f32], c: usize, scratch: &mut Vec<f32>) -> Vec<u32> {
    let c = c.min(scores.len());
    if c == 0 {
        return Vec::new();
    }
    // The c-th best score is the threshold: every row above it is in, ties fill up by row.
    scratch.clear();
    scratch.extend_from_slice(scores);
    let (_, &mut threshold, _) = scratch.select_nth_unstable_by(c - 1, |a, b| b.total_cmp(a));
    let mut out: Vec<u32> = Vec::with_capacity(c);
    let mut ties = c - scores
        .iter()
        .filter(|s| s.total_cmp(&threshold).is_gt())
        .count();
    for (row, s) in scores.iter().enumerate() {
        match s.total_cmp(&threshold) {
            std::cmp::Ordering::Greater => out.push(row as u32),
            std::cmp::Ordering::Equal if ties > 0 => {
                ties -= 1;
                out.push(row as u32);
            }
            _ => {}
        }
    }
    out.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    out
}

/// Rank of document `own` after rescoring: the `candidates` (the best `c` by the codes) come
/// first, reordered by their exact scores (`exact[i]` is the exact score of `candidates[i]`); every
/// other document follows in the codes' order.
///
/// * `own` is a candidate: rank = 1 + the number of other candidates whose exact score is `>=` its
///   exact score.
/// * otherwise: rank = `c` + 1 + the number of other non-candidates whose code score is `>=` its
///   code score. When the candidates are the best `c` by `code_scores` (as [`top_candidates`] picks
///   them), this equals the own document's raw code rank ([`rank_of`]): rescoring only reorders
///   the candidates, so a document it never sees keeps its place.
pub fn rescored_rank(code_scores: &[f32], own: usize, candidates: &[u32], exact: &[f32]) -> usize {
    debug_assert_eq!(candidates.len(), exact.len());
    if let Some(pos) = candidates.iter().position(|&r| r as usize == own) {
        let s = exact[pos];
        return 1 + exact
            .iter()
            .enumerate()
            .filter(|&(i, &x)| i != pos && counts_against(x, s))
            .count();
    }
    let s = code_scores[own];
    let in_cands_ge = candidates
        .iter()
        .filter(|&&r| counts_against(code_scores[r as usize], s))
        .count();
    // rank_of counts own + every other >= own; take the candidates out and put them in front.
    candidates.len() + rank_of(code_scores, own) - in_cands_ge
}

/// Runs `f` over consecutive batches of `nq` queries against `n` documents with one reused score
/// buffer of `batch × n` floats (about 32 MiB), so ranking every query against every document
/// never holds the whole `nq × n` matrix.
pub fn for_query_batches(
    nq: usize,
    n: usize,
    mut f: impl FnMut(std::ops::Range<usize>, &mut [f32]),
) {
    let batch = ((8 << 20) / n.max(1)).clamp(16, 1024);
    let mut scores = vec![0f32; batch.min(nq) * n];
    let mut start = 0;
    while start < nq {
        let end = (start + batch).min(nq);
        f(start..end, &mut scores[..(end - start) * n]);
        start = end;
    }
}

/// The [`rank_of`] each query's own document (query `i` owns document `i`), where `score` fills
/// the `queries × n` scores of one batch of queries.
pub fn own_ranks(
    nq: usize,
    n: usize,
    mut score: impl FnMut(std::ops::Range<usize>, &mut [f32]),
) -> Vec<usize> {
    assert!(n > 0 || nq == 0, "own_ranks: queries but no documents");
    let mut ranks = vec![0usize; nq];
    for_query_batches(nq, n, |range, scores| {
        score(range.clone(), scores);
        let r: Vec<usize> = scores
            .par_chunks(n)
            .zip(range.clone())
            .map(|(row, q)| rank_of(row, q))
            .collect();
        ranks[range].copy_from_slice(&r);
    });
    ranks
}

/// Exact inner products of every query with every row of `data` (both row-major, `dim` wide):
/// `out[q * n + r] = ⟨queries[q], data[r]⟩`, `n` = rows of `data`. Chunks of `data` are spread
/// over threads, each one matrix product with the whole batch of queries (so the rows are packed
/// once per batch, not once per query group).
pub fn exact_scores(data: &[f32], dim: usize, queries: &[f32], out: &mut [f32]) {
    let n = data.len() / dim.max(1);
    let nq = queries.len() / dim.max(1);
    assert_eq!(
        out.len(),
        nq * n,
        "exact_scores: output must be queries × rows"
    );
    if n == 0 || nq == 0 {
        return;
    }
    const CHUNK: usize = 2048;
    let parts: Vec<(usize, Vec<f32>)> = data
        .par_chunks(CHUNK * dim)
        .enumerate()
        .map(|(c, block)| {
            let rows = block.len() / dim;
            let mut part = vec![0f32; nq * rows];
            crate::exact::product(queries, block, dim, &mut part);
            (c * CHUNK, part)
        })
        .collect();
    for (start, part) in parts {
        let rows = part.len() / nq;
        for (q, src) in part.chunks_exact(rows).enumerate() {
            out[q * n + start..q * n + start + rows].copy_from_slice(src);
        }
    }
}

/// The quantizer's own score of every code for every query: `out[q * n + r]`, higher is better
/// (the inner-product estimate plus the query's offset, or `−hamming` for sign codes).
/// Blocks of codes are shared by a group of queries while they are in cache, as in the flat scan.
pub fn code_scores(
    quantizer: &Quantizer,
    codes: &CodesRef<'_>,
    queries: &[QueryCode],
    out: &mut [f32],
) {
    let n = codes.len;
    assert_eq!(
        out.len(),
        queries.len() * n,
        "code_scores: output must be queries × rows"
    );
    if n == 0 || queries.is_empty() {
        return;
    }
    const GROUP: usize = 8;
    let blocks = n.div_ceil(BLOCK);
    let chunk_blocks = crate::flat::CHUNK_BLOCKS;
    let hamming = matches!(quantizer.ranking(), Ranking::Distance { .. });
    out.par_chunks_mut(GROUP * n)
        .zip(queries.par_chunks(GROUP))
        .for_each(|(o, qs)| {
            let mut dist = vec![0u32; chunk_blocks * BLOCK];
            let mut est = vec![0f32; chunk_blocks * BLOCK];
            let mut start = 0;
            while start < blocks {
                let end = (start + chunk_blocks).min(blocks);
                let rows = (end - start) * BLOCK;
                let first = start * BLOCK;
                let valid = (n - first).min(rows);
                for (qi, qc) in qs.iter().enumerate() {
                    quantizer.score(codes, qc, start..end, &mut dist[..rows], &mut est[..rows]);
                    let dst = &mut o[qi * n + first..qi * n + first + valid];
                    if hamming {
                        for (d, &h) in dst.iter_mut().zip(&dist[..valid]) {
                            *d = -(h as f32);
                        }
                    } else {
                        for (d, &e) in dst.iter_mut().zip(&est[..valid]) {
                            *d = e + qc.offset;
                        }
                    }
                }
                start = end;
            }
        });
}

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
        out.iter_mut().for_each(|s| *s = 0.0);
        let mut words = identifier_tokens(query);
        words.sort();
        words.dedup();
        let n = self.doc_len.len() as f32;
        for w in &words {
            let Some(post) = self.postings.get(w) else {
                continue;
            };
            let df = post.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in post {
                let tf = tf as f32;
                let norm = Self::K1
                    * (1.0 - Self::B + Self::B * self.doc_len[doc as usize] / self.avg_len);
                out[doc as usize] += idf * tf * (Self::K1 + 1.0) / (tf + norm);
            }
        }
    }
}

/// Reciprocal-rank-fusion constant (Cormack et al. 2009).
pub const RRF_K: f64 = 60.0;

/// Positions (1-based) of every row when `scores` is sorted best first, ties by lower row.
pub fn positions(scores: &[f32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    let mut pos = vec![0u32; scores.len()];
    for (p, &r) in order.iter().enumerate() {
        pos[r as usize] = p as u32 + 1;
    }
    pos
}

/// Fused scores `Σ 1/(k + position)` over the legs' positions ([`positions`]), into `out`.
pub fn rrf_scores(legs: &[&[u32]], out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = legs
            .iter()
            .map(|p| 1.0 / (RRF_K + p[i] as f64))
            .sum::<f64>() as f32;
    }
}

/// How deep each leg's ranked list goes when `bitseek search` fuses the semantic and lexical legs.
pub const FUSION_DEPTH: usize = 100;

/// Reciprocal rank fusion of ranked lists of rows (each best first, a row at most once per list,
/// often truncated): every row in any list gets `Σ 1/(RRF_K + position)` over the lists it is in
/// (positions 1-based). Best first; ties go to the lower row.
pub fn fuse_ranked(legs: &[&[u32]]) -> Vec<(u32, f32)> {
    let mut fused: HashMap<u32, f64> = HashMap::new();
    for leg in legs {
        for (p, &row) in leg.iter().enumerate() {
            *fused.entry(row).or_default() += 1.0 / (RRF_K + (p + 1) as f64);
        }
    }
    let mut out: Vec<(u32, f64)> = fused.into_iter().collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(r, s)| (r, s as f32)).collect()
}

/// Rank of `own` under reciprocal rank fusion of the legs' score rows (each higher-is-better):
/// positions per leg with ties by lower row, fused by [`rrf_scores`], then [`rank_of`] (ties
/// against).
pub fn rrf_rank(legs: &[&[f32]], own: usize) -> usize {
    let pos: Vec<Vec<u32>> = legs.iter().map(|s| positions(s)).collect();
    let refs: Vec<&[u32]> = pos.iter().map(Vec::as_slice).collect();
    let mut fused = vec![0f32; legs.first().map_or(0, |l| l.len())];
    rrf_scores(&refs, &mut fused);
    rank_of(&fused, own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_counts_ties_against() {
        let s = [0.5, 0.9, 0.5, 0.1, 0.5];
        // own 0 (0.5): others >= 0.5 are rows 1, 2, 4 → rank 4.
        assert_eq!(rank_of(&s, 0), 4);
        assert_eq!(rank_of(&s, 1), 1);
        assert_eq!(rank_of(&s, 3), 5);
        assert_eq!(rank_of(&[1.0], 0), 1);
        // A NaN own score ranks last.
        assert_eq!(rank_of(&[f32::NAN, 0.0, 1.0], 0), 3);
    }

    #[test]
    fn mrr_and_recall_by_hand() {
        let ranks = [1, 2, 10, 11];
        let m = metrics(&ranks, None);
        assert_eq!(m.queries, 4);
        let mrr = (1.0 + 0.5 + 0.1 + 1.0 / 11.0) / 4.0;
        assert!((m.mrr - mrr).abs() < 1e-12);
        assert_eq!(m.recall_at_1, 0.25);
        assert_eq!(m.recall_at_10, 0.75);
    }

    #[test]
    fn subset_averages_only_kept_queries() {
        let ranks = [1, 2, 4, 20];
        let name_free = [false, true, true, false];
        let m = metrics(&ranks, Some(&name_free));
        assert_eq!(m.queries, 2);
        assert!((m.mrr - (0.5 + 0.25) / 2.0).abs() < 1e-12);
        assert_eq!(m.recall_at_1, 0.0);
        assert_eq!(m.recall_at_10, 1.0);
        let none = metrics(&ranks, Some(&[false; 4]));
        assert_eq!(none.queries, 0);
        assert!(none.mrr.is_nan());
    }

    #[test]
    fn ties_make_ranks_from_scores_pessimistic() {
        // Three queries, three docs: query 0 ties everything, query 1 wins, query 2 ties one.
        let rows: [[f32; 3]; 3] = [[0.3, 0.3, 0.3], [0.0, 0.8, 0.7], [0.2, 0.9, 0.9]];
        let ranks: Vec<usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| rank_of(r, i))
            .collect();
        assert_eq!(ranks, [3, 1, 2]);
        let m = metrics(&ranks, None);
        assert!((m.mrr - (1.0 / 3.0 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m.recall_at_1 - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn candidates_are_best_first_ties_by_row() {
        let s = [0.1, 0.5, 0.5, 0.9, 0.5, 0.0];
        let mut scratch = Vec::new();
        assert_eq!(top_candidates(&s, 1, &mut scratch), [3]);
        assert_eq!(top_candidates(&s, 3, &mut scratch), [3, 1, 2]);
        assert_eq!(top_candidates(&s, 4, &mut scratch), [3, 1, 2, 4]);
        assert_eq!(top_candidates(&s, 10, &mut scratch), [3, 1, 2, 4, 0, 5]);
        assert!(top_candidates(&s, 0, &mut scratch).is_empty());
    }

    #[test]
    fn rescored_rank_definition() {
        // Codes: row 3 best, then rows 1, 2, 4 tied, then 0, then 5.
        let code = [0.1, 0.5, 0.5, 0.9, 0.5, 0.0];
        let mut scratch = Vec::new();
        let cands = top_candidates(&code, 3, &mut scratch); // [3, 1, 2]
                                                            // Exact scores of the candidates in candidate order: row 1 is the best, 2 ties with 3.
        let exact = [0.4, 0.8, 0.4];
        // Own = 1: best exact among candidates → 1.
        assert_eq!(rescored_rank(&code, 1, &cands, &exact), 1);
        // Own = 3: row 2 ties (counts against), row 1 higher → 3.
        assert_eq!(rescored_rank(&code, 3, &cands, &exact), 3);
        // Own = 4 (tied with candidates 1 and 2 by code, left out by row): after the 3
        // candidates, no other non-candidate is >= 0.5 → 4, its raw code rank.
        assert_eq!(rescored_rank(&code, 4, &cands, &exact), 4);
        assert_eq!(rank_of(&code, 4), 4);
        // Own = 5: candidates, then rows 4 and 0 above it → 6 = its raw code rank.
        assert_eq!(rescored_rank(&code, 5, &cands, &exact), 6);
        assert_eq!(rank_of(&code, 5), 6);
        // Candidates that are not the best by code: non-candidates still follow all candidates.
        assert_eq!(rescored_rank(&code, 3, &[0, 5], &[0.0, 0.0]), 3);
    }

    #[test]
    fn exact_scores_are_inner_products() {
        let data = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let queries = [0.0, 1.0, 1.0, 1.0];
        let mut out = vec![0.0; 6];
        exact_scores(&data, 2, &queries, &mut out);
        let want = [0.0, 1.0, 0.8, 1.0, 1.0, 1.4];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn code_scores_match_the_flat_scan_order() {
        use bitseek_codes::quantizer::{FitOptions, QuantizerKind, QueryMode};
        let dim = 64;
        let n = 37;
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 7919 % 101) as f32 / 50.0 - 1.0) * if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        for kind in [
            QuantizerKind::Sign,
            QuantizerKind::Rabitq,
            QuantizerKind::Int8,
        ] {
            let q = Quantizer::fit(kind, dim, &data, FitOptions::default());
            let codes = q.encode(&data);
            let qcs: Vec<QueryCode> = data
                .chunks(dim)
                .take(3)
                .enumerate()
                .map(|(i, x)| q.encode_query(x, QueryMode::Asymmetric, i as u64))
                .collect();
            let mut out = vec![0f32; 3 * n];
            code_scores(&q, &codes.as_ref(), &qcs, &mut out);
            let cands = crate::flat::scan(&q, &codes.as_ref(), &qcs, n, crate::flat::KeyFn::Dot);
            for (qi, c) in cands.iter().enumerate() {
                let row = &out[qi * n..(qi + 1) * n];
                let mut scratch = Vec::new();
                let mine = top_candidates(row, n, &mut scratch);
                let theirs: Vec<u32> = c.iter().map(|c| c.row).collect();
                assert_eq!(mine, theirs, "{kind}");
            }
        }
    }

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
    fn rrf_fuses_positions() {
        // Leg A ranks 0, 1, 2; leg B ranks 2, 1, 0. Rows 0 and 2 get 1/61 + 1/63 = 0.032266,
        // row 1 gets 2/62 = 0.032258: second twice loses to first plus third.
        let a = [0.9, 0.5, 0.1];
        let b = [0.1, 0.5, 0.9];
        assert_eq!(positions(&a), [1, 2, 3]);
        assert_eq!(positions(&b), [3, 2, 1]);
        assert_eq!(rrf_rank(&[&a, &b], 1), 3);
        // Rows 0 and 2 tie: each counts against the other.
        assert_eq!(rrf_rank(&[&a, &b], 0), 2);
        assert_eq!(rrf_rank(&[&a, &b], 2), 2);
        // Ties inside a leg are broken by row for the positions.
        assert_eq!(positions(&[0.5, 0.5, 0.7]), [2, 3, 1]);
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

    #[test]
    fn fused_lists_reward_agreement_and_keep_one_sided_rows() {
        // Row 7 is second in both lists and beats row 1, first in one list only.
        let fused = fuse_ranked(&[&[1, 7, 3], &[9, 7]]);
        let rows: Vec<u32> = fused.iter().map(|f| f.0).collect();
        assert_eq!(rows, [7, 1, 9, 3]);
        let expect = 2.0 / (RRF_K + 2.0);
        assert!((fused[0].1 as f64 - expect).abs() < 1e-6);
        // Equal fused scores go to the lower row.
        let tie = fuse_ranked(&[&[5], &[2]]);
        assert_eq!(tie.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 5]);
        assert!(fuse_ranked(&[]).is_empty());
    }
}
