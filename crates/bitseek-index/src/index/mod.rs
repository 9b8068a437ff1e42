//! A flat index: fitted quantizer, codes, ids, and an optional copy for rescoring.
//!
//! [`Index::build`] validates the vectors, sorts them by id (so the scan's tie-break by row is a
//! tie-break by id), fits the quantizer, encodes in parallel and keeps the rescoring copy;
//! [`Index::save`] writes one file; [`Index::open`] maps it back. [`Index::search_batch`] runs the
//! flat scan for `k × oversample` candidates and rescores them from the kept copy.

use crate::flat::{self, Candidate, Key, KeyFn};
use crate::format::{write_index, IndexFile};
use crate::graph::{self, GraphData, GraphMeta, GraphOptions, GraphRef, GRAPH_VERSION};
use crate::input::{validate, Checks, Vectors};
use crate::ivf::{self, Derived, IvfData, IvfMeta, IvfOptions, IvfRef, IVF_VERSION};
use crate::vector::{dot, normalize, VectorBatch};
use bitseek_codes::quantizer::{
    alloc, Alloc, ByteCode, ByteFormat, Codes, CodesRef, Factor, FitOptions, Fp8, Int4, Int8,
    Lattice, Learned, Quantizer, QuantizerKind, QueryCode, Sign, Ternary,
};
use bitseek_codes::BLOCK;
use rayon::prelude::*;
use std::path::Path;

mod error;
mod options;

pub use error::IndexError;
pub use options::{
    BuildOptions, Hit, Keep, Meta, Metric, QuantizerChoice, SearchParams, MAX_CANDIDATES,
};

struct Owned {
    codes: Codes,
    ids: Vec<u64>,
    norm2: Vec<f32>,
    keep_f32: Vec<f32>,
    keep_bytes: Vec<i8>,
}

enum Backing {
    Owned(Owned),
    Mapped(IndexFile),
}

/// A flat index over codes.
pub struct Index {
    meta: Meta,
    quantizer: Quantizer,
    /// The quantizer of the rescoring copy (`keep = int8 | fp8 | int4`), unless the codes are
    /// themselves that copy.
    keep_quantizer: Option<ByteCode>,
    backing: Backing,
    /// The inverted file (`kind: bitseek-ivf`): per-list values derived at build or open, and the
    /// arrays themselves unless they are read from the mapped file.
    ivf: Option<IvfState>,
    /// The proximity graph (`kind: bitseek-graph`): its arrays unless they are read from the
    /// mapped file.
    graph: Option<GraphData>,
}

struct IvfState {
    derived: Derived,
    owned: Option<IvfData>,
}

/// Borrowed arrays of an index, wherever they live.
struct Parts<'a> {
    codes: CodesRef<'a>,
    ids: &'a [u64],
    norm2: &'a [f32],
    keep_f32: &'a [f32],
    /// The quantized rescoring copy, row-major.
    keep_bytes: &'a [i8],
}

/// Rows encoded per parallel task (a multiple of the block size).
const ENCODE_CHUNK: usize = 8192;

impl Index {
    /// Validates `vectors` and builds an index in memory. `progress` is called with the number of
    /// rows encoded so far.
    pub fn build(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        if let QuantizerKind::Learned { .. } = opts.quantizer {
            return Err(IndexError::BadParam(
                "learned codes need their encoder: build with --quantizer learned:ENCODER_FILE"
                    .into(),
            ));
        }
        Self::build_inner(vectors, source, opts, None, None, None, progress)
    }

    /// Builds the codes `choice` names: [`Index::build`] with `opts.quantizer` set to its family,
    /// or [`Index::build_learned`] with the encoder read from its file (refused when it was trained
    /// for another dimension).
    pub fn build_choice(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        choice: &QuantizerChoice,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        Self::build_with(vectors, source, opts, choice, None, progress)
    }

    /// [`Index::build_choice`], plus an inverted file over RaBitQ codes when `ivf` is given
    /// (`kind: bitseek-ivf`): searches then probe `effort` lists instead of scanning every code
    /// (see [`crate::ivf`]).
    pub fn build_with(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        choice: &QuantizerChoice,
        ivf: Option<IvfOptions>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        Self::build_calibrated(vectors, source, opts, choice, ivf, None, progress)
    }

    /// [`Index::build_with`], with `calib` (`--calib Q.npy`) as the queries that `alloc:BYTES`
    /// and `auto:BYTES` measure recall for, instead of rows held out of the vectors. Refused for
    /// other formats, which have nothing to calibrate.
    pub fn build_calibrated(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        choice: &QuantizerChoice,
        ivf: Option<IvfOptions>,
        calib: Option<&Vectors>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        if let Some(c) = calib {
            let calibrated = matches!(
                choice,
                QuantizerChoice::Auto(_) | QuantizerChoice::Kind(QuantizerKind::Alloc { .. })
            );
            if !calibrated || ivf.is_some() {
                return Err(IndexError::BadParam(
                    "--calib gives the queries that alloc:BYTES and auto:BYTES measure recall for; the other formats (and IVF indexes) have nothing to calibrate: drop --calib".into(),
                ));
            }
            validate(
                c,
                Path::new("--calib"),
                &Checks {
                    expected_dim: Some(vectors.dim),
                    reject_zero: opts.metric == Metric::Cosine,
                },
            )?;
        }
        if ivf.is_some() {
            let QuantizerChoice::Kind(kind) = choice else {
                return Err(IndexError::BadParam(
                    "--index ivf is built over fitted codes; use --quantizer rabitq (or another fitted family), not learned codes".into(),
                ));
            };
            let opts = BuildOptions {
                quantizer: *kind,
                ..*opts
            };
            if let QuantizerKind::Learned { .. } = opts.quantizer {
                return Err(IndexError::BadParam(
                    "learned codes need their encoder: build with --quantizer learned:ENCODER_FILE"
                        .into(),
                ));
            }
            return Self::build_inner(vectors, source, &opts, None, ivf, None, progress);
        }
        match choice {
            QuantizerChoice::Kind(kind) => {
                let opts = BuildOptions {
                    quantizer: *kind,
                    ..*opts
                };
                if calib.is_some() {
                    return Self::build_inner(vectors, source, &opts, None, None, calib, progress);
                }
                Self::build(vectors, source, &opts, progress)
            }
            QuantizerChoice::Learned(path) => {
                let (encoder, _) = crate::encoder::load_encoder_for(path, vectors.dim)?;
                Self::build_learned(vectors, source, opts, encoder, progress)
            }
            QuantizerChoice::Auto(budget) => {
                validate(
                    &vectors,
                    source,
                    &Checks {
                        expected_dim: None,
                        reject_zero: opts.metric == Metric::Cosine,
                    },
                )?;
                let tune_opts = crate::tune::TuneOptions {
                    budget: *budget,
                    metric: opts.metric,
                    seed: opts.seed,
                    k: 10,
                    calib,
                    encoder: None,
                };
                let tuning = crate::tune::tune(&vectors, None, source, &tune_opts)?;
                let winner = tuning.winner.parse().map_err(|e| {
                    IndexError::BadParam(format!("format search chose {}: {e}", tuning.winner))
                })?;
                let opts = BuildOptions {
                    quantizer: winner,
                    ..*opts
                };
                let mut index =
                    Self::build_inner(vectors, source, &opts, None, None, calib, progress)?;
                index.meta.auto = Some(tuning);
                Ok(index)
            }
        }
    }

