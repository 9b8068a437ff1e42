//! IVF search: rotate the query once, build its FastScan table once, rank the lists by the
//! distance of their centroids, and score the `effort` nearest lists 32 codes at a time.

use super::IvfRef;
use crate::flat::row_allowed;
use bitseek_codes::kernels::fastscan::FS_BLOCK;
use bitseek_codes::kernels::Kernels;
use bitseek_codes::rotation::rotate_rows;
use bitseek_codes::topk::HeapTopK;
use rayon::prelude::*;

/// A candidate of an IVF search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Found {
    /// The flat index's row.
    pub row: u32,
    /// Rank key: the estimate of `⟨x, q⟩`, or `2·est − ‖x‖²` for L2.
    pub key: f32,
    /// The estimate of `⟨x, q⟩`.
    pub est: f32,
    /// Half-width of the estimate's error bound.
    pub bound: f32,
}

/// One query's table and the constants that turn FastScan sums into `⟨b, w⟩`.
pub(crate) struct Table {
    /// `u8` entries, 16 per group.
    pub lut: Vec<u8>,
    /// `⟨b, w⟩ ≈ delta·S + sum_lo`.
    pub delta: f32,
    pub sum_lo: f32,
    /// `Σ w`.
    pub sum_w: f32,
}

impl Table {
    /// The table of a rotated query `w` (`D'` values): per group of four dims the 16 subset sums,
    /// shifted by the group's smallest and scaled by one step shared by all groups so the widest
    /// group spans 0..=255.
    pub fn new(w: &[f32]) -> Table {
        let groups = w.len() / 4;
        let mut sums = vec![0f32; groups * 16];
        let mut lo = vec![0f32; groups];
        let mut width = 0f32;
        for g in 0..groups {
            let v = &w[4 * g..4 * g + 4];
            let e = &mut sums[g * 16..g * 16 + 16];
            // Entry k adds its dims in ascending order: entry k without its highest bit, plus
            // that dim (the same sums, in the same order, as adding the set dims one by one).
            for k in 1..16 {
                let top = (k as u32).ilog2() as usize;
                e[k] = e[k ^ (1 << top)] + v[top];
            }
            let (mn, mx) = e
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            lo[g] = mn;
            width = width.max(mx - mn);
        }
        let delta = if width > 0.0 { width / 255.0 } else { 1.0 };
        let lut = sums
            .iter()
            .enumerate()
            // e ≥ lo, so adding ½ and truncating rounds as `round` does (half away from zero),
            // and `as u8` saturates at 255; this form vectorises where `round` is a libm call.
            .map(|(i, &e)| ((e - lo[i / 16]) / delta + 0.5) as u8)
            .collect();
        Table {
            lut,
            delta,
            sum_lo: lo.iter().sum(),
            sum_w: w.iter().sum(),
        }
    }
}

/// Rotated queries (`nq × D'`).
pub(crate) fn rotate(ivf: &IvfRef<'_>, queries: &[f32]) -> Vec<f32> {
    rotate_with(ivf.rotation, ivf.dim, ivf.padded, queries)
}

/// Queries of `dim` values, zero-padded to `padded` and rotated by `rotation` (`padded²`); shared
/// with the graph, which rotates its queries the same way.
pub(crate) fn rotate_with(
    rotation: &[f32],
    dim: usize,
    padded: usize,
    queries: &[f32],
) -> Vec<f32> {
    let nq = queries.len() / dim;
    let mut pad = vec![0f32; nq * padded];
    for (p, q) in pad.chunks_exact_mut(padded).zip(queries.chunks_exact(dim)) {
        p[..dim].copy_from_slice(q);
    }
    let mut rotated = vec![0f32; nq * padded];
    if nq == 1 {
        // One query: row-by-row dot products. A matrix product would first copy (pack) the whole
        // rotation, several times the work of reading it once.
        let dot = bitseek_codes::kernels::kernels().dot_f32;
        for (r, p) in rotated.iter_mut().zip(rotation.chunks_exact(padded)) {
            *r = dot(p, &pad);
        }
    } else {
        rotate_rows(rotation, padded, &pad, &mut rotated);
    }
    rotated
}

