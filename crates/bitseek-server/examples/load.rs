//! Load generator: queries/s and p50/p99 latency of the HTTP server at 1, 8 and 64 connections, with
//! and without a concurrent writer, next to the library's queries/s at the same concurrency — all
//! in one process, over one collection, in one run.
//!
//! It builds a collection from real vectors (`--base`, e.g. `bench/data/base-59k.f32.npy`), then for
//! each concurrency runs the library (N threads calling `Collection::search`) and the server (N
//! keep-alive HTTP/1.1 connections on loopback sending `POST /collections/load/search` with
//! pre-serialised bodies, once as JSON and once as raw little-endian f32 with `?k=` in the path), each for `--seconds`, `--repeat` times; queries/s is the median over the
//! repeats, p50/p99 are over every request of the repeats. The writer (library: a thread calling
//! `upsert`; server: one more connection sending `PUT /collections/load/points`) upserts batches of
//! `--writer-batch` points, cycling over 10,000 ids past the base, fsync'd per batch, for the whole
//! measurement. Before timing, the server's hits for the first 100 queries are checked equal to the
//! library's.
//!
//! Client and server share the machine's cores, as on any single-host loopback test; the library
//! figure has no client to feed. Each pass also records this process's CPU time, so queries per
//! CPU-second compare the two even when other processes take a varying share of a shared
//! machine (the server's figure pays for its HTTP work and for the client's).
//!
//! ```sh
//! cargo run --release -p bitseek-server --example load -- \
//!     --base bench/data/base-59k.f32.npy --queries bench/data/queries-1k.f32.npy
//! ```

