//! Paired-retrieval evaluation (CodeSearchNet-style): every query has exactly one relevant
//! document (its own, at the same row), and is scored against the whole pool of documents.
//!
//! * [`rank_of`]: rank = 1 + the number of *other* documents scoring higher than **or equal to**
//!   the own document (ties count against the method; a NaN own score ranks last).
//! * [`RankMetrics`] / [`metrics`]: MRR (mean of 1/rank, no cut-off), recall@1, recall@10, over all
//!   queries or over the subset a mask keeps (e.g. the queries that do not name their function).
//! * [`top_candidates`] and [`rescored_rank`]: rank after "codes, then exact rescoring of the best
//!   `c` candidates" (definition at [`rescored_rank`]).
//! * [`exact_scores`] and [`code_scores`]: full score rows (every query × every document) by exact
//!   `f32` inner products or by a quantizer's own estimate, for the ranks above;
//!   [`for_query_batches`] and [`own_ranks`] walk the queries in batches with one reused buffer.
//!
//! Everything here is pure (no I/O). The lexical leg and its fusion with these ranks live with code
//! search (`bitseek_codesearch::hybrid`), and so does the `bitseek eval-code` evaluation that reads
//! the files; this module stays light so `bitseek-learn` can score its codes with it.

use bitseek_codes::quantizer::{CodesRef, Quantizer, QueryCode, Ranking};
use bitseek_codes::BLOCK;
use rayon::prelude::*;
use serde::Serialize;

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

/// MRR and recall of the own documents' ranks over a set of queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RankMetrics {
    /// Queries averaged.
    pub queries: usize,
    /// Mean reciprocal rank, no cut-off.
    pub mrr: f64,
    /// Fraction of queries whose own document has rank 1.
    pub recall_at_1: f64,
    /// Fraction of queries whose own document has rank <= 10.
    pub recall_at_10: f64,
}

/// The metrics of the ranks whose `keep` entry is true (`None`: all ranks). Ranks start at 1.
/// An empty set gives zero queries and NaN averages.
pub fn metrics(ranks: &[usize], keep: Option<&[bool]>) -> RankMetrics {
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
    RankMetrics {
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
}
