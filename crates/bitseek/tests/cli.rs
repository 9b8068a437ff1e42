//! End-to-end tests of the `bitseek` binary: each test writes vector files into a temporary
//! directory, runs the real command and checks its exit code, stdout (mostly `--json`) and stderr.

mod common;
use common::{bitseek, describe};
use std::fs;
use std::path::{Path, PathBuf};

use bitseek_index::input::write_npy_f32;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs `bitseek` and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = bitseek(args);
    assert!(
        out.status.success(),
        "expected success:\n{}",
        describe(args, &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{}", describe(args, &out));
    String::from_utf8(out.stdout).expect("stdout is not UTF-8")
}

/// Runs `bitseek` and expects clap's usage error (exit code 2, before any work) naming the flag.
fn usage_fails(args: &[&str], needles: &[&str]) {
    let out = bitseek(args);
    let text = describe(args, &out);
    assert_eq!(out.status.code(), Some(2), "expected exit code 2:\n{text}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.starts_with("error: invalid value"), "{text}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{text}");
    }
}

/// Runs `bitseek` and expects exit code 2, no panic and a message containing every needle;
/// returns stderr.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = bitseek(args);
    let text = describe(args, &out);
    assert_eq!(out.status.code(), Some(2), "expected exit code 2:\n{text}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic:\n{text}");
    assert!(stderr.starts_with("bitseek: "), "{text}");
    assert!(out.stdout.is_empty(), "stdout on failure:\n{text}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{text}");
    }
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// SplitMix64: a tiny deterministic generator, so the tests need no extra dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `rows` vectors of dimension `dim` plus `queries` more drawn the same way (row-major), around
/// `clusters` random centres, each with 8 sub-centres, so that the data has real neighbourhoods at
/// several scales, as embeddings do (isotropic noise alone makes all neighbours nearly equidistant).
fn clustered(
    seed: u64,
    rows: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
) -> (Vec<f32>, Vec<f32>) {
    const SUB: usize = 8;
    let mut rng = Rng(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal()).collect();
    let subs: Vec<f32> = (0..clusters * SUB * dim)
        .map(|i| centres[(i / (SUB * dim)) * dim + i % dim] + 0.4 * rng.normal())
        .collect();
    let mut draw = |n: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.below(clusters * SUB);
            for j in 0..dim {
                out.push(subs[c * dim + j] + 0.15 * rng.normal());
            }
        }
        out
    };
    let base = draw(rows);
    let q = draw(queries);
    (base, q)
}

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut bytes = Vec::new();
    for r in rows {
        bytes.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    fs::write(path, bytes).unwrap();
}

