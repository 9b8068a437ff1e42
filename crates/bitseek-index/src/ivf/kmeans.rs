//! k-means for the IVF's coarse lists: a few Lloyd iterations on a small sample, nearest
//! centroids by one matrix product per chunk of rows, and empty lists refilled by splitting the
//! largest (FAISS's repair), which keeps the lists' sizes from collapsing onto a few centroids.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Rows per chunk of the nearest-centroid product: the centroids are packed for the product once
/// per chunk, so fewer, larger chunks pack them less often (with 256 rows packing took 19% of an
/// IVF build's profile samples).
const CHUNK: usize = 1024;

/// Lloyd iterations. On the dev embeddings (133k MiniLM vectors, 1459 lists, 1,000 docstring
/// queries) 4 iterations on 32 rows per list gave the same recall@10 curve as 10 on 64 (within
/// ±0.006 at every effort from 64 to 192 lists, above it from 128 on) at a third of the build's
/// CPU time; no iteration at all (random sample rows as centroids) lost 0.03–0.05.
pub const ITERATIONS: usize = 4;

/// Training rows per list (FAISS's default cap is 256): see [`ITERATIONS`]. The one pass that
/// assigns every row to its list afterwards then costs about as much as the whole training
/// (133k rows against 4 × 47k there).
pub const SAMPLE_PER_LIST: usize = 32;

/// `lists` centroids (row-major, `dim` each) of `data` (`n × dim`), seeded by `seed`.
pub fn train(data: &[f32], dim: usize, lists: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    assert!(lists >= 1 && lists <= n, "need 1 ≤ lists ≤ rows");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = n.min(lists * SAMPLE_PER_LIST);
    let mut picked = sample(&mut rng, n, m).into_vec();
    picked.sort_unstable();
    let train: Vec<f32> = picked
        .iter()
        .flat_map(|&r| data[r * dim..(r + 1) * dim].iter().copied())
        .collect();
    let mut centroids: Vec<f32> = train[..lists * dim].to_vec();
    // The first `lists` sample rows are a random choice (the sample is random, sorting only
    // orders it); take them spread over the sample instead, so nearby ids do not start together.
    for c in 0..lists {
        let r = c * m / lists;
        centroids[c * dim..(c + 1) * dim].copy_from_slice(&train[r * dim..(r + 1) * dim]);
    }
    for _ in 0..ITERATIONS {
        let assign = nearest(&train, dim, &centroids);
        let mut sums = vec![0f64; lists * dim];
        let mut counts = vec![0usize; lists];
        for (x, &c) in train.chunks_exact(dim).zip(&assign) {
            counts[c as usize] += 1;
            for (s, &v) in sums[c as usize * dim..(c as usize + 1) * dim]
                .iter_mut()
                .zip(x)
            {
                *s += v as f64;
            }
        }
        for c in 0..lists {
            if counts[c] > 0 {
                for i in 0..dim {
                    centroids[c * dim + i] = (sums[c * dim + i] / counts[c] as f64) as f32;
                }
            }
        }
        split_empty(&mut centroids, &mut counts, dim);
    }
    centroids
}

/// Moves every empty list's centroid next to the currently largest list's, nudged apart, and
/// lets them share its rows (FAISS's `split_clusters`).
fn split_empty(centroids: &mut [f32], counts: &mut [usize], dim: usize) {
    const EPS: f32 = 1.0 / 1024.0;
    for c in 0..counts.len() {
        if counts[c] > 0 {
            continue;
        }
        let big = (0..counts.len()).max_by_key(|&j| counts[j]).unwrap_or(0);
        if counts[big] < 2 {
            return;
        }
        for i in 0..dim {
            let v = centroids[big * dim + i];
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            centroids[c * dim + i] = v * (1.0 + sign * EPS);
            centroids[big * dim + i] = v * (1.0 - sign * EPS);
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
    }
}

/// The nearest centroid (L2) of every row of `data`, ties to the lower list.
pub fn nearest(data: &[f32], dim: usize, centroids: &[f32]) -> Vec<u32> {
    let lists = centroids.len() / dim;
    let cnorm: Vec<f32> = centroids
        .chunks_exact(dim)
        .map(|c| c.iter().map(|v| v * v).sum())
        .collect();
    // The centroids transposed (dim × lists) once, so the matrix product packs them from
    // contiguous runs instead of gathering a column at a time.
    let mut ct = vec![0f32; dim * lists];
    for (c, mu) in centroids.chunks_exact(dim).enumerate() {
        for (i, &v) in mu.iter().enumerate() {
            ct[i * lists + c] = v;
        }
    }
    data.par_chunks(CHUNK * dim)
        .flat_map_iter(|rows| {
            let nr = rows.len() / dim;
            let mut ip = vec![0f32; nr * lists];
            crate::exact::product_transposed(rows, &ct, dim, lists, &mut ip);
            ip.chunks_exact(lists)
                .map(|s| argmin_distance(s, &cnorm))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Lanes of [`argmin_distance`]: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// The list `c` with the smallest `‖μ_c‖² − 2⟨x, μ_c⟩` (ties to the lower list; NaN never wins),
/// from one row's products `ip` and the centroids' squared norms `cnorm`. Keeps one best per
/// lane so the loop is branch-free selects the compiler vectorises; the lanes' bests are merged
/// at the end, lowest list first among equals (as [`argmin_scalar`] finds it).
pub fn argmin_distance(ip: &[f32], cnorm: &[f32]) -> u32 {
    let n = ip.len().min(cnorm.len());
    let mut best = [f32::INFINITY; LANES];
    let mut at = [0u32; LANES];
    let whole = n / LANES * LANES;
    for (c, (ips, ns)) in ip[..whole]
        .chunks_exact(LANES)
        .zip(cnorm[..whole].chunks_exact(LANES))
        .enumerate()
    {
        for j in 0..LANES {
            let d = ns[j] - 2.0 * ips[j];
            let better = d < best[j];
            best[j] = if better { d } else { best[j] };
            at[j] = if better {
                (c * LANES + j) as u32
            } else {
                at[j]
            };
        }
    }
    let mut out = (f32::INFINITY, 0u32);
    for j in 0..LANES {
        if best[j] < out.0 || (best[j] == out.0 && at[j] < out.1) {
            out = (best[j], at[j]);
        }
    }
    for c in whole..n {
        let d = cnorm[c] - 2.0 * ip[c];
        if d < out.0 {
            out = (d, c as u32);
        }
    }
    out.1
}

/// The scalar twin of [`argmin_distance`]: one comparison per list, in order.
pub fn argmin_scalar(ip: &[f32], cnorm: &[f32]) -> u32 {
    let mut best = (f32::INFINITY, 0u32);
    for (c, (&v, &n2)) in ip.iter().zip(cnorm).enumerate() {
        let d = n2 - 2.0 * v;
        if d < best.0 {
            best = (d, c as u32);
        }
    }
    best.1
}

/// FAISS's imbalance factor of a list-size histogram: `lists · Σ size² / (Σ size)²` (1 is
/// perfectly balanced).
pub fn imbalance(sizes: &[usize]) -> f64 {
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    if total == 0.0 {
        return 1.0;
    }
    let sq: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
    sizes.len() as f64 * sq / (total * total)
}
