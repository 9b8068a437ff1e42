//! `bitseek bench`: queries per second over codes next to exact float search, in one process.
//!
//! Also measures the single-core memory read bandwidth in the same run, so a single-query scan can
//! be put against its floor: the bytes a scan must read divided by what one core can read per
//! second. All figures are medians over `--repeat` runs.

use bitseek_codes::quantizer::QueryMode;
use bitseek_index::{exact, Metric, SearchParams};
use serde_json::json;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    s: crate::Searched,
    /// Queries per batch in batch mode.
    #[arg(long, default_value_t = 64, value_parser = crate::positive)]
    batch: usize,
    /// Thread counts to measure (comma-separated); default 1 and all cores.
    #[arg(long)]
    threads: Option<crate::List>,
    /// Runs per measurement; medians are reported.
    #[arg(long, default_value_t = 5, value_parser = crate::positive)]
    repeat: usize,
    /// Queries used in batch mode.
    #[arg(long, default_value_t = 1024, value_parser = crate::positive)]
    max_queries: usize,
    /// Queries used in single-query mode (one scan each).
    #[arg(long, default_value_t = 100, value_parser = crate::positive)]
    single_queries: usize,
    /// The original vectors for the float baseline, when the index keeps no f32 copy.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Skip the float baseline.
    #[arg(long)]
    no_float: bool,
    /// Candidates per hit rescored from the kept copy in the `--effort` curve.
    #[arg(long, default_value_t = 4, value_parser = crate::positive)]
    oversample: usize,
    /// Symmetric (code vs code, SDC) queries instead of asymmetric, as `query --symmetric`:
    /// rabitq, residualB, ternary and learned codes have both modes.
    #[arg(long)]
    symmetric: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The speed/recall curve of `--effort`: for each effort, rescored recall@k against exact float
/// search over all the queries, and the median queries per second on the first thread count, of
/// one query per call (`qps`) and of all the queries in one call (`qps_batch`).
fn curve(
    a: &Args,
    index: &bitseek_index::Index,
    queries: &[f32],
    base: Option<&bitseek_index::input::Vectors>,
    threads: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let Some(efforts) = &a.s.effort else {
        return Ok(Vec::new());
    };
    let dim = index.meta().dim;
    let truth = bitseek_index::eval::exact_ids(index, base, queries, a.s.k)?;
    let params = SearchParams {
        k: a.s.k,
        oversample: a.oversample,
        rescore: true,
        mode: crate::query_mode(a.symmetric, &index.meta().quantizer)?,
        query_bits: a.s.query_bits,
    };
    let mut out = Vec::new();
    for &e in &efforts.0 {
        let hits = index.search_batch_effort(queries, dim, &params, Some(e), None)?;
        let recall = bitseek_index::eval::recall(&hits, &truth);
        let per_query = crate::with_threads(threads, || {
            time(a.repeat, || {
                for q in queries.chunks_exact(dim) {
                    black_box(index.search_batch_effort(q, dim, &params, Some(e), None)?);
                }
                Ok(())
            })
        })?? / (queries.len() / dim) as f64;
        // All the queries in one call, as the peers' benchmarks call their indexes: the per-call
        // costs (thread-pool hand-off, query preparation, one rotation per query instead of one
        // matrix product for all) are paid once.
        let nq = (queries.len() / dim) as f64;
        let (batched, batched_cpu) = crate::with_threads(threads, || {
            time_cpu(a.repeat, || {
                black_box(index.search_batch_effort(queries, dim, &params, Some(e), None)?);
                Ok(())
            })
        })??;
        out.push(json!({
            "effort": e,
            "recall": recall,
            "qps": 1.0 / per_query,
            "qps_batch": nq / batched,
            "qps_batch_cpu": nq / batched_cpu,
        }));
    }
    Ok(out)
}

