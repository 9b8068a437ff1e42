//! Format search (FLIQS, methods.md §10, done exhaustively since the formats are few) and cost
//! reports (BiBench's accuracy-and-efficiency tracks, PokeBNN's arithmetic computation effort).
//!
//! [`report`] measures one index on one set of queries: bytes per vector, raw and rescored
//! recall@k, the scan time of one query on one thread and its arithmetic computation effort.
//! [`tune`] builds every format that fits a byte budget on a calibration split, reports each and
//! picks the one with the best raw recall (fewer bytes break ties); `--quantizer auto:BYTES` builds
//! with that winner and records the table in the index.

use crate::eval::{exact_ids, recall};
use crate::index::{BuildOptions, Index, IndexError, Keep, Metric, SearchParams};
use crate::input::Vectors;
use bitseek_codes::quantizer::{Fp8Format, QuantizerKind};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One format's accuracy and cost on one set of queries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormatReport {
    /// The format, as `--quantizer` names it.
    pub quantizer: String,
    /// Bytes per vector of the code and its factors.
    pub bytes_per_vector: usize,
    /// Recall@k of the codes alone.
    pub recall_raw: f64,
    /// Recall@k after rescoring `2k` candidates from the `f32` copy.
    pub recall_x2: f64,
    /// Recall@k after rescoring `4k` candidates from the `f32` copy.
    pub recall_x4: f64,
    /// Seconds to fit and encode (on the calibration split, for [`tune`]).
    pub build_seconds: f64,
    /// Median milliseconds of one query's scan over the codes, one thread, no rescoring.
    pub scan_ms_per_query: f64,
    /// Arithmetic computation effort of one query's scan: rows × operand-width-weighted
    /// multiply-accumulates per row (PokeBNN's ACE).
    pub ace_per_query: u64,
    /// Whether no other format has at most these bytes and a higher raw recall (or equal recall
    /// in fewer bytes).
    #[serde(default)]
    pub pareto: bool,
}

/// The outcome of a format search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The budget, in bytes per vector.
    pub budget: usize,
    /// Recall@k measured.
    pub k: usize,
    /// Calibration queries and the rows they searched.
    pub queries: usize,
    /// Rows the calibration queries searched.
    pub rows: usize,
    /// Every format that fits, best raw recall first.
    pub formats: Vec<FormatReport>,
    /// The format with the best raw recall (fewer bytes break ties).
    pub winner: String,
}

/// Queries [`tune`] holds out of the vectors when none are given.
pub const TUNE_QUERIES: usize = 300;

/// Rows [`tune`] searches at most (a sample keeps the search quick on large inputs).
pub const TUNE_ROWS: usize = 30_000;

/// Every fitted format, smallest first (learned codes need an encoder and are left out).
pub fn formats(budget: usize) -> Vec<QuantizerKind> {
    let mut all = vec![
        QuantizerKind::Sign,
        QuantizerKind::Rabitq,
        QuantizerKind::Ternary,
    ];
    all.extend((2..=8).map(|bits| QuantizerKind::Residual { bits }));
    all.extend([
        QuantizerKind::Int4,
        QuantizerKind::Fp8 {
            format: Fp8Format::E4m3,
        },
        QuantizerKind::Fp8 {
            format: Fp8Format::E5m2,
        },
        QuantizerKind::Int8,
        QuantizerKind::Alloc {
            bytes: budget as u32,
        },
    ]);
    all
}

