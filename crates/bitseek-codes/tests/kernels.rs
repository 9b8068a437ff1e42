//! Every kernel table this CPU can run must agree with `SCALAR`: exactly for the integer kernels,
//! within a rounding tolerance for the float ones. Plus metamorphic properties of the bit kernels.

use bitseek_codes::kernels::{all_available, kernels, Kernels, SCALAR};
use bitseek_codes::layout::{words_for, BitPlanes, BLOCK};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::sync::Once;

/// Every table this CPU can run. The first call of a test run says on stderr which tables were
/// checked and which were not, written past libtest's capture (which hides `eprintln!` of passing
/// tests), so a run on a CPU without AVX-512 shows that it never checked the AVX-512 kernels.
fn tables() -> Vec<&'static Kernels> {
    static SAID: Once = Once::new();
    let tables = all_available();
    SAID.call_once(|| {
        let checked: Vec<&str> = tables.iter().map(|k| k.name).collect();
        let missing: Vec<&str> = ["scalar", "avx2", "avx512"]
            .into_iter()
            .filter(|name| !checked.contains(name))
            .collect();
        let missing = if missing.is_empty() {
            "none".to_string()
        } else {
            format!("{} (this CPU or target lacks them)", missing.join(", "))
        };
        let _ = writeln!(
            std::io::stderr(),
            "tests/kernels.rs: kernel tables checked: {}; not checked: {missing}",
            checked.join(", ")
        );
    });
    tables
}

/// Tables other than SCALAR (possibly none on this CPU, then the properties hold trivially).
fn simd_tables() -> Vec<&'static Kernels> {
    tables()
        .into_iter()
        .filter(|k| k.name != SCALAR.name)
        .collect()
}

/// A random word with bits past `bits` (counted from the plane start at word `w`) cleared.
/// `density`: 0 uniform, 1 all ones, 2 sparse, 3 dense.
fn word(rng: &mut ChaCha8Rng, density: u8, w: usize, bits: usize) -> u64 {
    let x: u64 = match density {
        0 => rng.gen(),
        1 => !0,
        2 => rng.gen::<u64>() & rng.gen::<u64>() & rng.gen::<u64>(),
        _ => rng.gen::<u64>() | rng.gen::<u64>() | rng.gen::<u64>(),
    };
    mask_tail(x, w, bits)
}

/// Clears the bits of word `w` at positions `>= bits`.
fn mask_tail(x: u64, w: usize, bits: usize) -> u64 {
    let lo = w * 64;
    if bits >= lo + 64 {
        x
    } else if bits <= lo {
        0
    } else {
        x & ((1u64 << (bits - lo)) - 1)
    }
}

/// `planes` planes of `bits` bits, plane-major.
fn code(rng: &mut ChaCha8Rng, density: u8, planes: usize, bits: usize) -> Vec<u64> {
    let words = words_for(bits);
    (0..planes * words)
        .map(|i| word(rng, density, i % words, bits))
        .collect()
}

struct Case {
    bits: usize,
    words: usize,
    codes: Vec<Vec<u64>>,
    planes: BitPlanes,
    query: Vec<u64>,
    qplanes: usize,
}

fn case(seed: u64, bits: usize, n: usize, qplanes: usize, cplanes: usize, density: u8) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words = words_for(bits);
    let codes: Vec<Vec<u64>> = (0..n)
        .map(|_| code(&mut rng, density, cplanes, bits))
        .collect();
    let mut planes = BitPlanes::zeros(n, cplanes, words);
    for (row, c) in codes.iter().enumerate() {
        planes.set(row, c);
    }
    // Density of the query independent of the codes' so all-ones codes meet random queries too.
    let qdensity = rng.gen_range(0..4);
    let query = code(&mut rng, qdensity, qplanes, bits);
    Case {
        bits,
        words,
        codes,
        planes,
        query,
        qplanes,
    }
}

fn run_hamming_blocks(k: &Kernels, c: &Case) -> Vec<u32> {
    let mut out = vec![u32::MAX; c.planes.blocks() * BLOCK];
    (k.hamming_blocks)(&c.query[..c.words], &c.planes.data, c.words, &mut out);
    out
}

