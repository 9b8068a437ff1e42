//! FastScan: 1-bit codes scored 32 at a time through 4-bit look-up tables held in SIMD registers
//! (André, Kermarrec and Le Scouarnec, "Cache locality is not enough", VLDB 2015; FAISS's
//! `IndexPQFastScan` and the RaBitQ library's IVF use the same trick).
//!
//! A code of `D'` bits is cut into `groups = D'/4` nibbles. For a query the caller builds one table
//! of 16 `u8` entries per group (entry `k` approximates the query's partial sum over the dims whose
//! bit is set in `k`), and a code's score is `Σ_g lut[g][nibble_g]`. A register of 16 (SSE lane)
//! table entries is looked up for 16 codes with one `vpshufb`, so a block of 32 codes costs two
//! shuffles per group instead of 32 scattered loads.
//!
//! Layout of one block ([`pack_block`]): group after group, 16 bytes each; byte `j` of group `g`
//! holds code `j`'s nibble `g` in its low half and code `j + 16`'s in its high half. Nibble `g` of a
//! code is bits `4g..4g + 4` (bit `i` = bit `i % 64` of word `i / 64`, the layout of
//! `crate::layout`). Sums are exact integers (`u16` lanes with a carry fix-up, folded into `u32`
//! before they can overflow), so every SIMD version must equal [`scalar`] bit for bit.

/// Codes per FastScan block.
pub const FS_BLOCK: usize = 32;

/// Bytes of one block of codes with `groups` nibbles each.
pub fn block_bytes(groups: usize) -> usize {
    groups * 16
}

/// Nibble `g` of a code given as `u64` words.
#[inline]
fn nibble(code: &[u64], g: usize) -> u8 {
    ((code[g / 16] >> (4 * (g % 16))) & 0xf) as u8
}

/// Writes code `lane` (0..32) of a block of `groups` nibbles into `block` (which must hold
/// [`block_bytes`]`(groups)` bytes; other lanes are left as they are).
pub fn pack_into(block: &mut [u8], groups: usize, lane: usize, code: &[u64]) {
    assert!(lane < FS_BLOCK, "a block holds 32 codes");
    assert!(code.len() * 16 >= groups, "code shorter than its groups");
    let (j, shift, keep) = if lane < 16 {
        (lane, 0, 0xf0u8)
    } else {
        (lane - 16, 4, 0x0fu8)
    };
    for g in 0..groups {
        let b = &mut block[g * 16 + j];
        *b = (*b & keep) | (nibble(code, g) << shift);
    }
}

/// Packs up to 32 codes (each `words` `u64`, row after row) into one block of `groups` nibbles;
/// missing lanes are zero codes.
pub fn pack_block(codes: &[u64], words: usize, groups: usize) -> Vec<u8> {
    let mut block = vec![0u8; block_bytes(groups)];
    for (lane, code) in codes.chunks_exact(words).take(FS_BLOCK).enumerate() {
        pack_into(&mut block, groups, lane, code);
    }
    block
}

/// Reads code `lane`'s nibble `g` back from a block (for tests and appends).
pub fn unpack_nibble(block: &[u8], lane: usize, g: usize) -> u8 {
    let b = block[g * 16 + lane % 16];
    if lane < 16 {
        b & 0xf
    } else {
        b >> 4
    }
}

/// The scalar twin: `out[32b + i] = Σ_g lut[16g + nibble(block b, code i, g)]`.
pub fn scalar(lut: &[u8], blocks: &[u8], groups: usize, out: &mut [u32]) {
    let bb = block_bytes(groups);
    if bb == 0 {
        return;
    }
    for (b, block) in blocks.chunks_exact(bb).enumerate() {
        for lane in 0..FS_BLOCK {
            let mut s = 0u32;
            for g in 0..groups {
                s += lut[g * 16 + unpack_nibble(block, lane, g) as usize] as u32;
            }
            out[b * FS_BLOCK + lane] = s;
        }
    }
}

/// Checks the slices a SIMD FastScan is handed and returns the number of whole blocks. Panics
/// where the SIMD code would otherwise read or write out of bounds.
#[cfg(target_arch = "x86_64")]
fn check(lut: &[u8], blocks: &[u8], groups: usize, out: &[u32]) -> usize {
    assert!(
        groups > 0 && groups.is_multiple_of(2),
        "FastScan needs a positive, even number of groups (codes padded to 64 bits have them)"
    );
    assert!(
        lut.len() >= groups * 16,
        "look-up table shorter than groups"
    );
    let nblocks = blocks.len() / block_bytes(groups);
    assert!(
        out.len() >= nblocks * FS_BLOCK,
        "out has room for fewer values than there are codes"
    );
    nblocks
}

