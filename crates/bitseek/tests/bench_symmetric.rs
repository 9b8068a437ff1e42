//! `bitseek bench --symmetric` and `eval --symmetric` on ternary codes: the raw recall they report
//! is the recall of brute force on the codes (each stored row's ternary values against the
//! query's, `Scale·qs·⟨t, t′⟩ + DotMean` in `f64`), and formats with one query mode refuse the flag.

mod common;

use bitseek_codes::quantizer::{Factor, QueryMode};
use bitseek_codes::BitPlanes;
use bitseek_index::input::write_npy_f32;
use common::{bitseek, describe};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const DIM: usize = 48;
const ROWS: usize = 3000;
const QUERIES: usize = 40;
const K: usize = 10;

fn run(args: &[&str]) -> String {
    let out = bitseek(args);
    assert!(out.status.success(), "{}", describe(args, &out));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Clustered vectors with a shared offset, like sentence embeddings.
fn clustered(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let centres: Vec<Vec<f32>> = (0..30)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect();
    (0..n)
        .flat_map(|_| {
            let c = centres[rng.gen_range(0..centres.len())].clone();
            c.into_iter()
                .map(|v| 0.3 + v + rng.gen_range(-0.7f32..0.7))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The ternary values `2s − n` of row `r`'s two planes (plane 0 the nonzero mask, 1 the sign).
fn values(planes: &BitPlanes, r: usize) -> Vec<i64> {
    let (code, w) = (planes.get(r), planes.words);
    (0..w * 64)
        .map(|i| {
            let bit = |p: usize| ((code[p * w + i / 64] >> (i % 64)) & 1) as i64;
            2 * bit(1) - bit(0)
        })
        .collect()
}

fn field(json: &str, name: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    v[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {name} in {v}"))
}

#[test]
fn symmetric_bench_and_eval_recall_is_brute_force_on_ternary_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let data = clustered(ROWS + QUERIES, &mut rng);
    let (base, queries) = data.split_at(ROWS * DIM);
    let (base_path, q_path, idx) = (
        dir.path().join("base.npy"),
        dir.path().join("q.npy"),
        dir.path().join("t.bsk"),
    );
    write_npy_f32(&base_path, ROWS, DIM, base).expect("write base");
    write_npy_f32(&q_path, QUERIES, DIM, queries).expect("write queries");
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    run(&[
        "build",
        "--input",
        &s(&base_path),
        "--quantizer",
        "ternary",
        "--metric",
        "cosine",
        "--keep",
        "f32",
        "--out",
        &s(&idx),
    ]);
    let k = K.to_string();
    let (idx_arg, q_arg) = (s(&idx), s(&q_path));
    let bench_with = |mode: &[&str]| {
        let mut args = vec!["bench", &idx_arg, "--queries", &q_arg];
        args.extend_from_slice(mode);
        args.extend([
            "--repeat",
            "1",
            "--threads",
            "1",
            "--single-queries",
            "2",
            "--no-float",
            "-k",
            &k,
            "--json",
        ]);
        run(&args)
    };
    let bench = bench_with(&["--symmetric"]);
    let asym = bench_with(&[]);
    let eval = run(&[
        "eval",
        &s(&idx),
        "--queries",
        &s(&q_path),
        "--symmetric",
        "--oversample",
        "1",
        "-k",
        &k,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(bench.trim()).expect("bench JSON");
    assert_eq!(v["query_mode"], "symmetric", "{v}");

    // Brute force on the codes, independent of the scan's kernels and top-k selection.
    let index = bitseek_index::Index::open(&idx).expect("index opens");
    let quantizer = index.quantizer();
    let codes = quantizer.encode(index.kept_f32().expect("f32 kept"));
    let planes = BitPlanes {
        len: codes.len,
        planes: 2,
        words: codes.words,
        data: codes.bits.clone(),
    };
    let rows: Vec<Vec<i64>> = (0..ROWS).map(|r| values(&planes, r)).collect();
    let f = |k: Factor, r: usize| codes.factors[k as usize][r] as f64;
    let prepared = index.prepare_queries(queries, DIM).expect("queries");
    let truth = bitseek_index::eval::exact_ids(&index, None, &prepared, K).expect("truth");
    let mut total = 0.0;
    for (q, want) in prepared.chunks_exact(DIM).zip(&truth) {
        let qc = quantizer.encode_query(q, QueryMode::Symmetric, 0);
        let qt = quantizer.encode(q);
        let tq = values(
            &BitPlanes {
                len: 1,
                planes: 2,
                words: qt.words,
                data: qt.bits.clone(),
            },
            0,
        );
        let mut keys: Vec<(f64, u64)> = rows
            .iter()
            .enumerate()
            .map(|(r, t)| {
                let ip: i64 = t.iter().zip(&tq).map(|(a, b)| a * b).sum();
                let key = f(Factor::Scale, r) * qc.a as f64 * ip as f64 + f(Factor::DotMean, r);
                (key, index.ids()[r])
            })
            .collect();
        keys.sort_by(|a, b| b.0.total_cmp(&a.0));
        let got = keys[..K].iter().filter(|(_, id)| want.contains(id)).count();
        total += got as f64 / want.len() as f64;
    }
    let brute = total / truth.len() as f64;
    let (b, e, a) = (
        field(&bench, "recall_raw"),
        field(&eval, "recall_raw"),
        field(&asym, "recall_raw"),
    );
    assert!(brute > 0.3, "ternary codes find neighbours: {brute}");
    assert!((b - brute).abs() < 1e-9, "bench {b} vs brute force {brute}");
    assert!((e - brute).abs() < 1e-9, "eval {e} vs brute force {brute}");
    assert!(
        a > 0.0 && a != b,
        "asymmetric {a} is a different search than symmetric {b}"
    );
}

#[test]
fn symmetric_queries_are_refused_for_one_mode_formats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let data = clustered(300, &mut rng);
    let (p, idx) = (dir.path().join("v.npy"), dir.path().join("i.bsk"));
    write_npy_f32(&p, 300, DIM, &data).expect("write");
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    run(&[
        "build",
        "--input",
        &s(&p),
        "--quantizer",
        "int8",
        "--out",
        &s(&idx),
    ]);
    // `bench`, `query` and `eval` all refuse it rather than run the asymmetric scan under the flag.
    let (idx, p) = (s(&idx), s(&p));
    for (command, extra) in [
        ("bench", &["--repeat", "1"][..]),
        ("query", &[]),
        ("eval", &[]),
    ] {
        let mut args = vec![command, &idx, "--queries", &p, "--symmetric"];
        args.extend_from_slice(extra);
        let out = bitseek(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", describe(&args, &out));
        assert!(
            err.contains("int8") && err.contains("one query mode") && err.contains("ternary"),
            "{command}: {err}"
        );
    }
}
