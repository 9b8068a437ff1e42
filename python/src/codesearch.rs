//! `bitseek.CodeIndex`: `bitseek index` and `bitseek search` over one repository, in process.
//!
//! The model is loaded once per object (on first use) with the loader the CLI uses, so an index
//! built here and one built by `bitseek index` are the same files and answer the same. Searches
//! go through a [`LiveIndex`], as `bitseek search` and `bitseek mcp` do: an update committed by
//! another process (`bitseek index`, `--watch`) is picked up by the next search, and a search
//! that loses its generation to a commit is retried on the new one.

use crate::errors::message;
use crate::index::progress_bar;
use bitseek_codesearch::{
    index_repo, load_tuned, AdapterChoice, CodeEmbedder, CodeError, Encoder, Filter, IndexOptions,
    LiveIndex, ModelInfo, SearchMode,
};
use bitseek_embed::Embedder;
use pyo3::exceptions::{
    PyFileNotFoundError, PyOSError, PyRuntimeError, PyRuntimeWarning, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn code_error(e: CodeError) -> PyErr {
    let msg = message(&e);
    match e {
        CodeError::NoIndex { .. } | CodeError::NotADirectory { .. } => {
            PyFileNotFoundError::new_err(msg)
        }
        CodeError::NotACodeIndex { .. } => crate::errors::CorruptIndex::new_err(msg),
        CodeError::ModelMismatch { .. }
        | CodeError::EncoderMismatch { .. }
        | CodeError::AdapterMismatch { .. }
        | CodeError::BadAdapter { .. }
        | CodeError::BadHead { .. }
        | CodeError::HeadModelMismatch { .. }
        | CodeError::BadFilter(_) => PyValueError::new_err(msg),
        CodeError::Io { .. } | CodeError::Locked { .. } => PyOSError::new_err(msg),
        CodeError::Store(s) => crate::errors::store_error(s),
        CodeError::Embed(_) => PyOSError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

type Model = Arc<(CodeEmbedder, ModelInfo)>;

/// Semantic code search over one repository; its index is `path/.bitseek`, the one
/// `bitseek index` writes.
///
/// model_dir: a BERT-family model directory instead of $BITSEEK_MODEL_DIR or the one
/// `bitseek model fetch` installs.
/// encoder: the code head, as `bitseek index --encoder`: "default" (the head shipped with
/// bitseek, when the model is the one it was trained on), "none" (the model alone), or a head
/// file. Searching an index built with another head is refused, naming both.
/// adapter: the LoRA adapter merged into the model, as `bitseek index --adapter`: "default",
/// "builtin" (the one shipped with bitseek), "none", or an adapter file; likewise part of the
/// index's model identity.
#[pyclass(frozen, module = "bitseek")]
pub struct CodeIndex {
    root: PathBuf,
    model_dir: Option<PathBuf>,
    encoder: Encoder,
    adapter: AdapterChoice,
    /// The f32 model (questions, f32 indexes) and its 8-bit twin (updating an int8 index).
    model: Mutex<Option<Model>>,
    model_int8: Mutex<Option<Model>>,
    /// Shared by searches without a lock: they run side by side.
    live: LiveIndex,
}

impl CodeIndex {
    fn model(&self, py: Python<'_>, int8: bool) -> PyResult<Model> {
        let cell = if int8 { &self.model_int8 } else { &self.model };
        let mut slot = cell
            .lock()
            .map_err(|_| PyRuntimeError::new_err("a previous model load panicked"))?;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let dir = self.model_dir.as_deref();
        let m = Arc::new(
            py.detach(|| load_tuned(dir, int8, &self.adapter, &self.encoder))
                .map_err(code_error)?,
        );
        *slot = Some(m.clone());
        Ok(m)
    }
}

#[pymethods]
impl CodeIndex {
    #[new]
    #[pyo3(signature = (path, model_dir=None, encoder="default", adapter="default"))]
    fn new(
        path: PathBuf,
        model_dir: Option<PathBuf>,
        encoder: &str,
        adapter: &str,
    ) -> PyResult<CodeIndex> {
        let encoder: Encoder = encoder
            .parse()
            .map_err(|e: String| PyValueError::new_err(format!("encoder: {e}")))?;
        let adapter: AdapterChoice = adapter
            .parse()
            .map_err(|e: String| PyValueError::new_err(format!("adapter: {e}")))?;
        Ok(CodeIndex {
            live: LiveIndex::new(&path),
            root: path,
            model_dir,
            encoder,
            adapter,
            model: Mutex::new(None),
            model_int8: Mutex::new(None),
        })
    }

    /// Builds or updates the index like `bitseek index`: re-embeds only files whose content
    /// changed and drops deleted ones. Returns counts (units, files, files_embedded, ...).
    /// `int8` embeds with the model's 8-bit dense layers like `bitseek index --int8` (`False`:
    /// `--f32`); by default an existing index keeps its precision (switching re-embeds every
    /// unit) and a new one is int8 where the CPU has AVX-512 VNNI, f32 elsewhere, as
    /// `bitseek index`.
    #[pyo3(signature = (batch=256, progress=false, int8=None))]
    fn update<'py>(
        &self,
        py: Python<'py>,
        batch: usize,
        progress: bool,
        int8: Option<bool>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if batch == 0 {
            return Err(PyValueError::new_err(
                "batch: 0 is not allowed; use 1 or more",
            ));
        }
        let int8 = match int8 {
            Some(b) => b,
            None => py.detach(|| {
                let existing = self.live.index().ok();
                bitseek_codesearch::index_int8(None, existing.as_ref().map(|i| i.model()))
            }),
        };
        if let Some(w) = bitseek_codesearch::slow_int8_warning(int8) {
            let msg = std::ffi::CString::new(w).expect("the warning holds no NUL");
            PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)?;
        }
        let model = self.model(py, int8)?;
        let opts = IndexOptions {
            batch,
            ..IndexOptions::default()
        };
        let bar = progress_bar(progress, 0, "embedding");
        let root = &self.root;
        let report = py
            .detach(|| {
                index_repo(root, &model.0.units(), &model.1, &opts, &|done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
            })
            .map_err(code_error)?;
        bar.finish_and_clear();
        let d = PyDict::new(py);
        d.set_item("index", report.dir)?;
        d.set_item("units", report.units)?;
        d.set_item("files", report.files)?;
        d.set_item("files_embedded", report.files_embedded)?;
        d.set_item("files_reused", report.files_reused)?;
        d.set_item("files_deleted", report.files_deleted)?;
        d.set_item("units_embedded", report.units_embedded)?;
        d.set_item("units_reused", report.units_reused)?;
        d.set_item("skipped", report.skipped.len())?;
        d.set_item("generation", report.generation)?;
        d.set_item("bytes", report.bytes)?;
        Ok(d)
    }

    /// The best `k` units for `question`, as `bitseek search --json` lists them: dicts with
    /// path, line, end_line, score, signature (and lang, kind, name). `lang` / `path` filter like
    /// `--lang` / `--path`; `semantic_only` ranks by the embeddings alone; `tests` ranks test,
    /// benchmark and example code plainly like `--tests` (by default it ranks below library code
    /// of the same score unless the question asks for tests). Answers from the newest committed
    /// generation of the index, whoever committed it.
    #[pyo3(signature = (question, k=10, lang=None, path=None, semantic_only=false, tests=false))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        question: &str,
        k: usize,
        lang: Option<&str>,
        path: Option<&str>,
        semantic_only: bool,
        tests: bool,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        if k == 0 {
            return Err(PyValueError::new_err("k: 0 is not allowed; use 1 or more"));
        }
        let filter = Filter::new(lang, path)
            .map_err(code_error)?
            .with_tests(tests);
        // The index first, then the model, as `bitseek search` does: a missing index is reported
        // even where no model is installed.
        py.detach(|| self.live.index().map(|_| ()))
            .map_err(code_error)?;
        let model = self.model(py, false)?;
        let mode = if semantic_only {
            SearchMode::Semantic
        } else {
            SearchMode::Hybrid
        };
        let mut results = py
            .detach(|| {
                let vectors = model.0.questions().embed(&[question])?;
                let live = &self.live;
                live.index()?.check_model(&model.1)?;
                live.search_with(&[question], &vectors, k, &filter, mode)
            })
            .map_err(code_error)?;
        let hits = results.pop().unwrap_or_default();
        hits.into_iter()
            .map(|h| {
                let d = PyDict::new(py);
                d.set_item("path", h.path)?;
                d.set_item("line", h.line)?;
                d.set_item("end_line", h.end_line)?;
                d.set_item("score", h.score)?;
                d.set_item("signature", h.signature)?;
                d.set_item("lang", h.lang)?;
                d.set_item("kind", h.kind)?;
                d.set_item("name", h.name)?;
                Ok(d)
            })
            .collect()
    }

    /// The repository's root.
    #[getter]
    fn path(&self) -> PathBuf {
        self.root.clone()
    }
}
