//! The safe layer every SIMD table shares: [`simd_table!`] writes a module's `TABLE` and the safe
//! wrappers in it, which check slice lengths and then call that module's `#[target_feature]`
//! kernels.
//!
//! The wrappers are the same for every instruction set (only the kernels behind them differ), so
//! they are written once here and expanded inside `avx2.rs` and `avx512.rs`. Being expanded there,
//! they stay private to each module and reachable only through its `TABLE`, which `kernels/mod.rs`
//! hands out only after detecting the module's `FEATURES`: that detection is what makes the calls
//! in the wrappers sound. A macro rather than a generic layer keeps the expanded code what it was
//! when each module spelt it out, so the compiled kernels are unchanged.

/// Function pointer to a module's `hamming_blocks_w::<W>`: `(q, blocks, nblocks, words, out)`.
pub(super) type HammingBlocksFn = unsafe fn(&[u64], *const u64, usize, usize, *mut u32);

/// Function pointer to a module's `ip_w::<QP, W, WT>`:
/// `(q, j0, accumulate, blocks, nblocks, cplanes, weights, words, out)`.
pub(super) type IpFn =
    unsafe fn(&[u64], u32, bool, *const u64, usize, usize, &[u32], usize, *mut u32);

/// Function pointer to a module's `ternary_sym_w::<W>`: `(q, blocks, nblocks, words, out)`.
pub(super) type TernarySymFn = unsafe fn(&[u64], *const u64, usize, usize, *mut i32);

