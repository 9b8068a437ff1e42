//! Live collections: every operation checked against an exact model of the live points.

mod common;

use bitseek_store::{Db, Durability, ErrorKind, Filter, Keep, Metric, Point, SearchRequest};
use bitseek_store::{DbOptions, LiveCollection};
use common::*;
use serde_json::json;
use std::sync::Arc;

fn req(k: usize) -> SearchRequest {
    // Oversampling past the row count: every live row is rescored, so answers are exact.
    SearchRequest {
        k,
        oversample: Some(1000.0),
        filter: None,
        effort: None,
    }
}

fn check_all(
    c: &LiveCollection,
    model: &Model,
    metric: Metric,
    rng: &mut Rng64,
    dim: usize,
    what: &str,
) {
    assert_eq!(c.info().points, model.len(), "{what}: point count");
    for (id, (v, p)) in model {
        let r = c
            .get(*id)
            .unwrap_or_else(|| panic!("{what}: id {id} missing"));
        assert_eq!(&r.payload, p, "{what}: payload of {id}");
        let stored = r.vector.expect("keep f32 returns the vector");
        let want: Vec<f32> = if metric == Metric::Cosine {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect()
        } else {
            v.clone()
        };
        for (a, b) in stored.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{what}: vector of {id}");
        }
    }
    for _ in 0..3 {
        let q = vector(rng, dim);
        let k = 7;
        let hits = c.search(&q, &req(k)).unwrap();
        assert_same(
            &hits,
            &brute_force(model, metric, &q, k, |_| true),
            model,
            what,
        );
        let f: Filter =
            serde_json::from_value(json!({"field": "lang", "in": ["go", "python"]})).unwrap();
        let r = SearchRequest {
            filter: Some(f.clone()),
            effort: None,
            ..req(k)
        };
        let hits = c.search(&q, &r).unwrap();
        assert_same(
            &hits,
            &brute_force(model, metric, &q, k, |p| f.accepts(p)),
            model,
            what,
        );
    }
}

#[test]
fn upsert_delete_flush_compact_reopen_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 24;
    for (metric, quantizer) in [
        (Metric::Cosine, "rabitq"),
        (Metric::Dot, "sign"),
        (Metric::L2, "residual2"),
    ] {
        let root = dir.path().join(format!("{metric}"));
        let mut rng = rng(7);
        let mut model = Model::new();
        let opts = DbOptions {
            flush_rows: 40,
            ..DbOptions::default()
        };
        let db = Db::open_with(&root, opts).unwrap();
        let c = db
            .create("c", config(dim, metric, quantizer, Keep::F32))
            .unwrap();
        let mut lsn = 0;
        for round in 0..12u64 {
            let points: Vec<Point> = (0..15)
                .map(|_| {
                    let id = rng.gen_range(0..60u64);
                    Point {
                        id,
                        vector: vector(&mut rng, dim),
                        payload: payload(id + round),
                    }
                })
                .collect();
            for p in &points {
                model.insert(p.id, (p.vector.clone(), p.payload.clone()));
            }
            let l = c.upsert(points).unwrap();
            assert!(l > lsn, "sequence numbers increase");
            lsn = l;
            let del: Vec<u64> = (0..4).map(|_| rng.gen_range(0..60u64)).collect();
            let existed = del
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .iter()
                .filter(|id| model.contains_key(id))
                .count();
            for id in &del {
                model.remove(id);
            }
            assert_eq!(c.delete(&del).unwrap(), existed);
            check_all(
                &c,
                &model,
                metric,
                &mut rng,
                dim,
                &format!("{metric} round {round}"),
            );
        }
        assert!(c.info().segments >= 2, "flushes made segments");
        drop(c);
        drop(db);
        let db = Db::open_with(&root, opts).unwrap();
        let c = db.get("c").unwrap();
        check_all(
            &c,
            &model,
            metric,
            &mut rng,
            dim,
            &format!("{metric} reopened"),
        );
        let report = c.compact().unwrap();
        assert_eq!(report.segments_after, 1);
        assert_eq!(report.rows_after, model.len());
        check_all(
            &c,
            &model,
            metric,
            &mut rng,
            dim,
            &format!("{metric} compacted"),
        );
        c.set_quantizer("int8").unwrap();
        assert_eq!(c.info().config.quantizer, "int8");
        check_all(&c, &model, metric, &mut rng, dim, &format!("{metric} int8"));
        drop(c);
        drop(db);
        let db = Db::open_with(&root, opts).unwrap();
        let c = db.get("c").unwrap();
        assert_eq!(c.info().config.quantizer, "int8");
        check_all(
            &c,
            &model,
            metric,
            &mut rng,
            dim,
            &format!("{metric} int8 reopened"),
        );
    }
}

