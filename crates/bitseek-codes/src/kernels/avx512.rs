//! AVX-512 kernels: F, BW, VPOPCNTDQ and VNNI (Ice Lake, Zen 4 and later).
//!
//! Each kernel is a `#[target_feature]` `unsafe fn` behind a safe wrapper. The wrappers are
//! written once in `simd_table.rs` and expanded here by `simd_table!`, so they are private to this
//! module and reachable only through `TABLE`, which `kernels/mod.rs` hands out only after
//! `has_avx512()` detected every feature in [`FEATURES`]: that detection is what makes the calls in
//! the wrappers sound. The wrappers also check slice lengths, so the raw-pointer loops stay in
//! bounds.
//!
//! Blocked kernels keep the eight per-code counts of a block in the eight `u64` lanes of one zmm
//! register, so one load reads one word of eight codes and no horizontal sum is needed. Common word
//! counts get their own monomorphised loop (`W != 0`) so the word loop is fully unrolled and the
//! query broadcasts are hoisted out of the block loop.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::arch::x86_64::*;

use crate::layout::BLOCK;

/// The features every function here is compiled for (documentation; `has_avx512()` checks them).
#[allow(dead_code)]
pub(super) const FEATURES: &str = "avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx512vnni";

use super::fastscan::avx512 as fastscan_blocks;

simd_table!("avx512");

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Loads eight `u64`.
///
/// # Safety
/// `p..p + 8` must be readable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load8(p: *const u64) -> __m512i {
    // SAFETY: the caller guarantees the 64 bytes are readable; loadu needs no alignment.
    unsafe { _mm512_loadu_epi64(p.cast()) }
}

/// Stores the low 32 bits of each of the eight `u64` lanes of `v` to `out[0..8]`, or adds them to
/// what is there when `accumulate`.
///
/// # Safety
/// `out..out + 8` must be writable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_u32x8(out: *mut u32, v: __m512i, accumulate: bool) {
    let mut r = _mm512_cvtepi64_epi32(v);
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
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
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
    let mut b = 0;
    // SAFETY: every pointer below is `blocks + b * bw + w * BLOCK` with `b < nblocks`, `w < words`
    // (eight words read) or `out + b * BLOCK` with `b < nblocks` (eight values written), inside the
    // ranges the caller guarantees.
    unsafe {
        // Two blocks per iteration: two independent accumulator chains.
        while b + 2 <= nblocks {
            let p0 = blocks.add(b * bw);
            let p1 = p0.add(bw);
            let mut a0 = _mm512_setzero_si512();
            let mut a1 = _mm512_setzero_si512();
            for (w, &qw) in q.iter().enumerate() {
                let qv = _mm512_set1_epi64(qw as i64);
                let x0 = _mm512_xor_si512(load8(p0.add(w * BLOCK)), qv);
                let x1 = _mm512_xor_si512(load8(p1.add(w * BLOCK)), qv);
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(x0));
                a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(x1));
            }
            store_u32x8(out.add(b * BLOCK), a0, false);
            store_u32x8(out.add((b + 1) * BLOCK), a1, false);
            b += 2;
        }
        if b < nblocks {
            let p0 = blocks.add(b * bw);
            let mut a0 = _mm512_setzero_si512();
            for (w, &qw) in q.iter().enumerate() {
                let x0 = _mm512_xor_si512(load8(p0.add(w * BLOCK)), _mm512_set1_epi64(qw as i64));
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(x0));
            }
            store_u32x8(out.add(b * BLOCK), a0, false);
        }
    }
}

