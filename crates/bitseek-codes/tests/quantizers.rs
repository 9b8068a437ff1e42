//! The quantizers' estimates against exact inner products on generated data.

use bitseek_codes::quantizer::{
    lattice::optimal_levels, FitOptions, Quantizer, QuantizerKind, QueryMode, Ranking, ScaleSearch,
};
use bitseek_codes::BLOCK;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` unit vectors of dimension `dim` with a shared offset (like sentence embeddings).
fn embeddings(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let common: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let mut v: Vec<f32> = common
            .iter()
            .map(|c| 0.5 * c + rng.gen_range(-1.0f32..1.0))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        out.extend(v);
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Mean absolute error of the estimates of `⟨x, q⟩` over all pairs.
fn mean_abs_error(kind: QuantizerKind, mode: QueryMode, scale_search: ScaleSearch) -> f32 {
    let dim = 100;
    let data = embeddings(200, dim, 1);
    let queries = embeddings(20, dim, 2);
    let q = Quantizer::fit(
        kind,
        dim,
        &data,
        FitOptions {
            seed: 3,
            scale_search,
        },
    );
    let codes = q.encode(&data);
    let blocks = codes.len.div_ceil(BLOCK);
    let mut dist = vec![0u32; blocks * BLOCK];
    let mut est = vec![0f32; blocks * BLOCK];
    let mut err = 0.0;
    for (qi, query) in queries.chunks_exact(dim).enumerate() {
        let qc = q.encode_query(query, mode, qi as u64);
        q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
        for (r, x) in data.chunks_exact(dim).enumerate() {
            err += (est[r] + qc.offset - dot(x, query)).abs();
        }
        assert!(
            est[codes.len..].iter().all(|e| *e == f32::NEG_INFINITY),
            "padding rows must never rank"
        );
    }
    err / (200.0 * 20.0)
}

#[test]
fn more_bits_estimate_better() {
    let e1 = mean_abs_error(
        QuantizerKind::Rabitq,
        QueryMode::Asymmetric,
        ScaleSearch::Optimal,
    );
    let e2 = mean_abs_error(
        QuantizerKind::Residual { bits: 2 },
        QueryMode::Asymmetric,
        ScaleSearch::Optimal,
    );
    let e4 = mean_abs_error(
        QuantizerKind::Residual { bits: 4 },
        QueryMode::Asymmetric,
        ScaleSearch::Optimal,
    );
    let i8 = mean_abs_error(
        QuantizerKind::Int8,
        QueryMode::Asymmetric,
        ScaleSearch::Optimal,
    );
    assert!(e1 < 0.1, "rabitq error {e1}");
    assert!(e2 < 0.6 * e1, "residual2 {e2} vs rabitq {e1}");
    assert!(e4 < 0.5 * e2, "residual4 {e4} vs residual2 {e2}");
    assert!(i8 < 0.01, "int8 error {i8}");
}

#[test]
fn symmetric_queries_estimate_reasonably() {
    let asym = mean_abs_error(
        QuantizerKind::Residual { bits: 3 },
        QueryMode::Asymmetric,
        ScaleSearch::Optimal,
    );
    let sym = mean_abs_error(
        QuantizerKind::Residual { bits: 3 },
        QueryMode::Symmetric,
        ScaleSearch::Optimal,
    );
    assert!(sym < 3.0 * asym + 0.01, "sdc {sym} vs asymmetric {asym}");
}

#[test]
fn greedy_scale_is_valid_but_not_better_than_optimal() {
    let greedy = mean_abs_error(
        QuantizerKind::Residual { bits: 2 },
        QueryMode::Asymmetric,
        ScaleSearch::Greedy,
    );
    let optimal = mean_abs_error(
        QuantizerKind::Residual { bits: 2 },
        QueryMode::Asymmetric,
        ScaleSearch::Optimal,
    );
    assert!(greedy < 0.1, "greedy error {greedy}");
    assert!(
        optimal <= greedy * 1.05,
        "optimal {optimal} greedy {greedy}"
    );
}

#[test]
fn rabitq_estimates_stay_within_the_error_bound() {
    let dim = 128;
    let data = embeddings(300, dim, 5);
    let q = Quantizer::fit(QuantizerKind::Rabitq, dim, &data, FitOptions::default());
    let codes = q.encode(&data);
    let blocks = codes.len.div_ceil(BLOCK);
    let (mut dist, mut est) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
    let (mut inside, mut total) = (0, 0);
    for (qi, query) in embeddings(10, dim, 6).chunks_exact(dim).enumerate() {
        let qc = q.encode_query(query, QueryMode::Asymmetric, qi as u64);
        q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
        for (r, x) in data.chunks_exact(dim).enumerate() {
            let bound = q
                .error_bound(&codes.as_ref(), &qc, r)
                .expect("rabitq has a bound");
            total += 1;
            inside += ((est[r] + qc.offset - dot(x, query)).abs() <= bound) as usize;
        }
    }
    // ε₀ = 1.9 puts the bound about 1.9 standard deviations of the estimator out (the error is
    // close to Gaussian), so ~94% of pairs fall inside; a broken factor would put far fewer there.
    assert!(
        inside as f64 >= 0.93 * total as f64,
        "{inside} of {total} inside the bound"
    );
}

#[test]
fn sign_ranks_by_hamming() {
    let dim = 70;
    let data = embeddings(40, dim, 8);
    let q = Quantizer::fit(QuantizerKind::Sign, dim, &data, FitOptions::default());
    assert_eq!(q.ranking(), Ranking::Distance { max: 70 });
    let codes = q.encode(&data);
    let blocks = codes.len.div_ceil(BLOCK);
    let (mut dist, mut est) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
    let qc = q.encode_query(&data[..dim], QueryMode::Symmetric, 0);
    q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
    assert_eq!(dist[0], 0, "a vector is at distance 0 from itself");
    let Quantizer::Sign(s) = &q else {
        unreachable!()
    };
    for (r, x) in data.chunks_exact(dim).enumerate() {
        let want: u32 = s
            .bits(x)
            .iter()
            .zip(&qc.planes)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(dist[r], want);
    }
}

#[test]
fn lattice_codes_decode_onto_the_lattice() {
    let dim = 64;
    let data = embeddings(16, dim, 9);
    for bits in 1..=4 {
        let kind = if bits == 1 {
            QuantizerKind::Rabitq
        } else {
            QuantizerKind::Residual { bits }
        };
        let q = Quantizer::fit(kind, dim, &data, FitOptions::default());
        let codes = q.encode(&data);
        let planes = bitseek_codes::BitPlanes {
            len: codes.len,
            planes: codes.planes,
            words: codes.words,
            data: codes.bits.clone(),
        };
        for r in 0..codes.len {
            let code = planes.get(r);
            let sum: u32 = (0..dim)
                .map(|i| {
                    (0..bits as usize)
                        .map(|p| ((code[p] >> i) & 1) as u32 * (1 << p))
                        .sum::<u32>()
                })
                .sum();
            assert_eq!(sum as f32, codes.factors[1][r], "ΣU matches the planes");
        }
    }
}

#[test]
fn optimal_levels_beat_every_scale_on_a_grid() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..20 {
        let o: Vec<f32> = (0..50).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for kmax in [1u32, 3, 7] {
            let mut levels = vec![0u32; o.len()];
            optimal_levels(&o, kmax, &mut levels);
            let cos = |lv: &[u32]| {
                let ip: f64 = o
                    .iter()
                    .zip(lv)
                    .map(|(v, &k)| v.abs() as f64 * (k as f64 + 0.5))
                    .sum();
                let n: f64 = lv.iter().map(|&k| (k as f64 + 0.5).powi(2)).sum();
                ip / n.sqrt()
            };
            let best = cos(&levels);
            for step in 0..2000 {
                let t = step as f64 * 0.02;
                let lv: Vec<u32> = o
                    .iter()
                    .map(|v| ((t * v.abs() as f64).floor() as u32).min(kmax))
                    .collect();
                assert!(cos(&lv) <= best + 1e-9, "t = {t} beats the sweep");
            }
        }
    }
}

#[test]
fn quantizer_names_round_trip() {
    for name in [
        "sign",
        "rabitq",
        "residual2",
        "residual3",
        "residual4",
        "int8",
    ] {
        let kind: QuantizerKind = name.parse().expect("known name");
        assert_eq!(kind.to_string(), name);
    }
    assert!("residual1".parse::<QuantizerKind>().is_err());
    assert!("pq"
        .parse::<QuantizerKind>()
        .unwrap_err()
        .to_string()
        .contains("expected sign"));
}

#[test]
fn multi_bit_codes_need_finer_queries() {
    // With 4-bit codes, a 4-bit query is the larger error: 8 query bits must estimate better,
    // and the default for multi-bit codes is 8.
    let dim = 128;
    let data = embeddings(200, dim, 21);
    let queries = embeddings(10, dim, 22);
    let q = Quantizer::fit(
        QuantizerKind::Residual { bits: 4 },
        dim,
        &data,
        FitOptions::default(),
    );
    let codes = q.encode(&data);
    let blocks = codes.len.div_ceil(BLOCK);
    let (mut dist, mut est) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
    let mut error = |bits: Option<usize>| {
        let mut err = 0.0;
        for (qi, query) in queries.chunks_exact(dim).enumerate() {
            let qc = q.encode_query_bits(query, QueryMode::Asymmetric, bits, qi as u64);
            q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
            for (r, x) in data.chunks_exact(dim).enumerate() {
                err += (est[r] + qc.offset - dot(x, query)).abs();
            }
        }
        err
    };
    let (four, eight, default) = (error(Some(4)), error(Some(8)), error(None));
    assert!(eight < 0.7 * four, "8-bit queries {eight} vs 4-bit {four}");
    assert_eq!(default, eight);
}
