//! Centred sign codes: bit `i` is set when `x_i > mean_i`; codes compare by Hamming distance.
//!
//! The plain binary quantization of Qdrant, Lucene and FAISS `IndexBinaryFlat`, with the data mean
//! subtracted first (without centring, embeddings that share a common direction get near-identical
//! codes). It is the baseline the corrected codes are measured against.

use super::{mean, Codes, QueryCode};
use crate::layout::{words_for, BitPlanes};

/// A fitted sign quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Sign {
    /// Input dimension.
    pub dim: usize,
    /// The data mean subtracted before taking signs.
    pub mean: Vec<f32>,
}

impl Sign {
    /// Fits the mean on `rows`.
    pub fn fit(dim: usize, rows: &[f32]) -> Sign {
        Sign {
            dim,
            mean: mean(dim, rows),
        }
    }

    /// Restores a fitted quantizer from its mean.
    pub fn from_mean(mean: Vec<f32>) -> Sign {
        Sign {
            dim: mean.len(),
            mean,
        }
    }

    /// The sign bits of one vector, `words_for(dim)` words.
    pub fn bits(&self, x: &[f32]) -> Vec<u64> {
        let mut out = vec![0u64; words_for(self.dim)];
        for (i, (&v, &m)) in x.iter().zip(&self.mean).enumerate() {
            if v > m {
                out[i / 64] |= 1 << (i % 64);
            }
        }
        out
    }

    /// Encodes stored vectors: one plane of sign bits each, no factors.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let n = rows.len() / self.dim;
        let mut planes = BitPlanes::zeros(n, 1, words_for(self.dim));
        for (r, x) in rows.chunks_exact(self.dim).enumerate() {
            planes.set(r, &self.bits(x));
        }
        Codes {
            len: n,
            planes: 1,
            words: planes.words,
            bits: planes.data,
            ..Default::default()
        }
    }

    /// Encodes a query exactly like a stored vector (sign codes compare code to code).
    pub fn encode_query(&self, q: &[f32]) -> QueryCode {
        QueryCode {
            planes: self.bits(q),
            qplanes: 1,
            ..Default::default()
        }
    }
}
