//! Query-time cost of a learned encoder: one 384-dim query → a 384 × 2-bit code (symmetric) or its
//! 8-bit relaxation (asymmetric), on one core, for several MLP widths. The encoder's weights are
//! random: the cost does not depend on their values.
//!
//! `cargo bench -p bitseek-learn --bench encode`

use bitseek_codes::quantizer::learned::{Learned, LearnedConfig, Mlp};
use bitseek_codes::quantizer::QueryMode;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mlp(input: usize, hidden: usize, output: usize, rng: &mut ChaCha8Rng) -> Mlp {
    let mut w = |n: usize| {
        (0..n)
            .map(|_| rng.gen_range(-0.1f32..0.1))
            .collect::<Vec<f32>>()
    };
    Mlp {
        input,
        hidden,
        output,
        w1: w(hidden * input),
        b1: w(hidden),
        w2: w(output * hidden),
        b2: w(output),
    }
}

fn encoder(dim: usize, m: usize, bits: usize, hidden: usize) -> Learned {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let first = mlp(dim, hidden, m, &mut rng);
    let recon = (1..bits).map(|_| mlp(m, hidden, dim, &mut rng)).collect();
    let resid = (1..bits).map(|_| mlp(dim, hidden, m, &mut rng)).collect();
    let config = LearnedConfig {
        dim,
        m,
        bits,
        hidden,
    };
    Learned::new(config, first, recon, resid).expect("valid encoder")
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let q: Vec<f32> = (0..384).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let batch: Vec<f32> = (0..64 * 384).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut g = c.benchmark_group("encode_query_384_to_384x2");
    for hidden in [64, 128, 256, 512] {
        let enc = encoder(384, 384, 2, hidden);
        g.bench_function(format!("hidden{hidden}/symmetric"), |b| {
            b.iter(|| enc.encode_query_bits(black_box(&q), QueryMode::Symmetric, 8))
        });
        g.bench_function(format!("hidden{hidden}/asymmetric8"), |b| {
            b.iter(|| enc.encode_query_bits(black_box(&q), QueryMode::Asymmetric, 8))
        });
        // 64 queries at once share each weight load (SGEMM); divide by 64 for the per-query cost.
        g.bench_function(format!("hidden{hidden}/batch64_forward"), |b| {
            b.iter(|| enc.forward(black_box(&batch)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
