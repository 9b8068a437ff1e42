//! `bitseek eval-code`: CodeSearchNet-style evaluation of code search on a file of
//! query → function pairs (`../shared/data/codesearch`): every query ranks every function of the
//! file; MRR, recall@1 and recall@10 over all queries and over the queries that do not name their
//! function, for float32 exact search, each quantizer's raw codes and codes + exact rescoring
//! (and with `--hybrid`, BM25 over identifiers and its fusion with float32).
//!
//! Ranks follow `bitseek_index::retrieval`: ties count against the method; after rescoring, the
//! `10 × oversample` candidates come first in exact order and every other function keeps its
//! place in the codes' order.

use anyhow::{bail, Context};
use bitseek_codes::quantizer::{FitOptions, Quantizer, QuantizerKind, QueryCode, QueryMode};
use bitseek_index::input::{read_vectors, Vectors};
use bitseek_index::retrieval::{self, Metrics};
use bitseek_index::{Metric, VectorBatch};
use rayon::prelude::*;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Pairs file (.jsonl or .jsonl.gz): one {"query", "code", "name_in_query", "lang"} object a line.
    pairs: PathBuf,
    /// Quantizers to evaluate, raw and rescored (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sign,rabitq,residual2,int8"
    )]
    quantizer: Vec<QuantizerKind>,
    /// Rescoring takes 10 × OVERSAMPLE candidates from the codes.
    #[arg(long, default_value_t = 10, value_parser = crate::positive)]
    oversample: usize,
    /// Evaluate only the first N pairs (the rows are in seeded random order: a uniform sample).
    #[arg(long, value_parser = crate::positive)]
    limit: Option<usize>,
    /// Embed the texts with the model even when <stem>.query.f16.npy / <stem>.code.f16.npy exist.
    #[arg(long)]
    embed: bool,
    /// Model directory for --embed (default: $BITSEEK_MODEL_DIR or the cache).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Embed with the model's 8-bit path (implies --embed): what it costs in MRR.
    #[arg(long)]
    int8: bool,
    /// Also evaluate BM25 over identifiers and its reciprocal-rank fusion (k = 60) with float32.
    #[arg(long)]
    hybrid: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The fields of a pair the evaluation reads (others are ignored).
#[derive(Deserialize)]
struct Pair {
    query: String,
    code: String,
    name_in_query: bool,
    lang: String,
}

/// One evaluated method.
struct Row {
    method: String,
    bytes_per_vector: String,
    all: Metrics,
    name_free: Metrics,
    /// Wall time of the pass that produced it (`None`: shared with the row above).
    seconds: Option<f64>,
}

