//! The kernels of the ternary, FP8 and 4-bit formats: every SIMD table against `SCALAR` (exactly
//! for the ternary popcounts, within rounding for the float dots), and `SCALAR` against the
//! definitions written out value by value.

use bitseek_codes::kernels::{all_available, scalar, Kernels, SCALAR};
use bitseek_codes::layout::{words_for, BitPlanes, BLOCK};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn simd_tables() -> Vec<&'static Kernels> {
    all_available()
        .into_iter()
        .filter(|k| k.name != SCALAR.name)
        .collect()
}

/// `n` random ternary vectors of `dim` values (`density` of them nonzero, about) and their
/// two-plane codes in the blocked layout.
fn ternary_codes(
    rng: &mut ChaCha8Rng,
    n: usize,
    dim: usize,
    density: f64,
) -> (Vec<Vec<i32>>, BitPlanes) {
    let words = words_for(dim);
    let mut planes = BitPlanes::zeros(n, 2, words);
    let mut values = Vec::new();
    for row in 0..n {
        let mut code = vec![0u64; 2 * words];
        let t: Vec<i32> = (0..dim)
            .map(|i| {
                if !rng.gen_bool(density) {
                    return 0;
                }
                code[i / 64] |= 1 << (i % 64);
                if rng.gen_bool(0.5) {
                    code[words + i / 64] |= 1 << (i % 64);
                    1
                } else {
                    -1
                }
            })
            .collect();
        planes.set(row, &code);
        values.push(t);
    }
    (values, planes)
}

/// A query of `qplanes` unsigned planes over `dim` values, and the values.
fn query(rng: &mut ChaCha8Rng, dim: usize, qplanes: usize) -> (Vec<u32>, Vec<u64>) {
    let words = words_for(dim);
    let q: Vec<u32> = (0..dim)
        .map(|_| rng.gen_range(0..1u32 << qplanes))
        .collect();
    let mut planes = vec![0u64; qplanes * words];
    for (i, &v) in q.iter().enumerate() {
        for j in 0..qplanes {
            planes[j * words + i / 64] |= (((v >> j) & 1) as u64) << (i % 64);
        }
    }
    (q, planes)
}

fn run_ternary(k: &Kernels, q: &[u64], qplanes: usize, codes: &BitPlanes) -> Vec<i32> {
    let mut out = vec![i32::MIN; codes.blocks() * BLOCK];
    (k.ternary_ip_blocks)(q, qplanes, &codes.data, codes.words, &mut out);
    out
}

fn run_ternary_sym(k: &Kernels, q: &[u64], codes: &BitPlanes) -> Vec<i32> {
    let mut out = vec![i32::MIN; codes.blocks() * BLOCK];
    (k.ternary_sym_blocks)(q, &codes.data, codes.words, &mut out);
    out
}

