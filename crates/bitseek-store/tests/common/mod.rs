//! Shared helpers: random vectors, an exact brute-force reference over a model of the live points.

#![allow(dead_code)]

use bitseek_store::{CollectionConfig, Durability, Keep, Metric, ScoredPoint};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub type Rng64 = rand::rngs::StdRng;

pub fn rng(seed: u64) -> Rng64 {
    Rng64::seed_from_u64(seed)
}

pub fn vector(rng: &mut Rng64, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

pub fn config(dim: usize, metric: Metric, quantizer: &str, keep: Keep) -> CollectionConfig {
    CollectionConfig {
        dim,
        metric,
        quantizer: quantizer.into(),
        keep,
        durability: Durability::Fsync,
        index: Default::default(),
    }
}

pub fn payload(id: u64) -> Value {
    let lang = ["rust", "go", "python"][(id % 3) as usize];
    json!({"lang": lang, "id": id})
}

/// The live points as a model: id → (vector as given, payload).
pub type Model = BTreeMap<u64, (Vec<f32>, Value)>;

fn normalized(x: &[f32]) -> Vec<f32> {
    let n = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    x.iter().map(|v| v / n).collect()
}

/// Exact top-k over the model: (id, score) best first, ties by id.
pub fn brute_force(
    model: &Model,
    metric: Metric,
    query: &[f32],
    k: usize,
    pass: impl Fn(&Value) -> bool,
) -> Vec<(u64, f32)> {
    let q = match metric {
        Metric::Cosine => normalized(query),
        _ => query.to_vec(),
    };
    let mut all: Vec<(u64, f32)> = model
        .iter()
        .filter(|(_, (_, p))| pass(p))
        .map(|(&id, (v, _))| {
            let x = match metric {
                Metric::Cosine => normalized(v),
                _ => v.clone(),
            };
            let s = match metric {
                Metric::L2 => x.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum(),
                _ => x.iter().zip(&q).map(|(a, b)| a * b).sum(),
            };
            (id, s)
        })
        .collect();
    all.sort_by(|a, b| {
        let o = if metric == Metric::L2 {
            a.1.total_cmp(&b.1)
        } else {
            b.1.total_cmp(&a.1)
        };
        o.then(a.0.cmp(&b.0))
    });
    all.truncate(k);
    all
}

/// Checks hits against the exact answer: same scores rank by rank (within float tolerance), and
/// the same ids except where scores tie within tolerance.
pub fn assert_same(hits: &[ScoredPoint], exact: &[(u64, f32)], model: &Model, what: &str) {
    assert_eq!(
        hits.len(),
        exact.len(),
        "{what}: {} hits, expected {}",
        hits.len(),
        exact.len()
    );
    for (i, (h, e)) in hits.iter().zip(exact).enumerate() {
        let tol = 1e-4 * (1.0 + e.1.abs());
        assert!(
            (h.score - e.1).abs() <= tol,
            "{what}: rank {i} has score {} (id {}), exact {} (id {})",
            h.score,
            h.id,
            e.1,
            e.0
        );
        let (_, p) = model
            .get(&h.id)
            .unwrap_or_else(|| panic!("{what}: hit {} is not a live point", h.id));
        assert_eq!(&h.payload, p, "{what}: payload of {}", h.id);
        if h.id != e.0 {
            // Only a tie may swap ids.
            let other = exact.iter().find(|x| x.0 == h.id);
            assert!(
                other.is_some_and(|o| (o.1 - e.1).abs() <= tol),
                "{what}: rank {i} is id {} but exact is id {}",
                h.id,
                e.0
            );
        }
    }
}
