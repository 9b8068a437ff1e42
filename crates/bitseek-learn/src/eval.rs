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
