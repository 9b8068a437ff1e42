//! CodeSearchNet-style evaluation of code search (`bitseek eval-code`) on a file of query →
//! function pairs: every query ranks every function of the file; MRR, recall@1 and recall@10
//! over all queries and over the queries that do not name their function, for float32 exact
//! search, each quantizer's raw codes and codes + exact rescoring, and (with `hybrid`) BM25 over
//! identifiers and its fusion with float32, both over whole rows and as `bitseek search` fuses.
//!
//! Ranks follow `bitseek_index::retrieval`: ties count against the method; after rescoring, the
//! `10 × oversample` candidates come first in exact order and every other function keeps its
//! place in the codes' order. Printing is the caller's.

mod pairs;
mod ranking;

pub use pairs::{Pair, PairSet, PairVectors, VectorSource};
pub use ranking::{
    evaluate_ranking, methods, Method, MethodScores, Named, PartScores, RankingEvaluation,
    RankingOptions,
};

use crate::hybrid::{rrf_rank, searched_rank, Bm25, FUSION_DEPTH};
use bitseek_codes::quantizer::{FitOptions, Quantizer, QuantizerKind, QueryCode, QueryMode};
use bitseek_index::input::InputError;
use bitseek_index::retrieval::{
    code_scores, exact_scores, for_query_batches, metrics, rank_of, rescored_rank, top_candidates,
    RankMetrics,
};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// Candidate rows per query handed to rescoring, per unit of oversampling.
pub const CANDIDATES_PER_OVERSAMPLE: usize = 10;

/// What to evaluate besides float32.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Quantizers to evaluate, raw and rescored.
    pub quantizers: Vec<QuantizerKind>,
    /// Rescoring takes [`CANDIDATES_PER_OVERSAMPLE`] × `oversample` candidates from the codes.
    pub oversample: usize,
    /// Also BM25 over identifiers and its reciprocal-rank fusion with float32.
    pub hybrid: bool,
    /// The lexical leg's weight in the fusion as search runs it ([`crate::hybrid::Ranking`]'s
    /// `lexical_weight`; 1: equal legs).
    pub lexical_weight: f32,
}

/// Told how far an evaluation has got (a progress bar, or nothing: `()`).
pub trait Progress {
    /// A stage of `total` steps starts.
    fn begin(&mut self, _stage: &str, _total: u64) {}
    /// `steps` more steps are done.
    fn advance(&mut self, _steps: u64) {}
    /// The stage is over.
    fn finish(&mut self) {}
}

impl Progress for () {}

/// One evaluated method.
#[derive(Clone, Debug)]
pub struct MethodRow {
    /// `float32`, `bm25 (identifiers)`, `rabitq`, `rabitq + rescore 100`, …
    pub method: String,
    /// Bytes a function's vector takes (`-` for BM25, `16 + 1536` for codes + float32).
    pub bytes_per_vector: String,
    /// Over all queries.
    pub all: RankMetrics,
    /// Over the queries that do not name their function.
    pub name_free: RankMetrics,
    /// Wall time of the pass that produced it (`None`: shared with the row above).
    pub seconds: Option<f64>,
}

/// The rows of an evaluation, float32 first.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// One per method.
    pub rows: Vec<MethodRow>,
    /// Candidates per query handed to rescoring.
    pub candidates: usize,
}