fn run_ip(k: &Kernels, c: &Case) -> Vec<u32> {
    let mut out = vec![u32::MAX; c.planes.blocks() * BLOCK];
    (k.ip_planes_blocks)(
        &c.query,
        c.qplanes,
        &c.planes.data,
        c.planes.planes,
        c.words,
        &mut out,
    );
    out
}

/// Checks every table against SCALAR on one case (both blocked kernels and the pairwise ones on
/// the code rows, padding lanes included).
fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let want_h = (c.planes.planes == 1).then(|| run_hamming_blocks(&SCALAR, c));
    let want_ip = run_ip(&SCALAR, c);
    for k in simd_tables() {
        if let Some(want) = &want_h {
            prop_assert_eq!(&run_hamming_blocks(k, c), want, "{} hamming_blocks", k.name);
        }
        prop_assert_eq!(&run_ip(k, c), &want_ip, "{} ip_planes_blocks", k.name);
        for code in c.codes.iter().take(3) {
            let q = &c.query[..code.len().min(c.query.len())];
            let cc = &code[..q.len()];
            prop_assert_eq!(
                (k.hamming)(q, cc),
                (SCALAR.hamming)(q, cc),
                "{} hamming",
                k.name
            );
            prop_assert_eq!(
                (k.and_popcount)(q, cc),
                (SCALAR.and_popcount)(q, cc),
                "{} and_popcount",
                k.name
            );
        }
    }
    Ok(())
}

fn run_ip_weighted(k: &Kernels, c: &Case, weights: &[u32]) -> Vec<u32> {
    let mut out = vec![u32::MAX; c.planes.blocks() * BLOCK];
    (k.ip_planes_weighted_blocks)(
        &c.query,
        c.qplanes,
        &c.planes.data,
        c.planes.planes,
        weights,
        c.words,
        &mut out,
    );
    out
}

/// `ip_planes_weighted_blocks` on one case: SCALAR against the definition bit by bit (wrapping),
/// SCALAR with weights `2^p` against `ip_planes_blocks`, and every table against SCALAR.
fn check_weighted(c: &Case, weights: &[u32]) -> Result<(), TestCaseError> {
    let want = run_ip_weighted(&SCALAR, c, weights);
    let w = c.words;
    let bit = |v: &[u64], plane: usize, i: usize| ((v[plane * w + i / 64] >> (i % 64)) & 1) as u32;
    for (row, code) in c.codes.iter().enumerate() {
        let mut exact = 0u32;
        for i in 0..c.bits {
            for (p, &wp) in weights.iter().enumerate().take(c.planes.planes) {
                for j in 0..c.qplanes {
                    let both = bit(code, p, i) & bit(&c.query, j, i);
                    exact = exact.wrapping_add((both << j).wrapping_mul(wp));
                }
            }
        }
        prop_assert_eq!(want[row], exact, "scalar, row {}", row);
    }
    prop_assert!(
        want[c.codes.len()..].iter().all(|&v| v == 0),
        "padding codes are zero"
    );
    let powers: Vec<u32> = (0..c.planes.planes).map(|p| 1 << p).collect();
    prop_assert_eq!(
        &run_ip_weighted(&SCALAR, c, &powers),
        &run_ip(&SCALAR, c),
        "2^p weights"
    );
    for k in simd_tables() {
        prop_assert_eq!(
            &run_ip_weighted(k, c, weights),
            &want,
            "{} weighted",
            k.name
        );
    }
    Ok(())
}

/// Plane counts to test: 1..=4 mostly, 8 sometimes (the multi-group path), 5 once in a while.
fn planes() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 1usize..=4, 1 => Just(8usize), 1 => Just(5usize)]
}

