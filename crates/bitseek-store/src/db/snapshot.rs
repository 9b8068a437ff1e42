//! Snapshots and search: what one search sees, start to finish, and how it searches it (segments
//! through their codes with an allowed-rows mask, the memtable exactly).

use super::config::{CollectionConfig, ScoredPoint, SearchRequest, DEFAULT_OVERSAMPLE};
use super::segment::Segment;
use super::writer::MemChunk;
use super::Live;
use crate::error::StoreError;
use crate::filter::Filter;
use crate::row_mask::RowMask;
use bitseek_index::vector::dot;
use bitseek_index::{IndexError, Metric, SearchParams, VectorBatch};
use serde_json::Value;
use std::sync::Arc;

/// A consistent view of a collection: what one search sees, start to finish.
#[derive(Clone)]
pub struct Snapshot {
    pub(super) config: CollectionConfig,
    pub(super) generation: u64,
    pub(super) segments: Vec<(Arc<Segment>, Live)>,
    /// The frozen memtable's batches (while a flush is under way), then the memtable's.
    pub(super) mem: Vec<(Arc<MemChunk>, Live)>,
    /// Rows in the frozen memtable and in the memtable (live or not).
    pub(super) frozen_rows: usize,
    pub(super) mem_rows: usize,
    pub(super) points: usize,
    pub(super) wal_records: usize,
    pub(super) last_lsn: u64,
}

/// A candidate hit: score, id, payload.
type Candidate<'a> = (f32, u64, &'a Value);

impl Snapshot {
    /// The collection's configuration at this snapshot.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Live points.
    pub fn points(&self) -> usize {
        self.points
    }

