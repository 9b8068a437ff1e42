//! Collections on disk: round trip, atomic replacement, filtered search, and clear errors for
//! damaged files.

use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, SearchParams};
use bitseek_store::{GenerationCollection, StoreError, MANIFEST};
use serde_json::{json, Value};
use std::path::Path;

const DIM: usize = 16;

/// Deterministic pseudo-random vectors (no two alike).
fn vectors(rows: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..rows * DIM)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

fn payloads(rows: usize) -> Vec<Value> {
    (0..rows)
        .map(|i| json!({"row": i, "lang": if i % 3 == 0 { "python" } else { "rust" }}))
        .collect()
}

fn create(dir: &Path, rows: usize, seed: u64, extra: Value) -> GenerationCollection {
    GenerationCollection::create_or_replace(
        dir,
        Vectors {
            dim: DIM,
            data: vectors(rows, seed),
            ids: None,
        },
        &payloads(rows),
        &BuildOptions::default(),
        extra,
    )
    .unwrap()
}

fn params(k: usize) -> SearchParams {
    SearchParams {
        k,
        oversample: 10,
        ..SearchParams::default()
    }
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn round_trip_keeps_vectors_payloads_and_extra() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = create(&dir, 50, 1, json!({"model": "m"}));
    assert_eq!((c.rows(), c.dim(), c.generation()), (50, DIM, 1));
    drop(c);
    let c = GenerationCollection::open(&dir).unwrap();
    assert_eq!(c.extra(), &json!({"model": "m"}));
    assert_eq!(
        c.payload(7).unwrap(),
        Some(json!({"row": 7, "lang": "rust"}))
    );
    assert_eq!(c.payload(50).unwrap(), None);
    let data = vectors(50, 1);
    let kept = c.vectors_of(&[3, 0]).unwrap();
    let want: Vec<f32> = [
        normalized(&data[3 * DIM..4 * DIM]),
        normalized(&data[..DIM]),
    ]
    .concat();
    for (a, b) in kept.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6);
    }
    // A stored vector finds itself first, with the exact (rescored) cosine.
    let hits = c.search(&data[5 * DIM..6 * DIM], &params(3), None).unwrap();
    assert_eq!(hits[0][0].id, 5);
    assert!((hits[0][0].score - 1.0).abs() < 1e-5);
    assert!(c.size_bytes() > 0);
    assert!(c.vectors_of(&[50]).is_err());
}

#[test]
fn replacing_bumps_the_generation_and_deletes_old_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create(dir, 20, 1, json!({}));
    let c = create(dir, 30, 2, json!({"second": true}));
    assert_eq!((c.generation(), c.rows()), (2, 30));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "manifest.json",
            "payloads-2.jsonl",
            "payloads-2.offsets",
            "seg-2.bitseek",
            "verified.json"
        ]
    );
}

#[test]
fn an_uncommitted_generation_leaves_the_old_one_current() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create(dir, 20, 1, json!({"gen": 1}));
    let pending = GenerationCollection::write_generation(
        dir,
        Vectors {
            dim: DIM,
            data: vectors(40, 9),
            ids: None,
        },
        &payloads(40),
        &BuildOptions::default(),
        json!({"gen": 2}),
    )
    .unwrap();
    assert_eq!(pending.generation(), 2);
    assert!(dir.join("seg-2.bitseek").is_file());
    // A crash here: new files written, manifest not swapped.
    std::mem::forget(pending);
    let c = GenerationCollection::open(dir).unwrap();
    assert_eq!((c.generation(), c.rows()), (1, 20));
    assert_eq!(c.extra(), &json!({"gen": 1}));
    drop(c);
    // The next writer neither reuses nor trips over the orphaned files, and removes them.
    let c = create(dir, 10, 3, json!({}));
    assert_eq!((c.generation(), c.rows()), (3, 10));
    assert!(!dir.join("seg-2.bitseek").exists());
    assert!(!dir.join("seg-1.bitseek").exists());
}

#[test]
fn a_dropped_pending_generation_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create(dir, 20, 1, json!({}));
    let pending = GenerationCollection::write_generation(
        dir,
        Vectors {
            dim: DIM,
            data: vectors(5, 9),
            ids: None,
        },
        &payloads(5),
        &BuildOptions::default(),
        json!({}),
    )
    .unwrap();
    drop(pending);
    assert!(!dir.join("seg-2.bitseek").exists());
    assert_eq!(GenerationCollection::open(dir).unwrap().rows(), 20);
}