/// Float tolerance. The SIMD kernels sum in a different order than the scalar left-to-right loop
/// (several accumulators, a tree reduction at the end, fused multiply-adds), so the results differ
/// by rounding: both are within about `n * 2^-24 * Σ|a_i b_i|` of the exact sum in the worst case,
/// and far less in practice (random rounding errors grow like `sqrt(n)`), so for the lengths tested
/// here `1e-5 * Σ|a_i b_i|` is a safe and still tight bound.
fn float_tol(terms: impl Iterator<Item = f64>) -> f64 {
    1e-5 * terms.map(f64::abs).sum::<f64>()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Blocked and pairwise bit kernels agree exactly with SCALAR on random shapes: any bit length
    /// (not only multiples of 64), any number of codes (padding lanes in the last block), 1..=4 and
    /// 8 planes on both sides, several bit densities.
    #[test]
    fn bit_kernels_match_scalar(
        seed in any::<u64>(),
        bits in 1usize..=1100,
        n in 1usize..=40,
        qplanes in planes(),
        cplanes in planes(),
        density in 0u8..4,
    ) {
        check_case(&case(seed, bits, n, qplanes, cplanes, density))?;
    }

    /// The weighted plane product agrees with its definition and across tables, weights from
    /// small to large enough to wrap, on random shapes (the multi-group query path included).
    #[test]
    fn weighted_ip_matches_scalar_and_definition(
        seed in any::<u64>(),
        bits in prop_oneof![1usize..=700, Just(384usize), Just(448usize)],
        n in 1usize..=40,
        qplanes in planes(),
        cplanes in 1usize..=4,
        density in 0u8..4,
        weights in proptest::collection::vec(prop_oneof![0u32..=4096, any::<u32>()], 4),
    ) {
        check_weighted(&case(seed, bits, n, qplanes, cplanes, density), &weights)?;
    }

    /// The hot shapes (384-bit codes, 4-plane query) with more codes.
    #[test]
    fn hot_shapes_match_scalar(
        seed in any::<u64>(),
        bits in 321usize..=384,
        n in 1usize..=100,
        cplanes in 1usize..=4,
        qplanes in prop_oneof![Just(1usize), Just(4usize)],
    ) {
        check_case(&case(seed, bits, n, qplanes, cplanes, 0))?;
    }

    /// Pairwise popcounts on word slices of every length 0..=40 (AVX-512 masked tails, AVX2 scalar
    /// tails, the 16-word unrolled loop).
    #[test]
    fn pairwise_match_scalar(
        a in prop::collection::vec(any::<u64>(), 0..=40),
        b_seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(b_seed);
        let b: Vec<u64> = (0..a.len()).map(|_| rng.gen()).collect();
        for k in simd_tables() {
            prop_assert_eq!((k.hamming)(&a, &b), (SCALAR.hamming)(&a, &b), "{}", k.name);
            prop_assert_eq!((k.and_popcount)(&a, &b), (SCALAR.and_popcount)(&a, &b), "{}", k.name);
        }
    }

    /// `dot_i8` is exact on every length 0..=1000, with -128 forced in now and then.
    #[test]
    fn dot_i8_matches_scalar(
        n in 0usize..=1000,
        seed in any::<u64>(),
        extremes in 0u8..3,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let gen = |rng: &mut ChaCha8Rng| -> i8 {
            match extremes {
                0 => rng.gen(),
                1 => if rng.gen_bool(0.5) { i8::MIN } else { rng.gen() },
                _ => *[i8::MIN, i8::MAX, -1, 0, 1].get(rng.gen_range(0..5)).unwrap(),
            }
        };
        let a: Vec<i8> = (0..n).map(|_| gen(&mut rng)).collect();
        let b: Vec<i8> = (0..n).map(|_| gen(&mut rng)).collect();
        for k in simd_tables() {
            prop_assert_eq!((k.dot_i8)(&a, &b), (SCALAR.dot_i8)(&a, &b), "{} n={}", k.name, n);
        }
    }

    /// Float dot products agree with SCALAR within the rounding tolerance of `float_tol`.
    #[test]
    fn float_dots_match_scalar(n in 0usize..=1000, seed in any::<u64>(), scale in 1e-3f32..1e3) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
        let c: Vec<i8> = (0..n).map(|_| rng.gen()).collect();
        let tol_ff = float_tol(a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64));
        let tol_fi = float_tol(a.iter().zip(&c).map(|(&x, &y)| x as f64 * y as f64));
        let want_ff = (SCALAR.dot_f32)(&a, &b) as f64;
        let want_fi = (SCALAR.dot_f32_i8)(&a, &c) as f64;
        for k in simd_tables() {
            let got = (k.dot_f32)(&a, &b) as f64;
            prop_assert!((got - want_ff).abs() <= tol_ff, "{} dot_f32 {} vs {}", k.name, got, want_ff);
            let got = (k.dot_f32_i8)(&a, &c) as f64;
            prop_assert!((got - want_fi).abs() <= tol_fi, "{} dot_f32_i8 {} vs {}", k.name, got, want_fi);
        }
    }

    /// Hamming distance is invariant under XOR-ing the same mask into the query and every code.
    #[test]
    fn hamming_invariant_under_xor_mask(
        seed in any::<u64>(),
        bits in 1usize..=1100,
        n in 1usize..=40,
    ) {
        let c = case(seed, bits, n, 1, 1, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mask = code(&mut rng, 0, 1, bits);
        let xor = |v: &[u64]| -> Vec<u64> { v.iter().zip(&mask).map(|(x, m)| x ^ m).collect() };
        let mut masked = c.planes.clone();
        for (row, code) in c.codes.iter().enumerate() {
            masked.set(row, &xor(code));
        }
        let mq = xor(&c.query);
        for k in tables() {
            let mut plain = vec![0u32; c.planes.blocks() * BLOCK];
            let mut moved = plain.clone();
            (k.hamming_blocks)(&c.query, &c.planes.data, c.words, &mut plain);
            (k.hamming_blocks)(&mq, &masked.data, c.words, &mut moved);
            // Rows past `n` are zero codes in both, so their distances differ; compare real rows.
            prop_assert_eq!(&plain[..n], &moved[..n], "{}", k.name);
            for code in &c.codes {
                prop_assert_eq!((k.hamming)(&c.query, code), (k.hamming)(&mq, &xor(code)));
            }
        }
    }

    /// hamming(a, a) = 0, both pairwise and blocked (query = one of the codes).
    #[test]
    fn hamming_to_self_is_zero(seed in any::<u64>(), bits in 1usize..=1100, n in 1usize..=40) {
        let c = case(seed, bits, n, 1, 1, 0);
        let row = (seed as usize) % n;
        for k in tables() {
            prop_assert_eq!((k.hamming)(&c.codes[row], &c.codes[row]), 0);
            let mut out = vec![u32::MAX; c.planes.blocks() * BLOCK];
            (k.hamming_blocks)(&c.codes[row], &c.planes.data, c.words, &mut out);
            prop_assert_eq!(out[row], 0, "{}", k.name);
        }
    }

    /// A one-plane all-ones query (within the dimension) gives each code's value sum
    /// `Σ_p 2^p popcnt(c_p)`, i.e. its popcount for one-plane codes.
    #[test]
    fn ip_with_all_ones_query_is_code_weight(
        seed in any::<u64>(),
        bits in 1usize..=1100,
        n in 1usize..=40,
        cplanes in planes(),
    ) {
        let c = case(seed, bits, n, 1, cplanes, 0);
        let ones: Vec<u64> = (0..c.words).map(|w| mask_tail(!0, w, c.bits)).collect();
        for k in tables() {
            let mut out = vec![u32::MAX; c.planes.blocks() * BLOCK];
            (k.ip_planes_blocks)(&ones, 1, &c.planes.data, cplanes, c.words, &mut out);
            for (row, code) in c.codes.iter().enumerate() {
                let want: u32 = code
                    .chunks(c.words)
                    .enumerate()
                    .map(|(p, plane)| plane.iter().map(|w| w.count_ones()).sum::<u32>() << p)
                    .sum();
                prop_assert_eq!(out[row], want, "{} row {}", k.name, row);
            }
            // Padding rows are zero codes.
            prop_assert!(out[n..].iter().all(|&d| d == 0));
        }
    }
}

