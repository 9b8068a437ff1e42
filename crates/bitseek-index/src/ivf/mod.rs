//! An inverted file (IVF) over RaBitQ codes: the vectors are cut into k-means lists, each vector is
//! coded by the sign bits of its rotated residual from its list's centroid, and a query scores only
//! the lists nearest to it (`effort` = lists probed) with the FastScan kernel.
//!
//! Centring on the list's centroid instead of one global mean is what RaBitQ's own IVF does: the
//! residuals are short, so the estimator's error (proportional to `‖o‖·‖q − c‖`) is smaller.
//!
//! The estimate. For a vector `x` in list `c` with centroid `μ`: `o = x − μ`, `n = ‖o‖`,
//! `o' = P·o/n` (P the seeded rotation, padded to `D'`), code `b = [o' > 0]`,
//! `ȳ = (2b − 1)/√D'` and `a = ⟨ȳ, o'⟩`. Then
//! `⟨x, q⟩ = ⟨μ, q⟩ + ⟨o, q − μ⟩ + ⟨o, μ⟩ ≈ ⟨μ, q⟩ + (n/a)·⟨ȳ, Pq − Pμ⟩ + ⟨o, μ⟩`, and with
//! `w = Pq`: `(n/a)⟨ȳ, Pq⟩ = (2n/(a√D'))·(⟨b, w⟩ − Σw/2)`. So one rotation and one look-up table
//! per query serve every list; per row the index keeps `scale = 2n/(a√D')`,
//! `add = ⟨o, μ⟩ − (n/a)⟨ȳ, Pμ⟩` and RaBitQ's bound factor `n·√(1 − a²)/a · ε₀/√(D' − 1)` (times
//! `‖q − μ‖` at query time). `⟨b, w⟩` comes from the FastScan sums of a table quantized to `u8`
//! per group of four dims (`⟨b, w⟩ ≈ Δ·S + Σ_g lo_g`).
//!
//! Storage (sections of the index file, see [`crate::index`]): `ivf.centroids` (lists × dim),
//! `ivf.rotation` (D' × D'), `ivf.offsets` (lists + 1 row offsets, `u64`), then per row in list
//! order: `ivf.rows` (the flat index's row, `u32`), `ivf.scale`, `ivf.add`, `ivf.bound`, and the
//! codes `ivf.codes`, each list padded to whole blocks of 32.

pub mod kmeans;
pub(crate) mod search;

use bitseek_codes::kernels::fastscan::{block_bytes, pack_into, FS_BLOCK};
use bitseek_codes::quantizer::lattice::EPSILON0;
use bitseek_codes::rotation::{random_orthogonal, rotate_rows};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Version of the IVF sections' layout; a file with another version is refused.
pub const IVF_VERSION: u32 = 1;

/// IVF build choices.
#[derive(Clone, Copy, Debug, Default)]
pub struct IvfOptions {
    /// Number of lists; `None` picks [`default_lists`].
    pub lists: Option<usize>,
}

/// The IVF part of an index's metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IvfMeta {
    /// Layout version ([`IVF_VERSION`]).
    pub version: u32,
    /// Number of lists.
    pub lists: usize,
    /// Padded code dimension `D'` (a multiple of 64).
    pub padded: usize,
    /// Seed of the rotation and of the k-means sample.
    pub seed: u64,
}

/// Lists for `rows` vectors: about `4·√rows` (RaBitQ's IVF uses 1024 lists for ~140k and 4096
/// for 1M), at least 1 and at most one list per 32 rows.
pub fn default_lists(rows: usize) -> usize {
    let l = (4.0 * (rows as f64).sqrt()).round() as usize;
    l.min(rows / FS_BLOCK).max(1)
}

/// Lists probed when a search names no effort: a tenth of the lists (at least 8, at most all),
/// chosen on the dev embeddings (133k MiniLM vectors, 1459 lists), where 128 lists gave recall@10
/// 0.956 after ×4 rescoring, 160 lists 0.964 and 64 lists 0.925 (k-means as [`kmeans`] trains it).
pub fn default_effort(lists: usize) -> usize {
    (lists / 10).max(8).min(lists)
}

