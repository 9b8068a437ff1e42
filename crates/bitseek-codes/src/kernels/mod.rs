//! Distance kernels over codes, with one implementation per instruction set chosen once per process.
//!
//! Every kernel has a plain scalar twin in [`scalar`], and `tests/kernels.rs` checks every SIMD
//! table against it on random and edge-case inputs. The integer kernels (Hamming, AND-popcount,
//! bit-plane products, `dot_i8`) must agree with it exactly: they count, so any difference is a bug.
//! The float dot products (`dot_f32`, `dot_f32_i8`) add in a different order (several accumulators,
//! fused multiply-adds), so they agree within rounding, not bit for bit; the tests bound the
//! difference by `1e-5 · Σ|a_i b_i|`.
//!
//! [`kernels()`] returns the table for the best instruction set this CPU has (AVX-512 with
//! VPOPCNTDQ, then AVX2, then portable), detected once and cached. [`all_available()`] lists every
//! table this CPU can run, for tests and benches.
//!
//! The environment variable `BITSEEK_KERNELS` (`scalar`, `avx2` or `avx512`), read once on the first
//! call to [`kernels()`], caps the table it picks: `BITSEEK_KERNELS=avx2` runs the AVX2 kernels even
//! on an AVX-512 machine (for A/B benchmarks and for chasing a suspected SIMD bug). It can only lower
//! the choice; asking for a table the CPU lacks gives the best one it has below that. An unknown
//! value is reported once on stderr and otherwise ignored. [`cap()`] is the one reader of the
//! variable: `bitseek-embed` asks it too before running its AVX-512 encoder and VNNI products.
//!
//! Only x86-64 has SIMD tables so far; other targets (aarch64 included) get [`SCALAR`] — NEON
//! versions would slot in the same way.

pub mod fastscan;
pub mod scalar;

#[cfg(target_arch = "x86_64")]
#[macro_use]
mod simd_table;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::sync::OnceLock;

