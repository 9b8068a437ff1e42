//! Latency of single-point upserts while memtables fill and flush: background flushes (a frozen
//! memtable written by the flusher thread while writes go on) against inline flushes (the write
//! that finds the memtable full writes the segment, holding the writer), alternating the two
//! in one run so the machine's load affects both alike.
//!
//! `cargo run --release -p bitseek-store --example flush_latency -- [ROWS] [DIM] [FLUSH_ROWS] [ROUNDS]`
//! (defaults 60000, 384, 20000, 3). Each round writes ROWS single points into a new collection
//! in each mode; the data lives in /dev/shm where there is one (fsync then costs nothing, so
//! what is measured is the flush's own work: encoding and writing the segment), else in $TMPDIR.
//! Prints each round's p50 and p99 write latency, the writes slower than 10 ms (inline: about
//! one per flush, the write that flushed) and the worst, and the medians over rounds.

use bitseek_store::{CollectionConfig, Db, DbOptions, Durability, Keep, Metric, Point};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Write latencies in milliseconds, sorted, of `rows` single-point upserts.
fn run(rows: usize, dim: usize, flush_rows: usize, background_flush: bool, seed: u64) -> Vec<f64> {
    let tmp = tempdir();
    let db = Db::open_with(
        tmp.path(),
        DbOptions {
            flush_rows,
            background_flush,
        },
    )
    .unwrap();
    let c = db
        .create(
            "c",
            CollectionConfig {
                dim,
                metric: Metric::Cosine,
                quantizer: "rabitq".into(),
                keep: Keep::F32,
                durability: Durability::Fsync,
                index: Default::default(),
            },
        )
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut ms = Vec::with_capacity(rows);
    for id in 0..rows as u64 {
        let vector: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let point = Point {
            id,
            vector,
            payload: json!({ "n": id }),
        };
        let t = Instant::now();
        c.upsert(vec![point]).unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    assert_eq!(c.wait_for_flushes(), None);
    assert_eq!(c.info().points, rows);
    ms.sort_by(f64::total_cmp);
    ms
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (rows, dim, flush_rows, rounds) = (arg(1, 60_000), arg(2, 384), arg(3, 20_000), arg(4, 3));
    println!("flush_latency: {rows} single-point upserts of dimension {dim}, flush every {flush_rows} rows, {rounds} rounds");
    let mut stats: [Vec<[f64; 4]>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (m, background) in [(0, false), (1, true)] {
            let ms = run(rows, dim, flush_rows, background, round as u64);
            let s = [
                quantile(&ms, 0.5),
                quantile(&ms, 0.99),
                ms.iter().filter(|&&x| x > 10.0).count() as f64,
                *ms.last().unwrap(),
            ];
            let name = if background { "background" } else { "inline" };
            println!(
                "round {round} {name:>10}: p50 {:.3} ms, p99 {:.3} ms, {} writes over 10 ms, worst {:.1} ms",
                s[0], s[1], s[2], s[3]
            );
            stats[m].push(s);
        }
    }
    let med = |m: usize, i: usize| median(stats[m].iter().map(|s| s[i]).collect());
    for (i, what) in ["p50 ms", "p99 ms", "writes > 10 ms", "worst ms"]
        .iter()
        .enumerate()
    {
        println!(
            "median {what:>14}: inline {:.3}, background {:.3}, inline/background {:.2}x",
            med(0, i),
            med(1, i),
            med(0, i) / med(1, i)
        );
    }
}
