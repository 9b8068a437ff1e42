//! `bitseek.Db` and `bitseek.Collection`: the server's collections (`bitseek-store`) in process.
//!
//! The store checks every vector, query, parameter and filter; this module only moves arrays and
//! JSON across. Payloads and filters cross as JSON text (Python's `json` on this side, serde on
//! the other), so a payload reads back exactly as the HTTP API returns it.

use crate::arrays::{self, padded};
use crate::errors::store_error;
use crate::index::parse;
use bitseek_store::{CollectionConfig, Durability, Filter, LiveCollection, Point, SearchRequest};
use numpy::PyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

fn to_json(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    py.import("json")?.call_method1("dumps", (obj,))?.extract()
}

fn from_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    from_json(py, &text)
}

/// `(ids, scores, payloads)` of a collection search.
type Searched<'py> = (
    Bound<'py, PyArray2<u64>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyAny>,
);

/// A directory of collections, in the format `bitseek serve` serves.
#[pyclass(frozen, module = "bitseek")]
pub struct Db {
    inner: Arc<bitseek_store::Db>,
}

#[pymethods]
impl Db {
    /// Opens (or creates) the database directory `path`, recovering each collection's log.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Db> {
        let db = py
            .detach(|| bitseek_store::Db::open(&path))
            .map_err(store_error)?;
        Ok(Db {
            inner: Arc::new(db),
        })
    }

    /// Creates an empty collection; ValueError if the name is taken or a setting is invalid.
    /// `index`: "flat" (default), "ivf" or "graph", built in the background for segments of at
    /// least `index_min_rows` rows (searched flat until it is ready); `index_degree`: a graph's
    /// neighbours per node (a multiple of 32 up to 128; default 32).
    #[pyo3(signature = (name, dim, metric="cosine", quantizer="rabitq", keep="f32", index="flat", index_min_rows=bitseek_store::db::DEFAULT_INDEX_MIN_ROWS, index_degree=None))]
    #[allow(clippy::too_many_arguments)]
    fn create_collection(
        &self,
        py: Python<'_>,
        name: &str,
        dim: usize,
        metric: &str,
        quantizer: &str,
        keep: &str,
        index: &str,
        index_min_rows: usize,
        index_degree: Option<usize>,
    ) -> PyResult<Collection> {
        let kind: bitseek_store::IndexKind = serde_json::from_value(Value::String(index.into()))
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "index {index:?} is not an index kind; give \"flat\", \"ivf\" or \"graph\""
                ))
            })?;
        let config = CollectionConfig {
            dim,
            metric: parse(metric)?,
            quantizer: quantizer.to_string(),
            keep: parse(keep)?,
            durability: Durability::default(),
            index: bitseek_store::SegmentIndex {
                kind,
                min_rows: index_min_rows,
                degree: index_degree,
            },
        };
        let db = &self.inner;
        let c = py.detach(|| db.create(name, config)).map_err(store_error)?;
        Ok(Collection { inner: c })
    }

    /// The collection called `name`; KeyError if there is none.
    fn __getitem__(&self, name: &str) -> PyResult<Collection> {
        let c = self.inner.get(name).map_err(store_error)?;
        Ok(Collection { inner: c })
    }

    fn __contains__(&self, name: &str) -> bool {
        self.inner.get(name).is_ok()
    }

    /// The collections' names, sorted.
    fn collections(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.list().into_iter().map(|i| i.name).collect();
        names.sort();
        names
    }

    /// Deletes a collection and its files.
    fn drop_collection(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let db = &self.inner;
        py.detach(|| db.drop_collection(name)).map_err(store_error)
    }
}

/// A collection: upserts and deletes through a write-ahead log, searched with payload filters.
#[pyclass(frozen, module = "bitseek")]
pub struct Collection {
    inner: Arc<LiveCollection>,
}