/// Every monomorphised (query planes, words) combination and the generic ones, deterministically:
/// words 1..=20 (both sides of every specialised size), query planes 1..=9, code planes 1..=4 and
/// 8, block counts with and without the odd trailing block of the two-block unroll.
#[test]
fn every_specialisation_matches_scalar() {
    let mut seed = 1;
    for words in 1..=20 {
        for qplanes in 1..=9 {
            for cplanes in [1, 2, 3, 4, 8] {
                for n in [1, 8, 9, 16, 17, 24] {
                    seed += 1;
                    let bits = words * 64 - (seed as usize % 64);
                    let c = case(seed, bits, n, qplanes, cplanes, (seed % 4) as u8);
                    check_case(&c).unwrap();
                }
            }
        }
    }
}

/// Codes longer than 31 words with every bit set: the AVX2 kernels sum byte counts in `u8` lanes
/// for at most 31 words (`31 * 8 = 248`) before folding, and this is where an off-by-one would
/// overflow. Pairwise kernels fold every 31 four-word chunks, so they get up to 300 words.
#[test]
fn long_all_ones_codes_match_scalar() {
    for words in [31, 32, 33, 62, 63, 64] {
        for qplanes in [1, 4] {
            let mut c = case(words as u64, words * 64, 9, qplanes, 1, 1);
            c.query = vec![!0; qplanes * words];
            check_case(&c).unwrap();
        }
    }
    for n in [123, 124, 125, 128, 248, 300] {
        let a = vec![!0u64; n];
        for k in tables() {
            assert_eq!((k.hamming)(&a, &vec![0; n]), 64 * n as u32, "{}", k.name);
            assert_eq!((k.and_popcount)(&a, &a), 64 * n as u32, "{}", k.name);
        }
    }
}

