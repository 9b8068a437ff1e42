//! The code formats through the binary: every new format builds, evaluates with its cost and
//! rescores; `alloc` reports its widths; `tune` prints a table within the budget whose winner
//! `auto:BYTES` builds; bad budgets are refused with the fix.

mod common;
use bitseek_index::input::write_npy_f32;
use common::{bitseek, describe};
use serde_json::Value;
use std::path::Path;

const DIM: usize = 64;

/// Vectors around 30 random centres (SplitMix64 noise), with a shared offset.
fn vectors(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..30 * DIM).map(|_| next()).collect();
    (0..n)
        .flat_map(|i| {
            let c = (i * 7) % 30;
            (0..DIM)
                .map(|j| 0.3 + centres[c * DIM + j] + 0.3 * next())
                .collect::<Vec<f32>>()
        })
        .collect()
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = bitseek(args);
    let text = describe(args, &out);
    assert!(!text.contains("panicked"), "{text}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok_json(args: &[&str]) -> Value {
    let (code, out, err) = run(args);
    assert_eq!(code, Some(0), "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn new_formats_build_evaluate_with_costs_and_rescore() {
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = (dir.path().join("v.npy"), dir.path().join("q.npy"));
    write_npy_f32(&base, 2000, DIM, &vectors(1, 2000)).unwrap();
    write_npy_f32(&queries, 30, DIM, &vectors(2, 30)).unwrap();
    let index = dir.path().join("i.bitseek");
    for (q, keep) in [
        ("ternary", "fp8"),
        ("int4", "int4"),
        ("fp8", "f32"),
        ("fp8-e5m2", "int8"),
        ("alloc:24", "int4"),
    ] {
        let built = ok_json(&[
            "build",
            "--input",
            s(&base),
            "--quantizer",
            q,
            "--keep",
            keep,
            "--out",
            s(&index),
            "--json",
        ]);
        assert_eq!(built["quantizer"], q);
        assert_eq!(built["keep"], keep);
        if q.starts_with("alloc") {
            let widths = built["allocation"]["widths"].as_array().expect("widths");
            assert_eq!(widths.len(), DIM / 32);
            assert!(built["bytes_per_vector"].as_u64().unwrap() <= 24);
        } else {
            assert!(built["allocation"].is_null());
        }
        let eval = ok_json(&[
            "eval",
            s(&index),
            "--queries",
            s(&queries),
            "--vectors",
            s(&base),
            "--oversample",
            "1,8",
            "--json",
        ]);
        assert!(eval["scan_ms_per_query"].as_f64().unwrap() > 0.0, "{eval}");
        assert!(eval["ace_per_query"].as_u64().unwrap() > 0, "{eval}");
        let raw = eval["recall_raw"].as_f64().unwrap();
        let rescored = eval["results"][1]["recall_rescored"].as_f64().unwrap();
        assert!(
            raw > 0.2 && rescored >= raw - 0.05,
            "{q}/{keep}: raw {raw}, rescored {rescored}"
        );
    }
}

#[test]
fn tune_tables_formats_within_the_budget_and_auto_builds_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("v.npy");
    write_npy_f32(&base, 1500, DIM, &vectors(3, 1500)).unwrap();
    let t = ok_json(&["tune", "--input", s(&base), "--budget", "40", "--json"]);
    let formats = t["formats"].as_array().expect("formats");
    let names: Vec<&str> = formats
        .iter()
        .map(|f| f["quantizer"].as_str().unwrap())
        .collect();
    for want in [
        "sign",
        "rabitq",
        "ternary",
        "residual2",
        "residual3",
        "int4",
        "alloc:40",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names.contains(&"int8"),
        "int8 needs 64 bytes at 64 dims: {names:?}"
    );
    let mut best = 0.0;
    for f in formats {
        assert!(f["bytes_per_vector"].as_u64().unwrap() <= 40, "{f}");
        best = f64::max(best, f["recall_raw"].as_f64().unwrap());
        assert!(f["ace_per_query"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        formats[0]["recall_raw"].as_f64().unwrap(),
        best,
        "best first"
    );
    assert_eq!(formats[0]["pareto"], true);
    assert_eq!(t["winner"], formats[0]["quantizer"]);

    let index = dir.path().join("auto.bitseek");
    let built = ok_json(&[
        "build",
        "--input",
        s(&base),
        "--quantizer",
        "auto:40",
        "--out",
        s(&index),
        "--json",
    ]);
    assert_eq!(
        built["quantizer"], t["winner"],
        "auto builds tune's winner (same seed)"
    );
    assert_eq!(built["auto"]["winner"], t["winner"]);
    assert!(built["bytes_per_vector"].as_u64().unwrap() <= 40);
}

#[test]
fn budgets_too_small_and_too_few_rows_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("v.npy");
    write_npy_f32(&base, 300, DIM, &vectors(4, 300)).unwrap();
    let out = dir.path().join("o.bitseek");
    let (code, _, err) = run(&["tune", "--input", s(&base), "--budget", "7"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no format fits in 7 bytes") && err.contains("raise --budget"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "build",
        "--input",
        s(&base),
        "--quantizer",
        "alloc:6",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("alloc:6 is too small"), "{err}");
    let small = dir.path().join("small.npy");
    write_npy_f32(&small, 40, DIM, &vectors(5, 40)).unwrap();
    let (code, _, err) = run(&[
        "build",
        "--input",
        s(&small),
        "--quantizer",
        "alloc:24",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("alloc needs at least") && err.contains("has 40"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "build",
        "--input",
        s(&base),
        "--quantizer",
        "auto:x",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("auto:x") && err.contains("auto:64"), "{err}");
    assert!(!out.exists(), "nothing written after a refusal");
}