/// Measures `index` on prepared `queries` against exact top-`search.k` `truth`, searching with
/// `search`'s query mode and bits (its oversampling and rescoring are set here).
pub fn report(
    index: &Index,
    queries: &[f32],
    truth: &[Vec<u64>],
    search: &SearchParams,
    build_seconds: f64,
) -> Result<FormatReport, IndexError> {
    let dim = index.meta().dim;
    let params = |oversample, rescore| SearchParams {
        oversample,
        rescore,
        ..*search
    };
    let raw = recall(&index.search_batch(queries, dim, &params(1, false))?, truth);
    let rescored = |o| -> Result<f64, IndexError> {
        Ok(if index.meta().keep == Keep::None {
            raw
        } else {
            recall(&index.search_batch(queries, dim, &params(o, true))?, truth)
        })
    };
    let (x2, x4) = (rescored(2)?, rescored(4)?);
    // One scan per query on one thread: the latency a single query sees, the codes' own cost.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| IndexError::BadParam(format!("cannot start a thread pool: {e}")))?;
    let timed = queries.chunks_exact(dim).take(50);
    let mut times = Vec::new();
    for q in timed {
        let t = Instant::now();
        one.install(|| index.search_batch(q, dim, &params(1, false)))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let ace = index
        .quantizer()
        .ace_per_row(search.mode, search.query_bits)
        .saturating_mul(index.meta().rows as u64);
    Ok(FormatReport {
        quantizer: index.meta().quantizer.to_string(),
        bytes_per_vector: index.code_bytes_per_vector(),
        recall_raw: raw,
        recall_x2: x2,
        recall_x4: x4,
        build_seconds,
        scan_ms_per_query: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        ace_per_query: ace,
        pareto: false,
    })
}

/// What [`tune`] searches over and how it measures.
#[derive(Clone, Copy, Debug)]
pub struct TuneOptions<'a> {
    /// Bytes per vector the codes and their factors may take.
    pub budget: usize,
    /// The metric the index will serve.
    pub metric: Metric,
    /// Seed of the calibration split and of the formats' fits.
    pub seed: u64,
    /// Hits per query whose recall is measured.
    pub k: usize,
    /// Queries that `alloc` allocates its widths for (`--calib`), instead of rows held out of
    /// the vectors it is fitted on.
    pub calib: Option<&'a Vectors>,
    /// A trained encoder (`--encoder`): its learned codes join the search when they fit the
    /// budget (cosine only, as learned codes rank by cosine).
    pub encoder: Option<&'a Path>,
}