/// `Σ_p Σ_j 2^(p + j0 + j) popcnt(c_p AND q_j)` for the `QP` query planes in `q` (plane-major,
/// `words` words each, standing for query planes `j0..j0 + QP`) against every code of `nblocks`
/// blocks of `cplanes` planes; stored to `out`, or added to it when `accumulate`. `W` is the word
/// count when non-zero, else `words` is used. With `WT` code plane `p` weighs `weights[p]` instead
/// of `2^p` (`Σ_p weights[p] Σ_j 2^(j0 + j) popcnt(c_p AND q_j)`, modulo 2^32).
///
/// Each code word is loaded once and ANDed with all `QP` query planes; the `QP` per-plane counts are
/// combined with Horner's rule (`t = 2t + acc_j`) and shifted by `p + j0` once per code plane.
///
/// # Safety
/// The CPU has FEATURES; `q.len() == QP * words`, `blocks` holds `nblocks * cplanes * words * BLOCK`
/// words, `weights` at least `cplanes` values when `WT`, and `out` has room for `nblocks * BLOCK`
/// values.
// `weights` is empty unless WT, so the plane loop counts planes rather than iterating it.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
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
    // The weights in a fixed array: indexing it needs no bounds check in the block loop, which
    // kept the query broadcasts from being hoisted (the weighted loop ran 1.3–1.5× slower).
    const MAX_WT: usize = 8;
    let mut wts = [0u32; MAX_WT];
    if WT {
        wts[..cplanes.min(MAX_WT)].copy_from_slice(&weights[..cplanes.min(MAX_WT)]);
    }
    for b in 0..nblocks {
        let mut total = _mm512_setzero_si512();
        for p in 0..cplanes {
            let mut acc = [_mm512_setzero_si512(); QP];
            for w in 0..words {
                // SAFETY: `b < nblocks`, `p < cplanes`, `w < words`: the eight words read lie inside
                // the `nblocks * bw` words the caller guarantees.
                let x = unsafe { load8(blocks.add(b * bw + p * pw + w * BLOCK)) };
                for (j, a) in acc.iter_mut().enumerate() {
                    let qv = _mm512_set1_epi64(q[j * words + w] as i64);
                    *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(_mm512_and_si512(x, qv)));
                }
            }
            let mut t = acc[QP - 1];
            for j in (0..QP - 1).rev() {
                t = _mm512_add_epi64(_mm512_add_epi64(t, t), acc[j]);
            }
            let shift = _mm_cvtsi32_si128((if WT { j0 } else { p as u32 + j0 }) as i32);
            let mut t = _mm512_sll_epi64(t, shift);
            if WT {
                // Low 32 bits of each lane times the weight: exact modulo 2^32, as the output.
                t = _mm512_mul_epu32(t, _mm512_set1_epi64(wts[p % MAX_WT] as i64));
            }
            total = _mm512_add_epi64(total, t);
        }
        // SAFETY: `b < nblocks`, so the eight values lie inside the room the caller guarantees.
        unsafe { store_u32x8(out.add(b * BLOCK), total, accumulate) };
    }
}

// ---------------------------------------------------------------------------------------------
// Pairwise kernels.

/// `popcnt(a AND b)` when `AND`, else `popcnt(a XOR b)`, over the common length.
///
/// # Safety
/// The CPU has avx512f and avx512vpopcntdq.
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn pair_popcount<const AND: bool>(a: &[u64], b: &[u64]) -> u32 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn op<const AND: bool>(x: __m512i, y: __m512i) -> __m512i {
        _mm512_popcnt_epi64(if AND {
            _mm512_and_si512(x, y)
        } else {
            _mm512_xor_si512(x, y)
        })
    }
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_si512();
    let mut acc1 = _mm512_setzero_si512();
    let mut i = 0;
    // SAFETY: full loads read `i..i + 8` or `i..i + 16` with that end `<= n`; the masked tail load
    // starts at `i < n` and enables only lanes `i..n` (masked-off lanes are not accessed).
    unsafe {
        while i + 16 <= n {
            acc0 = _mm512_add_epi64(acc0, op::<AND>(load8(pa.add(i)), load8(pb.add(i))));
            acc1 = _mm512_add_epi64(acc1, op::<AND>(load8(pa.add(i + 8)), load8(pb.add(i + 8))));
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm512_add_epi64(acc0, op::<AND>(load8(pa.add(i)), load8(pb.add(i))));
            i += 8;
        }
        if i < n {
            let m: __mmask8 = (1u8 << (n - i)) - 1;
            let x = _mm512_maskz_loadu_epi64(m, pa.add(i).cast());
            let y = _mm512_maskz_loadu_epi64(m, pb.add(i).cast());
            acc1 = _mm512_add_epi64(acc1, op::<AND>(x, y));
        }
    }
    _mm512_reduce_add_epi64(_mm512_add_epi64(acc0, acc1)) as u32
}

