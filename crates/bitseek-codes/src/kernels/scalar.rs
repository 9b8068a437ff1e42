//! Scalar twins of every kernel: the definition the SIMD kernels are tested against.

use crate::layout::BLOCK;

/// See [`Kernels::hamming_blocks`](super::Kernels::hamming_blocks).
pub fn hamming_blocks(query: &[u64], blocks: &[u64], words: usize, out: &mut [u32]) {
    let bw = words * BLOCK;
    for (b, block) in blocks.chunks_exact(bw).enumerate() {
        for lane in 0..BLOCK {
            let mut d = 0;
            for w in 0..words {
                d += (query[w] ^ block[w * BLOCK + lane]).count_ones();
            }
            out[b * BLOCK + lane] = d;
        }
    }
}

/// See [`Kernels::ip_planes_blocks`](super::Kernels::ip_planes_blocks).
pub fn ip_planes_blocks(
    query: &[u64],
    qplanes: usize,
    blocks: &[u64],
    cplanes: usize,
    words: usize,
    out: &mut [u32],
) {
    let bw = cplanes * words * BLOCK;
    for (b, block) in blocks.chunks_exact(bw).enumerate() {
        for lane in 0..BLOCK {
            let mut acc = 0u32;
            for p in 0..cplanes {
                for j in 0..qplanes {
                    let mut c = 0;
                    for w in 0..words {
                        c += (block[(p * words + w) * BLOCK + lane] & query[j * words + w])
                            .count_ones();
                    }
                    acc += c << (p + j);
                }
            }
            out[b * BLOCK + lane] = acc;
        }
    }
}

/// See [`Kernels::hamming`](super::Kernels::hamming).
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// See [`Kernels::and_popcount`](super::Kernels::and_popcount).
pub fn and_popcount(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x & y).count_ones()).sum()
}

/// See [`Kernels::dot_i8`](super::Kernels::dot_i8).
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// See [`Kernels::dot_f32_i8`](super::Kernels::dot_f32_i8) (summed left to right).
pub fn dot_f32_i8(a: &[f32], b: &[i8]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y as f32).sum()
}

/// See [`Kernels::dot_f32`](super::Kernels::dot_f32) (summed left to right).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}
