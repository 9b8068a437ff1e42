//! Learned codes: bits on the core lattice, scores equal to cosines of the decoded codes, and a
//! plain f64 reference of the recurrent forward pass.

use bitseek_codes::layout::BitPlanes;
use bitseek_codes::quantizer::learned::{Learned, LearnedConfig, Mlp};
use bitseek_codes::quantizer::{Quantizer, QueryMode};
use bitseek_codes::BLOCK;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mlp(input: usize, hidden: usize, output: usize, rng: &mut ChaCha8Rng) -> Mlp {
    let mut w = |n: usize, s: f32| (0..n).map(|_| rng.gen_range(-s..s)).collect::<Vec<f32>>();
    Mlp {
        input,
        hidden,
        output,
        w1: w(hidden * input, 0.3),
        b1: w(hidden, 0.1),
        w2: w(output * hidden, 0.3),
        b2: w(output, 0.1),
    }
}

fn encoder(dim: usize, m: usize, bits: usize, seed: u64) -> Learned {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hidden = 24;
    let first = mlp(dim, hidden, m, &mut rng);
    let recon = (1..bits).map(|_| mlp(m, hidden, dim, &mut rng)).collect();
    let resid = (1..bits).map(|_| mlp(dim, hidden, m, &mut rng)).collect();
    let config = LearnedConfig {
        dim,
        m,
        bits,
        hidden,
    };
    Learned::new(config, first, recon, resid).unwrap()
}

/// The recurrence in f64, written out plainly: returns `Σ 2^-k sₖ` per row.
fn reference(l: &Learned, x: &[f32]) -> Vec<f64> {
    let mlp = |m: &Mlp, v: &[f64]| -> Vec<f64> {
        let h: Vec<f64> = (0..m.hidden)
            .map(|j| {
                let s: f64 = (0..m.input)
                    .map(|i| m.w1[j * m.input + i] as f64 * v[i])
                    .sum();
                (s + m.b1[j] as f64).max(0.0)
            })
            .collect();
        (0..m.output)
            .map(|o| {
                let s: f64 = (0..m.hidden)
                    .map(|j| m.w2[o * m.hidden + j] as f64 * h[j])
                    .sum();
                let skip = if m.input == m.output { v[o] } else { 0.0 };
                s + m.b2[o] as f64 + skip
            })
            .collect()
    };
    let sign = |v: f64| if v >= 0.0 { 1.0 } else { -1.0 };
    let n = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()).sqrt();
    let x: Vec<f64> = x.iter().map(|&v| v as f64 / n).collect();
    let mut acc: Vec<f64> = mlp(&l.first, &x).into_iter().map(sign).collect();
    for k in 1..l.config.bits {
        let rec = mlp(&l.recon[k - 1], &acc);
        let rn = rec.iter().map(|v| v * v).sum::<f64>().sqrt();
        let r: Vec<f64> = x.iter().zip(&rec).map(|(a, b)| a - b / rn).collect();
        let z = mlp(&l.resid[k - 1], &r);
        for (a, zi) in acc.iter_mut().zip(z) {
            *a += 0.5f64.powi(k as i32) * sign(zi);
        }
    }
    acc
}

fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[test]
fn codes_decode_onto_the_core_lattice() {
    for (bits, m) in [(1, 64), (2, 70), (3, 128), (4, 40)] {
        let dim = 48;
        let l = encoder(dim, m, bits, bits as u64);
        let x = rows(21, dim, 7);
        let codes = l.encode(&x);
        assert_eq!((codes.planes, codes.len), (bits, 21));
        let planes = BitPlanes {
            len: codes.len,
            planes: codes.planes,
            words: codes.words,
            data: codes.bits.clone(),
        };
        let c = ((1u32 << bits) - 1) as f64 / 2.0;
        let unit = 2f64.powi(2 - bits as i32);
        for r in 0..codes.len {
            let words = planes.get(r);
            let want = reference(&l, &x[r * dim..(r + 1) * dim]);
            let mut y2 = 0.0;
            let mut sum_u = 0.0;
            for (i, &w) in want.iter().enumerate() {
                let u: u32 = (0..bits)
                    .map(|p| (((words[p * codes.words + i / 64] >> (i % 64)) & 1) as u32) << p)
                    .sum();
                // acc = 2^(2−B)·(U − (2^B − 1)/2): the lattice of the residual quantizers.
                assert!(
                    (unit * (u as f64 - c) - w).abs() < 1e-9,
                    "bits {bits} row {r} dim {i}"
                );
                y2 += (u as f64 - c).powi(2);
                sum_u += u as f64;
            }
            // Bits past m stay zero, so the kernels add nothing for them.
            for i in m..codes.words * 64 {
                for p in 0..bits {
                    assert_eq!((words[p * codes.words + i / 64] >> (i % 64)) & 1, 0);
                }
            }
            assert!((codes.factors[1][r] as f64 - sum_u).abs() < 1e-3);
            assert!((codes.factors[0][r] as f64 - 1.0 / y2.sqrt()).abs() < 1e-6);
        }
    }
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    d / (na * nb)
}

#[test]
fn scores_are_cosines_of_codes() {
    let dim = 32;
    for bits in 1..=3 {
        let l = encoder(dim, 100, bits, 10 + bits as u64);
        let x = rows(2 * BLOCK + 3, dim, 1);
        let queries = rows(4, dim, 2);
        let q = Quantizer::Learned(Box::new(l.clone()));
        let codes = q.encode(&x);
        let blocks = codes.len.div_ceil(BLOCK);
        let mut dist = vec![0u32; blocks * BLOCK];
        let mut est = vec![0f32; blocks * BLOCK];
        for qv in queries.chunks_exact(dim) {
            let yq = reference(&l, qv);
            // Symmetric: exact cosine of the two codes.
            let qc = q.encode_query_bits(qv, QueryMode::Symmetric, None, 0);
            q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
            for r in 0..codes.len {
                let yx = reference(&l, &x[r * dim..(r + 1) * dim]);
                assert!((est[r] as f64 - cosine(&yx, &yq)).abs() < 1e-5);
            }
            assert!(est[codes.len..].iter().all(|e| *e == f32::NEG_INFINITY));
            // Asymmetric, 8 bits: cosine with the relaxation, up to its rounding.
            let relaxed: Vec<f64> = l.forward(qv).relaxed.iter().map(|&v| v as f64).collect();
            let qc = q.encode_query_bits(qv, QueryMode::Asymmetric, Some(8), 0);
            q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
            for r in 0..codes.len {
                let yx = reference(&l, &x[r * dim..(r + 1) * dim]);
                assert!((est[r] as f64 - cosine(&yx, &relaxed)).abs() < 0.02);
            }
        }
    }
}

