//! The blocked bit-plane layout every 1-bit and multi-bit code is stored in.
//!
//! Codes are grouped in blocks of [`BLOCK`] vectors. Inside a block, the `u64` words are interleaved
//! so that one 512-bit load reads the same word of all eight codes:
//!
//! ```text
//! block b, plane p, word w, lane l  ->  blocks[b * block_words + (p * words + w) * BLOCK + l]
//! ```
//!
//! With this layout a kernel keeps eight running distances in one SIMD register and never needs a
//! horizontal sum, and a batch of queries reuses each block from L1 (FAISS fast-scan and NumKong's
//! packed kernels use the same idea). Bit `i` of a plane is bit `i % 64` of word `i / 64`; bits past
//! the dimension are zero, so they add nothing to any distance. The last block is padded with
//! all-zero codes, which callers must ignore (rows past `len`).

/// Vectors per interleaved block.
pub const BLOCK: usize = 8;

/// `n` codes of `planes` bit-planes of `words` 64-bit words each, in the blocked layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitPlanes {
    /// Number of codes (rows); the storage holds `ceil(len / BLOCK)` blocks.
    pub len: usize,
    /// Bit-planes per code (1 for sign/RaBitQ codes, B for B-bit codes).
    pub planes: usize,
    /// 64-bit words per plane (`D' / 64`).
    pub words: usize,
    /// The interleaved words.
    pub data: Vec<u64>,
}

impl BitPlanes {
    /// All-zero storage for `len` codes.
    pub fn zeros(len: usize, planes: usize, words: usize) -> Self {
        let blocks = len.div_ceil(BLOCK);
        BitPlanes {
            len,
            planes,
            words,
            data: vec![0; blocks * planes * words * BLOCK],
        }
    }

    /// `u64` words per block.
    pub fn block_words(&self) -> usize {
        block_words(self.planes, self.words)
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.len.div_ceil(BLOCK)
    }

    /// Writes code `row` from plane-major words (`planes * words` words, plane 0 first).
    pub fn set(&mut self, row: usize, code: &[u64]) {
        assert_eq!(
            code.len(),
            self.planes * self.words,
            "code has the wrong number of words"
        );
        let base = (row / BLOCK) * self.block_words();
        let lane = row % BLOCK;
        for (i, &w) in code.iter().enumerate() {
            self.data[base + i * BLOCK + lane] = w;
        }
    }

    /// Reads code `row` as plane-major words.
    pub fn get(&self, row: usize) -> Vec<u64> {
        let base = (row / BLOCK) * self.block_words();
        let lane = row % BLOCK;
        (0..self.planes * self.words)
            .map(|i| self.data[base + i * BLOCK + lane])
            .collect()
    }
}

/// `u64` words in one block of `planes` planes of `words` words.
pub fn block_words(planes: usize, words: usize) -> usize {
    planes * words * BLOCK
}

/// 64-bit words needed for `dim` bits.
pub fn words_for(dim: usize) -> usize {
    dim.div_ceil(64)
}
