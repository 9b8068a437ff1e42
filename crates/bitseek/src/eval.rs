//! `bitseek eval`: recall@k against exact float search, raw and rescored.

use bitseek_index::eval::{exact_ids, recall};
use bitseek_index::SearchParams;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    s: crate::Searched,
    /// Oversampling factors to evaluate with rescoring (comma-separated).
    #[arg(long, default_value = "1,2,4,8,16")]
    oversample: crate::List,
    /// The original vectors, for indexes that keep no f32 copy.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Evaluate only the first N queries.
    #[arg(long, value_parser = crate::positive)]
    max_queries: Option<usize>,
    /// Symmetric (code vs code) queries instead of 4-bit asymmetric.
    #[arg(long)]
    symmetric: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let index = crate::open_index(&a.s.index)?;
    let dim = index.meta().dim;
    let mut queries = crate::read_queries(&a.s.queries, &index)?;
    if let Some(n) = a.max_queries {
        queries.data.truncate(n.min(queries.rows()) * dim);
    }
    let prepared = index.prepare_queries(&queries.data, dim)?;
    let base = match &a.vectors {
        Some(p) => Some(bitseek_index::input::read_vectors(p)?),
        None => None,
    };
    let oversample = a.oversample.0;
    let bar = crate::progress(oversample.len() as u64 + 2, "evaluating", a.json);
    let truth = exact_ids(&index, base.as_ref(), &prepared, a.s.k)?;
    bar.inc(1);
    let mode = crate::query_mode(a.symmetric, &index.meta().quantizer)?;
    let raw_params = SearchParams {
        k: a.s.k,
        oversample: 1,
        rescore: false,
        mode,
        query_bits: a.s.query_bits,
    };
    let effort = a.s.effort();
    let raw = recall(
        &index.search_batch_effort(&prepared, dim, &raw_params, effort, None)?,
        &truth,
    );
    bar.inc(1);
    // Cost next to accuracy (BiBench, PokeBNN): one query's scan on one thread, and its
    // operand-width-weighted arithmetic.
    let cost = bitseek_index::tune::report(&index, &prepared, &truth, &raw_params, f64::NAN)?;
    let mut results = Vec::new();
    for &o in &oversample {
        let params = SearchParams {
            k: a.s.k,
            oversample: o,
            rescore: true,
            mode,
            query_bits: a.s.query_bits,
        };
        let rescored = recall(
            &index.search_batch_effort(&prepared, dim, &params, effort, None)?,
            &truth,
        );
        results.push(serde_json::json!({
            "oversample": o,
            "recall_raw": raw,
            "recall_rescored": if index.meta().keep == bitseek_index::Keep::None { None } else { Some(rescored) },
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let m = index.meta();
    let report = serde_json::json!({
        "index": a.s.index,
        "quantizer": m.quantizer.to_string(),
        "keep": m.keep,
        "metric": m.metric,
        "mode": mode,
        "effort": effort.or(index.default_effort()),
        "k": a.s.k,
        "queries": truth.len(),
        "rows": m.rows,
        "bytes_per_vector": index.code_bytes_per_vector(),
        "recall_raw": raw,
        "scan_ms_per_query": cost.scan_ms_per_query,
        "ace_per_query": cost.ace_per_query,
        "results": results,
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "{}: {} ({} code bytes/vector), {} queries, recall@{} raw {:.4}",
            a.s.index.display(),
            m.quantizer,
            index.code_bytes_per_vector(),
            truth.len(),
            a.s.k,
            raw
        );
        for r in &results {
            if let Some(v) = r["recall_rescored"].as_f64() {
                println!(
                    "  oversample {:>3}: rescored recall@{} {:.4}",
                    r["oversample"], a.s.k, v
                );
            }
        }
    }
    Ok(())
}