#[pymethods]
impl Collection {
    /// The collection's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// Values per vector.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.info().config.dim
    }

    /// "cosine", "dot" or "l2".
    #[getter]
    fn metric(&self) -> String {
        self.inner.info().config.metric.to_string()
    }

    /// Live points.
    fn __len__(&self) -> usize {
        self.inner.info().points
    }

    /// The collection's state (points, segments, generation, ...) as the HTTP API reports it.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.info())
    }

    /// Inserts or replaces one point per row of `vectors`, with `ids` (one per row) and
    /// `payloads` (None, or one JSON-serialisable value per row). Durable on return; returns the
    /// write's sequence number. Nothing is written when any point is refused.
    #[pyo3(signature = (ids, vectors, payloads=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        payloads: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let ids = arrays::ids(ids)?;
        let rows = arrays::rows(vectors, "vectors")?;
        if ids.len() != rows.rows {
            return Err(PyValueError::new_err(format!(
                "vectors: {} ids for {} vectors; give exactly one id per vector",
                ids.len(),
                rows.rows
            )));
        }
        let payloads: Vec<Value> = match payloads {
            None => vec![Value::Null; ids.len()],
            Some(p) => serde_json::from_str(&to_json(py, p)?)
                .map_err(|e| PyValueError::new_err(format!("payloads: {e}")))?,
        };
        if payloads.len() != ids.len() {
            return Err(PyValueError::new_err(format!(
                "payloads: {} payloads for {} vectors; give one per vector (or None)",
                payloads.len(),
                ids.len()
            )));
        }
        let dim = rows.dim;
        let data = rows.as_slice();
        let c = &self.inner;
        py.detach(|| {
            let points = ids
                .iter()
                .zip(data.chunks_exact(dim.max(1)))
                .zip(payloads)
                .map(|((&id, v), payload)| Point {
                    id,
                    vector: v.to_vec(),
                    payload,
                })
                .collect();
            c.upsert(points)
        })
        .map_err(store_error)
    }

    /// Deletes `ids`; returns how many of them existed.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = arrays::ids(ids)?;
        let c = &self.inner;
        py.detach(|| c.delete(&ids)).map_err(store_error)
    }

    /// The live point `id` as `{"id", "vector", "payload"}` (vector: the stored float32 vector,
    /// normalised under cosine, or None without an f32 copy), or None.
    fn get<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(r) = self.inner.get(id) else {
            return Ok(None);
        };
        let d = pyo3::types::PyDict::new(py);
        d.set_item("id", r.id)?;
        d.set_item(
            "vector",
            r.vector
                .map(|v| numpy::PyArray1::from_vec(py, v).into_any()),
        )?;
        d.set_item("payload", to_py(py, &r.payload)?)?;
        Ok(Some(d.into_any()))
    }

    /// The best `k` live points for each row of `queries`: `(ids, scores, payloads)`, ids and
    /// scores `(len(queries), k)` arrays, payloads a list of lists. Slots past the last hit
    /// (fewer than k points, or fewer passing the filter) hold id `2**64-1`, score NaN and
    /// payload None. `filter`: `{"field": f, "eq": v}`, `{"field": f, "in": [..]}` or
    /// `{"all": [filter, ..]}`, as in the HTTP API. `effort`: lists probed per query in segments
    /// that carry an IVF (None = the index's default, at least 1; flat segments ignore it).
    #[pyo3(signature = (queries, k=10, oversample=None, filter=None, effort=None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        oversample: Option<f32>,
        filter: Option<&Bound<'py, PyAny>>,
        effort: Option<usize>,
    ) -> PyResult<Searched<'py>> {
        let filter: Option<Filter> = match filter {
            None => None,
            Some(f) => Some(
                serde_json::from_str(&to_json(py, f)?)
                    .map_err(|e| PyValueError::new_err(format!("invalid filter: {e}")))?,
            ),
        };
        let req = SearchRequest {
            k,
            oversample,
            filter,
            effort,
        };
        let q = arrays::rows(queries, "queries")?;
        let (data, dim) = (q.as_slice(), q.dim);
        let c = &self.inner;
        let results = py
            .detach(|| c.search_rows(data, dim, &req))
            .map_err(store_error)?;
        let (ids, scores) = padded(py, &results, k, |h| (h.id, h.score));
        let payloads: Vec<Vec<&Value>> = results
            .iter()
            .map(|hits| hits.iter().map(|h| &h.payload).collect())
            .collect();
        let payloads = to_py(py, &payloads)?;
        for row in payloads.cast::<PyList>()?.iter() {
            let row = row.cast_into::<PyList>()?;
            while row.len() < k {
                row.append(py.None())?;
            }
        }
        Ok((ids, scores, payloads))
    }

    /// Merges segments and the memtable into one segment without dead rows; returns the report.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = &self.inner;
        let report = py.detach(|| c.compact()).map_err(store_error)?;
        to_py(py, &report)
    }

    /// Makes every acknowledged write durable now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let c = &self.inner;
        py.detach(|| c.flush()).map_err(store_error)
    }

    /// Moves the memtable into a new segment now.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        let c = &self.inner;
        py.detach(|| c.checkpoint()).map_err(store_error)
    }

    /// Waits until every segment due for its index (see `create_collection(index=...)`) has it;
    /// returns why the last failed build failed, or None. Searches never need this: a segment
    /// is searched flat until its index is ready.
    fn wait_for_builds(&self, py: Python<'_>) -> Option<String> {
        let c = &self.inner;
        py.detach(|| c.wait_for_builds())
    }

    fn __repr__(&self) -> String {
        let i = self.inner.info();
        format!(
            "Collection({:?}, {} points × {} dims, {}, {})",
            i.name, i.points, i.config.dim, i.config.quantizer, i.config.metric
        )
    }
}