/// A table of kernel functions for one instruction set.
///
/// Blocked kernels read codes in the [`crate::layout`] format: `blocks` holds whole blocks, and
/// `out` receives one value per code (`out.len() == blocks.len() / block_words * BLOCK`).
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Name of the instruction set (`"avx512"`, `"avx2"`, `"scalar"`).
    pub name: &'static str,
    /// Hamming distance `popcnt(q XOR c)` between a one-plane query of `words` words and every
    /// one-plane code in `blocks`.
    pub hamming_blocks: fn(query: &[u64], blocks: &[u64], words: usize, out: &mut [u32]),
    /// Bit-plane inner product `Σ_p Σ_j 2^(p+j) popcnt(c_p AND q_j)` between a query of `qplanes`
    /// planes (plane-major: `query[j * words + w]`, plane 0 = least significant) and every code of
    /// `cplanes` planes in `blocks` (plane 0 = least significant). With one plane on each side it is
    /// the AND-popcount; with a 4-plane query it is RaBitQ's asymmetric product; with B planes on
    /// both sides it is the symmetric multi-bit (SDC) product.
    #[allow(clippy::type_complexity)]
    pub ip_planes_blocks: fn(
        query: &[u64],
        qplanes: usize,
        blocks: &[u64],
        cplanes: usize,
        words: usize,
        out: &mut [u32],
    ),
    /// [`ip_planes_blocks`](Self::ip_planes_blocks) with code plane `p` weighted by `weights[p]`
    /// instead of `2^p`: `Σ_p weights[p] Σ_j 2^j popcnt(c_p AND q_j)`, wrapping `u32` arithmetic.
    /// With `weights = [1, 2, 4, …]` it is `ip_planes_blocks`; with other integer weights it is
    /// the product with codes whose planes carry learned weights (BinaryDM's multi-basis scales,
    /// see [`Learned`](crate::quantizer::Learned)), one call for every plane. At most 8 code
    /// planes (panics above).
    ///
    /// The weights are applied once per code plane and block (a 32-bit multiply after the
    /// popcounts), so the loop costs about what `ip_planes_blocks` costs.
    #[allow(clippy::type_complexity)]
    pub ip_planes_weighted_blocks: fn(
        query: &[u64],
        qplanes: usize,
        blocks: &[u64],
        cplanes: usize,
        weights: &[u32],
        words: usize,
        out: &mut [u32],
    ),
    /// `popcnt(a XOR b)` over two equal-length word slices.
    pub hamming: fn(a: &[u64], b: &[u64]) -> u32,
    /// `popcnt(a AND b)` over two equal-length word slices.
    pub and_popcount: fn(a: &[u64], b: &[u64]) -> u32,
    /// `Σ a_i * b_i` over two equal-length `i8` slices, exact in `i32`.
    pub dot_i8: fn(a: &[i8], b: &[i8]) -> i32,
    /// `Σ a_i * b_i` over `f32` query and `i8` code of equal length (rescoring from int8).
    pub dot_f32_i8: fn(a: &[f32], b: &[i8]) -> f32,
    /// `Σ a_i * b_i` over two equal-length `f32` slices (exact search and rescoring).
    pub dot_f32: fn(a: &[f32], b: &[f32]) -> f32,
    /// Ternary inner product `Σ_j 2^j (2·popcnt(s AND q_j) − popcnt(n AND q_j))` between a query of
    /// `qplanes` unsigned planes (plane-major, plane 0 least significant) and every two-plane
    /// ternary code in `blocks` (plane 0 the nonzero mask `n`, plane 1 the sign `s`, set only where
    /// `n` is): `⟨t, Q⟩` for `t = 2s − n ∈ {−1, 0, +1}`. Wrapping `i32` arithmetic.
    #[allow(clippy::type_complexity)]
    pub ternary_ip_blocks:
        fn(query: &[u64], qplanes: usize, blocks: &[u64], words: usize, out: &mut [i32]),
    /// Symmetric ternary inner product `⟨t′, t⟩ = popcnt(n∧n′∧¬(s⊕s′)) − popcnt(n∧n′∧(s⊕s′))`
    /// between a two-plane ternary query (`query[..words]` its nonzero mask `n′`,
    /// `query[words..2 * words]` its sign `s′`) and every two-plane ternary code in `blocks`: two
    /// popcounts per word (`popcnt(m) − 2·popcnt(m ∧ (s⊕s′))` with `m = n∧n′`) where feeding the
    /// query to [`ternary_ip_blocks`](Self::ternary_ip_blocks) as `t′ + 1` costs four.
    pub ternary_sym_blocks: fn(query: &[u64], blocks: &[u64], words: usize, out: &mut [i32]),
    /// `Σ a_i · f(b_i)` where `f` reads FP8 byte `b_i` (sign, exponent, `mant` mantissa bits; 3 for
    /// E4M3, 2 for E5M2) as an `f32` bit pattern: the FP8 value times `2^(bias − 127)`, subnormals
    /// included, so the caller folds `2^(127 − bias)` into `a`. Over the common length.
    pub dot_f32_fp8: fn(a: &[f32], b: &[u8], mant: u32) -> f32,
    /// `Σ a_i · u_i` where `u_i` is the 4-bit value `(b[i / 2] >> 4·(i % 2)) & 15` (two per byte,
    /// low nibble first) for `i < a.len()`; `b` must hold `a.len().div_ceil(2)` bytes.
    pub dot_f32_u4: fn(a: &[f32], b: &[u8]) -> f32,
    /// FastScan sums of 1-bit codes in blocks of 32 through 4-bit look-up tables (see
    /// [`fastscan`]): `lut` holds 16 entries per group, `blocks` whole blocks of `groups` nibbles,
    /// `out` one sum per code.
    pub fastscan_blocks: fn(lut: &[u8], blocks: &[u8], groups: usize, out: &mut [u32]),
}

/// The portable table (also the reference the SIMD tables are tested against).
pub const SCALAR: Kernels = Kernels {
    name: "scalar",
    hamming_blocks: scalar::hamming_blocks,
    ip_planes_blocks: scalar::ip_planes_blocks,
    ip_planes_weighted_blocks: scalar::ip_planes_weighted_blocks,
    hamming: scalar::hamming,
    and_popcount: scalar::and_popcount,
    dot_i8: scalar::dot_i8,
    dot_f32_i8: scalar::dot_f32_i8,
    dot_f32: scalar::dot_f32,
    ternary_ip_blocks: scalar::ternary_ip_blocks,
    ternary_sym_blocks: scalar::ternary_sym_blocks,
    dot_f32_fp8: scalar::dot_f32_fp8,
    dot_f32_u4: scalar::dot_f32_u4,
    fastscan_blocks: fastscan::scalar,
};

/// The best kernel table for this CPU, detected once per process (capped by `BITSEEK_KERNELS`,
/// see the [module docs](self)).
pub fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<&'static Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let cap = cap().unwrap_or(Isa::Avx512);
        all_available()
            .iter()
            .rev()
            .copied()
            .find(|k| k.name.parse::<Isa>().is_ok_and(|isa| isa <= cap))
            .unwrap_or(&SCALAR)
    })
}

