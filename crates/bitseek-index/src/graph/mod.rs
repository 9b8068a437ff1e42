//! A proximity graph over RaBitQ codes (`--index graph`), laid out as SymphonyQG lays its graph
//! out (Gou et al., SIGMOD 2025): every node is an IVF list of its own neighbours. Node `u`'s
//! block holds its `degree` neighbours' ids and the 1-bit RaBitQ codes of their residuals from
//! `u` (`x_v − x_u`), interleaved for the FastScan kernel, with the same per-code factors as an
//! IVF row ([`crate::ivf`]).
//!
//! A hop expands the best unexpanded candidate `u`: its exact `⟨x_u, q⟩` (from the kept copy)
//! enters the results and is the "centroid" term of its neighbours' estimates,
//! `⟨x_v, q⟩ ≈ ⟨x_u, q⟩ + scale·(⟨b, w⟩ − Σw/2) + add`, all `degree` of them from one FastScan
//! pass over the one table the query built at the start (`w = Pq`: the rotation is linear, so
//! the residual `q − x_u` needs no table of its own; the `−⟨ȳ, Px_u⟩` part is in `add`). Unvisited
//! neighbours whose estimate beats the beam's worst join the beam; the search ends when the
//! beam (`effort` wide) holds no unexpanded node. The results are ranked by the exact values, so
//! a graph search needs no separate rescoring; it needs a kept copy (f32 or a byte format).
//!
//! The graph itself ([`build`]) is Vamana's, built on the exact vectors by squared L2.
//!
//! Storage (sections of the index file, see [`crate::index`]): `graph.rotation` (D' × D'),
//! `graph.nodes` (one block per node, `u32` words: the `degree / 32` FastScan blocks of its
//! neighbours' codes, then `degree` scales, `degree` adds and `degree` neighbour ids, `u32::MAX` =
//! empty slot) and `graph.bound` (rows × degree). A hop reads one contiguous block, as in
//! SymphonyQG's rows, instead of four arrays: profiling layout 1 (separate arrays) showed the
//! search waiting on the misses of the ids and factors more than on the codes.
//! Appends are refused: a graph index is rebuilt (its neighbour lists are chosen against the
//! whole set).

pub(crate) mod build;
pub(crate) mod search;

use crate::ivf::code_rotated;
use bitseek_codes::kernels::fastscan::{block_bytes, pack_into, FS_BLOCK};
use bitseek_codes::rotation::{random_orthogonal, rotate_rows};
use build::NONE;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Version of the graph sections' layout; a file with another version is refused.
/// (1: codes, ids and factors in separate sections; 2: one block per node.)
pub const GRAPH_VERSION: u32 = 2;

/// Neighbours per node unless `--degree` says otherwise: one FastScan block.
pub const DEFAULT_DEGREE: usize = 32;

/// Largest degree accepted (four blocks per node).
pub const MAX_DEGREE: usize = 128;

/// RobustPrune's `α` (DiskANN's 1.2).
pub const ALPHA: f32 = 1.2;

/// Beam of the insertion searches.
pub const BUILD_BEAM: usize = 64;

/// Graph build choices.
#[derive(Clone, Copy, Debug)]
pub struct GraphOptions {
    /// Neighbours per node, a multiple of 32 up to [`MAX_DEGREE`]; `None` = [`DEFAULT_DEGREE`].
    pub degree: Option<usize>,
}

/// The graph part of an index's metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GraphMeta {
    /// Layout version ([`GRAPH_VERSION`]).
    pub version: u32,
    /// Neighbour slots per node (a multiple of 32).
    pub degree: usize,
    /// Padded code dimension `D'` (a multiple of 64).
    pub padded: usize,
    /// The row every search starts from (the medoid).
    pub entry: u32,
    /// RobustPrune's `α`.
    pub alpha: f32,
    /// Beam of the insertion searches.
    pub build_beam: usize,
    /// Seed of the rotation and the insertion order.
    pub seed: u64,
}

