//! AVX2 kernels (with FMA and POPCNT): Haswell, Zen 1 and later.
//!
//! Each kernel is a `#[target_feature]` `unsafe fn` behind a safe wrapper. The wrappers are
//! written once in `simd_table.rs` and expanded here by `simd_table!`, so they are private to this
//! module and reachable only through `TABLE`, which `kernels/mod.rs` hands out only after
//! `has_avx2()` detected every feature in [`FEATURES`]: that detection is what makes the calls in
//! the wrappers sound. The wrappers also check slice lengths, so the raw-pointer loops stay in
//! bounds.
//!
//! AVX2 has no vector popcount, so bytes are counted with the nibble lookup of Muła, Kurz and Lemire
//! ("Faster population counts using AVX2 instructions", 2018): `vpshufb` looks up the count of each
//! nibble, byte counts are summed in `u8` lanes for up to 31 words (`31 * 8 = 248 < 256`), and
//! `vpsadbw` against zero folds each group of eight bytes, i.e. each `u64` lane, into a `u64` count.
//! A block word of eight codes is two ymm registers (codes 0..4 and 4..8).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::arch::x86_64::*;

use crate::layout::BLOCK;

/// The features every function here is compiled for (documentation; `has_avx2()` checks them).
#[allow(dead_code)]
pub(super) const FEATURES: &str = "avx2,fma,popcnt";

use super::fastscan::avx2 as fastscan_blocks;

simd_table!("avx2");

/// Words whose byte counts can be summed in `u8` lanes before they must be folded (`31 * 8 < 256`).
const FOLD: usize = 31;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Loads four `u64`.
///
/// # Safety
/// `p..p + 4` must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load4(p: *const u64) -> __m256i {
    // SAFETY: the caller guarantees the 32 bytes are readable; loadu needs no alignment.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The nibble-count table, repeated in both 128-bit lanes (`vpshufb` looks up within a lane).
#[inline]
#[target_feature(enable = "avx2")]
fn nibble_lut() -> __m256i {
    _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, //
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    )
}

/// Per-byte popcount of `v` (each byte 0..=8).
#[inline]
#[target_feature(enable = "avx2")]
fn popcnt_bytes(v: __m256i, lut: __m256i) -> __m256i {
    let m = _mm256_set1_epi8(0x0f);
    let lo = _mm256_and_si256(v, m);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m);
    _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi))
}

/// Folds byte counts into the four `u64` lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn fold(bytes: __m256i) -> __m256i {
    _mm256_sad_epu8(bytes, _mm256_setzero_si256())
}

/// Sum of the four `u64` lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_u64(v: __m256i) -> u64 {
    let s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    (_mm_cvtsi128_si64(s) as u64).wrapping_add(_mm_extract_epi64::<1>(s) as u64)
}

/// Sum of the eight `i32` lanes (wrapping).
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Sum of the eight `f32` lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Stores the low 32 bits of the `u64` lanes of `lo` (codes 0..4) and `hi` (codes 4..8) to
/// `out[0..8]`, or adds them to what is there when `accumulate`.
///
/// # Safety
/// `out..out + 8` must be writable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_u32x8(out: *mut u32, lo: __m256i, hi: __m256i, accumulate: bool) {
    // Per 128-bit lane: [lo.d0, lo.d2, hi.d0, hi.d2], i.e. [l0 l1 h0 h1 | l2 l3 h2 h3] ...
    let s = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(
        _mm256_castsi256_ps(lo),
        _mm256_castsi256_ps(hi),
    ));
    // ... then reorder the 64-bit pairs to [l0 l1 l2 l3 h0 h1 h2 h3].
    let mut r = _mm256_permute4x64_epi64::<0b11_01_10_00>(s);
    // SAFETY: the caller guarantees the 32 bytes are readable and writable; no alignment needed.
    unsafe {
        if accumulate {
            r = _mm256_add_epi32(r, _mm256_loadu_si256(out.cast()));
        }
        _mm256_storeu_si256(out.cast(), r);
    }
}

// ---------------------------------------------------------------------------------------------
// Blocked kernels.

