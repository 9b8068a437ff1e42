//! Segments: immutable, mapped index files with their payloads, the per-field indexes that turn a
//! payload filter into a row mask, and writing new segments.

use super::config::{IndexKind, LIVE_VERSION};
use super::manifest::LiveManifest;
use crate::error::io_err;
use crate::error::{Fix, StoreError};
use crate::faults::{self, FaultOp};
use crate::files::{open_segment, read_payloads, sync_dir, write_payloads, Promise};
use crate::filter::{lookup, value_key, Filter};
use crate::manifest::SegmentEntry;
use crate::row_mask::RowMask;
use bitseek_index::graph::GraphOptions;
use bitseek_index::input::Vectors;
use bitseek_index::ivf::IvfOptions;
use bitseek_index::{BuildOptions, Index, QuantizerChoice};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// An immutable segment: the mapped index and its payloads.
pub(super) struct Segment {
    pub(super) entry: SegmentEntry,
    pub(super) index: Index,
    /// Shared with the same segment reopened on its built index.
    pub(super) payloads: Arc<Vec<Value>>,
    /// Per payload field a filter has named: value key → rows holding it, built on first use.
    fields: Mutex<HashMap<String, Arc<FieldIndex>>>,
}

/// Rows by the value of one payload field ([`value_key`]).
type FieldIndex = HashMap<String, Vec<u32>>;

impl Segment {
    pub(super) fn open(
        dir: &Path,
        entry: &SegmentEntry,
        m: &LiveManifest,
    ) -> Result<Segment, StoreError> {
        let path = dir.join(&entry.file);
        let fix = if m.version == 1 {
            Fix::Rebuild
        } else {
            Fix::Restore
        };
        let index = open_segment(
            &path,
            &Promise {
                generation: m.generation,
                rows: entry.rows,
                dim: m.dim,
                metric: m.metric,
                keep: m.keep,
                quantizer: None,
                row_ids: m.version == 1,
                fix,
            },
        )?;
        let pe = entry.payloads.as_ref().ok_or_else(|| StoreError::Segment {
            path: path.clone(),
            reason: "no payload file".into(),
            fix,
        })?;
        let payloads = Arc::new(read_payloads(dir, pe, fix)?);
        Ok(Segment {
            entry: entry.clone(),
            index,
            payloads,
            fields: Mutex::new(HashMap::new()),
        })
    }

    /// The kind of index the segment's file holds.
    pub(super) fn kind(&self) -> IndexKind {
        if self.index.ivf_lists().is_some() {
            IndexKind::Ivf
        } else if self.index.graph_degree().is_some() {
            IndexKind::Graph
        } else {
            IndexKind::Flat
        }
    }

    /// Builds this segment's `kind` index (a graph `degree` wide) from its kept `f32` copy (same rows, ids, codes and
    /// quantizer family) and saves it as `file` (temporary file, fsync, rename, directory
    /// fsync), reopened mapped and checksummed. Runs outside the writer lock; the caller swaps
    /// it in with [`Segment::reopened`] and a new manifest.
    pub(super) fn build_index(
        &self,
        dir: &Path,
        kind: IndexKind,
        degree: Option<usize>,
        file: &str,
        m: &LiveManifest,
    ) -> Result<Segment, StoreError> {
        let path = dir.join(file);
        let meta = self.index.meta();
        let data = self
            .index
            .kept_f32()
            .ok_or_else(|| StoreError::Segment {
                path: dir.join(&self.entry.file),
                reason: "keeps no f32 copy to build its index from".into(),
                fix: Fix::Restore,
            })?
            .to_vec();
        let opts = BuildOptions {
            quantizer: meta.quantizer,
            metric: meta.metric,
            keep: meta.keep,
            seed: meta.seed,
            scale_search: meta.scale_search,
        };
        let vectors = Vectors {
            dim: meta.dim,
            data,
            ids: Some(self.index.ids().to_vec()),
        };
        let choice = QuantizerChoice::Kind(meta.quantizer);
        let index = match kind {
            IndexKind::Graph => Index::build_graph(
                vectors,
                &path,
                &opts,
                &choice,
                GraphOptions { degree },
                &|_| {},
            )?,
            IndexKind::Flat | IndexKind::Ivf => {
                let ivf = (kind == IndexKind::Ivf).then(IvfOptions::default);
                Index::build_with(vectors, &path, &opts, &choice, ivf, &|_| {})?
            }
        };
        faults::check(FaultOp::Write, &path).map_err(io_err(&path))?;
        index.save(&path)?;
        sync_dir(dir)?;
        let entry = SegmentEntry {
            file: file.to_owned(),
            ..self.entry.clone()
        };
        let index = open_segment(
            &path,
            &Promise {
                generation: m.generation,
                rows: entry.rows,
                dim: m.dim,
                metric: m.metric,
                keep: m.keep,
                quantizer: None,
                row_ids: false,
                fix: Fix::Restore,
            },
        )?;
        Ok(self.reopened(entry, index))
    }