/// Why an evaluation could not run. Messages name the file and line.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The pairs file cannot be opened.
    #[error("{}: cannot open", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the pairs file cannot be read.
    #[error("{}: line {line}: cannot read", path.display())]
    ReadLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: std::io::Error,
    },
    /// A line is not a pair.
    #[error(
        "{}: line {line}: expected a JSON object with query, code, name_in_query and lang",
        path.display()
    )]
    BadPair {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The pairs file has no pairs.
    #[error("{}: no pairs in the file", path.display())]
    NoPairs { path: PathBuf },
    /// The pairs file mixes languages.
    #[error(
        "{}: line {line} has lang {found:?} but line 1 has {first:?}; evaluate one language per file (never mix pools)",
        path.display()
    )]
    MixedLangs {
        path: PathBuf,
        line: usize,
        found: String,
        first: String,
    },
    /// Shipped vectors that do not embed the pairs file line by line.
    #[error(
        "{}: {rows} rows but {} has {in_file} pairs; row i must embed line i (re-embed with --embed)",
        vectors.display(), pairs.display()
    )]
    RowCount {
        vectors: PathBuf,
        rows: usize,
        pairs: PathBuf,
        in_file: usize,
    },
    /// Query and code vectors of different widths.
    #[error(
        "{} has dimension {query_dim} but {} has {code_dim}",
        queries.display(), codes.display()
    )]
    DimMismatch {
        queries: PathBuf,
        query_dim: usize,
        codes: PathBuf,
        code_dim: usize,
    },
    /// A vector that fails the checks every vector passes (finite, non-zero under cosine).
    #[error("{what} vectors: {source}")]
    Vectors {
        /// Which side of the pairs: `query` or `code`.
        what: &'static str,
        /// The row and what is wrong with it.
        source: bitseek_index::VectorError,
    },
    /// The pairs cannot be evaluated by `--ranking`.
    #[error("{0}")]
    Ranking(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Embed(#[from] bitseek_embed::Error),
}

/// Ranks every query of `set` against every function with each method `options` asks for.
/// `progress` sees one stage, `ranking`, of one step per query and pass.
pub fn evaluate(
    set: &PairSet,
    vectors: &PairVectors,
    options: &EvalOptions,
    progress: &mut dyn Progress,
) -> Evaluation {
    let n = set.len();
    assert!(
        vectors.queries.rows() == n && vectors.codes.rows() == n,
        "evaluate: the vectors must embed the evaluated pairs row by row"
    );
    let name_free: Vec<bool> = set.pairs.iter().map(|p| !p.name_in_query).collect();
    let candidates = CANDIDATES_PER_OVERSAMPLE * options.oversample;
    let passes = 1 + options.quantizers.len() as u64;
    progress.begin("ranking", passes * n as u64);
    let mut rows = float32_rows(set, vectors, options, &name_free, progress);
    for &kind in &options.quantizers {
        rows.extend(code_rows(kind, vectors, candidates, &name_free, progress));
    }
    progress.finish();
    Evaluation { rows, candidates }
}

/// The float32 row, and with `hybrid` the BM25 row and the two fusions of both legs (over whole
/// rows, and the best [`FUSION_DEPTH`] per leg as `bitseek search` runs it).
fn float32_rows(
    set: &PairSet,
    vectors: &PairVectors,
    options: &EvalOptions,
    name_free: &[bool],
    progress: &mut dyn Progress,
) -> Vec<MethodRow> {
    let (hybrid, lexical_weight) = (options.hybrid, options.lexical_weight);
    let (queries, codes) = (&vectors.queries, &vectors.codes);
    let (n, dim) = (set.len(), queries.dim);
    let t = Instant::now();
    let bm25 = hybrid.then(|| Bm25::new(&set.pairs.iter().map(|p| &p.code).collect::<Vec<_>>()));
    let mut f32_ranks = vec![0usize; n];
    let mut bm25_ranks = vec![0usize; n];
    let mut hybrid_ranks = vec![0usize; n];
    let mut search_ranks = vec![0usize; n];
    for_query_batches(n, n, |range, scores| {
        exact_scores(
            &codes.data,
            dim,
            &queries.data[range.start * dim..range.end * dim],
            scores,
        );
        let per: Vec<(usize, usize, usize, usize)> = scores
            .par_chunks(n)
            .zip(range.clone())
            .map_init(
                || (vec![0f32; if bm25.is_some() { n } else { 0 }], Vec::new()),
                |(lex, scratch), (row, q)| {
                    let exact = rank_of(row, q);
                    match &bm25 {
                        Some(bm) => {
                            bm.scores(&set.pairs[q].query, lex);
                            let lexical = rank_of(lex, q);
                            let fused = rrf_rank(&[row, lex], q);
                            let searched =
                                searched_rank(row, lex, q, lexical_weight as f64, scratch);
                            (exact, lexical, fused, searched)
                        }
                        None => (exact, 0, 0, 0),
                    }
                },
            )
            .collect();
        for (q, (e, l, h, s)) in range.clone().zip(per) {
            f32_ranks[q] = e;
            bm25_ranks[q] = l;
            hybrid_ranks[q] = h;
            search_ranks[q] = s;
        }
        progress.advance(range.len() as u64);
    });
    let seconds = t.elapsed().as_secs_f64();
    let mut rows = vec![row(
        "float32",
        (4 * dim).to_string(),
        &f32_ranks,
        name_free,
        Some(seconds),
    )];
    if hybrid {
        rows.push(row(
            "bm25 (identifiers)",
            "-".into(),
            &bm25_ranks,
            name_free,
            None,
        ));
        rows.push(row(
            "hybrid: float32 + bm25 (rrf 60)",
            format!("{} + text", 4 * dim),
            &hybrid_ranks,
            name_free,
            None,
        ));
        rows.push(row(
            &if lexical_weight == 1.0 {
                format!("hybrid, top {FUSION_DEPTH}/leg (as search)")
            } else {
                format!("hybrid, top {FUSION_DEPTH}/leg, bm25 x{lexical_weight} (as search)")
            },
            format!("{} + text", 4 * dim),
            &search_ranks,
            name_free,
            None,
        ));
    }
    rows
}

/// The raw and the rescored row of one quantizer, fitted on the code vectors.
fn code_rows(
    kind: QuantizerKind,
    vectors: &PairVectors,
    candidates: usize,
    name_free: &[bool],
    progress: &mut dyn Progress,
) -> [MethodRow; 2] {
    let (queries, codes) = (&vectors.queries, &vectors.codes);
    let (n, dim) = (codes.rows(), codes.dim);
    let t = Instant::now();
    let quantizer = Quantizer::fit(kind, dim, &codes.data, FitOptions::default());
    let encoded: Vec<_> = codes
        .data
        .par_chunks(8192 * dim)
        .map(|r| quantizer.encode(r))
        .collect();
    let mut encoded = encoded.into_iter();
    let mut code_set = encoded.next().unwrap_or_default();
    for c in encoded {
        code_set.append(c);
    }
    let code_ref = code_set.as_ref();
    let bytes = code_set.bytes_per_vector();
    let mut raw_ranks = vec![0usize; n];
    let mut rescored_ranks = vec![0usize; n];
    for_query_batches(n, n, |range, scores| {
        let qcs: Vec<QueryCode> = range
            .clone()
            .into_par_iter()
            .map(|q| quantizer.encode_query(queries.row(q), QueryMode::Asymmetric, q as u64))
            .collect();
        code_scores(&quantizer, &code_ref, &qcs, scores);
        let per: Vec<(usize, usize)> = scores
            .par_chunks(n)
            .zip(range.clone())
            .map_init(Vec::new, |scratch, (row, q)| {
                let raw = rank_of(row, q);
                let cands = top_candidates(row, candidates, scratch);
                let dot = bitseek_codes::kernels::kernels().dot_f32;
                let exact: Vec<f32> = cands
                    .iter()
                    .map(|&c| dot(queries.row(q), codes.row(c as usize)))
                    .collect();
                (raw, rescored_rank(row, q, &cands, &exact))
            })
            .collect();
        for (q, (r, s)) in range.clone().zip(per) {
            raw_ranks[q] = r;
            rescored_ranks[q] = s;
        }
        progress.advance(range.len() as u64);
    });
    let seconds = t.elapsed().as_secs_f64();
    [
        row(
            &kind.to_string(),
            bytes.to_string(),
            &raw_ranks,
            name_free,
            Some(seconds),
        ),
        row(
            &format!("{kind} + rescore {candidates}"),
            format!("{bytes} + {}", 4 * dim),
            &rescored_ranks,
            name_free,
            None,
        ),
    ]
}

fn row(
    method: &str,
    bytes: String,
    ranks: &[usize],
    name_free: &[bool],
    seconds: Option<f64>,
) -> MethodRow {
    MethodRow {
        method: method.to_string(),
        bytes_per_vector: bytes,
        all: metrics(ranks, None),
        name_free: metrics(ranks, Some(name_free)),
        seconds,
    }
}
