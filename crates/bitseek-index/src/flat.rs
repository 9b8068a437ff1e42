//! The flat scan: every code is scored, blocks of codes are shared by a batch of queries.
//!
//! The codes are cut into chunks that fit in L2 ([`CHUNK_BLOCKS`] blocks of 8 codes); each chunk is
//! read from memory once and scored against every query of the batch before the next chunk, so a
//! batch of 64 queries costs one pass over memory instead of 64 (FAISS `IndexBinaryFlat` does the
//! same with `query_batch_size`). Chunks are spread over threads with rayon; each thread keeps its
//! own top-k per query and the selectors are merged at the end. Integer distances (Hamming) select
//! with a counting sort, float estimates with a bounded heap; both break ties by the lower row.

use bitseek_codes::quantizer::{CodesRef, Quantizer, QueryCode, Ranking};
use bitseek_codes::topk::{CountingTopK, HeapTopK};
use bitseek_codes::BLOCK;
use rayon::prelude::*;

/// Blocks per chunk: 512 blocks = 4096 codes, 192 KiB of 384-bit codes (fits L2).
pub const CHUNK_BLOCKS: usize = 512;

/// A candidate from the scan: its row and its raw rank key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// The row in the index (ids are looked up later).
    pub row: u32,
    /// Integer distance (lower is better) or float key (higher is better), see [`Key`].
    pub key: Key,
}

/// The raw value a candidate was ranked by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Key {
    /// An integer distance (Hamming or its weighted kin): lower is better.
    Distance(u32),
    /// A float estimate: higher is better.
    Score(f32),
}

/// How an estimate of `⟨x, q⟩` becomes a rank key (higher is better).
#[derive(Clone, Copy, Debug)]
pub enum KeyFn<'a> {
    /// Rank by the estimate itself (dot product, cosine on normalised data).
    Dot,
    /// Rank by `2·est − ‖x‖²`, i.e. by `−‖x − q‖²` up to a per-query constant.
    L2 {
        /// `‖x‖²` per row.
        norm2: &'a [f32],
    },
}

enum Selector {
    Counting(CountingTopK),
    Heap(HeapTopK),
}

impl Selector {
    fn merge(&mut self, other: Selector) {
        match (self, other) {
            (Selector::Counting(a), Selector::Counting(b)) => a.merge(b),
            (Selector::Heap(a), Selector::Heap(b)) => a.merge(b),
            _ => unreachable!("selectors of one scan share a kind"),
        }
    }

    fn into_candidates(self) -> Vec<Candidate> {
        match self {
            Selector::Counting(s) => s
                .into_sorted()
                .into_iter()
                .map(|(d, row)| Candidate {
                    row,
                    key: Key::Distance(d),
                })
                .collect(),
            Selector::Heap(s) => s
                .into_sorted()
                .into_iter()
                .map(|(score, row)| Candidate {
                    row,
                    key: Key::Score(score),
                })
                .collect(),
        }
    }
}

/// Scans all codes for every query and returns the best `candidates` rows of each, best first.
///
/// Runs on the current rayon pool (callers choose the thread count with `ThreadPool::install`).
pub fn scan(
    quantizer: &Quantizer,
    codes: &CodesRef<'_>,
    queries: &[QueryCode],
    candidates: usize,
    key_fn: KeyFn<'_>,
) -> Vec<Vec<Candidate>> {
    scan_allowed(quantizer, codes, queries, candidates, key_fn, None)
}

/// Whether bit `row` of a row bitmask (bit `r % 64` of word `r / 64`) is set.
#[inline]
pub fn row_allowed(allowed: &[u64], row: usize) -> bool {
    allowed
        .get(row / 64)
        .is_some_and(|w| (w >> (row % 64)) & 1 == 1)
}

