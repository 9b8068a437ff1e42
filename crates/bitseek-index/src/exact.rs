//! Exact float search: the ground truth for recall and the baseline for speed.
//!
//! A batch of queries meets a chunk of database rows as one matrix product (`matrixmultiply`'s
//! SGEMM); a single query uses the SIMD `dot_f32` kernel row by row. Chunks are spread over threads
//! with rayon and the per-thread heaps merged, exactly like the flat scan over codes, so the two are
//! compared like for like.

use bitseek_codes::kernels::kernels;
use bitseek_codes::topk::HeapTopK;
use rayon::prelude::*;

/// Database rows per chunk (4096 × 384 floats = 6 MiB at most per product).
const CHUNK_ROWS: usize = 4096;

/// The exact best `k` rows for each query: `(key, row)` best first, where the key is `⟨x, q⟩` or,
/// when `norm2` is given (L2), `2⟨x, q⟩ − ‖x‖²` (`−‖x − q‖²` up to a per-query constant).
pub fn search(
    data: &[f32],
    dim: usize,
    norm2: Option<&[f32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<(f32, u32)>> {
    let n = data.len() / dim.max(1);
    let nq = queries.len() / dim.max(1);
    if nq == 0 {
        return Vec::new();
    }
    let chunks = n.div_ceil(CHUNK_ROWS);
    let fresh = || (0..nq).map(|_| HeapTopK::new(k)).collect::<Vec<_>>();
    let merged = (0..chunks)
        .into_par_iter()
        .fold(fresh, |mut heaps, c| {
            let start = c * CHUNK_ROWS;
            let rows = CHUNK_ROWS.min(n - start);
            let block = &data[start * dim..(start + rows) * dim];
            let mut scores = vec![0f32; nq * rows];
            if nq == 1 {
                let dot = kernels().dot_f32;
                for (s, x) in scores.iter_mut().zip(block.chunks_exact(dim)) {
                    *s = dot(queries, x);
                }
            } else {
                product(queries, block, dim, &mut scores);
            }
            for (heap, row_scores) in heaps.iter_mut().zip(scores.chunks_exact_mut(rows)) {
                if let Some(norm2) = norm2 {
                    for (s, n2) in row_scores.iter_mut().zip(&norm2[start..start + rows]) {
                        *s = 2.0 * *s - n2;
                    }
                }
                heap.push_block(start as u32, row_scores, rows);
            }
            heaps
        })
        .reduce(fresh, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            a
        });
    merged.into_iter().map(HeapTopK::into_sorted).collect()
}

/// `out[q * rows + r] = ⟨queries_q, block_r⟩` for row-major `queries` (nq × dim) and `block`
/// (rows × dim): one SGEMM.
pub fn product(queries: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    let rows = block.len() / dim.max(1);
    // `block` read transposed through its strides.
    sgemm(queries, block, dim, rows, (1, dim as isize), out);
}

/// [`product`] with the block already transposed, `block_t` (dim × rows, row-major): the SGEMM
/// then packs it from contiguous runs instead of gathering a column at a time, which pays when
/// the same block (the IVF's centroids) meets many chunks of queries.
pub fn product_transposed(
    queries: &[f32],
    block_t: &[f32],
    dim: usize,
    rows: usize,
    out: &mut [f32],
) {
    assert_eq!(
        block_t.len(),
        dim * rows,
        "product: block must be dim × rows"
    );
    sgemm(queries, block_t, dim, rows, (rows as isize, 1), out);
}

/// `out = queries · B` for row-major `queries` (nq × dim) and `B` (dim × rows) read at `b`
/// through its (row, column) strides.
fn sgemm(
    queries: &[f32],
    b: &[f32],
    dim: usize,
    rows: usize,
    strides: (isize, isize),
    out: &mut [f32],
) {
    let nq = queries.len() / dim.max(1);
    assert_eq!(
        out.len(),
        nq * rows,
        "product: output must be queries × rows"
    );
    assert!(
        b.len() >= dim * rows,
        "product: block must hold dim × rows values"
    );
    if nq == 0 || rows == 0 {
        return;
    }
    // SAFETY: `queries` is nq×dim row-major, `b` holds dim×rows values reached through
    // `strides` (both layouts callers pass stay inside `dim * rows`), `out` is nq×rows
    // row-major; all sized as checked above.
    unsafe {
        matrixmultiply::sgemm(
            nq,
            dim,
            rows,
            1.0,
            queries.as_ptr(),
            dim as isize,
            1,
            b.as_ptr(),
            strides.0,
            strides.1,
            0.0,
            out.as_mut_ptr(),
            rows as isize,
            1,
        );
    }
}