/// Candidate rows per query handed to rescoring.
const CANDIDATES_PER_OVERSAMPLE: usize = 10;

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut pairs = read_pairs(&a.pairs)?;
    let in_file = pairs.len();
    let lang = pairs[0].lang.clone();
    if let Some((i, p)) = pairs.iter().enumerate().find(|(_, p)| p.lang != lang) {
        bail!(
            "{}: line {} has lang {:?} but line 1 has {:?}; evaluate one language per file (never mix pools)",
            a.pairs.display(),
            i + 1,
            p.lang,
            lang
        );
    }
    let n = a.limit.unwrap_or(in_file).min(in_file);
    pairs.truncate(n);

    let (mut queries, mut codes, source) = vectors(&a, &pairs, in_file)?;
    let dim = queries.dim;
    queries.data.truncate(n * dim);
    codes.data.truncate(n * dim);
    normalize_all(&mut queries, "query")?;
    normalize_all(&mut codes, "code")?;
    let name_free: Vec<bool> = pairs.iter().map(|p| !p.name_in_query).collect();
    let candidates = CANDIDATES_PER_OVERSAMPLE * a.oversample;

    let passes = 1 + a.quantizer.len() as u64;
    let bar = crate::progress(passes * n as u64, "ranking", a.json);
    let mut rows = Vec::new();

    // float32 exact (and the hybrid legs, which need the float32 row).
    let t = Instant::now();
    let bm25 = a
        .hybrid
        .then(|| retrieval::Bm25::new(&pairs.iter().map(|p| &p.code).collect::<Vec<_>>()));
    let mut f32_ranks = vec![0usize; n];
    let mut bm25_ranks = vec![0usize; n];
    let mut hybrid_ranks = vec![0usize; n];
    let mut search_ranks = vec![0usize; n];
    retrieval::for_query_batches(n, n, |range, scores| {
        retrieval::exact_scores(
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
                    let exact = retrieval::rank_of(row, q);
                    match &bm25 {
                        Some(bm) => {
                            bm.scores(&pairs[q].query, lex);
                            let lexical = retrieval::rank_of(lex, q);
                            let fused = retrieval::rrf_rank(&[row, lex], q);
                            let searched = search_fusion_rank(row, lex, q, scratch);
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
        bar.inc(range.len() as u64);
    });
    let seconds = t.elapsed().as_secs_f64();
    rows.push(row(
        "float32",
        (4 * dim).to_string(),
        &f32_ranks,
        &name_free,
        Some(seconds),
    ));
    if a.hybrid {
        rows.push(row(
            "bm25 (identifiers)",
            "-".into(),
            &bm25_ranks,
            &name_free,
            None,
        ));
        rows.push(row(
            "hybrid: float32 + bm25 (rrf 60)",
            format!("{} + text", 4 * dim),
            &hybrid_ranks,
            &name_free,
            None,
        ));
        rows.push(row(
            &format!("hybrid, top {}/leg (as search)", retrieval::FUSION_DEPTH),
            format!("{} + text", 4 * dim),
            &search_ranks,
            &name_free,
            None,
        ));
    }

    for &kind in &a.quantizer {
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
        retrieval::for_query_batches(n, n, |range, scores| {
            let qcs: Vec<QueryCode> = range
                .clone()
                .into_par_iter()
                .map(|q| quantizer.encode_query(queries.row(q), QueryMode::Asymmetric, q as u64))
                .collect();
            retrieval::code_scores(&quantizer, &code_ref, &qcs, scores);
            let per: Vec<(usize, usize)> = scores
                .par_chunks(n)
                .zip(range.clone())
                .map_init(Vec::new, |scratch, (row, q)| {
                    let raw = retrieval::rank_of(row, q);
                    let cands = retrieval::top_candidates(row, candidates, scratch);
                    let dot = bitseek_codes::kernels::kernels().dot_f32;
                    let exact: Vec<f32> = cands
                        .iter()
                        .map(|&c| dot(queries.row(q), codes.row(c as usize)))
                        .collect();
                    (raw, retrieval::rescored_rank(row, q, &cands, &exact))
                })
                .collect();
            for (q, (r, s)) in range.clone().zip(per) {
                raw_ranks[q] = r;
                rescored_ranks[q] = s;
            }
            bar.inc(range.len() as u64);
        });
        let seconds = t.elapsed().as_secs_f64();
        rows.push(row(
            &kind.to_string(),
            bytes.to_string(),
            &raw_ranks,
            &name_free,
            Some(seconds),
        ));
        rows.push(row(
            &format!("{kind} + rescore {candidates}"),
            format!("{bytes} + {}", 4 * dim),
            &rescored_ranks,
            &name_free,
            None,
        ));
    }
    bar.finish_and_clear();
    report(&a, &lang, n, in_file, &source, candidates, &rows)
}

fn row(
    method: &str,
    bytes: String,
    ranks: &[usize],
    name_free: &[bool],
    seconds: Option<f64>,
) -> Row {
    Row {
        method: method.to_string(),
        bytes_per_vector: bytes,
        all: retrieval::metrics(ranks, None),
        name_free: retrieval::metrics(ranks, Some(name_free)),
        seconds,
    }
}

fn report(
    a: &Args,
    lang: &str,
    n: usize,
    in_file: usize,
    source: &str,
    candidates: usize,
    rows: &[Row],
) -> anyhow::Result<()> {
    let float_mrr = rows[0].all.mrr;
    let float_nf = rows[0].name_free.mrr;
    let name_free = rows[0].name_free.queries;
    if a.json {
        let methods: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.method,
                    "bytes_per_vector": r.bytes_per_vector,
                    "all": r.all,
                    "name_free": r.name_free,
                    "mrr_vs_float32": r.all.mrr / float_mrr,
                    "name_free_mrr_vs_float32": r.name_free.mrr / float_nf,
                    "seconds": r.seconds,
                })
            })
            .collect();
        let out = serde_json::json!({
            "file": a.pairs,
            "lang": lang,
            "rows": n,
            "rows_in_file": in_file,
            "name_free_queries": name_free,
            "vectors": source,
            "candidates": candidates,
            "ties": "count against",
            "methods": methods,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} ({lang}): {n} pairs{} — every query ranks all {n} functions; name-free subset: {name_free} queries",
        a.pairs.display(),
        if n < in_file {
            format!(" (first {n} of {in_file})")
        } else {
            String::new()
        }
    );
    println!("vectors: {source}");
    println!(
        "{:<34} {:>11} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>8} {:>7}",
        "method",
        "bytes/vec",
        "MRR",
        "R@1",
        "R@10",
        "nf MRR",
        "nf R@1",
        "nf R@10",
        "%f32 MRR",
        "secs"
    );
    for r in rows {
        println!(
            "{:<34} {:>11} {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.2}% {:>7}",
            r.method,
            r.bytes_per_vector,
            r.all.mrr,
            r.all.recall_at_1,
            r.all.recall_at_10,
            r.name_free.mrr,
            r.name_free.recall_at_1,
            r.name_free.recall_at_10,
            100.0 * r.all.mrr / float_mrr,
            r.seconds.map_or("\"".to_string(), |s| format!("{s:.1}"))
        );
    }
    Ok(())
}

