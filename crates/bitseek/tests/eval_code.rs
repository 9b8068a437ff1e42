//! End-to-end tests of `bitseek eval-code` on a tiny generated pairs file with vectors beside it.

mod common;
use common::{bitseek, describe};
use std::io::Write;
use std::path::{Path, PathBuf};

use bitseek_index::input::write_npy_f32;
use serde_json::Value;

fn ok_json(args: &[&str]) -> Value {
    let out = bitseek(args);
    assert!(out.status.success(), "{}", describe(args, &out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(args, &out)))
}

fn fails(args: &[&str], needles: &[&str]) {
    let out = bitseek(args);
    let text = describe(args, &out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{text}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{text}");
    }
}

const NAMES: [bool; 4] = [true, false, false, true];

fn jsonl(lang: &[&str; 4]) -> String {
    (0..4)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "lang": lang[i],
                "name": format!("f{i}"),
                "query": format!("query number {i}"),
                "code": format!("fn f{i}() {{\n    {i}\n}}"),
                "name_in_query": NAMES[i],
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// Codes are the unit vectors e0..e3. Queries: q0 = e0 (rank 1), q1 = e1 + 0.1·e2 (rank 1),
/// q2 = e3 (its code scores 0 like c0 and c1, c3 scores 1: rank 4, ties against), q3 = e0 + e3
/// (c0 ties c3: rank 2). MRR = (1 + 1 + 1/4 + 1/2) / 4 = 0.6875; name-free (rows 1, 2): 0.625.
fn write_set(dir: &Path, file: &str, gz: bool, lang: &[&str; 4]) -> PathBuf {
    let path = dir.join(file);
    let text = jsonl(lang);
    if gz {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(&path, text).unwrap();
    }
    let stem = file
        .trim_end_matches(".gz")
        .trim_end_matches(".jsonl")
        .to_string();
    let mut codes = vec![0f32; 16];
    for i in 0..4 {
        codes[i * 4 + i] = 1.0;
    }
    let queries = [
        1.0, 0.0, 0.0, 0.0, //
        0.0, 1.0, 0.1, 0.0, //
        0.0, 0.0, 0.0, 1.0, //
        1.0, 0.0, 0.0, 1.0,
    ];
    write_npy_f32(&dir.join(format!("{stem}.code.f16.npy")), 4, 4, &codes).unwrap();
    write_npy_f32(&dir.join(format!("{stem}.query.f16.npy")), 4, 4, &queries).unwrap();
    path
}

fn close(v: &Value, want: f64) -> bool {
    (v.as_f64().unwrap() - want).abs() < 1e-9
}

#[test]
fn hand_computed_ranks_for_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_set(dir.path(), "dev-tiny.jsonl.gz", true, &["rust"; 4]);
    let p = pairs.to_str().unwrap();
    let out = ok_json(&["eval-code", p, "--json"]);
    assert_eq!(out["lang"], "rust");
    assert_eq!(out["rows"], 4);
    assert_eq!(out["name_free_queries"], 2);
    assert_eq!(out["candidates"], 100);
    assert!(out["vectors"]
        .as_str()
        .unwrap()
        .contains("dev-tiny.query.f16.npy"));
    let methods = out["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "float32",
            "sign",
            "sign + rescore 100",
            "rabitq",
            "rabitq + rescore 100",
            "residual2",
            "residual2 + rescore 100",
            "int8",
            "int8 + rescore 100"
        ]
    );
    let f = &methods[0];
    assert!(close(&f["all"]["mrr"], 0.6875), "{f}");
    assert!(close(&f["all"]["recall_at_1"], 0.5), "{f}");
    assert!(close(&f["all"]["recall_at_10"], 1.0), "{f}");
    assert!(close(&f["name_free"]["mrr"], 0.625), "{f}");
    assert!(close(&f["name_free"]["recall_at_1"], 0.5), "{f}");
    assert_eq!(f["name_free"]["queries"], 2);
    assert_eq!(f["bytes_per_vector"], "16");
    // With 100 candidates every one of the 4 functions is rescored: rescoring is float32 exactly.
    for m in methods
        .iter()
        .filter(|m| m["method"].as_str().is_some_and(|s| s.contains("rescore")))
    {
        assert_eq!(m["all"], f["all"], "{m}");
        assert_eq!(m["name_free"], f["name_free"], "{m}");
    }
}

#[test]
fn one_quantizer_limit_and_small_candidate_sets() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_set(dir.path(), "tiny.jsonl", false, &["python"; 4]);
    let p = pairs.to_str().unwrap();
    let out = ok_json(&[
        "eval-code",
        p,
        "--quantizer",
        "int8",
        "--limit",
        "2",
        "--json",
    ]);
    assert_eq!(out["rows"], 2);
    assert_eq!(out["rows_in_file"], 4);
    let methods = out["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 3);
    // Two pairs, both found first.
    assert!(close(&methods[0]["all"]["mrr"], 1.0));
    // The table names the file, the language and the subset.
    let out = bitseek(&["eval-code", p, "--quantizer", "sign", "--hybrid"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(python): 4 pairs"), "{text}");
    assert!(text.contains("name-free subset: 2 queries"), "{text}");
    assert!(text.contains("hybrid: float32 + bm25"), "{text}");
    assert!(text.contains("sign + rescore 100"), "{text}");
}

#[test]
fn refuses_mixed_languages_and_mismatched_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_set(
        dir.path(),
        "mixed.jsonl",
        false,
        &["rust", "rust", "python", "rust"],
    );
    fails(
        &["eval-code", pairs.to_str().unwrap()],
        &["mixed.jsonl", "line 3", "one language"],
    );
    let pairs = write_set(dir.path(), "short.jsonl", false, &["rust"; 4]);
    write_npy_f32(&dir.path().join("short.code.f16.npy"), 3, 4, &[1.0; 12]).unwrap();
    fails(
        &["eval-code", pairs.to_str().unwrap()],
        &["short.code.f16.npy", "3 rows", "4 pairs"],
    );
    std::fs::write(dir.path().join("bad.jsonl"), "{\"query\": 1}\n").unwrap();
    fails(
        &["eval-code", dir.path().join("bad.jsonl").to_str().unwrap()],
        &["bad.jsonl", "line 1"],
    );
}
