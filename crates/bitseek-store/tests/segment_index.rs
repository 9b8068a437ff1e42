//! Segments with an IVF built in the background: answers against brute force and the library,
//! deletes and filters inside the search, searches and writes during a build, crash safety of
//! the swap, compaction rebuilding the index.

mod common;

use bitseek_index::{Index, SearchParams};
use bitseek_store::faults::{self, Fault, FaultError, FaultOp};
use bitseek_store::{
    Db, DbOptions, Filter, IndexKind, Keep, LiveCollection, Metric, Point, SearchRequest,
    SegmentIndex,
};
use common::{brute_force, config, payload, rng, vector, Model};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

const DIM: usize = 24;
const FLUSH: usize = 400;

fn db(root: &Path) -> Db {
    Db::open_with(
        root,
        DbOptions {
            flush_rows: FLUSH,
            ..DbOptions::default()
        },
    )
    .unwrap()
}

fn create(db: &Db, metric: Metric) -> Arc<LiveCollection> {
    create_kind(db, metric, IndexKind::Ivf)
}

fn create_kind(db: &Db, metric: Metric, kind: IndexKind) -> Arc<LiveCollection> {
    let mut cfg = config(DIM, metric, "rabitq", Keep::F32);
    cfg.index = SegmentIndex {
        kind,
        min_rows: 300,
        degree: None,
    };
    db.create("c", cfg).unwrap()
}

/// Upserts ids `from..to` with [`payload`] plus a `bucket` of `id % 100`, into `model`.
fn fill(c: &LiveCollection, model: &mut Model, from: u64, to: u64, seed: u64) {
    let mut r = rng(seed);
    let points: Vec<Point> = (from..to)
        .map(|id| {
            let mut p = payload(id);
            p["bucket"] = json!(id % 100);
            Point {
                id,
                vector: vector(&mut r, DIM),
                payload: p,
            }
        })
        .collect();
    for p in &points {
        model.insert(p.id, (p.vector.clone(), p.payload.clone()));
    }
    for chunk in points.chunks(100) {
        c.upsert(chunk.to_vec()).unwrap();
        // Segments of FLUSH rows each, as the assertions on their kinds expect.
        assert_eq!(c.wait_for_flushes(), None);
    }
}

/// Every code rescored exactly: the answer must be the brute force's.
fn exhaustive(k: usize, filter: Option<Filter>) -> SearchRequest {
    SearchRequest {
        k,
        oversample: Some(1024.0 / k as f32),
        filter,
        effort: Some(1 << 20),
    }
}

