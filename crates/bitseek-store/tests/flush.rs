//! Background flushes (a second, frozen memtable): seeded random upserts, deletes, searches,
//! checkpoints and crash images across freezes and flushes held up at random, against a model;
//! a write completing while a flush is held up; back-pressure when both memtables are full;
//! crash recovery with a frozen memtable (its segment written but not swapped in); searches
//! during flushes never seeing a duplicate or missing row.

mod common;

use bitseek_store::{
    db::LiveManifest, Db, DbOptions, Durability, Keep, LiveCollection, Metric, Point, SearchRequest,
};
use common::*;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const DIM: usize = 8;
const FLUSH: usize = 10;

/// The live points: id → (vector, payload).
type PointsModel = HashMap<u64, (Vec<f32>, serde_json::Value)>;

fn open(root: &Path) -> Db {
    Db::open_with(
        root,
        DbOptions {
            flush_rows: FLUSH,
            ..DbOptions::default()
        },
    )
    .unwrap()
}

fn points(ids: impl IntoIterator<Item = u64>, rng: &mut Rng64, tag: u64) -> Vec<Point> {
    ids.into_iter()
        .map(|id| {
            let mut p = payload(id);
            p["tag"] = tag.into();
            Point {
                id,
                vector: vector(rng, DIM),
                payload: p,
            }
        })
        .collect()
}

/// Copies the collection's files as a crash would leave them (every acknowledged write is
/// synced under `Fsync`). The writer is idle while this runs on its thread, and the caller
/// holds flushes back, so only a flush's own new files may come and go meanwhile (a crash
/// leaves those in any state).
fn crash_image(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        match std::fs::copy(e.path(), to.join(e.file_name())) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("{}: {err}", e.path().display()),
        }
    }
}

/// The collection holds exactly `model` (a HashMap of id → (vector, payload)): every id by
/// lookup, the point count, every live point once in a search for all of them, and an exact
/// top 5.
fn check(c: &LiveCollection, model: &PointsModel, ids: u64, what: &str) {
    assert_eq!(c.info().points, model.len(), "{what}: point count");
    for id in 0..ids {
        let got = c.get(id).map(|r| (r.vector.unwrap(), r.payload));
        assert_eq!(got.as_ref(), model.get(&id), "{what}: id {id}");
    }
    let m: Model = model.iter().map(|(k, v)| (*k, v.clone())).collect();
    let q = vec![0.3; DIM];
    let all = SearchRequest {
        k: ids as usize + 5,
        oversample: Some(100.0),
        filter: None,
        effort: None,
    };
    let mut found: Vec<u64> = c.search(&q, &all).unwrap().iter().map(|h| h.id).collect();
    found.sort_unstable();
    let mut want: Vec<u64> = m.keys().copied().collect();
    want.sort_unstable();
    assert_eq!(found, want, "{what}: every live point once");
    let top = SearchRequest { k: 5, ..all };
    let exact = brute_force(&m, Metric::L2, &q, 5, |_| true);
    assert_same(&c.search(&q, &top).unwrap(), &exact, &m, what);
}

/// Seeded random operations with flushes held up at random points: upserts (replacing ids of
/// the frozen memtable, the memtable and segments), deletes, checkpoints, and crash images
/// opened and compared, all checked against the model after every step.
#[test]
fn random_writes_across_freezes_and_flushes_match_a_model() {
    const IDS: u64 = 30;
    for seed in 0..4u64 {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let c = db
            .create("c", config(DIM, Metric::L2, "rabitq", Keep::F32))
            .unwrap();
        let mut rng = rng(seed);
        let mut model = HashMap::new();
        let mut pause = None;
        let mut froze = 0;
        for step in 0..160 {
            let what = format!("seed {seed} step {step}");
            // A write into a full memtable while the frozen one is held would wait for ever.
            let info = c.info();
            if pause.is_some() && info.flushing_rows > 0 && info.memtable_rows >= FLUSH {
                pause = None;
            }
            match rng.gen_range(0..20) {
                0..=10 => {
                    let n = rng.gen_range(1..5);
                    let ids: Vec<u64> = (0..n).map(|_| rng.gen_range(0..IDS)).collect();
                    let ps = points(ids, &mut rng, step);
                    for p in &ps {
                        model.insert(p.id, (p.vector.clone(), p.payload.clone()));
                    }
                    c.upsert(ps).unwrap();
                }
                11..=14 => {
                    let ids: Vec<u64> = (0..3).map(|_| rng.gen_range(0..IDS)).collect();
                    let mut unique = ids.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    let existed = unique
                        .iter()
                        .filter(|id| model.remove(id).is_some())
                        .count();
                    assert_eq!(c.delete(&ids).unwrap(), existed, "{what}");
                }
                15..=16 => {
                    if pause.is_none() {
                        pause = Some(c.pause_flushes().unwrap());
                    } else {
                        pause = None;
                    }
                }
                17 => c.checkpoint().unwrap(),
                _ => {
                    let img = tmp.path().join(format!("crash-{step}"));
                    let held = pause.is_none().then(|| c.pause_flushes().unwrap());
                    crash_image(c.dir(), &img);
                    drop(held);
                    let copy = LiveCollection::open(&img).unwrap();
                    check(&copy, &model, IDS, &format!("{what}: crash image"));
                    assert_eq!(copy.wait_for_flushes(), None);
                    check(&copy, &model, IDS, &format!("{what}: crash image flushed"));
                    drop(copy);
                    std::fs::remove_dir_all(&img).unwrap();
                }
            }
            if c.info().flushing_rows > 0 {
                froze += 1;
            }
            check(&c, &model, IDS, &what);
        }
        assert!(froze > 0, "seed {seed}: no step saw a frozen memtable");
        drop(pause);
        assert_eq!(c.wait_for_flushes(), None);
        drop(c);
        drop(db);
        let db = open(tmp.path());
        check(
            &db.get("c").unwrap(),
            &model,
            IDS,
            &format!("seed {seed} reopened"),
        );
    }
}

