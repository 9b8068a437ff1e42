//! The ternary, FP8 and 4-bit formats: codes against `f64` references, estimates against exact
//! inner products, and names.

use bitseek_codes::layout::BitPlanes;
use bitseek_codes::quantizer::{
    ternary::ternarize, ByteCode, ByteFormat, Factor, FitOptions, Fp8, Fp8Format, Int4, Quantizer,
    QuantizerKind, QueryMode, Ternary,
};
use bitseek_codes::BLOCK;
use proptest::prelude::*;
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

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Estimates of `⟨x, q⟩` (offset included) for every row.
fn estimates(q: &Quantizer, data: &[f32], query: &[f32], mode: QueryMode) -> Vec<f32> {
    let codes = q.encode(data);
    let blocks = codes.len.div_ceil(BLOCK);
    let mut dist = vec![0u32; blocks * BLOCK];
    let mut est = vec![0f32; blocks * BLOCK];
    let qc = q.encode_query(query, mode, 0);
    q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
    assert!(est[codes.len..].iter().all(|e| *e == f32::NEG_INFINITY));
    est[..codes.len].iter().map(|e| e + qc.offset).collect()
}

/// Mean absolute error of the estimates over 20 queries against 200 vectors.
fn mean_abs_error(kind: QuantizerKind, mode: QueryMode) -> f64 {
    let dim = 100;
    let data = embeddings(200, dim, 1);
    let queries = embeddings(20, dim, 2);
    let q = Quantizer::fit(kind, dim, &data, FitOptions::default());
    let mut err = 0.0;
    for query in queries.chunks_exact(dim) {
        let est = estimates(&q, &data, query, mode);
        for (e, x) in est.iter().zip(data.chunks_exact(dim)) {
            err += (*e as f64 - dot64(x, query)).abs();
        }
    }
    err / (200.0 * 20.0)
}