/// The owned IVF arrays (one representation for built, appended and mapped indexes alike).
#[derive(Clone, Debug, Default)]
pub(crate) struct IvfData {
    pub centroids: Vec<f32>,
    pub rotation: Vec<f32>,
    pub offsets: Vec<u64>,
    pub rows: Vec<u32>,
    pub scale: Vec<f32>,
    pub add: Vec<f32>,
    pub bound: Vec<f32>,
    pub codes: Vec<u8>,
}

/// Borrowed IVF arrays, with what is derived from them at open.
#[derive(Clone, Copy)]
pub(crate) struct IvfRef<'a> {
    pub dim: usize,
    pub padded: usize,
    pub centroids: &'a [f32],
    pub rotation: &'a [f32],
    pub offsets: &'a [u64],
    pub rows: &'a [u32],
    pub scale: &'a [f32],
    pub add: &'a [f32],
    pub bound: &'a [f32],
    pub codes: &'a [u8],
    pub derived: &'a Derived,
}

/// Per-list values computed at build or open: first block of each list, `‖μ‖²`, and the
/// centroids' own RaBitQ codes (centred on zero, FastScan blocks) with their scale, which rank the
/// lists for a query from the query's table instead of a float product with every centroid.
#[derive(Clone, Debug, Default)]
pub(crate) struct Derived {
    pub block_start: Vec<usize>,
    pub cnorm2: Vec<f32>,
    pub ccodes: Vec<u8>,
    pub cscale: Vec<f32>,
}

impl IvfRef<'_> {
    pub fn lists(&self) -> usize {
        self.offsets.len() - 1
    }
    pub fn groups(&self) -> usize {
        self.padded / 4
    }
}

impl Derived {
    pub fn of(dim: usize, centroids: &[f32], offsets: &[u64]) -> Derived {
        let mut block_start = Vec::with_capacity(offsets.len());
        let mut b = 0;
        block_start.push(0);
        for w in offsets.windows(2) {
            b += ((w[1] - w[0]) as usize).div_ceil(FS_BLOCK);
            block_start.push(b);
        }
        Derived {
            block_start,
            cnorm2: centroids
                .chunks_exact(dim)
                .map(|c| c.iter().map(|v| v * v).sum())
                .collect(),
            ..Default::default()
        }
    }

    /// Adds the centroids' codes: each centroid coded like a row of a list whose centre is zero,
    /// so `⟨μ, q⟩ ≈ cscale·(⟨b, w⟩ − Σw/2)` from the same table as the rows.
    pub fn with_routing(
        mut self,
        dim: usize,
        padded: usize,
        centroids: &[f32],
        rotation: &[f32],
    ) -> Derived {
        let lists = centroids.len() / dim;
        let groups = padded / 4;
        let bb = block_bytes(groups);
        let enc = encode(
            centroids,
            dim,
            padded,
            &vec![0; lists],
            &vec![0.0; dim],
            &vec![0.0; padded],
            rotation,
        );
        self.ccodes = vec![0u8; lists.div_ceil(FS_BLOCK) * bb];
        for (c, e) in enc.iter().enumerate() {
            pack_into(
                &mut self.ccodes[c / FS_BLOCK * bb..(c / FS_BLOCK + 1) * bb],
                groups,
                c % FS_BLOCK,
                &e.code,
            );
        }
        self.cscale = enc.iter().map(|e| e.scale).collect();
        self
    }
}

/// One row's code words and factors.
pub(crate) struct Encoded {
    pub code: Vec<u64>,
    pub scale: f32,
    pub add: f32,
    pub bound: f32,
}

/// Rows encoded per parallel task.
const CHUNK: usize = 2048;