#[test]
fn malformed_encoders_are_refused() {
    let l = encoder(16, 32, 2, 3);
    let mut bad = l.clone();
    bad.first.w1.pop();
    assert!(bad.check().unwrap_err().contains("first.w1"));
    let mut bad = l.clone();
    bad.recon.pop();
    assert!(bad.check().is_err());
    let mut bad = l.clone();
    bad.config.bits = 5;
    assert!(bad.check().unwrap_err().contains("1..=4"));
    let mut bad = l;
    bad.resid[0].b2[0] = f32::NAN;
    assert!(bad.check().unwrap_err().contains("non-finite"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Per-dimension scales folded into the factors and the query score exactly what the
    /// unfolded code `w ⊙ y` scores: the cosine of the two scaled codes (symmetric) or of the
    /// relaxation and the scaled code (asymmetric, up to the query's 16-bit rounding).
    #[test]
    fn folded_scales_equal_the_unfolded_cosine(
        bits in 1usize..=3,
        seed in 0u64..1000,
        ws in proptest::collection::vec(0.2f32..3.0, 70),
    ) {
        let (dim, m) = (24, 70);
        let l = encoder(dim, m, bits, seed).with_scales(ws.clone()).unwrap();
        let x = rows(BLOCK + 5, dim, seed + 1);
        let queries = rows(2, dim, seed + 2);
        let q = Quantizer::Learned(Box::new(l.clone()));
        let codes = q.encode(&x);
        let blocks = codes.len.div_ceil(BLOCK);
        let mut dist = vec![0u32; blocks * BLOCK];
        let mut est = vec![0f32; blocks * BLOCK];
        let scaled = |v: Vec<f64>| -> Vec<f64> {
            v.iter().zip(&ws).map(|(a, &w)| a * w as f64).collect()
        };
        for qv in queries.chunks_exact(dim) {
            let yq = scaled(reference(&l, qv));
            let relaxed: Vec<f64> = l.forward(qv).relaxed.iter().map(|&v| v as f64).collect();
            for (mode, want_q, tol) in [
                (QueryMode::Symmetric, yq.clone(), 2e-3),
                (QueryMode::Asymmetric, relaxed, 2e-3),
            ] {
                let qc = q.encode_query_bits(qv, mode, Some(16), 0);
                q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
                for r in 0..codes.len {
                    let yx = scaled(reference(&l, &x[r * dim..(r + 1) * dim]));
                    let want = cosine(&yx, &want_q);
                    proptest::prop_assert!(
                        (est[r] as f64 - want).abs() < tol,
                        "{mode:?} row {r}: folded {} unfolded {want}", est[r]
                    );
                }
            }
        }
    }
}

/// The recurrence in f64 with the encoder's step weights (`β_k`, or `2^-k`): the sign vector
/// `sₖ` of every step.
fn reference_signs(l: &Learned, x: &[f32]) -> Vec<Vec<f64>> {
    let mlp = |m: &Mlp, v: &[f64]| -> Vec<f64> {
        let h: Vec<f64> = (0..m.hidden)
            .map(|j| {
                let s: f64 = (0..m.input)
                    .map(|i| m.w1[j * m.input + i] as f64 * v[i])
                    .sum();
                (s + m.b1[j] as f64).max(0.0)
            })
            .collect();
        (0..m.output)
            .map(|o| {
                let s: f64 = (0..m.hidden)
                    .map(|j| m.w2[o * m.hidden + j] as f64 * h[j])
                    .sum();
                s + m.b2[o] as f64 + if m.input == m.output { v[o] } else { 0.0 }
            })
            .collect()
    };
    let beta = |k: usize| {
        l.plane_scales
            .get(k)
            .map_or(0.5f64.powi(k as i32), |&b| b as f64)
    };
    let sign = |v: f64| if v >= 0.0 { 1.0 } else { -1.0 };
    let n = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()).sqrt();
    let x: Vec<f64> = x.iter().map(|&v| v as f64 / n).collect();
    let s0: Vec<f64> = mlp(&l.first, &x).into_iter().map(sign).collect();
    let mut acc: Vec<f64> = s0.iter().map(|s| beta(0) * s).collect();
    let mut signs = vec![s0];
    for k in 1..l.config.bits {
        let rec = mlp(&l.recon[k - 1], &acc);
        let rn = rec.iter().map(|v| v * v).sum::<f64>().sqrt();
        let r: Vec<f64> = x.iter().zip(&rec).map(|(a, b)| a - b / rn).collect();
        let s: Vec<f64> = mlp(&l.resid[k - 1], &r).into_iter().map(sign).collect();
        for (a, si) in acc.iter_mut().zip(&s) {
            *a += beta(k) * si;
        }
        signs.push(s);
    }
    signs
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Learned plane weights, stored as the integers `W` and folded into the weighted kernel and
    /// the factors, score exactly what the unfolded code `w ⊙ Σ_k W_k sₖ` scores: its cosine with
    /// the query's code (symmetric) or with the query's weighted relaxation (asymmetric), up to
    /// the query's 8-bit rounding; and `W` is `β` rounded to 1/1024 of the heaviest plane.
    #[test]
    fn folded_plane_weights_equal_the_unfolded_cosine(
        bits in 2usize..=4,
        seed in 0u64..1000,
        betas in proptest::collection::vec(0.05f32..2.0, 4),
        with_dim_scales in proptest::bool::ANY,
    ) {
        let (dim, m) = (24, 70);
        let betas = betas[..bits].to_vec();
        let ws: Vec<f32> = (0..m).map(|i| 0.5 + (i % 7) as f32 / 5.0).collect();
        let mut l = encoder(dim, m, bits, seed).with_plane_scales(betas.clone()).unwrap();
        if with_dim_scales {
            l = l.with_scales(ws.clone()).unwrap();
        }
        let w = l.plane_weights();
        let max = betas.iter().copied().fold(0f32, f32::max);
        for k in 0..bits {
            let want = (1024.0 * betas[k] / max).round().max(1.0) as u32;
            proptest::prop_assert_eq!(w[bits - 1 - k], want, "plane weight of step {}", k);
        }
        let value = |x: &[f32]| -> Vec<f64> {
            let signs = reference_signs(&l, x);
            (0..m)
                .map(|i| {
                    let v: f64 = (0..bits).map(|k| w[bits - 1 - k] as f64 * signs[k][i]).sum();
                    v * if with_dim_scales { ws[i] as f64 } else { 1.0 }
                })
                .collect()
        };
        let x = rows(BLOCK + 5, dim, seed + 1);
        let queries = rows(2, dim, seed + 2);
        let q = Quantizer::Learned(Box::new(l.clone()));
        let codes = q.encode(&x);
        let blocks = codes.len.div_ceil(BLOCK);
        let mut dist = vec![0u32; blocks * BLOCK];
        let mut est = vec![0f32; blocks * BLOCK];
        for qv in queries.chunks_exact(dim) {
            let relaxed: Vec<f64> = l.forward(qv).relaxed.iter().map(|&v| v as f64).collect();
            for (mode, want_q) in [(QueryMode::Symmetric, value(qv)), (QueryMode::Asymmetric, relaxed)] {
                let qc = q.encode_query_bits(qv, mode, Some(16), 0);
                proptest::prop_assert!(qc.qplanes <= 8, "query bits capped for weighted planes");
                q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
                for r in 0..codes.len {
                    let want = cosine(&value(&x[r * dim..(r + 1) * dim]), &want_q);
                    proptest::prop_assert!(
                        (est[r] as f64 - want).abs() < 2e-2,
                        "{mode:?} row {r}: folded {} unfolded {want}", est[r]
                    );
                }
            }
        }
    }
}

#[test]
fn bad_plane_scales_are_refused() {
    let l = encoder(16, 32, 2, 3);
    assert!(l.clone().with_plane_scales(vec![1.0]).is_err());
    assert!(l.clone().with_plane_scales(vec![1.0, f32::NAN]).is_err());
    assert!(l.clone().with_plane_scales(vec![1.0, 0.0]).is_err());
    assert!(l.clone().with_plane_scales(vec![1.0, -0.5]).is_err());
    // 5000 dimensions · ΣW 4096 · 255 passes 2^32.
    let wide = encoder(8, 5000, 4, 3).with_plane_scales(vec![1.0; 4]);
    let Err(e) = wide else {
        panic!("5000 dimensions with 4 weighted planes are too wide for 32-bit products")
    };
    assert!(e.contains("overflow") && e.contains("at most 4112"), "{e}");
    assert!(encoder(8, 4112, 4, 3)
        .with_plane_scales(vec![1.0; 4])
        .is_ok());
    let ok = l.with_plane_scales(vec![1.0, 0.5]).unwrap();
    // β = [1, ½] is the fixed lattice: weights 1024 and 512, the same ranking as `2^p`.
    assert_eq!(ok.plane_weights()[..2], [512, 1024]);
}

#[test]
fn bad_scales_are_refused() {
    let l = encoder(16, 32, 2, 3);
    assert!(l.clone().with_scales(vec![1.0; 31]).is_err());
    assert!(l.clone().with_scales(vec![f32::NAN; 32]).is_err());
    assert!(l.clone().with_scales(vec![0.0; 32]).is_err());
    assert!(l.with_scales(vec![0.5; 32]).is_ok());
}
