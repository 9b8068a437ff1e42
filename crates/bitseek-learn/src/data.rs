//! Training data: pairs of embeddings that belong together.
//!
//! * `pairs`: a `.npz` with two float arrays `query` and `doc` of equal shape (float32 or float16),
//!   row `i` of each belonging together (a docstring and its function).
//! * `neighbors`: one `.npy` of vectors and no labels; each vector's positive is one of its exact
//!   float top-k neighbours, so any collection can be compressed without labels.

use bitseek_index::input::{
    read_vectors, read_vectors_from, validate, write_npy_f32_to, Checks, Format,
};
use bitseek_index::vector::normalize;
use bitseek_index::{Metric, VectorBatch};
use rand::Rng;
use std::path::Path;

/// Query/document pairs, row-major, L2-normalised.
#[derive(Clone, Debug, Default)]
pub struct Pairs {
    pub dim: usize,
    pub query: Vec<f32>,
    pub doc: Vec<f32>,
    /// Group of each pair: pairs of one group are never each other's negatives.
    pub ids: Vec<u64>,
}

/// Why training data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Input(#[from] bitseek_index::input::InputError),
    #[error("`{path}`: {reason}")]
    Bad { path: String, reason: String },
}

fn bad(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Bad {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl Pairs {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Pairs from two row-major arrays; normalises rows and refuses mismatched shapes, non-finite
    /// values and zero vectors.
    pub fn new(dim: usize, query: Vec<f32>, doc: Vec<f32>) -> Result<Pairs, String> {
        if dim == 0 {
            return Err("dimension 0".into());
        }
        let (nq, nd) = (query.len() / dim, doc.len() / dim);
        if nq != nd || query.len() != doc.len() {
            return Err(format!(
                "{nq} queries but {nd} documents; row i of `query` must belong to row i of `doc`"
            ));
        }
        let check = |what: &str, data| {
            VectorBatch::new(data, dim, Metric::Cosine)
                .map(VectorBatch::into_data)
                .map_err(|e| format!("{what} {e}"))
        };
        let query = check("query", query)?;
        let doc = check("doc", doc)?;
        Ok(Pairs {
            dim,
            ids: (0..nq as u64).collect(),
            query,
            doc,
        })
    }

    /// Splits off a random tenth (at least one pair, chosen by `seed`) as validation pairs,
    /// renumbered from 0; the rest train. What `bitseek train` and `bitseek.train` validate on
    /// when given no validation set.
    pub fn hold_out(self, seed: u64) -> (Pairs, Pairs) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut rows: Vec<usize> = (0..self.len()).collect();
        rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7a11));
        let nv = (self.len() / 10).max(1);
        let mut val = self.select(&rows[..nv]);
        val.ids = (0..val.len() as u64).collect();
        (self.select(&rows[nv..]), val)
    }

    /// The pairs at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Pairs {
        let d = self.dim;
        let mut out = Pairs {
            dim: d,
            ..Default::default()
        };
        for &r in rows {
            out.query.extend_from_slice(&self.query[r * d..(r + 1) * d]);
            out.doc.extend_from_slice(&self.doc[r * d..(r + 1) * d]);
            out.ids.push(self.ids[r]);
        }
        out
    }
}

/// Reads `pairs.npz` (arrays `query` and `doc`).
pub fn read_pairs_npz(path: &Path) -> Result<Pairs, DataError> {
    let file = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| bad(path, format!("not a .npz (zip) archive: {e}")))?;
    let mut arrays = Vec::new();
    for name in ["query", "doc"] {
        let member = zip.by_name(&format!("{name}.npy")).map_err(|_| {
            bad(
                path,
                format!("has no array `{name}`; a pairs file holds two arrays named `query` and `doc` (numpy.savez(path, query=..., doc=...))"),
            )
        })?;
        // Read in place from the archive; errors name the member as `pairs.npz/query.npy`.
        let len = member.size();
        let label = path.join(format!("{name}.npy"));
        let v = read_vectors_from(member, Some(len), Format::Npy, &label)
            .map_err(|e| bad(path, format!("array `{name}`: {e}")))?;
        arrays.push(v);
    }
    let doc = arrays.pop().expect("two arrays");
    let query = arrays.pop().expect("two arrays");
    if query.dim != doc.dim {
        return Err(bad(
            path,
            format!(
                "`query` has dimension {} but `doc` has {}; both must come from the same model",
                query.dim, doc.dim
            ),
        ));
    }
    Pairs::new(query.dim, query.data, doc.data).map_err(|r| bad(path, r))
}

/// Writes pairs as a `.npz` (uncompressed members `query.npy`, `doc.npy`, float32).
pub fn write_pairs_npz(path: &Path, query: &[f32], doc: &[f32], dim: usize) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, data) in [("query", query), ("doc", doc)] {
        zip.start_file(format!("{name}.npy"), opts)
            .map_err(std::io::Error::other)?;
        write_npy_f32_to(&mut zip, data.len() / dim, dim, data)?;
    }
    let mut file = zip.finish().map_err(std::io::Error::other)?;
    std::io::Write::flush(&mut file)
}

/// Reads plain vectors (`.npy`, `.fvecs`, JSON lines) for `neighbors` mode.
pub fn read_plain(path: &Path) -> Result<(usize, Vec<f32>), DataError> {
    let v = read_vectors(path)?;
    validate(
        &v,
        path,
        &Checks {
            expected_dim: None,
            reject_zero: true,
        },
    )?;
    let dim = v.dim;
    let mut data = v.data;
    data.chunks_exact_mut(dim).for_each(normalize);
    Ok((dim, data))
}

/// Exact top-`k` neighbours (by cosine, self excluded) of every row of `data`.
pub fn neighbours(data: &[f32], dim: usize, k: usize) -> Vec<Vec<u32>> {
    use rayon::prelude::*;
    let n = data.len() / dim;
    let batch = 256;
    let mut out = vec![Vec::new(); n];
    let mut scores = vec![0f32; batch * n];
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let s = &mut scores[..(end - start) * n];
        bitseek_index::retrieval::exact_scores(data, dim, &data[start * dim..end * dim], s);
        let tops: Vec<Vec<u32>> = s
            .par_chunks(n)
            .enumerate()
            .map(|(i, row)| {
                let me = start + i;
                let mut idx: Vec<u32> = (0..n as u32).filter(|&j| j as usize != me).collect();
                let take = k.min(idx.len());
                if take == 0 {
                    return Vec::new();
                }
                idx.select_nth_unstable_by(take - 1, |&a, &b| {
                    row[b as usize].total_cmp(&row[a as usize])
                });
                // A copy of the k kept, not the n-long candidate list (truncating keeps its
                // capacity: n × n × 4 bytes over all rows, 27 GB at 82k vectors).
                idx[..take].to_vec()
            })
            .collect();
        for (i, t) in tops.into_iter().enumerate() {
            out[start + i] = t;
        }
    }
    out
}

/// Pairs for one epoch of `neighbors` mode: each row with one of its top-k neighbours, drawn anew.
pub fn neighbour_pairs<R: Rng>(data: &[f32], dim: usize, nbrs: &[Vec<u32>], rng: &mut R) -> Pairs {
    let mut p = Pairs {
        dim,
        ..Default::default()
    };
    for (i, list) in nbrs.iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        let j = list[rng.gen_range(0..list.len())] as usize;
        p.query.extend_from_slice(&data[i * dim..(i + 1) * dim]);
        p.doc.extend_from_slice(&data[j * dim..(j + 1) * dim]);
        p.ids.push(i as u64);
    }
    p
}
