//! Distance kernels over codes, with one implementation per instruction set chosen once per process.
//!
//! Every kernel has a plain scalar twin in [`scalar`]; the SIMD versions must agree with it bit for
//! bit on every input (property tests in `tests/kernels.rs`). [`kernels()`] returns the table for the
//! best instruction set this CPU has (AVX-512 with VPOPCNTDQ, then AVX2, then portable), detected
//! once and cached.

pub mod scalar;

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
    pub ip_planes_blocks: fn(
        query: &[u64],
        qplanes: usize,
        blocks: &[u64],
        cplanes: usize,
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
}

/// The portable table (also the reference the SIMD tables are tested against).
pub const SCALAR: Kernels = Kernels {
    name: "scalar",
    hamming_blocks: scalar::hamming_blocks,
    ip_planes_blocks: scalar::ip_planes_blocks,
    hamming: scalar::hamming,
    and_popcount: scalar::and_popcount,
    dot_i8: scalar::dot_i8,
    dot_f32_i8: scalar::dot_f32_i8,
    dot_f32: scalar::dot_f32,
};

/// The best kernel table for this CPU, detected once per process.
pub fn kernels() -> &'static Kernels {
    &SCALAR
}