/// A JSON lines file; `ids` gives each row an `"id"` field when present.
fn write_jsonl(path: &Path, rows: &[&[f32]], ids: Option<&[u64]>) {
    let mut text = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line = match ids {
            Some(ids) => serde_json::json!({ "id": ids[i], "vector": r }),
            None => serde_json::json!({ "vector": r }),
        };
        text.push_str(&line.to_string());
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

/// A hand-written float64 `.npy` file (which bitseek must refuse).
fn write_npy_f64(path: &Path, rows: usize, dim: usize) {
    let mut header =
        format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for i in 0..rows * dim {
        bytes.extend_from_slice(&(1.0 + i as f64).to_le_bytes());
    }
    fs::write(path, bytes).unwrap();
}

/// Parses `query --json` output: one object per line, returning (query name, [(id, score)]).
fn parse_hits(stdout: &str) -> Vec<(u64, Vec<(u64, f64)>)> {
    stdout
        .lines()
        .map(|line| {
            let v = json(line);
            let obj = v.as_object().expect("each line is an object");
            assert_eq!(obj.len(), 2, "unexpected keys in {line}");
            let q = v["query"].as_u64().expect("query is a number");
            let hits = v["hits"]
                .as_array()
                .expect("hits is an array")
                .iter()
                .map(|h| {
                    (
                        h["id"].as_u64().expect("hit id is a u64"),
                        h["score"].as_f64().expect("hit score is a number"),
                    )
                })
                .collect();
            (q, hits)
        })
        .collect()
}

fn assert_sorted_desc(hits: &[(u64, f64)], context: &str) {
    for w in hits.windows(2) {
        assert!(
            w[0].1 >= w[1].1,
            "{context}: scores not best first: {hits:?}"
        );
    }
}

/// A small good input (8 × 16, non-zero rows) for the refusal tests.
fn small_good(dir: &Path) -> PathBuf {
    let path = dir.join("good.npy");
    let (data, _) = clustered(7, 64, 0, 16, 4);
    write_npy_f32(&path, 64, 16, &data).unwrap();
    path
}

/// Builds a good index at `out`, then checks that building `input` (with `extra` arguments) to the
/// same `out` fails with exit code 2 and `needles` in the message, leaves the old index
/// byte-for-byte as it was, and that building it to a fresh path creates nothing.
fn assert_build_refused(dir: &Path, input: &Path, extra: &[&str], needles: &[&str]) -> String {
    let out = dir.join("existing.bsk");
    let good = small_good(dir);
    ok(&["build", "--input", s(&good), "--out", s(&out), "--json"]);
    let before = fs::read(&out).unwrap();

    let mut args = vec!["build", "--input", s(input), "--out", s(&out)];
    args.extend_from_slice(extra);
    let mut all_needles = vec![s(input)];
    all_needles.extend_from_slice(needles);
    let stderr = fails(&args, &all_needles);
    assert_eq!(
        fs::read(&out).unwrap(),
        before,
        "the old index was modified"
    );

    let fresh = dir.join("fresh.bsk");
    let mut args = vec!["build", "--input", s(input), "--out", s(&fresh)];
    args.extend_from_slice(extra);
    fails(&args, &all_needles);
    assert!(!fresh.exists(), "a failed build left {}", fresh.display());
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    stderr
}

// ---------------------------------------------------------------------------------------------
// Build, query, eval for every quantizer

#[test]
fn build_query_eval_each_quantizer() {
    const ROWS: usize = 2000;
    const NQ: usize = 40;
    const DIM: usize = 48;
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = clustered(1, ROWS, NQ, DIM, 24);
    let base_path = dir.path().join("base.npy");
    let q_path = dir.path().join("queries.npy");
    write_npy_f32(&base_path, ROWS, DIM, &base).unwrap();
    write_npy_f32(&q_path, NQ, DIM, &queries).unwrap();
    // Some base vectors as queries: each must find itself first.
    let own_rows = [0usize, 7, 999, 1234, ROWS - 1];
    let own: Vec<f32> = own_rows
        .iter()
        .flat_map(|&r| base[r * DIM..(r + 1) * DIM].to_vec())
        .collect();
    let own_path = dir.path().join("own.npy");
    write_npy_f32(&own_path, own_rows.len(), DIM, &own).unwrap();

    for quantizer in ["sign", "rabitq", "residual2", "int8"] {
        let idx = dir.path().join(format!("{quantizer}.bsk"));

        // build
        let stdout = ok(&[
            "build",
            "--input",
            s(&base_path),
            "--quantizer",
            quantizer,
            "--out",
            s(&idx),
            "--json",
        ]);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{quantizer}: build --json prints one line");
        let b = json(lines[0]);
        assert_eq!(b["rows"], ROWS, "{quantizer}: {b}");
        assert_eq!(b["dim"], DIM, "{quantizer}: {b}");
        assert_eq!(b["quantizer"], quantizer, "{quantizer}: {b}");
        assert_eq!(b["metric"], "cosine", "{quantizer}: {b}");
        assert_eq!(b["keep"], "f32", "{quantizer}: {b}");
        assert!(b["bytes_per_vector"].as_u64().unwrap() > 0, "{b}");
        let file_len = fs::metadata(&idx).unwrap().len();
        assert_eq!(b["file_bytes"].as_u64(), Some(file_len), "{quantizer}: {b}");
        // The kept f32 copy alone is ROWS × DIM × 4 bytes.
        assert!(
            file_len > (ROWS * DIM * 4) as u64,
            "{quantizer}: {file_len}"
        );

        // query
        let stdout = ok(&[
            "query",
            s(&idx),
            "--queries",
            s(&q_path),
            "-k",
            "5",
            "--json",
        ]);
        let results = parse_hits(&stdout);
        assert_eq!(results.len(), NQ, "{quantizer}: one line per query");
        for (i, (q, hits)) in results.iter().enumerate() {
            assert_eq!(*q, i as u64, "{quantizer}: queries in order");
            assert_eq!(hits.len(), 5, "{quantizer}: query {i}: {hits:?}");
            assert_sorted_desc(hits, &format!("{quantizer} query {i}"));
            let mut ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), 5, "{quantizer}: duplicate hits {hits:?}");
            for &(id, score) in hits {
                assert!(id < ROWS as u64, "{quantizer}: id {id}");
                // Rescored from the kept f32 copy: exact cosine similarities.
                assert!(
                    (-1.0001..=1.0001).contains(&score),
                    "{quantizer}: cosine {score}"
                );
            }
        }

        // Without rescoring, hits are still best first and k long.
        let stdout = ok(&[
            "query",
            s(&idx),
            "--queries",
            s(&q_path),
            "-k",
            "5",
            "--no-rescore",
            "--json",
        ]);
        let raw = parse_hits(&stdout);
        assert_eq!(raw.len(), NQ);
        for (i, (_, hits)) in raw.iter().enumerate() {
            assert_eq!(hits.len(), 5, "{quantizer} raw query {i}");
            assert_sorted_desc(hits, &format!("{quantizer} raw query {i}"));
        }

        // A stored vector finds itself first, with cosine ≈ 1.
        let stdout = ok(&[
            "query",
            s(&idx),
            "--queries",
            s(&own_path),
            "-k",
            "5",
            "--json",
        ]);
        let results = parse_hits(&stdout);
        assert_eq!(results.len(), own_rows.len());
        for ((_, hits), &row) in results.iter().zip(&own_rows) {
            assert_eq!(hits[0].0, row as u64, "{quantizer}: row {row}: {hits:?}");
            assert!(
                (hits[0].1 - 1.0).abs() < 1e-4,
                "{quantizer}: self score {}",
                hits[0].1
            );
            assert!(hits[1].1 < hits[0].1, "{quantizer}: {hits:?}");
        }

        // eval
        let stdout = ok(&[
            "eval",
            s(&idx),
            "--queries",
            s(&q_path),
            "-k",
            "5",
            "--oversample",
            "1,4",
            "--json",
        ]);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{quantizer}: eval --json prints one line");
        let e = json(lines[0]);
        assert_eq!(e["k"], 5, "{e}");
        assert_eq!(e["queries"], NQ, "{e}");
        assert_eq!(e["rows"], ROWS, "{e}");
        assert_eq!(e["quantizer"], quantizer, "{e}");
        let raw = e["recall_raw"].as_f64().expect("recall_raw");
        assert!((0.0..=1.0).contains(&raw), "{quantizer}: raw recall {raw}");
        let results = e["results"].as_array().expect("results");
        assert_eq!(results.len(), 2, "{e}");
        assert_eq!(results[0]["oversample"], 1, "{e}");
        assert_eq!(results[1]["oversample"], 4, "{e}");
        let mut rescored = Vec::new();
        for r in results {
            assert_eq!(r["recall_raw"].as_f64(), Some(raw), "{e}");
            let v = r["recall_rescored"]
                .as_f64()
                .expect("rescored recall (keep f32)");
            assert!((0.0..=1.0).contains(&v), "{quantizer}: {v}");
            rescored.push(v);
        }
        // Rescoring a superset of the raw candidates exactly can only keep or add true neighbours.
        assert!(
            rescored[1] >= raw,
            "{quantizer}: rescored {rescored:?} < raw {raw}"
        );
        assert!(rescored[1] >= rescored[0], "{quantizer}: {rescored:?}");
        if quantizer == "int8" || quantizer == "residual2" {
            assert!(
                rescored[1] >= 0.9,
                "{quantizer}: rescored recall {rescored:?}"
            );
        }
        eprintln!("{quantizer}: recall@5 raw {raw:.3}, rescored {rescored:?}");
    }
}

