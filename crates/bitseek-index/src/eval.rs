//! Recall of an index against exact float search over the original vectors.

use crate::exact;
use crate::index::{Hit, Index, IndexError, Metric};
use crate::input::Vectors;
use crate::vector::{dot, normalize};

/// The exact top-`k` ids of each (prepared, i.e. normalised for cosine) query, computed by float
/// brute force over `base` (the original vectors) or, when `None`, over the index's kept `f32` copy.
pub fn exact_ids(
    index: &Index,
    base: Option<&Vectors>,
    queries: &[f32],
    k: usize,
) -> Result<Vec<Vec<u64>>, IndexError> {
    let m = index.meta();
    let (data, ids, norm2): (Vec<f32>, Vec<u64>, Vec<f32>);
    let (data, ids, norm2) = match base {
        Some(v) => {
            if v.dim != m.dim {
                return Err(IndexError::DimensionMismatch {
                    expected: m.dim,
                    found: v.dim,
                });
            }
            let mut d = v.data.clone();
            if m.metric == Metric::Cosine {
                d.chunks_exact_mut(v.dim).for_each(normalize);
            }
            norm2 = d.chunks_exact(v.dim).map(|x| dot(x, x)).collect();
            ids = v.ids_or_rows();
            data = d;
            (&data[..], &ids[..], &norm2[..])
        }
        None => match index.kept_f32() {
            Some(kept) => (kept, index.ids(), index.norm2()),
            None => {
                return Err(IndexError::BadParam(format!(
                "the index keeps no f32 copy (--keep {}); pass the original vectors with --vectors",
                m.keep
            )))
            }
        },
    };
    let l2 = (m.metric == Metric::L2).then_some(norm2);
    let found = exact::search(data, m.dim, l2, queries, k);
    Ok(found
        .into_iter()
        .map(|hits| hits.into_iter().map(|(_, row)| ids[row as usize]).collect())
        .collect())
}

/// Mean fraction of each query's exact top-k ids found among its hits.
pub fn recall(found: &[Vec<Hit>], truth: &[Vec<u64>]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let total: f64 = found
        .iter()
        .zip(truth)
        .map(|(hits, want)| {
            if want.is_empty() {
                return 1.0;
            }
            let got = hits.iter().filter(|h| want.contains(&h.id)).count();
            got as f64 / want.len() as f64
        })
        .sum();
    total / truth.len() as f64
}
