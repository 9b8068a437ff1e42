//! Writes a large vector set from a small real one for scan-speed and build-cost tables: the real
//! rows first, unchanged, then jittered copies (each a real row plus seeded Gaussian noise of
//! standard deviation `SIGMA / √dim` per coordinate, L2-normalised again) until `ROWS` rows.
//! The copies keep the real set's mean and spread, so quantizers fitted on them see realistic
//! data; near duplicates of real rows, they are distractors, not a recall benchmark.
//!
//! ```text
//! cargo run --release -p bitseek-index --example jittered -- IN.npy OUT.npy [ROWS] [SIGMA] [SEED]
//! ```
//! (defaults 1,000,000 rows, σ 0.3, seed 1; output is `f32` `.npy`).

use bitseek_index::input::{read_vectors, write_npy_f32};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: jittered IN.npy OUT.npy [ROWS] [SIGMA] [SEED]".into());
    }
    let rows: usize = args.get(3).map_or(Ok(1_000_000), |s| s.parse())?;
    let sigma: f32 = args.get(4).map_or(Ok(0.3), |s| s.parse())?;
    let seed: u64 = args.get(5).map_or(Ok(1), |s| s.parse())?;
    let v = read_vectors(Path::new(&args[1]))?;
    let (dim, real) = (v.dim, v.data.len() / v.dim);
    if real == 0 {
        return Err(format!("{} holds no vectors", args[1]).into());
    }
    let mut out = Vec::with_capacity(rows * dim);
    out.extend_from_slice(&v.data[..real.min(rows) * dim]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let step = sigma / (dim as f32).sqrt();
    let mut row = vec![0f32; dim];
    while out.len() < rows * dim {
        let src = &v.data[rng.gen_range(0..real) * dim..][..dim];
        for (o, &x) in row.iter_mut().zip(src) {
            // Box–Muller: one standard normal from two uniforms.
            let (u1, u2): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.gen());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            *o = x + step * z;
        }
        let norm = row
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        out.extend(row.iter().map(|x| x / norm));
    }
    write_npy_f32(Path::new(&args[2]), rows, dim, &out)?;
    eprintln!(
        "{rows} rows of {dim} ({real} real, sigma {sigma}) written to {}",
        args[2]
    );
    Ok(())
}
