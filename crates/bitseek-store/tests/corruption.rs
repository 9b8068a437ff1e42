//! Damaged files: every truncation, bit flip and zero fill of a segment, payload, tombstone, log
//! or manifest file gives a clear error or a recovery that says what it cut — never a panic, never
//! silently wrong contents.

mod common;

use bitseek_store::{Db, Keep, Metric, Point, SearchRequest};
use bitseek_store::{DbOptions, LiveCollection};
use common::*;
use rand::Rng;
use std::fs;
use std::path::Path;

/// The states the log can be cut back to: the model after the last flush, then after each
/// logged write.
struct Fixture {
    states: Vec<Model>,
}

fn build(dir: &Path) -> Fixture {
    let db = Db::open_with(dir, DbOptions { flush_rows: 12 }).unwrap();
    let c = db
        .create("c", config(8, Metric::Cosine, "rabitq", Keep::F32))
        .unwrap();
    let mut rng = rng(5);
    let mut model = Model::new();
    let mut states = vec![model.clone()];
    for step in 0..20u64 {
        let before = c.info().generation;
        if step % 4 == 3 {
            let ids = [rng.gen_range(0..30u64), rng.gen_range(0..30u64)];
            for id in &ids {
                model.remove(id);
            }
            c.delete(&ids).unwrap();
        } else {
            let points: Vec<Point> = (0..3)
                .map(|_| {
                    let id = rng.gen_range(0..30u64);
                    Point {
                        id,
                        vector: vector(&mut rng, 8),
                        payload: payload(id + step),
                    }
                })
                .collect();
            for p in &points {
                model.insert(p.id, (p.vector.clone(), p.payload.clone()));
            }
            c.upsert(points).unwrap();
        }
        if c.info().generation != before {
            // A flush happened before this write: the log starts again from the state before it.
            states = vec![states.last().unwrap().clone()];
        }
        states.push(model.clone());
    }
    let info = c.info();
    assert!(info.segments >= 2 && info.wal_records >= 2, "{info:?}");
    let dir_files: Vec<_> = fs::read_dir(dir.join("c")).unwrap().flatten().collect();
    assert!(
        dir_files
            .iter()
            .any(|e| e.file_name().to_string_lossy().starts_with("tombstones-")),
        "the fixture has tombstones"
    );
    Fixture { states }
}

/// Whether the collection holds exactly `model`.
fn holds(c: &LiveCollection, model: &Model) -> bool {
    if c.info().points != model.len() {
        return false;
    }
    for (id, (_, p)) in model {
        match c.get(*id) {
            Some(r) if &r.payload == p => {}
            _ => return false,
        }
    }
    let q = [0.3f32, -0.1, 0.5, 0.2, -0.7, 0.1, 0.0, 0.4];
    let req = SearchRequest {
        k: 5,
        oversample: Some(100.0),
        filter: None,
    };
    let hits = c.search(&q, &req).unwrap();
    let exact = brute_force(model, Metric::Cosine, &q, 5, |_| true);
    hits.len() == exact.len()
        && hits
            .iter()
            .zip(&exact)
            .all(|(h, e)| (h.score - e.1).abs() < 1e-4)
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    errors: usize,
    recovered: usize,
    unaffected: usize,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn damaged_files_give_clear_errors_or_reported_recoveries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("db");
    let fixture = build(&root);
    let pristine = tmp.path().join("pristine");
    copy_dir(&root.join("c"), &pristine);
    let full = fixture.states.last().unwrap();
    let mut rng = rng(99);
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    let mut names: Vec<String> = fs::read_dir(&pristine)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let kind = name.split(['-', '.']).next().unwrap().to_string();
        let original = fs::read(pristine.join(name)).unwrap();
        let len = original.len();
        let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
        for cut in [0, 1, len / 3, len / 2, len.saturating_sub(13), len - 1] {
            damages.push((format!("truncate to {cut}"), original[..cut].to_vec()));
        }
        for _ in 0..24 {
            let pos = rng.gen_range(0..len);
            let bit = rng.gen_range(0..8);
            let mut b = original.clone();
            b[pos] ^= 1 << bit;
            damages.push((format!("flip bit {bit} of byte {pos}"), b));
        }
        for _ in 0..6 {
            let pos = rng.gen_range(0..len);
            let n = rng.gen_range(1..=64).min(len - pos);
            let mut b = original.clone();
            b[pos..pos + n].fill(0);
            if b != original {
                damages.push((format!("zero {n} bytes at {pos}"), b));
            }
        }
        let mut b = original.clone();
        b[len / 2..].fill(0);
        damages.push(("zero the second half".into(), b));

        let mut tally = Tally::default();
        for (what, bytes) in damages {
            let dir = tmp.path().join("case");
            let _ = fs::remove_dir_all(&dir);
            copy_dir(&pristine, &dir);
            fs::write(dir.join(name), &bytes).unwrap();
            let case = format!("{name}: {what}");
            tally.cases += 1;
            let opened = std::panic::catch_unwind(|| LiveCollection::open(&dir))
                .unwrap_or_else(|_| panic!("{case}: opening panicked"));
            match opened {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&kind)
                            || msg.contains(name.as_str())
                            || msg.contains("manifest"),
                        "{case}: the error does not name the damaged file: {msg}"
                    );
                    tally.errors += 1;
                }
                Ok(c) => {
                    if holds(&c, full) {
                        // Only damage the reader never needs may go unreported: none in these
                        // files but a cut log tail that was reported.
                        if !c.recovery().is_empty() {
                            tally.recovered += 1;
                        } else {
                            assert!(
                                !kind.starts_with("wal") || bytes.len() >= original.len(),
                                "{case}: log lost bytes without a report"
                            );
                            tally.unaffected += 1;
                        }
                    } else {
                        assert!(
                            kind == "wal",
                            "{case}: opened with wrong contents and no error"
                        );
                        assert!(!c.recovery().is_empty(), "{case}: log cut without a report");
                        assert!(
                            fixture.states.iter().any(|s| holds(&c, s)),
                            "{case}: contents are not a prefix of the acknowledged writes"
                        );
                        tally.recovered += 1;
                    }
                }
            }
        }
        tallies.push((name.clone(), tally));
    }
    let mut total = Tally::default();
    for (name, t) in &tallies {
        println!(
            "{name:>22}: {} cases, {} clear errors, {} recovered with a report, {} unaffected",
            t.cases, t.errors, t.recovered, t.unaffected
        );
        total.cases += t.cases;
        total.errors += t.errors;
        total.recovered += t.recovered;
        total.unaffected += t.unaffected;
    }
    println!(
        "{:>22}: {} cases, {} clear errors, {} recovered with a report, {} unaffected",
        "all", total.cases, total.errors, total.recovered, total.unaffected
    );
    assert!(total.cases >= 200);
}
