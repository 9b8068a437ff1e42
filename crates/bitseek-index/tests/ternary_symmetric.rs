//! Symmetric ternary search (query encoded as a ternary code, scored by `ternary_sym_blocks`)
//! against brute force over the decoded codes: the flat scan's top-k is the top-k of
//! `Scale·qs·⟨t, t′⟩ + DotMean` computed value by value in `f64`, on one thread and two.

use bitseek_codes::quantizer::{Factor, QuantizerKind, QueryMode};
use bitseek_codes::BitPlanes;
use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, Index, Keep, Metric, SearchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const DIM: usize = 100;

/// Clustered vectors with a shared offset, like sentence embeddings.
fn clustered(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect();
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let c = &centres[rng.gen_range(0..centres.len())];
        out.extend(c.iter().map(|v| 0.3 + v + rng.gen_range(-0.6f32..0.6)));
    }
    out
}

/// The ternary values `2s − n` of row `r`'s two planes.
fn values(planes: &BitPlanes, r: usize) -> Vec<i64> {
    let (code, w) = (planes.get(r), planes.words);
    (0..w * 64)
        .map(|i| {
            let bit = |p: usize| ((code[p * w + i / 64] >> (i % 64)) & 1) as i64;
            2 * bit(1) - bit(0)
        })
        .collect()
}

#[test]
fn symmetric_ternary_scan_is_brute_force_on_codes() {
    let n = 5000; // more than one block chunk's worth of blocks, not a multiple of the block size
    let data = clustered(n + 4, 5);
    let (base, queries) = data.split_at(n * DIM);
    let opts = BuildOptions {
        quantizer: QuantizerKind::Ternary,
        metric: Metric::Cosine,
        keep: Keep::F32,
        ..Default::default()
    };
    let v = Vectors {
        dim: DIM,
        data: base.to_vec(),
        ids: None,
    };
    let index = Index::build(v, Path::new("test.npy"), &opts, &|_| {}).expect("index builds");
    let quantizer = index.quantizer();
    let codes = quantizer.encode(index.kept_f32().expect("f32 kept"));
    let planes = BitPlanes {
        len: codes.len,
        planes: 2,
        words: codes.words,
        data: codes.bits.clone(),
    };
    let rows: Vec<Vec<i64>> = (0..n).map(|r| values(&planes, r)).collect();
    let f = |k: Factor, r: usize| codes.factors[k as usize][r] as f64;
    let k = 20;
    let params = SearchParams {
        k,
        oversample: 1,
        rescore: false,
        mode: QueryMode::Symmetric,
        query_bits: None,
    };
    for (qi, q) in queries.chunks_exact(DIM).enumerate() {
        let q = index.prepare_queries(q, DIM).expect("valid query");
        let qc = quantizer.encode_query(&q, QueryMode::Symmetric, 0);
        assert!(
            qc.symmetric,
            "a symmetric ternary query is marked for its kernel"
        );
        let qt = quantizer.encode(&q);
        let qplanes = BitPlanes {
            len: 1,
            planes: 2,
            words: qt.words,
            data: qt.bits.clone(),
        };
        let tq = values(&qplanes, 0);
        // Keys and the f32 rounding bound of `Scale·(qs·ip) + DotMean`.
        let reference: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .map(|(r, t)| {
                let ip: i64 = t.iter().zip(&tq).map(|(a, b)| a * b).sum();
                let scaled = f(Factor::Scale, r) * qc.a as f64 * ip as f64;
                let key = scaled + f(Factor::DotMean, r);
                let tol = 8.0 * f32::EPSILON as f64 * (scaled.abs() + f(Factor::DotMean, r).abs());
                (key, tol)
            })
            .collect();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let got = pool
                .install(|| index.search_batch(&q, DIM, &params))
                .expect("search")
                .remove(0);
            assert_eq!(got.len(), k);
            let taken: std::collections::HashSet<u64> = got.iter().map(|h| h.id).collect();
            assert_eq!(taken.len(), k, "query {qi}: a row returned twice");
            let weakest = got
                .iter()
                .map(|h| reference[h.id as usize].0 + reference[h.id as usize].1)
                .fold(f64::INFINITY, f64::min);
            for pair in got.windows(2) {
                let (a, b) = (
                    reference[pair[0].id as usize],
                    reference[pair[1].id as usize],
                );
                assert!(a.0 >= b.0 - (a.1 + b.1), "query {qi}: out of order");
            }
            for (row, &(key, tol)) in reference.iter().enumerate() {
                assert!(
                    taken.contains(&(row as u64)) || key - tol <= weakest,
                    "query {qi} threads {threads}: row {row} ({key}) left out above {weakest}"
                );
            }
        }
    }
}