#[test]
fn filters_return_k_hits_when_k_rows_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let c = create(tmp.path(), 300, 4, json!({}));
    let queries = vectors(3, 77);
    // Only 5 rows pass: every one of them must come back, however far down the codes rank them.
    let rare = |p: &Value| p["row"].as_u64().is_some_and(|r| r % 60 == 0);
    let hits = c.search(&queries, &params(10), Some(&rare)).unwrap();
    assert_eq!(hits.len(), 3);
    for h in &hits {
        let mut rows: Vec<u64> = h.iter().map(|h| h.id).collect();
        rows.sort();
        assert_eq!(rows, [0, 60, 120, 180, 240]);
        assert!(h.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let python = |p: &Value| p["lang"] == "python";
    let hits = c.search(&queries, &params(10), Some(&python)).unwrap();
    for h in &hits {
        assert_eq!(h.len(), 10);
        assert!(h.iter().all(|h| h.id % 3 == 0));
    }
    // The filtered top hits are the unfiltered hits that pass, in the same order.
    let all = c.search(&queries, &params(300), None).unwrap();
    for (f, a) in hits.iter().zip(&all) {
        let want: Vec<u64> = a
            .iter()
            .map(|h| h.id)
            .filter(|r| r % 3 == 0)
            .take(10)
            .collect();
        let got: Vec<u64> = f.iter().map(|h| h.id).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn an_empty_collection_opens_and_finds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = create(tmp.path(), 0, 1, json!({}));
    assert_eq!(c.rows(), 0);
    let c = GenerationCollection::open(tmp.path()).unwrap();
    assert_eq!(
        c.search(&vectors(2, 1), &params(5), None).unwrap(),
        [vec![], vec![]]
    );
}

#[test]
fn bad_input_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let err = GenerationCollection::create_or_replace(
        tmp.path(),
        Vectors {
            dim: DIM,
            data: vectors(3, 1),
            ids: None,
        },
        &payloads(2),
        &BuildOptions::default(),
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("3 vectors but 2 payloads"),
        "{err}"
    );
    assert!(matches!(
        GenerationCollection::open(tmp.path()),
        Err(StoreError::NotFound { .. })
    ));
}

fn open_err(dir: &Path) -> String {
    GenerationCollection::open(dir).unwrap_err().to_string()
}

#[test]
fn damaged_files_give_errors_that_name_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create(dir, 20, 1, json!({}));
    let manifest = std::fs::read(dir.join(MANIFEST)).unwrap();

    std::fs::write(dir.join(MANIFEST), b"{not json").unwrap();
    let e = open_err(dir);
    assert!(
        e.contains("manifest.json") && e.contains("bitseek index"),
        "{e}"
    );

    let mut v: Value = serde_json::from_slice(&manifest).unwrap();
    v["version"] = json!(9);
    std::fs::write(dir.join(MANIFEST), v.to_string()).unwrap();
    assert!(open_err(dir).contains("newer"), "{}", open_err(dir));
    std::fs::write(dir.join(MANIFEST), &manifest).unwrap();

    // A flipped byte in the segment.
    let seg = dir.join("seg-1.bitseek");
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let e = open_err(dir);
    assert!(
        e.contains("seg-1.bitseek") && e.contains("bitseek index"),
        "{e}"
    );
    bytes[last] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    GenerationCollection::open(dir).unwrap();

    // A damaged payload file.
    let pay = dir.join("payloads-1.jsonl");
    let good = std::fs::read(&pay).unwrap();
    std::fs::write(&pay, &good[..good.len() - 5]).unwrap();
    let e = open_err(dir);
    assert!(
        e.contains("payloads-1.jsonl") && e.contains("checksum"),
        "{e}"
    );
    std::fs::remove_file(&pay).unwrap();
    let e = open_err(dir);
    assert!(
        e.contains("payloads-1.jsonl") && e.contains("missing"),
        "{e}"
    );
    std::fs::write(&pay, &good).unwrap();

    std::fs::remove_file(&seg).unwrap();
    let e = open_err(dir);
    assert!(e.contains("seg-1.bitseek") && e.contains("missing"), "{e}");
}
