//! `alloc` codes: the knapsack against brute force, codes and scores against an `f64` reading of
//! the bytes, the calibration's choice against fixed widths, and the refusals.

use bitseek_codes::kernels::{all_available, SCALAR};
use bitseek_codes::quantizer::alloc::{self, knapsack, Alloc, AllocError, SEGMENT, WIDTHS};
use bitseek_codes::quantizer::{Quantizer, QuantizerKind, QueryMode};
use bitseek_codes::BLOCK;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Vectors whose variance falls off by dimension (like embeddings), with a shared offset.
fn decaying(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mix: Vec<f32> = (0..dim * dim)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    (0..n)
        .flat_map(|_| {
            let z: Vec<f32> = (0..dim)
                .map(|i| rng.gen_range(-1.0f32..1.0) / (1.0 + i as f32 / 8.0))
                .collect();
            (0..dim)
                .map(|r| 0.2 + (0..dim).map(|c| mix[r * dim + c] * z[c]).sum::<f32>() / dim as f32)
                .collect::<Vec<f32>>()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The dynamic program finds the least total loss within the budget, as enumerating every
    /// combination of widths does.
    #[test]
    fn knapsack_matches_brute_force(
        losses in proptest::collection::vec(proptest::array::uniform6(0.0f64..1.0), 1..=4),
        bytes in 0usize..=140,
    ) {
        let cost = |b: u8| b as usize * SEGMENT / 8;
        let widths = knapsack(&losses, bytes);
        let total = |w: &[u8]| -> f64 {
            w.iter().zip(&losses).map(|(&b, l)| l[WIDTHS.iter().position(|&x| x == b).unwrap()]).sum()
        };
        prop_assert!(widths.iter().map(|&b| cost(b)).sum::<usize>() <= bytes);
        let mut best = f64::INFINITY;
        let s = losses.len();
        for mut k in 0..WIDTHS.len().pow(s as u32) {
            let w: Vec<u8> = (0..s).map(|_| { let b = WIDTHS[k % WIDTHS.len()]; k /= WIDTHS.len(); b }).collect();
            if w.iter().map(|&b| cost(b)).sum::<usize>() <= bytes {
                best = best.min(total(&w));
            }
        }
        prop_assert!((total(&widths) - best).abs() < 1e-12, "{} vs {}", total(&widths), best);
    }
}

#[test]
fn scores_are_the_decoded_codes_inner_products() {
    let dim = 72; // not a multiple of the segment: the last segment is padded
    let data = decaying(600, dim, 1);
    let a = Alloc::fit(dim, &data, 40, 7);
    let report = a.report.clone().expect("a fit reports");
    assert_eq!(report.bytes, a.row_bytes() + alloc::FACTOR_BYTES);
    assert!(report.bytes <= 40, "{report:?}");
    assert_eq!(a.widths.len(), 3);
    let q = Quantizer::Alloc(Box::new(a.clone()));
    let codes = q.encode(&data);
    let query = &decaying(1, dim, 2)[..];
    let qc = q.encode_query(query, QueryMode::Asymmetric, 0);
    let blocks = codes.len.div_ceil(BLOCK);
    let (mut dist, mut est) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
    q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
    let v = a.rotate_query(query);
    // The u8 tables move a sum by at most half a step per half-byte group.
    let slack = qc.a as f64 * a.row_bytes() as f64; // = a·groups/2
    let mean_q: f64 = a
        .mean
        .iter()
        .zip(query)
        .map(|(&m, &x)| m as f64 * x as f64)
        .sum();
    let mut err = 0f64;
    for (r, x) in data.chunks_exact(dim).enumerate() {
        let y_hat = a.decode(&a.row(bytemuck::cast_slice(&codes.bytes), r));
        let alpha = codes.factors[0][r] as f64;
        let want: f64 = alpha
            * y_hat
                .iter()
                .zip(&v)
                .map(|(&y, &w)| y as f64 * w as f64)
                .sum::<f64>();
        assert!(
            (est[r] as f64 - want).abs() <= alpha.abs() * slack + 1e-4 * (1.0 + want.abs()),
            "row {r}: {} vs {want}",
            est[r]
        );
        let exact: f64 = x
            .iter()
            .zip(query)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        err += (est[r] as f64 + mean_q - exact).abs();
    }
    let scale: f64 = data.iter().map(|x| (*x as f64).abs()).sum::<f64>() / data.len() as f64;
    assert!(
        err / 600.0 < scale,
        "estimates far from exact: {}",
        err / 600.0
    );
}

#[test]
fn codes_lie_on_each_segments_grid() {
    let dim = 64;
    let data = decaying(400, dim, 3);
    let mut a = Alloc::fit(dim, &data, 36, 4);
    a.widths = vec![3, 1];
    let codes = a.encode(&data);
    let rb = a.row_bytes();
    assert_eq!(rb, 3 * 4 + 4);
    let y = a.rotate_query(
        &data[..dim]
            .iter()
            .zip(&a.mean)
            .map(|(x, m)| x - m)
            .collect::<Vec<_>>(),
    );
    let y_hat = a.decode(&a.row(bytemuck::cast_slice(&codes.bytes), 0));
    for i in 0..dim {
        let b = a.widths[i / SEGMENT] as i32;
        let step = alloc::GAUSS_STEP[b as usize] * a.sigma[i] as f64;
        // Inside the grid's range the nearest-cell rule leaves at most half a step.
        let top = step * ((1 << b) as f64 / 2.0);
        if (y[i] as f64).abs() < top {
            assert!(
                ((y_hat[i] - y[i]) as f64).abs() <= step / 2.0 + 1e-5,
                "axis {i}"
            );
        }
    }
}

#[test]
fn calibrated_widths_follow_the_variance_and_cost_recall() {
    let dim = 128;
    let data = decaying(3000, dim, 5);
    let a = Alloc::fit(dim, &data, 4 + 32, 6); // room for 2 bits per dimension on average
    let report = a.report.clone().unwrap();
    assert!(report.calib_recall <= report.calib_recall_8bit + 1e-12);
    assert!(
        a.widths.windows(2).filter(|w| w[0] < w[1]).count() <= 1,
        "widths should mostly fall with variance: {:?}",
        a.widths
    );
    assert!(a.widths[0] > *a.widths.last().unwrap(), "{:?}", a.widths);
    let _ = QuantizerKind::Alloc { bytes: 36 };
}

#[test]
fn bad_parameters_are_refused_clearly() {
    let e = alloc::check(384, 10_000, 7).unwrap_err();
    assert!(matches!(e, AllocError::BudgetTooSmall { min: 8, .. }));
    assert!(
        e.to_string().contains("alloc:7 is too small") && e.to_string().contains("at least 8"),
        "{e}"
    );
    let e = alloc::check(384, 10, 64).unwrap_err();
    assert!(
        matches!(
            e,
            AllocError::TooFewRows {
                rows: 10,
                segments: 12,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("fewer") || e.to_string().contains("needs at least"),
        "{e}"
    );
    assert!(Quantizer::check_fit("alloc:4".parse().unwrap(), 384, 10_000).is_err());
    assert!(Quantizer::check_fit("alloc:64".parse().unwrap(), 384, 10_000).is_ok());
    assert!("alloc:0".parse::<QuantizerKind>().is_err());
    assert!("alloc:".parse::<QuantizerKind>().is_err());
    assert_eq!(
        "alloc:64".parse::<QuantizerKind>().unwrap().to_string(),
        "alloc:64"
    );
}

/// An allocation with the given widths fitted to `n` rows of `decaying` data.
fn with_widths(n: usize, dim: usize, widths: &[u8], seed: u64) -> (Alloc, Vec<f32>) {
    let data = decaying(n.max(200), dim, seed);
    let mut a = Alloc::fit(dim, &data, 4 + dim / 8, seed);
    a.widths = widths.to_vec();
    (a, data[..n * dim].to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Scoring stored codes: every kernel table's FastScan sums equal the scalar twin summed over
    /// the row-major codes (`Σ_g table[16g + half-byte g]`), the estimates are within the stated
    /// rounding bound of the exact float tables, and packing, reading back, selecting and
    /// appending rows keep every code.
    #[test]
    fn fastscan_scores_match_the_float_tables(
        widths in proptest::collection::vec(proptest::sample::select(WIDTHS.to_vec()), 2..=3),
        n in 1usize..=100,
        seed in 0u64..1000,
    ) {
        let dim = 32 * widths.len();
        let (a, data) = with_widths(n, dim, &widths, seed);
        let rb = a.row_bytes();
        let codes = a.encode(&data);
        let stored: &[u8] = bytemuck::cast_slice(&codes.bytes);
        prop_assert_eq!(stored.len(), a.code_len(n));
        let rows: Vec<Vec<u8>> = (0..n).map(|r| a.row(stored, r)).collect();
        let flat: Vec<u8> = rows.concat();
        prop_assert_eq!(&a.pack(&flat, n), stored);
        let query = decaying(1, dim, seed + 1);
        let qc = a.encode_query(&query);
        let lut: &[u8] = bytemuck::cast_slice(&qc.bytes);
        let passes = a.table_passes();
        prop_assert_eq!(passes, if widths.contains(&8) { 2 } else { 1 });
        prop_assert_eq!((lut.len(), qc.qplanes), (32 * rb * passes, passes));
        // A pass's table entries summed over one row's half-bytes, read from the row-major code.
        let twin = |pass: usize, code: &[u8]| -> u32 {
            (0..2 * rb)
                .map(|g| lut[32 * rb * pass + 16 * g + ((code[g / 2] >> (4 * (g % 2))) & 15) as usize] as u32)
                .sum()
        };
        if rb > 0 {
            for k in all_available().into_iter().chain([&SCALAR]) {
                for pass in 0..passes {
                    let mut sums = vec![0u32; n.div_ceil(32) * 32];
                    (k.fastscan_blocks)(&lut[32 * rb * pass..], stored, 2 * rb, &mut sums);
                    let want: Vec<u32> = rows.iter().map(|code| twin(pass, code)).collect();
                    prop_assert_eq!(&sums[..n], &want[..], "{} pass {}", k.name, pass);
                }
            }
        }
        // Estimates against the exact tables: within |α|·a·groups/2 (plus float rounding).
        let v = a.rotate_query(&query);
        let tables = a.float_tables(&v);
        let constant: f64 = (qc.c as f64)
            - tables.chunks_exact(16).map(|t| t.iter().copied().fold(f64::INFINITY, f64::min)).sum::<f64>();
        let q = Quantizer::Alloc(Box::new(a.clone()));
        let blocks = n.div_ceil(BLOCK);
        let (mut dist, mut est) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
        q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
        for (r, code) in rows.iter().enumerate() {
            let exact: f64 = (0..2 * rb)
                .map(|g| tables[16 * g + ((code[g / 2] >> (4 * (g % 2))) & 15) as usize])
                .sum::<f64>() + constant;
            let alpha = codes.factors[0][r] as f64;
            let bound = alpha.abs() * (qc.a as f64 * rb as f64 + 1e-3 * (1.0 + exact.abs()));
            prop_assert!((est[r] as f64 - alpha * exact).abs() <= bound + 1e-6,
                "row {}: {} vs {} (bound {})", r, est[r], alpha * exact, bound);
        }
        // Selections and appends through the quantizer keep the rows.
        let pick: Vec<usize> = (0..n).rev().step_by(3).collect();
        let picked = q.gather_bytes(&codes.bytes, &pick);
        for (i, &r) in pick.iter().enumerate() {
            prop_assert_eq!(&a.row(bytemuck::cast_slice(&picked), i), &rows[r]);
        }
        let joined = q.concat_bytes(&codes.bytes, n, &picked, pick.len());
        prop_assert_eq!(joined.len(), q.code_bytes_len(n + pick.len()));
        for r in 0..n + pick.len() {
            let want = if r < n { &rows[r] } else { &rows[pick[r - n]] };
            prop_assert_eq!(&a.row(bytemuck::cast_slice(&joined), r), want);
        }
    }
}

#[test]
fn a_score_range_that_starts_inside_a_block_reads_the_right_rows() {
    // The flat scan hands out ranges of 8-row blocks; FastScan blocks hold 32 rows.
    let (a, data) = with_widths(100, 64, &[4, 2], 9);
    let q = Quantizer::Alloc(Box::new(a));
    let codes = q.encode(&data);
    let qc = q.encode_query(&decaying(1, 64, 10), QueryMode::Asymmetric, 0);
    let blocks = 100usize.div_ceil(BLOCK);
    let (mut dist, mut all) = (vec![0u32; blocks * BLOCK], vec![0f32; blocks * BLOCK]);
    q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut all);
    for (b0, b1) in [(1, 3), (5, blocks), (3, 4), (12, blocks)] {
        let mut part = vec![0f32; (b1 - b0) * BLOCK];
        q.score(&codes.as_ref(), &qc, b0..b1, &mut dist, &mut part);
        assert_eq!(&part[..], &all[b0 * BLOCK..b1 * BLOCK], "blocks {b0}..{b1}");
    }
    assert!(all[99].is_finite() && all[100] == f32::NEG_INFINITY);
}

#[test]
fn calibration_queries_move_the_bits_to_the_axes_they_use() {
    // Queries that live on the last segment's principal axes only: with them as the calibration
    // set, the first segments' widths cost no recall and the bits go to the last one, which rows
    // held out of the data (spread over every axis, most on the first) would not do.
    let dim = 128;
    let data = decaying(3000, dim, 5);
    let budget = 4 + 32;
    let held_out = Alloc::fit(dim, &data, budget, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let last = 3 * SEGMENT..4 * SEGMENT;
    let queries: Vec<f32> = (0..150)
        .flat_map(|_| {
            let z: Vec<f32> = last.clone().map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let axes = &held_out.axes;
            (0..dim)
                .map(|c| {
                    last.clone()
                        .zip(&z)
                        .map(|(i, &w)| w * axes[i * dim + c])
                        .sum::<f32>()
                })
                .collect::<Vec<f32>>()
        })
        .collect();
    let calibrated = Alloc::fit_calibrated(dim, &data, budget, 6, Some(&queries));
    let report = calibrated.report.clone().unwrap();
    assert_eq!(report.calib_queries, 150);
    assert_eq!(
        report.calib_rows, 3000,
        "given queries leave every row to search"
    );
    let (h, c) = (&held_out.widths, &calibrated.widths);
    assert!(c[3] > h[3], "held out {h:?}, calibrated {c:?}");
    assert_eq!(c[3], *c.iter().max().unwrap(), "{c:?}");
    assert!(report.calib_recall > 0.5, "{report:?}");
}
