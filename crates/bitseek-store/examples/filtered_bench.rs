//! Filtered search through a collection whose segment carries an IVF or a graph (`--index`),
//! against the same rows in a flat collection (a flat scan over the allowed rows), at 1%, 10% and 50% selectivity: recall@k
//! against the exact float answer over the allowed rows, and queries per second (one query per
//! call; run with `RAYON_NUM_THREADS=1` for one thread). The two collections are timed in
//! alternating rounds; medians are printed, with every round in `--json`.
//!
//! ```text
//! cargo run --release -p bitseek-store --example filtered_bench -- \
//!     --base CODE.npy [--base MORE.npy] --queries QUERIES.npy [--max-queries 300] [--rounds 5] \
//!     [--index ivf|graph] [--degree D] [--effort E] [--oversample X] [-k 10] [--json OUT.json]
//! ```

use bitseek_index::input::read_vectors;
use bitseek_store::{
    CollectionConfig, Db, DbOptions, Durability, Filter, IndexKind, Keep, LiveCollection, Metric,
    Point, SearchRequest, SegmentIndex,
};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    base: Vec<PathBuf>,
    queries: PathBuf,
    max_queries: usize,
    rounds: usize,
    effort: Option<usize>,
    json: Option<PathBuf>,
    k: usize,
    oversample: Option<f32>,
    index: IndexKind,
    degree: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        base: Vec::new(),
        queries: PathBuf::new(),
        max_queries: 300,
        rounds: 5,
        effort: None,
        json: None,
        k: 10,
        oversample: None,
        index: IndexKind::Ivf,
        degree: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.base.push(val().into()),
            "--queries" => a.queries = val().into(),
            "--max-queries" => a.max_queries = val().parse().expect("--max-queries N"),
            "--rounds" => a.rounds = val().parse().expect("--rounds N"),
            "--effort" => a.effort = Some(val().parse().expect("--effort N")),
            "--json" => a.json = Some(val().into()),
            "-k" => a.k = val().parse().expect("-k N"),
            "--oversample" => a.oversample = Some(val().parse().expect("--oversample X")),
            "--index" => a.index = serde_json::from_value(json!(val())).expect("--index ivf|graph"),
            "--degree" => a.degree = Some(val().parse().expect("--degree D")),
            other => panic!("unknown argument {other}; see the example's docs"),
        }
    }
    assert!(
        !a.base.is_empty() && !a.queries.as_os_str().is_empty(),
        "give --base and --queries"
    );
    a
}

fn normalized(x: &[f32]) -> Vec<f32> {
    let n = x
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    x.iter().map(|v| v / n).collect()
}

