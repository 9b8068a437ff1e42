//! The graph over RaBitQ codes against brute force: exactly the exact search over the kept copy
//! when the beam covers every row (the graph is connected), recall floors against exact float
//! search at small beams, filters, files saved, mapped and refused when damaged.

use bitseek_codes::quantizer::QuantizerKind;
use bitseek_index::graph::GraphOptions;
use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, Index, Keep, Metric, QuantizerChoice, SearchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// `n` vectors of `dim` around 40 random centres drawn from `centres` (clustered like real
/// embeddings), the rest from `seed`; ids `3·row + 1`.
fn around(n: usize, dim: usize, centres: u64, seed: u64) -> Vectors {
    let mut rng = ChaCha8Rng::seed_from_u64(centres);
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let mut data = Vec::with_capacity(n * dim);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xabcd);
    for _ in 0..n {
        let c = &centres[rng.gen_range(0..centres.len())];
        data.extend(c.iter().map(|&v| v + rng.gen_range(-0.6f32..0.6)));
    }
    Vectors {
        dim,
        data,
        ids: Some((0..n as u64).map(|r| 3 * r + 1).collect()),
    }
}

fn build_with(v: Vectors, metric: Metric, keep: Keep, degree: Option<usize>) -> Index {
    let opts = BuildOptions {
        metric,
        keep,
        ..BuildOptions::default()
    };
    Index::build_graph(
        v,
        Path::new("fixture"),
        &opts,
        &QuantizerChoice::Kind(QuantizerKind::Rabitq),
        GraphOptions { degree },
        &|_| {},
    )
    .unwrap()
}

fn build(v: Vectors, metric: Metric) -> Index {
    build_with(v, metric, Keep::F32, None)
}

fn params(k: usize) -> SearchParams {
    SearchParams {
        k,
        ..SearchParams::default()
    }
}

/// The exact top `k` over the kept `f32` copy (the same dot kernel the search uses), restricted
/// to `allowed` rows when given: `(id, key)` best first, ties by row.
fn brute(index: &Index, q: &[f32], k: usize, allowed: Option<&dyn Fn(usize) -> bool>) -> Vec<u64> {
    let dim = index.meta().dim;
    let q = index.prepare_queries(q, dim).unwrap();
    let dot = bitseek_codes::kernels::kernels().dot_f32;
    let kept = index.kept_f32().unwrap();
    let mut keys: Vec<(f32, usize)> = kept
        .chunks_exact(dim)
        .enumerate()
        .filter(|(r, _)| allowed.is_none_or(|a| a(*r)))
        .map(|(r, x)| {
            let ip = dot(&q, x);
            match index.meta().metric {
                Metric::L2 => (2.0 * ip - index.norm2()[r], r),
                _ => (ip, r),
            }
        })
        .collect();
    keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keys.iter().take(k).map(|&(_, r)| index.ids()[r]).collect()
}

/// With a beam as wide as the index the search ranks every row exactly: the brute force's ids.
fn assert_exact(index: &Index, queries: &[f32], k: usize) {
    let dim = index.meta().dim;
    assert_eq!(index.graph_connected(), Some(true));
    let rows = index.meta().rows;
    let hits = index
        .search_batch_effort(queries, dim, &params(k), Some(rows), None)
        .unwrap();
    for (qi, (q, hits)) in queries.chunks_exact(dim).zip(&hits).enumerate() {
        let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert_eq!(got, brute(index, q, k, None), "query {qi}");
    }
}

#[test]
fn effort_over_every_row_is_exact_search_for_every_metric() {
    let dim = 72; // padded to 128: exercises zero padding
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let index = build(around(1500, dim, 1, 1), metric);
        assert_eq!(index.meta().kind, "bitseek-graph");
        let q = around(20, dim, 1, 2).data;
        assert_exact(&index, &q, 10);
    }
}