    /// [`Index::build_choice`] plus a proximity graph over RaBitQ codes (`kind: bitseek-graph`):
    /// searches then walk the graph with a beam `effort` wide (see [`crate::graph`]). The graph
    /// ranks by the kept copy, so `opts.keep` must not be `none`; fitted codes only.
    pub fn build_graph(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        choice: &QuantizerChoice,
        graph: GraphOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        let QuantizerChoice::Kind(kind) = choice else {
            return Err(IndexError::BadParam(
                "--index graph is built over fitted codes; use --quantizer rabitq (or another fitted family), not learned or auto codes".into(),
            ));
        };
        if let QuantizerKind::Learned { .. } = kind {
            return Err(IndexError::BadParam(
                "learned codes need their encoder: build with --quantizer learned:ENCODER_FILE"
                    .into(),
            ));
        }
        if opts.keep == Keep::None {
            return Err(IndexError::BadParam(
                "a graph index ranks what it visits by the kept copy; build with --keep f32 (or int8, fp8, int4), not --keep none".into(),
            ));
        }
        let degree = graph.degree.unwrap_or(graph::DEFAULT_DEGREE);
        if degree == 0 || !degree.is_multiple_of(32) || degree > graph::MAX_DEGREE {
            return Err(IndexError::BadParam(format!(
                "--degree {degree} must be a multiple of 32 (one FastScan block) up to {}",
                graph::MAX_DEGREE
            )));
        }
        let opts = BuildOptions {
            quantizer: *kind,
            ..*opts
        };
        Self::build_inner_with(
            vectors,
            source,
            &opts,
            None,
            None,
            Some(GraphOptions {
                degree: Some(degree),
            }),
            None,
            progress,
        )
    }

    /// [`Index::build`] with a trained encoder instead of a fitted quantizer (`opts.quantizer` is
    /// ignored). Learned codes score cosines of codes, so the metric must be cosine, and the
    /// encoder must have been trained for the vectors' dimension.
    pub fn build_learned(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        encoder: Learned,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        if opts.metric != Metric::Cosine {
            return Err(IndexError::BadParam(format!(
                "learned codes rank by cosine, but --metric is {}; build with --metric cosine",
                opts.metric
            )));
        }
        if vectors.dim != encoder.dim() {
            return Err(IndexError::BadParam(format!(
                "the encoder was trained for dimension {} but {} has dimension {}; train an encoder on vectors of this model",
                encoder.dim(),
                source.display(),
                vectors.dim
            )));
        }
        Self::build_inner(
            vectors,
            source,
            opts,
            Some(Quantizer::Learned(Box::new(encoder))),
            None,
            None,
            progress,
        )
    }

