//! Kernelized supervised hashing (KSH, as used by EcoFormer; methods.md §6): a learned baseline
//! that needs no backpropagation.
//!
//! Features are RBF kernels to `p` anchors, centred: `k̄(x)_j = exp(−‖x − a_j‖²/(2σ)) − μ_j`. Bit
//! `r` is `sign(A_r · k̄(x))`. Supervision `S` is `+1` for a query and its document and `−1` for
//! each query's hardest float negatives (so the hash keeps exactly the pairs that retrieval has to
//! separate). Bits are learned greedily on the residual `S_r = b·S − Σ_{t<r} y_t y_tᵀ`: `A_r` is
//! the top eigenvector of `K̄ᵀ S_r K̄` (the spectral relaxation of `max yᵀ S_r y`, found by power
//! iteration), and `K̄ᵀ S_r K̄` is updated in place, so the `n × n` matrix is never formed. Codes
//! compare by Hamming distance with the core's kernel.

use crate::data::Pairs;
use bitseek_codes::layout::{words_for, BitPlanes};
use bitseek_codes::quantizer::{Codes, QueryCode};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Learning settings.
#[derive(Clone, Copy, Debug)]
pub struct KshParams {
    pub bits: usize,
    pub anchors: usize,
    /// Training pairs sampled to build `S`.
    pub samples: usize,
    /// Hard negatives per query in `S`.
    pub negatives: usize,
    pub iterations: usize,
    pub seed: u64,
}

impl Default for KshParams {
    fn default() -> Self {
        KshParams {
            bits: 384,
            anchors: 512,
            samples: 4000,
            negatives: 5,
            iterations: 60,
            seed: 0,
        }
    }
}

/// A trained KSH hash.
pub struct Ksh {
    pub dim: usize,
    pub bits: usize,
    anchors: Vec<f32>,
    sigma: f32,
    mean: Vec<f32>,
    /// `bits × p` projections.
    a: Vec<f32>,
}

impl Ksh {
    fn p(&self) -> usize {
        self.mean.len()
    }

    /// Centred kernel features of `rows` (`n × p`).
    fn features(&self, rows: &[f32]) -> Vec<f32> {
        let (d, p) = (self.dim, self.p());
        let mut out = vec![0f32; rows.len() / d * p];
        out.par_chunks_mut(p)
            .zip(rows.par_chunks(d))
            .for_each(|(o, x)| {
                for (j, a) in self.anchors.chunks_exact(d).enumerate() {
                    let dist: f32 = x.iter().zip(a).map(|(u, v)| (u - v) * (u - v)).sum();
                    o[j] = (-dist / (2.0 * self.sigma)).exp() - self.mean[j];
                }
            });
        out
    }

    /// The sign bits of `rows`, one `Vec<u64>` of `words_for(bits)` words each.
    fn hash(&self, rows: &[f32]) -> Vec<Vec<u64>> {
        let p = self.p();
        let words = words_for(self.bits);
        let k = self.features(rows);
        k.par_chunks(p)
            .map(|f| {
                let mut w = vec![0u64; words];
                for (r, a) in self.a.chunks_exact(p).enumerate() {
                    let v: f32 = a.iter().zip(f).map(|(x, y)| x * y).sum();
                    if v >= 0.0 {
                        w[r / 64] |= 1 << (r % 64);
                    }
                }
                w
            })
            .collect()
    }

