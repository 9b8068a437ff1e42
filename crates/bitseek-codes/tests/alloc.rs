//! `alloc` codes: the knapsack against brute force, codes and scores against an `f64` reading of
//! the bytes, the calibration's choice against fixed widths, and the refusals.

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
    let rb = a.row_bytes();
    let mean_q: f64 = a
        .mean
        .iter()
        .zip(query)
        .map(|(&m, &x)| m as f64 * x as f64)
        .sum();
    let mut err = 0f64;
    for (r, x) in data.chunks_exact(dim).enumerate() {
        let code: &[u8] = bytemuck::cast_slice(&codes.bytes[r * rb..(r + 1) * rb]);
        let y_hat = a.decode(code);
        let alpha = codes.factors[0][r] as f64;
        let want: f64 = alpha
            * y_hat
                .iter()
                .zip(&v)
                .map(|(&y, &w)| y as f64 * w as f64)
                .sum::<f64>();
        assert!(
            (est[r] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
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
    let y_hat = a.decode(bytemuck::cast_slice(&codes.bytes[..rb]));
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
