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

/// See [`Kernels::ip_planes_weighted_blocks`](super::Kernels::ip_planes_weighted_blocks).
pub fn ip_planes_weighted_blocks(
    query: &[u64],
    qplanes: usize,
    blocks: &[u64],
    cplanes: usize,
    weights: &[u32],
    words: usize,
    out: &mut [u32],
) {
    assert!(
        cplanes <= 8,
        "weighted plane products take at most 8 code planes"
    );
    let bw = cplanes * words * BLOCK;
    for (b, block) in blocks.chunks_exact(bw).enumerate() {
        for lane in 0..BLOCK {
            let mut acc = 0u32;
            for (p, &weight) in weights[..cplanes].iter().enumerate() {
                for j in 0..qplanes {
                    let mut c = 0u32;
                    for w in 0..words {
                        c += (block[(p * words + w) * BLOCK + lane] & query[j * words + w])
                            .count_ones();
                    }
                    acc = acc.wrapping_add(c.wrapping_shl(j as u32).wrapping_mul(weight));
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

/// See [`Kernels::ternary_ip_blocks`](super::Kernels::ternary_ip_blocks).
pub fn ternary_ip_blocks(
    query: &[u64],
    qplanes: usize,
    blocks: &[u64],
    words: usize,
    out: &mut [i32],
) {
    let bw = 2 * words * BLOCK;
    for (b, block) in blocks.chunks_exact(bw).enumerate() {
        for lane in 0..BLOCK {
            let mut acc = 0i32;
            for j in 0..qplanes {
                let (mut pos, mut nonzero) = (0i32, 0i32);
                for w in 0..words {
                    let q = query[j * words + w];
                    nonzero += (block[w * BLOCK + lane] & q).count_ones() as i32;
                    pos += (block[(words + w) * BLOCK + lane] & q).count_ones() as i32;
                }
                acc = acc.wrapping_add((2 * pos - nonzero) << j);
            }
            out[b * BLOCK + lane] = acc;
        }
    }
}

/// See [`Kernels::ternary_sym_blocks`](super::Kernels::ternary_sym_blocks): the two popcounts
/// of the definition, written as they read.
pub fn ternary_sym_blocks(query: &[u64], blocks: &[u64], words: usize, out: &mut [i32]) {
    let bw = 2 * words * BLOCK;
    let (qn, qs) = (&query[..words], &query[words..2 * words]);
    for (b, block) in blocks.chunks_exact(bw).enumerate() {
        for lane in 0..BLOCK {
            let (mut same, mut differ) = (0i32, 0i32);
            for w in 0..words {
                let n = block[w * BLOCK + lane];
                let s = block[(words + w) * BLOCK + lane];
                same += (n & qn[w] & !(s ^ qs[w])).count_ones() as i32;
                differ += (n & qn[w] & (s ^ qs[w])).count_ones() as i32;
            }
            out[b * BLOCK + lane] = same - differ;
        }
    }
}

/// The `f32` an FP8 byte stands for, scaled by `2^(bias − 127)` (see
/// [`Kernels::dot_f32_fp8`](super::Kernels::dot_f32_fp8)): its sign, exponent and mantissa bits
/// moved into the `f32` fields, `mant` mantissa bits (3 for E4M3, 2 for E5M2).
#[inline]
pub fn fp8_bits_to_f32(b: u8, mant: u32) -> f32 {
    f32::from_bits(((b as u32 & 0x80) << 24) | ((b as u32 & 0x7f) << (23 - mant)))
}

/// See [`Kernels::dot_f32_fp8`](super::Kernels::dot_f32_fp8) (summed left to right).
pub fn dot_f32_fp8(a: &[f32], b: &[u8], mant: u32) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x * fp8_bits_to_f32(y, mant))
        .sum()
}

/// See [`Kernels::dot_f32_u4`](super::Kernels::dot_f32_u4) (summed left to right).
pub fn dot_f32_u4(a: &[f32], b: &[u8]) -> f32 {
    a.iter()
        .enumerate()
        .map(|(i, &x)| x * ((b[i / 2] >> (4 * (i % 2))) & 15) as f32)
        .sum()
}