    /// Codes for a document collection (one plane; score with a Hamming scorer).
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let h = self.hash(rows);
        let words = words_for(self.bits);
        let mut planes = BitPlanes::zeros(h.len(), 1, words);
        for (r, w) in h.iter().enumerate() {
            planes.set(r, w);
        }
        Codes {
            len: h.len(),
            planes: 1,
            words,
            bits: planes.data,
            ..Default::default()
        }
    }

    /// A query's code (compared by Hamming distance).
    pub fn encode_query(&self, q: &[f32]) -> QueryCode {
        QueryCode {
            planes: self.hash(q).pop().unwrap_or_default(),
            qplanes: 1,
            ..Default::default()
        }
    }

    /// Learns `bits` hash functions from pairs.
    pub fn train(pairs: &Pairs, params: &KshParams) -> Ksh {
        let d = pairs.dim;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut rows: Vec<usize> = (0..pairs.len()).collect();
        rows.shuffle(&mut rng);
        rows.truncate(params.samples.min(pairs.len()));
        let sample = pairs.select(&rows);
        let n = sample.len();
        // Anchors: random documents and queries of the whole training set.
        let mut pool: Vec<usize> = (0..2 * pairs.len()).collect();
        pool.shuffle(&mut rng);
        let p = params.anchors.min(pool.len());
        let mut anchors = Vec::with_capacity(p * d);
        for &i in &pool[..p] {
            let src = if i < pairs.len() {
                &pairs.query
            } else {
                &pairs.doc
            };
            let r = i % pairs.len();
            anchors.extend_from_slice(&src[r * d..(r + 1) * d]);
        }
        // All 2n sample rows: queries then documents.
        let all = [sample.query.as_slice(), sample.doc.as_slice()].concat();
        let mut sigma = 0f64;
        for x in all.chunks_exact(d).take(500) {
            for a in anchors.chunks_exact(d) {
                sigma += x
                    .iter()
                    .zip(a)
                    .map(|(u, v)| ((u - v) * (u - v)) as f64)
                    .sum::<f64>();
            }
        }
        let sigma = (sigma / (all.len() / d).min(500) as f64 / p as f64) as f32;
        let mut ksh = Ksh {
            dim: d,
            bits: params.bits,
            anchors,
            sigma,
            mean: vec![0.0; p],
            a: Vec::new(),
        };
        let raw = ksh.features(&all);
        let m = 2 * n;
        let mut mean = vec![0f32; p];
        for f in raw.chunks_exact(p) {
            for (a, &v) in mean.iter_mut().zip(f) {
                *a += v / m as f32;
            }
        }
        let k: Vec<f32> = raw
            .chunks_exact(p)
            .flat_map(|f| f.iter().zip(&mean).map(|(v, u)| v - u).collect::<Vec<_>>())
            .collect();
        ksh.mean = mean;
        // S: +1 between query i (row i) and document i (row n+i), −1 to each query's hardest
        // other documents; scaled by the number of bits, as KSH does.
        let mut entries: Vec<(usize, usize, f32)> = Vec::new();
        let mut scores = vec![0f32; n];
        for i in 0..n {
            let q = &sample.query[i * d..(i + 1) * d];
            for (j, s) in scores.iter_mut().enumerate() {
                *s = q
                    .iter()
                    .zip(&sample.doc[j * d..(j + 1) * d])
                    .map(|(a, b)| a * b)
                    .sum();
            }
            let mut idx: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            let take = params.negatives.min(idx.len());
            if take > 0 {
                idx.select_nth_unstable_by(take - 1, |&a, &b| scores[b].total_cmp(&scores[a]));
            }
            entries.push((i, n + i, 1.0));
            entries.push((n + i, i, 1.0));
            for &j in &idx[..take] {
                entries.push((i, n + j, -1.0));
                entries.push((n + j, i, -1.0));
            }
        }
        // M = b · K̄ᵀ S K̄ (p × p), from the sparse S.
        let b = params.bits as f32;
        let mut sk = vec![0f32; m * p];
        for &(i, j, s) in &entries {
            for c in 0..p {
                sk[i * p + c] += b * s * k[j * p + c];
            }
        }
        let mut mm = vec![0f32; p * p];
        mm.par_chunks_mut(p).enumerate().for_each(|(r, row)| {
            for t in 0..m {
                let kr = k[t * p + r];
                if kr != 0.0 {
                    for (o, &v) in row.iter_mut().zip(&sk[t * p..(t + 1) * p]) {
                        *o += kr * v;
                    }
                }
            }
        });
        let mut a_all = Vec::with_capacity(params.bits * p);
        for _ in 0..params.bits {
            let v = top_eigenvector(&mm, p, params.iterations, &mut rng);
            // y = sign(K̄ a); M ← M − (K̄ᵀ y)(K̄ᵀ y)ᵀ.
            let mut kty = vec![0f32; p];
            for f in k.chunks_exact(p) {
                let y = if f.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>() >= 0.0 {
                    1.0
                } else {
                    -1.0
                };
                for (o, &x) in kty.iter_mut().zip(f) {
                    *o += y * x;
                }
            }
            mm.par_chunks_mut(p).enumerate().for_each(|(r, row)| {
                for (o, &x) in row.iter_mut().zip(&kty) {
                    *o -= kty[r] * x;
                }
            });
            a_all.extend_from_slice(&v);
        }
        ksh.a = a_all;
        ksh
    }
}

/// The eigenvector of the largest (algebraic) eigenvalue of the symmetric `p × p` matrix `mm`:
/// power iteration finds the eigenvalue largest in magnitude; if that one is negative, iterating
/// on `M + |λ|·I` (positive semi-definite) finds the largest algebraic one instead.
fn top_eigenvector(mm: &[f32], p: usize, iterations: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    use rand::Rng;
    let power = |shift: f32, rng: &mut ChaCha8Rng| -> Vec<f32> {
        let mut v: Vec<f32> = (0..p).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for _ in 0..iterations {
            let mut w: Vec<f32> = mm
                .par_chunks(p)
                .map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>())
                .collect();
            for (wi, vi) in w.iter_mut().zip(&v) {
                *wi += shift * vi;
            }
            let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-30);
            v = w.into_iter().map(|x| x / norm).collect();
        }
        v
    };
    let v = power(0.0, rng);
    let lambda: f32 = mm
        .chunks_exact(p)
        .zip(&v)
        .map(|(row, vi)| vi * row.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>())
        .sum();
    if lambda >= 0.0 {
        v
    } else {
        power(-lambda, rng)
    }
}