use rand::Rng;

#[test]
fn db_names_errors_and_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let cfg = config(4, Metric::Cosine, "rabitq", Keep::F32);
    for bad in ["", "../x", "a/b", "a b", &"x".repeat(65)] {
        assert_eq!(
            db.create(bad, cfg.clone()).unwrap_err().kind(),
            ErrorKind::BadInput
        );
    }
    db.create("a-1_B", cfg.clone()).unwrap();
    assert_eq!(
        db.create("a-1_B", cfg.clone()).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(db.get("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(db.list().len(), 1);
    let second = Db::open(dir.path()).unwrap_err();
    assert!(second.to_string().contains("in use"), "{second}");
    let c = db.get("a-1_B").unwrap();
    let e = c
        .upsert(vec![Point {
            id: 1,
            vector: vec![1.0; 3],
            payload: json!(null),
        }])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.to_string().contains("dimension 3"), "{e}");
    let e = c
        .upsert(vec![Point {
            id: 1,
            vector: vec![f32::NAN; 4],
            payload: json!(null),
        }])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    let e = c
        .search(&[1.0, f32::INFINITY, 0.0, 0.0], &req(3))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    let e = c.search(&[1.0, 0.0], &req(3)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    let e = c.search(&[1.0, 0.0, 0.0, 0.0], &req(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(c.search(&[1.0, 0.0, 0.0, 0.0], &req(3)).unwrap().is_empty());
    let mut bad_q = cfg.clone();
    bad_q.quantizer = "nope".into();
    assert_eq!(
        db.create("q", bad_q).unwrap_err().kind(),
        ErrorKind::BadInput
    );
    db.drop_collection("a-1_B").unwrap();
    assert_eq!(db.get("a-1_B").unwrap_err().kind(), ErrorKind::NotFound);
    let e = c
        .upsert(vec![Point {
            id: 1,
            vector: vec![1.0; 4],
            payload: json!(null),
        }])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(!dir.path().join("a-1_B").exists());
    drop(db);
    Db::open(dir.path()).unwrap();
}

#[test]
fn set_quantizer_is_refused_without_an_f32_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    for keep in [Keep::None, Keep::Int8] {
        let name = format!("k{keep}");
        let c = db
            .create(&name, config(8, Metric::Dot, "rabitq", keep))
            .unwrap();
        c.upsert(vec![Point {
            id: 3,
            vector: vec![0.5; 8],
            payload: json!({}),
        }])
        .unwrap();
        let e = c.set_quantizer("sign").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.to_string().contains("cannot be re-encoded"), "{e}");
        assert_eq!(c.get(3).unwrap().vector, None);
        assert_eq!(c.info().config.quantizer, "rabitq");
    }
}

#[test]
fn snapshot_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        DbOptions {
            flush_rows: 10,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let c = db
        .create("s", config(8, Metric::L2, "rabitq", Keep::F32))
        .unwrap();
    let mut rng = rng(3);
    let mut model = Model::new();
    for id in 0..25u64 {
        let v = vector(&mut rng, 8);
        model.insert(id, (v.clone(), payload(id)));
        c.upsert(vec![Point {
            id,
            vector: v,
            payload: payload(id),
        }])
        .unwrap();
    }
    c.delete(&[3, 4]).unwrap();
    model.remove(&3);
    model.remove(&4);
    let dest = dir.path().join("copy");
    c.snapshot(&dest).unwrap();
    c.upsert(vec![Point {
        id: 100,
        vector: vec![1.0; 8],
        payload: json!(null),
    }])
    .unwrap();
    let copy = LiveCollection::open(&dest).unwrap();
    check_all(&copy, &model, Metric::L2, &mut rng, 8, "snapshot");
    assert!(
        c.snapshot(&dest).is_err(),
        "a non-empty destination is refused"
    );
}

#[test]
fn grouped_commit_acknowledges_concurrent_writers_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(4, Metric::Dot, "sign", Keep::F32);
    cfg.durability = Durability::Grouped { window_ms: 5 };
    {
        let db = Db::open(dir.path()).unwrap();
        let c = db.create("g", cfg.clone()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = c.clone();
                s.spawn(move || {
                    for i in 0..20u64 {
                        let id = t * 100 + i;
                        c.upsert(vec![Point {
                            id,
                            vector: vec![id as f32, 1.0, 0.0, 0.0],
                            payload: json!(id),
                        }])
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(c.info().points, 80);
    }
    let db = Db::open(dir.path()).unwrap();
    let c = db.get("g").unwrap();
    assert_eq!(c.info().points, 80);
    assert_eq!(c.info().config.durability, cfg.durability);
    for t in 0..4u64 {
        for i in 0..20u64 {
            assert_eq!(c.get(t * 100 + i).unwrap().payload, json!(t * 100 + i));
        }
    }
}

#[test]
fn searches_run_while_writes_and_compactions_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        DbOptions {
            flush_rows: 50,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let c: Arc<LiveCollection> = db
        .create("w", config(16, Metric::Cosine, "rabitq", Keep::F32))
        .unwrap();
    // Every batch writes the same 20 ids with one payload value: a consistent snapshot shows
    // the 20 ids all from one batch.
    let ids: Vec<u64> = (0..20).collect();
    let write = |b: u64, rng: &mut Rng64| {
        let points = ids
            .iter()
            .map(|&id| Point {
                id,
                vector: vector(rng, 16),
                payload: json!({"batch": b}),
            })
            .collect();
        c.upsert(points).unwrap();
    };
    write(0, &mut rng(0));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        for t in 0..2 {
            let c = c.clone();
            s.spawn(move || {
                let mut rng = rng(100 + t);
                let mut last = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let hits = c
                        .search(
                            &vector(&mut rng, 16),
                            &SearchRequest {
                                k: 20,
                                oversample: Some(50.0),
                                filter: None,
                                effort: None,
                            },
                        )
                        .unwrap();
                    assert_eq!(hits.len(), 20);
                    let b = hits[0].payload["batch"].as_u64().unwrap();
                    assert!(
                        hits.iter().all(|h| h.payload["batch"] == json!(b)),
                        "a search saw two batches"
                    );
                    assert!(b >= last, "snapshots go forward");
                    last = b;
                }
            });
        }
        let mut rng = rng(1);
        for b in 1..40 {
            write(b, &mut rng);
            if b % 10 == 0 {
                c.compact().unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn a_version_1_code_collection_opens_and_upgrades_on_write() {
    use bitseek_index::input::Vectors;
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("code");
    let data: Vec<f32> = (0..5 * 8).map(|i| ((i * 7 % 11) as f32) - 5.0).collect();
    let payloads: Vec<_> = (0..5)
        .map(|i| json!({"path": format!("f{i}.rs")}))
        .collect();
    bitseek_store::GenerationCollection::create_or_replace(
        &cdir,
        Vectors {
            dim: 8,
            data: data.clone(),
            ids: None,
        },
        &payloads,
        &bitseek_index::BuildOptions::default(),
        json!({}),
    )
    .unwrap();
    let db = Db::open(dir.path()).unwrap();
    let c = db.get("code").unwrap();
    assert_eq!(c.info().points, 5);
    assert_eq!(c.get(2).unwrap().payload, payloads[2]);
    let hits = c.search(&data[8..16], &req(1)).unwrap();
    assert_eq!(hits[0].id, 1);
    c.upsert(vec![Point {
        id: 9,
        vector: vec![1.0; 8],
        payload: json!("new"),
    }])
    .unwrap();
    c.delete(&[0]).unwrap();
    drop(c);
    drop(db);
    let db = Db::open(dir.path()).unwrap();
    let c = db.get("code").unwrap();
    assert_eq!(c.info().points, 5);
    assert!(c.get(0).is_none());
    assert_eq!(c.get(9).unwrap().payload, json!("new"));
    let e = bitseek_store::GenerationCollection::open(&cdir).unwrap_err();
    assert!(e.to_string().contains("live collection"), "{e}");
}

#[test]
fn many_small_writes_merge_memtable_batches_without_losing_any() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        flush_rows: 100_000,
        ..DbOptions::default()
    };
    let db = Db::open_with(dir.path(), opts).unwrap();
    let c = db
        .create("m", config(6, Metric::Dot, "rabitq", Keep::F32))
        .unwrap();
    let mut rng = rng(21);
    let mut model = Model::new();
    for i in 0..400u64 {
        let id = rng.gen_range(0..150u64);
        if i % 5 == 4 {
            model.remove(&id);
            c.delete(&[id]).unwrap();
        } else {
            let v = vector(&mut rng, 6);
            model.insert(id, (v.clone(), payload(i)));
            c.upsert(vec![Point {
                id,
                vector: v,
                payload: payload(i),
            }])
            .unwrap();
        }
    }
    assert_eq!(c.info().segments, 0, "everything is still in the memtable");
    check_all(&c, &model, Metric::Dot, &mut rng, 6, "memtable");
    drop(c);
    drop(db);
    let db = Db::open_with(dir.path(), opts).unwrap();
    let c = db.get("m").unwrap();
    check_all(&c, &model, Metric::Dot, &mut rng, 6, "replayed");
}

#[test]
fn compaction_without_an_f32_copy_drops_dead_rows_and_answers_the_same() {
    for keep in [Keep::None, Keep::Int8] {
        let dir = tempfile::tempdir().unwrap();
        let opts = DbOptions {
            flush_rows: 30,
            ..DbOptions::default()
        };
        let db = Db::open_with(dir.path(), opts).unwrap();
        let c = db
            .create("n", config(16, Metric::Cosine, "rabitq", keep))
            .unwrap();
        let mut rng = rng(4);
        let mut model = Model::new();
        for round in 0..6u64 {
            let points: Vec<Point> = (0..20)
                .map(|i| {
                    let id = round * 20 + i;
                    Point {
                        id,
                        vector: vector(&mut rng, 16),
                        payload: payload(id),
                    }
                })
                .collect();
            for p in &points {
                model.insert(p.id, (p.vector.clone(), p.payload.clone()));
            }
            c.upsert(points).unwrap();
            // Every flushed row stays stored (dead or not), as the row counts below expect.
            assert_eq!(c.wait_for_flushes(), None);
        }
        // Kill every row of the first segment and some of the others.
        let dead: Vec<u64> = (0..40).chain((40..120).filter(|i| i % 3 == 0)).collect();
        for id in &dead {
            model.remove(id);
        }
        c.delete(&dead).unwrap();
        assert_eq!(c.wait_for_flushes(), None);
        c.checkpoint().unwrap();
        let queries: Vec<Vec<f32>> = (0..5).map(|_| vector(&mut rng, 16)).collect();
        let before: Vec<_> = queries
            .iter()
            .map(|q| c.search(q, &req(10)).unwrap())
            .collect();
        let info = c.info();
        let report = c.compact().unwrap();
        assert_eq!(report.rows_before, 120, "{keep}: {report:?}");
        assert_eq!(report.rows_after, model.len(), "{keep}: {report:?}");
        assert!(report.segments_after < info.segments, "{keep}: {report:?}");
        assert!(
            report.bytes_after < report.bytes_before,
            "{keep}: {report:?}"
        );
        let after: Vec<_> = queries
            .iter()
            .map(|q| c.search(q, &req(10)).unwrap())
            .collect();
        assert_eq!(before, after, "{keep}: the same codes answer the same");
        drop(c);
        drop(db);
        let db = Db::open_with(dir.path(), opts).unwrap();
        let c = db.get("n").unwrap();
        assert_eq!(c.info().points, model.len());
        for (id, (_, p)) in &model {
            assert_eq!(&c.get(*id).unwrap().payload, p, "{keep}: id {id}");
        }
        for id in &dead {
            assert!(c.get(*id).is_none());
        }
        let again: Vec<_> = queries
            .iter()
            .map(|q| c.search(q, &req(10)).unwrap())
            .collect();
        assert_eq!(before, again, "{keep}: reopened");
    }
}