    /// The best `req.k` live points for each row of row-major `queries`, best first.
    pub(super) fn search(
        &self,
        queries: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Vec<ScoredPoint>>, StoreError> {
        let oversample = checked_oversample(req)?;
        let queries = self.checked_queries(queries)?;
        let n = queries.len() / self.config.dim;
        let mut found: Vec<Vec<Candidate>> = vec![Vec::new(); n];
        self.search_segments(&queries, req, oversample, &mut found)?;
        self.search_memtable(&queries, req.filter.as_ref(), &mut found);
        let lower_is_better = self.config.metric == Metric::L2;
        Ok(found
            .into_iter()
            .map(|c| best(c, req.k, lower_is_better))
            .collect())
    }

    /// The queries, checked (whole vectors, finite, non-zero under cosine) and normalised under
    /// cosine.
    fn checked_queries(&self, queries: &[f32]) -> Result<Vec<f32>, StoreError> {
        Ok(
            VectorBatch::new(queries.to_vec(), self.config.dim, self.config.metric)
                .map_err(IndexError::from)?
                .into_data(),
        )
    }

    /// Adds each segment's best candidates for each query to `found`: the scan skips dead rows
    /// and rows the filter rejects, and rescores from the kept copy.
    fn search_segments<'a>(
        &'a self,
        queries: &[f32],
        req: &SearchRequest,
        oversample: f32,
        found: &mut [Vec<Candidate<'a>>],
    ) -> Result<(), StoreError> {
        let params = SearchParams {
            k: req.k,
            oversample: oversample.ceil() as usize,
            ..SearchParams::default()
        };
        for (seg, live) in &self.segments {
            let allowed: Live = match &req.filter {
                None => live.clone(),
                Some(f) => {
                    let mut a = seg.filter_mask(f);
                    a.intersect(live);
                    Arc::new(a)
                }
            };
            let passing = allowed.count();
            if passing == 0 {
                continue;
            }
            let dim = self.config.dim;
            let mask = Some(allowed.words());
            let hits = match plan(&seg.index, passing, req.effort) {
                Plan::Probe(effort) => seg
                    .index
                    .search_batch_effort(queries, dim, &params, effort, mask)?,
                Plan::Flat => seg.index.search_batch_flat(queries, dim, &params, mask)?,
                Plan::Exact => {
                    self.exact_rows(seg, &allowed, queries, found);
                    continue;
                }
            };
            for (q, hits) in hits.into_iter().enumerate() {
                for h in hits {
                    if let Some(r) = seg.row_of(h.id) {
                        found[q].push((h.score, h.id, &seg.payloads[r]));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds every `allowed` row of `seg` to `found`, scored exactly from the kept `f32` copy.
    fn exact_rows<'a>(
        &'a self,
        seg: &'a Segment,
        allowed: &RowMask,
        queries: &[f32],
        found: &mut [Vec<Candidate<'a>>],
    ) {
        let dim = self.config.dim;
        let dot_f32 = bitseek_codes::kernels::kernels().dot_f32;
        let norm2 = seg.index.norm2();
        let ids = seg.index.ids();
        let mut rows = Vec::with_capacity(allowed.count());
        for (w, &bits) in allowed.words().iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let r = w * 64 + b.trailing_zeros() as usize;
                if r < seg.rows() {
                    rows.push(r);
                }
                b &= b - 1;
            }
        }
        for (q, out) in queries.chunks_exact(dim).zip(found.iter_mut()) {
            let q2 = dot(q, q);
            for &r in &rows {
                let Some(x) = seg.vector(r) else { continue };
                let ip = dot_f32(q, x);
                let score = match self.config.metric {
                    Metric::L2 => (q2 - 2.0 * ip + norm2[r]).max(0.0),
                    _ => ip,
                };
                out.push((score, ids[r], &seg.payloads[r]));
            }
        }
    }

    /// Adds every live memtable row the filter accepts to `found`, scored exactly.
    fn search_memtable<'a>(
        &'a self,
        queries: &[f32],
        filter: Option<&Filter>,
        found: &mut [Vec<Candidate<'a>>],
    ) {
        let dim = self.config.dim;
        let metric = self.config.metric;
        let n = queries.len() / dim;
        let dot_f32 = bitseek_codes::kernels::kernels().dot_f32;
        let q2: Vec<f32> = queries.chunks_exact(dim).map(|q| dot(q, q)).collect();
        for (chunk, live) in &self.mem {
            let rows: Vec<usize> = (0..chunk.ids.len())
                .filter(|&r| live.contains(r))
                .filter(|&r| filter.is_none_or(|f| f.accepts(&chunk.payloads[r])))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let rows_n = chunk.ids.len();
            let mut scores = vec![0f32; n * rows_n];
            if n >= 8 {
                bitseek_index::exact::product(queries, &chunk.vectors, dim, &mut scores);
            } else {
                // A product packs the whole batch first; for a few queries, SIMD dots are faster.
                for (q, out) in queries
                    .chunks_exact(dim)
                    .zip(scores.chunks_exact_mut(rows_n))
                {
                    for &r in &rows {
                        out[r] = dot_f32(q, &chunk.vectors[r * dim..(r + 1) * dim]);
                    }
                }
            }
            for (q, row_scores) in scores.chunks_exact(rows_n).enumerate() {
                for &r in &rows {
                    let ip = row_scores[r];
                    let score = match metric {
                        Metric::L2 => {
                            let x = &chunk.vectors[r * dim..(r + 1) * dim];
                            (q2[q] - 2.0 * ip + dot(x, x)).max(0.0)
                        }
                        _ => ip,
                    };
                    found[q].push((score, chunk.ids[r], &chunk.payloads[r]));
                }
            }
        }
    }
}

/// How one segment is searched.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Through its index with this effort (`None`: the index's default, or a flat index).
    Probe(Option<usize>),
    /// Every flat code scanned, the mask skipping rows that do not pass.
    Flat,
    /// Exactly, reading the kept `f32` copy of the allowed rows only.
    Exact,
}

/// A probed row costs about this many times a flatly scanned one (lists of FastScan blocks, the
/// per-list distance bound); measured on the dev embeddings, probing every list with a 10% filter
/// ran at 0.56× the flat scan's queries per second (`bench/filtered.sh`).
const PROBE_COST: f64 = 2.0;

/// A graph walk costs about this many node blocks (neighbours' codes, factors and ids, plus the
/// node's kept vector) read per slot of its beam: hops land on random pages, and a beam slot is
/// expanded, re-ranked and revisited more than once. Measured on the dev embeddings (67k rows,
/// degree 32, `bench/filtered.sh --index graph`): a beam of 48 inside a 50% filter ran at 2.3× the
/// flat scan's queries per second, which this constant reproduces (about 10 × 48 × 3.7 KB against
/// 4.3 MB of flat codes).
const WALK_COST: f64 = 10.0;

/// Chooses, for a segment with an IVF or a graph, between searching it through its index inside
/// the allowed-rows mask, scanning its flat codes with the mask, and scoring only the allowed rows
/// exactly, from the filter's cardinality (`passing` live rows pass; counted from the payload
/// field indexes), as Qdrant does. With a fraction `s` of the rows allowed, an index finds about
/// `s` as many allowed candidates per list probed or per node walked, so it searches `e / s`
/// lists or beam slots (at most every one) to keep its recall. Each plan's cost is the bytes it
/// reads: the probed share of the codes (times [`PROBE_COST`]) or the walked node blocks (times
/// [`WALK_COST`]), all codes, or `dim · 4` bytes per allowed row. The cheapest wins. Flat
/// segments keep their scan.
fn plan(index: &bitseek_index::Index, passing: usize, effort: Option<usize>) -> Plan {
    let meta = index.meta();
    let rows = meta.rows.max(1);
    if passing >= rows {
        return Plan::Probe(effort);
    }
    let s = passing as f64 / rows as f64;
    let flat = index.scan_bytes() as f64;
    let (through_index, widened) = if let Some(lists) = index.ivf_lists() {
        let e = effort.unwrap_or_else(|| bitseek_index::ivf::default_effort(lists)) as f64;
        let probed = (e / s).min(lists as f64);
        (PROBE_COST * flat * probed / lists as f64, probed)
    } else if let Some(degree) = index.graph_degree() {
        let e = effort.unwrap_or(bitseek_index::graph::DEFAULT_EFFORT) as f64;
        let beam = (e / s).min(rows as f64);
        let block = degree * (index.code_bytes_per_vector() + 4) + meta.dim * 4;
        (WALK_COST * beam * block as f64, beam)
    } else {
        return Plan::Probe(effort);
    };
    let exact = if index.kept_f32().is_some() {
        (passing * meta.dim * 4) as f64
    } else {
        f64::INFINITY
    };
    if exact <= through_index.min(flat) {
        Plan::Exact
    } else if flat < through_index {
        Plan::Flat
    } else {
        // Rounded, so a few deleted rows do not add a list to a small effort.
        Plan::Probe(Some((widened.round() as usize).max(1)))
    }
}

/// The request's oversampling, checked; also checks `k` and the filter.
fn checked_oversample(req: &SearchRequest) -> Result<f32, StoreError> {
    if req.k == 0 {
        return Err(IndexError::BadParam("k must be at least 1".into()).into());
    }
    let oversample = req.oversample.unwrap_or(DEFAULT_OVERSAMPLE);
    if !oversample.is_finite() || !(1.0..=1024.0).contains(&oversample) {
        return Err(IndexError::BadParam(format!(
            "oversample {oversample} is out of range; give 1 to 1024"
        ))
        .into());
    }
    if req.effort == Some(0) {
        return Err(IndexError::BadParam(
            "effort 0 is out of range: give at least 1 (IVF lists probed, or the graph's beam width)"
                .into(),
        )
        .into());
    }
    if let Some(f) = &req.filter {
        f.validate().map_err(|e| StoreError::Input(e.to_string()))?;
    }
    Ok(oversample)
}

/// The best `k` candidates, best first (ties by id), as hits.
fn best(mut c: Vec<Candidate>, k: usize, lower_is_better: bool) -> Vec<ScoredPoint> {
    let order = |a: &Candidate, b: &Candidate| {
        let o = if lower_is_better {
            a.0.total_cmp(&b.0)
        } else {
            b.0.total_cmp(&a.0)
        };
        o.then(a.1.cmp(&b.1))
    };
    if c.len() > k {
        c.select_nth_unstable_by(k - 1, order);
        c.truncate(k);
    }
    c.sort_unstable_by(order);
    c.into_iter()
        .map(|(score, id, payload)| ScoredPoint {
            id,
            score,
            payload: payload.clone(),
        })
        .collect()
}