fn collection(
    db: &Db,
    name: &str,
    dim: usize,
    kind: IndexKind,
    degree: Option<usize>,
) -> std::sync::Arc<LiveCollection> {
    db.create(
        name,
        CollectionConfig {
            dim,
            metric: Metric::Cosine,
            quantizer: "rabitq".into(),
            keep: Keep::F32,
            durability: Durability::Grouped { window_ms: 5 },
            index: SegmentIndex {
                kind,
                min_rows: 1000,
                degree,
            },
        },
    )
    .expect("create")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let mut dim = 0;
    let mut base: Vec<f32> = Vec::new();
    for p in &a.base {
        let v = read_vectors(p).expect("base vectors");
        dim = v.dim;
        base.extend(v.data);
    }
    let rows = base.len() / dim;
    let q = read_vectors(&a.queries).expect("queries");
    let nq = (q.data.len() / q.dim).min(a.max_queries);
    let queries: Vec<Vec<f32>> = q.data.chunks_exact(dim).take(nq).map(normalized).collect();
    let base_n: Vec<f32> = base.chunks_exact(dim).flat_map(normalized).collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(
        dir.path(),
        DbOptions {
            flush_rows: usize::MAX / 2,
            ..DbOptions::default()
        },
    )
    .expect("db");
    let flat = collection(&db, "flat", dim, IndexKind::Flat, None);
    let name = a.index.name();
    let ivf = collection(&db, name, dim, a.index, a.degree);
    for c in [&flat, &ivf] {
        for (start, chunk) in base.chunks(5000 * dim).enumerate() {
            let points = chunk
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, v)| {
                    let id = (start * 5000 + i) as u64;
                    Point {
                        id,
                        vector: v.to_vec(),
                        payload: json!({"bucket": id % 100}),
                    }
                })
                .collect();
            c.upsert(points).expect("upsert");
        }
        let t = Instant::now();
        c.checkpoint().expect("checkpoint");
        eprintln!(
            "{}: flushed {rows} rows in {:.1} s",
            c.name(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    if let Some(e) = ivf.wait_for_builds() {
        panic!("the {name} build failed: {e}");
    }
    eprintln!(
        "{name}: index built in the background in {:.1} s ({:?})",
        t.elapsed().as_secs_f64(),
        ivf.info().segment_indexes
    );

    let mut out = Vec::new();
    for (label, buckets) in [("1%", 1u64), ("10%", 10), ("50%", 50)] {
        let filter: Filter = serde_json::from_value(
            json!({"field": "bucket", "in": (0..buckets).collect::<Vec<_>>()}),
        )
        .expect("filter");
        let allowed: Vec<usize> = (0..rows).filter(|r| (*r as u64 % 100) < buckets).collect();
        // Exact answer over the allowed rows.
        let truth: Vec<Vec<u64>> = queries
            .iter()
            .map(|qv| {
                let mut s: Vec<(f32, u64)> = allowed
                    .iter()
                    .map(|&r| {
                        let x = &base_n[r * dim..(r + 1) * dim];
                        (x.iter().zip(qv).map(|(a, b)| a * b).sum(), r as u64)
                    })
                    .collect();
                s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                s.iter().take(a.k).map(|x| x.1).collect()
            })
            .collect();
        let req = SearchRequest {
            k: a.k,
            filter: Some(filter),
            effort: a.effort,
            oversample: a.oversample,
        };
        let recall = |c: &LiveCollection| {
            let mut found = 0;
            for (qv, t) in queries.iter().zip(&truth) {
                let hits = c.search(qv, &req).expect("search");
                found += hits.iter().filter(|h| t.contains(&h.id)).count();
            }
            found as f64 / (queries.len() * a.k) as f64
        };
        let qps = |c: &LiveCollection| {
            let t = Instant::now();
            for qv in &queries {
                std::hint::black_box(c.search(qv, &req).expect("search"));
            }
            queries.len() as f64 / t.elapsed().as_secs_f64()
        };
        let (rf, ri) = (recall(&flat), recall(&ivf));
        let (mut qf, mut qi) = (Vec::new(), Vec::new());
        for _ in 0..a.rounds {
            qf.push(qps(&flat));
            qi.push(qps(&ivf));
        }
        let (mf, mi) = (median(qf.clone()), median(qi.clone()));
        println!(
            "selectivity {label:>3}: flat scan of allowed rows recall@{k} {rf:.4} {mf:.0} q/s | {name} segment recall@{k} {ri:.4} {mi:.0} q/s | {name}/flat QPS ×{:.2}",
            mi / mf,
            k = a.k
        );
        out.push(json!({
            "selectivity": label, "allowed_rows": allowed.len(),
            "flat": {"recall": rf, "qps_median": mf, "qps_rounds": qf},
            name: {"recall": ri, "qps_median": mi, "qps_rounds": qi},
            "qps_ratio": mi / mf,
        }));
    }
    if let Some(p) = a.json {
        let doc = json!({"rows": rows, "dim": dim, "queries": nq, "k": a.k, "index": name,
            "degree": a.degree, "effort": a.effort,
            "oversample": a.oversample, "results": out});
        std::fs::write(&p, serde_json::to_vec_pretty(&doc).expect("json")).expect("write json");
    }
}