/// Lists whose centroids are re-ranked exactly, for `probe` lists probed: the centroid codes'
/// estimates pick these, exact products pick the `probe` among them.
fn shortlist(probe: usize) -> usize {
    2 * probe + 32
}

/// The `probe` lists nearest to `q` (L2 between query and centroid), nearest first, with the exact
/// `⟨μ, q⟩` of each in `cq` (indexed by list; others left as they are).
fn route(
    ivf: &IvfRef<'_>,
    q: &[f32],
    table: &Table,
    probe: usize,
    kernels: &Kernels,
    cq: &mut [f32],
) -> Vec<u32> {
    let lists = ivf.lists();
    let dot = kernels.dot_f32;
    let exact = |c: usize| dot(&ivf.centroids[c * ivf.dim..(c + 1) * ivf.dim], q);
    let mut order: Vec<u32> = (0..lists as u32).collect();
    let short = shortlist(probe);
    if short < lists {
        let mut sums = vec![0u32; ivf.derived.ccodes.len() / (ivf.groups() * 16) * FS_BLOCK];
        (kernels.fastscan_blocks)(&table.lut, &ivf.derived.ccodes, ivf.groups(), &mut sums);
        let base = table.sum_lo - 0.5 * table.sum_w;
        let approx: Vec<f32> = (0..lists)
            .map(|c| {
                ivf.derived.cnorm2[c]
                    - 2.0 * ivf.derived.cscale[c] * (table.delta * sums[c] as f32 + base)
            })
            .collect();
        order.select_nth_unstable_by(short - 1, |a, b| {
            approx[*a as usize]
                .total_cmp(&approx[*b as usize])
                .then(a.cmp(b))
        });
        order.truncate(short);
    }
    for &c in &order {
        cq[c as usize] = exact(c as usize);
    }
    let dist = |c: u32| ivf.derived.cnorm2[c as usize] - 2.0 * cq[c as usize];
    let by_dist = |a: &u32, b: &u32| dist(*a).total_cmp(&dist(*b)).then(a.cmp(b));
    if probe < order.len() {
        order.select_nth_unstable_by(probe - 1, by_dist);
        order.truncate(probe);
    }
    order.sort_unstable_by(by_dist);
    order
}

/// The `wanted` best candidates of each query from its `effort` nearest lists, best first (ties
/// by the lower position in list order). `norm2` (per flat row) makes the key L2's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search(
    ivf: &IvfRef<'_>,
    queries: &[f32],
    norm2: Option<&[f32]>,
    wanted: usize,
    effort: usize,
    allowed: Option<&[u64]>,
    kernels: &Kernels,
) -> Vec<Vec<Found>> {
    let (dim, padded) = (ivf.dim, ivf.padded);
    let lists = ivf.lists();
    let rotated = rotate(ivf, queries);
    queries
        .par_chunks(dim)
        .zip(rotated.par_chunks(padded))
        .map(|(q, w)| {
            let q2: f32 = q.iter().map(|v| v * v).sum();
            let table = Table::new(w);
            let mut cq = vec![0f32; lists];
            let order = route(ivf, q, &table, effort.clamp(1, lists), kernels, &mut cq);
            let mut heap = HeapTopK::new(wanted);
            let (mut sums, mut keys) = (Vec::new(), Vec::new());
            for &l in &order {
                scan_list(
                    ivf,
                    l as usize,
                    &table,
                    cq[l as usize],
                    norm2,
                    allowed,
                    kernels,
                    &mut sums,
                    &mut keys,
                    &mut heap,
                );
            }
            heap.into_sorted()
                .into_iter()
                .filter(|&(key, _)| key > f32::NEG_INFINITY)
                .map(|(key, pos)| found(ivf, pos as usize, key, q2, &cq, norm2))
                .collect()
        })
        .collect()
}