/// Hamming distance of `q` to every code of `nblocks` one-plane blocks. `W` is the word count when
/// non-zero (monomorphised hot sizes), else `words` is used.
///
/// # Safety
/// The CPU has FEATURES; `q.len() == words`, `blocks` holds `nblocks * words * BLOCK` words and `out`
/// has room for `nblocks * BLOCK` values.
#[target_feature(enable = "avx2,popcnt")]
unsafe fn hamming_blocks_w<const W: usize>(
    q: &[u64],
    blocks: *const u64,
    nblocks: usize,
    words: usize,
    out: *mut u32,
) {
    let words = if W == 0 { words } else { W };
    let q = &q[..words];
    let bw = words * BLOCK;
    let lut = nibble_lut();
    for b in 0..nblocks {
        // SAFETY: `b < nblocks`: the block lies inside the `nblocks * bw` words the caller
        // guarantees.
        let p = unsafe { blocks.add(b * bw) };
        let mut lo64 = _mm256_setzero_si256();
        let mut hi64 = _mm256_setzero_si256();
        for (chunk, qc) in q.chunks(FOLD).enumerate() {
            let mut lo8 = _mm256_setzero_si256();
            let mut hi8 = _mm256_setzero_si256();
            for (k, &qw) in qc.iter().enumerate() {
                let w = chunk * FOLD + k;
                let qv = _mm256_set1_epi64x(qw as i64);
                // SAFETY: `w < words`, so both four-word halves lie inside the block.
                let (x0, x1) = unsafe { (load4(p.add(w * BLOCK)), load4(p.add(w * BLOCK + 4))) };
                let x0 = _mm256_xor_si256(x0, qv);
                let x1 = _mm256_xor_si256(x1, qv);
                lo8 = _mm256_add_epi8(lo8, popcnt_bytes(x0, lut));
                hi8 = _mm256_add_epi8(hi8, popcnt_bytes(x1, lut));
            }
            lo64 = _mm256_add_epi64(lo64, fold(lo8));
            hi64 = _mm256_add_epi64(hi64, fold(hi8));
        }
        // SAFETY: `b < nblocks`, so the eight values lie inside the room the caller guarantees.
        unsafe { store_u32x8(out.add(b * BLOCK), lo64, hi64, false) };
    }
}

/// `Σ_p Σ_j 2^(p + j0 + j) popcnt(c_p AND q_j)` for the `QP` query planes in `q` (plane-major,
/// `words` words each, standing for query planes `j0..j0 + QP`) against every code of `nblocks`
/// blocks of `cplanes` planes; stored to `out`, or added to it when `accumulate`. `W` is the word
/// count when non-zero, else `words` is used. With `WT` code plane `p` weighs `weights[p]` instead
/// of `2^p` (`Σ_p weights[p] Σ_j 2^(j0 + j) popcnt(c_p AND q_j)`, modulo 2^32).
///
/// The nibble split is shared between query planes: the low nibbles of `x AND q` are
/// `x AND (q AND 0x0f..)` and the high ones `(x >> 4) AND ((q >> 4) AND 0x0f..)`, so each code word
/// is split once and each query plane costs two ANDs, two lookups and two adds.
///
/// # Safety
/// The CPU has FEATURES; `q.len() == QP * words`, `blocks` holds `nblocks * cplanes * words * BLOCK`
/// words, `weights` at least `cplanes` values when `WT`, and `out` has room for `nblocks * BLOCK`
/// values.
// `weights` is empty unless WT, so the plane loop counts planes rather than iterating it.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn ip_w<const QP: usize, const W: usize, const WT: bool>(
    q: &[u64],
    j0: u32,
    accumulate: bool,
    blocks: *const u64,
    nblocks: usize,
    cplanes: usize,
    weights: &[u32],
    words: usize,
    out: *mut u32,
) {
    let words = if W == 0 { words } else { W };
    let q = &q[..QP * words];
    let pw = words * BLOCK;
    let bw = cplanes * pw;
    let lut = nibble_lut();
    let m = _mm256_set1_epi8(0x0f);
    // The weights in a fixed array, indexed without a bounds check in the block loop.
    const MAX_WT: usize = 8;
    let mut wts = [0u32; MAX_WT];
    if WT {
        wts[..cplanes.min(MAX_WT)].copy_from_slice(&weights[..cplanes.min(MAX_WT)]);
    }
    for b in 0..nblocks {
        let mut tot_lo = _mm256_setzero_si256();
        let mut tot_hi = _mm256_setzero_si256();
        for p in 0..cplanes {
            let mut w0 = 0;
            while w0 < words {
                let w1 = (w0 + FOLD).min(words);
                let mut lo8 = [_mm256_setzero_si256(); QP];
                let mut hi8 = [_mm256_setzero_si256(); QP];
                for w in w0..w1 {
                    // SAFETY: `b < nblocks`, `p < cplanes`, `w < words`: both four-word halves lie
                    // inside the `nblocks * bw` words the caller guarantees.
                    let (x0, x1) = unsafe {
                        let pp = blocks.add(b * bw + p * pw + w * BLOCK);
                        (load4(pp), load4(pp.add(4)))
                    };
                    let s0 = _mm256_srli_epi16::<4>(x0);
                    let s1 = _mm256_srli_epi16::<4>(x1);
                    for j in 0..QP {
                        let qv = _mm256_set1_epi64x(q[j * words + w] as i64);
                        let ql = _mm256_and_si256(qv, m);
                        let qh = _mm256_and_si256(_mm256_srli_epi16::<4>(qv), m);
                        let c0 = _mm256_add_epi8(
                            _mm256_shuffle_epi8(lut, _mm256_and_si256(x0, ql)),
                            _mm256_shuffle_epi8(lut, _mm256_and_si256(s0, qh)),
                        );
                        let c1 = _mm256_add_epi8(
                            _mm256_shuffle_epi8(lut, _mm256_and_si256(x1, ql)),
                            _mm256_shuffle_epi8(lut, _mm256_and_si256(s1, qh)),
                        );
                        lo8[j] = _mm256_add_epi8(lo8[j], c0);
                        hi8[j] = _mm256_add_epi8(hi8[j], c1);
                    }
                }
                // Horner over the query planes: t = 2t + count_j, highest plane first.
                let mut tl = fold(lo8[QP - 1]);
                let mut th = fold(hi8[QP - 1]);
                for j in (0..QP - 1).rev() {
                    tl = _mm256_add_epi64(_mm256_add_epi64(tl, tl), fold(lo8[j]));
                    th = _mm256_add_epi64(_mm256_add_epi64(th, th), fold(hi8[j]));
                }
                let shift = _mm_cvtsi32_si128((if WT { j0 } else { p as u32 + j0 }) as i32);
                let (mut tl, mut th) = (_mm256_sll_epi64(tl, shift), _mm256_sll_epi64(th, shift));
                if WT {
                    // Low 32 bits of each lane times the weight: exact modulo 2^32, as the output.
                    let w = _mm256_set1_epi64x(wts[p % MAX_WT] as i64);
                    tl = _mm256_mul_epu32(tl, w);
                    th = _mm256_mul_epu32(th, w);
                }
                tot_lo = _mm256_add_epi64(tot_lo, tl);
                tot_hi = _mm256_add_epi64(tot_hi, th);
                w0 = w1;
            }
        }
        // SAFETY: `b < nblocks`, so the eight values lie inside the room the caller guarantees.
        unsafe { store_u32x8(out.add(b * BLOCK), tot_lo, tot_hi, accumulate) };
    }
}