/// [`scan`] over only the rows whose bit is set in `allowed` (bit `r % 64` of word `r / 64`;
/// rows past its end are not allowed): deleted rows and rows a payload filter rejects never take a
/// candidate's place, so every returned candidate is allowed and fewer come back only when fewer
/// rows are allowed.
pub fn scan_allowed(
    quantizer: &Quantizer,
    codes: &CodesRef<'_>,
    queries: &[QueryCode],
    candidates: usize,
    key_fn: KeyFn<'_>,
    allowed: Option<&[u64]>,
) -> Vec<Vec<Candidate>> {
    let blocks = codes.len.div_ceil(BLOCK);
    if queries.is_empty() {
        return Vec::new();
    }
    let ranking = quantizer.ranking();
    let new_selectors = || -> Vec<Selector> {
        queries
            .iter()
            .map(|_| match ranking {
                Ranking::Distance { max } => Selector::Counting(CountingTopK::new(candidates, max)),
                Ranking::Estimate => Selector::Heap(HeapTopK::new(candidates)),
            })
            .collect()
    };
    // Enough pieces to balance threads, never so small that per-piece set-up dominates.
    let threads = rayon::current_num_threads().max(1);
    let pieces = if threads == 1 {
        1
    } else {
        (threads * 4).min(blocks.div_ceil(64)).max(1)
    };
    let per_piece = blocks.div_ceil(pieces).max(1);
    let merged = (0..pieces)
        .into_par_iter()
        .map(|p| {
            let start = (p * per_piece).min(blocks);
            let end = ((p + 1) * per_piece).min(blocks);
            let mut selectors = new_selectors();
            scan_range(
                quantizer,
                codes,
                queries,
                start..end,
                key_fn,
                allowed,
                &mut selectors,
            );
            selectors
        })
        .reduce_with(|mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            a
        })
        .unwrap_or_else(new_selectors);
    let found = merged.into_iter().map(Selector::into_candidates);
    match allowed {
        // A disallowed row can only be a filler of a selector that saw fewer allowed rows than
        // it keeps; drop it.
        Some(a) => found
            .map(|c| {
                c.into_iter()
                    .filter(|c| row_allowed(a, c.row as usize))
                    .collect()
            })
            .collect(),
        None => found.collect(),
    }
}

/// Scans blocks `range` chunk by chunk, every query per chunk.
fn scan_range(
    quantizer: &Quantizer,
    codes: &CodesRef<'_>,
    queries: &[QueryCode],
    range: std::ops::Range<usize>,
    key_fn: KeyFn<'_>,
    allowed: Option<&[u64]>,
    selectors: &mut [Selector],
) {
    let mut dist = vec![0u32; CHUNK_BLOCKS * BLOCK];
    let mut est = vec![0f32; CHUNK_BLOCKS * BLOCK];
    let mut start = range.start;
    while start < range.end {
        let end = (start + CHUNK_BLOCKS).min(range.end);
        let rows = (end - start) * BLOCK;
        let first_row = start * BLOCK;
        let valid = codes.len.saturating_sub(first_row).min(rows);
        for (query, selector) in queries.iter().zip(selectors.iter_mut()) {
            quantizer.score(
                codes,
                query,
                start..end,
                &mut dist[..rows],
                &mut est[..rows],
            );
            if let Some(a) = allowed {
                // Disallowed rows get keys no selector takes over an allowed row: a distance
                // above every threshold, a score of minus infinity (dropped at the end).
                for i in (0..valid).filter(|&i| !row_allowed(a, first_row + i)) {
                    dist[i] = u32::MAX;
                    est[i] = f32::NEG_INFINITY;
                }
            }
            match selector {
                Selector::Counting(s) => s.push_block(first_row as u32, &dist[..rows], valid),
                Selector::Heap(s) => {
                    if let KeyFn::L2 { norm2 } = key_fn {
                        for (e, n) in est[..valid]
                            .iter_mut()
                            .zip(&norm2[first_row..first_row + valid])
                        {
                            *e = 2.0 * *e - n;
                        }
                    }
                    s.push_block(first_row as u32, &est[..rows], valid)
                }
            }
        }
        start = end;
    }
}