    fn build_inner(
        vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        given: Option<Quantizer>,
        ivf_opts: Option<IvfOptions>,
        calib: Option<&Vectors>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        Self::build_inner_with(
            vectors, source, opts, given, ivf_opts, None, calib, progress,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build_inner_with(
        mut vectors: Vectors,
        source: &Path,
        opts: &BuildOptions,
        given: Option<Quantizer>,
        ivf_opts: Option<IvfOptions>,
        graph_opts: Option<GraphOptions>,
        calib: Option<&Vectors>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Index, IndexError> {
        let checks = Checks {
            expected_dim: None,
            reject_zero: opts.metric == Metric::Cosine,
        };
        validate(&vectors, source, &checks)?;
        let dim = vectors.dim;
        let rows = vectors.rows();
        // Sort by id so that ties, broken by row in the scan, are broken by id.
        let mut ids = vectors.ids_or_rows();
        if ids.windows(2).any(|w| w[0] > w[1]) {
            let mut order: Vec<usize> = (0..rows).collect();
            order.sort_by_key(|&r| ids[r]);
            let mut data = Vec::with_capacity(vectors.data.len());
            for &r in &order {
                data.extend_from_slice(vectors.row(r));
            }
            ids = order.iter().map(|&r| ids[r]).collect();
            vectors.data = data;
        }
        let mut data = vectors.data;
        if opts.metric == Metric::Cosine {
            data.par_chunks_mut(dim).for_each(normalize);
        }
        let norm2: Vec<f32> = data.par_chunks(dim).map(|x| dot(x, x)).collect();
        let ivf = match ivf_opts {
            Some(o) => {
                let lists = o.lists.unwrap_or_else(|| ivf::default_lists(rows));
                if rows > u32::MAX as usize {
                    return Err(IndexError::BadParam(format!(
                        "an IVF index holds at most {} vectors (its lists store 32-bit rows); split the {rows} vectors into several indexes",
                        u32::MAX
                    )));
                }
                if lists == 0 || lists > rows {
                    return Err(IndexError::BadParam(format!(
                        "--lists {lists} must be between 1 and the number of vectors ({rows})"
                    )));
                }
                let padded = padded(dim);
                let data = IvfData::build(&data, dim, padded, lists, opts.seed);
                let meta = IvfMeta {
                    version: IVF_VERSION,
                    lists,
                    padded,
                    seed: opts.seed,
                };
                Some((meta, data))
            }
            None => None,
        };
        let graph = match graph_opts {
            Some(o) => {
                if rows > u32::MAX as usize - 1 {
                    return Err(IndexError::BadParam(format!(
                        "a graph index holds fewer than {} vectors (it stores 32-bit rows); split the {rows} vectors into several indexes",
                        u32::MAX
                    )));
                }
                let degree = o.degree.unwrap_or(graph::DEFAULT_DEGREE);
                let padded = padded(dim);
                let data = GraphData::build(&data, dim, padded, degree, opts.seed);
                let meta = GraphMeta {
                    version: GRAPH_VERSION,
                    degree,
                    padded,
                    entry: data.entry,
                    alpha: graph::ALPHA,
                    build_beam: graph::BUILD_BEAM.max(degree + degree / 2),
                    seed: opts.seed,
                };
                Some((meta, data))
            }
            None => None,
        };
        let fit = FitOptions {
            seed: opts.seed,
            scale_search: opts.scale_search,
        };
        let quantizer = match given {
            Some(q) => q,
            None => {
                Quantizer::check_fit(opts.quantizer, dim, rows).map_err(IndexError::BadParam)?;
                match (opts.quantizer, calib) {
                    (QuantizerKind::Alloc { bytes }, Some(c)) => {
                        // The queries meet the codes as the data does: normalised for cosine.
                        let mut queries = c.data.clone();
                        if opts.metric == Metric::Cosine {
                            queries.par_chunks_mut(dim).for_each(normalize);
                        }
                        Quantizer::Alloc(Box::new(Alloc::fit_calibrated(
                            dim,
                            &data,
                            bytes as usize,
                            opts.seed,
                            Some(&queries),
                        )))
                    }
                    _ => Quantizer::fit(opts.quantizer, dim, &data, fit),
                }
            }
        };
        let done = std::sync::atomic::AtomicUsize::new(0);
        let chunks: Vec<Codes> = data
            .par_chunks(ENCODE_CHUNK * dim)
            .map(|rows| {
                let codes = quantizer.encode(rows);
                let n = done.fetch_add(codes.len, std::sync::atomic::Ordering::Relaxed) + codes.len;
                progress(n);
                codes
            })
            .collect();
        let mut chunks = chunks.into_iter();
        let mut codes = chunks.next().unwrap_or_default();
        for c in chunks {
            codes.append(c);
        }
        let (keep_quantizer, keep_bytes) = match opts.keep.byte_format() {
            // Byte codes of the kept format are their own copy: keep nothing twice.
            Some(format) if codes_are(&quantizer, format) => (None, Vec::new()),
            Some(format) => {
                let q = ByteCode::fit(format, dim, &data);
                let bytes = data
                    .par_chunks(ENCODE_CHUNK * dim)
                    .flat_map_iter(|r| q.encode_bytes(r))
                    .collect();
                (Some(q), bytes)
            }
            None => (None, Vec::new()),
        };
        let keep_f32 = if opts.keep == Keep::F32 {
            data
        } else {
            Vec::new()
        };
        let meta = Meta {
            kind: if ivf.is_some() {
                "bitseek-ivf"
            } else if graph.is_some() {
                "bitseek-graph"
            } else {
                "bitseek-flat"
            }
            .into(),
            dim,
            rows,
            metric: opts.metric,
            quantizer: quantizer.kind(),
            keep: opts.keep,
            seed: opts.seed,
            scale_search: opts.scale_search,
            planes: codes.planes,
            words: codes.words,
            factors: codes.factors.len(),
            written_by: env!("CARGO_PKG_VERSION").into(),
            encoder: match &quantizer {
                Quantizer::Learned(l) => Some(l.config),
                _ => None,
            },
            allocation: match &quantizer {
                Quantizer::Alloc(a) => a.report.clone(),
                _ => None,
            },
            auto: None,
            ivf: ivf.as_ref().map(|(m, _)| m.clone()),
            graph: graph.as_ref().map(|(m, _)| m.clone()),
        };
        let owned = Owned {
            codes,
            ids,
            norm2,
            keep_f32,
            keep_bytes,
        };
        let ivf = ivf.map(|(_, data)| IvfState {
            derived: Derived::of(dim, &data.centroids, &data.offsets).with_routing(
                dim,
                padded(dim),
                &data.centroids,
                &data.rotation,
            ),
            owned: Some(data),
        });
        Ok(Index {
            meta,
            quantizer,
            keep_quantizer,
            backing: Backing::Owned(owned),
            ivf,
            graph: graph.map(|(_, data)| data),
        })
    }

    /// Writes the index to `path` atomically; returns the file size.
    pub fn save(&self, path: &Path) -> Result<u64, IndexError> {
        let p = self.parts();
        let meta = serde_json::to_value(&self.meta).map_err(|e| IndexError::Corrupt {
            path: path.to_owned(),
            reason: format!("cannot serialise metadata: {e}"),
        })?;
        let mut sections: Vec<(String, &[u8])> = vec![
            ("ids".into(), bytemuck::cast_slice(p.ids)),
            ("norm2".into(), bytemuck::cast_slice(p.norm2)),
            ("codes.bits".into(), bytemuck::cast_slice(p.codes.bits)),
            ("codes.bytes".into(), bytemuck::cast_slice(p.codes.bytes)),
            ("keep.f32".into(), bytemuck::cast_slice(p.keep_f32)),
            (
                keep_section(self.meta.keep).into(),
                bytemuck::cast_slice(p.keep_bytes),
            ),
        ];
        for (i, f) in p.codes.factors.iter().enumerate().take(self.meta.factors) {
            sections.push((format!("factor.{i}"), bytemuck::cast_slice(f)));
        }
        let params = quantizer_params(&self.quantizer, self.keep_quantizer.as_ref());
        for (name, values) in &params {
            sections.push((name.clone(), bytemuck::cast_slice(values)));
        }
        if let Some(v) = self.ivf_parts() {
            sections.extend([
                (
                    "ivf.centroids".to_string(),
                    bytemuck::cast_slice(v.centroids),
                ),
                ("ivf.rotation".to_string(), bytemuck::cast_slice(v.rotation)),
                ("ivf.offsets".to_string(), bytemuck::cast_slice(v.offsets)),
                ("ivf.rows".to_string(), bytemuck::cast_slice(v.rows)),
                ("ivf.scale".to_string(), bytemuck::cast_slice(v.scale)),
                ("ivf.add".to_string(), bytemuck::cast_slice(v.add)),
                ("ivf.bound".to_string(), bytemuck::cast_slice(v.bound)),
                ("ivf.codes".to_string(), v.codes),
            ]);
        }
        if let Some(g) = self.graph_parts() {
            sections.extend([
                (
                    "graph.rotation".to_string(),
                    bytemuck::cast_slice(g.rotation),
                ),
                ("graph.nodes".to_string(), bytemuck::cast_slice(g.nodes)),
                ("graph.bound".to_string(), bytemuck::cast_slice(g.bound)),
            ]);
        }
        let refs: Vec<(&str, &[u8])> = sections.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        Ok(write_index(path, &meta, &refs)?)
    }

    /// Opens an index file (verifying its checksums) and maps it.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        Self::from_file(IndexFile::open(path)?, path)
    }

    /// Opens an index file checking its structure, header and shapes but not the checksums of its
    /// sections ([`IndexFile::open_unverified`]), so only the pages a search touches are read.
    ///
    /// For callers that verified this very file before (a collection records which files it
    /// verified): damaged section bytes then go unnoticed until the next [`Index::open`], and
    /// surface as wrong search results, never as unsafety.
    pub fn open_unverified(path: &Path) -> Result<Index, IndexError> {
        Self::from_file(IndexFile::open_unverified(path)?, path)
    }

    fn from_file(file: IndexFile, path: &Path) -> Result<Index, IndexError> {
        let corrupt = |reason: String| IndexError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let meta: Meta = serde_json::from_value(file.meta().clone()).map_err(|e| {
            // A quantizer or kept copy added after this bitseek reads as an unknown variant:
            // say which bitseek wrote the file, so the fix (that version, or a rebuild) is clear.
            let by = file.meta().get("written_by").and_then(|v| v.as_str());
            corrupt(match by {
                Some(v) if v != env!("CARGO_PKG_VERSION") => format!(
                    "metadata does not describe a flat index this bitseek ({}) can read: {e}; it was written by bitseek {v}: open it with that version or rebuild it with this one",
                    env!("CARGO_PKG_VERSION")
                ),
                _ => format!("metadata does not describe a flat index: {e}"),
            })
        })?;
        match (meta.kind.as_str(), &meta.graph) {
            ("bitseek-graph", Some(g)) if g.version == GRAPH_VERSION && meta.ivf.is_none() => {}
            ("bitseek-graph", Some(g)) if g.version != GRAPH_VERSION => {
                return Err(corrupt(format!(
                    "graph layout version {} is not {GRAPH_VERSION}, the one this bitseek reads; rebuild the index or use the bitseek that wrote it ({})",
                    g.version, meta.written_by
                )))
            }
            ("bitseek-graph", _) => {
                return Err(corrupt(
                    "a graph index without its graph metadata (or with IVF metadata)".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(corrupt(format!(
                    "graph metadata in an index of kind {:?}",
                    meta.kind
                )))
            }
            _ => {}
        }
        match (meta.kind.as_str(), &meta.ivf) {
            ("bitseek-flat", None) | ("bitseek-graph", None) => {}
            ("bitseek-ivf", Some(m)) if m.version == IVF_VERSION => {}
            ("bitseek-ivf", Some(m)) => {
                return Err(corrupt(format!(
                    "IVF layout version {} is not {IVF_VERSION}, the one this bitseek reads; rebuild the index or use the bitseek that wrote it ({})",
                    m.version, meta.written_by
                )))
            }
            ("bitseek-ivf", None) => return Err(corrupt("an IVF index without its IVF metadata".into())),
            (kind, _) => return Err(corrupt(format!("unknown index kind {kind:?}"))),
        }
        let f32s = |name: &str| -> Result<Vec<f32>, IndexError> {
            Ok(file.section_as::<f32>(name)?.to_vec())
        };
        let dim = meta.dim;
        let quantizer = match meta.quantizer {
            QuantizerKind::Sign => Quantizer::Sign(Sign::from_mean(f32s("q.mean")?)),
            QuantizerKind::Rabitq | QuantizerKind::Residual { .. } => {
                let padded = meta.words * 64;
                Quantizer::Lattice(Lattice {
                    dim,
                    padded,
                    bits: meta.quantizer.bits(),
                    mean: f32s("q.mean")?,
                    rotation: f32s("q.rotation")?,
                    seed: meta.seed,
                    scale_search: meta.scale_search,
                })
            }
            QuantizerKind::Int8 => {
                Quantizer::Int8(Int8::from_parts(f32s("q.lo")?, f32s("q.step")?))
            }
            QuantizerKind::Ternary => Quantizer::Ternary(Ternary {
                dim,
                padded: meta.words * 64,
                mean: f32s("q.mean")?,
                rotation: f32s("q.rotation")?,
                seed: meta.seed,
            }),
            QuantizerKind::Fp8 { format } => {
                Quantizer::Fp8(Fp8::from_parts(format, f32s("q.mean")?, f32s("q.scale")?))
            }
            QuantizerKind::Int4 => {
                Quantizer::Int4(Int4::from_parts(f32s("q.lo")?, f32s("q.step")?))
            }
            QuantizerKind::Alloc { .. } => {
                let report = meta
                    .allocation
                    .clone()
                    .ok_or_else(|| corrupt("alloc codes without their widths".into()))?;
                if report.layout != alloc::LAYOUT {
                    return Err(corrupt(format!(
                        "its alloc codes are stored in layout {} (written by bitseek {}), this bitseek reads layout {} (FastScan blocks of 32 rows); rebuild the index with `bitseek build --quantizer alloc:{}`",
                        report.layout,
                        meta.written_by,
                        alloc::LAYOUT,
                        report.bytes
                    )));
                }
                let mut a = Alloc::from_parts(
                    dim,
                    f32s("q.mean")?,
                    f32s("q.axes")?,
                    f32s("q.sigma")?,
                    report.widths.clone(),
                );
                a.report = Some(report);
                Quantizer::Alloc(Box::new(a))
            }
            QuantizerKind::Learned { .. } => {
                let config = meta
                    .encoder
                    .ok_or_else(|| corrupt("learned codes without an encoder shape".into()))?;
                let learned = Learned::from_tensors(config, |name| {
                    f32s(&format!("q.learned.{name}")).map_err(|e| e.to_string())
                })
                .map_err(|e| corrupt(format!("encoder: {e}")))?;
                Quantizer::Learned(Box::new(learned))
            }
        };
        let keep_quantizer = match meta.keep.byte_format() {
            Some(format) if !codes_are(&quantizer, format) => {
                Some(ByteCode::from_params(format, |name| {
                    f32s(&format!("keep.{name}"))
                })?)
            }
            _ => None,
        };
        let ivf = match &meta.ivf {
            Some(m) => {
                let centroids = file.section_as::<f32>("ivf.centroids")?;
                let offsets = file.section_as::<u64>("ivf.offsets")?;
                if offsets.len() != m.lists + 1 || centroids.len() != m.lists * dim {
                    return Err(corrupt(format!(
                        "ivf.offsets or ivf.centroids do not describe {} lists",
                        m.lists
                    )));
                }
                for name in [
                    "ivf.rotation",
                    "ivf.rows",
                    "ivf.scale",
                    "ivf.add",
                    "ivf.bound",
                    "ivf.codes",
                ] {
                    file.section(name)?;
                }
                let rotation = file.section_as::<f32>("ivf.rotation")?;
                if m.padded != padded(dim) || rotation.len() != m.padded * m.padded {
                    return Err(corrupt(format!(
                        "ivf.rotation is not {0} × {0}",
                        padded(dim)
                    )));
                }
                Some(IvfState {
                    derived: Derived::of(dim, centroids, offsets)
                        .with_routing(dim, m.padded, centroids, rotation),
                    owned: None,
                })
            }
            None => None,
        };
        if let Some(g) = &meta.graph {
            for name in ["graph.rotation", "graph.nodes", "graph.bound"] {
                file.section(name)?;
            }
            if g.padded != padded(dim) {
                return Err(corrupt(format!(
                    "graph code dimension {} for dimension {dim}",
                    g.padded
                )));
            }
            if meta.keep == Keep::None {
                return Err(corrupt(
                    "a graph index without a kept copy to rank by".into(),
                ));
            }
        }
        let index = Index {
            meta,
            quantizer,
            keep_quantizer,
            backing: Backing::Mapped(file),
            ivf,
            graph: None,
        };
        index.check_shapes().map_err(corrupt)?;
        Ok(index)
    }

    /// Checks that every array has the length the metadata promises, so a search can never read
    /// out of bounds or mix rows.
    fn check_shapes(&self) -> Result<(), String> {
        let m = &self.meta;
        let expect = |name: &str, found: usize, want: usize| {
            if found == want {
                Ok(())
            } else {
                Err(format!(
                    "section {name} holds {found} values, expected {want}"
                ))
            }
        };
        if m.dim == 0 {
            return Err("dimension 0".into());
        }
        match &self.quantizer {
            Quantizer::Sign(q) => expect("q.mean", q.mean.len(), m.dim)?,
            Quantizer::Lattice(q) => {
                if q.padded != crate::index::padded(m.dim) || !(1..=8).contains(&q.bits) {
                    return Err(format!(
                        "code shape {} words for dimension {}",
                        m.words, m.dim
                    ));
                }
                expect("q.mean", q.mean.len(), m.dim)?;
                expect("q.rotation", q.rotation.len(), q.padded * q.padded)?;
            }
            Quantizer::Int8(q) => {
                expect("q.lo", q.lo.len(), m.dim)?;
                expect("q.step", q.step.len(), m.dim)?;
            }
            Quantizer::Int4(q) => {
                expect("q.lo", q.lo.len(), m.dim)?;
                expect("q.step", q.step.len(), m.dim)?;
            }
            Quantizer::Fp8(q) => {
                expect("q.mean", q.mean.len(), m.dim)?;
                expect("q.scale", q.scale.len(), m.dim)?;
            }
            Quantizer::Ternary(q) => {
                if q.padded != crate::index::padded(m.dim) || m.planes != 2 || m.factors != 3 {
                    return Err(format!(
                        "ternary codes of {} planes × {} words, {} factors for dimension {}",
                        m.planes, m.words, m.factors, m.dim
                    ));
                }
                expect("q.mean", q.mean.len(), m.dim)?;
                expect("q.rotation", q.rotation.len(), q.padded * q.padded)?;
            }
            Quantizer::Alloc(q) => {
                let segments = bitseek_codes::quantizer::alloc::segments(m.dim);
                let widths_ok = q.widths.len() == segments
                    && q.widths
                        .iter()
                        .all(|w| bitseek_codes::quantizer::alloc::WIDTHS.contains(w));
                if !widths_ok || (m.planes, m.words, m.factors) != (0, 0, 1) {
                    return Err(format!(
                        "alloc widths {:?} or code shape ({} planes, {} factors) do not fit dimension {}",
                        q.widths, m.planes, m.factors, m.dim
                    ));
                }
                expect("q.mean", q.mean.len(), m.dim)?;
                expect("q.axes", q.axes.len(), q.padded * m.dim)?;
                expect("q.sigma", q.sigma.len(), q.padded)?;
            }
            Quantizer::Learned(q) => {
                q.check()?;
                if (q.dim(), q.bits(), q.words(), 2) != (m.dim, m.planes, m.words, m.factors) {
                    return Err(format!(
                        "encoder {:?} does not match codes of {} planes × {} words, {} factors",
                        q.config, m.planes, m.words, m.factors
                    ));
                }
            }
        }
        if let Some(q) = &self.keep_quantizer {
            for (name, values) in q.params() {
                expect(&format!("keep.{name}"), values.len(), m.dim)?;
            }
        }
        let p = self.parts();
        let blocks = m.rows.div_ceil(BLOCK);
        expect("ids", p.ids.len(), m.rows)?;
        expect("norm2", p.norm2.len(), m.rows)?;
        expect(
            "codes.bits",
            p.codes.bits.len(),
            blocks * BLOCK * m.planes * m.words,
        )?;
        expect(
            "codes.bytes",
            p.codes.bytes.len(),
            self.quantizer.code_bytes_len(m.rows),
        )?;
        for i in 0..m.factors {
            expect(&format!("factor.{i}"), p.codes.factors[i].len(), m.rows)?;
        }
        let f32_copy = if m.keep == Keep::F32 {
            m.rows * m.dim
        } else {
            0
        };
        expect("keep.f32", p.keep_f32.len(), f32_copy)?;
        let byte_copy = self
            .keep_quantizer
            .as_ref()
            .map_or(0, |q| m.rows * q.row_bytes());
        expect(keep_section(m.keep), p.keep_bytes.len(), byte_copy)?;
        if let Some(v) = self.ivf_parts() {
            if v.padded != padded(m.dim) {
                return Err(format!(
                    "IVF code dimension {} for dimension {}",
                    v.padded, m.dim
                ));
            }
            v.check(m.rows)?;
        }
        if let Some(g) = self.graph_parts() {
            if g.padded != padded(m.dim) {
                return Err(format!(
                    "graph code dimension {} for dimension {}",
                    g.padded, m.dim
                ));
            }
            g.check(m.rows)?;
        }
        if p.ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err("ids are not strictly increasing".into());
        }
        Ok(())
    }

    fn parts(&self) -> Parts<'_> {
        match &self.backing {
            Backing::Owned(o) => Parts {
                codes: o.codes.as_ref(),
                ids: &o.ids,
                norm2: &o.norm2,
                keep_f32: &o.keep_f32,
                keep_bytes: &o.keep_bytes,
            },
            Backing::Mapped(file) => {
                // Sections were checked for presence and type when the file was opened
                // (`check_shapes`); a missing optional section reads as empty.
                let f32s = |n: &str| file.section_as::<f32>(n).unwrap_or(&[]);
                let factors = [
                    f32s("factor.0"),
                    f32s("factor.1"),
                    f32s("factor.2"),
                    f32s("factor.3"),
                ];
                Parts {
                    codes: CodesRef {
                        len: self.meta.rows,
                        planes: self.meta.planes,
                        words: self.meta.words,
                        bits: file.section_as::<u64>("codes.bits").unwrap_or(&[]),
                        bytes: file.section_as::<i8>("codes.bytes").unwrap_or(&[]),
                        factors,
                    },
                    ids: file.section_as::<u64>("ids").unwrap_or(&[]),
                    norm2: f32s("norm2"),
                    keep_f32: f32s("keep.f32"),
                    keep_bytes: file
                        .section_as::<i8>(keep_section(self.meta.keep))
                        .unwrap_or(&[]),
                }
            }
        }
    }

    /// The IVF arrays, wherever they live (`None` for a flat index).
    fn ivf_parts(&self) -> Option<IvfRef<'_>> {
        let state = self.ivf.as_ref()?;
        let m = self.meta.ivf.as_ref()?;
        Some(match (&state.owned, &self.backing) {
            (Some(data), _) => data.as_ref(self.meta.dim, m.padded, &state.derived),
            (None, Backing::Mapped(file)) => {
                // Presence was checked at open; shapes by check_shapes.
                let f32s = |n: &str| file.section_as::<f32>(n).unwrap_or(&[]);
                IvfRef {
                    dim: self.meta.dim,
                    padded: m.padded,
                    centroids: f32s("ivf.centroids"),
                    rotation: f32s("ivf.rotation"),
                    offsets: file.section_as::<u64>("ivf.offsets").unwrap_or(&[0]),
                    rows: file.section_as::<u32>("ivf.rows").unwrap_or(&[]),
                    scale: f32s("ivf.scale"),
                    add: f32s("ivf.add"),
                    bound: f32s("ivf.bound"),
                    codes: file.section("ivf.codes").unwrap_or(&[]),
                    derived: &state.derived,
                }
            }
            (None, Backing::Owned(_)) => return None,
        })
    }

    /// The graph arrays, wherever they live (`None` unless `kind: bitseek-graph`).
    fn graph_parts(&self) -> Option<GraphRef<'_>> {
        let m = self.meta.graph.as_ref()?;
        Some(match (&self.graph, &self.backing) {
            (Some(data), _) => data.as_ref(self.meta.dim, m.padded, m.degree),
            (None, Backing::Mapped(file)) => {
                // Presence was checked at open; shapes by check_shapes.
                let f32s = |n: &str| file.section_as::<f32>(n).unwrap_or(&[]);
                GraphRef {
                    dim: self.meta.dim,
                    padded: m.padded,
                    degree: m.degree,
                    entry: m.entry,
                    rotation: f32s("graph.rotation"),
                    nodes: file.section_as::<u32>("graph.nodes").unwrap_or(&[]),
                    bound: f32s("graph.bound"),
                }
            }
            (None, Backing::Owned(_)) => return None,
        })
    }