#[test]
fn l2_and_dot_metrics_and_keep_options() {
    const ROWS: usize = 600;
    const DIM: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = clustered(11, ROWS, 0, DIM, 8);
    let base_path = dir.path().join("base.npy");
    write_npy_f32(&base_path, ROWS, DIM, &base).unwrap();
    let own_rows = [3usize, 300, 599];
    let own: Vec<f32> = own_rows
        .iter()
        .flat_map(|&r| base[r * DIM..(r + 1) * DIM].to_vec())
        .collect();
    let own_path = dir.path().join("own.npy");
    write_npy_f32(&own_path, own_rows.len(), DIM, &own).unwrap();

    // L2: the vector itself is at distance 0 and comes first; scores are distances (ascending).
    let idx = dir.path().join("l2.bsk");
    ok(&[
        "build",
        "--input",
        s(&base_path),
        "--metric",
        "l2",
        "--out",
        s(&idx),
        "--json",
    ]);
    let stdout = ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&own_path),
        "-k",
        "3",
        "--json",
    ]);
    for ((_, hits), &row) in parse_hits(&stdout).iter().zip(&own_rows) {
        assert_eq!(hits[0].0, row as u64, "{hits:?}");
        assert!(hits[0].1.abs() < 1e-3, "self distance {}", hits[0].1);
        for w in hits.windows(2) {
            assert!(w[0].1 <= w[1].1, "l2 hits not nearest first: {hits:?}");
        }
    }

    // keep none: eval needs the original vectors and reports no rescored recall.
    let idx = dir.path().join("none.bsk");
    let b = json(&ok(&[
        "build",
        "--input",
        s(&base_path),
        "--keep",
        "none",
        "--out",
        s(&idx),
        "--json",
    ]));
    assert_eq!(b["keep"], "none");
    let stderr = fails(
        &["eval", s(&idx), "--queries", s(&own_path), "-k", "3"],
        &["--vectors"],
    );
    assert!(stderr.contains("f32"), "{stderr}");
    let e = json(&ok(&[
        "eval",
        s(&idx),
        "--queries",
        s(&own_path),
        "--vectors",
        s(&base_path),
        "-k",
        "3",
        "--oversample",
        "2",
        "--json",
    ]));
    assert!(e["results"][0]["recall_rescored"].is_null(), "{e}");
    let raw = e["recall_raw"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&raw), "{e}");

    // keep int8: rescoring from the int8 copy still finds the vector itself first.
    let idx = dir.path().join("int8keep.bsk");
    ok(&[
        "build",
        "--input",
        s(&base_path),
        "--keep",
        "int8",
        "--out",
        s(&idx),
        "--json",
    ]);
    let stdout = ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&own_path),
        "-k",
        "3",
        "--json",
    ]);
    for ((_, hits), &row) in parse_hits(&stdout).iter().zip(&own_rows) {
        assert_eq!(hits[0].0, row as u64, "{hits:?}");
        assert!(
            (hits[0].1 - 1.0).abs() < 0.05,
            "int8 self score {}",
            hits[0].1
        );
    }

    // Human-readable output names the index and lists ranked hits.
    let stdout = ok(&["query", s(&idx), "--queries", s(&own_path), "-k", "2"]);
    assert!(stdout.starts_with("query 0\n"), "{stdout}");
    assert!(stdout.contains("1. id 3 "), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Input formats

#[test]
fn jsonl_ids_are_reported_not_row_numbers() {
    const ROWS: usize = 300;
    const DIM: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = clustered(3, ROWS, 0, DIM, 6);
    // Distinct, large ids in shuffled order (so they can be neither row numbers nor sorted).
    let mut ids: Vec<u64> = (0..ROWS as u64).map(|i| 1_000_000 + 37 * i).collect();
    let mut rng = Rng(99);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    let rows: Vec<&[f32]> = base.chunks_exact(DIM).collect();
    let input = dir.path().join("base.jsonl");
    write_jsonl(&input, &rows, Some(&ids));
    let idx = dir.path().join("ids.bsk");
    let b = json(&ok(&[
        "build",
        "--input",
        s(&input),
        "--out",
        s(&idx),
        "--json",
    ]));
    assert_eq!(b["rows"], ROWS);
    assert_eq!(b["dim"], DIM);

    // Query with some rows of the file, given query ids of their own.
    let picks = [0usize, 5, 150, 299];
    let q_rows: Vec<&[f32]> = picks.iter().map(|&r| rows[r]).collect();
    let q_ids: Vec<u64> = vec![42, 7, 1_000_000_000_000, 0];
    let q_path = dir.path().join("queries.ndjson");
    write_jsonl(&q_path, &q_rows, Some(&q_ids));
    let stdout = ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "4",
        "--json",
    ]);
    let results = parse_hits(&stdout);
    assert_eq!(results.len(), picks.len());
    let id_set: std::collections::HashSet<u64> = ids.iter().copied().collect();
    for (((q, hits), &row), &qid) in results.iter().zip(&picks).zip(&q_ids) {
        assert_eq!(*q, qid, "query lines carry the query file's ids");
        assert_eq!(hits.len(), 4);
        assert_eq!(
            hits[0].0, ids[row],
            "row {row} should find its own id: {hits:?}"
        );
        assert!((hits[0].1 - 1.0).abs() < 1e-4, "{hits:?}");
        for (id, _) in hits {
            assert!(
                id_set.contains(id),
                "hit id {id} is not one of the file's ids"
            );
        }
    }

    // The same vectors as .npy queries (no ids): query lines are numbered by row.
    let q: Vec<f32> = q_rows.concat();
    let q_npy = dir.path().join("queries.npy");
    write_npy_f32(&q_npy, picks.len(), DIM, &q).unwrap();
    let results = parse_hits(&ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&q_npy),
        "-k",
        "1",
        "--json",
    ]));
    for (i, ((q, hits), &row)) in results.iter().zip(&picks).enumerate() {
        assert_eq!(*q, i as u64);
        assert_eq!(hits[0].0, ids[row]);
    }

    // eval against the kept copy maps truth to the same ids: recall is perfect with oversampling.
    let e = json(&ok(&[
        "eval",
        s(&idx),
        "--queries",
        s(&q_npy),
        "-k",
        "1",
        "--oversample",
        "8",
        "--json",
    ]));
    assert_eq!(
        e["results"][0]["recall_rescored"].as_f64(),
        Some(1.0),
        "{e}"
    );
}