/// Exact `Σ a_i b_i` with VNNI: `vpdpbusd` multiplies unsigned by signed bytes, so `a` is biased to
/// `a + 128` (XOR 0x80) and `128 Σ b_i` (also from `vpdpbusd`, against ones) is subtracted at the
/// end. All arithmetic wraps, so the result is exact modulo 2^32, like the scalar `i32` sum.
///
/// # Safety
/// The CPU has avx512f, avx512bw and avx512vnni.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_i8_impl(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let bias = _mm512_set1_epi8(i8::MIN);
    let ones = _mm512_set1_epi8(1);
    let zero = _mm512_setzero_si512();
    let (mut acc0, mut acc1, mut sb0, mut sb1) = (zero, zero, zero, zero);
    let mut i = 0;
    // SAFETY: full loads read `i..i + 64` or `i..i + 128` with that end `<= n`; the masked tail
    // starts at `i < n` and enables only bytes `i..n`.
    unsafe {
        while i + 128 <= n {
            let a0 = _mm512_xor_si512(_mm512_loadu_epi8(pa.add(i)), bias);
            let b0 = _mm512_loadu_epi8(pb.add(i));
            let a1 = _mm512_xor_si512(_mm512_loadu_epi8(pa.add(i + 64)), bias);
            let b1 = _mm512_loadu_epi8(pb.add(i + 64));
            acc0 = _mm512_dpbusd_epi32(acc0, a0, b0);
            sb0 = _mm512_dpbusd_epi32(sb0, ones, b0);
            acc1 = _mm512_dpbusd_epi32(acc1, a1, b1);
            sb1 = _mm512_dpbusd_epi32(sb1, ones, b1);
            i += 128;
        }
        if i + 64 <= n {
            let a0 = _mm512_xor_si512(_mm512_loadu_epi8(pa.add(i)), bias);
            let b0 = _mm512_loadu_epi8(pb.add(i));
            acc0 = _mm512_dpbusd_epi32(acc0, a0, b0);
            sb0 = _mm512_dpbusd_epi32(sb0, ones, b0);
            i += 64;
        }
        if i < n {
            let m: __mmask64 = (1u64 << (n - i)) - 1;
            // Masked-off bytes are zero in both: (0 ^ 0x80) * 0 adds nothing.
            let a1 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, pa.add(i)), bias);
            let b1 = _mm512_maskz_loadu_epi8(m, pb.add(i));
            acc1 = _mm512_dpbusd_epi32(acc1, a1, b1);
            sb1 = _mm512_dpbusd_epi32(sb1, ones, b1);
        }
    }
    let biased = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
    let sum_b = _mm512_reduce_add_epi32(_mm512_add_epi32(sb0, sb1));
    biased.wrapping_sub(sum_b.wrapping_mul(128))
}

/// `Σ a_i b_i` over `f32` and `i8` with four FMA accumulators.
///
/// # Safety
/// The CPU has avx512f and avx512bw.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dot_f32_i8_impl(a: &[f32], b: &[i8]) -> f32 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn widen(v: __m128i) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v))
    }
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: full loads read 16 floats / 16 bytes from `i + 16k` with the end `<= n`; the masked
    // tail starts at `i < n` and enables only elements `i..n`.
    unsafe {
        while i + 64 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * k));
                let y = widen(_mm_loadu_si128(pb.add(i + 16 * k).cast()));
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            let y = widen(_mm_loadu_si128(pb.add(i).cast()));
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            let y = widen(_mm512_castsi512_si128(_mm512_maskz_loadu_epi8(
                m as u64,
                pb.add(i),
            )));
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        }
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(s)
}

/// `Σ a_i b_i` over `f32` with four FMA accumulators.
///
/// # Safety
/// The CPU has avx512f.
#[target_feature(enable = "avx512f")]
unsafe fn dot_f32_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: full loads read 16 floats from `i + 16k` with the end `<= n`; the masked tail starts
    // at `i < n` and enables only elements `i..n`.
    unsafe {
        while i + 64 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * k));
                let y = _mm512_loadu_ps(pb.add(i + 16 * k));
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            let y = _mm512_loadu_ps(pb.add(i));
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            let y = _mm512_maskz_loadu_ps(m, pb.add(i));
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        }
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(s)
}

