//! `bitseek.Index`: a flat index of codes, the CLI's `build` / `query` on numpy arrays.

use crate::arrays::{self, padded, IdsScores};
use crate::errors::{index_error, index_error_in, input_error};
use crate::learn::Encoder;
use crate::threads;
use bitseek_codes::quantizer::{Learned, QueryMode, ScaleSearch};
use bitseek_index::input::{validate_rows, Vectors};
use bitseek_index::{BuildOptions, Keep, Metric, QuantizerChoice, SearchParams};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Parses a string option with the library's parser; its message becomes a `ValueError`.
pub fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> PyResult<T> {
    s.parse().map_err(PyValueError::new_err)
}

/// A progress bar on a terminal when asked for, hidden otherwise.
pub fn progress_bar(show: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// `quantizer=`: a name (`"rabitq"`, `"learned:FILE"`, ...) or a trained `Encoder`.
#[derive(FromPyObject)]
pub enum QuantizerArg<'py> {
    /// A name, parsed like `bitseek build --quantizer`.
    Name(String),
    /// An encoder from `bitseek.train` or `Encoder.open`.
    Encoder(Bound<'py, Encoder>),
}

/// A flat index of binary or multi-bit codes, in memory or mapped from its file.
///
/// Build one with `Index.build(vectors, ...)` or open a file written by `Index.save` or
/// `bitseek build` with `Index.open(path)`. Files are the CLI's format, both ways.
#[pyclass(frozen, module = "bitseek")]
pub struct Index {
    inner: Arc<bitseek_index::Index>,
}

#[pymethods]
impl Index {
    /// Builds an index from `vectors` (2-D float32 or float16, C or Fortran order).
    ///
    /// quantizer: "rabitq", "sign", "residual2".."residual8", "ternary", "int4", "fp8", "fp8-e5m2",
    /// "int8", "learned:ENCODER_FILE", or
    /// an `Encoder` from `bitseek.train`.
    /// metric: "cosine", "dot" or "l2". keep: the rescoring copy, "f32", "int8", "fp8",
    /// "int4" or "none".
    /// ids: one unsigned id per row (default: the row numbers). Refuses NaN, inf, zero rows under
    /// cosine and repeated ids with the CLI's message (ValueError).
    /// index: "flat" (every code scanned), "ivf" (k-means lists of RaBitQ codes, `lists` of
    /// them, default about 4·√rows) or "graph" (a proximity graph over RaBitQ codes, `degree`
    /// neighbours per node, a multiple of 32, default 32; needs a kept copy), as
    /// `bitseek build --index`; `search(effort=...)` is lists probed or the beam width.
    #[staticmethod]
    #[pyo3(signature = (vectors, quantizer=QuantizerArg::Name("rabitq".into()), metric="cosine", keep="f32", ids=None, seed=0x5eed, scale_search="optimal", progress=false, index="flat", lists=None, degree=None),
           text_signature = "(vectors, quantizer='rabitq', metric='cosine', keep='f32', ids=None, seed=24301, scale_search='optimal', progress=False, index='flat', lists=None, degree=None)")]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        vectors: &Bound<'_, PyAny>,
        quantizer: QuantizerArg<'_>,
        metric: &str,
        keep: &str,
        ids: Option<&Bound<'_, PyAny>>,
        seed: u64,
        scale_search: &str,
        progress: bool,
        index: &str,
        lists: Option<usize>,
        degree: Option<usize>,
    ) -> PyResult<Index> {
        // The CLI's refusals, in the binding's words.
        if !["flat", "ivf", "graph"].contains(&index) {
            return Err(PyValueError::new_err(format!(
                "index {index:?} is not an index kind; give \"flat\", \"ivf\" or \"graph\""
            )));
        }
        if lists.is_some() && index != "ivf" {
            return Err(PyValueError::new_err(
                "lists is for index=\"ivf\"; drop it or pass index=\"ivf\"",
            ));
        }
        if degree.is_some() && index != "graph" {
            return Err(PyValueError::new_err(
                "degree is for index=\"graph\"; drop it or pass index=\"graph\"",
            ));
        }
        if lists == Some(0) || degree == Some(0) {
            return Err(PyValueError::new_err("lists and degree must be at least 1"));
        }
        // What to build: a named quantizer (or encoder file), or a trained encoder object.
        enum Codes {
            Named(QuantizerChoice),
            Trained(Box<Learned>),
        }
        let codes = match &quantizer {
            QuantizerArg::Name(name) => Codes::Named(parse(name)?),
            QuantizerArg::Encoder(e) => Codes::Trained(Box::new(e.get().learned.clone())),
        };
        if index != "flat" && matches!(codes, Codes::Trained(_)) {
            return Err(PyValueError::new_err(format!(
                "index={index:?} is built over fitted codes; pass quantizer=\"rabitq\" (or another fitted family), not a trained encoder"
            )));
        }
        let opts = BuildOptions {
            metric: parse::<Metric>(metric)?,
            keep: parse::<Keep>(keep)?,
            seed,
            scale_search: parse::<ScaleSearch>(scale_search)?,
            ..BuildOptions::default()
        };
        let ids = ids.map(arrays::ids).transpose()?;
        let rows = arrays::rows(vectors, "vectors")?;
        let dim = rows.dim;
        let n = rows.rows as u64;
        let vectors = Vectors {
            dim,
            data: rows.into_vec(),
            ids,
        };
        let bar = progress_bar(progress, n, "encoding");
        let index = py.detach(|| {
            let progress = |n: usize| bar.set_position(n as u64);
            let source = Path::new("vectors");
            match codes {
                Codes::Named(choice) if index == "graph" => bitseek_index::Index::build_graph(
                    vectors,
                    source,
                    &opts,
                    &choice,
                    bitseek_index::graph::GraphOptions { degree },
                    &progress,
                ),
                Codes::Named(choice) => bitseek_index::Index::build_with(
                    vectors,
                    source,
                    &opts,
                    &choice,
                    (index == "ivf").then_some(bitseek_index::ivf::IvfOptions { lists }),
                    &progress,
                ),
                Codes::Trained(encoder) => {
                    bitseek_index::Index::build_learned(vectors, source, &opts, *encoder, &progress)
                }
            }
        });
        bar.finish_and_clear();
        Ok(Index {
            inner: Arc::new(index.map_err(index_error)?),
        })
    }

    /// Opens an index file (memory-mapped), written by `save` or `bitseek build`.
    ///
    /// Raises FileNotFoundError / OSError when the file cannot be read and CorruptIndex when it
    /// fails its checks.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Index> {
        let index = py
            .detach(|| bitseek_index::Index::open(&path))
            .map_err(index_error)?;
        Ok(Index {
            inner: Arc::new(index),
        })
    }

    /// Writes the index to `path` (replaced atomically); returns the file's size in bytes.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        let inner = self.inner.clone();
        py.detach(|| inner.save(&path)).map_err(|e| {
            // The CLI's context line, so the message matches `bitseek build`'s.
            index_error_in(&format!("cannot write index {}", path.display()), e)
        })
    }

    /// The best `k` hits for each row of `queries` (2-D float32 or float16).
    ///
    /// Returns `(ids, scores)`, two `(len(queries), k)` arrays (uint64, float32), best first.
    /// Slots past the last hit (k larger than the index) hold id `2**64-1` (`bitseek.NO_ID`)
    /// and score NaN. `oversample`: candidates per hit taken from the codes and rescored from the
    /// kept copy; `rescore=False` ranks by the codes alone; `threads`: None uses every core.
    /// `effort`: lists probed per query by an IVF index (None = its default, a tenth of the
    /// lists; at least 1); a flat index ignores it. The GIL is released while searching.
    #[pyo3(signature = (queries, k=10, oversample=4, rescore=true, threads=None, query_bits=None, symmetric=false, effort=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        oversample: usize,
        rescore: bool,
        threads: Option<usize>,
        query_bits: Option<usize>,
        symmetric: bool,
        effort: Option<usize>,
    ) -> PyResult<IdsScores<'py>> {
        let q = arrays::rows(queries, "queries")?;
        let (data, dim) = (q.as_slice(), q.dim);
        let params = SearchParams {
            k,
            oversample,
            rescore,
            mode: if symmetric {
                QueryMode::Symmetric
            } else {
                QueryMode::Asymmetric
            },
            query_bits,
        };
        let index = &*self.inner;
        let results = py.detach(|| {
            validate_rows(data, dim, None, Path::new("queries"), &index.query_checks())
                .map_err(input_error)?;
            threads::run(threads, || {
                index.search_batch_effort(data, dim, &params, effort, None)
            })?
            .map_err(index_error)
        })?;
        Ok(padded(py, &results, k, |h| (h.id, h.score)))
    }

    /// Number of vectors.
    fn __len__(&self) -> usize {
        self.inner.meta().rows
    }

    /// Values per vector.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.meta().dim
    }

    /// "flat", "ivf" or "graph": what `search(effort=...)` steers.
    #[getter]
    fn kind(&self) -> &'static str {
        if self.inner.ivf_lists().is_some() {
            "ivf"
        } else if self.inner.graph_degree().is_some() {
            "graph"
        } else {
            "flat"
        }
    }

    /// "cosine", "dot" or "l2".
    #[getter]
    fn metric(&self) -> String {
        self.inner.meta().metric.to_string()
    }

    /// The code family, as `bitseek build` names it.
    #[getter]
    fn quantizer(&self) -> String {
        self.inner.meta().quantizer.to_string()
    }

    /// The rescoring copy: "f32", "int8", "fp8", "int4" or "none".
    #[getter]
    fn keep(&self) -> String {
        self.inner.meta().keep.to_string()
    }

    /// Bytes per vector of the codes and their factors (what a scan reads).
    #[getter]
    fn bytes_per_vector(&self) -> usize {
        self.inner.code_bytes_per_vector()
    }

    /// The ids in the index, in ascending order (uint64).
    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<u64>> {
        numpy::PyArray1::from_slice(py, self.inner.ids())
    }

    fn __repr__(&self) -> String {
        let m = self.inner.meta();
        format!(
            "Index({} vectors × {} dims, {}, {}, keep {})",
            m.rows, m.dim, m.quantizer, m.metric, m.keep
        )
    }
}