/// Adds one span's `u16` accumulators to `total` (codes 0..32, as `u32`). `lo`/`hi` hold per
/// `u16` lane (even code + 256 · odd code) of codes 0..16 / 16..32 and `lo_hi`/`hi_hi` the odd
/// codes' sums, so even = `lo − 256·lo_hi` (mod 2^16). `parts` 8-lane parts (one per 128 bits of
/// the accumulators) hold the same codes and are summed; a span of at most [`SPAN`] groups keeps
/// every code's total below 2^16, so all of this is exact in `u16`.
///
/// # Safety
/// The CPU has AVX2; `lo`, `lo_hi`, `hi`, `hi_hi` each point to `parts · 8` readable `u16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold(
    lo: *const u16,
    lo_hi: *const u16,
    hi: *const u16,
    hi_hi: *const u16,
    parts: usize,
    total: &mut [u32; FS_BLOCK],
) {
    use core::arch::x86_64::*;
    // SAFETY: each pointer has `parts · 8` u16 (the caller's contract): part p is 16 bytes at p·8.
    let sum = |p: *const u16, q: *const u16| unsafe {
        let mut acc = _mm_setzero_si128();
        for i in 0..parts {
            let a = _mm_loadu_si128(p.add(i * 8).cast());
            let b = _mm_loadu_si128(q.add(i * 8).cast());
            acc = _mm_add_epi16(acc, _mm_sub_epi16(a, _mm_slli_epi16(b, 8)));
        }
        acc
    };
    // SAFETY: as above.
    let sum_odd = |q: *const u16| unsafe {
        let mut acc = _mm_setzero_si128();
        for i in 0..parts {
            acc = _mm_add_epi16(acc, _mm_loadu_si128(q.add(i * 8).cast()));
        }
        acc
    };
    for (half, (l, h)) in [(lo, lo_hi), (hi, hi_hi)].into_iter().enumerate() {
        let (even, odd) = (sum(l, h), sum_odd(h));
        for (j, codes) in [_mm_unpacklo_epi16(even, odd), _mm_unpackhi_epi16(even, odd)]
            .into_iter()
            .enumerate()
        {
            let at = half * 16 + j * 8;
            let t = total[at..at + 8].as_mut_ptr().cast::<__m256i>();
            // SAFETY: `t` points to 8 u32 of `total`.
            unsafe {
                _mm256_storeu_si256(
                    t,
                    _mm256_add_epi32(_mm256_loadu_si256(t), _mm256_cvtepu16_epi32(codes)),
                )
            };
        }
    }
}

/// Groups per span of `u16` accumulation: 256 entries of at most 255 stay below 2^16.
#[cfg(target_arch = "x86_64")]
const SPAN: usize = 256;

/// The AVX2 FastScan (reached only through `avx2::TABLE`, handed out after AVX2 was detected).
#[cfg(target_arch = "x86_64")]
pub(super) fn avx2(lut: &[u8], blocks: &[u8], groups: usize, out: &mut [u32]) {
    let nblocks = check(lut, blocks, groups, out);
    // SAFETY: this fn is reachable only through avx2::TABLE, handed out after the CPU was found to
    // have AVX2; `check` verified lut holds `groups * 16` bytes, blocks `nblocks` whole blocks and
    // out room for `nblocks * 32` values.
    unsafe {
        avx2_impl(
            lut.as_ptr(),
            blocks.as_ptr(),
            nblocks,
            groups,
            out.as_mut_ptr(),
        )
    }
}

/// # Safety
/// The CPU has AVX2; `groups` is even, `lut` holds `groups * 16` bytes, `blocks` `nblocks` blocks
/// of `groups * 16` bytes and `out` room for `nblocks * 32` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_impl(
    lut: *const u8,
    blocks: *const u8,
    nblocks: usize,
    groups: usize,
    out: *mut u32,
) {
    use core::arch::x86_64::*;
    let mask = _mm256_set1_epi8(0x0f);
    for b in 0..nblocks {
        // SAFETY: block b lies within the `nblocks` blocks the caller vouched for.
        let base = unsafe { blocks.add(b * groups * 16) };
        let mut total = [0u32; FS_BLOCK];
        let mut g = 0;
        while g < groups {
            let end = (g + SPAN).min(groups);
            let z = _mm256_setzero_si256();
            let (mut lo, mut lo_hi, mut hi, mut hi_hi) = (z, z, z, z);
            while g < end {
                // SAFETY: g + 2 <= groups (groups is even), so both 32-byte loads stay inside the
                // block and the table.
                let (c, l) = unsafe {
                    (
                        _mm256_loadu_si256(base.add(g * 16).cast()),
                        _mm256_loadu_si256(lut.add(g * 16).cast()),
                    )
                };
                let vlo = _mm256_shuffle_epi8(l, _mm256_and_si256(c, mask));
                let vhi = _mm256_shuffle_epi8(l, _mm256_and_si256(_mm256_srli_epi16(c, 4), mask));
                lo = _mm256_add_epi16(lo, vlo);
                lo_hi = _mm256_add_epi16(lo_hi, _mm256_srli_epi16(vlo, 8));
                hi = _mm256_add_epi16(hi, vhi);
                hi_hi = _mm256_add_epi16(hi_hi, _mm256_srli_epi16(vhi, 8));
                g += 2;
            }
            let mut a = [[0u16; 16]; 4];
            for (dst, v) in a.iter_mut().zip([lo, lo_hi, hi, hi_hi]) {
                // SAFETY: dst is 32 writable bytes.
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
            }
            // SAFETY: AVX2 is present; each array holds 2 · 8 u16.
            unsafe {
                fold(
                    a[0].as_ptr(),
                    a[1].as_ptr(),
                    a[2].as_ptr(),
                    a[3].as_ptr(),
                    2,
                    &mut total,
                )
            };
        }
        // SAFETY: out has room for nblocks * 32 values.
        unsafe { core::ptr::copy_nonoverlapping(total.as_ptr(), out.add(b * FS_BLOCK), FS_BLOCK) };
    }
}