/// Single-core read bandwidth in bytes/s: the median of several passes summing a 512 MiB buffer
/// (far larger than any cache) with eight independent accumulators.
fn read_bandwidth(repeat: usize) -> f64 {
    let words = 64 << 20; // 512 MiB of u64
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut times = Vec::new();
    for _ in 0..repeat.max(3) {
        let t = Instant::now();
        let mut acc = [0u64; 8];
        for c in buf.chunks_exact(8) {
            for i in 0..8 {
                acc[i] = acc[i].wrapping_add(c[i]);
            }
        }
        black_box(acc);
        times.push(t.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / crate::median(times)
}

/// CPU seconds this process has used (all its threads).
fn process_cpu_seconds() -> f64 {
    cpu_time::ProcessTime::now().as_duration().as_secs_f64()
}

/// Median wall seconds and median process CPU seconds of `repeat` runs of `f`. On a shared
/// machine the CPU time leaves out the time other processes held the core, so A/B ratios are
/// steadier (cache contention still counts).
fn time_cpu(
    repeat: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    f()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..repeat.max(1) {
        let (t, c) = (Instant::now(), process_cpu_seconds());
        f()?;
        cpu.push(process_cpu_seconds() - c);
        wall.push(t.elapsed().as_secs_f64());
    }
    Ok((crate::median(wall), crate::median(cpu)))
}

/// Median seconds of `repeat` runs of `f`.
fn time(repeat: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?; // warm-up: page in the mapping, fill caches and the thread pool
    let mut times = Vec::new();
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(crate::median(times))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let index = crate::open_index(&a.s.index)?;
    let m = index.meta().clone();
    let dim = m.dim;
    let query_mode = crate::query_mode(a.symmetric, &m.quantizer)?;
    let queries = crate::read_queries(&a.s.queries, &index)?;
    let all = index.prepare_queries(&queries.data, dim)?;
    let nq = (all.len() / dim).min(a.max_queries);
    let batch_q = &all[..nq * dim];
    let single_n = nq.min(a.single_queries).max(1);
    let threads = match &a.threads {
        Some(list) => list.0.clone(),
        None => {
            let n = rayon::current_num_threads();
            if n > 1 {
                vec![1, n]
            } else {
                vec![1]
            }
        }
    };
    let base = match (&a.vectors, index.kept_f32(), a.no_float) {
        (_, _, true) => None,
        (_, Some(kept), _) => Some((kept.to_vec(), index.norm2().to_vec())),
        (Some(p), None, _) => {
            let v = bitseek_index::input::read_vectors(p)?;
            let mut d = v.data;
            if m.metric == Metric::Cosine {
                d.chunks_exact_mut(dim)
                    .for_each(bitseek_index::vector::normalize);
            }
            let n2 = d
                .chunks_exact(dim)
                .map(|x| bitseek_index::vector::dot(x, x))
                .collect();
            Some((d, n2))
        }
        (None, None, false) => None,
    };
    let curve_base = match &a.vectors {
        Some(p) if index.kept_f32().is_none() => Some(bitseek_index::input::read_vectors(p)?),
        _ => None,
    };
    let curve = curve(&a, &index, batch_q, curve_base.as_ref(), threads[0])?;
    let bandwidth = read_bandwidth(a.repeat);
    let scan_bytes = index.scan_bytes() as f64;
    let floor = scan_bytes / bandwidth;
    let params = SearchParams {
        k: a.s.k,
        oversample: 1,
        rescore: false,
        mode: query_mode,
        query_bits: a.s.query_bits,
    };
    // Raw recall@k of the timed search (codes alone, the batch-mode queries) against exact float
    // search, when the float vectors are at hand.
    let recall_raw = if index.kept_f32().is_some() || curve_base.is_some() {
        let truth = bitseek_index::eval::exact_ids(&index, curve_base.as_ref(), batch_q, a.s.k)?;
        let hits = index.search_batch(batch_q, dim, &params)?;
        Some(bitseek_index::eval::recall(&hits, &truth))
    } else {
        None
    };
    let bar = crate::progress((threads.len() * 2) as u64, "benchmark", a.json);
    let mut runs = Vec::new();
    let mut floats = Vec::new();
    for &t in &threads {
        let single = crate::with_threads(t, || {
            time(a.repeat, || {
                for q in all[..single_n * dim].chunks_exact(dim) {
                    black_box(index.search_batch(q, dim, &params)?);
                }
                Ok(())
            })
        })?? / single_n as f64;
        let batched = crate::with_threads(t, || {
            time(a.repeat, || {
                for b in batch_q.chunks(a.batch * dim) {
                    black_box(index.search_batch(b, dim, &params)?);
                }
                Ok(())
            })
        })?? / nq as f64;
        for (mode, batch, per_query) in [("single", 1, single), ("batch", a.batch, batched)] {
            runs.push(json!({
                "mode": mode,
                "batch": batch,
                "threads": t,
                "qps_median": 1.0 / per_query,
                "ms_per_query_median": per_query * 1e3,
                "bytes_per_second": scan_bytes / per_query,
                "floor_ratio": per_query / floor,
            }));
        }
        bar.inc(1);
        if let Some((data, norm2)) = &base {
            let l2 = (m.metric == Metric::L2).then_some(&norm2[..]);
            let single = crate::with_threads(t, || {
                time(a.repeat, || {
                    for q in all[..single_n * dim].chunks_exact(dim) {
                        black_box(exact::search(data, dim, l2, q, a.s.k));
                    }
                    Ok(())
                })
            })?? / single_n as f64;
            let batched = crate::with_threads(t, || {
                time(a.repeat, || {
                    for b in batch_q.chunks(a.batch * dim) {
                        black_box(exact::search(data, dim, l2, b, a.s.k));
                    }
                    Ok(())
                })
            })?? / nq as f64;
            for (mode, batch, per_query) in [("single", 1, single), ("batch", a.batch, batched)] {
                floats.push(json!({
                    "mode": mode,
                    "batch": batch,
                    "threads": t,
                    "qps_median": 1.0 / per_query,
                    "ms_per_query_median": per_query * 1e3,
                }));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = json!({
        "index": a.s.index,
        "quantizer": m.quantizer.to_string(),
        "rows": m.rows,
        "dim": dim,
        "k": a.s.k,
        "query_mode": if query_mode == QueryMode::Symmetric { "symmetric" } else { "asymmetric" },
        "recall_raw": recall_raw,
        "kernels": bitseek_codes::kernels::kernels().name,
        "code_bytes": scan_bytes,
        "bytes_per_vector": index.code_bytes_per_vector(),
        "read_bandwidth_gbs": bandwidth / 1e9,
        "floor_ms_per_query": floor * 1e3,
        "repeat": a.repeat,
        "queries_batch_mode": nq,
        "queries_single_mode": single_n,
        "runs": runs,
        "float": floats,
        "curve": curve,
    });
    if a.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{}: {} × {} {} codes ({} B/vector, {:.1} MB scanned per query), kernels {}",
        a.s.index.display(),
        m.rows,
        dim,
        m.quantizer,
        index.code_bytes_per_vector(),
        scan_bytes / 1e6,
        bitseek_codes::kernels::kernels().name
    );
    if let Some(r) = recall_raw {
        println!(
            "{} queries: raw recall@{} {r:.4} over the {nq} batch-mode queries",
            if query_mode == QueryMode::Symmetric {
                "symmetric"
            } else {
                "asymmetric"
            },
            a.s.k
        );
    }
    println!(
        "single-core read bandwidth {:.1} GB/s → floor {:.3} ms per single-query scan (medians of {} runs)",
        bandwidth / 1e9,
        floor * 1e3,
        a.repeat
    );
    println!(
        "{:<8} {:>6} {:>8} {:>12} {:>12} {:>12} {:>10}",
        "mode", "batch", "threads", "codes q/s", "float q/s", "speed-up", "vs floor"
    );
    for c in &curve {
        println!(
            "effort {:>5}: recall@{} {:.4} at {:.0} queries/s (1 query per call), {:.0} (all in one call), {} thread(s)",
            c["effort"],
            a.s.k,
            c["recall"].as_f64().unwrap_or(f64::NAN),
            c["qps"].as_f64().unwrap_or(f64::NAN),
            c["qps_batch"].as_f64().unwrap_or(f64::NAN),
            threads[0]
        );
    }
    for (i, r) in runs.iter().enumerate() {
        let fq = floats.get(i).and_then(|f| f["qps_median"].as_f64());
        let q = r["qps_median"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<8} {:>6} {:>8} {:>12.1} {:>12} {:>12} {:>9.2}×",
            r["mode"].as_str().unwrap_or(""),
            r["batch"].as_u64().unwrap_or(0),
            r["threads"].as_u64().unwrap_or(0),
            q,
            fq.map_or("-".into(), |f| format!("{f:.1}")),
            fq.map_or("-".into(), |f| format!("{:.1}×", q / f)),
            r["floor_ratio"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
