//! A/B of the weighted plane product (`ip_planes_weighted_blocks`, learned plane weights) against
//! the fixed `2^p` one (`ip_planes_blocks`) it generalises, on every kernel table this CPU has:
//! 2-plane codes and an 8-bit query (learned 2-bit codes' asymmetric default), timed in
//! alternating rounds over the same codes; medians and the median per-round ratio are printed.
//!
//! ```text
//! cargo run --release -p bitseek-codes --example weighted_ip_ab -- [ROWS] [DIM] [ROUNDS]
//! ```
//! (defaults 100000 rows of 384 dimensions, 15 rounds).

use std::time::Instant;

use bitseek_codes::kernels::all_available;
use bitseek_codes::layout::{words_for, BitPlanes, BLOCK};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
    let (cplanes, qplanes, words) = (2, 8, words_for(dim));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut codes = BitPlanes::zeros(n, cplanes, words);
    codes.data.iter_mut().for_each(|w| *w = rng.gen());
    let query: Vec<u64> = (0..qplanes * words).map(|_| rng.gen()).collect();
    let weights = [1000u32, 517];
    let mut fixed = vec![0u32; codes.blocks() * BLOCK];
    let mut weighted = vec![0u32; codes.blocks() * BLOCK];
    println!("{n} codes of {dim} dims × {cplanes} planes, {qplanes}-bit query, {rounds} alternating rounds (3 scans each), ms per scan");
    println!("| table | ip_planes_blocks (2^p) | ip_planes_weighted_blocks | weighted / fixed (median of rounds) |");
    println!("|---|---:|---:|---:|");
    for k in all_available() {
        let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..3 {
                (k.ip_planes_blocks)(&query, qplanes, &codes.data, cplanes, words, &mut fixed);
            }
            let x = t.elapsed().as_secs_f64() * 1e3 / 3.0;
            let t = Instant::now();
            for _ in 0..3 {
                (k.ip_planes_weighted_blocks)(
                    &query,
                    qplanes,
                    &codes.data,
                    cplanes,
                    &weights,
                    words,
                    &mut weighted,
                );
            }
            let y = t.elapsed().as_secs_f64() * 1e3 / 3.0;
            a.push(x);
            b.push(y);
            ratio.push(y / x);
        }
        println!(
            "| {} | {:.3} | {:.3} | {:.2}× |",
            k.name,
            median(&mut a),
            median(&mut b),
            median(&mut ratio)
        );
    }
}