/// Extremes that random tests rarely hit: all -128 (the `vpmaddwd` pair sum 32768 and the VNNI
/// bias), all 127, and mixed, over lengths around the vector widths.
#[test]
fn dot_i8_extremes() {
    for n in [
        0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 384, 1000, 4096,
    ] {
        for (x, y) in [
            (-128i8, -128i8),
            (127, 127),
            (-128, 127),
            (127, -128),
            (-1, -128),
        ] {
            let a = vec![x; n];
            let b = vec![y; n];
            let want = n as i32 * x as i32 * y as i32;
            for k in tables() {
                assert_eq!((k.dot_i8)(&a, &b), want, "{} n={n} {x}*{y}", k.name);
            }
        }
    }
}

/// The blocked kernels ignore a trailing partial block (like `chunks_exact`) and leave `out` past
/// the whole blocks untouched; `qplanes == 0` gives zeros.
#[test]
fn blocked_edge_shapes() {
    let c = case(7, 384, 16, 4, 2, 0);
    for k in tables() {
        let mut data = c.planes.data.clone();
        data.extend_from_slice(&[!0; 5]);
        let mut out = vec![u32::MAX; 24];
        (k.ip_planes_blocks)(&c.query, 4, &data, 2, c.words, &mut out);
        assert_eq!(&out[..16], &run_ip(&SCALAR, &c)[..], "{}", k.name);
        assert!(out[16..].iter().all(|&d| d == u32::MAX), "{}", k.name);
        (k.ip_planes_blocks)(&c.query, 0, &c.planes.data, 2, c.words, &mut out);
        assert!(out[..16].iter().all(|&d| d == 0), "{}", k.name);
    }
}

/// `kernels()` picks the last (most capable) available table unless `BITSEEK_KERNELS` caps it.
#[test]
fn dispatch_picks_a_listed_table() {
    let all = tables();
    assert_eq!(all[0].name, "scalar");
    let chosen = kernels();
    assert!(all.iter().any(|k| std::ptr::eq(*k, chosen)));
    if std::env::var_os("BITSEEK_KERNELS").is_none() {
        assert!(std::ptr::eq(*all.last().unwrap(), chosen));
    }
    let _ = writeln!(
        std::io::stderr(),
        "tests/kernels.rs: kernels() chose {}",
        chosen.name
    );
}