#[test]
fn fvecs_input_builds_and_queries() {
    const ROWS: usize = 400;
    const DIM: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = clustered(5, ROWS, 10, DIM, 5);
    let rows: Vec<Vec<f32>> = base.chunks_exact(DIM).map(<[f32]>::to_vec).collect();
    let input = dir.path().join("base.fvecs");
    write_fvecs(&input, &rows);
    let q_rows: Vec<Vec<f32>> = queries
        .chunks_exact(DIM)
        .map(<[f32]>::to_vec)
        .chain([rows[17].clone()])
        .collect();
    let q_path = dir.path().join("queries.fvecs");
    write_fvecs(&q_path, &q_rows);

    let idx = dir.path().join("fvecs.bsk");
    let b = json(&ok(&[
        "build",
        "--input",
        s(&input),
        "--quantizer",
        "residual3",
        "--out",
        s(&idx),
        "--json",
    ]));
    assert_eq!(b["rows"], ROWS);
    assert_eq!(b["dim"], DIM);
    assert_eq!(b["quantizer"], "residual3");
    let results = parse_hits(&ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "3",
        "--json",
    ]));
    assert_eq!(results.len(), 11);
    for (_, hits) in &results {
        assert_eq!(hits.len(), 3);
        assert_sorted_desc(hits, "fvecs");
    }
    assert_eq!(results[10].1[0].0, 17, "{:?}", results[10]);

    // A .fvecs built index and the same data as .npy give the same hits.
    let npy = dir.path().join("base.npy");
    write_npy_f32(&npy, ROWS, DIM, &base).unwrap();
    let idx2 = dir.path().join("npy.bsk");
    ok(&[
        "build",
        "--input",
        s(&npy),
        "--quantizer",
        "residual3",
        "--out",
        s(&idx2),
        "--json",
    ]);
    let results2 = parse_hits(&ok(&[
        "query",
        s(&idx2),
        "--queries",
        s(&q_path),
        "-k",
        "3",
        "--json",
    ]));
    assert_eq!(results, results2);
}

