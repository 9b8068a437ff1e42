//! Times the store's write and search paths on random vectors: acknowledged upserts per second
//! (fsync per write, grouped commit with concurrent writers, large batches), flush and compaction,
//! and single-query search latency with and without a filter.
//!
//! `cargo run --release -p bitseek-store --example store_bench -- [ROWS] [DIM]` (defaults 100000
//! and 384). Latencies are medians over repeated runs; the data directory is a temporary one (on
//! the disk that holds $TMPDIR, which decides fsync cost).

use bitseek_store::{
    CollectionConfig, Db, DbOptions, Durability, Filter, Keep, Metric, Point, SearchRequest,
};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::Instant;

fn vectors(rng: &mut rand::rngs::StdRng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn config(dim: usize, durability: Durability) -> CollectionConfig {
    CollectionConfig {
        dim,
        metric: Metric::Cosine,
        quantizer: "rabitq".into(),
        keep: Keep::F32,
        durability,
        index: Default::default(),
    }
}

fn point(id: u64, v: Vec<f32>) -> Point {
    let lang = ["rust", "go", "python"][(id % 3) as usize];
    Point {
        id,
        vector: v,
        payload: json!({ "lang": lang }),
    }
}

/// Upserts of `batch` points by `threads` writers for about `secs`; returns points/s and writes/s.
fn write_rate(
    db: &Db,
    name: &str,
    dim: usize,
    durability: Durability,
    threads: usize,
    batch: usize,
    secs: f64,
) -> (f64, f64) {
    let c = db.create(name, config(dim, durability)).unwrap();
    let start = Instant::now();
    let counts: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let c = c.clone();
                s.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                    let mut writes = 0;
                    while start.elapsed().as_secs_f64() < secs {
                        let points = vectors(&mut rng, batch, dim)
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| point((t * 1_000_000 + writes * batch + i) as u64, v))
                            .collect();
                        c.upsert(points).unwrap();
                        writes += 1;
                    }
                    writes
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let writes: usize = counts.iter().sum();
    ((writes * batch) as f64 / elapsed, writes as f64 / elapsed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dim: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(384);
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        tmp.path(),
        DbOptions {
            flush_rows: 20_000,
            ..DbOptions::default()
        },
    )
    .unwrap();
    println!(
        "store_bench: {rows} rows of dimension {dim}, data in {}",
        tmp.path().display()
    );

    for (name, durability, threads, batch) in [
        ("fsync, 1 writer, 1 point", Durability::Fsync, 1, 1),
        ("fsync, 8 writers, 1 point", Durability::Fsync, 8, 1),
        (
            "grouped 2 ms, 8 writers, 1 point",
            Durability::Grouped { window_ms: 2 },
            8,
            1,
        ),
        ("fsync, 1 writer, 1000 points", Durability::Fsync, 1, 1000),
    ] {
        let coll = format!("w{}", name.len() + threads * 7 + batch);
        let (pps, wps) = write_rate(&db, &coll, dim, durability, threads, batch, 2.0);
        println!("upsert {name:>34}: {pps:>9.0} points/s, {wps:>7.0} acknowledged writes/s");
        db.drop_collection(&coll).unwrap();
    }

    let c = db.create("bench", config(dim, Durability::Fsync)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let t = Instant::now();
    let mut flushes = Vec::new();
    for start in (0..rows).step_by(5_000) {
        let n = 5_000.min(rows - start);
        let points = vectors(&mut rng, n, dim)
            .into_iter()
            .enumerate()
            .map(|(i, v)| point((start + i) as u64, v))
            .collect();
        let before = c.info().segments;
        let t0 = Instant::now();
        c.upsert(points).unwrap();
        if c.info().segments != before {
            flushes.push(t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "loaded {rows} points in {:.1} s in batches of 5000 ({} flushes of 20,000 rows, median {:.2} s each, the write that triggers one waits for it)",
        t.elapsed().as_secs_f64(),
        flushes.len(),
        if flushes.is_empty() { 0.0 } else { median(flushes) }
    );
    let dels: Vec<u64> = (0..rows as u64).step_by(10).collect();
    c.delete(&dels).unwrap();

    let queries = vectors(&mut rng, 50, dim);
    let filter: Filter = serde_json::from_value(json!({"field": "lang", "eq": "go"})).unwrap();
    let time_search = |label: &str, filter: Option<Filter>| {
        let req = SearchRequest {
            k: 10,
            oversample: None,
            filter,
            effort: None,
        };
        let mut times = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let hits = c.search(q, &req).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(hits.len(), 10);
        }
        let info = c.info();
        println!(
            "search k=10 {label:>28}: median {:.2} ms ({} segments, {} points, {} log records)",
            median(times),
            info.segments,
            info.points,
            info.wal_records
        );
    };
    time_search("no filter", None);
    time_search("filter lang = go (1/3)", Some(filter.clone()));
    let t = Instant::now();
    let report = c.compact().unwrap();
    println!(
        "compact: {:.1} s, {} segments -> {}, {} rows -> {}, {:.0} MB -> {:.0} MB",
        t.elapsed().as_secs_f64(),
        report.segments_before,
        report.segments_after,
        report.rows_before,
        report.rows_after,
        report.bytes_before as f64 / 1e6,
        report.bytes_after as f64 / 1e6
    );
    time_search("no filter, compacted", None);
    time_search("filter, compacted", Some(filter.clone()));
    // 15,000 points in the memtable (below the flush threshold), searched exactly.
    let points: Vec<Point> = vectors(&mut rng, 15_000, dim)
        .into_iter()
        .enumerate()
        .map(|(i, v)| point((rows + i) as u64, v))
        .collect();
    for batch in points.chunks(5_000) {
        c.upsert(batch.to_vec()).unwrap();
    }
    time_search("+15,000 in the memtable", None);
    time_search("filter, +15,000 in memtable", Some(filter));
}
