//! Kernel throughput for every table this CPU can run (`cargo bench -p bitseek-codes --bench kernels`).
//!
//! Blocked kernels scan 100k codes of 384 bits (4.8 MB per plane: past L2, inside L3 on most server
//! parts); throughput is bytes of codes scanned per second. Pairwise dot products are at 384
//! dimensions; throughput is bytes of both operands.

use std::hint::black_box;
use std::time::Duration;

use bitseek_codes::kernels::all_available;
use bitseek_codes::layout::{BitPlanes, BLOCK};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 100_000;
const DIM: usize = 384;
const WORDS: usize = DIM / 64;

fn random_planes(rng: &mut ChaCha8Rng, planes: usize) -> BitPlanes {
    let mut bp = BitPlanes::zeros(N, planes, WORDS);
    bp.data.iter_mut().for_each(|w| *w = rng.gen());
    bp
}

fn blocked(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let one = random_planes(&mut rng, 1);
    let two = random_planes(&mut rng, 2);
    let query: Vec<u64> = (0..4 * WORDS).map(|_| rng.gen()).collect();
    let mut out = vec![0u32; one.blocks() * BLOCK];

    let mut g = c.benchmark_group("hamming_blocks_384");
    g.throughput(Throughput::Bytes((one.data.len() * 8) as u64));
    for k in all_available() {
        g.bench_function(BenchmarkId::from_parameter(k.name), |b| {
            b.iter(|| (k.hamming_blocks)(black_box(&query[..WORDS]), &one.data, WORDS, &mut out))
        });
    }
    g.finish();

    for (name, codes) in [("ip_planes_384_4x1", &one), ("ip_planes_384_4x2", &two)] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes((codes.data.len() * 8) as u64));
        for k in all_available() {
            g.bench_function(BenchmarkId::from_parameter(k.name), |b| {
                b.iter(|| {
                    (k.ip_planes_blocks)(
                        black_box(&query),
                        4,
                        &codes.data,
                        codes.planes,
                        WORDS,
                        &mut out,
                    )
                })
            });
        }
        g.finish();
    }
}

fn dots(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let a8: Vec<i8> = (0..DIM).map(|_| rng.gen()).collect();
    let b8: Vec<i8> = (0..DIM).map(|_| rng.gen()).collect();
    let af: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let bf: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();

    let mut g = c.benchmark_group("dot_i8_384");
    g.throughput(Throughput::Bytes(2 * DIM as u64));
    for k in all_available() {
        g.bench_function(BenchmarkId::from_parameter(k.name), |b| {
            b.iter(|| (k.dot_i8)(black_box(&a8), black_box(&b8)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("dot_f32_384");
    g.throughput(Throughput::Bytes(2 * 4 * DIM as u64));
    for k in all_available() {
        g.bench_function(BenchmarkId::from_parameter(k.name), |b| {
            b.iter(|| (k.dot_f32)(black_box(&af), black_box(&bf)))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = blocked, dots
}
criterion_main!(benches);
