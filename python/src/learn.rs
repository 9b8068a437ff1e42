//! `bitseek.train` and `bitseek.Encoder`: learned codes, as `bitseek train` trains them.
//!
//! Training runs `bitseek-learn` on numpy pairs; the encoder it returns is the plain-Rust one
//! `bitseek-codes` applies at query time, saved in the file format `bitseek build --quantizer
//! learned:FILE` reads.

use crate::arrays;
use crate::errors::message;
use crate::index::{parse, progress_bar};
use bitseek_codes::quantizer::Learned;
use bitseek_index::encoder::{load_encoder, save_encoder};
use bitseek_learn::data::Pairs;
use bitseek_learn::train::{train as run_training, Event, TrainConfig, TrainData};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

/// A trained encoder of learned codes: pass it to `Index.build(vectors, quantizer=encoder)`, or
/// save it and build with `quantizer="learned:FILE"` (here or with `bitseek build`).
#[pyclass(frozen, module = "bitseek")]
pub struct Encoder {
    pub(crate) learned: Learned,
    training: serde_json::Value,
}

#[pymethods]
impl Encoder {
    /// Reads an encoder file written by `save` or `bitseek train --out`.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Encoder> {
        let (learned, meta) = py
            .detach(|| load_encoder(&path))
            .map_err(|e| crate::errors::index_error(bitseek_index::IndexError::Encoder(e)))?;
        Ok(Encoder {
            learned,
            training: meta.training,
        })
    }

    /// Writes the encoder (replaced atomically); returns the file's size in bytes.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        let (learned, training) = (&self.learned, &self.training);
        py.detach(|| save_encoder(&path, learned, training.clone()))
            .map_err(|e| crate::errors::index_error(bitseek_index::IndexError::Encoder(e)))
    }

    /// Embedding dimension the encoder takes.
    #[getter]
    fn dim(&self) -> usize {
        self.learned.config.dim
    }

    /// Bits (planes) per code dimension.
    #[getter]
    fn bits(&self) -> usize {
        self.learned.config.bits
    }

    /// Code dimensions.
    #[getter]
    fn dims(&self) -> usize {
        self.learned.config.m
    }

    /// What training reported (validation MRR at the start and of the kept encoder, epochs, ...).
    #[getter]
    fn training<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.training.to_string(),))
    }

    fn __repr__(&self) -> String {
        let c = &self.learned.config;
        format!("Encoder({}-bit × {} dims from {} dims)", c.bits, c.m, c.dim)
    }
}

fn pairs(q: &Bound<'_, PyAny>, d: &Bound<'_, PyAny>) -> PyResult<Pairs> {
    let q = arrays::rows(q, "pairs[0]")?;
    let d = arrays::rows(d, "pairs[1]")?;
    if q.dim != d.dim || q.rows != d.rows {
        return Err(PyValueError::new_err(format!(
            "pairs: queries are {}×{} but documents {}×{}; row i of each must belong together",
            q.rows, q.dim, d.rows, d.dim
        )));
    }
    let dim = q.dim;
    Pairs::new(dim, q.into_vec(), d.into_vec()).map_err(PyValueError::new_err)
}

/// Trains learned codes on embedding pairs `(queries, documents)` (row i of each belong
/// together), like `bitseek train --mode pairs`. `val`: validation pairs (default: a random
/// tenth held out). Returns an `Encoder`. The GIL is released while training.
#[pyfunction]
#[pyo3(signature = (pairs, val=None, bits=2, dims=384, hidden=128, estimator="ste", norm="none", augment="none", epochs=20, patience=3, batch=512, lr=3e-4, near_duplicate=0.95, seed=0, progress=false))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    pairs: (Bound<'_, PyAny>, Bound<'_, PyAny>),
    val: Option<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
    bits: usize,
    dims: usize,
    hidden: usize,
    estimator: &str,
    norm: &str,
    augment: &str,
    epochs: usize,
    patience: usize,
    batch: usize,
    lr: f64,
    near_duplicate: f32,
    seed: u64,
    progress: bool,
) -> PyResult<Encoder> {
    let cfg = TrainConfig {
        m: dims,
        bits,
        hidden,
        estimator: parse(estimator)?,
        norm: parse(norm)?,
        augment: parse(augment)?,
        epochs,
        patience,
        batch,
        lr,
        seed,
        near_duplicate,
        ..Default::default()
    };
    let data = self::pairs(&pairs.0, &pairs.1)?;
    let (data, val) = match val {
        Some((q, d)) => (data, self::pairs(&q, &d)?),
        None => data.hold_out(seed),
    };
    let data = TrainData::Pairs(data);
    let steps = (data.len() / batch.clamp(1, data.len().max(1))).max(1) as u64;
    let bar = progress_bar(progress, steps * epochs as u64, "training");
    let trained = py.detach(|| {
        run_training(&data, &val, &cfg, None, &mut |e| {
            if let Event::Step { .. } = e {
                bar.inc(1)
            }
        })
    });
    bar.finish_and_clear();
    let trained = trained.map_err(|e| {
        let msg = message(&e);
        if matches!(e, bitseek_learn::train::TrainError::Candle(_)) {
            PyRuntimeError::new_err(msg)
        } else {
            PyValueError::new_err(msg)
        }
    })?;
    let mut training = trained.summary(&cfg, data.len(), val.len());
    training.insert("mode".into(), "pairs".into());
    let training = serde_json::Value::Object(training);
    Ok(Encoder {
        learned: trained.encoder,
        training,
    })
}