    /// This segment on another file of the same rows (its built index): payloads and field
    /// indexes shared.
    fn reopened(&self, entry: SegmentEntry, index: Index) -> Segment {
        let fields = match self.fields.lock() {
            Ok(f) => f.clone(),
            Err(e) => e.into_inner().clone(),
        };
        Segment {
            entry,
            index,
            payloads: self.payloads.clone(),
            fields: Mutex::new(fields),
        }
    }

    fn field_index(&self, field: &str) -> Arc<FieldIndex> {
        let mut fields = match self.fields.lock() {
            Ok(f) => f,
            Err(e) => e.into_inner(),
        };
        fields
            .entry(field.to_owned())
            .or_insert_with(|| {
                let mut idx = FieldIndex::new();
                for (r, p) in self.payloads.iter().enumerate() {
                    if let Some(v) = lookup(p, field) {
                        idx.entry(value_key(v)).or_default().push(r as u32);
                    }
                }
                Arc::new(idx)
            })
            .clone()
    }

    /// The rows whose payload `filter` accepts (the same answer as [`Filter::accepts`] row by
    /// row, from the field indexes).
    pub(super) fn filter_mask(&self, filter: &Filter) -> RowMask {
        let rows = self.rows();
        let from_values = |field: &str, values: &[&Value]| {
            let idx = self.field_index(field);
            let mut m = RowMask::none(rows);
            for v in values {
                for &r in idx.get(&value_key(v)).into_iter().flatten() {
                    m.insert(r as usize);
                }
            }
            m
        };
        match filter {
            Filter::Eq { field, eq } => from_values(field, &[eq]),
            Filter::In { field, r#in } => from_values(field, &r#in.iter().collect::<Vec<_>>()),
            Filter::All { all } => {
                let mut m = RowMask::all(rows);
                for f in all {
                    m.intersect(&self.filter_mask(f));
                }
                m
            }
        }
    }

    pub(super) fn rows(&self) -> usize {
        self.entry.rows
    }

    pub(super) fn row_of(&self, id: u64) -> Option<usize> {
        self.index.ids().binary_search(&id).ok()
    }

    pub(super) fn vector(&self, row: usize) -> Option<&[f32]> {
        let dim = self.index.meta().dim;
        self.index
            .kept_f32()
            .and_then(|k| k.get(row * dim..(row + 1) * dim))
    }
}

/// Builds, saves (synced) and reopens (mapped, checksummed) a segment of generation `generation`.
pub(super) fn write_segment(
    dir: &Path,
    generation: u64,
    m: &LiveManifest,
    quantizer: &str,
    ids: Vec<u64>,
    vectors: Vec<f32>,
    payloads: Vec<Value>,
) -> Result<Segment, StoreError> {
    let opts = m.config().build_options(quantizer)?;
    let name = format!("{generation}");
    let index = Index::build(
        Vectors {
            dim: m.dim,
            data: vectors,
            ids: Some(ids),
        },
        &dir.join(format!("seg-{name}.bitseek")),
        &opts,
        &|_| {},
    )?;
    save_segment(dir, &name, m, quantizer, &index, &payloads)
}

/// Saves `index` and `payloads` as `seg-<name>.bitseek` and `payloads-<name>.jsonl` (synced) and
/// reopens the segment (mapped, checksummed).
pub(super) fn save_segment(
    dir: &Path,
    name: &str,
    m: &LiveManifest,
    quantizer: &str,
    index: &Index,
    payloads: &[Value],
) -> Result<Segment, StoreError> {
    let rows = payloads.len();
    let file = format!("seg-{name}.bitseek");
    let path = dir.join(&file);
    // The index file is written (temporary file, fsync, rename) by bitseek-index: its write
    // stands for all three in the fault layer.
    faults::check(FaultOp::Write, &path).map_err(io_err(&path))?;
    index.save(&path)?;
    let pe = write_payloads(dir, format!("payloads-{name}.jsonl"), payloads)?;
    let entry = SegmentEntry {
        file,
        rows,
        payloads: Some(pe),
    };
    let mut probe = m.clone();
    probe.quantizer = quantizer.to_owned();
    probe.version = LIVE_VERSION;
    Segment::open(dir, &entry, &probe)
}
