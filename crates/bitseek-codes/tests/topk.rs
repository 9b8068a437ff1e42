//! Property tests for the top-k selectors against a sort-based reference.

use bitseek_codes::topk::{CountingTopK, HeapTopK};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn ref_counting(items: &[(u32, u32)], k: usize) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = items.iter().map(|&(row, d)| (d, row)).collect();
    v.sort_unstable();
    v.truncate(k);
    v
}

fn ref_heap(items: &[(u32, f32)], k: usize) -> Vec<(f32, u32)> {
    let mut v: Vec<(f32, u32)> = items.iter().map(|&(row, s)| (s, row)).collect();
    v.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v.truncate(k);
    v
}

/// A way of feeding one selector: contiguous blocks (via `push_block`) or single pushes.
enum Feed<T> {
    Block { first_row: u32, vals: Vec<T> },
    Single(Vec<(u32, T)>),
}

/// Splits `vals` (row `base + i` holds `vals[i]`) into blocks of random lengths, assigns each to one of `parts` selectors and shuffles the feeding order. Blocks fed
/// one at a time push their rows in shuffled order.
fn plan<T: Copy>(rng: &mut ChaCha8Rng, base: u32, vals: &[T], parts: usize) -> Vec<Vec<Feed<T>>> {
    let mut feeds: Vec<Vec<Feed<T>>> = (0..parts).map(|_| Vec::new()).collect();
    let mut i = 0;
    while i < vals.len() {
        let len = rng.gen_range(1..=(vals.len() - i).min(70));
        let part = rng.gen_range(0..parts);
        let first_row = base + i as u32;
        let chunk = vals[i..i + len].to_vec();
        if rng.gen_bool(0.5) {
            feeds[part].push(Feed::Block {
                first_row,
                vals: chunk,
            });
        } else {
            let mut single: Vec<(u32, T)> = chunk
                .into_iter()
                .enumerate()
                .map(|(j, v)| (first_row + j as u32, v))
                .collect();
            single.shuffle(rng);
            feeds[part].push(Feed::Single(single));
        }
        i += len;
    }
    for f in &mut feeds {
        f.shuffle(rng);
    }
    feeds
}

fn run_counting(
    seed: u64,
    base: u32,
    dists: &[u32],
    max_dist: u32,
    k: usize,
    parts: usize,
) -> Vec<(u32, u32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let feeds = plan(&mut rng, base, dists, parts);
    let mut sels: Vec<CountingTopK> = feeds
        .into_iter()
        .map(|feeds| {
            let mut sel = CountingTopK::new(k, max_dist);
            let mut last_thr = sel.threshold();
            for feed in feeds {
                match feed {
                    Feed::Block { first_row, vals } => {
                        // Padding past `valid` must be ignored.
                        let valid = vals.len();
                        let mut padded = vals;
                        padded.extend(std::iter::repeat_n(0, rng.gen_range(0..40)));
                        sel.push_block(first_row, &padded, valid);
                    }
                    Feed::Single(items) => {
                        for (row, d) in items {
                            sel.push(row, d);
                        }
                    }
                }
                assert!(sel.threshold() <= last_thr, "threshold went up");
                last_thr = sel.threshold();
            }
            sel
        })
        .collect();
    sels.shuffle(&mut rng);
    let mut acc = sels.pop().unwrap();
    for s in sels {
        acc.merge(s);
    }
    let thr = acc.threshold();
    let out = acc.into_sorted();
    if k > 0 {
        assert!(out.iter().all(|&(d, _)| d <= thr), "result above threshold");
    }
    out
}

fn run_heap(seed: u64, base: u32, scores: &[f32], k: usize, parts: usize) -> Vec<(f32, u32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let feeds = plan(&mut rng, base, scores, parts);
    let mut sels: Vec<HeapTopK> = feeds
        .into_iter()
        .map(|feeds| {
            let mut sel = HeapTopK::new(k);
            for feed in feeds {
                match feed {
                    Feed::Block { first_row, vals } => {
                        let valid = vals.len();
                        let mut padded = vals;
                        padded.extend(std::iter::repeat_n(f32::INFINITY, rng.gen_range(0..40)));
                        sel.push_block(first_row, &padded, valid);
                    }
                    Feed::Single(items) => {
                        for (row, s) in items {
                            sel.push(row, s);
                        }
                    }
                }
            }
            sel
        })
        .collect();
    sels.shuffle(&mut rng);
    let mut acc = sels.pop().unwrap();
    for s in sels {
        acc.merge(s);
    }
    let thr = acc.threshold();
    let out = acc.into_sorted();
    if k > 0 && out.len() == k {
        assert_eq!(out.last().unwrap().0.to_bits(), thr.to_bits());
    } else if k > 0 {
        assert_eq!(thr, f32::NEG_INFINITY);
    }
    out
}

fn bits(v: &[(f32, u32)]) -> Vec<(u32, u32)> {
    v.iter().map(|&(s, r)| (s.to_bits(), r)).collect()
}

const SCORES: [f32; 9] = [
    f32::NEG_INFINITY,
    -3.5,
    -1.0,
    -0.0,
    0.0,
    1e-30,
    1.0,
    2.5,
    f32::INFINITY,
];

fn dist_vec() -> impl Strategy<Value = (u32, Vec<u32>)> {
    prop_oneof![Just(0u32), 1u32..6, 6u32..40, Just(384u32)]
        .prop_flat_map(|max_dist| (Just(max_dist), prop::collection::vec(0..=max_dist, 0..600)))
}