// ---------------------------------------------------------------------------------------------
// Ternary and sub-byte kernels.

/// `Σ_j 2^j (2·popcnt(s AND q_j) − popcnt(n AND q_j))` for the `qplanes` query planes in `q` against
/// every two-plane ternary code (`n`, then `s`) of `nblocks` blocks, stored to `out`. Each code
/// word pair is loaded once and ANDed with every query plane; the per-plane differences are
/// combined by Horner's rule in `i64` lanes, whose low 32 bits are the wrapping `i32` result.
///
/// # Safety
/// The CPU has FEATURES; `q.len() == qplanes * words`, `blocks` holds `nblocks * 2 * words * BLOCK`
/// words and `out` has room for `nblocks * BLOCK` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
unsafe fn ternary_ip_impl(
    q: &[u64],
    qplanes: usize,
    blocks: *const u64,
    nblocks: usize,
    words: usize,
    out: *mut i32,
) {
    let pw = words * BLOCK;
    for b in 0..nblocks {
        let mut total = _mm512_setzero_si512();
        for j in (0..qplanes).rev() {
            let (mut pos, mut nonzero) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for w in 0..words {
                let qv = _mm512_set1_epi64(q[j * words + w] as i64);
                // SAFETY: `b < nblocks`, `w < words`: both eight-word loads lie inside the
                // `nblocks * 2 * pw` words the caller guarantees.
                let (n, s) = unsafe {
                    let p = blocks.add(b * 2 * pw + w * BLOCK);
                    (load8(p), load8(p.add(pw)))
                };
                nonzero = _mm512_add_epi64(nonzero, _mm512_popcnt_epi64(_mm512_and_si512(n, qv)));
                pos = _mm512_add_epi64(pos, _mm512_popcnt_epi64(_mm512_and_si512(s, qv)));
            }
            let plane = _mm512_sub_epi64(_mm512_add_epi64(pos, pos), nonzero);
            total = _mm512_add_epi64(_mm512_add_epi64(total, total), plane);
        }
        // SAFETY: `b < nblocks`, so the eight values lie inside the room the caller guarantees.
        unsafe { store_u32x8(out.add(b * BLOCK).cast(), total, false) };
    }
}