// ---------------------------------------------------------------------------------------------
// Pairwise kernels.

/// `popcnt(a AND b)` when `AND`, else `popcnt(a XOR b)`, over the common length.
///
/// # Safety
/// The CPU has avx2 and popcnt.
#[target_feature(enable = "avx2,popcnt")]
unsafe fn pair_popcount<const AND: bool>(a: &[u64], b: &[u64]) -> u32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let lut = nibble_lut();
    let full = n / 4;
    let mut acc = _mm256_setzero_si256();
    let mut c = 0;
    while c < full {
        let end = (c + FOLD).min(full);
        let mut acc8 = _mm256_setzero_si256();
        for t in c..end {
            // SAFETY: `t < n / 4`, so words `4t..4t + 4` lie inside both slices.
            let (x, y) = unsafe { (load4(pa.add(4 * t)), load4(pb.add(4 * t))) };
            let v = if AND {
                _mm256_and_si256(x, y)
            } else {
                _mm256_xor_si256(x, y)
            };
            acc8 = _mm256_add_epi8(acc8, popcnt_bytes(v, lut));
        }
        acc = _mm256_add_epi64(acc, fold(acc8));
        c = end;
    }
    let mut sum = hsum_u64(acc);
    for i in 4 * full..n {
        let v = if AND { a[i] & b[i] } else { a[i] ^ b[i] };
        sum += u64::from(v.count_ones());
    }
    sum as u32
}

/// Exact `Σ a_i b_i`: sign-extend 16 bytes to `i16`, `vpmaddwd` to `i32` (a pair of products is at
/// most `2 * 128 * 128 = 32768`, fine in `i32`), two accumulators. Wrapping like the scalar sum.
///
/// # Safety
/// The CPU has avx2.
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_impl(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    // SAFETY: every load reads 16 bytes from `i` or `i + 16` with the end `<= n`.
    unsafe {
        while i + 32 <= n {
            let a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i).cast()));
            let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i).cast()));
            let a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i + 16).cast()));
            let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i + 16).cast()));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a0, b0));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a1, b1));
            i += 32;
        }
        if i + 16 <= n {
            let a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i).cast()));
            let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i).cast()));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a0, b0));
            i += 16;
        }
    }
    let mut sum = hsum_i32(_mm256_add_epi32(acc0, acc1));
    for k in i..n {
        sum = sum.wrapping_add(i32::from(a[k]) * i32::from(b[k]));
    }
    sum
}