/// A write completes while a flush is held up (the frozen rows searched from memory meanwhile);
/// the flush lands once released; a write that finds both memtables full waits for it.
#[test]
fn writes_go_on_while_a_flush_is_held_up_and_wait_only_when_both_memtables_are_full() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    let c = db
        .create("c", config(DIM, Metric::L2, "rabitq", Keep::F32))
        .unwrap();
    let mut rng = rng(1);
    let mut model = HashMap::new();
    let mut put = |ids: std::ops::Range<u64>, model: &mut PointsModel| {
        let ps = points(ids, &mut rng, 0);
        for p in &ps {
            model.insert(p.id, (p.vector.clone(), p.payload.clone()));
        }
        c.upsert(ps).unwrap();
    };
    let pause = c.pause_flushes().unwrap();
    put(0..FLUSH as u64, &mut model);
    assert_eq!(c.info().segments, 0);
    // This write freezes the full memtable and goes into a new one.
    put(100..103, &mut model);
    let info = c.info();
    assert_eq!(
        (info.flushing_rows, info.memtable_rows),
        (FLUSH, 3),
        "{info:?}"
    );
    assert_eq!(info.segments, 0, "the flush is held up");
    // Replacing and deleting ids of the frozen memtable win over its copies.
    put(0..2, &mut model);
    assert_eq!(c.delete(&[3, 4]).unwrap(), 2);
    model.remove(&3);
    model.remove(&4);
    check(&c, &model, 110, "flush held up");
    let m = LiveManifest::read(c.dir()).unwrap();
    assert!(m.frozen_log.is_some(), "the frozen memtable keeps its log");
    // Fill the new memtable too: the next write must wait for the flush.
    put(103..108, &mut model);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut r = common::rng(2);
            c.upsert(points(200..201, &mut r, 0)).unwrap();
            done.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !done.load(Ordering::SeqCst),
            "both memtables full: the write waits"
        );
        // Searches do not wait.
        check(&c, &model, 110, "a write waiting");
        drop(pause);
        writer.join().unwrap();
    });
    let mut r = common::rng(2);
    for p in points(200..201, &mut r, 0) {
        model.insert(p.id, (p.vector, p.payload));
    }
    assert_eq!(c.wait_for_flushes(), None);
    let info = c.info();
    assert!(info.segments >= 1, "{info:?}");
    check(&c, &model, 210, "after the flushes");
    let m = LiveManifest::read(c.dir()).unwrap();
    assert!(m.frozen_log.is_none());
    drop(c);
    drop(db);
    let db = open(tmp.path());
    check(&db.get("c").unwrap(), &model, 210, "reopened");
}