#[test]
fn wider_blocks_and_tiny_indexes_stay_exact() {
    let dim = 64;
    // Two FastScan blocks per node.
    let index = build_with(around(800, dim, 3, 3), Metric::Cosine, Keep::F32, Some(64));
    assert_eq!(index.graph_degree(), Some(64));
    assert_exact(&index, &around(10, dim, 3, 4).data, 10);
    // Fewer rows than slots: empty slots are skipped.
    let tiny = build(around(20, dim, 5, 5), Metric::L2);
    assert_exact(&tiny, &around(5, dim, 5, 6).data, 5);
    let one = build(around(1, dim, 5, 7), Metric::Cosine);
    let hits = one
        .search_batch_effort(&around(1, dim, 5, 8).data, dim, &params(3), None, None)
        .unwrap();
    assert_eq!(hits[0].len(), 1);
}

#[test]
fn recall_reaches_floors_at_small_beams() {
    let dim = 96;
    let base = around(4000, dim, 7, 7);
    let queries = around(50, dim, 7, 8);
    for keep in [Keep::F32, Keep::Int8] {
        let index = build_with(base.clone(), Metric::Cosine, keep, None);
        let prepared = index.prepare_queries(&queries.data, dim).unwrap();
        let truth = bitseek_index::eval::exact_ids(&index, None, &prepared, 10);
        let truth = match truth {
            Ok(t) => t,
            // An int8 index keeps no f32 copy: the truth comes from the vectors themselves.
            Err(_) => bitseek_index::eval::exact_ids(&index, Some(&base), &prepared, 10).unwrap(),
        };
        let recall = |effort| {
            let hits = index
                .search_batch_effort(&queries.data, dim, &params(10), Some(effort), None)
                .unwrap();
            bitseek_index::eval::recall(&hits, &truth)
        };
        let (r16, r64, r256) = (recall(16), recall(64), recall(256));
        assert!(
            r16 <= r64 + 0.01 && r64 <= r256 + 0.01,
            "{keep:?}: {r16} {r64} {r256}"
        );
        assert!(r64 >= 0.95, "{keep:?}: recall@10 at beam 64: {r64}");
        assert!(r256 >= 0.98, "{keep:?}: recall@10 at beam 256: {r256}");
    }
}

#[test]
fn filters_traverse_through_and_return_only_allowed_rows() {
    let dim = 64;
    let index = build(around(1200, dim, 9, 9), Metric::Cosine);
    let q = around(10, dim, 9, 10).data;
    for every in [2usize, 3, 40] {
        let mut mask = vec![0u64; 1200usize.div_ceil(64)];
        for r in (0..1200).step_by(every) {
            mask[r / 64] |= 1 << (r % 64);
        }
        let allowed = |r: usize| r.is_multiple_of(every);
        for effort in [32, 1200] {
            let hits = index
                .search_batch_effort(&q, dim, &params(10), Some(effort), Some(&mask))
                .unwrap();
            for (qv, hits) in q.chunks_exact(dim).zip(&hits) {
                assert_eq!(hits.len(), 10, "every {every}, effort {effort}");
                let pos = |id: u64| ((id - 1) / 3) as usize;
                assert!(hits.iter().all(|h| allowed(pos(h.id))));
                if effort == 1200 {
                    let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
                    assert_eq!(got, brute(&index, qv, 10, Some(&allowed)));
                }
            }
        }
    }
}