fn ids(hits: &[bitseek_store::ScoredPoint]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

fn assert_exact(c: &LiveCollection, model: &Model, metric: Metric, filter: Option<Filter>) {
    let mut r = rng(99);
    for _ in 0..5 {
        let q = vector(&mut r, DIM);
        let pass = |p: &Value| filter.as_ref().is_none_or(|f| f.accepts(p));
        let want: Vec<u64> = brute_force(model, metric, &q, 10, pass)
            .into_iter()
            .map(|x| x.0)
            .collect();
        let got = c.search(&q, &exhaustive(10, filter.clone())).unwrap();
        assert_eq!(ids(&got), want, "filter {filter:?}");
    }
}

fn kinds(c: &LiveCollection) -> Vec<String> {
    c.info().segment_indexes
}

#[test]
fn ivf_segments_answer_as_brute_force_with_deletes_and_filters() {
    answers_as_brute_force_with_deletes_and_filters(IndexKind::Ivf);
}

#[test]
fn graph_segments_answer_as_brute_force_with_deletes_and_filters() {
    answers_as_brute_force_with_deletes_and_filters(IndexKind::Graph);
}

/// Segments of `kind` searched at full effort give the brute force's answer, with deletes,
/// replacements and filters of every selectivity; at the default effort most of it.
fn answers_as_brute_force_with_deletes_and_filters(kind: IndexKind) {
    for metric in [Metric::Cosine, Metric::L2] {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let c = create_kind(&db, metric, kind);
        let mut model = Model::new();
        fill(&c, &mut model, 0, 1000, 1);
        c.checkpoint().unwrap();
        assert_eq!(c.wait_for_builds(), None);
        let k = kind.name();
        assert_eq!(kinds(&c), vec![k, k, "flat"], "200 rows stay flat");
        // Deletes and replacements: tombstones skipped inside the probe.
        let dead: Vec<u64> = (0..1000).step_by(7).collect();
        c.delete(&dead).unwrap();
        for id in &dead {
            model.remove(id);
        }
        fill(&c, &mut model, 500, 520, 2);
        assert_exact(&c, &model, metric, None);
        // Filters at 1%, 10%, 50% and one that passes nothing: inside the probe or a flat scan
        // of the allowed rows, the same exact answer.
        let filters = [
            json!({"field": "bucket", "eq": 3}),
            json!({"field": "bucket", "in": (0..10).collect::<Vec<_>>()}),
            json!({"field": "bucket", "in": (0..50).collect::<Vec<_>>()}),
            json!({"all": [{"field": "lang", "eq": "go"}, {"field": "bucket", "in": [1, 2, 4]}]}),
            json!({"field": "lang", "eq": "cobol"}),
        ];
        for f in filters {
            let f: Filter = serde_json::from_value(f).unwrap();
            assert_exact(&c, &model, metric, Some(f));
        }
        // The default effort: live rows that pass, and most of the true neighbours.
        let mut r = rng(5);
        let (mut found, mut total) = (0, 0);
        for _ in 0..20 {
            let q = vector(&mut r, DIM);
            let f: Filter = serde_json::from_value(json!({"field": "lang", "eq": "rust"})).unwrap();
            let want = brute_force(&model, metric, &q, 10, |p| f.accepts(p));
            let req = SearchRequest {
                k: 10,
                filter: Some(f.clone()),
                ..SearchRequest::default()
            };
            let got = c.search(&q, &req).unwrap();
            assert_eq!(got.len(), 10);
            for h in &got {
                assert!(model.contains_key(&h.id) && f.accepts(&h.payload));
            }
            found += want
                .iter()
                .filter(|w| got.iter().any(|h| h.id == w.0))
                .count();
            total += want.len();
        }
        let recall = found as f64 / total as f64;
        assert!(
            recall >= 0.8,
            "{k}: recall@10 {recall} at the default effort"
        );
    }
}

#[test]
fn effort_gives_the_librarys_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let c = create(&db, Metric::Cosine);
    let mut model = Model::new();
    fill(&c, &mut model, 0, 399, 3);
    c.checkpoint().unwrap();
    assert_eq!(c.wait_for_builds(), None);
    assert_eq!(kinds(&c), vec!["ivf"]);
    let m = bitseek_store::db::LiveManifest::read(c.dir()).unwrap();
    let index = Index::open(&c.dir().join(&m.segments[0].file)).unwrap();
    let lists = index.ivf_lists().unwrap();
    assert!(lists > 2, "{lists} lists");
    let mut r = rng(4);
    let queries: Vec<f32> = (0..4).flat_map(|_| vector(&mut r, DIM)).collect();
    for effort in [1, 2, lists] {
        let params = SearchParams {
            k: 5,
            oversample: 2,
            ..SearchParams::default()
        };
        let lib = index
            .search_batch_effort(&queries, DIM, &params, Some(effort), None)
            .unwrap();
        let req = SearchRequest {
            k: 5,
            oversample: Some(2.0),
            effort: Some(effort),
            ..SearchRequest::default()
        };
        let ours = c.search_batch(&queries, &req).unwrap();
        for (l, o) in lib.iter().zip(&ours) {
            // The store normalises the query before the index does again: the last bits of a
            // score may differ, the hits may not.
            let l_ids: Vec<u64> = l.iter().map(|h| h.id).collect();
            assert_eq!(l_ids, ids(o), "effort {effort}");
            for (a, b) in l.iter().zip(o) {
                assert!((a.score - b.score).abs() < 1e-5, "effort {effort}");
            }
        }
    }
    // A filter passing half the rows, effort 1: the store probes 1 / 0.5 = 2 lists inside the
    // allowed-rows mask, which is the library's answer with that mask and effort 2.
    let f: Filter =
        serde_json::from_value(json!({"field": "bucket", "in": (0..50).collect::<Vec<_>>()}))
            .unwrap();
    let mut mask = vec![0u64; index.ids().len().div_ceil(64)];
    for (r, id) in index.ids().iter().enumerate() {
        if id % 100 < 50 {
            mask[r / 64] |= 1 << (r % 64);
        }
    }
    let params = SearchParams {
        k: 5,
        oversample: 2,
        ..SearchParams::default()
    };
    let lib = index
        .search_batch_effort(&queries, DIM, &params, Some(2), Some(&mask))
        .unwrap();
    let req = SearchRequest {
        k: 5,
        oversample: Some(2.0),
        effort: Some(1),
        filter: Some(f.clone()),
    };
    let ours = c.search_batch(&queries, &req).unwrap();
    for (l, o) in lib.iter().zip(&ours) {
        let l_ids: Vec<u64> = l.iter().map(|h| h.id).collect();
        assert_eq!(l_ids, ids(o));
        assert!(o.iter().all(|h| f.accepts(&h.payload)));
    }
    let e = c
        .search(
            &queries[..DIM],
            &SearchRequest {
                k: 5,
                effort: Some(0),
                ..SearchRequest::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("effort 0") && e.contains("at least 1"), "{e}");
}

#[test]
fn searches_and_writes_go_on_while_a_build_is_held_up_then_it_is_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let c = create(&db, Metric::L2);
    let mut model = Model::new();
    let pause = c.pause_builds().unwrap();
    fill(&c, &mut model, 0, 450, 6);
    c.checkpoint().unwrap();
    // The build cannot finish: the new segment is searched flat, and writes are taken.
    assert_eq!(kinds(&c), vec!["flat", "flat"]);
    assert_exact(&c, &model, Metric::L2, None);
    fill(&c, &mut model, 450, 470, 7);
    c.delete(&[3, 4]).unwrap();
    model.remove(&3);
    model.remove(&4);
    assert_exact(&c, &model, Metric::L2, None);
    drop(pause);
    assert_eq!(c.wait_for_builds(), None);
    assert_eq!(kinds(&c), vec!["ivf", "flat"]);
    assert_exact(&c, &model, Metric::L2, None);
    // Compaction writes one new segment, which gets its index in turn.
    c.compact().unwrap();
    assert_eq!(c.wait_for_builds(), None);
    assert_eq!(kinds(&c), vec!["ivf"]);
    assert_exact(&c, &model, Metric::L2, None);
    // Reopened, the built index is what the manifest names.
    drop(c);
    drop(db);
    let db = self::db(dir.path());
    let c = db.get("c").unwrap();
    assert_eq!(kinds(&c), vec!["ivf"]);
    assert_exact(&c, &model, Metric::L2, None);
}