// ---------------------------------------------------------------------------------------------
// Refused inputs

#[test]
fn nan_value_is_refused_with_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let (mut data, _) = clustered(21, 10, 0, 16, 2);
    data[3 * 16 + 5] = f32::NAN;
    let bad = dir.path().join("nan.npy");
    write_npy_f32(&bad, 10, 16, &data).unwrap();
    assert_build_refused(dir.path(), &bad, &[], &["row 3", "column 5", "NaN"]);

    // The same file as queries is refused too, naming it and the row.
    let idx = dir.path().join("existing.bsk");
    fails(
        &["query", s(&idx), "--queries", s(&bad)],
        &[s(&bad), "row 3", "NaN"],
    );
}

#[test]
fn ragged_fvecs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<Vec<f32>> = (0..6).map(|i| vec![1.0 + i as f32; 8]).collect();
    rows[4].pop();
    let bad = dir.path().join("ragged.fvecs");
    write_fvecs(&bad, &rows);
    assert_build_refused(
        dir.path(),
        &bad,
        &[],
        &["row 4", "dimension 7", "dimension 8"],
    );
}

#[test]
fn ragged_and_malformed_jsonl_are_refused_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let ragged = dir.path().join("ragged.jsonl");
    fs::write(
        &ragged,
        "{\"id\": 1, \"vector\": [1, 2, 3]}\n{\"id\": 2, \"vector\": [1, 2]}\n",
    )
    .unwrap();
    assert_build_refused(dir.path(), &ragged, &[], &["line 2", "dimension 2"]);

    let broken = dir.path().join("broken.jsonl");
    fs::write(
        &broken,
        "{\"id\": 1, \"vector\": [1, 2, 3]}\n{\"id\": 2, \"vector\": [1, 2, 3]}\n{\"id\": 3, \"vector\": [1, 2,\n",
    )
    .unwrap();
    assert_build_refused(dir.path(), &broken, &[], &["line 3", "invalid JSON"]);

    let dup = dir.path().join("dup.jsonl");
    fs::write(
        &dup,
        "{\"id\": 5, \"vector\": [1, 2]}\n{\"id\": 6, \"vector\": [2, 1]}\n{\"id\": 5, \"vector\": [3, 1]}\n",
    )
    .unwrap();
    assert_build_refused(dir.path(), &dup, &[], &["id 5", "row 0", "row 2"]);
}

#[test]
fn empty_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["empty.npy", "empty.fvecs", "empty.jsonl"] {
        let bad = dir.path().join(name);
        fs::write(&bad, b"").unwrap();
        assert_build_refused(dir.path(), &bad, &[], &["empty"]);
    }
}

#[test]
fn truncated_npy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = clustered(22, 10, 0, 16, 2);
    let bad = dir.path().join("truncated.npy");
    write_npy_f32(&bad, 10, 16, &data).unwrap();
    let bytes = fs::read(&bad).unwrap();
    // 10 rows of 64 bytes after the header; cut 100 bytes: 540 bytes = 8 whole rows remain.
    fs::write(&bad, &bytes[..bytes.len() - 100]).unwrap();
    assert_build_refused(
        dir.path(),
        &bad,
        &[],
        &["truncated", "row 8", "expected 640 bytes", "found 540"],
    );
}

#[test]
fn float64_npy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("f64.npy");
    write_npy_f64(&bad, 4, 8);
    assert_build_refused(dir.path(), &bad, &[], &["'<f8' (float64)", "float32"]);
}