/// The AVX-512 FastScan (reached only through `avx512::TABLE`, handed out after AVX-512 BW was
/// detected).
#[cfg(target_arch = "x86_64")]
pub(super) fn avx512(lut: &[u8], blocks: &[u8], groups: usize, out: &mut [u32]) {
    let nblocks = check(lut, blocks, groups, out);
    // SAFETY: as in `avx2`, for avx512::TABLE and AVX-512 F/BW.
    unsafe {
        avx512_impl(
            lut.as_ptr(),
            blocks.as_ptr(),
            nblocks,
            groups,
            out.as_mut_ptr(),
        )
    }
}

/// # Safety
/// The CPU has AVX-512 F and BW; otherwise as [`avx2_impl`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw")]
unsafe fn avx512_impl(
    lut: *const u8,
    blocks: *const u8,
    nblocks: usize,
    groups: usize,
    out: *mut u32,
) {
    use core::arch::x86_64::*;
    let mask = _mm512_set1_epi8(0x0f);
    let whole = groups / 4 * 4;
    for b in 0..nblocks {
        // SAFETY: block b lies within the `nblocks` blocks the caller vouched for.
        let base = unsafe { blocks.add(b * groups * 16) };
        let mut total = [0u32; FS_BLOCK];
        let mut g = 0;
        while g < whole {
            let end = (g + SPAN).min(whole);
            let z = _mm512_setzero_si512();
            let (mut lo, mut lo_hi, mut hi, mut hi_hi) = (z, z, z, z);
            while g < end {
                // SAFETY: g + 4 <= whole <= groups, so both 64-byte loads stay inside the block
                // and the table.
                let (c, l) = unsafe {
                    (
                        _mm512_loadu_si512(base.add(g * 16).cast()),
                        _mm512_loadu_si512(lut.add(g * 16).cast()),
                    )
                };
                let vlo = _mm512_shuffle_epi8(l, _mm512_and_si512(c, mask));
                let vhi = _mm512_shuffle_epi8(l, _mm512_and_si512(_mm512_srli_epi16(c, 4), mask));
                lo = _mm512_add_epi16(lo, vlo);
                lo_hi = _mm512_add_epi16(lo_hi, _mm512_srli_epi16(vlo, 8));
                hi = _mm512_add_epi16(hi, vhi);
                hi_hi = _mm512_add_epi16(hi_hi, _mm512_srli_epi16(vhi, 8));
                g += 4;
            }
            let mut a = [[0u16; 32]; 4];
            for (dst, v) in a.iter_mut().zip([lo, lo_hi, hi, hi_hi]) {
                // SAFETY: dst is 64 writable bytes.
                unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) };
            }
            // SAFETY: AVX-512 implies AVX2; each array holds 4 · 8 u16.
            unsafe {
                fold(
                    a[0].as_ptr(),
                    a[1].as_ptr(),
                    a[2].as_ptr(),
                    a[3].as_ptr(),
                    4,
                    &mut total,
                )
            };
        }
        // A last pair of groups (groups ≡ 2 mod 4), added one code at a time.
        for g in whole..groups {
            for (lane, t) in total.iter_mut().enumerate() {
                // SAFETY: g < groups, so byte g * 16 + lane % 16 is inside the block and entries
                // g * 16..g * 16 + 16 inside the table.
                let byte = unsafe { *base.add(g * 16 + lane % 16) };
                let nib = if lane < 16 { byte & 0xf } else { byte >> 4 };
                // SAFETY: as above.
                *t += unsafe { *lut.add(g * 16 + nib as usize) } as u32;
            }
        }
        // SAFETY: out has room for nblocks * 32 values.
        unsafe { core::ptr::copy_nonoverlapping(total.as_ptr(), out.add(b * FS_BLOCK), FS_BLOCK) };
    }
}