    /// Neighbour slots per node of a graph index (`None` otherwise).
    pub fn graph_degree(&self) -> Option<usize> {
        self.meta.graph.as_ref().map(|g| g.degree)
    }

    /// Whether every row of a graph index is reachable from its entry point (`None` for other
    /// kinds): a search with an effort of at least the number of rows then visits every row.
    pub fn graph_connected(&self) -> Option<bool> {
        self.graph_parts().map(|g| g.connected())
    }

    /// The number of IVF lists (`None` for a flat index).
    pub fn ivf_lists(&self) -> Option<usize> {
        self.meta.ivf.as_ref().map(|m| m.lists)
    }

    /// Sizes of the IVF lists (empty for a flat index).
    pub fn ivf_list_sizes(&self) -> Vec<usize> {
        self.ivf_parts()
            .map(|v| {
                v.offsets
                    .windows(2)
                    .map(|w| (w[1] - w[0]) as usize)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The effort a search uses when none is given: lists probed for IVF (`None` for a flat
    /// index, which has no knob).
    pub fn default_effort(&self) -> Option<usize> {
        if self.meta.graph.is_some() {
            return Some(graph::DEFAULT_EFFORT);
        }
        self.ivf_lists().map(ivf::default_effort)
    }

    /// Every row's IVF estimate of `⟨x, q⟩` for each query (row order), scored code by code from
    /// the nibble definition with no list selection and no heap: the brute force over the codes
    /// that IVF searches are tested against. `None` for a flat index. Queries are prepared
    /// (normalised for cosine) first.
    pub fn ivf_estimates(
        &self,
        queries: &[f32],
        dim: usize,
    ) -> Result<Option<Vec<Vec<f32>>>, IndexError> {
        let queries = self.prepare_queries(queries, dim)?;
        Ok(self
            .ivf_parts()
            .map(|v| ivf::search::exhaustive(&v, &queries)))
    }

    /// The stored metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The fitted quantizer.
    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    /// The kept `f32` vectors (normalised for cosine), if the index keeps them.
    pub fn kept_f32(&self) -> Option<&[f32]> {
        let p = self.parts();
        (!p.keep_f32.is_empty()).then_some(p.keep_f32)
    }

    /// Exact `‖x‖²` per row (after normalisation for cosine).
    pub fn norm2(&self) -> &[f32] {
        self.parts().norm2
    }

    /// Ids in row order.
    pub fn ids(&self) -> &[u64] {
        self.parts().ids
    }

    /// Bytes per vector of the codes and their per-vector factors (what a scan reads).
    pub fn code_bytes_per_vector(&self) -> usize {
        let m = &self.meta;
        self.quantizer.row_bytes() + m.planes * m.words * 8 + 4 * m.factors
    }

    /// Bytes a full scan reads: codes and the factors the estimate uses (not the error bound's),
    /// plus the norms for L2.
    pub fn scan_bytes(&self) -> usize {
        let l2 = if self.meta.metric == Metric::L2 { 4 } else { 0 };
        let unread = if self.meta.factors > Factor::Bound as usize {
            4
        } else {
            0
        };
        self.meta.rows * (self.code_bytes_per_vector() - unread + l2)
    }

    /// What a batch of queries must pass before a search, for
    /// [`validate_rows`](crate::input::validate_rows): this index's dimension, and no zero vector
    /// under cosine. Callers that read queries from outside (`bitseek query`, the Python binding)
    /// run it so their refusals name the source, row and column.
    pub fn query_checks(&self) -> Checks {
        Checks {
            expected_dim: Some(self.meta.dim),
            reject_zero: self.meta.metric == Metric::Cosine,
        }
    }

    /// Checks queries (dimension, finiteness, zero under cosine) and normalises them for cosine.
    pub fn prepare_queries(&self, queries: &[f32], dim: usize) -> Result<Vec<f32>, IndexError> {
        if dim != self.meta.dim {
            return Err(IndexError::DimensionMismatch {
                expected: self.meta.dim,
                found: dim,
            });
        }
        let batch = VectorBatch::new(queries.to_vec(), dim, self.meta.metric)?;
        Ok(batch.into_data())
    }

    /// Searches a batch of row-major queries of dimension `dim`; one list of hits per query,
    /// best first.
    pub fn search_batch(
        &self,
        queries: &[f32],
        dim: usize,
        params: &SearchParams,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        self.search_batch_allowed(queries, dim, params, None)
    }

    /// [`search_batch`](Self::search_batch) over only the rows whose bit is set in `allowed`
    /// (see [`flat::scan_allowed`]): the scan itself skips the others, so `k` hits come back
    /// whenever `k` rows are allowed.
    pub fn search_batch_allowed(
        &self,
        queries: &[f32],
        dim: usize,
        params: &SearchParams,
        allowed: Option<&[u64]>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        self.search_batch_effort(queries, dim, params, None, allowed)
    }

    /// [`search_batch_allowed`](Self::search_batch_allowed) with the one speed/recall knob:
    /// `effort` is the number of lists an IVF index probes (`None` = [`Index::default_effort`];
    /// at least the number of lists = every code is scored), or the beam width of a graph index
    /// (at least the number of rows = every row is ranked exactly). A flat index ignores it.
    pub fn search_batch_effort(
        &self,
        queries: &[f32],
        dim: usize,
        params: &SearchParams,
        effort: Option<usize>,
        allowed: Option<&[u64]>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        self.search_inner(queries, dim, params, effort, allowed, false)
    }

    /// [`search_batch_allowed`](Self::search_batch_allowed) through the flat codes every index
    /// file holds, whatever its kind: what a filtered search falls back to when the filter passes
    /// so many of the rows scattered over the lists that probing would score most of them anyway.
    pub fn search_batch_flat(
        &self,
        queries: &[f32],
        dim: usize,
        params: &SearchParams,
        allowed: Option<&[u64]>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        self.search_inner(queries, dim, params, None, allowed, true)
    }

    fn search_inner(
        &self,
        queries: &[f32],
        dim: usize,
        params: &SearchParams,
        effort: Option<usize>,
        allowed: Option<&[u64]>,
        flat_only: bool,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        if params.k == 0 {
            return Err(IndexError::BadParam("k must be at least 1".into()));
        }
        if params.oversample == 0 {
            return Err(IndexError::BadParam("oversample must be at least 1".into()));
        }
        let rescore = params.rescore && self.meta.keep != Keep::None;
        let wanted = if rescore {
            params.k.saturating_mul(params.oversample)
        } else {
            params.k
        };
        if wanted > MAX_CANDIDATES {
            return Err(IndexError::BadParam(format!(
                "k × oversample = {wanted} exceeds the limit of {MAX_CANDIDATES} candidates; lower k or oversample"
            )));
        }
        let queries = self.prepare_queries(queries, dim)?;
        if effort == Some(0) {
            return Err(IndexError::BadParam("effort must be at least 1".into()));
        }
        if let Some(g) = self.graph_parts().filter(|_| !flat_only) {
            // Ranked by the kept copy as it walks: no separate rescoring, no oversampling.
            let effort = effort.unwrap_or(graph::DEFAULT_EFFORT);
            let p = self.parts();
            let kept = KeptCopy {
                dim,
                dot: bitseek_codes::kernels::kernels().dot_f32,
                f32s: p.keep_f32,
                bytes: self.byte_copy(&p),
            };
            let k = params.k.min(self.meta.rows);
            let found = graph::search::search(
                &graph::search::Query {
                    graph: &g,
                    norm2: (self.meta.metric == Metric::L2).then_some(p.norm2),
                    allowed,
                    kernels: bitseek_codes::kernels::kernels(),
                },
                &kept,
                &queries,
                self.meta.rows,
                k,
                effort,
            );
            // A filter that leaves the walk short of k allowed rows: the flat scan over the
            // allowed rows answers instead, so k hits come back whenever k rows are allowed.
            // Rows are counted only when some walk came back with fewer than k hits.
            let short = allowed.is_some_and(|a| {
                found.iter().any(|f| f.len() < k) && {
                    let allowed_rows = (0..self.meta.rows)
                        .filter(|&r| flat::row_allowed(a, r))
                        .count();
                    found.iter().any(|f| f.len() < k.min(allowed_rows))
                }
            });
            if !short {
                return Ok(found
                    .into_iter()
                    .zip(queries.chunks_exact(dim))
                    .map(|(f, q)| {
                        let q2 = dot(q, q);
                        f.into_iter()
                            .map(|(key, row)| self.exact_hit(p.ids, q2, key, row))
                            .collect()
                    })
                    .collect());
            }
        }
        if let Some(v) = self.ivf_parts().filter(|_| !flat_only) {
            let effort = effort.unwrap_or_else(|| ivf::default_effort(v.lists()));
            let p = self.parts();
            let norm2 = (self.meta.metric == Metric::L2).then_some(p.norm2);
            let kernels = bitseek_codes::kernels::kernels();
            let found = ivf::search::search(
                &v,
                &queries,
                norm2,
                wanted.min(self.meta.rows),
                effort,
                allowed,
                kernels,
            );
            let hits = found
                .into_par_iter()
                .zip(queries.par_chunks(dim))
                .map(|(cands, q)| {
                    if rescore {
                        let cands = cands
                            .iter()
                            .map(|f| Candidate {
                                row: f.row,
                                key: Key::Score(f.key),
                            })
                            .collect();
                        self.rescore(&p, q, cands, params.k)
                    } else {
                        let q2 = dot(q, q);
                        cands
                            .iter()
                            .map(|f| Hit {
                                id: p.ids[f.row as usize],
                                score: match self.meta.metric {
                                    Metric::L2 => q2 - f.key,
                                    _ => f.est,
                                },
                                bound: Some(match self.meta.metric {
                                    Metric::L2 => 2.0 * f.bound,
                                    _ => f.bound,
                                }),
                            })
                            .collect()
                    }
                })
                .collect();
            return Ok(hits);
        }
        let codes: Vec<QueryCode> = queries
            .par_chunks(dim)
            .enumerate()
            .map(|(i, q)| {
                self.quantizer
                    .encode_query_bits(q, params.mode, params.query_bits, i as u64)
            })
            .collect();
        let p = self.parts();
        let key_fn = match self.meta.metric {
            Metric::L2 => KeyFn::L2 { norm2: p.norm2 },
            _ => KeyFn::Dot,
        };
        let found = flat::scan_allowed(
            &self.quantizer,
            &p.codes,
            &codes,
            wanted.min(self.meta.rows),
            key_fn,
            allowed,
        );
        let hits = found
            .into_par_iter()
            .zip(queries.par_chunks(dim))
            .zip(codes.par_iter())
            .map(|((cands, q), qc)| {
                if rescore {
                    self.rescore(&p, q, cands, params.k)
                } else {
                    cands
                        .into_iter()
                        .map(|c| self.raw_hit(&p, q, qc, c))
                        .collect()
                }
            })
            .collect();
        Ok(hits)
    }

    /// A hit from the codes' own estimate.
    fn raw_hit(&self, p: &Parts<'_>, q: &[f32], qc: &QueryCode, c: Candidate) -> Hit {
        let row = c.row as usize;
        let (score, bound) = match c.key {
            Key::Distance(d) => (self.quantizer.distance_to_score(d), None),
            Key::Score(s) => {
                let bound = self.quantizer.error_bound(&p.codes, qc, row);
                match self.meta.metric {
                    Metric::L2 => (dot(q, q) - 2.0 * qc.offset - s, bound.map(|b| 2.0 * b)),
                    _ => (s + qc.offset, bound),
                }
            }
        };
        Hit {
            id: p.ids[row],
            score,
            bound,
        }
    }

    /// The quantized rescoring copy, its quantizer and bytes per row (`None` when the copy is
    /// `f32` or absent).
    fn byte_copy<'a>(&'a self, p: &Parts<'a>) -> Option<(ByteCode, &'a [i8], usize)> {
        match (&self.keep_quantizer, self.meta.keep.byte_format()) {
            (Some(kq), _) => Some((kq.clone(), p.keep_bytes, kq.row_bytes())),
            (None, Some(_)) => byte_code_of(&self.quantizer)
                .map(|kq| (kq, p.codes.bytes, self.quantizer.row_bytes())),
            (None, None) => None,
        }
    }

    /// Exact (or int8) scores for the candidates, best `k` first; ties by row (= by id).
    fn rescore(&self, p: &Parts<'_>, q: &[f32], cands: Vec<Candidate>, k: usize) -> Vec<Hit> {
        let dim = self.meta.dim;
        let own;
        let copy = match (&self.keep_quantizer, self.meta.keep.byte_format()) {
            (Some(kq), _) => Some((kq, p.keep_bytes, kq.row_bytes())),
            (None, Some(_)) => {
                // The codes are the kept copy (checked when built or opened).
                own = byte_code_of(&self.quantizer);
                own.as_ref()
                    .map(|kq| (kq, p.codes.bytes, self.quantizer.row_bytes()))
            }
            (None, None) => None,
        };
        let weights = copy.map(|(kq, _, _)| kq.weights(q));
        let dot_f32 = bitseek_codes::kernels::kernels().dot_f32;
        let mut scored: Vec<(f32, u32)> = cands
            .iter()
            .map(|c| {
                let row = c.row as usize;
                let ip = match (&copy, &weights) {
                    (Some((kq, bytes, rb)), Some((w, konst))) => {
                        kq.dot(w, *konst, &bytes[row * rb..(row + 1) * rb])
                    }
                    _ => dot_f32(q, &p.keep_f32[row * dim..(row + 1) * dim]),
                };
                let key = if self.meta.metric == Metric::L2 {
                    2.0 * ip - p.norm2[row]
                } else {
                    ip
                };
                (key, c.row)
            })
            .collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(k);
        let q2 = dot(q, q);
        scored
            .into_iter()
            .map(|(key, row)| self.exact_hit(p.ids, q2, key, row))
            .collect()
    }

    /// The hit for `row` ranked by an exact key (`2⟨q,x⟩ − ‖x‖²` under L2, else the score
    /// itself): under L2 the score is the squared distance, `‖q‖² − key`.
    fn exact_hit(&self, ids: &[u64], q2: f32, key: f32, row: u32) -> Hit {
        Hit {
            id: ids[row as usize],
            score: if self.meta.metric == Metric::L2 {
                q2 - key
            } else {
                key
            },
            bound: None,
        }
    }
}

/// The kept copy as the graph search reads it: `f32` rows, or a byte copy with its quantizer.
struct KeptCopy<'a> {
    dim: usize,
    dot: fn(&[f32], &[f32]) -> f32,
    f32s: &'a [f32],
    bytes: Option<(ByteCode, &'a [i8], usize)>,
}

impl graph::search::Exact for KeptCopy<'_> {
    type Prepared = Option<(Vec<f32>, f32)>;
    fn prepare(&self, q: &[f32]) -> Self::Prepared {
        self.bytes.as_ref().map(|(kq, _, _)| kq.weights(q))
    }
    #[inline]
    fn ip(&self, prep: &Self::Prepared, q: &[f32], row: u32) -> f32 {
        let row = row as usize;
        match (&self.bytes, prep) {
            (Some((kq, bytes, rb)), Some((w, konst))) => {
                kq.dot(w, *konst, &bytes[row * rb..(row + 1) * rb])
            }
            _ => (self.dot)(q, &self.f32s[row * self.dim..(row + 1) * self.dim]),
        }
    }
    #[inline]
    fn row_bytes(&self, row: u32) -> &[u8] {
        let row = row as usize;
        match &self.bytes {
            Some((_, bytes, rb)) => bytemuck::cast_slice(&bytes[row * rb..(row + 1) * rb]),
            None => bytemuck::cast_slice(&self.f32s[row * self.dim..(row + 1) * self.dim]),
        }
    }
}

impl Index {
    /// Appends vectors without a rebuild: they are encoded with the fitted quantizer and, for an
    /// IVF index, coded into their nearest lists (centroids and stored codes stay as they are). Ids
    /// must all be above the index's largest (vectors without ids get the next ones), which keeps
    /// rows in id order. A mapped index is copied into memory first; [`Index::save`] writes the
    /// result.
    pub fn append(&mut self, vectors: Vectors, source: &Path) -> Result<(), IndexError> {
        if self.meta.graph.is_some() {
            return Err(IndexError::BadParam(format!(
                "a graph index is not appended to (its neighbour lists are chosen against the whole set); build it again from all the vectors, {} included",
                source.display()
            )));
        }
        let checks = self.query_checks();
        validate(&vectors, source, &checks)?;
        let m = self.meta.clone();
        let dim = m.dim;
        let n_new = vectors.rows();
        let next = self.ids().last().map_or(0, |&l| l + 1);
        let ids: Vec<u64> = match &vectors.ids {
            Some(ids) => ids.clone(),
            None => (next..next + n_new as u64).collect(),
        };
        if ids.first().is_some_and(|&f| f < next) || ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(IndexError::BadParam(format!(
                "appended ids must increase and start above the index's largest id ({}); give {} new ids in increasing order from {next}",
                next.saturating_sub(1),
                source.display()
            )));
        }
        let mut data = vectors.data;
        if m.metric == Metric::Cosine {
            data.par_chunks_mut(dim).for_each(normalize);
        }
        let new_codes = self.quantizer.encode(&data);
        let p = self.parts();
        let (old, total) = (m.rows, m.rows + n_new);
        let mut bits = Vec::new();
        if m.planes > 0 {
            let per_block = m.planes * m.words * BLOCK;
            bits = vec![0u64; total.div_ceil(BLOCK) * per_block];
            bits[..p.codes.bits.len()].copy_from_slice(p.codes.bits);
            for r in 0..n_new {
                let (from, to) = (
                    r / BLOCK * per_block + r % BLOCK,
                    (old + r) / BLOCK * per_block + (old + r) % BLOCK,
                );
                for i in 0..m.planes * m.words {
                    bits[to + i * BLOCK] = new_codes.bits[from + i * BLOCK];
                }
            }
        }
        let cat = |a: &[f32], b: &[f32]| [a, b].concat();
        let keep_bytes = match &self.keep_quantizer {
            Some(kq) => [p.keep_bytes, &kq.encode_bytes(&data)].concat(),
            None => Vec::new(),
        };
        let owned = Owned {
            codes: Codes {
                len: total,
                planes: m.planes,
                words: m.words,
                bits,
                bytes: self
                    .quantizer
                    .concat_bytes(p.codes.bytes, old, &new_codes.bytes, n_new),
                factors: (0..m.factors)
                    .map(|i| cat(p.codes.factors[i], &new_codes.factors[i]))
                    .collect(),
            },
            ids: [p.ids, &ids].concat(),
            norm2: cat(
                p.norm2,
                &data.par_chunks(dim).map(|x| dot(x, x)).collect::<Vec<_>>(),
            ),
            keep_f32: if m.keep == Keep::F32 {
                cat(p.keep_f32, &data)
            } else {
                Vec::new()
            },
            keep_bytes,
        };
        let ivf = match (self.ivf_parts(), &m.ivf) {
            (Some(v), Some(im)) => {
                let mut d = IvfData {
                    centroids: v.centroids.to_vec(),
                    rotation: v.rotation.to_vec(),
                    offsets: v.offsets.to_vec(),
                    rows: v.rows.to_vec(),
                    scale: v.scale.to_vec(),
                    add: v.add.to_vec(),
                    bound: v.bound.to_vec(),
                    codes: v.codes.to_vec(),
                };
                let rows: Vec<u32> = (old as u32..total as u32).collect();
                d.append(&data, dim, im.padded, &rows);
                Some(IvfState {
                    derived: Derived::of(dim, &d.centroids, &d.offsets).with_routing(
                        dim,
                        im.padded,
                        &d.centroids,
                        &d.rotation,
                    ),
                    owned: Some(d),
                })
            }
            _ => None,
        };
        self.meta.rows = total;
        self.backing = Backing::Owned(owned);
        self.ivf = ivf;
        self.check_shapes().map_err(IndexError::BadParam)
    }

    /// A new in-memory index of `rows` (increasing row numbers) of this one: the same fitted
    /// quantizer, the codes, factors, ids and kept copy of those rows copied as they are. This is
    /// how a store drops deleted rows from a segment that keeps no vectors to re-encode.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Index, IndexError> {
        let m = &self.meta;
        if rows.windows(2).any(|w| w[0] >= w[1]) || rows.last().is_some_and(|&r| r >= m.rows) {
            return Err(IndexError::BadParam(format!(
                "rows to keep must increase and be below {}",
                m.rows
            )));
        }
        let p = self.parts();
        let n = rows.len();
        let per_block = m.planes * m.words * BLOCK;
        let mut bits = vec![
            0u64;
            if p.codes.bits.is_empty() {
                0
            } else {
                n.div_ceil(BLOCK) * per_block
            }
        ];
        if !bits.is_empty() {
            for (new, &old) in rows.iter().enumerate() {
                let (from, to) = (
                    old / BLOCK * per_block + old % BLOCK,
                    new / BLOCK * per_block + new % BLOCK,
                );
                for i in 0..m.planes * m.words {
                    bits[to + i * BLOCK] = p.codes.bits[from + i * BLOCK];
                }
            }
        }
        fn gather<T: Copy>(src: &[T], rows: &[usize], width: usize) -> Vec<T> {
            if src.is_empty() {
                return Vec::new();
            }
            rows.iter()
                .flat_map(|&r| src[r * width..(r + 1) * width].iter().copied())
                .collect()
        }
        let codes = Codes {
            len: n,
            planes: m.planes,
            words: m.words,
            bits,
            bytes: self.quantizer.gather_bytes(p.codes.bytes, rows),
            factors: (0..m.factors)
                .map(|i| gather(p.codes.factors[i], rows, 1))
                .collect(),
        };
        let owned = Owned {
            codes,
            ids: gather(p.ids, rows, 1),
            norm2: gather(p.norm2, rows, 1),
            keep_f32: gather(p.keep_f32, rows, m.dim),
            keep_bytes: gather(
                p.keep_bytes,
                rows,
                self.keep_quantizer.as_ref().map_or(0, ByteCode::row_bytes),
            ),
        };
        let index = Index {
            // The rows change, so the lists would be stale: the selection is a flat index.
            meta: Meta {
                rows: n,
                kind: "bitseek-flat".into(),
                ivf: None,
                graph: None,
                ..m.clone()
            },
            quantizer: self.quantizer.clone(),
            keep_quantizer: self.keep_quantizer.clone(),
            backing: Backing::Owned(owned),
            ivf: None,
            graph: None,
        };
        index.check_shapes().map_err(IndexError::BadParam)?;
        Ok(index)
    }
}