#[test]
fn zero_vector_is_refused_for_cosine_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut data, _) = clustered(23, 10, 0, 16, 2);
    data[2 * 16..3 * 16].fill(0.0);
    let bad = dir.path().join("zero.npy");
    write_npy_f32(&bad, 10, 16, &data).unwrap();
    assert_build_refused(dir.path(), &bad, &[], &["row 2", "zero vector", "cosine"]);
    assert_build_refused(
        dir.path(),
        &bad,
        &["--metric", "cosine"],
        &["row 2", "zero vector"],
    );

    for metric in ["dot", "l2"] {
        let idx = dir.path().join(format!("{metric}.bsk"));
        let b = json(&ok(&[
            "build",
            "--input",
            s(&bad),
            "--metric",
            metric,
            "--out",
            s(&idx),
            "--json",
        ]));
        assert_eq!(b["rows"], 10);
        assert_eq!(b["metric"], metric);
        // The zero row is searchable: querying with row 1 finds it.
        let q = dir.path().join("q.npy");
        write_npy_f32(&q, 1, 16, &data[16..32]).unwrap();
        let hits = parse_hits(&ok(&[
            "query",
            s(&idx),
            "--queries",
            s(&q),
            "-k",
            "10",
            "--json",
        ]));
        assert_eq!(hits[0].1.len(), 10);
        assert!(hits[0].1.iter().any(|h| h.0 == 2));
    }
}

#[test]
fn wrong_query_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_good(dir.path());
    let idx = dir.path().join("dim16.bsk");
    ok(&["build", "--input", s(&good), "--out", s(&idx), "--json"]);
    let q = dir.path().join("short_queries.npy");
    write_npy_f32(&q, 3, 12, &[0.5; 36]).unwrap();
    for cmd in ["query", "eval", "bench"] {
        fails(
            &[cmd, s(&idx), "--queries", s(&q)],
            &[s(&q), "dimension 12", "dimension 16"],
        );
    }
}

#[test]
fn bad_search_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_good(dir.path());
    let idx = dir.path().join("idx.bsk");
    ok(&["build", "--input", s(&good), "--out", s(&idx), "--json"]);
    usage_fails(
        &["query", s(&idx), "--queries", s(&good), "-k", "0"],
        &["--k", "0 is not allowed"],
    );
    usage_fails(
        &["query", s(&idx), "--queries", s(&good), "--oversample", "0"],
        &["--oversample", "0 is not allowed"],
    );
    usage_fails(
        &[
            "eval",
            s(&idx),
            "--queries",
            s(&good),
            "--oversample",
            "1,x",
        ],
        &["--oversample", "\"x\" is not a whole number"],
    );
    // k larger than the index: every row once, best first.
    let results = parse_hits(&ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&good),
        "-k",
        "100",
        "--json",
    ]));
    assert_eq!(results.len(), 64);
    for (_, hits) in &results {
        assert_eq!(hits.len(), 64);
        assert_sorted_desc(hits, "k > rows");
    }
}

#[test]
fn corrupt_truncated_and_missing_indexes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_good(dir.path());
    let idx = dir.path().join("idx.bsk");
    ok(&["build", "--input", s(&good), "--out", s(&idx), "--json"]);
    let bytes = fs::read(&idx).unwrap();

    // One flipped byte in the middle (section data).
    let flipped = dir.path().join("flipped.bsk");
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    fs::write(&flipped, &b).unwrap();
    for cmd in ["query", "eval", "bench"] {
        let stderr = fails(&[cmd, s(&flipped), "--queries", s(&good)], &[s(&flipped)]);
        assert!(
            stderr.contains("checksum") || stderr.contains("corrupt"),
            "{cmd}: {stderr}"
        );
    }

    // One flipped byte in the JSON header.
    let header = dir.path().join("header.bsk");
    let mut b = bytes.clone();
    b[40] ^= 0x01;
    fs::write(&header, &b).unwrap();
    fails(
        &["query", s(&header), "--queries", s(&good)],
        &[s(&header), "checksum"],
    );

    // Cut in half.
    let half = dir.path().join("half.bsk");
    fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["query", s(&half), "--queries", s(&good)],
        &[s(&half), "truncated"],
    );

    // Not an index at all (a vector file passed by mistake), and an empty file.
    fails(
        &["query", s(&good), "--queries", s(&good)],
        &[s(&good), "not a bitseek index"],
    );
    let empty = dir.path().join("empty.bsk");
    fs::write(&empty, b"").unwrap();
    fails(
        &["query", s(&empty), "--queries", s(&good)],
        &[s(&empty), "not a bitseek index"],
    );

    // Missing.
    let missing = dir.path().join("no-such-index.bsk");
    fails(
        &["query", s(&missing), "--queries", s(&good)],
        &[s(&missing), "No such file"],
    );
    // A missing input file names it too.
    let missing_input = dir.path().join("no-such-input.npy");
    let out = dir.path().join("never.bsk");
    fails(
        &["build", "--input", s(&missing_input), "--out", s(&out)],
        &[s(&missing_input)],
    );
    fails(
        &["query", s(&idx), "--queries", s(&missing_input)],
        &[s(&missing_input)],
    );
    assert!(!out.exists());

    // An unsupported extension.
    let csv = dir.path().join("vectors.csv");
    fs::write(&csv, "1,2,3\n").unwrap();
    fails(
        &["build", "--input", s(&csv), "--out", s(&out)],
        &[s(&csv), ".csv"],
    );
    assert!(!out.exists());
}