#[test]
fn a_swap_cut_short_leaves_the_flat_segment_and_the_orphan_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let col = dir.path().join("c");
    {
        let db = db(dir.path());
        let c = create(&db, Metric::Cosine);
        let pause = c.pause_builds().unwrap();
        fill(&c, &mut model, 0, 450, 8);
        c.checkpoint().unwrap();
        // The build's own file lands; the manifest naming it does not (its rename fails): as a
        // crash between the two would leave it.
        faults::inject(
            &col,
            Some(Fault {
                op: FaultOp::Rename,
                nth: 1,
                sticky: false,
                error: FaultError::Io,
            }),
        );
        drop(pause);
        let e = c.wait_for_builds().expect("the swap failed");
        assert!(e.contains("injected"), "{e}");
        faults::clear(&col);
        assert_eq!(kinds(&c), vec!["flat", "flat"]);
        assert_exact(&c, &model, Metric::Cosine, None);
    }
    let orphans = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("-ivf-"))
            .collect()
    };
    assert!(!orphans(&col).is_empty(), "the build file was written");
    // A torn temporary file too, as a crash in the middle of the build's write leaves.
    std::fs::write(col.join("seg-77-ivf-3.bitseek.tmp"), b"torn").unwrap();
    let db = db(dir.path());
    let c = db.get("c").unwrap();
    assert_exact(&c, &model, Metric::Cosine, None);
    assert_eq!(c.wait_for_builds(), None);
    assert_eq!(kinds(&c), vec!["ivf", "flat"]);
    let left = orphans(&col);
    assert_eq!(left.len(), 1, "only the swapped-in index is left: {left:?}");
    assert_exact(&c, &model, Metric::Cosine, None);
}

