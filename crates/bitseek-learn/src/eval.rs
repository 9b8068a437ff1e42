//! CodeSearchNet-style ranks for learned and training-free codes: query `i` ranks every document
//! and its own is document `i` (ties count against). Scoring goes through the quantizer's own
//! kernels (`bitseek_index::retrieval::code_scores`), the same arithmetic the index's scan uses.

use bitseek_codes::quantizer::{Codes, Quantizer, QueryCode, QueryMode};
use bitseek_index::retrieval;
use rayon::prelude::*;

/// Encodes documents in parallel chunks and joins them.
pub fn encode_all(q: &Quantizer, docs: &[f32], dim: usize) -> Codes {
    let chunks: Vec<Codes> = docs.par_chunks(4096 * dim).map(|r| q.encode(r)).collect();
    let mut it = chunks.into_iter();
    let mut codes = it.next().unwrap_or_default();
    for c in it {
        codes.append(c);
    }
    codes
}

/// Ranks of each query's own document under `quantizer` (query mode and bits as given).
pub fn code_ranks(
    quantizer: &Quantizer,
    queries: &[f32],
    docs: &[f32],
    dim: usize,
    mode: QueryMode,
    query_bits: Option<usize>,
) -> Vec<usize> {
    cross_ranks(quantizer, quantizer, queries, docs, dim, mode, query_bits)
}

/// Ranks under exact float cosine (inputs L2-normalised).
pub fn float_ranks(queries: &[f32], docs: &[f32], dim: usize) -> Vec<usize> {
    retrieval::own_ranks(queries.len() / dim, docs.len() / dim, |range, scores| {
        retrieval::exact_scores(
            docs,
            dim,
            &queries[range.start * dim..range.end * dim],
            scores,
        )
    })
}

/// Ranks when queries are encoded by `qenc` and documents by `denc` (cross-version search:
/// new query codes against old document codes; both must share code dims and bits).
pub fn cross_ranks(
    qenc: &Quantizer,
    denc: &Quantizer,
    queries: &[f32],
    docs: &[f32],
    dim: usize,
    mode: QueryMode,
    query_bits: Option<usize>,
) -> Vec<usize> {
    let codes = encode_all(denc, docs, dim);
    let code_ref = codes.as_ref();
    retrieval::own_ranks(queries.len() / dim, docs.len() / dim, |range, scores| {
        let qcs: Vec<QueryCode> = range
            .into_par_iter()
            .map(|i| {
                qenc.encode_query_bits(&queries[i * dim..(i + 1) * dim], mode, query_bits, i as u64)
            })
            .collect();
        retrieval::code_scores(denc, &code_ref, &qcs, scores);
    })
}

/// Mean reciprocal rank.
pub fn mrr(ranks: &[usize]) -> f64 {
    retrieval::metrics(ranks, None).mrr
}

/// How well codes find the exact float top-`k`: raw recall@k (the codes' own top `k`) and, for
/// each multiplier `x` of `rescore`, recall@k after rescoring the codes' top `x·k` by exact float
/// scores. A code candidate counts when its exact score reaches the `k`-th best exact score
/// (ties and duplicate vectors count as found). Inputs are L2-normalised, row-major.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recall {
    pub raw: f64,
    /// `(multiplier, recall@k)`.
    pub rescored: Vec<(usize, f64)>,
}

/// [`Recall`] of `quantizer` (its query mode and bits as given) for `queries` over `docs`.
#[allow(clippy::too_many_arguments)]
pub fn recall_at(
    quantizer: &Quantizer,
    queries: &[f32],
    docs: &[f32],
    dim: usize,
    k: usize,
    mode: QueryMode,
    query_bits: Option<usize>,
    rescore: &[usize],
) -> Recall {
    let (nq, n) = (queries.len() / dim, docs.len() / dim);
    let k = k.min(n).max(1);
    let codes = encode_all(quantizer, docs, dim);
    let code_ref = codes.as_ref();
    let mut exact = Vec::new();
    let mut hits = vec![0usize; 1 + rescore.len()];
    retrieval::for_query_batches(nq, n, |range, scores| {
        exact.resize(scores.len(), 0f32);
        retrieval::exact_scores(
            docs,
            dim,
            &queries[range.start * dim..range.end * dim],
            &mut exact,
        );
        let qcs: Vec<QueryCode> = range
            .clone()
            .into_par_iter()
            .map(|i| {
                quantizer.encode_query_bits(
                    &queries[i * dim..(i + 1) * dim],
                    mode,
                    query_bits,
                    i as u64,
                )
            })
            .collect();
        retrieval::code_scores(quantizer, &code_ref, &qcs, scores);
        let found: Vec<Vec<usize>> = scores
            .par_chunks(n)
            .zip(exact.par_chunks(n))
            .map(|(code, ex)| {
                let mut scratch = Vec::new();
                let mut sorted = ex.to_vec();
                let (_, &mut kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
                let count = |c: usize, scratch: &mut Vec<f32>| {
                    let cands = retrieval::top_candidates(code, c, scratch);
                    cands
                        .iter()
                        .filter(|&&r| ex[r as usize] >= kth)
                        .count()
                        .min(k)
                };
                std::iter::once(k)
                    .chain(rescore.iter().map(|x| x * k))
                    .map(|c| count(c, &mut scratch))
                    .collect()
            })
            .collect();
        for f in found {
            hits.iter_mut().zip(f).for_each(|(h, v)| *h += v);
        }
    });
    let total = (nq * k).max(1) as f64;
    Recall {
        raw: hits[0] as f64 / total,
        rescored: rescore
            .iter()
            .zip(&hits[1..])
            .map(|(&x, &h)| (x, h as f64 / total))
            .collect(),
    }
}