#[test]
fn unknown_quantizer_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_good(dir.path());
    let out = dir.path().join("idx.bsk");
    for q in ["residual9", "residual1", "pq", ""] {
        let args = [
            "build",
            "--input",
            s(&good),
            "--quantizer",
            q,
            "--out",
            s(&out),
        ];
        let o = bitseek(&args);
        let text = describe(&args, &o);
        assert!(!o.status.success(), "{text}");
        assert_eq!(o.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("--quantizer"), "{text}");
        assert!(!stderr.contains("panicked"), "{text}");
        assert!(!out.exists(), "{text}");
    }
    let o = bitseek(&[
        "build",
        "--input",
        s(&good),
        "--out",
        s(&out),
        "--metric",
        "hamming",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--metric"));
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// Bench

#[test]
fn bench_reports_single_and_batch_runs() {
    const ROWS: usize = 1000;
    const DIM: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = clustered(31, ROWS, 100, DIM, 10);
    let base_path = dir.path().join("base.npy");
    let q_path = dir.path().join("queries.npy");
    write_npy_f32(&base_path, ROWS, DIM, &base).unwrap();
    write_npy_f32(&q_path, 100, DIM, &queries).unwrap();
    let idx = dir.path().join("bench.bsk");
    ok(&[
        "build",
        "--input",
        s(&base_path),
        "--out",
        s(&idx),
        "--json",
    ]);

    let stdout = ok(&[
        "bench",
        s(&idx),
        "--queries",
        s(&q_path),
        "--repeat",
        "1",
        "--max-queries",
        "64",
        "--single-queries",
        "8",
        "--threads",
        "1",
        "-k",
        "5",
        "--json",
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "bench --json prints one object: {stdout}");
    let r = json(lines[0]);
    assert_eq!(r["rows"], ROWS, "{r}");
    assert_eq!(r["dim"], DIM, "{r}");
    assert_eq!(r["k"], 5, "{r}");
    assert_eq!(r["queries_batch_mode"], 64, "{r}");
    assert_eq!(r["queries_single_mode"], 8, "{r}");
    let bw = r["read_bandwidth_gbs"]
        .as_f64()
        .expect("read_bandwidth_gbs");
    assert!(bw > 0.0 && bw.is_finite(), "{r}");
    assert!(r["floor_ms_per_query"].as_f64().unwrap() > 0.0, "{r}");
    // A scan reads at most the codes and all their factors, and at least one bit per dimension.
    let code_bytes = r["code_bytes"].as_f64().unwrap();
    let bpv = r["bytes_per_vector"].as_f64().unwrap();
    assert!(code_bytes <= bpv * ROWS as f64, "{r}");
    assert!(code_bytes >= (ROWS * DIM / 8) as f64, "{r}");

    let runs = r["runs"].as_array().expect("runs");
    let modes: Vec<&str> = runs.iter().map(|x| x["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["single", "batch"], "{r}");
    for run in runs {
        assert_eq!(run["threads"], 1, "{run}");
        let qps = run["qps_median"].as_f64().expect("qps_median");
        assert!(qps > 0.0 && qps.is_finite(), "{run}");
        let ms = run["ms_per_query_median"].as_f64().unwrap();
        assert!(((1e3 / qps) - ms).abs() <= 1e-6 * ms.max(1.0), "{run}");
        assert!(run["floor_ratio"].as_f64().unwrap() > 0.0, "{run}");
    }
    assert_eq!(runs[0]["batch"], 1);
    assert_eq!(runs[1]["batch"], 64);
    // The index keeps f32, so the float baseline ran too, in the same modes.
    let floats = r["float"].as_array().expect("float");
    assert_eq!(floats.len(), 2, "{r}");
    for f in floats {
        assert!(f["qps_median"].as_f64().unwrap() > 0.0, "{f}");
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn bench_zero_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_good(dir.path());
    let idx = dir.path().join("idx.bsk");
    ok(&["build", "--input", s(&good), "--out", s(&idx), "--json"]);
    let args = [
        "bench",
        s(&idx),
        "--queries",
        s(&good),
        "--repeat",
        "1",
        "--threads",
        "1",
        "--batch",
        "0",
    ];
    let o = bitseek(&args);
    let text = describe(&args, &o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--batch"),
        "{text}"
    );
}

#[test]
fn zero_query_names_file_row_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_good(dir.path());
    let idx = dir.path().join("idx.bsk");
    ok(&["build", "--input", s(&good), "--out", s(&idx), "--json"]);
    let q = dir.path().join("queries.jsonl");
    let zero = [0.0f32; 16];
    let one = [1.0f32; 16];
    write_jsonl(&q, &[&one, &one, &zero], Some(&[70, 71, 72]));
    fails(
        &["query", s(&idx), "--queries", s(&q)],
        &[s(&q), "row 2", "id 72", "zero vector"],
    );
}

#[test]
fn ivf_build_effort_and_bench_curve() {
    const ROWS: usize = 2000;
    const DIM: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = clustered(47, ROWS, 50, DIM, 10);
    let base_path = dir.path().join("base.npy");
    let q_path = dir.path().join("queries.npy");
    write_npy_f32(&base_path, ROWS, DIM, &base).unwrap();
    write_npy_f32(&q_path, 50, DIM, &queries).unwrap();
    let idx = dir.path().join("ivf.bsk");
    let built = json(&ok(&[
        "build",
        "--input",
        s(&base_path),
        "--index",
        "ivf",
        "--lists",
        "8",
        "--out",
        s(&idx),
        "--json",
    ]));
    assert_eq!(built["ivf_lists"], 8, "{built}");
    fails(
        &[
            "build",
            "--input",
            s(&base_path),
            "--lists",
            "8",
            "--out",
            s(&idx),
        ],
        &["--lists is for --index ivf"],
    );
    let hits = parse_hits(&ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "5",
        "--effort",
        "2",
        "--json",
    ]));
    assert_eq!(hits.len(), 50);
    assert!(hits.iter().all(|(_, h)| h.len() == 5));
    let r = json(&ok(&[
        "eval",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "5",
        "--effort",
        "8",
        "--json",
    ]));
    assert_eq!(r["effort"], 8, "{r}");
    let r = json(&ok(&[
        "bench",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "5",
        "--effort",
        "1,8",
        "--threads",
        "1",
        "--repeat",
        "1",
        "--single-queries",
        "4",
        "--no-float",
        "--json",
    ]));
    let curve = r["curve"].as_array().expect("a curve");
    assert_eq!(curve.len(), 2, "{r}");
    let (r1, r8) = (
        curve[0]["recall"].as_f64().unwrap(),
        curve[1]["recall"].as_f64().unwrap(),
    );
    assert_eq!(curve[1]["effort"], 8);
    assert!(
        r1 <= r8 && r8 >= 0.9,
        "recall at effort 1 {r1}, at every list {r8}"
    );
    assert!(curve.iter().all(|c| c["qps"].as_f64().unwrap() > 0.0));
}

#[test]
fn graph_build_effort_and_bench_curve() {
    const ROWS: usize = 2000;
    const DIM: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = clustered(48, ROWS, 50, DIM, 10);
    let base_path = dir.path().join("base.npy");
    let q_path = dir.path().join("queries.npy");
    write_npy_f32(&base_path, ROWS, DIM, &base).unwrap();
    write_npy_f32(&q_path, 50, DIM, &queries).unwrap();
    let idx = dir.path().join("graph.bsk");
    let built = json(&ok(&[
        "build",
        "--input",
        s(&base_path),
        "--index",
        "graph",
        "--out",
        s(&idx),
        "--json",
    ]));
    assert_eq!(built["graph_degree"], 32, "{built}");
    fails(
        &[
            "build",
            "--input",
            s(&base_path),
            "--degree",
            "64",
            "--out",
            s(&idx),
        ],
        &["--degree is for --index graph"],
    );
    fails(
        &[
            "build",
            "--input",
            s(&base_path),
            "--index",
            "graph",
            "--keep",
            "none",
            "--out",
            s(&idx),
        ],
        &["--keep f32"],
    );
    fails(
        &[
            "build",
            "--input",
            s(&base_path),
            "--index",
            "graph",
            "--calib",
            s(&q_path),
            "--out",
            s(&idx),
        ],
        &["--calib is for flat alloc:BYTES and auto:BYTES"],
    );
    let hits = parse_hits(&ok(&[
        "query",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "5",
        "--effort",
        "16",
        "--json",
    ]));
    assert_eq!(hits.len(), 50);
    assert!(hits.iter().all(|(_, h)| h.len() == 5));
    let r = json(&ok(&[
        "eval",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "5",
        "--json",
    ]));
    assert_eq!(r["effort"], 48, "the default beam: {r}");
    let r = json(&ok(&[
        "bench",
        s(&idx),
        "--queries",
        s(&q_path),
        "-k",
        "5",
        "--effort",
        "8,2000",
        "--threads",
        "1",
        "--repeat",
        "1",
        "--single-queries",
        "4",
        "--no-float",
        "--json",
    ]));
    let curve = r["curve"].as_array().expect("a curve");
    assert_eq!(curve.len(), 2, "{r}");
    let wide = curve[1]["recall"].as_f64().unwrap();
    assert_eq!(wide, 1.0, "a beam over every row is exact: {r}");
    assert!(curve.iter().all(|c| c["qps"].as_f64().unwrap() > 0.0));
}