/// `popcnt(m) − 2·popcnt(m ∧ (s⊕s′))`, `m = n∧n′`, summed over the words, for the two-plane
/// ternary query `q` (`n′` then `s′`) against every two-plane code of `nblocks` blocks: per word
/// one AND, one three-input `vpternlogq` (`m ∧ (s ⊕ s′)`) and two popcounts, two blocks per
/// iteration for two independent chains. The low 32 bits of each `i64` lane are the result. `W` is
/// the word count when non-zero, else `words` is used.
///
/// # Safety
/// The CPU has FEATURES; `q.len() == 2 * words`, `blocks` holds `nblocks * 2 * words * BLOCK` words
/// and `out` has room for `nblocks * BLOCK` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
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
    // `a ∧ (b ⊕ c)`: the truth table of A = 0xf0, B = 0xcc, C = 0xaa.
    const AND_XOR: i32 = 0xf0 & (0xcc ^ 0xaa);
    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn step(
        n: __m512i,
        s: __m512i,
        qn: __m512i,
        qs: __m512i,
        acc: (__m512i, __m512i),
    ) -> (__m512i, __m512i) {
        let m = _mm512_and_si512(n, qn);
        let differ = _mm512_ternarylogic_epi64::<AND_XOR>(m, s, qs);
        (
            _mm512_add_epi64(acc.0, _mm512_popcnt_epi64(m)),
            _mm512_add_epi64(acc.1, _mm512_popcnt_epi64(differ)),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn finish(acc: (__m512i, __m512i)) -> __m512i {
        _mm512_sub_epi64(acc.0, _mm512_add_epi64(acc.1, acc.1))
    }
    let zero = (_mm512_setzero_si512(), _mm512_setzero_si512());
    let mut b = 0;
    // SAFETY: every pointer below is `blocks + b * 2 * pw + w * BLOCK` (+ `pw` for the sign plane)
    // with `b < nblocks`, `w < words` (eight words read), or `out + b * BLOCK` with `b < nblocks`
    // (eight values written), inside the ranges the caller guarantees.
    unsafe {
        while b + 2 <= nblocks {
            let p0 = blocks.add(b * 2 * pw);
            let p1 = p0.add(2 * pw);
            let (mut a0, mut a1) = (zero, zero);
            for w in 0..words {
                let n = _mm512_set1_epi64(qn[w] as i64);
                let s = _mm512_set1_epi64(qs[w] as i64);
                let o = w * BLOCK;
                a0 = step(load8(p0.add(o)), load8(p0.add(pw + o)), n, s, a0);
                a1 = step(load8(p1.add(o)), load8(p1.add(pw + o)), n, s, a1);
            }
            store_u32x8(out.add(b * BLOCK).cast(), finish(a0), false);
            store_u32x8(out.add((b + 1) * BLOCK).cast(), finish(a1), false);
            b += 2;
        }
        if b < nblocks {
            let p0 = blocks.add(b * 2 * pw);
            let mut a0 = zero;
            for w in 0..words {
                let n = _mm512_set1_epi64(qn[w] as i64);
                let s = _mm512_set1_epi64(qs[w] as i64);
                let o = w * BLOCK;
                a0 = step(load8(p0.add(o)), load8(p0.add(pw + o)), n, s, a0);
            }
            store_u32x8(out.add(b * BLOCK).cast(), finish(a0), false);
        }
    }
}

/// `Σ a_i · f(b_i)` with FP8 bytes read as `f32` bit patterns (see `Kernels::dot_f32_fp8`): each
/// 16 bytes are widened to `i32`, the sign moved to bit 31 and the rest shifted by `23 − mant`.
///
/// # Safety
/// The CPU has avx512f, avx512bw and avx512vl.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dot_f32_fp8_impl(a: &[f32], b: &[u8], mant: u32) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let shift = _mm_cvtsi32_si128(23 - mant as i32);
    let sign_mask = _mm512_set1_epi32(0x80);
    let rest_mask = _mm512_set1_epi32(0x7f);
    let decode = |v: __m128i| {
        let x = _mm512_cvtepu8_epi32(v);
        let sign = _mm512_slli_epi32::<24>(_mm512_and_si512(x, sign_mask));
        let rest = _mm512_sll_epi32(_mm512_and_si512(x, rest_mask), shift);
        _mm512_castsi512_ps(_mm512_or_si512(sign, rest))
    };
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut i = 0;
    // SAFETY: full loads read 16 floats / 16 bytes from `i` with `i + 16 <= n`; the masked tail
    // starts at `i < n` and enables only elements `i..n`.
    unsafe {
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * k));
                let y = decode(_mm_loadu_si128(pb.add(i + 16 * k).cast()));
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            let y = decode(_mm_loadu_si128(pb.add(i).cast()));
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            let y = decode(_mm_maskz_loadu_epi8(m, pb.add(i).cast()));
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// `Σ a_i · u_i` over 4-bit values two per byte (see `Kernels::dot_f32_u4`): each 8 bytes are split
/// into low and high nibbles, interleaved back into 16 values in order and widened to `f32`.
///
/// # Safety
/// The CPU has avx512f, avx512bw and avx512vl; `b.len() >= a.len().div_ceil(2)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dot_f32_u4_impl(a: &[f32], b: &[u8]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let low = _mm_set1_epi8(0x0f);
    let widen = |bytes: __m128i| {
        let lo = _mm_and_si128(bytes, low);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), low);
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)))
    };
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut i = 0;
    // SAFETY: full steps read 16 floats from `i` and 8 bytes from `i / 2` with `i + 16 <= n`, so
    // the bytes end at `(i + 16) / 2 <= n.div_ceil(2) <= b.len()`; the masked tail reads floats
    // `i..n` and bytes `i / 2..n.div_ceil(2)` only.
    unsafe {
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * k));
                let y = widen(_mm_loadl_epi64(pb.add((i + 16 * k) / 2).cast()));
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            let y = widen(_mm_loadl_epi64(pb.add(i / 2).cast()));
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let bm: __mmask16 = ((1u32 << (n - i).div_ceil(2)) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            // Nibbles past `n` meet zero floats, so they add nothing.
            let y = widen(_mm_maskz_loadu_epi8(bm, pb.add(i / 2).cast()));
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}