#[test]
fn saved_and_mapped_searches_match_and_damage_is_refused() {
    let dim = 64;
    let index = build(around(1000, dim, 11, 11), Metric::L2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.bitseek");
    index.save(&path).unwrap();
    let mapped = Index::open(&path).unwrap();
    assert_eq!(mapped.meta().kind, "bitseek-graph");
    assert_eq!(mapped.meta().graph.as_ref().unwrap().version, 2);
    let q = around(10, dim, 11, 12).data;
    for effort in [None, Some(8), Some(1000)] {
        let a = index
            .search_batch_effort(&q, dim, &params(10), effort, None)
            .unwrap();
        let b = mapped
            .search_batch_effort(&q, dim, &params(10), effort, None)
            .unwrap();
        assert_eq!(a, b);
    }
    assert_exact(&mapped, &q, 5);

    // Appends are refused with what to do instead.
    let mut grown = Index::open(&path).unwrap();
    let e = grown
        .append(around(5, dim, 11, 13), Path::new("more.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("build it again"), "{e}");

    // A flipped byte anywhere is caught by the checksums.
    let bytes = std::fs::read(&path).unwrap();
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 100] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let p = dir.path().join(format!("bad{at}.bitseek"));
        std::fs::write(&p, &bad).unwrap();
        let e = Index::open(&p)
            .err()
            .expect("damage must be refused")
            .to_string();
        assert!(e.contains("bad"), "{e}");
    }
    // Consistent checksums around inconsistent arrays are refused by the shape checks.
    let file = bitseek_index::format::IndexFile::open(&path).unwrap();
    let meta = file.meta().clone();
    let rewrite = |name: &str, meta: &serde_json::Value, edit: &dyn Fn(&str, &mut Vec<u8>)| {
        let mut sections: Vec<(String, Vec<u8>)> = file
            .section_names()
            .map(|n| (n.to_string(), file.section(n).unwrap().to_vec()))
            .collect();
        for (n, b) in sections.iter_mut() {
            edit(n, b);
        }
        let refs: Vec<(&str, &[u8])> = sections
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let p = dir.path().join(name);
        bitseek_index::format::write_index(&p, meta, &refs).unwrap();
        Index::open(&p)
            .err()
            .expect("an inconsistent graph must be refused")
            .to_string()
    };
    // The first node's first neighbour id: after its code blocks, scales and adds.
    let degree = meta["graph"]["degree"].as_u64().unwrap() as usize;
    let padded = meta["graph"]["padded"].as_u64().unwrap() as usize;
    let first_id = degree / 32 * (padded / 4) * 16 + 2 * degree * 4;
    let e = rewrite("row.bitseek", &meta, &|n, b| {
        if n == "graph.nodes" {
            b[first_id..first_id + 4].copy_from_slice(&5000u32.to_le_bytes());
        }
    });
    assert!(e.contains("graph.nodes") && e.contains("5000"), "{e}");
    let e = rewrite("short.bitseek", &meta, &|n, b| {
        if n == "graph.nodes" {
            b.truncate(b.len() - 64);
        }
    });
    assert!(e.contains("graph.nodes"), "{e}");
    let mut m = meta.clone();
    m["graph"]["entry"] = serde_json::json!(1000);
    let e = rewrite("entry.bitseek", &m, &|_, _| {});
    assert!(e.contains("entry point"), "{e}");
    // Another layout version is refused with what to do.
    let mut m = meta.clone();
    m["graph"]["version"] = serde_json::json!(1);
    let e = rewrite("version.bitseek", &m, &|_, _| {});
    assert!(e.contains("version 1") && e.contains("rebuild"), "{e}");
    // A graph kind without its graph metadata.
    let mut m = meta.clone();
    m.as_object_mut().unwrap().remove("graph");
    let e = rewrite("nometa.bitseek", &m, &|_, _| {});
    assert!(e.contains("graph metadata"), "{e}");
}

#[test]
fn bad_builds_are_refused_naming_the_fix() {
    let v = around(100, 32, 13, 13);
    let build = |keep, degree| {
        Index::build_graph(
            v.clone(),
            Path::new("x"),
            &BuildOptions {
                keep,
                ..BuildOptions::default()
            },
            &QuantizerChoice::Kind(QuantizerKind::Rabitq),
            GraphOptions { degree },
            &|_| {},
        )
        .err()
        .expect("refused")
        .to_string()
    };
    assert!(build(Keep::None, None).contains("--keep f32"));
    assert!(build(Keep::F32, Some(48)).contains("multiple of 32"));
    assert!(build(Keep::F32, Some(256)).contains("multiple of 32"));
    let index = build_with(v.clone(), Metric::Cosine, Keep::F32, None);
    let e = index
        .search_batch_effort(&v.data[..32], 32, &params(10), Some(0), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("effort must be at least 1"), "{e}");
}