/// Codes of `data` rows (`dim` each) against their lists' centroids (`assign`), rotated by
/// `rotation` (`padded²`); `rot_centroids` are the centroids rotated (lists × padded).
fn encode(
    data: &[f32],
    dim: usize,
    padded: usize,
    assign: &[u32],
    centroids: &[f32],
    rot_centroids: &[f32],
    rotation: &[f32],
) -> Vec<Encoded> {
    data.par_chunks(CHUNK * dim)
        .zip(assign.par_chunks(CHUNK))
        .flat_map_iter(|(rows, lists)| {
            let n = rows.len() / dim;
            let mut centred = vec![0f32; n * padded];
            let mut dot_mu = vec![0f64; n];
            for r in 0..n {
                let mu = &centroids[lists[r] as usize * dim..][..dim];
                let x = &rows[r * dim..(r + 1) * dim];
                let o = &mut centred[r * padded..r * padded + dim];
                for i in 0..dim {
                    o[i] = x[i] - mu[i];
                    dot_mu[r] += o[i] as f64 * mu[i] as f64;
                }
            }
            let mut rot = vec![0f32; n * padded];
            rotate_rows(rotation, padded, &centred, &mut rot);
            (0..n)
                .map(|r| {
                    let o = &rot[r * padded..(r + 1) * padded];
                    let pmu = &rot_centroids[lists[r] as usize * padded..][..padded];
                    code_rotated(o, pmu, dot_mu[r])
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The code and factors of one residual `o' = P·(x − μ)` (already rotated, `D'` values), given
/// the rotated centre `pmu = P·μ` and `⟨x − μ, μ⟩` (see the module docs). Shared with the graph,
/// whose residuals are differences of rotated vectors (the rotation is linear).
pub(crate) fn code_rotated(o: &[f32], pmu: &[f32], dot_mu: f64) -> Encoded {
    let padded = o.len();
    let d = padded as f64;
    let norm = o.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    let mut code = vec![0u64; padded / 64];
    let (mut l1, mut y_pmu) = (0f64, 0f64);
    for (i, (&v, &m)) in o.iter().zip(pmu).enumerate() {
        let pos = v > 0.0;
        code[i / 64] |= (pos as u64) << (i % 64);
        l1 += (v as f64).abs();
        y_pmu += if pos { m as f64 } else { -(m as f64) };
    }
    y_pmu /= d.sqrt();
    // a = ⟨ȳ, o'⟩ = ‖o‖₁ / (‖o‖·√D'); a zero residual keeps all factors 0 so its
    // estimate is exactly ⟨μ, q⟩.
    let (scale, add, bound) = if norm > 0.0 && l1 > 0.0 {
        let a = l1 / (norm * d.sqrt());
        let bound =
            norm * (1.0 - a * a).max(0.0).sqrt() / a * EPSILON0 as f64 / (d - 1.0).max(1.0).sqrt();
        (
            2.0 * norm / (a * d.sqrt()),
            dot_mu - norm / a * y_pmu,
            bound,
        )
    } else {
        (0.0, 0.0, 0.0)
    };
    Encoded {
        code,
        scale: scale as f32,
        add: add as f32,
        bound: bound as f32,
    }
}

/// Rotates the centroids (zero-padded to `padded`).
pub(crate) fn rotate_centroids(
    centroids: &[f32],
    dim: usize,
    padded: usize,
    rotation: &[f32],
) -> Vec<f32> {
    let lists = centroids.len() / dim;
    let mut padded_c = vec![0f32; lists * padded];
    for (p, c) in padded_c
        .chunks_exact_mut(padded)
        .zip(centroids.chunks_exact(dim))
    {
        p[..dim].copy_from_slice(c);
    }
    let mut out = vec![0f32; lists * padded];
    rotate_rows(rotation, padded, &padded_c, &mut out);
    out
}

impl IvfData {
    /// Clusters `data` (the flat index's rows, `dim` each, already normalised for cosine) and
    /// codes every row in its list.
    pub fn build(data: &[f32], dim: usize, padded: usize, lists: usize, seed: u64) -> IvfData {
        let n = data.len() / dim;
        let centroids = kmeans::train(data, dim, lists, seed);
        let rotation = random_orthogonal(padded, seed ^ 0x1f5e_ed00);
        let mut ivf = IvfData {
            centroids,
            rotation,
            offsets: vec![0; lists + 1],
            ..Default::default()
        };
        let rows: Vec<u32> = (0..n as u32).collect();
        ivf.append(data, dim, padded, &rows);
        ivf
    }

    /// Adds rows (their flat-index row numbers `rows`, vectors in `data`) to their nearest lists,
    /// without touching the centroids or any stored code: the arrays are merged list by list.
    pub fn append(&mut self, data: &[f32], dim: usize, padded: usize, rows: &[u32]) {
        let lists = self.offsets.len() - 1;
        let groups = padded / 4;
        let bb = block_bytes(groups);
        let assign = kmeans::nearest(data, dim, &self.centroids);
        let rot_c = rotate_centroids(&self.centroids, dim, padded, &self.rotation);
        let enc = encode(
            data,
            dim,
            padded,
            &assign,
            &self.centroids,
            &rot_c,
            &self.rotation,
        );
        let mut new_by_list: Vec<Vec<usize>> = vec![Vec::new(); lists];
        for (i, &l) in assign.iter().enumerate() {
            new_by_list[l as usize].push(i);
        }
        let total = self.rows.len() + rows.len();
        let mut out = IvfData {
            centroids: std::mem::take(&mut self.centroids),
            rotation: std::mem::take(&mut self.rotation),
            offsets: Vec::with_capacity(lists + 1),
            rows: Vec::with_capacity(total),
            scale: Vec::with_capacity(total),
            add: Vec::with_capacity(total),
            bound: Vec::with_capacity(total),
            codes: Vec::new(),
        };
        out.offsets.push(0);
        let old_blocks = Derived::of(dim, &out.centroids, &self.offsets).block_start;
        for l in 0..lists {
            let (s, e) = (self.offsets[l] as usize, self.offsets[l + 1] as usize);
            let old = e - s;
            let len = old + new_by_list[l].len();
            // The old list's blocks are copied whole; new codes fill its last block's free lanes
            // and then new blocks.
            let mut block = self.codes[old_blocks[l] * bb..old_blocks[l + 1] * bb].to_vec();
            block.resize(len.div_ceil(FS_BLOCK) * bb, 0);
            out.rows.extend_from_slice(&self.rows[s..e]);
            out.scale.extend_from_slice(&self.scale[s..e]);
            out.add.extend_from_slice(&self.add[s..e]);
            out.bound.extend_from_slice(&self.bound[s..e]);
            for (j, &i) in new_by_list[l].iter().enumerate() {
                let at = old + j;
                pack_into(
                    &mut block[at / FS_BLOCK * bb..(at / FS_BLOCK + 1) * bb],
                    groups,
                    at % FS_BLOCK,
                    &enc[i].code,
                );
                out.rows.push(rows[i]);
                out.scale.push(enc[i].scale);
                out.add.push(enc[i].add);
                out.bound.push(enc[i].bound);
            }
            out.codes.extend_from_slice(&block);
            out.offsets.push(out.rows.len() as u64);
        }
        *self = out;
    }

    pub fn as_ref<'a>(&'a self, dim: usize, padded: usize, derived: &'a Derived) -> IvfRef<'a> {
        IvfRef {
            dim,
            padded,
            centroids: &self.centroids,
            rotation: &self.rotation,
            offsets: &self.offsets,
            rows: &self.rows,
            scale: &self.scale,
            add: &self.add,
            bound: &self.bound,
            codes: &self.codes,
            derived,
        }
    }
}

impl IvfRef<'_> {
    /// Checks every array against the metadata, so a search never reads out of bounds.
    pub fn check(&self, rows: usize) -> Result<(), String> {
        let lists = self.offsets.len().saturating_sub(1);
        if lists == 0 {
            return Err("IVF with no lists".into());
        }
        let want = |name: &str, found: usize, want: usize| {
            if found == want {
                Ok(())
            } else {
                Err(format!(
                    "section {name} holds {found} values, expected {want}"
                ))
            }
        };
        want("ivf.centroids", self.centroids.len(), lists * self.dim)?;
        want(
            "ivf.rotation",
            self.rotation.len(),
            self.padded * self.padded,
        )?;
        if self.offsets[0] != 0
            || self.offsets.windows(2).any(|w| w[0] > w[1])
            || self.offsets[lists] as usize != rows
        {
            return Err(format!(
                "ivf.offsets do not cut {rows} rows into {lists} lists"
            ));
        }
        for (name, len) in [
            ("ivf.rows", self.rows.len()),
            ("ivf.scale", self.scale.len()),
            ("ivf.add", self.add.len()),
            ("ivf.bound", self.bound.len()),
        ] {
            want(name, len, rows)?;
        }
        want(
            "ivf.codes",
            self.codes.len(),
            self.derived.block_start[lists] * block_bytes(self.groups()),
        )?;
        let mut seen = vec![false; rows];
        for &r in self.rows {
            match seen.get_mut(r as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err(format!("ivf.rows holds row {r} twice or out of range")),
            }
        }
        Ok(())
    }
}