/// Beam width when a search names no effort. On the dev embeddings (133k MiniLM code and docstring
/// vectors, degree 32, 1,000 held-out docstrings as queries) beams of 24, 32, 48 and 128 gave
/// recall@10 0.940, 0.957, 0.974 and 0.992; 48 keeps a margin above 0.95 for other data.
pub const DEFAULT_EFFORT: usize = 48;

/// The owned graph arrays.
#[derive(Clone, Debug, Default)]
pub(crate) struct GraphData {
    pub rotation: Vec<f32>,
    /// Node blocks (see the module docs).
    pub nodes: Vec<u32>,
    pub bound: Vec<f32>,
    pub entry: u32,
}

/// Borrowed graph arrays.
#[derive(Clone, Copy)]
pub(crate) struct GraphRef<'a> {
    pub dim: usize,
    pub padded: usize,
    pub degree: usize,
    pub entry: u32,
    pub rotation: &'a [f32],
    pub nodes: &'a [u32],
    pub bound: &'a [f32],
}

/// One node's block, split.
pub(crate) struct Node<'a> {
    pub codes: &'a [u8],
    pub scale: &'a [f32],
    pub add: &'a [f32],
    pub neighbors: &'a [u32],
}

/// `u32` words of one node block: codes, then three words per neighbour slot.
pub(crate) fn node_words(degree: usize, padded: usize) -> usize {
    degree / FS_BLOCK * block_bytes(padded / 4) / 4 + 3 * degree
}

/// Splits a node block (`node_words` long) into its parts.
#[inline]
pub(crate) fn split_node(block: &[u32], degree: usize) -> Node<'_> {
    let c = block.len() - 3 * degree;
    let (codes, rest) = block.split_at(c);
    let (scale, rest) = rest.split_at(degree);
    let (add, neighbors) = rest.split_at(degree);
    Node {
        codes: bytemuck::cast_slice(codes),
        scale: bytemuck::cast_slice(scale),
        add: bytemuck::cast_slice(add),
        neighbors,
    }
}

/// Nodes whose neighbours are coded per parallel task.
const CHUNK: usize = 256;

impl GraphData {
    /// Builds the graph over `data` (the flat index's rows, normalised for cosine) and codes every
    /// node's neighbours.
    pub fn build(data: &[f32], dim: usize, padded: usize, degree: usize, seed: u64) -> GraphData {
        let built = build::build(
            data,
            dim,
            build::Params {
                degree,
                alpha: ALPHA,
                beam: BUILD_BEAM.max(degree + degree / 2),
                seed,
            },
        );
        let rotation = random_orthogonal(padded, seed ^ 0x9a4f_0001);
        let mut g = encode(data, dim, padded, degree, &rotation, &built.neighbors);
        g.rotation = rotation;
        g.entry = built.entry;
        g
    }

    pub fn as_ref(&self, dim: usize, padded: usize, degree: usize) -> GraphRef<'_> {
        GraphRef {
            dim,
            padded,
            degree,
            entry: self.entry,
            rotation: &self.rotation,
            nodes: &self.nodes,
            bound: &self.bound,
        }
    }
}

