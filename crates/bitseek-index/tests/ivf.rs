//! The IVF over RaBitQ codes against brute force: exactly the exhaustive scan of its own codes
//! when the effort covers every list (after appends and through a mapped file too), estimates
//! within RaBitQ's error bound, recall floors against exact float search, damaged files refused.

use bitseek_codes::quantizer::QuantizerKind;
use bitseek_index::input::Vectors;
use bitseek_index::ivf::IvfOptions;
use bitseek_index::{BuildOptions, Index, Metric, QuantizerChoice, SearchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// `n` vectors of `dim` around 40 random centres (clustered like real embeddings), ids
/// `3·row + 1`.
fn clustered(n: usize, dim: usize, seed: u64) -> Vectors {
    around(n, dim, seed, seed)
}

/// [`clustered`] with the centres drawn from `centres` and the rest from `seed`: queries drawn
/// around the base's centres are queries from the base's distribution.
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

fn build(v: Vectors, metric: Metric, lists: usize) -> Index {
    let opts = BuildOptions {
        metric,
        ..BuildOptions::default()
    };
    Index::build_with(
        v,
        Path::new("fixture"),
        &opts,
        &QuantizerChoice::Kind(QuantizerKind::Rabitq),
        Some(IvfOptions { lists: Some(lists) }),
        &|_| {},
    )
    .unwrap()
}

fn raw(k: usize) -> SearchParams {
    SearchParams {
        k,
        rescore: false,
        ..SearchParams::default()
    }
}

/// The IVF search with every list probed returns exactly the top `k` of the exhaustive estimates.
fn assert_exact(index: &Index, queries: &[f32], dim: usize, k: usize) {
    let lists = index.ivf_lists().unwrap();
    let all = index
        .search_batch_effort(queries, dim, &raw(k), Some(lists), None)
        .unwrap();
    let est = index.ivf_estimates(queries, dim).unwrap().unwrap();
    let ids = index.ids();
    let metric = index.meta().metric;
    let q2: Vec<f32> = queries
        .chunks_exact(dim)
        .map(|q| q.iter().map(|v| v * v).sum())
        .collect();
    for (qi, (hits, est)) in all.iter().zip(&est).enumerate() {
        let mut order: Vec<(f32, usize)> = est
            .iter()
            .enumerate()
            .map(|(r, &e)| match metric {
                Metric::L2 => (2.0 * e - index.norm2()[r], r),
                _ => (e, r),
            })
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<(u64, f32)> = order[..k]
            .iter()
            .map(|&(key, r)| {
                let score = match metric {
                    Metric::L2 => q2[qi] - key,
                    _ => key,
                };
                (ids[r], score)
            })
            .collect();
        let got: Vec<(u64, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(got, want, "query {qi}");
    }
}

#[test]
fn effort_over_every_list_is_the_exhaustive_scan_for_every_metric() {
    let dim = 72; // padded to 128: exercises zero padding
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let index = build(clustered(1500, dim, 1), metric, 20);
        let q = clustered(25, dim, 2).data;
        assert_exact(&index, &q, dim, 10);
    }
}

#[test]
fn estimates_stay_within_rabitq_error_bounds() {
    let dim = 128;
    let index = build(clustered(2000, dim, 3), Metric::Dot, 16);
    let q = clustered(10, dim, 4);
    let kept = index.kept_f32().unwrap();
    let all = index
        .search_batch_effort(&q.data, dim, &raw(2000), Some(16), None)
        .unwrap();
    let pos: std::collections::HashMap<u64, usize> = index
        .ids()
        .iter()
        .enumerate()
        .map(|(r, &id)| (id, r))
        .collect();
    let (mut inside, mut total) = (0, 0);
    for (qv, hits) in q.data.chunks_exact(dim).zip(&all) {
        assert_eq!(hits.len(), 2000);
        for h in hits {
            let r = pos[&h.id];
            let truth: f32 = qv
                .iter()
                .zip(&kept[r * dim..(r + 1) * dim])
                .map(|(a, b)| a * b)
                .sum();
            total += 1;
            // The bound holds with probability ≥ 1 − 2e^{−c₀ε₀²} per estimate; allow the u8
            // table's rounding on top (a few hundredths at this scale).
            if (h.score - truth).abs() <= h.bound.unwrap() + 0.02 * truth.abs().max(1.0) {
                inside += 1;
            }
        }
    }
    // The flat RaBitQ index (one global centre) on the same data, as the yardstick.
    let flat = index
        .search_batch_effort(&q.data, dim, &raw(2000), None, None)
        .map(|_| ())
        .and_then(|_| {
            let v = clustered(2000, dim, 3);
            let f = Index::build(
                v,
                Path::new("f"),
                &BuildOptions {
                    metric: Metric::Dot,
                    ..BuildOptions::default()
                },
                &|_| {},
            )?;
            f.search_batch(&q.data, dim, &raw(2000))
        })
        .unwrap();
    let mut flat_inside = 0;
    for (qv, hits) in q.data.chunks_exact(dim).zip(&flat) {
        for h in hits {
            let r = pos[&h.id];
            let truth: f32 = qv
                .iter()
                .zip(&kept[r * dim..(r + 1) * dim])
                .map(|(a, b)| a * b)
                .sum();
            if (h.score - truth).abs() <= h.bound.unwrap() + 0.02 * truth.abs().max(1.0) {
                flat_inside += 1;
            }
        }
    }
    let (ivf, flat) = (
        inside as f64 / total as f64,
        flat_inside as f64 / total as f64,
    );
    assert!(
        ivf >= 0.9 && ivf >= flat - 0.02,
        "within bounds: IVF {ivf}, flat {flat}"
    );
}

#[test]
fn recall_grows_with_effort_and_reaches_a_floor() {
    let dim = 96;
    let base = clustered(4000, dim, 5);
    let queries = around(50, dim, 5, 6);
    let index = build(base.clone(), Metric::Cosine, 40);
    let prepared = index.prepare_queries(&queries.data, dim).unwrap();
    let truth = bitseek_index::eval::exact_ids(&index, None, &prepared, 10).unwrap();
    let params = SearchParams {
        k: 10,
        oversample: 4,
        ..SearchParams::default()
    };
    let recall = |effort| {
        let hits = index
            .search_batch_effort(&queries.data, dim, &params, Some(effort), None)
            .unwrap();
        bitseek_index::eval::recall(&hits, &truth)
    };
    let (r1, r8, r20, r40) = (recall(1), recall(8), recall(20), recall(40));
    assert!(r1 <= r8 && r8 <= r20 && r20 <= r40, "{r1} {r8} {r20} {r40}");
    assert!(r8 >= 0.9, "recall@10 at effort 8 of 40: {r8}");
    // 1-bit codes of 96 dims rescored from ×4 candidates: the flat scan's ceiling.
    assert!(r40 >= 0.95, "recall@10 over every list: {r40}");
}

#[test]
fn appends_go_to_lists_and_stay_exact() {
    let dim = 64;
    let all = clustered(3000, dim, 7);
    let first = Vectors {
        dim,
        data: all.data[..2000 * dim].to_vec(),
        ids: Some(all.ids.as_ref().unwrap()[..2000].to_vec()),
    };
    let rest = Vectors {
        dim,
        data: all.data[2000 * dim..].to_vec(),
        ids: Some(all.ids.as_ref().unwrap()[2000..].to_vec()),
    };
    let mut index = build(first, Metric::Cosine, 24);
    let before: Vec<usize> = index.ivf_list_sizes();
    index.append(rest, Path::new("more")).unwrap();
    let after = index.ivf_list_sizes();
    assert_eq!(after.iter().sum::<usize>(), 3000);
    assert!(before.iter().zip(&after).all(|(b, a)| a >= b));
    let q = clustered(20, dim, 8).data;
    assert_exact(&index, &q, dim, 10);
    // An appended vector finds itself.
    let own = &all.data[2500 * dim..2501 * dim];
    let hits = index
        .search_batch_effort(own, dim, &SearchParams::default(), None, None)
        .unwrap();
    assert_eq!(hits[0][0].id, all.ids.as_ref().unwrap()[2500]);
    // Ids at or below the largest are refused, naming the fix.
    let dup = Vectors {
        dim,
        data: own.to_vec(),
        ids: Some(vec![5]),
    };
    let e = index
        .append(dup, Path::new("dup.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("must increase and start above"), "{e}");
}

#[test]
fn saved_and_mapped_searches_match_and_damage_is_refused() {
    let dim = 64;
    let index = build(clustered(1200, dim, 9), Metric::L2, 12);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ivf.bitseek");
    index.save(&path).unwrap();
    let mapped = Index::open(&path).unwrap();
    assert_eq!(mapped.meta().kind, "bitseek-ivf");
    let q = clustered(10, dim, 10).data;
    for effort in [1, 3, 12] {
        for params in [raw(10), SearchParams::default()] {
            let a = index
                .search_batch_effort(&q, dim, &params, Some(effort), None)
                .unwrap();
            let b = mapped
                .search_batch_effort(&q, dim, &params, Some(effort), None)
                .unwrap();
            assert_eq!(a, b);
        }
    }
    assert_exact(&mapped, &q, dim, 5);
    // An appended mapped index is copied, appended and searched exactly.
    let mut grown = Index::open(&path).unwrap();
    let mut more = clustered(100, dim, 11);
    more.ids = None; // the next ids
    grown.append(more, Path::new("x")).unwrap();
    assert_eq!(grown.meta().rows, 1300);
    assert_exact(&grown, &q, dim, 5);

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
    // Consistent checksums but an inconsistent IVF (a list offset past the rows) are refused by
    // the shape checks.
    let file = bitseek_index::format::IndexFile::open(&path).unwrap();
    let meta = file.meta().clone();
    let mut sections: Vec<(String, Vec<u8>)> = file
        .section_names()
        .map(|n| (n.to_string(), file.section(n).unwrap().to_vec()))
        .collect();
    for (n, b) in sections.iter_mut() {
        if n == "ivf.offsets" {
            let last = b.len() - 8;
            b[last..].copy_from_slice(&5000u64.to_le_bytes());
        }
    }
    let refs: Vec<(&str, &[u8])> = sections
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let p = dir.path().join("offsets.bitseek");
    bitseek_index::format::write_index(&p, &meta, &refs).unwrap();
    let e = Index::open(&p)
        .err()
        .expect("bad offsets must be refused")
        .to_string();
    assert!(e.contains("ivf.offsets") && e.contains("rebuild"), "{e}");
    // Another layout version is refused with what to do.
    let mut meta2 = meta.clone();
    meta2["ivf"]["version"] = serde_json::json!(99);
    let p = dir.path().join("version.bitseek");
    let refs: Vec<(&str, &[u8])> = file
        .section_names()
        .map(|n| (n, file.section(n).unwrap()))
        .collect();
    bitseek_index::format::write_index(&p, &meta2, &refs).unwrap();
    let e = Index::open(&p)
        .err()
        .expect("other versions are refused")
        .to_string();
    assert!(e.contains("IVF layout version 99"), "{e}");
}

#[test]
fn filters_and_bad_efforts() {
    let dim = 64;
    let index = build(clustered(1000, dim, 12), Metric::Cosine, 10);
    let q = clustered(5, dim, 13).data;
    // Only even rows allowed: every hit is an allowed row's id, over every list exactly k.
    let allowed = vec![0x5555_5555_5555_5555u64; 1000usize.div_ceil(64)];
    let hits = index
        .search_batch_effort(&q, dim, &raw(10), Some(10), Some(&allowed))
        .unwrap();
    let ids = index.ids();
    for h in hits.iter().flatten() {
        let row = ids.iter().position(|&i| i == h.id).unwrap();
        assert_eq!(row % 2, 0);
    }
    assert!(hits.iter().all(|h| h.len() == 10));
    let e = index
        .search_batch_effort(&q, dim, &raw(10), Some(0), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("effort must be at least 1"), "{e}");
    // More effort than lists is every list.
    let a = index
        .search_batch_effort(&q, dim, &raw(10), Some(10), None)
        .unwrap();
    let b = index
        .search_batch_effort(&q, dim, &raw(10), Some(1000), None)
        .unwrap();
    assert_eq!(a, b);
}

mod nearest_centroid {
    use bitseek_index::ivf::kmeans::{argmin_distance, argmin_scalar, nearest};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The lane-wise argmin against its scalar twin, on lengths around the lane width and
        /// values drawn from a few levels so that ties (lowest list wins) are common.
        #[test]
        fn lane_argmin_is_the_scalar_one(
            pairs in prop::collection::vec((0u8..6, 0u8..4), 1..80),
            inf_at in prop::option::of(0usize..80),
        ) {
            let mut ip: Vec<f32> = pairs.iter().map(|&(a, _)| a as f32 * 0.5).collect();
            let cnorm: Vec<f32> = pairs.iter().map(|&(_, b)| b as f32).collect();
            if let Some(i) = inf_at.filter(|&i| i < ip.len()) {
                ip[i] = f32::NEG_INFINITY; // its distance is +inf: never better than a finite one
            }
            prop_assert_eq!(argmin_distance(&ip, &cnorm), argmin_scalar(&ip, &cnorm));
        }
    }

    /// `nearest` (chunked matrix products, lane-wise argmin) against the distances computed one
    /// by one, on more rows than one chunk holds.
    #[test]
    fn nearest_is_the_brute_force_nearest_centroid() {
        use rand::{Rng, SeedableRng};
        let (n, dim, lists) = (2500, 24, 37);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let data: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let cents: Vec<f32> = (0..lists * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let got = nearest(&data, dim, &cents);
        for (r, x) in data.chunks_exact(dim).enumerate() {
            let d: Vec<f32> = cents
                .chunks_exact(dim)
                .map(|c| x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum())
                .collect();
            let best = d.iter().copied().fold(f32::INFINITY, f32::min);
            // The product form rounds differently from the direct distance: the chosen list
            // must be nearest up to that rounding.
            prop_assert_close(d[got[r] as usize], best, r);
        }
    }

    fn prop_assert_close(got: f32, best: f32, row: usize) {
        assert!(
            got <= best + 1e-4,
            "row {row}: distance {got} against the nearest {best}"
        );
    }
}