/// A crash while a flush is under way (its segment written, the manifest not yet swapped):
/// the copy replays the frozen log and the active log, flushes again and loses nothing; the
/// orphan segment file is replaced or removed.
#[test]
fn a_crash_with_a_frozen_memtable_recovers_every_acknowledged_write() {
    for durability in [Durability::Fsync, Durability::Grouped { window_ms: 1 }] {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let mut cfg = config(DIM, Metric::L2, "rabitq", Keep::F32);
        cfg.durability = durability;
        let c = db.create("c", cfg).unwrap();
        let mut rng = rng(3);
        let mut model = HashMap::new();
        let pause = c.pause_flushes().unwrap();
        for (i, ids) in [0..6, 6..12, 12..14, 0..3].into_iter().enumerate() {
            let ps = points(ids, &mut rng, i as u64);
            for p in &ps {
                model.insert(p.id, (p.vector.clone(), p.payload.clone()));
            }
            c.upsert(ps).unwrap();
        }
        assert_eq!(c.delete(&[7, 13]).unwrap(), 2);
        model.remove(&7);
        model.remove(&13);
        assert_eq!(c.info().flushing_rows, 12);
        // While a frozen log is named, the manifest is version 3 on disk, so a bitseek from
        // before background flushes refuses it instead of skipping the frozen writes.
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.dir().join("manifest.json")).unwrap()).unwrap();
        assert_eq!(raw["version"], 3, "{durability:?}");
        // Wait for the flusher to write the segment it is held from swapping in.
        let m = LiveManifest::read(c.dir()).unwrap();
        assert!(m.frozen_log.is_some());
        let orphan = loop {
            let found = std::fs::read_dir(c.dir()).unwrap().flatten().find(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("seg-") && n.ends_with(".bitseek") && !m.files().contains(&n)
            });
            if let Some(e) = found {
                break e.file_name();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let img = tmp.path().join("crash");
        crash_image(c.dir(), &img);
        let what = format!("{durability:?}");
        {
            let copy = LiveCollection::open(&img).unwrap();
            assert!(copy.recovery().is_empty(), "{what}: {:?}", copy.recovery());
            check(&copy, &model, 20, &what);
            assert_eq!(copy.wait_for_flushes(), None);
            check(&copy, &model, 20, &format!("{what}: flushed"));
            let m = LiveManifest::read(&img).unwrap();
            assert!(m.frozen_log.is_none(), "{what}");
            let raw: serde_json::Value =
                serde_json::from_slice(&std::fs::read(img.join("manifest.json")).unwrap()).unwrap();
            assert_eq!(raw["version"], 2, "{what}: back to version 2 once flushed");
            let names = m.files();
            let seg = orphan.to_string_lossy().into_owned();
            assert!(
                names.contains(&seg) || !img.join(&seg).exists(),
                "{what}: the orphan {seg} is named or gone"
            );
        }
        let copy = LiveCollection::open(&img).unwrap();
        check(&copy, &model, 20, &format!("{what}: reopened"));
        drop(pause);
        assert_eq!(c.wait_for_flushes(), None);
        check(&c, &model, 20, &format!("{what}: original"));
    }
}

/// Searches running throughout writes that replace ids and freeze and flush memtables never
/// see an id twice or miss one acknowledged before they started.
#[test]
fn searches_during_flushes_see_every_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    let c = db
        .create("c", config(DIM, Metric::L2, "rabitq", Keep::F32))
        .unwrap();
    let acked = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let req = SearchRequest {
                k: 1000,
                oversample: Some(100.0),
                filter: None,
                effort: None,
            };
            let mut searches = 0;
            while !stop.load(Ordering::SeqCst) {
                let before = acked.load(Ordering::SeqCst);
                let hits = c.search(&[0.1; DIM], &req).unwrap();
                let mut ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
                ids.sort_unstable();
                let n = ids.len();
                ids.dedup();
                assert_eq!(ids.len(), n, "an id came back twice");
                assert!(n as u64 >= before, "{n} hits, {before} ids acknowledged");
                assert!(
                    ids.iter().enumerate().all(|(i, &id)| i as u64 == id),
                    "a gap"
                );
                searches += 1;
            }
            searches
        });
        let mut rng = rng(4);
        for round in 0..60u64 {
            // Three new ids, and three old ones replaced.
            let next = acked.load(Ordering::SeqCst);
            let mut ids: Vec<u64> = (next..next + 3).collect();
            if next > 0 {
                ids.extend((0..3).map(|_| rng.gen_range(0..next)));
            }
            c.upsert(points(ids, &mut rng, round)).unwrap();
            acked.store(next + 3, Ordering::SeqCst);
        }
        stop.store(true, Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(c.wait_for_flushes(), None);
    assert!(c.info().segments >= 5, "{:?}", c.info());
    assert_eq!(c.info().points, 180);
}

/// Inline flushes (the old behaviour, kept to measure against) still work.
#[test]
fn inline_flushes_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        tmp.path(),
        DbOptions {
            flush_rows: FLUSH,
            background_flush: false,
        },
    )
    .unwrap();
    let c = db
        .create("c", config(DIM, Metric::L2, "rabitq", Keep::F32))
        .unwrap();
    let mut rng = rng(5);
    let mut model = HashMap::new();
    for i in 0..10u64 {
        let ps = points(i * 4..i * 4 + 4, &mut rng, i);
        for p in &ps {
            model.insert(p.id, (p.vector.clone(), p.payload.clone()));
        }
        c.upsert(ps).unwrap();
        assert_eq!(c.info().flushing_rows, 0, "never a frozen memtable");
    }
    assert!(c.info().segments >= 3);
    check(&c, &model, 40, "inline");
}