/// Codes every node's neighbours as residuals from the node: the rows are rotated once and each
/// residual is a difference of rotated rows.
fn encode(
    data: &[f32],
    dim: usize,
    padded: usize,
    degree: usize,
    rotation: &[f32],
    neighbors: &[u32],
) -> GraphData {
    let n = data.len() / dim;
    let groups = padded / 4;
    let node_bytes = degree / FS_BLOCK * block_bytes(groups);
    let words = node_words(degree, padded);
    let rot: Vec<f32> = data
        .par_chunks(CHUNK * dim)
        .flat_map_iter(|rows| {
            let m = rows.len() / dim;
            let mut pad = vec![0f32; m * padded];
            for (p, x) in pad.chunks_exact_mut(padded).zip(rows.chunks_exact(dim)) {
                p[..dim].copy_from_slice(x);
            }
            let mut out = vec![0f32; m * padded];
            rotate_rows(rotation, padded, &pad, &mut out);
            out
        })
        .collect();
    let mut g = GraphData {
        nodes: vec![0; n * words],
        bound: vec![0.0; n * degree],
        ..Default::default()
    };
    g.nodes
        .par_chunks_mut(words)
        .zip(g.bound.par_chunks_mut(degree))
        .enumerate()
        .for_each(|(u, (block, bound))| {
            let (codes, rest) = block.split_at_mut(node_bytes / 4);
            let codes: &mut [u8] = bytemuck::cast_slice_mut(codes);
            let (scale, rest) = rest.split_at_mut(degree);
            let (add, ids) = rest.split_at_mut(degree);
            ids.copy_from_slice(&neighbors[u * degree..(u + 1) * degree]);
            let pu = &rot[u * padded..(u + 1) * padded];
            let mut o = vec![0f32; padded];
            for (j, &v) in neighbors[u * degree..(u + 1) * degree].iter().enumerate() {
                if v == NONE {
                    continue;
                }
                let pv = &rot[v as usize * padded..(v as usize + 1) * padded];
                let mut dot_mu = 0f64;
                for i in 0..padded {
                    o[i] = pv[i] - pu[i];
                    dot_mu += o[i] as f64 * pu[i] as f64;
                }
                let e = code_rotated(&o, pu, dot_mu);
                let b = j / FS_BLOCK * block_bytes(groups);
                pack_into(
                    &mut codes[b..b + block_bytes(groups)],
                    groups,
                    j % FS_BLOCK,
                    &e.code,
                );
                scale[j] = e.scale.to_bits();
                add[j] = e.add.to_bits();
                bound[j] = e.bound;
            }
        });
    g
}

impl GraphRef<'_> {
    pub fn groups(&self) -> usize {
        self.padded / 4
    }

    /// `u32` words of one node block.
    pub fn node_words(&self) -> usize {
        node_words(self.degree, self.padded)
    }

    /// Node `u`'s block, split.
    #[inline]
    pub fn node(&self, u: u32) -> Node<'_> {
        let w = self.node_words();
        split_node(
            &self.nodes[u as usize * w..(u as usize + 1) * w],
            self.degree,
        )
    }

    /// Node `u`'s block as bytes (to fetch ahead).
    #[inline]
    pub fn node_bytes_of(&self, u: u32) -> &[u8] {
        let w = self.node_words();
        bytemuck::cast_slice(&self.nodes[u as usize * w..(u as usize + 1) * w])
    }

    /// Every node's neighbour slots, node after node.
    pub fn neighbor_lists(&self) -> impl Iterator<Item = &[u32]> + '_ {
        let w = self.node_words();
        self.nodes
            .chunks_exact(w)
            .map(move |b| split_node(b, self.degree).neighbors)
    }

    /// Checks every array against the metadata, so a search never reads out of bounds.
    pub fn check(&self, rows: usize) -> Result<(), String> {
        let want = |name: &str, found: usize, want: usize| {
            if found == want {
                Ok(())
            } else {
                Err(format!(
                    "section {name} holds {found} values, expected {want}"
                ))
            }
        };
        if self.degree == 0 || !self.degree.is_multiple_of(FS_BLOCK) || self.degree > MAX_DEGREE {
            return Err(format!(
                "graph degree {} is not a multiple of {FS_BLOCK} up to {MAX_DEGREE}",
                self.degree
            ));
        }
        want(
            "graph.rotation",
            self.rotation.len(),
            self.padded * self.padded,
        )?;
        want("graph.bound", self.bound.len(), rows * self.degree)?;
        want("graph.nodes", self.nodes.len(), rows * self.node_words())?;
        if self.entry as usize >= rows {
            return Err(format!(
                "graph entry point {} is not one of the {rows} rows",
                self.entry
            ));
        }
        if let Some(&v) = self
            .neighbor_lists()
            .flatten()
            .find(|&&v| v != NONE && v as usize >= rows)
        {
            return Err(format!(
                "graph.nodes names row {v} as a neighbour, beyond the {rows} rows"
            ));
        }
        Ok(())
    }

    /// Whether every node is reachable from the entry point.
    pub fn connected(&self) -> bool {
        let adj: Vec<Vec<u32>> = self
            .neighbor_lists()
            .map(|s| s.iter().copied().filter(|&v| v != NONE).collect())
            .collect();
        build::reachable(&adj, self.entry).iter().all(|&r| r)
    }
}
