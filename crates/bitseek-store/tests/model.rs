//! Property test: random sequences of upserts, deletes, flushes, compactions, quantizer changes
//! and reopens, checked after every step against a `BTreeMap` model searched by brute force.

mod common;

use bitseek_store::{Db, DbOptions, Filter, Keep, Metric, Point, SearchRequest};
use common::*;
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
enum Step {
    Upsert(Vec<(u64, u64)>),
    Delete(Vec<u64>),
    Checkpoint,
    Compact,
    Reopen,
    SetQuantizer(usize),
}

const IDS: u64 = 40;
const QUANTIZERS: [&str; 4] = ["rabitq", "sign", "residual3", "int8"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec((0..IDS, any::<u64>()), 1..8).prop_map(Step::Upsert),
        3 => prop::collection::vec(0..IDS, 1..5).prop_map(Step::Delete),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Compact),
        2 => Just(Step::Reopen),
        1 => (0..QUANTIZERS.len()).prop_map(Step::SetQuantizer),
    ]
}

fn vector_of(seed: u64, dim: usize) -> Vec<f32> {
    let mut r = rng(seed);
    vector(&mut r, dim)
}

fn run(steps: Vec<Step>, metric: Metric) -> Result<(), TestCaseError> {
    let dim = 12;
    let tmp = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        flush_rows: 9,
        ..DbOptions::default()
    };
    let mut db = Db::open_with(tmp.path(), opts).unwrap();
    let mut c = db
        .create("p", config(dim, metric, "rabitq", Keep::F32))
        .unwrap();
    let mut model = Model::new();
    let filter: Filter = serde_json::from_value(json!({"field": "lang", "eq": "go"})).unwrap();
    let both: Filter = serde_json::from_value(json!({"all": [
        {"field": "lang", "in": ["go", "python"]}, {"field": "lang", "in": ["go", "rust"]}
    ]}))
    .unwrap();
    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Upsert(points) => {
                let points: Vec<Point> = points
                    .into_iter()
                    .map(|(id, seed)| Point {
                        id,
                        vector: vector_of(seed, dim),
                        payload: payload(seed),
                    })
                    .collect();
                for p in &points {
                    model.insert(p.id, (p.vector.clone(), p.payload.clone()));
                }
                c.upsert(points).unwrap();
            }
            Step::Delete(ids) => {
                let mut unique = ids.clone();
                unique.sort_unstable();
                unique.dedup();
                let existed = unique.iter().filter(|id| model.contains_key(id)).count();
                for id in &ids {
                    model.remove(id);
                }
                prop_assert_eq!(c.delete(&ids).unwrap(), existed);
            }
            Step::Checkpoint => c.checkpoint().unwrap(),
            Step::Compact => {
                let r = c.compact().unwrap();
                prop_assert_eq!(r.rows_after, model.len());
                prop_assert!(r.segments_after <= 1);
            }
            Step::Reopen => {
                drop(c);
                drop(db);
                db = Db::open_with(tmp.path(), opts).unwrap();
                c = db.get("p").unwrap();
            }
            Step::SetQuantizer(q) => {
                c.set_quantizer(QUANTIZERS[q]).unwrap();
                prop_assert_eq!(c.info().config.quantizer, QUANTIZERS[q]);
            }
        }
        prop_assert_eq!(c.info().points, model.len(), "step {}", i);
        for id in 0..IDS {
            let got = c.get(id).map(|r| r.payload);
            prop_assert_eq!(
                got.as_ref(),
                model.get(&id).map(|m| &m.1),
                "step {} id {}",
                i,
                id
            );
        }
        let q = vector_of(1000 + i as u64, dim);
        for f in [None, Some(filter.clone()), Some(both.clone())] {
            let req = SearchRequest {
                k: 5,
                oversample: Some(100.0),
                filter: f.clone(),
                effort: None,
            };
            let hits = c.search(&q, &req).unwrap();
            let exact = brute_force(&model, metric, &q, 5, |p| {
                f.as_ref().is_none_or(|f| f.accepts(p))
            });
            assert_same(&hits, &exact, &model, &format!("step {i}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn cosine_collection_matches_the_model(steps in prop::collection::vec(step(), 1..40)) {
        run(steps, Metric::Cosine)?;
    }

    #[test]
    fn l2_collection_matches_the_model(steps in prop::collection::vec(step(), 1..40)) {
        run(steps, Metric::L2)?;
    }
}