/// Every kernel table this CPU can run, weakest first: [`SCALAR`] always, then AVX2 and AVX-512
/// where detected. The last entry is what [`kernels()`] picks when `BITSEEK_KERNELS` is unset.
pub fn all_available() -> Vec<&'static Kernels> {
    #[allow(unused_mut)]
    let mut tables = vec![&SCALAR];
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            tables.push(&avx2::TABLE);
        }
        if has_avx512() {
            tables.push(&avx512::TABLE);
        }
    }
    tables
}

/// The instruction sets there are kernel tables for, weakest first (the order `BITSEEK_KERNELS`
/// caps by). Every SIMD code path of bitseek, the encoder's in `bitseek-embed` included, asks
/// [`cap()`] before it runs, so one variable switches them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no SIMD beyond what the compiler's baseline target gives.
    Scalar,
    /// AVX2 with FMA and POPCNT.
    Avx2,
    /// AVX-512 (F, BW and the extensions each path needs).
    Avx512,
}

/// A `BITSEEK_KERNELS` value that names no instruction set.
#[derive(Debug, thiserror::Error)]
#[error("unknown BITSEEK_KERNELS value {0:?}: expected scalar, avx2 or avx512")]
pub struct UnknownIsa(pub String);

impl std::str::FromStr for Isa {
    type Err = UnknownIsa;

    /// `scalar`, `avx2` or `avx512`, in any case and with surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            _ => Err(UnknownIsa(s.to_string())),
        }
    }
}

/// The cap `BITSEEK_KERNELS` sets, read once per process: `None` when it is unset or empty. A value
/// that names no instruction set is reported once on stderr and then treated as unset, so a typo
/// is seen rather than silently running the default kernels (a library cannot refuse to start).
pub fn cap() -> Option<Isa> {
    static CAP: OnceLock<Option<Isa>> = OnceLock::new();
    *CAP.get_or_init(|| {
        let value = std::env::var("BITSEEK_KERNELS").ok()?;
        match parse_cap(&value) {
            Ok(cap) => cap,
            Err(e) => {
                eprintln!("bitseek: warning: {e}; using the best kernels this CPU has");
                None
            }
        }
    })
}

/// Parses a `BITSEEK_KERNELS` value: empty (or only spaces) means no cap.
fn parse_cap(value: &str) -> Result<Option<Isa>, UnknownIsa> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value.parse().map(Some)
}

/// Whether this CPU has everything `avx2::TABLE` is compiled for. Handing that table out only after
/// this returns true is what makes its `unsafe` calls sound.
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// Whether this CPU has everything `avx512::TABLE` is compiled for (every CPU with VPOPCNTDQ and BW
/// — Ice Lake, Zen 4 and later — also has VNNI). Handing that table out only after this returns
/// true is what makes its `unsafe` calls sound.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// Checks the slices handed to a blocked kernel and returns the number of whole blocks in `blocks`
/// (a trailing partial block is ignored, as `chunks_exact` does in the scalar twins). Panics where
/// the SIMD code would otherwise read or write out of bounds.
#[cfg(target_arch = "x86_64")]
fn check_blocked(
    query: &[u64],
    qplanes: usize,
    blocks: &[u64],
    cplanes: usize,
    words: usize,
    out: &[u32],
) -> usize {
    let block_words = crate::layout::block_words(cplanes, words);
    assert!(block_words > 0, "words and code planes must be positive");
    assert!(
        query.len() >= qplanes * words,
        "query has fewer than qplanes * words words"
    );
    let nblocks = blocks.len() / block_words;
    assert!(
        out.len() >= nblocks * crate::layout::BLOCK,
        "out has room for fewer values than there are codes"
    );
    nblocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_caps_parse_in_any_case_and_unknown_ones_are_errors() {
        assert_eq!(parse_cap("").unwrap(), None);
        assert_eq!(parse_cap("  ").unwrap(), None);
        assert_eq!(parse_cap("scalar").unwrap(), Some(Isa::Scalar));
        assert_eq!(parse_cap(" AVX2 ").unwrap(), Some(Isa::Avx2));
        assert_eq!(parse_cap("Avx512").unwrap(), Some(Isa::Avx512));
        let e = parse_cap("avx-512").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown BITSEEK_KERNELS value \"avx-512\": expected scalar, avx2 or avx512"
        );
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }

    #[test]
    fn every_table_name_is_an_isa() {
        for k in all_available() {
            assert!(k.name.parse::<Isa>().is_ok(), "{}", k.name);
        }
    }
}