/// The nearest finite FP8 code to `v` by brute force over every code, in `f64` (ties to the
/// even code, as IEEE rounding does).
fn nearest_fp8(format: Fp8Format, v: f64) -> u8 {
    let mut best = 0u8;
    let mut best_err = f64::INFINITY;
    for code in 0..=255u8 {
        if code & 0x7f > format.max_code() {
            continue;
        }
        let err = (format.decode(code) - v).abs();
        let better = err < best_err
            || (err == best_err && code & 1 == 0 && best & 1 == 1 && format.decode(code) != 0.0);
        if better {
            best = code;
            best_err = err;
        }
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// FP8 encoding rounds to the nearest code of the `f64` reference (ties to even), saturating at
    /// the largest finite value, for normal, subnormal and out-of-range values.
    #[test]
    fn fp8_encodes_to_the_nearest_code(
        mag in prop_oneof![0.0f64..1e-3, 1e-3f64..1.0, 1.0f64..600.0, 600.0f64..70000.0],
        negative in any::<bool>(),
        e5m2 in any::<bool>(),
    ) {
        let format = if e5m2 { Fp8Format::E5m2 } else { Fp8Format::E4m3 };
        let v = if negative { -mag } else { mag } as f32;
        let got = format.encode(v);
        let want = nearest_fp8(format, v as f64);
        prop_assert_eq!(format.decode(got), format.decode(want), "{} {}: {:#x} vs {:#x}", format, v, got, want);
    }
}

#[test]
fn fp8_decoding_matches_the_kernel_bit_trick_and_the_formats_limits() {
    for format in [Fp8Format::E4m3, Fp8Format::E5m2] {
        let unit = 2f64.powi(127 - format.bias());
        for code in 0..=255u8 {
            if code & 0x7f > format.max_code() {
                continue;
            }
            let trick =
                bitseek_codes::kernels::scalar::fp8_bits_to_f32(code, format.mant()) as f64 * unit;
            assert_eq!(trick, format.decode(code), "{format} code {code:#x}");
        }
    }
    assert_eq!(Fp8Format::E4m3.max_value(), 448.0);
    assert_eq!(Fp8Format::E5m2.max_value(), 57344.0);
    assert_eq!(
        Fp8Format::E4m3.decode(1),
        2f64.powi(-9),
        "smallest E4M3 subnormal"
    );
    assert_eq!(
        Fp8Format::E5m2.decode(1),
        2f64.powi(-16),
        "smallest E5M2 subnormal"
    );
    assert_eq!(Fp8Format::E4m3.encode(1e6), 0x7e);
    assert_eq!(Fp8Format::E4m3.encode(-1e6), 0xfe);
    assert_eq!(Fp8Format::E4m3.encode(f32::NAN), 0);
}

#[test]
fn byte_codes_reconstruct_within_their_precision_and_dot_exactly() {
    let dim = 37; // odd: the last int4 byte holds one value
    let data = embeddings(300, dim, 5);
    let query = embeddings(1, dim, 6);
    for format in [
        ByteFormat::Int8,
        ByteFormat::Int4,
        ByteFormat::Fp8(Fp8Format::E4m3),
        ByteFormat::Fp8(Fp8Format::E5m2),
    ] {
        let q = ByteCode::fit(format, dim, &data);
        let bytes = q.encode_bytes(&data);
        let rb = q.row_bytes();
        assert_eq!(bytes.len(), 300 * rb);
        let (w, k) = q.weights(&query);
        for (x, code) in data.chunks_exact(dim).zip(bytes.chunks_exact(rb)) {
            let back: Vec<f32> = match &q {
                ByteCode::Int8(i) => (0..dim)
                    .map(|d| i.lo[d] + i.step[d] * (code[d] as f32 + 128.0))
                    .collect(),
                ByteCode::Int4(i) => i.decode(bytemuck::cast_slice(code)),
                ByteCode::Fp8(f) => f.decode(bytemuck::cast_slice(code)),
            };
            for d in 0..dim {
                // Half a step for the integer formats; half an ulp (2^-(m+1) relative) or half the
                // smallest subnormal step for FP8.
                let tol = match &q {
                    ByteCode::Int8(i) => i.step[d] as f64 * 0.5,
                    ByteCode::Int4(i) => i.step[d] as f64 * 0.5,
                    ByteCode::Fp8(f) => {
                        let rel = 2f64.powi(-(f.format.mant() as i32) - 1);
                        let sub = f.format.decode(1) / 2.0;
                        ((x[d] - f.mean[d]).abs() as f64 * rel).max(sub * f.scale[d] as f64)
                    }
                };
                assert!(
                    (back[d] as f64 - x[d] as f64).abs() <= tol * (1.0 + 1e-5) + 1e-7,
                    "{format:?} dim {d}: {} vs {}",
                    back[d],
                    x[d]
                );
            }
            let est = q.dot(&w, k, code) as f64;
            let exact = dot64(&back, &query);
            assert!((est - exact).abs() < 1e-4, "{format:?}: {est} vs {exact}");
        }
    }
}

#[test]
fn ternary_codes_follow_the_absmean_rule() {
    let x = [0.5f32, -0.1, 0.05, -0.9, 0.0, 0.3];
    // mean|x| = 1.85 / 6; threshold (2/3)·mean|x| ≈ 0.2056.
    let mut t = [9i8; 6];
    ternarize(&x, &mut t);
    assert_eq!(t, [1, 0, 0, -1, 0, 1]);

    // Stored codes decode to the rule applied to the rotated, centred, normalised vector, and the
    // factors are the f64 reference's.
    let dim = 70;
    let data = embeddings(20, dim, 9);
    let q = Ternary::fit(dim, &data, 11);
    let codes = q.encode(&data);
    let planes = BitPlanes {
        len: codes.len,
        planes: 2,
        words: codes.words,
        data: codes.bits.clone(),
    };
    for (r, row) in data.chunks_exact(dim).enumerate() {
        let mut o = vec![0f64; q.padded];
        for i in 0..dim {
            o[i] = row[i] as f64 - q.mean[i] as f64;
        }
        let norm = o.iter().map(|v| v * v).sum::<f64>().sqrt();
        let rotated: Vec<f64> = (0..q.padded)
            .map(|i| {
                (0..q.padded)
                    .map(|j| q.rotation[i * q.padded + j] as f64 * o[j])
                    .sum()
            })
            .collect();
        let unit: Vec<f32> = rotated.iter().map(|v| (v / norm) as f32).collect();
        let mut want = vec![0i8; q.padded];
        ternarize(&unit, &mut want);
        let words = planes.get(r);
        let (w, n) = (codes.words, q.padded);
        let mut disagree = 0;
        let mut t_o = 0f64;
        for i in 0..n {
            let nz = words[i / 64] >> (i % 64) & 1;
            let s = words[w + i / 64] >> (i % 64) & 1;
            assert!(s <= nz, "sign bit set on a zero");
            let t = 2 * s as i8 - nz as i8;
            disagree += (t != want[i]) as usize;
            t_o += t as f64 * rotated[i];
        }
        // f32 rotation may flip values sitting exactly on the threshold, nothing more.
        assert!(
            disagree <= 1,
            "row {r}: {disagree} values differ from the rule"
        );
        let scale = codes.factors[Factor::Scale as usize][r] as f64;
        assert!(
            (scale - norm * norm / t_o).abs() < 1e-3 * scale,
            "row {r} scale"
        );
        let sum_t: i64 = want.iter().map(|&v| v as i64).sum();
        assert!((codes.factors[Factor::SumU as usize][r] as i64 - sum_t).abs() <= 1);
    }
}

#[test]
fn new_formats_estimate_in_order_of_their_bits() {
    let asym = |k| mean_abs_error(k, QueryMode::Asymmetric);
    let rabitq = asym(QuantizerKind::Rabitq);
    let ternary = asym(QuantizerKind::Ternary);
    let residual2 = asym(QuantizerKind::Residual { bits: 2 });
    let int4 = asym(QuantizerKind::Int4);
    let e4m3 = asym("fp8".parse().unwrap());
    let e5m2 = asym("fp8-e5m2".parse().unwrap());
    let int8 = asym(QuantizerKind::Int8);
    assert!(ternary < rabitq, "ternary {ternary} vs rabitq {rabitq}");
    assert!(
        ternary < 1.5 * residual2,
        "ternary {ternary} vs residual2 {residual2}"
    );
    assert!(int4 < 0.05, "int4 {int4}");
    assert!(e4m3 < 0.02 && e5m2 < 0.04, "fp8 {e4m3} / {e5m2}");
    assert!(
        e5m2 > e4m3,
        "E5M2 has fewer mantissa bits: {e5m2} vs {e4m3}"
    );
    assert!(int8 < int4, "int8 {int8} vs int4 {int4}");
    let sym = mean_abs_error(QuantizerKind::Ternary, QueryMode::Symmetric);
    assert!(
        sym < 2.0 * ternary + 0.01,
        "ternary symmetric {sym} vs asymmetric {ternary}"
    );
}

#[test]
fn ternary_symmetric_scores_are_the_code_products() {
    // Symmetric scoring is Scale·qs·⟨t, t'⟩ + DotMean: check it against a direct computation
    // from the stored planes of the data and of the query encoded as a stored vector.
    let dim = 130;
    let data = embeddings(40, dim, 3);
    let q = Ternary::fit(dim, &data, 4);
    let codes = q.encode(&data);
    let query = &data[5 * dim..6 * dim];
    let qt = q.encode(query);
    let planes = |c: &bitseek_codes::quantizer::Codes, r| {
        BitPlanes {
            len: c.len,
            planes: 2,
            words: c.words,
            data: c.bits.clone(),
        }
        .get(r)
    };
    let t = |words: &[u64], i: usize, w: usize| {
        2 * ((words[w + i / 64] >> (i % 64)) & 1) as i64 - ((words[i / 64] >> (i % 64)) & 1) as i64
    };
    let quant = Quantizer::Ternary(q.clone());
    let qc = quant.encode_query(query, QueryMode::Symmetric, 0);
    let blocks = codes.len.div_ceil(BLOCK);
    let (mut dist, mut est) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
    quant.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
    let qw = planes(&qt, 0);
    for (r, &got) in est.iter().enumerate().take(codes.len) {
        let cw = planes(&codes, r);
        let tt: i64 = (0..q.padded)
            .map(|i| t(&cw, i, codes.words) * t(&qw, i, codes.words))
            .sum();
        let f = |k: Factor| codes.factors[k as usize][r] as f64;
        let want = f(Factor::Scale) * qc.a as f64 * tt as f64 + f(Factor::DotMean);
        assert!(
            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
            "row {r}: {got} vs {want}"
        );
    }
    // A vector scored against itself ranks first.
    let best = (0..codes.len)
        .max_by(|&a, &b| est[a].total_cmp(&est[b]))
        .unwrap();
    assert_eq!(best, 5);
}

#[test]
fn new_format_names_round_trip() {
    for name in ["ternary", "int4", "fp8", "fp8-e5m2"] {
        let kind: QuantizerKind = name.parse().unwrap();
        assert_eq!(kind.to_string(), name);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(serde_json::from_str::<QuantizerKind>(&json).unwrap(), kind);
    }
    assert_eq!(
        "fp8-e4m3".parse::<QuantizerKind>().unwrap().to_string(),
        "fp8"
    );
    let err = "fp16".parse::<QuantizerKind>().unwrap_err().to_string();
    assert!(err.contains("ternary") && err.contains("fp8-e5m2"), "{err}");
    let _ = (
        Fp8::fit(2, Fp8Format::E4m3, &[0.0, 1.0]),
        Int4::fit(2, &[0.0, 1.0]),
    );
}