/// Fitted parameters stored as sections: quantizer (`q.*`) and quantized copy (`keep.*`).
fn quantizer_params<'a>(q: &'a Quantizer, keep: Option<&'a ByteCode>) -> Vec<(String, &'a [f32])> {
    let out: Vec<(&'static str, &'a [f32])> = match q {
        Quantizer::Sign(s) => vec![("q.mean", &s.mean)],
        Quantizer::Lattice(l) => vec![("q.mean", &l.mean), ("q.rotation", &l.rotation)],
        Quantizer::Ternary(t) => vec![("q.mean", &t.mean), ("q.rotation", &t.rotation)],
        Quantizer::Int8(i) => vec![("q.lo", &i.lo), ("q.step", &i.step)],
        Quantizer::Int4(i) => vec![("q.lo", &i.lo), ("q.step", &i.step)],
        Quantizer::Fp8(f) => vec![("q.mean", &f.mean), ("q.scale", &f.scale)],
        Quantizer::Alloc(a) => vec![
            ("q.mean", &a.mean),
            ("q.axes", &a.axes),
            ("q.sigma", &a.sigma),
        ],
        Quantizer::Learned(_) => Vec::new(),
    };
    let mut named: Vec<(String, &'a [f32])> =
        out.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    if let Some(k) = keep {
        for (name, values) in k.params() {
            named.push((format!("keep.{name}"), values));
        }
    }
    if let Quantizer::Learned(l) = q {
        for (name, values) in l.tensors() {
            named.push((format!("q.learned.{name}"), values));
        }
    }
    named
}

/// The section holding the quantized rescoring copy (`keep.int8` as before the other formats).
fn keep_section(keep: Keep) -> &'static str {
    match keep {
        Keep::Fp8 => "keep.fp8",
        Keep::Int4 => "keep.int4",
        _ => "keep.int8",
    }
}

/// Whether `q`'s codes are byte codes of `format`, so they serve as the kept copy themselves.
fn codes_are(q: &Quantizer, format: ByteFormat) -> bool {
    matches!(
        (q, format),
        (Quantizer::Int8(_), ByteFormat::Int8) | (Quantizer::Int4(_), ByteFormat::Int4)
    ) || matches!((q, format), (Quantizer::Fp8(f), ByteFormat::Fp8(g)) if f.format == g)
}

/// `q` as a [`ByteCode`], when its codes are bytes.
fn byte_code_of(q: &Quantizer) -> Option<ByteCode> {
    match q {
        Quantizer::Int8(i) => Some(ByteCode::Int8(i.clone())),
        Quantizer::Fp8(f) => Some(ByteCode::Fp8(f.clone())),
        Quantizer::Int4(i) => Some(ByteCode::Int4(i.clone())),
        _ => None,
    }
}

/// The padded code dimension for `dim`.
pub fn padded(dim: usize) -> usize {
    dim.div_ceil(64) * 64
}