/// Reads the pairs of a `.jsonl` or `.jsonl.gz` file; errors name the file and line.
fn read_pairs(path: &Path) -> anyhow::Result<Vec<Pair>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut pairs = Vec::new();
    for (i, line) in BufReader::with_capacity(1 << 20, reader)
        .lines()
        .enumerate()
    {
        let line =
            line.with_context(|| format!("{}: line {}: cannot read", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: line {}: expected a JSON object with query, code, name_in_query and lang",
                path.display(),
                i + 1
            )
        })?;
        pairs.push(pair);
    }
    if pairs.is_empty() {
        bail!("{}: no pairs in the file", path.display());
    }
    Ok(pairs)
}

/// `dev-python` for `dir/dev-python.jsonl.gz`.
fn stem(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name
        .strip_suffix(".gz")
        .unwrap_or(&name)
        .trim_end_matches(".jsonl")
        .trim_end_matches(".ndjson")
        .to_string();
    path.with_file_name(base)
}

/// The query and code vectors: the shipped `<stem>.query.f16.npy` / `<stem>.code.f16.npy` beside
/// the pairs file, or (with `--embed`, or when they are missing) the model's embeddings.
fn vectors(a: &Args, pairs: &[Pair], in_file: usize) -> anyhow::Result<(Vectors, Vectors, String)> {
    let stem = stem(&a.pairs);
    let q_path = PathBuf::from(format!("{}.query.f16.npy", stem.display()));
    let c_path = PathBuf::from(format!("{}.code.f16.npy", stem.display()));
    if !a.embed && !a.int8 && q_path.exists() && c_path.exists() {
        let q = read_vectors(&q_path)?;
        let c = read_vectors(&c_path)?;
        for (p, v) in [(&q_path, &q), (&c_path, &c)] {
            if v.rows() != in_file {
                bail!(
                    "{}: {} rows but {} has {in_file} pairs; row i must embed line i (re-embed with --embed)",
                    p.display(),
                    v.rows(),
                    a.pairs.display()
                );
            }
        }
        if q.dim != c.dim {
            bail!(
                "{} has dimension {} but {} has {}",
                q_path.display(),
                q.dim,
                c_path.display(),
                c.dim
            );
        }
        let source = format!(
            "shipped embeddings {} and {} (cast to f32, L2-normalised)",
            q_path.display(),
            c_path.display()
        );
        return Ok((q, c, source));
    }
    use bitseek_embed::{BertEmbedder, Embedder, ModelDir};
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(a.model_dir.as_deref())?)?;
    let embedder = BertEmbedder::load_with(
        &dir,
        bitseek_embed::EmbedOptions {
            int8: a.int8,
            ..Default::default()
        },
    )?;
    let dim = embedder.dim();
    let why = if a.int8 {
        "--int8: dense layers in 8-bit integers"
    } else if a.embed {
        "--embed"
    } else {
        "no shipped .f16.npy embeddings beside the pairs file"
    };
    let bar = crate::progress(2 * pairs.len() as u64, "embedding", a.json);
    let embed = |texts: Vec<&str>| -> anyhow::Result<Vectors> {
        let mut data = Vec::with_capacity(texts.len() * dim);
        for chunk in texts.chunks(256) {
            for v in embedder.embed(chunk)? {
                data.extend_from_slice(&v);
            }
            bar.inc(chunk.len() as u64);
        }
        Ok(Vectors {
            dim,
            data,
            ids: None,
        })
    };
    let q = embed(pairs.iter().map(|p| p.query.as_str()).collect())?;
    let c = embed(pairs.iter().map(|p| p.code.as_str()).collect())?;
    bar.finish_and_clear();
    let source = format!("embedded here with {} ({why})", dir.path().display());
    Ok((q, c, source))
}

/// L2-normalises every row (cosine), refusing non-finite values and zero vectors.
fn normalize_all(v: &mut Vectors, what: &str) -> anyhow::Result<()> {
    let data = std::mem::take(&mut v.data);
    v.data = VectorBatch::new(data, v.dim, Metric::Cosine)
        .map_err(|e| anyhow::anyhow!("{what} vectors: {e}"))?
        .into_data();
    Ok(())
}

/// Rank of `own` when, as `bitseek search` does, only the best [`retrieval::FUSION_DEPTH`] rows of
/// each leg (the float32 row `semantic`, the BM25 row `lexical`, positive scores only) are fused.
/// Rows outside both lists follow in float32 order.
fn search_fusion_rank(
    semantic: &[f32],
    lexical: &[f32],
    own: usize,
    scratch: &mut Vec<f32>,
) -> usize {
    let depth = retrieval::FUSION_DEPTH;
    let sem = retrieval::top_candidates(semantic, depth, scratch);
    let mut lex = retrieval::top_candidates(lexical, depth, scratch);
    lex.retain(|&r| lexical[r as usize] > 0.0);
    let fused = retrieval::fuse_ranked(&[&sem, &lex]);
    if let Some(p) = fused.iter().position(|&(r, _)| r as usize == own) {
        return p + 1;
    }
    let s = semantic[own];
    let ahead = fused
        .iter()
        .filter(|&&(r, _)| semantic[r as usize] >= s)
        .count();
    fused.len() + retrieval::rank_of(semantic, own) - ahead
}