fn float_tol(terms: impl Iterator<Item = f64>) -> f64 {
    1e-5 * terms.map(f64::abs).sum::<f64>() + 1e-30
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `ternary_ip_blocks` is `⟨t, Q⟩` value by value, in every table, padding lanes included.
    #[test]
    fn ternary_ip_is_the_signed_product(
        seed in any::<u64>(),
        dim in 1usize..=1100,
        n in 1usize..=30,
        qplanes in prop_oneof![1usize..=4, Just(8usize)],
        density in prop_oneof![Just(0.0), Just(1.0), 0.05f64..0.95],
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (values, codes) = ternary_codes(&mut rng, n, dim, density);
        let (q, planes) = query(&mut rng, dim, qplanes);
        let want = run_ternary(&SCALAR, &planes, qplanes, &codes);
        for (row, t) in values.iter().enumerate() {
            let exact: i64 = t.iter().zip(&q).map(|(&a, &b)| a as i64 * b as i64).sum();
            prop_assert_eq!(want[row] as i64, exact, "scalar, row {}", row);
        }
        prop_assert!(want[n..].iter().all(|&p| p == 0), "an all-zero padding code has product 0");
        for k in simd_tables() {
            prop_assert_eq!(&run_ternary(k, &planes, qplanes, &codes), &want, "{}", k.name);
        }
    }

    /// `ternary_sym_blocks` is `⟨t′, t⟩` value by value, in every table, padding lanes included,
    /// and equals what the asymmetric kernel gives for the same query as `t′ + 1` (the path it
    /// replaced for symmetric queries) less `Σt`.
    #[test]
    fn ternary_sym_is_the_product_of_two_ternary_codes(
        seed in any::<u64>(),
        dim in prop_oneof![1usize..=1100, Just(384usize), Just(768usize)],
        n in 1usize..=30,
        density in prop_oneof![Just(0.0), Just(1.0), 0.05f64..0.95],
        qdensity in prop_oneof![Just(0.0), Just(1.0), 0.05f64..0.95],
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (values, codes) = ternary_codes(&mut rng, n, dim, density);
        let (qvalues, qcodes) = ternary_codes(&mut rng, 1, dim, qdensity);
        let (q, qplanes) = (&qvalues[0], qcodes.get(0));
        let want = run_ternary_sym(&SCALAR, &qplanes, &codes);
        let words = codes.words;
        let mut plus_one = vec![0u64; 2 * words];
        for (i, &v) in q.iter().enumerate() {
            let u = (v + 1) as u64;
            plus_one[i / 64] |= (u & 1) << (i % 64);
            plus_one[words + i / 64] |= (u >> 1) << (i % 64);
        }
        let old = run_ternary(&SCALAR, &plus_one, 2, &codes);
        for (row, t) in values.iter().enumerate() {
            let exact: i32 = t.iter().zip(q).map(|(&a, &b)| a * b).sum();
            prop_assert_eq!(want[row], exact, "scalar, row {}", row);
            prop_assert_eq!(old[row] - t.iter().sum::<i32>(), exact, "t′ + 1 path, row {}", row);
        }
        prop_assert!(want[n..].iter().all(|&p| p == 0), "an all-zero padding code has product 0");
        for k in simd_tables() {
            prop_assert_eq!(&run_ternary_sym(k, &qplanes, &codes), &want, "{}", k.name);
        }
    }

    /// `dot_f32_fp8` and `dot_f32_u4` agree with the scalar twins within rounding, on every length
    /// (the SIMD tails included) and every byte value.
    #[test]
    fn byte_dots_match_scalar(n in 0usize..=700, seed in any::<u64>(), scale in 1e-3f32..1e3) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
        let b: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        // FP8 patterns that read as infinities or NaN are never stored: keep the exponent finite.
        let fp8: Vec<u8> = b.iter().map(|&x| if x & 0x78 == 0x78 { x & 0xf7 } else { x }).collect();
        for mant in [2u32, 3] {
            let want = (SCALAR.dot_f32_fp8)(&a, &fp8, mant) as f64;
            let tol = float_tol(a.iter().zip(&fp8).map(|(&x, &y)| x as f64 * scalar::fp8_bits_to_f32(y, mant) as f64));
            for k in simd_tables() {
                let got = (k.dot_f32_fp8)(&a, &fp8, mant) as f64;
                prop_assert!((got - want).abs() <= tol, "{} fp8 mant {}: {} vs {}", k.name, mant, got, want);
            }
        }
        let packed = &b[..n.div_ceil(2)];
        let want = (SCALAR.dot_f32_u4)(&a, packed) as f64;
        let nib = |i: usize| ((packed[i / 2] >> (4 * (i % 2))) & 15) as f64;
        let exact: f64 = a.iter().enumerate().map(|(i, &x)| x as f64 * nib(i)).sum();
        let tol = float_tol(a.iter().enumerate().map(|(i, &x)| x as f64 * nib(i)));
        prop_assert!((want - exact).abs() <= tol, "scalar u4 {} vs exact {}", want, exact);
        for k in simd_tables() {
            let got = (k.dot_f32_u4)(&a, packed) as f64;
            prop_assert!((got - want).abs() <= tol, "{} u4: {} vs {}", k.name, got, want);
        }
    }
}

/// A ternary query against itself: `⟨t, t + 1⟩ = Σ t² + Σ t` when the query planes hold `t + 1`
/// (the symmetric mode's encoding), for the widest hot shape.
#[test]
fn ternary_query_against_its_own_code() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (values, codes) = ternary_codes(&mut rng, 9, 384, 0.6);
    let words = codes.words;
    for (row, t) in values.iter().enumerate() {
        let mut planes = vec![0u64; 2 * words];
        for (i, &v) in t.iter().enumerate() {
            let u = (v + 1) as u64;
            planes[i / 64] |= (u & 1) << (i % 64);
            planes[words + i / 64] |= (u >> 1) << (i % 64);
        }
        let want: i32 = t.iter().map(|&v| v * v + v).sum();
        for k in all_available() {
            assert_eq!(run_ternary(k, &planes, 2, &codes)[row], want, "{}", k.name);
        }
    }
}

/// Every word count with a specialised loop (and one without), at full density with equal and
/// opposite signs: the extreme counts `±dim` and the two-block and one-block tails of the SIMD
/// loops (`n` from 1 to 3 blocks).
#[test]
fn ternary_sym_extremes_on_every_specialisation() {
    for words in [1usize, 2, 3, 4, 5, 6, 8, 12, 16, 17] {
        let dim = 64 * words;
        for n in [1, BLOCK + 1, 2 * BLOCK + 3] {
            let mut codes = BitPlanes::zeros(n, 2, words);
            let code: Vec<u64> = vec![u64::MAX; 2 * words]; // all +1
            for r in 0..n {
                codes.set(r, &code);
            }
            let mut q = vec![u64::MAX; 2 * words];
            for k in all_available() {
                let got = run_ternary_sym(k, &q, &codes);
                assert!(
                    got[..n].iter().all(|&v| v == dim as i32),
                    "{} words {words}",
                    k.name
                );
            }
            q[words..].iter_mut().for_each(|w| *w = 0); // all −1
            for k in all_available() {
                let got = run_ternary_sym(k, &q, &codes);
                assert!(
                    got[..n].iter().all(|&v| v == -(dim as i32)),
                    "{} words {words}",
                    k.name
                );
            }
        }
    }
}