/// Scores list `l` into `heap` (keys by position in list order).
#[allow(clippy::too_many_arguments)]
#[inline]
fn scan_list(
    ivf: &IvfRef<'_>,
    l: usize,
    table: &Table,
    mu_q: f32,
    norm2: Option<&[f32]>,
    allowed: Option<&[u64]>,
    kernels: &Kernels,
    sums: &mut Vec<u32>,
    keys: &mut Vec<f32>,
    heap: &mut HeapTopK,
) {
    let (s, e) = (ivf.offsets[l] as usize, ivf.offsets[l + 1] as usize);
    if s == e {
        return;
    }
    let bb = ivf.groups() * 16;
    let (b0, b1) = (ivf.derived.block_start[l], ivf.derived.block_start[l + 1]);
    sums.resize((b1 - b0) * FS_BLOCK, 0);
    (kernels.fastscan_blocks)(&table.lut, &ivf.codes[b0 * bb..b1 * bb], ivf.groups(), sums);
    let base = table.sum_lo - 0.5 * table.sum_w; // as `exhaustive` groups it
    let (scale, add, rows) = (&ivf.scale[s..e], &ivf.add[s..e], &ivf.rows[s..e]);
    keys.clear();
    keys.extend(
        sums.iter()
            .zip(scale.iter().zip(add))
            .map(|(&sum, (&sc, &ad))| mu_q + sc * (table.delta * sum as f32 + base) + ad),
    );
    if let Some(n2) = norm2 {
        for (k, &r) in keys.iter_mut().zip(rows) {
            *k = 2.0 * *k - n2[r as usize];
        }
    }
    if let Some(a) = allowed {
        // Disallowed rows get a key no allowed row loses to; the caller drops any that filled a
        // heap that saw fewer allowed rows than it keeps.
        for (k, &r) in keys.iter_mut().zip(rows) {
            if !row_allowed(a, r as usize) {
                *k = f32::NEG_INFINITY;
            }
        }
    }
    heap.push_block(s as u32, keys, e - s);
}

/// A [`Found`] for position `pos` in list order.
fn found(
    ivf: &IvfRef<'_>,
    pos: usize,
    key: f32,
    q2: f32,
    cq: &[f32],
    norm2: Option<&[f32]>,
) -> Found {
    let row = ivf.rows[pos];
    let l = ivf.offsets.partition_point(|&o| o as usize <= pos) - 1;
    let est = match norm2 {
        Some(n2) => (key + n2[row as usize]) / 2.0,
        None => key,
    };
    let centred = (q2 + ivf.derived.cnorm2[l] - 2.0 * cq[l]).max(0.0).sqrt();
    Found {
        row,
        key,
        est,
        bound: ivf.bound[pos] * centred,
    }
}

/// Every row's estimate for each query, scored code by code from the nibble definition (no list
/// selection, no heap): the reference the search is tested against. Indexed by flat row.
pub(crate) fn exhaustive(ivf: &IvfRef<'_>, queries: &[f32]) -> Vec<Vec<f32>> {
    let (dim, padded) = (ivf.dim, ivf.padded);
    let lists = ivf.lists();
    let groups = ivf.groups();
    let bb = groups * 16;
    let rotated = rotate(ivf, queries);
    // The same kernel as `route`, so the estimates agree bit for bit.
    let dot = bitseek_codes::kernels::kernels().dot_f32;
    let cq: Vec<f32> = queries
        .chunks_exact(dim)
        .flat_map(|q| ivf.centroids.chunks_exact(dim).map(move |mu| dot(mu, q)))
        .collect();
    (0..queries.len() / dim)
        .map(|qi| {
            let table = Table::new(&rotated[qi * padded..(qi + 1) * padded]);
            let mut est = vec![0f32; ivf.rows.len()];
            for l in 0..lists {
                let s = ivf.offsets[l] as usize;
                for pos in s..ivf.offsets[l + 1] as usize {
                    let i = pos - s;
                    let block =
                        &ivf.codes[(ivf.derived.block_start[l] + i / FS_BLOCK) * bb..][..bb];
                    let sum: u32 = (0..groups)
                        .map(|g| {
                            let nib = bitseek_codes::kernels::fastscan::unpack_nibble(
                                block,
                                i % FS_BLOCK,
                                g,
                            );
                            table.lut[g * 16 + nib as usize] as u32
                        })
                        .sum();
                    let ip = table.delta * sum as f32 + (table.sum_lo - 0.5 * table.sum_w);
                    est[ivf.rows[pos] as usize] =
                        cq[qi * lists + l] + ivf.scale[pos] * ip + ivf.add[pos];
                }
            }
            est
        })
        .collect()
}