fn score_vec() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(&SCORES[..]), 0..600),
        prop::collection::vec(-1000i32..1000, 0..600)
            .prop_map(|v| v.into_iter().map(|x| x as f32 * 0.25).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn counting_matches_reference(
        (max_dist, dists) in dist_vec(),
        k_frac in 0.0f64..1.3,
        small_k in 0usize..4,
        use_small in any::<bool>(),
        parts in 1usize..6,
        seed in any::<u64>(),
    ) {
        let n = dists.len();
        let k = if use_small { small_k } else { (n as f64 * k_frac) as usize };
        let base = (seed % 1000) as u32;
        let got = run_counting(seed, base, &dists, max_dist, k, parts);
        let items: Vec<(u32, u32)> =
            dists.iter().enumerate().map(|(i, &d)| (base + i as u32, d)).collect();
        prop_assert_eq!(got, ref_counting(&items, k));
    }

    #[test]
    fn counting_split_equals_single(
        (max_dist, dists) in dist_vec(),
        k in 0usize..200,
        parts in 2usize..8,
        seed in any::<u64>(),
    ) {
        let base = (seed % 1000) as u32;
        let one = run_counting(seed, base, &dists, max_dist, k, 1);
        let many = run_counting(seed ^ 0x5555, base, &dists, max_dist, k, parts);
        prop_assert_eq!(one, many);
    }

    #[test]
    fn heap_matches_reference(
        scores in score_vec(),
        k_frac in 0.0f64..1.3,
        small_k in 0usize..4,
        use_small in any::<bool>(),
        parts in 1usize..6,
        seed in any::<u64>(),
    ) {
        let n = scores.len();
        let k = if use_small { small_k } else { (n as f64 * k_frac) as usize };
        let base = (seed % 1000) as u32;
        let got = run_heap(seed, base, &scores, k, parts);
        let items: Vec<(u32, f32)> =
            scores.iter().enumerate().map(|(i, &s)| (base + i as u32, s)).collect();
        prop_assert_eq!(bits(&got), bits(&ref_heap(&items, k)));
    }

    #[test]
    fn heap_split_equals_single(
        scores in score_vec(),
        k in 0usize..200,
        parts in 2usize..8,
        seed in any::<u64>(),
    ) {
        let base = (seed % 1000) as u32;
        let one = run_heap(seed, base, &scores, k, 1);
        let many = run_heap(seed ^ 0x5555, base, &scores, k, parts);
        prop_assert_eq!(bits(&one), bits(&many));
    }
}

#[test]
fn k_zero_returns_nothing() {
    let mut c = CountingTopK::new(0, 10);
    c.push(3, 1);
    c.push_block(0, &[0, 1, 2, 3], 4);
    c.merge(CountingTopK::new(0, 10));
    assert!(c.into_sorted().is_empty());

    let mut h = HeapTopK::new(0);
    h.push(3, 1.0);
    h.push_block(0, &[0.0, 1.0, f32::INFINITY], 3);
    h.merge(HeapTopK::new(0));
    assert!(h.into_sorted().is_empty());
}

#[test]
fn heap_equal_score_lower_row_replaces_worst() {
    let mut h = HeapTopK::new(2);
    h.push(10, 1.0);
    h.push(11, 1.0);
    assert_eq!(h.threshold(), 1.0);
    h.push(5, 1.0);
    h.push(20, 1.0);
    h.push(30, 0.5);
    assert_eq!(h.into_sorted(), vec![(1.0, 5), (1.0, 10)]);
}

#[test]
fn counting_ties_keep_lowest_rows_in_any_order() {
    // All-equal distances pushed in descending row order: the lowest rows must win.
    let mut c = CountingTopK::new(3, 5);
    for row in (0..10_000u32).rev() {
        c.push(row, 2);
    }
    assert!(c.threshold() <= 2);
    assert_eq!(c.into_sorted(), vec![(2, 0), (2, 1), (2, 2)]);
}

/// Large k (oversampling) over 1M pushes, split across threads-like selectors.
#[test]
fn large_k_million_pushes() {
    const N: usize = 1_000_000;
    const K: usize = 5000;
    const MAX_DIST: u32 = 384;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Roughly binomial Hamming-like distances, plus a uniform component.
    let dists: Vec<u32> = (0..N)
        .map(|_| {
            if rng.gen_bool(0.5) {
                (0..12).map(|_| rng.gen_range(0..=32u32)).sum::<u32>()
            } else {
                rng.gen_range(0..=MAX_DIST)
            }
        })
        .collect();
    let scores: Vec<f32> = dists
        .iter()
        .map(|&d| (MAX_DIST - d) as f32 * 0.5 + rng.gen_range(0..3) as f32)
        .collect();

    const BLOCK: usize = 1024;
    let mut blocks: Vec<usize> = (0..N.div_ceil(BLOCK)).collect();
    blocks.shuffle(&mut rng);
    let mut cs: Vec<CountingTopK> = (0..3).map(|_| CountingTopK::new(K, MAX_DIST)).collect();
    let mut hs: Vec<HeapTopK> = (0..3).map(|_| HeapTopK::new(K)).collect();
    for (j, &b) in blocks.iter().enumerate() {
        let lo = b * BLOCK;
        let hi = (lo + BLOCK).min(N);
        cs[j % 3].push_block(lo as u32, &dists[lo..hi], hi - lo);
        hs[j % 3].push_block(lo as u32, &scores[lo..hi], hi - lo);
    }
    let mut c = cs.pop().unwrap();
    for o in cs {
        c.merge(o);
    }
    let mut h = hs.pop().unwrap();
    for o in hs {
        h.merge(o);
    }

    let items: Vec<(u32, u32)> = dists
        .iter()
        .enumerate()
        .map(|(i, &d)| (i as u32, d))
        .collect();
    assert_eq!(c.into_sorted(), ref_counting(&items, K));
    let items: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as u32, s))
        .collect();
    assert_eq!(bits(&h.into_sorted()), bits(&ref_heap(&items, K)));
}
