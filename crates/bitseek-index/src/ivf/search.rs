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
    /// The table of a rotated query `w` (`D'` finite values): per group of four dims the 16
    /// subset sums, shifted by the group's smallest and scaled by one step shared by all groups
    /// so the widest group spans 0..=255. Built once per query, it cost a graph search ~2.8 µs
    /// (about a tenth of a query at beam 32) in scalar code; the SSE2 version (every x86_64 CPU
    /// has it) gives the same table bit for bit in a fraction of that.
    pub fn new(w: &[f32]) -> Table {
        #[cfg(target_arch = "x86_64")]
        {
            table_sse2(w)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Table::new_scalar(w)
        }
    }

    /// The scalar twin of [`Table::new`]: entry `k` is entry `k` without its highest bit plus
    /// that dim (the set dims added in ascending order to +0), the group's range a scan.
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    pub fn new_scalar(w: &[f32]) -> Table {
        let groups = w.len() / 4;
        let mut sums = vec![0f32; groups * 16];
        let mut lo = vec![0f32; groups];
        let mut width = 0f32;
        for g in 0..groups {
            let v = &w[4 * g..4 * g + 4];
            let e = &mut sums[g * 16..g * 16 + 16];
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
        let delta = step(width);
        let lut = sums
            .iter()
            .enumerate()
            // e ≥ lo, so adding ½ and truncating rounds as `round` does (half away from zero),
            // and `as u8` saturates at 255.
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

/// The shared step of a table whose widest group spans `width`.
fn step(width: f32) -> f32 {
    if width > 0.0 {
        width / 255.0
    } else {
        1.0
    }
}

/// `SUBSET_MASKS[j][k]`: all ones where table entry `k` includes dim `j` of its group.
#[cfg(target_arch = "x86_64")]
const SUBSET_MASKS: [[u32; 16]; 4] = {
    let mut m = [[0u32; 16]; 4];
    let mut j = 0;
    while j < 4 {
        let mut k = 0;
        while k < 16 {
            if k >> j & 1 == 1 {
                m[j][k] = u32::MAX;
            }
            k += 1;
        }
        j += 1;
    }
    m
};

/// [`Table::new`] in SSE2, four entries a register. Entry `k` is `(((0 + t0) + t1) + t2) + t3`
/// where `tj` is dim `j` if `k` includes it and +0 if not: the scalar twin's additions in its
/// order (adding +0 changes no sum, and a sum that starts at +0 never becomes −0), so the same
/// values. `min`/`max` of finite values are exact, and the conversion clamps to 0..=255 before
/// truncating, as the saturating `as u8` does.
#[cfg(target_arch = "x86_64")]
fn table_sse2(w: &[f32]) -> Table {
    use core::arch::x86_64::*;
    let groups = w.len() / 4;
    let mut sums = vec![0f32; groups * 16];
    let mut lo = vec![0f32; groups];
    let mut width = 0f32;
    // SAFETY: SSE2 is part of every x86_64 CPU; every load reads 4 in-bounds f32 (masks and
    // group values) and every store writes 4 in-bounds f32 of `sums` (16 per group).
    unsafe {
        let masks: [[__m128; 4]; 4] = core::array::from_fn(|j| {
            core::array::from_fn(|c| {
                _mm_castsi128_ps(_mm_loadu_si128(SUBSET_MASKS[j][4 * c..].as_ptr().cast()))
            })
        });
        let zero = _mm_setzero_ps();
        for (g, (e, v)) in sums.chunks_exact_mut(16).zip(w.chunks_exact(4)).enumerate() {
            let b = [
                _mm_set1_ps(v[0]),
                _mm_set1_ps(v[1]),
                _mm_set1_ps(v[2]),
                _mm_set1_ps(v[3]),
            ];
            let mut mn = _mm_set1_ps(f32::INFINITY);
            let mut mx = _mm_set1_ps(f32::NEG_INFINITY);
            for c in 0..4 {
                let mut x = zero;
                for j in 0..4 {
                    x = _mm_add_ps(x, _mm_and_ps(b[j], masks[j][c]));
                }
                _mm_storeu_ps(e[4 * c..].as_mut_ptr(), x);
                mn = _mm_min_ps(mn, x);
                mx = _mm_max_ps(mx, x);
            }
            // Across the four lanes.
            mn = _mm_min_ps(mn, _mm_movehl_ps(mn, mn));
            mn = _mm_min_ss(mn, _mm_shuffle_ps::<1>(mn, mn));
            mx = _mm_max_ps(mx, _mm_movehl_ps(mx, mx));
            mx = _mm_max_ss(mx, _mm_shuffle_ps::<1>(mx, mx));
            let (mn, mx) = (_mm_cvtss_f32(mn), _mm_cvtss_f32(mx));
            lo[g] = mn;
            width = width.max(mx - mn);
        }
        let delta = step(width);
        let mut lut = vec![0u8; groups * 16];
        let (d, half, top) = (_mm_set1_ps(delta), _mm_set1_ps(0.5), _mm_set1_ps(255.0));
        for ((out, e), &l) in lut.chunks_exact_mut(16).zip(sums.chunks_exact(16)).zip(&lo) {
            let l = _mm_set1_ps(l);
            let q: [__m128i; 4] = core::array::from_fn(|c| {
                let x = _mm_add_ps(
                    _mm_div_ps(_mm_sub_ps(_mm_loadu_ps(e[4 * c..].as_ptr()), l), d),
                    half,
                );
                _mm_cvttps_epi32(_mm_min_ps(_mm_max_ps(x, zero), top))
            });
            let bytes = _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
            _mm_storeu_si128(out.as_mut_ptr().cast(), bytes);
        }
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

#[cfg(test)]
mod tests {
    use super::Table;
    use proptest::prelude::*;

    proptest! {
        /// The SIMD table equals its scalar twin bit for bit: entries, step and sums.
        #[test]
        fn table_matches_scalar_twin(
            groups in 1usize..40,
            seed in any::<u64>(),
            scale in prop_oneof![Just(1e-3f32), Just(1.0f32), Just(1e3f32)],
        ) {
            let mut x = seed | 1;
            let w: Vec<f32> = (0..groups * 4)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Some exact zeros and negative zeros among the values.
                    match x % 16 {
                        0 => 0.0,
                        1 => -0.0,
                        _ => ((x >> 11) as f32 / (1u64 << 53) as f32 - 0.5) * scale,
                    }
                })
                .collect();
            let (a, b) = (Table::new(&w), Table::new_scalar(&w));
            prop_assert_eq!(a.lut, b.lut);
            prop_assert_eq!(a.delta.to_bits(), b.delta.to_bits());
            prop_assert_eq!(a.sum_lo.to_bits(), b.sum_lo.to_bits());
            prop_assert_eq!(a.sum_w.to_bits(), b.sum_w.to_bits());
        }
    }

    /// A query of zeros (no width): the step falls back to 1 and every entry is 0.
    #[test]
    fn zero_query_table() {
        let w = vec![0f32; 64];
        let (a, b) = (Table::new(&w), Table::new_scalar(&w));
        assert_eq!(a.delta, 1.0);
        assert!(a.lut.iter().all(|&e| e == 0));
        assert_eq!(a.lut, b.lut);
    }
}
