//! `search_batch_allowed`: the scan returns only allowed rows, and the best of them, for every
//! kind of code (counting selector for sign codes, heap for the others) and metric.

use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, Index, Keep, Metric, SearchParams};
use rand::{Rng, SeedableRng};

#[test]
fn only_allowed_rows_come_back_and_they_are_the_exact_best() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (dim, rows) = (32, 300);
    let data: Vec<f32> = (0..dim * rows)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let ids: Vec<u64> = (0..rows as u64).map(|i| i * 3 + 1).collect();
    for quantizer in ["sign", "rabitq", "residual2", "int8"] {
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
            let opts = BuildOptions {
                quantizer: quantizer.parse().unwrap(),
                metric,
                keep: Keep::F32,
                ..BuildOptions::default()
            };
            let v = Vectors {
                dim,
                data: data.clone(),
                ids: Some(ids.clone()),
            };
            let index = Index::build(v, std::path::Path::new("test"), &opts, &|_| {}).unwrap();
            let kept = index.kept_f32().unwrap().to_vec();
            // Every third row allowed, plus a word past the end that must not matter.
            let mut allowed = vec![0u64; rows.div_ceil(64)];
            for r in (0..rows).filter(|r| r % 3 == 0) {
                allowed[r / 64] |= 1 << (r % 64);
            }
            let allowed_rows: Vec<usize> = (0..rows).filter(|r| r % 3 == 0).collect();
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let qn = if metric == Metric::Cosine {
                let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                q.iter().map(|x| x / n).collect()
            } else {
                q.clone()
            };
            let k = 10;
            // Oversampling past the allowed count: the rescored answer must be exact.
            let params = SearchParams {
                k,
                oversample: 200,
                ..SearchParams::default()
            };
            let hits = index
                .search_batch_allowed(&q, dim, &params, Some(&allowed))
                .unwrap()
                .remove(0);
            let mut exact: Vec<(f32, u64)> = allowed_rows
                .iter()
                .map(|&r| {
                    let x = &kept[r * dim..(r + 1) * dim];
                    let s = match metric {
                        Metric::L2 => x.iter().zip(&qn).map(|(a, b)| (a - b) * (a - b)).sum(),
                        _ => x.iter().zip(&qn).map(|(a, b)| a * b).sum::<f32>(),
                    };
                    (s, ids[r])
                })
                .collect();
            exact.sort_by(|a, b| match metric {
                Metric::L2 => a.0.total_cmp(&b.0),
                _ => b.0.total_cmp(&a.0),
            });
            assert_eq!(hits.len(), k, "{quantizer} {metric}");
            for (h, e) in hits.iter().zip(&exact) {
                assert!(
                    (h.score - e.0).abs() < 1e-4,
                    "{quantizer} {metric}: {h:?} vs {e:?}"
                );
                assert_eq!(
                    (h.id - 1) / 3 % 3,
                    0,
                    "{quantizer} {metric}: row of {} not allowed",
                    h.id
                );
            }
            // Without rescoring, candidates still come only from allowed rows, and all of them
            // when k exceeds the allowed count.
            let raw = SearchParams {
                k: 150,
                rescore: false,
                ..SearchParams::default()
            };
            let hits = index
                .search_batch_allowed(&q, dim, &raw, Some(&allowed))
                .unwrap()
                .remove(0);
            assert_eq!(hits.len(), allowed_rows.len(), "{quantizer} {metric}");
            assert!(hits.iter().all(|h| (h.id - 1) / 3 % 3 == 0));
            let none = vec![0u64; allowed.len()];
            assert!(index
                .search_batch_allowed(&q, dim, &raw, Some(&none))
                .unwrap()[0]
                .is_empty());
        }
    }
}

#[test]
fn select_rows_answers_like_a_scan_restricted_to_those_rows() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let (dim, rows) = (40, 203);
    let data: Vec<f32> = (0..dim * rows)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let keep_rows: Vec<usize> = (0..rows).filter(|r| r % 4 != 1 && r % 7 != 3).collect();
    let mut mask = vec![0u64; rows.div_ceil(64)];
    for &r in &keep_rows {
        mask[r / 64] |= 1 << (r % 64);
    }
    for quantizer in ["sign", "rabitq", "residual3", "int8"] {
        for keep in [Keep::F32, Keep::Int8, Keep::None] {
            let opts = BuildOptions {
                quantizer: quantizer.parse().unwrap(),
                metric: Metric::L2,
                keep,
                ..BuildOptions::default()
            };
            let v = Vectors {
                dim,
                data: data.clone(),
                ids: None,
            };
            let index = Index::build(v, std::path::Path::new("test"), &opts, &|_| {}).unwrap();
            let small = index.select_rows(&keep_rows).unwrap();
            assert_eq!(small.meta().rows, keep_rows.len());
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("small.bitseek");
            small.save(&path).unwrap();
            let small = Index::open(&path).unwrap();
            let q: Vec<f32> = (0..2 * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            for rescore in [true, false] {
                let params = SearchParams {
                    k: 15,
                    oversample: 3,
                    rescore,
                    ..SearchParams::default()
                };
                let a = small.search_batch(&q, dim, &params).unwrap();
                let b = index
                    .search_batch_allowed(&q, dim, &params, Some(&mask))
                    .unwrap();
                assert_eq!(a, b, "{quantizer} keep {keep} rescore {rescore}");
            }
        }
    }
    let index = Index::build(
        Vectors {
            dim,
            data,
            ids: None,
        },
        std::path::Path::new("test"),
        &BuildOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert!(index.select_rows(&[3, 2]).is_err());
    assert!(index.select_rows(&[rows]).is_err());
}