/// `Σ a_i b_i` over `f32` and `i8` with four FMA accumulators.
///
/// # Safety
/// The CPU has avx2 and fma.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_i8_impl(a: &[f32], b: &[i8]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 floats / 8 bytes from `i + 8k` with the end `<= n`.
    unsafe {
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                let y = _mm_loadl_epi64(pb.add(i + 8 * k).cast());
                let y = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(y));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(pb.add(i).cast())));
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut sum = hsum_ps(s);
    for k in i..n {
        sum += a[k] * f32::from(b[k]);
    }
    sum
}

/// `Σ a_i b_i` over `f32` with four FMA accumulators.
///
/// # Safety
/// The CPU has avx2 and fma.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 floats from `i + 8k` with the end `<= n`.
    unsafe {
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                let y = _mm256_loadu_ps(pb.add(i + 8 * k));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = _mm256_loadu_ps(pb.add(i));
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut sum = hsum_ps(s);
    for k in i..n {
        sum += a[k] * b[k];
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Ternary and sub-byte kernels.

/// `Σ_j 2^j (2·popcnt(s AND q_j) − popcnt(n AND q_j))` for every two-plane ternary code of
/// `nblocks` blocks. AVX2 has no vector popcount and the nibble lookup pays off only across many
/// planes, so this counts each lane with the scalar POPCNT instruction (one code word pair at a
/// time, every query plane against it).
///
/// # Safety
/// The CPU has FEATURES; `q.len() == qplanes * words`, `blocks` holds `nblocks * 2 * words * BLOCK`
/// words and `out` has room for `nblocks * BLOCK` values.
#[target_feature(enable = "avx2,popcnt")]
unsafe fn ternary_ip_impl(
    q: &[u64],
    qplanes: usize,
    blocks: *const u64,
    nblocks: usize,
    words: usize,
    out: *mut i32,
) {
    let pw = words * BLOCK;
    // SAFETY: the caller guarantees `nblocks * 2 * pw` readable words and `nblocks * BLOCK`
    // writable values.
    let (blocks, out) = unsafe {
        (
            std::slice::from_raw_parts(blocks, nblocks * 2 * pw),
            std::slice::from_raw_parts_mut(out, nblocks * BLOCK),
        )
    };
    for (block, out) in blocks.chunks_exact(2 * pw).zip(out.chunks_exact_mut(BLOCK)) {
        let mut acc = [0i32; BLOCK];
        for j in (0..qplanes).rev() {
            let mut plane = [0i32; BLOCK];
            for w in 0..words {
                let qw = q[j * words + w];
                let (n, s) = (
                    &block[w * BLOCK..][..BLOCK],
                    &block[pw + w * BLOCK..][..BLOCK],
                );
                for l in 0..BLOCK {
                    plane[l] +=
                        2 * (s[l] & qw).count_ones() as i32 - (n[l] & qw).count_ones() as i32;
                }
            }
            for l in 0..BLOCK {
                acc[l] = acc[l].wrapping_add(acc[l]).wrapping_add(plane[l]);
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// `popcnt(m) − 2·popcnt(m ∧ (s⊕s′))`, `m = n∧n′`, summed over the words, for the two-plane
/// ternary query `q` (`n′` then `s′`) against every two-plane code of `nblocks` blocks. Both counts
/// go through the nibble lookup in byte lanes, folded to `u64` every `FOLD` words (as
/// `hamming_blocks_w`); the low 32 bits of each lane are the result. `W` is the word count when
/// non-zero, else `words` is used.
///
/// # Safety
/// The CPU has FEATURES; `q.len() == 2 * words`, `blocks` holds `nblocks * 2 * words * BLOCK` words
/// and `out` has room for `nblocks * BLOCK` values.
#[target_feature(enable = "avx2,popcnt")]
unsafe fn ternary_sym_w<const W: usize>(
    q: &[u64],
    blocks: *const u64,
    nblocks: usize,
    words: usize,
    out: *mut i32,
) {
    let words = if W == 0 { words } else { W };
    let (qn, qs) = (&q[..words], &q[words..2 * words]);
    let pw = words * BLOCK;
    let lut = nibble_lut();
    for b in 0..nblocks {
        // SAFETY: `b < nblocks`: the block lies inside the `nblocks * 2 * pw` words the caller
        // guarantees.
        let p = unsafe { blocks.add(b * 2 * pw) };
        let mut lanes = [_mm256_setzero_si256(); 4]; // m low, m high, differ low, differ high
        let mut w0 = 0;
        while w0 < words {
            let w1 = (w0 + FOLD).min(words);
            let mut bytes = [_mm256_setzero_si256(); 4];
            for w in w0..w1 {
                let n = _mm256_set1_epi64x(qn[w] as i64);
                let s = _mm256_set1_epi64x(qs[w] as i64);
                for half in 0..2 {
                    // SAFETY: `w < words`, `half < 2`: both four-word loads lie inside the block.
                    let (cn, cs) = unsafe {
                        (
                            load4(p.add(w * BLOCK + 4 * half)),
                            load4(p.add(pw + w * BLOCK + 4 * half)),
                        )
                    };
                    let m = _mm256_and_si256(cn, n);
                    let differ = _mm256_and_si256(m, _mm256_xor_si256(cs, s));
                    bytes[half] = _mm256_add_epi8(bytes[half], popcnt_bytes(m, lut));
                    bytes[2 + half] = _mm256_add_epi8(bytes[2 + half], popcnt_bytes(differ, lut));
                }
            }
            for (l, v) in lanes.iter_mut().zip(bytes) {
                *l = _mm256_add_epi64(*l, fold(v));
            }
            w0 = w1;
        }
        let lo = _mm256_sub_epi64(lanes[0], _mm256_add_epi64(lanes[2], lanes[2]));
        let hi = _mm256_sub_epi64(lanes[1], _mm256_add_epi64(lanes[3], lanes[3]));
        // SAFETY: `b < nblocks`, so the eight values lie inside the room the caller guarantees.
        unsafe { store_u32x8(out.add(b * BLOCK).cast(), lo, hi, false) };
    }
}

/// `Σ a_i · f(b_i)` with FP8 bytes read as `f32` bit patterns (see `Kernels::dot_f32_fp8`), eight
/// at a time.
///
/// # Safety
/// The CPU has avx2 and fma.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_fp8_impl(a: &[f32], b: &[u8], mant: u32) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let shift = _mm_cvtsi32_si128(23 - mant as i32);
    let sign_mask = _mm256_set1_epi32(0x80);
    let rest_mask = _mm256_set1_epi32(0x7f);
    let decode = |v: __m128i| {
        let x = _mm256_cvtepu8_epi32(v);
        let sign = _mm256_slli_epi32::<24>(_mm256_and_si256(x, sign_mask));
        let rest = _mm256_sll_epi32(_mm256_and_si256(x, rest_mask), shift);
        _mm256_castsi256_ps(_mm256_or_si256(sign, rest))
    };
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    // SAFETY: each step reads 8 floats and 8 bytes from `i` with `i + 8 <= n`.
    unsafe {
        while i + 16 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                let y = decode(_mm_loadl_epi64(pb.add(i + 8 * k).cast()));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 16;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = decode(_mm_loadl_epi64(pb.add(i).cast()));
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
    }
    let tail = super::scalar::dot_f32_fp8(&a[i..n], &b[i..n], mant);
    hsum_ps(_mm256_add_ps(acc[0], acc[1])) + tail
}

/// `Σ a_i · u_i` over 4-bit values two per byte (see `Kernels::dot_f32_u4`), eight at a time.
///
/// # Safety
/// The CPU has avx2 and fma; `b.len() >= a.len().div_ceil(2)`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_u4_impl(a: &[f32], b: &[u8]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let low = _mm_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    // SAFETY: each step reads 16 floats from `i` and 8 bytes from `i / 2` with `i + 16 <= n`, so
    // the bytes end at `(i + 16) / 2 <= b.len()`.
    unsafe {
        while i + 16 <= n {
            let bytes = _mm_loadl_epi64(pb.add(i / 2).cast());
            let lo = _mm_and_si128(bytes, low);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), low);
            let u = _mm_unpacklo_epi8(lo, hi);
            let y0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(u));
            let y1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(u)));
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), y0, acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), y1, acc[1]);
            i += 16;
        }
    }
    let tail = super::scalar::dot_f32_u4(&a[i..], &b[i / 2..]);
    hsum_ps(_mm256_add_ps(acc[0], acc[1])) + tail
}