#[test]
fn a_collection_refuses_an_index_it_cannot_build() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let mut cfg = config(DIM, Metric::Cosine, "rabitq", Keep::Int8);
    cfg.index = SegmentIndex {
        kind: IndexKind::Ivf,
        min_rows: 1000,
        degree: None,
    };
    let e = db.create("a", cfg.clone()).unwrap_err().to_string();
    assert!(e.contains("keep \"f32\""), "{e}");
    cfg.keep = Keep::F32;
    cfg.index.min_rows = 10;
    let e = db.create("b", cfg.clone()).unwrap_err().to_string();
    assert!(e.contains("at least 64"), "{e}");
    cfg.index.min_rows = 1000;
    cfg.index.degree = Some(64);
    let e = db.create("c", cfg.clone()).unwrap_err().to_string();
    assert!(e.contains("graph segments only"), "{e}");
    cfg.index.kind = IndexKind::Graph;
    for bad in [0, 40, 256] {
        cfg.index.degree = Some(bad);
        let e = db.create("d", cfg.clone()).unwrap_err().to_string();
        assert!(e.contains("multiple of 32 up to 128"), "{bad}: {e}");
    }
}

#[test]
fn a_graph_segment_is_built_with_the_configured_degree() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let mut cfg = config(DIM, Metric::Cosine, "rabitq", Keep::F32);
    cfg.index = SegmentIndex {
        kind: IndexKind::Graph,
        min_rows: 300,
        degree: Some(64),
    };
    let c = db.create("c", cfg).unwrap();
    let mut model = Model::new();
    fill(&c, &mut model, 0, 399, 3);
    c.checkpoint().unwrap();
    assert_eq!(c.wait_for_builds(), None);
    assert_eq!(kinds(&c), vec!["graph"]);
    let m = bitseek_store::db::LiveManifest::read(c.dir()).unwrap();
    assert_eq!(
        m.index.degree,
        Some(64),
        "the degree is kept in the manifest"
    );
    let index = Index::open(&c.dir().join(&m.segments[0].file)).unwrap();
    assert_eq!(index.graph_degree(), Some(64));
    assert_exact(&c, &model, Metric::Cosine, None);
    // Reopened, the collection keeps building graphs that wide.
    drop(c);
    drop(db);
    let db = self::db(dir.path());
    let c = db.get("c").unwrap();
    fill(&c, &mut model, 399, 699, 4);
    c.checkpoint().unwrap();
    assert_eq!(c.wait_for_builds(), None);
    let m = bitseek_store::db::LiveManifest::read(c.dir()).unwrap();
    for s in &m.segments {
        let index = Index::open(&c.dir().join(&s.file)).unwrap();
        assert_eq!(index.graph_degree(), Some(64), "{}", s.file);
    }
    assert_exact(&c, &model, Metric::Cosine, None);
}