use bitseek_store::{CollectionConfig, Db, Durability, Keep, Metric, Point, SearchRequest};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
struct Args {
    /// Base vectors (.npy/.fvecs/.jsonl).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    queries: PathBuf,
    /// Use only the first ROWS base vectors.
    #[arg(long)]
    rows: Option<usize>,
    /// Concurrency levels (threads for the library, connections for the server).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    conc: Vec<usize>,
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Rescore k × OVERSAMPLE candidates (the store's default when absent).
    #[arg(long)]
    oversample: Option<f32>,
    #[arg(long, default_value = "rabitq")]
    quantizer: String,
    /// Seconds per timed pass.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Timed passes per setting (queries/s is their median).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Points per writer upsert.
    #[arg(long, default_value_t = 100)]
    writer_batch: usize,
    /// Points per second the writer upserts (paced, the same for library and server; it falls
    /// behind, and says so in its measured rate, when the store cannot keep up).
    #[arg(long, default_value_t = 2000.0)]
    writer_rate: f64,
    /// Skip the passes with a concurrent writer.
    #[arg(long)]
    no_writer: bool,
    /// Directory for the collection (a temporary one by default).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// One measured setting.
#[derive(serde::Serialize, Clone)]
struct Row {
    system: &'static str,
    conc: usize,
    writer: bool,
    qps: f64,
    qps_runs: Vec<f64>,
    queries_per_cpu_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    writer_points_per_s: f64,
    errors: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Writer batches: `batches` batches of `size` points with ids cycling over 10,000 ids past `rows`,
/// vectors taken from the base.
fn writer_batches(
    base: &bitseek_index::input::Vectors,
    rows: usize,
    size: usize,
) -> Vec<Vec<Point>> {
    (0..20)
        .map(|b| {
            (0..size)
                .map(|i| {
                    let j = (b * size + i) % 10_000;
                    Point {
                        id: (rows + j) as u64,
                        vector: base.row(j % rows).to_vec(),
                        payload: serde_json::json!({"writer": b}),
                    }
                })
                .collect()
        })
        .collect()
}

/// What one timed pass measured.
struct Pass {
    qps: f64,
    /// Seconds per answered query.
    lat: Vec<f64>,
    writer_points_per_s: f64,
    errors: u64,
    /// Queries answered per CPU-second of this whole process (searches, writer, and for the
    /// server its HTTP work and the client's): a measure other processes on a shared machine
    /// disturb less than queries/s.
    per_cpu_s: f64,
}

/// CPU seconds (user + system, all threads) this process has used; `None` where the platform
/// cannot say.
fn cpu_seconds() -> Option<f64> {
    cpu_time::ProcessTime::try_now()
        .ok()
        .map(|t| t.as_duration().as_secs_f64())
}

fn summarize(system: &'static str, conc: usize, writer: bool, runs: Vec<Pass>) -> Row {
    let qps_runs: Vec<f64> = runs.iter().map(|r| r.qps).collect();
    let mut lat: Vec<f64> = runs.iter().flat_map(|r| r.lat.iter().copied()).collect();
    lat.sort_by(f64::total_cmp);
    Row {
        system,
        conc,
        writer,
        qps: median(qps_runs.clone()),
        qps_runs,
        queries_per_cpu_second: median(runs.iter().map(|r| r.per_cpu_s).collect()),
        p50_ms: percentile(&lat, 0.5) * 1e3,
        p99_ms: percentile(&lat, 0.99) * 1e3,
        writer_points_per_s: median(runs.iter().map(|r| r.writer_points_per_s).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// One timed library pass: `conc` threads searching for `secs`, optionally with a writer thread.
fn library_pass(
    coll: &bitseek_store::LiveCollection,
    queries: &bitseek_index::input::Vectors,
    req: &SearchRequest,
    conc: usize,
    secs: f64,
    writes: Option<&[Vec<Point>]>,
    writer_rate: f64,
) -> Pass {
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let cpu = cpu_seconds();
    let start = Instant::now();
    let lat: Vec<Vec<f64>> = std::thread::scope(|s| {
        if let Some(batches) = writes {
            let (stop, written) = (&stop, &written);
            s.spawn(move || {
                let mut b = 0;
                while !stop.load(Ordering::Relaxed) {
                    let batch = batches[b % batches.len()].clone();
                    let n = batch.len() as u64;
                    coll.upsert(batch).expect("writer upsert");
                    written.fetch_add(n, Ordering::Relaxed);
                    b += 1;
                    let due = Duration::from_secs_f64((b as u64 * n) as f64 / writer_rate);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait.min(Duration::from_millis(100)));
                    }
                }
            });
        }
        let workers: Vec<_> = (0..conc)
            .map(|t| {
                let stop = &stop;
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut i = t * 7919;
                    while !stop.load(Ordering::Relaxed) {
                        let q = queries.row(i % queries.rows());
                        let t0 = Instant::now();
                        let hits = coll.search(q, req).expect("library search");
                        lat.push(t0.elapsed().as_secs_f64());
                        std::hint::black_box(hits);
                        i += 1;
                    }
                    lat
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu)
        .map(|(b, a)| b - a)
        .unwrap_or(f64::NAN);
    let lat: Vec<f64> = lat.concat();
    let n = lat.len() as f64;
    Pass {
        qps: n / elapsed,
        lat,
        writer_points_per_s: written.load(Ordering::Relaxed) as f64 / elapsed,
        errors: 0,
        per_cpu_s: n / cpu,
    }
}

/// An HTTP/1.1 keep-alive connection.
async fn connect(
    addr: std::net::SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

async fn post(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<(u16, Bytes), Error> {
    // A search path with a query string carries a raw f32 body.
    let content_type = if path.contains('?') {
        "application/octet-stream"
    } else {
        "application/json"
    };
    send.ready().await?;
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("content-type", content_type)
        .body(Full::new(body))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// One timed server pass: `conc` connections, optionally with a writer connection.
async fn server_pass(
    addr: std::net::SocketAddr,
    search: Arc<(String, Vec<Bytes>)>,
    conc: usize,
    secs: f64,
    writes: Option<Arc<Vec<Bytes>>>,
    writer_batch: usize,
    writer_rate: f64,
) -> Result<Pass, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for _ in 0..conc {
        conns.push(connect(addr).await?);
    }
    let writer = match writes {
        Some(batches) => {
            let mut send = connect(addr).await?;
            let (stop, written, errors) = (stop.clone(), written.clone(), errors.clone());
            let start = Instant::now();
            Some(tokio::spawn(async move {
                let mut b = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = batches[b % batches.len()].clone();
                    match post(&mut send, "PUT", "/collections/load/points", body).await {
                        Ok((200, _)) => {
                            written.fetch_add(writer_batch as u64, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    b += 1;
                    let due = Duration::from_secs_f64((b * writer_batch) as f64 / writer_rate);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
                    }
                }
            }))
        }
        None => None,
    };
    let cpu = cpu_seconds();
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(t, mut send)| {
            let (stop, errors, search) = (stop.clone(), errors.clone(), search.clone());
            tokio::spawn(async move {
                let (path, bodies) = &*search;
                let mut lat = Vec::new();
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let body = bodies[i % bodies.len()].clone();
                    let t0 = Instant::now();
                    match post(&mut send, "POST", path, body).await {
                        Ok((200, _)) => lat.push(t0.elapsed().as_secs_f64()),
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(w) = writer {
        w.await?;
    }
    let cpu = cpu_seconds()
        .zip(cpu)
        .map(|(b, a)| b - a)
        .unwrap_or(f64::NAN);
    let n = lat.len() as f64;
    Ok(Pass {
        qps: n / elapsed,
        lat,
        writer_points_per_s: written.load(Ordering::Relaxed) as f64 / elapsed,
        errors: errors.load(Ordering::Relaxed),
        per_cpu_s: n / cpu,
    })
}

fn main() -> Result<(), Error> {
    let a = Args::parse();
    let base = bitseek_index::input::read_vectors(&a.base)?;
    let queries = bitseek_index::input::read_vectors(&a.queries)?;
    let rows = a.rows.unwrap_or(base.rows()).min(base.rows());
    let dim = base.dim;
    if queries.dim != dim {
        return Err(format!("queries have {} dimensions, base {dim}", queries.dim).into());
    }
    let tmp = tempfile::tempdir_in(a.data.clone().unwrap_or_else(std::env::temp_dir))?;
    let db = Arc::new(Db::open(tmp.path())?);
    let coll = db.create(
        "load",
        CollectionConfig {
            dim,
            metric: Metric::Cosine,
            quantizer: a.quantizer.clone(),
            keep: Keep::F32,
            durability: Durability::Fsync,
            index: Default::default(),
        },
    )?;
    let t = Instant::now();
    for start in (0..rows).step_by(10_000) {
        let end = (start + 10_000).min(rows);
        let points = (start..end)
            .map(|i| Point {
                id: i as u64,
                vector: base.row(i).to_vec(),
                payload: serde_json::json!({"row": i}),
            })
            .collect();
        coll.upsert(points)?;
    }
    let ingest = t.elapsed().as_secs_f64();
    let t = Instant::now();
    coll.compact()?;
    let compact = t.elapsed().as_secs_f64();
    let info = coll.info();
    eprintln!(
        "collection: {} points, dim {dim}, {}; upsert {:.1} s ({:.0} points/s, batches of 10,000, fsync each), compact {:.1} s",
        info.points,
        a.quantizer,
        ingest,
        rows as f64 / ingest,
        compact
    );

    let req = SearchRequest {
        k: a.k,
        oversample: a.oversample,
        filter: None,
        effort: None,
    };
    let bodies: Vec<Bytes> = (0..queries.rows())
        .map(|i| {
            let mut body = serde_json::json!({"vector": queries.row(i), "k": a.k});
            if let Some(o) = a.oversample {
                body["oversample"] = serde_json::json!(o);
            }
            Bytes::from(body.to_string())
        })
        .collect();
    let json_search = Arc::new(("/collections/load/search".to_string(), bodies.clone()));
    // The same queries as raw little-endian f32 bodies, parameters in the query string.
    let mut raw_path = format!("/collections/load/search?k={}", a.k);
    if let Some(o) = a.oversample {
        raw_path.push_str(&format!("&oversample={o}"));
    }
    let raw_search = Arc::new((
        raw_path,
        (0..queries.rows())
            .map(|i| {
                Bytes::from(
                    queries
                        .row(i)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>(),
                )
            })
            .collect::<Vec<Bytes>>(),
    ));
    let batches = writer_batches(&base, rows, a.writer_batch);
    let batch_bodies: Arc<Vec<Bytes>> = Arc::new(
        batches
            .iter()
            .map(|b| Bytes::from(serde_json::json!({ "points": b }).to_string()))
            .collect(),
    );

    // The server, in this process, over the same collection.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("client")
        .build()?;
    let state = bitseek_server::AppState::new(db.clone(), bitseek_server::Options::default());
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(bitseek_server::serve_on(listener, state, async move {
        let _ = stop_rx.await;
    }));

    // The server answers what the library answers, for JSON and raw bodies.
    let checked = client_rt.block_on(async {
        let mut send = connect(addr).await?;
        let n = queries.rows().min(100);
        for search in [&json_search, &raw_search] {
            for i in 0..n {
                let (status, body) =
                    post(&mut send, "POST", &search.0, search.1[i].clone()).await?;
                if status != 200 {
                    return Err(format!(
                        "search answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    )
                    .into());
                }
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let got: Vec<u64> = v["hits"]
                    .as_array()
                    .ok_or("no hits")?
                    .iter()
                    .filter_map(|h| h["id"].as_u64())
                    .collect();
                let want: Vec<u64> = coll
                    .search(queries.row(i), &req)?
                    .iter()
                    .map(|h| h.id)
                    .collect();
                if got != want {
                    return Err(format!(
                        "query {i} ({}): server hits {got:?}, library hits {want:?}",
                        search.0
                    )
                    .into());
                }
            }
        }
        Ok::<usize, Error>(n)
    })?;
    eprintln!("server hits (JSON and raw f32 bodies) equal library hits for {checked} queries");

    let mut table: Vec<[Row; 3]> = Vec::new();
    let writer_modes: &[bool] = if a.no_writer {
        &[false]
    } else {
        &[false, true]
    };
    for &writer in writer_modes {
        for &conc in &a.conc {
            // One untimed warm-up pass of each, then the timed repeats, interleaved so that drift
            // on a shared machine hits all alike.
            let w = writer.then_some(&batches[..]);
            library_pass(&coll, &queries, &req, conc, 0.5, None, a.writer_rate);
            for search in [&json_search, &raw_search] {
                client_rt.block_on(server_pass(
                    addr,
                    search.clone(),
                    conc,
                    0.5,
                    None,
                    0,
                    a.writer_rate,
                ))?;
            }
            let (mut lib_runs, mut json_runs, mut raw_runs) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..a.repeat {
                lib_runs.push(library_pass(
                    &coll,
                    &queries,
                    &req,
                    conc,
                    a.seconds,
                    w,
                    a.writer_rate,
                ));
                for (search, runs) in [(&json_search, &mut json_runs), (&raw_search, &mut raw_runs)]
                {
                    runs.push(client_rt.block_on(server_pass(
                        addr,
                        search.clone(),
                        conc,
                        a.seconds,
                        writer.then(|| batch_bodies.clone()),
                        a.writer_batch,
                        a.writer_rate,
                    ))?);
                }
            }
            let lib = summarize("library", conc, writer, lib_runs);
            let json = summarize("server-json", conc, writer, json_runs);
            let raw = summarize("server-f32", conc, writer, raw_runs);
            eprintln!(
                "conc {conc:>2} writer {:<3}: library {:>7.0} q/s ({:.0} q/CPU-s, p50 {:.2} ms) | server JSON {:>7.0} q/s ({:.0} q/CPU-s, p50 {:.2} ms, {} errors) | server f32 {:>7.0} q/s ({:.0} q/CPU-s, p50 {:.2} ms, {} errors) | per CPU-s vs library: JSON {:.2}, f32 {:.2}{}",
                if writer { "yes" } else { "no" },
                lib.qps,
                lib.queries_per_cpu_second,
                lib.p50_ms,
                json.qps,
                json.queries_per_cpu_second,
                json.p50_ms,
                json.errors,
                raw.qps,
                raw.queries_per_cpu_second,
                raw.p50_ms,
                raw.errors,
                json.queries_per_cpu_second / lib.queries_per_cpu_second,
                raw.queries_per_cpu_second / lib.queries_per_cpu_second,
                if writer {
                    format!(
                        " | writer: library {:.0} points/s, server {:.0} points/s",
                        lib.writer_points_per_s, raw.writer_points_per_s
                    )
                } else {
                    String::new()
                }
            );
            table.push([lib, json, raw]);
        }
    }

    stop_tx.send(()).ok();
    server_rt.block_on(server)??;

    println!("| connections | writer | library q/s | server JSON q/s | server f32 q/s | q/CPU-s JSON/library | q/CPU-s f32/library | JSON p50/p99 ms | f32 p50/p99 ms | library p50/p99 ms |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for [l, j, r] in &table {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |",
            l.conc,
            if l.writer { "yes" } else { "no" },
            l.qps,
            j.qps,
            r.qps,
            j.queries_per_cpu_second / l.queries_per_cpu_second,
            r.queries_per_cpu_second / l.queries_per_cpu_second,
            j.p50_ms,
            j.p99_ms,
            r.p50_ms,
            r.p99_ms,
            l.p50_ms,
            l.p99_ms
        );
    }
    let table: Vec<Row> = table.into_iter().flatten().collect();
    if let Some(path) = &a.json_out {
        let doc = serde_json::json!({
            "base": a.base, "queries": a.queries, "rows": rows, "dim": dim, "k": a.k,
            "oversample": a.oversample, "quantizer": a.quantizer, "seconds": a.seconds,
            "repeat": a.repeat, "writer_batch": a.writer_batch, "writer_rate": a.writer_rate,
            "ingest_seconds": ingest, "compact_seconds": compact,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "rows_measured": table,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
