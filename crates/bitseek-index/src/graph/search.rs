//! Beam search over the graph: estimates from the node blocks decide what joins the beam, exact
//! values from the kept copy rank what was expanded (see the module docs of [`super`]).

use super::build::{Visited, NONE};
use super::GraphRef;
use crate::flat::row_allowed;
use crate::ivf::search::{rotate_with, Table};
use bitseek_codes::kernels::fastscan::FS_BLOCK;
use bitseek_codes::kernels::Kernels;
use bitseek_codes::topk::HeapTopK;
use rayon::prelude::*;

/// One query's exact inner product with a row: from the kept `f32` copy or a byte copy.
pub(crate) trait Exact: Sync {
    /// What a query prepares once (a byte copy's weights).
    type Prepared;
    fn prepare(&self, q: &[f32]) -> Self::Prepared;
    fn ip(&self, prep: &Self::Prepared, q: &[f32], row: u32) -> f32;
    /// The bytes [`Exact::ip`] reads for `row`, to fetch ahead.
    fn row_bytes(&self, row: u32) -> &[u8];
}

/// Asks the CPU to start loading `bytes` into cache (a hint: no effect on results).
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch is a hint that never faults; the pointer is inside `bytes`. SSE is
        // part of every x86_64 CPU.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The search's fixed inputs.
pub(crate) struct Query<'a> {
    pub graph: &'a GraphRef<'a>,
    /// `‖x‖²` per row, which makes the key L2's (`2⟨x, q⟩ − ‖x‖²`); `None` ranks by `⟨x, q⟩`.
    pub norm2: Option<&'a [f32]>,
    pub allowed: Option<&'a [u64]>,
    pub kernels: &'a Kernels,
}

/// The best `wanted` rows of each query by exact key, best first (ties by the lower row).
pub(crate) fn search<E: Exact>(
    s: &Query<'_>,
    exact: &E,
    queries: &[f32],
    rows: usize,
    wanted: usize,
    effort: usize,
) -> Vec<Vec<(f32, u32)>> {
    let g = s.graph;
    let rotated = rotate_with(g.rotation, g.dim, g.padded, queries);
    queries
        .par_chunks(g.dim)
        .zip(rotated.par_chunks(g.padded))
        .map_init(
            || (Visited::new(rows), Vec::new(), Vec::new()),
            |(vis, sums, ests), (q, w)| {
                let prep = exact.prepare(q);
                one(
                    s,
                    w,
                    wanted,
                    effort.max(wanted),
                    vis,
                    sums,
                    ests,
                    |r| exact.ip(&prep, q, r),
                    |r| exact.row_bytes(r),
                )
            },
        )
        .collect()
}

/// One query; `ip` gives its exact `⟨x, q⟩` for a row.
#[allow(clippy::too_many_arguments)]
fn one<'a>(
    s: &Query<'_>,
    w: &[f32],
    wanted: usize,
    ef: usize,
    vis: &mut Visited,
    sums: &mut Vec<u32>,
    ests: &mut Vec<f32>,
    ip: impl Fn(u32) -> f32,
    row_bytes: impl Fn(u32) -> &'a [u8],
) -> Vec<(f32, u32)> {
    let g = s.graph;
    let (deg, groups) = (g.degree, g.groups());
    let table = Table::new(w);
    let base = table.sum_lo - 0.5 * table.sum_w;
    let key = |ip: f32, r: u32| match s.norm2 {
        Some(n2) => 2.0 * ip - n2[r as usize],
        None => ip,
    };
    let mut results = HeapTopK::new(wanted);
    vis.clear();
    vis.insert(g.entry);
    // (key, row, expanded), best first; expanded entries hold exact keys, the others estimates.
    let mut beam: Vec<(f32, u32, bool)> = Vec::with_capacity(ef + 1);
    beam.push((f32::INFINITY, g.entry, false));
    sums.resize(deg, 0);
    ests.resize(deg, 0.0);
    let mut cur = 0;
    while cur < beam.len() {
        let u = beam[cur].1;
        // The next candidate is likely the next node expanded: fetch its vector and its block
        // while this one is scored.
        if let Some(&(_, next, _)) = beam[cur + 1..].iter().find(|e| !e.2) {
            prefetch(row_bytes(next));
            prefetch(g.node_bytes_of(next));
        }
        beam.remove(cur);
        let ip_u = ip(u);
        let key_u = key(ip_u, u);
        let at = beam.partition_point(|e| e.0 >= key_u);
        if at < ef {
            beam.insert(at, (key_u, u, true));
            beam.truncate(ef);
        }
        if s.allowed.is_none_or(|a| row_allowed(a, u as usize)) {
            results.push(u, key_u);
        }
        let node = g.node(u);
        (s.kernels.fastscan_blocks)(&table.lut, node.codes, groups, sums);
        let (nbrs, scale, add) = (node.neighbors, node.scale, node.add);
        // Every estimate first, in a loop the compiler vectorises.
        for (e, ((&c, &sc), &ad)) in ests.iter_mut().zip(sums.iter().zip(scale).zip(add)) {
            *e = ip_u + sc * (table.delta * c as f32 + base) + ad;
        }
        let mut lowest = usize::MAX;
        for (&v, &est) in nbrs.iter().zip(ests.iter()) {
            if v == NONE || !vis.insert(v) {
                continue;
            }
            let kv = key(est, v);
            if beam.len() >= ef && kv <= beam[beam.len() - 1].0 {
                continue;
            }
            let at = beam.partition_point(|e| e.0 >= kv);
            beam.insert(at, (kv, v, false));
            beam.truncate(ef);
            lowest = lowest.min(at);
        }
        cur = cur.min(lowest);
        while cur < beam.len() && beam[cur].2 {
            cur += 1;
        }
    }
    debug_assert!(deg.is_multiple_of(FS_BLOCK));
    results.into_sorted()
}