/// Expands to `pub(super) static TABLE` named `$name` and its safe wrappers, in the module that
/// invokes it. That module must define, with the contracts their `# Safety` sections state:
/// `hamming_blocks_w::<W>` ([`HammingBlocksFn`]), `ip_w::<QP, W, WT>` ([`IpFn`]),
/// `pair_popcount::<AND>`, `dot_i8_impl`, `dot_f32_i8_impl`, `dot_f32_impl`, `ternary_ip_impl`,
/// `ternary_sym_w::<W>` ([`TernarySymFn`]),
/// `dot_f32_fp8_impl`, `dot_f32_u4_impl` and `fastscan_blocks`, all compiled for
/// the module's `FEATURES`, and nothing else may hand out its `TABLE` before those were detected.
macro_rules! simd_table {
    ($name:literal) => {
        /// This instruction set's table. Only hand it out after the CPU was found to have
        /// FEATURES.
        pub(super) static TABLE: $crate::kernels::Kernels = $crate::kernels::Kernels {
            name: $name,
            hamming_blocks,
            ip_planes_blocks,
            ip_planes_weighted_blocks,
            hamming,
            and_popcount,
            dot_i8,
            dot_f32_i8,
            dot_f32,
            ternary_ip_blocks,
            ternary_sym_blocks,
            dot_f32_fp8,
            dot_f32_u4,
            fastscan_blocks,
        };

        fn ternary_ip_blocks(
            query: &[u64],
            qplanes: usize,
            blocks: &[u64],
            words: usize,
            out: &mut [i32],
        ) {
            let nblocks = $crate::kernels::check_blocked(
                query,
                qplanes,
                blocks,
                2,
                words,
                bytemuck::cast_slice(out),
            );
            // SAFETY: FEATURES were detected before TABLE was handed out; check_blocked verified
            // query has `qplanes * words` words, blocks `nblocks` whole two-plane blocks and out
            // room for `nblocks * BLOCK` values.
            unsafe {
                ternary_ip_impl(
                    &query[..qplanes * words],
                    qplanes,
                    blocks.as_ptr(),
                    nblocks,
                    words,
                    out.as_mut_ptr(),
                )
            }
        }

        fn ternary_sym_blocks(query: &[u64], blocks: &[u64], words: usize, out: &mut [i32]) {
            let nblocks = $crate::kernels::check_blocked(
                query,
                2,
                blocks,
                2,
                words,
                bytemuck::cast_slice(out),
            );
            let f: $crate::kernels::simd_table::TernarySymFn = match words {
                1 => ternary_sym_w::<1>,
                2 => ternary_sym_w::<2>,
                4 => ternary_sym_w::<4>,
                6 => ternary_sym_w::<6>,
                8 => ternary_sym_w::<8>,
                12 => ternary_sym_w::<12>,
                16 => ternary_sym_w::<16>,
                _ => ternary_sym_w::<0>,
            };
            // SAFETY: FEATURES were detected before TABLE was handed out; check_blocked verified
            // query has `2 * words` words, blocks `nblocks` whole two-plane blocks and out room
            // for `nblocks * BLOCK` values.
            unsafe {
                f(
                    &query[..2 * words],
                    blocks.as_ptr(),
                    nblocks,
                    words,
                    out.as_mut_ptr(),
                )
            }
        }

        fn dot_f32_fp8(a: &[f32], b: &[u8], mant: u32) -> f32 {
            assert!(
                mant == 2 || mant == 3,
                "FP8 has 2 (E5M2) or 3 (E4M3) mantissa bits"
            );
            // SAFETY: as in `dot_i8`.
            unsafe { dot_f32_fp8_impl(a, b, mant) }
        }

        fn dot_f32_u4(a: &[f32], b: &[u8]) -> f32 {
            assert!(
                b.len() >= a.len().div_ceil(2),
                "a 4-bit code needs one byte per two values"
            );
            // SAFETY: as in `dot_i8`; the assert above keeps every nibble read inside `b`.
            unsafe { dot_f32_u4_impl(a, b) }
        }

        fn hamming_blocks(query: &[u64], blocks: &[u64], words: usize, out: &mut [u32]) {
            let nblocks = $crate::kernels::check_blocked(query, 1, blocks, 1, words, out);
            let f: $crate::kernels::simd_table::HammingBlocksFn = match words {
                1 => hamming_blocks_w::<1>,
                2 => hamming_blocks_w::<2>,
                3 => hamming_blocks_w::<3>,
                4 => hamming_blocks_w::<4>,
                6 => hamming_blocks_w::<6>,
                8 => hamming_blocks_w::<8>,
                12 => hamming_blocks_w::<12>,
                16 => hamming_blocks_w::<16>,
                _ => hamming_blocks_w::<0>,
            };
            // SAFETY: TABLE (the only way to reach this fn) is handed out only after the CPU was
            // found to have FEATURES; check_blocked verified query has `words` words, blocks
            // `nblocks` whole blocks and out room for `nblocks * BLOCK` values.
            unsafe {
                f(
                    &query[..words],
                    blocks.as_ptr(),
                    nblocks,
                    words,
                    out.as_mut_ptr(),
                )
            }
        }

        fn ip_planes_blocks(
            query: &[u64],
            qplanes: usize,
            blocks: &[u64],
            cplanes: usize,
            words: usize,
            out: &mut [u32],
        ) {
            ip_planes::<false>(query, qplanes, blocks, cplanes, &[], words, out)
        }

        fn ip_planes_weighted_blocks(
            query: &[u64],
            qplanes: usize,
            blocks: &[u64],
            cplanes: usize,
            weights: &[u32],
            words: usize,
            out: &mut [u32],
        ) {
            assert!(
                weights.len() >= cplanes,
                "one weight per code plane is needed"
            );
            assert!(
                cplanes <= 8,
                "weighted plane products take at most 8 code planes"
            );
            ip_planes::<true>(
                query,
                qplanes,
                blocks,
                cplanes,
                &weights[..cplanes],
                words,
                out,
            )
        }

        /// Both plane products: code plane `p` weighted by `2^p` (`WT` false) or `weights[p]`.
        fn ip_planes<const WT: bool>(
            query: &[u64],
            qplanes: usize,
            blocks: &[u64],
            cplanes: usize,
            weights: &[u32],
            words: usize,
            out: &mut [u32],
        ) {
            let nblocks =
                $crate::kernels::check_blocked(query, qplanes, blocks, cplanes, words, out);
            if qplanes == 0 {
                out[..nblocks * $crate::layout::BLOCK].fill(0);
                return;
            }
            // Query planes are processed in groups of up to four, each group adding its part into
            // `out`.
            let mut j0 = 0;
            while j0 < qplanes {
                let g = (qplanes - j0).min(4);
                let f = ip_fn::<WT>(g, words);
                let q = &query[j0 * words..(j0 + g) * words];
                // SAFETY: as in hamming_blocks: FEATURES were detected before TABLE was handed
                // out, `q` holds the group's `g * words` words, blocks holds `nblocks` whole blocks
                // of `cplanes` planes, `weights` (read only when WT) holds `cplanes` values (the
                // callers' asserts) and out has room for `nblocks * BLOCK` values.
                unsafe {
                    f(
                        q,
                        j0 as u32,
                        j0 > 0,
                        blocks.as_ptr(),
                        nblocks,
                        cplanes,
                        weights,
                        words,
                        out.as_mut_ptr(),
                    )
                }
                j0 += g;
            }
        }

        /// The `ip_planes` loop for a group of `g` (1..=4) query planes and `words` words.
        fn ip_fn<const WT: bool>(g: usize, words: usize) -> $crate::kernels::simd_table::IpFn {
            macro_rules! by_words {
                ($g:literal) => {
                    match words {
                        1 => ip_w::<$g, 1, WT>,
                        2 => ip_w::<$g, 2, WT>,
                        3 => ip_w::<$g, 3, WT>,
                        4 => ip_w::<$g, 4, WT>,
                        6 => ip_w::<$g, 6, WT>,
                        8 => ip_w::<$g, 8, WT>,
                        12 => ip_w::<$g, 12, WT>,
                        16 => ip_w::<$g, 16, WT>,
                        _ => ip_w::<$g, 0, WT>,
                    }
                };
            }
            match g {
                1 => by_words!(1),
                2 => by_words!(2),
                3 => by_words!(3),
                _ => by_words!(4),
            }
        }

        fn hamming(a: &[u64], b: &[u64]) -> u32 {
            // SAFETY: FEATURES were detected before TABLE was handed out; the fn reads only within
            // the common length of the two slices.
            unsafe { pair_popcount::<false>(a, b) }
        }

        fn and_popcount(a: &[u64], b: &[u64]) -> u32 {
            // SAFETY: as in `hamming`.
            unsafe { pair_popcount::<true>(a, b) }
        }

        fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
            // SAFETY: FEATURES were detected before TABLE was handed out; reads stay within the
            // common length of the slices.
            unsafe { dot_i8_impl(a, b) }
        }

        fn dot_f32_i8(a: &[f32], b: &[i8]) -> f32 {
            // SAFETY: as in `dot_i8`.
            unsafe { dot_f32_i8_impl(a, b) }
        }

        fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: as in `dot_i8`.
            unsafe { dot_f32_impl(a, b) }
        }
    };
}