/// Builds every format of at most `opts.budget` bytes per vector on a calibration split of
/// `vectors` (`queries` searching them, or [`TUNE_QUERIES`] rows held out of `vectors`), reports
/// each and picks the winner.
pub fn tune(
    vectors: &Vectors,
    queries: Option<&Vectors>,
    source: &Path,
    opts: &TuneOptions<'_>,
) -> Result<Tuning, IndexError> {
    let TuneOptions {
        budget,
        metric,
        seed,
        k,
        ..
    } = *opts;
    let dim = vectors.dim;
    let learned = match opts.encoder {
        Some(path) => {
            if metric != Metric::Cosine {
                return Err(IndexError::BadParam(format!(
                    "learned codes rank by cosine, but --metric is {metric}; tune with --metric cosine or without --encoder"
                )));
            }
            let (encoder, _) = crate::encoder::load_encoder_for(path, dim)?;
            Some((path, encoder))
        }
        None => None,
    };
    let smallest = formats(budget)
        .iter()
        .filter_map(|f| f.bytes_per_vector(dim).map(|b| (b, *f)))
        .filter(|(_, f)| !matches!(f, QuantizerKind::Alloc { .. }))
        .min_by_key(|(b, _)| *b);
    let fits: Vec<QuantizerKind> = formats(budget)
        .into_iter()
        .filter(|f| f.bytes_per_vector(dim).is_some_and(|b| b <= budget))
        .filter(|f| bitseek_codes::quantizer::Quantizer::check_fit(*f, dim, vectors.rows()).is_ok())
        .collect();
    let learned_bytes = learned.as_ref().map(|(_, e)| {
        bitseek_codes::quantizer::Quantizer::Learned(Box::new(e.clone()))
            .encode(&vectors.data[..dim])
            .bytes_per_vector()
    });
    let learned = learned.filter(|_| learned_bytes.is_some_and(|b| b <= budget));
    if fits.is_empty() && learned.is_none() {
        let (b, f) = smallest.unwrap_or((0, QuantizerKind::Sign));
        return Err(IndexError::BadParam(format!(
            "no format fits in {budget} bytes per vector: the smallest at dimension {dim} is {f} at {b} bytes; raise --budget"
        )));
    }
    let (base, held) = split(vectors, queries, seed);
    let held_out;
    let queries = match queries {
        Some(q) => q,
        None => {
            held_out = held;
            &held_out
        }
    };
    let probe = Index::build(
        base.clone(),
        source,
        &BuildOptions {
            quantizer: QuantizerKind::Sign,
            metric,
            keep: Keep::F32,
            seed,
            ..Default::default()
        },
        &|_| {},
    )?;
    let prepared = probe.prepare_queries(&queries.data, dim)?;
    let truth = exact_ids(&probe, None, &prepared, k)?;
    drop(probe);
    let mut formats = Vec::new();
    for kind in fits {
        let t = Instant::now();
        let build = BuildOptions {
            quantizer: kind,
            metric,
            keep: Keep::F32,
            seed,
            ..Default::default()
        };
        let choice = crate::index::QuantizerChoice::Kind(kind);
        let calib = opts
            .calib
            .filter(|_| matches!(kind, QuantizerKind::Alloc { .. }));
        let index =
            Index::build_calibrated(base.clone(), source, &build, &choice, None, calib, &|_| {})?;
        let built = t.elapsed().as_secs_f64();
        let search = SearchParams {
            k,
            ..Default::default()
        };
        formats.push(report(&index, &prepared, &truth, &search, built)?);
    }
    if let Some((path, encoder)) = learned {
        let t = Instant::now();
        let build = BuildOptions {
            metric,
            keep: Keep::F32,
            seed,
            ..Default::default()
        };
        let index = Index::build_learned(base.clone(), path, &build, encoder, &|_| {})?;
        let built = t.elapsed().as_secs_f64();
        let search = SearchParams {
            k,
            ..Default::default()
        };
        formats.push(report(&index, &prepared, &truth, &search, built)?);
    }
    formats.sort_by(|a, b| {
        b.recall_raw
            .total_cmp(&a.recall_raw)
            .then(a.bytes_per_vector.cmp(&b.bytes_per_vector))
    });
    for i in 0..formats.len() {
        let (bi, ri) = (formats[i].bytes_per_vector, formats[i].recall_raw);
        formats[i].pareto = !formats.iter().enumerate().any(|(j, o)| {
            j != i
                && o.bytes_per_vector <= bi
                && o.recall_raw >= ri
                && (o.bytes_per_vector < bi || o.recall_raw > ri)
        });
    }
    Ok(Tuning {
        budget,
        k,
        queries: truth.len(),
        rows: base.rows(),
        winner: formats[0].quantizer.clone(),
        formats,
    })
}

/// The rows the calibration searches (at most [`TUNE_ROWS`]) and, without given queries,
/// [`TUNE_QUERIES`] rows held out of the rest, both picked by `seed`.
fn split(vectors: &Vectors, queries: Option<&Vectors>, seed: u64) -> (Vectors, Vectors) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let n = vectors.rows();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let nq = if queries.is_some() {
        0
    } else {
        TUNE_QUERIES.min(n / 5)
    };
    let nb = TUNE_ROWS.min(n - nq);
    let take = |rows: &[usize], ids: bool| Vectors {
        dim: vectors.dim,
        data: rows
            .iter()
            .flat_map(|&r| vectors.row(r).iter().copied())
            .collect(),
        ids: ids.then(|| {
            let all = vectors.ids_or_rows();
            rows.iter().map(|&r| all[r]).collect()
        }),
    };
    (take(&order[nq..nq + nb], true), take(&order[..nq], false))
}
