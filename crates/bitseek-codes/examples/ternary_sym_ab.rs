//! A/B of the symmetric ternary product: the dedicated kernel (`ternary_sym_blocks`, two popcounts
//! per word) against the path it replaced (the query as `t′ + 1` through `ternary_ip_blocks`, four
//! popcounts per word), on every kernel table this CPU has. The two are timed in alternating
//! rounds over the same codes; the medians and the median of the per-round ratios are printed.
//!
//! ```text
//! cargo run --release -p bitseek-codes --example ternary_sym_ab -- [ROWS] [DIM] [ROUNDS]
//! ```
//! (defaults 100000 rows of 384 dimensions, 15 rounds).

use std::time::Instant;

use bitseek_codes::kernels::all_available;
use bitseek_codes::layout::{words_for, BitPlanes, BLOCK};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Two-plane codes of random ternary values, a third of them zero (as the absmean rule gives).
fn ternary(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> (BitPlanes, Vec<Vec<i8>>) {
    let words = words_for(dim);
    let mut planes = BitPlanes::zeros(n, 2, words);
    let mut values = Vec::with_capacity(n);
    for r in 0..n {
        let mut code = vec![0u64; 2 * words];
        let t: Vec<i8> = (0..dim).map(|_| rng.gen_range(-1..=1)).collect();
        for (i, &v) in t.iter().enumerate() {
            if v != 0 {
                code[i / 64] |= 1 << (i % 64);
            }
            if v > 0 {
                code[words + i / 64] |= 1 << (i % 64);
            }
        }
        planes.set(r, &code);
        values.push(t);
    }
    (planes, values)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (n, dim, rounds) = (arg(1, 100_000), arg(2, 384), arg(3, 15));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (codes, _) = ternary(&mut rng, n, dim);
    let (query, qvalues) = ternary(&mut rng, 1, dim);
    let (sym_q, words) = (query.get(0), codes.words);
    // The replaced encoding: `t′ + 1 ∈ {0, 1, 2}` as two unsigned planes.
    let mut plus_one = vec![0u64; 2 * words];
    for (i, &v) in qvalues[0].iter().enumerate() {
        let u = (v + 1) as u64;
        plus_one[i / 64] |= (u & 1) << (i % 64);
        plus_one[words + i / 64] |= (u >> 1) << (i % 64);
    }
    let mut out_old = vec![0i32; codes.blocks() * BLOCK];
    let mut out_new = vec![0i32; codes.blocks() * BLOCK];
    println!("{n} codes of {dim} dims, {rounds} alternating rounds (3 scans each), ms per scan");
    println!(
        "| table | t′+1 via ternary_ip_blocks | ternary_sym_blocks | speed-up (median of rounds) |"
    );
    println!("|---|---:|---:|---:|");
    for k in all_available() {
        let (mut old, mut new, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..3 {
                (k.ternary_ip_blocks)(&plus_one, 2, &codes.data, words, &mut out_old);
            }
            let a = t.elapsed().as_secs_f64() * 1e3 / 3.0;
            let t = Instant::now();
            for _ in 0..3 {
                (k.ternary_sym_blocks)(&sym_q, &codes.data, words, &mut out_new);
            }
            let b = t.elapsed().as_secs_f64() * 1e3 / 3.0;
            old.push(a);
            new.push(b);
            ratio.push(a / b);
        }
        // Same answers (less Σt, which the old path's factor folded away).
        let sum_t = |r: usize| -> i32 {
            let c = codes.get(r);
            (0..words)
                .map(|w| 2 * c[words + w].count_ones() as i32 - c[w].count_ones() as i32)
                .sum()
        };
        for r in (0..n).step_by(997) {
            assert_eq!(out_old[r] - sum_t(r), out_new[r], "{} row {r}", k.name);
        }
        println!(
            "| {} | {:.3} | {:.3} | {:.2}× |",
            k.name,
            median(&mut old),
            median(&mut new),
            median(&mut ratio)
        );
    }
}
