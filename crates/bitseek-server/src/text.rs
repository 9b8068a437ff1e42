//! `"text"` searches: the question is embedded on the server with the code-search model
//! (all-MiniLM-L6-v2 unless `--model-dir` says otherwise), loaded on the first text search and
//! kept. A failed load is not kept, so installing the model with `bitseek model fetch` while the
//! server runs makes the next text search work.

use crate::ApiError;
use bitseek_embed::{BertEmbedder, Embedder, ModelDir};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub(crate) struct TextModel {
    dir: Option<PathBuf>,
    loaded: Mutex<Option<Arc<BertEmbedder>>>,
}

impl TextModel {
    /// `loaded`: a model already loaded from `dir` (by the code search), kept instead of a
    /// second copy.
    pub(crate) fn new(dir: Option<PathBuf>, loaded: Option<Arc<BertEmbedder>>) -> Self {
        TextModel {
            dir,
            loaded: Mutex::new(loaded),
        }
    }

    /// Whether the model has been loaded (for `/health` and `/metrics`).
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The model, loading it on first use (blocking: call from the blocking pool). Concurrent
    /// first callers wait for one load.
    fn get(&self) -> Result<Arc<BertEmbedder>, ApiError> {
        let mut slot = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let load = || -> bitseek_embed::Result<BertEmbedder> {
            let path = bitseek_embed::resolve_model_dir(self.dir.as_deref())?;
            BertEmbedder::load(&ModelDir::open(path)?)
        };
        let model = Arc::new(load().map_err(|e| {
            ApiError::bad_request(format!(
                "text search needs the embedding model, which did not load: {e}; or send \"vector\" instead of \"text\""
            ))
        })?);
        *slot = Some(model.clone());
        Ok(model)
    }

    /// Embeds `texts` for a collection of dimension `dim` (blocking). Refuses collections whose
    /// dimension is not the model's: their vectors were not made by this model.
    pub(crate) fn embed(
        &self,
        collection: &str,
        dim: usize,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let model = self.get()?;
        if model.dim() != dim {
            return Err(ApiError::bad_request(format!(
                "collection {collection} holds {dim}-dimensional vectors, but the text model makes {}-dimensional ones, so its vectors were not made by this model: search it with \"vector\", or put text-searchable points in a collection of dimension {} embedded with the same model",
                model.dim(),
                model.dim()
            )));
        }
        if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(ApiError::bad_request(format!(
                "text {i} is empty: send a question in words"
            )));
        }
        model
            .embed(texts)
            .map_err(|e| ApiError::internal(format!("embedding the question failed: {e}")))
    }
}
