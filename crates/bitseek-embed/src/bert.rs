use crate::adapter::Adapter;
use crate::encoder::{BertConfig, Encoder};
use crate::model_dir::read_json;
use crate::prepared::PreparedCopy;
use crate::{timings, Embedder, Error, ModelDir, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// How [`BertEmbedder`] batches its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Texts per forward pass (packed without padding into one matrix). Texts are sorted by token
    /// count first, so batches take similar time; batches run in parallel.
    pub batch_size: usize,
    /// Overrides the token window (otherwise `max_seq_length` from `sentence_bert_config.json`, else
    /// the model's `max_position_embeddings`). Never more than `max_position_embeddings`.
    pub max_tokens: Option<usize>,
    /// Runs the dense layers in 8-bit integers (dynamic quantization, the `int8` module): faster
    /// on CPUs with AVX-512 VNNI, at a small cost in accuracy (`bitseek model bench --int8`).
    pub int8: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_tokens: None,
            int8: false,
        }
    }
}

/// A sentence-embedding BERT model on the CPU: the model's tokenizer truncated to the model's
/// window and never padded, the encoder in `f32` (see the `encoder` module: texts packed without
/// padding), mean pooling over each text's tokens, and L2 normalisation (what sentence-transformers
/// does for all-MiniLM-L6-v2 and its relatives).
pub struct BertEmbedder {
    encoder: Encoder,
    tokenizer: WindowedTokenizer,
    dim: usize,
    vocab: usize,
    batch_size: usize,
    /// The prepared copy the adapted layers were mapped from, when one was.
    prepared: Option<PathBuf>,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("dim", &self.dim)
            .field("max_tokens", &self.tokenizer.max_tokens)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl BertEmbedder {
    /// Loads the model in `dir` with the default [`EmbedOptions`].
    pub fn load(dir: &ModelDir) -> Result<Self> {
        Self::load_with(dir, EmbedOptions::default())
    }

    /// Loads the model in `dir`.
    pub fn load_with(dir: &ModelDir, options: EmbedOptions) -> Result<Self> {
        Self::load_adapted(dir, options, None)
    }

    /// Loads the model in `dir` with `adapter`'s deltas merged into its weights (the `adapter`
    /// module): embedding then costs what it costs without one. An adapter trained for other
    /// weights or shapes is refused with [`Error::Adapter`].
    pub fn load_adapted(
        dir: &ModelDir,
        options: EmbedOptions,
        adapter: Option<&Adapter>,
    ) -> Result<Self> {
        Self::load_prepared(dir, options, adapter, None)
    }

    /// [`BertEmbedder::load_adapted`], keeping the merged layers in `prepared_dir` (a cache
    /// folder, created when missing): the first load writes them there, later loads map them
    /// instead of hashing the base weights and merging again (the `prepared` module). The
    /// embeddings are the same bit for bit either way.
    pub fn load_prepared(
        dir: &ModelDir,
        options: EmbedOptions,
        adapter: Option<&Adapter>,
        prepared_dir: Option<&Path>,
    ) -> Result<Self> {
        let start = std::time::Instant::now();
        let config_path = dir.config_path();
        let config: BertConfig = read_json(&config_path)?;
        timings::record("config.json", start);
        config.check().map_err(|message| Error::Unsupported {
            path: config_path.clone(),
            message: format!("{message}; bitseek-embed runs BERT-family encoders only"),
        })?;
        let max_tokens = options
            .max_tokens
            .or(dir.max_seq_length())
            .unwrap_or(config.max_position_embeddings)
            .clamp(2, config.max_position_embeddings);
        let tokenizer = timings::time("tokenizer load", || {
            WindowedTokenizer::open(&dir.tokenizer_path(), max_tokens)
        })?;
        let start = std::time::Instant::now();
        let weights_path = dir.weights_path();
        // A missing or unreadable file is an I/O error naming it, not a parse error.
        std::fs::File::open(&weights_path).map_err(Error::io(&weights_path))?;
        let prepared = prepared_dir
            .zip(adapter)
            .and_then(|(d, a)| PreparedCopy::new(d, &weights_path, a));
        let (mut encoder, from_prepared) =
            Encoder::load(&weights_path, &config, adapter, prepared.as_ref())?;
        if options.int8 {
            encoder.quantize();
        }
        timings::record("weights map + encoder set-up", start);
        Ok(Self {
            encoder,
            tokenizer,
            dim: config.hidden_size,
            vocab: config.vocab_size,
            batch_size: options.batch_size.max(1),
            prepared: prepared
                .filter(|_| from_prepared)
                .map(|p| p.path().to_path_buf()),
        })
    }

    /// The prepared copy of the adapted layers this model was loaded from ([`load_prepared`]
    /// found it intact); `None` when they were merged at load, or without an adapter.
    ///
    /// [`load_prepared`]: BertEmbedder::load_prepared
    pub fn prepared_copy(&self) -> Option<&Path> {
        self.prepared.as_deref()
    }

    /// The token window: longer texts are truncated to this many tokens, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.tokenizer.max_tokens
    }

    /// The tokenizer, with the window applied.
    pub fn tokenizer(&self) -> &WindowedTokenizer {
        &self.tokenizer
    }
}

impl Embedder for BertEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = timings::time("tokenize", || self.tokenizer.encode(texts))?;
        if let Some(&bad) = ids.iter().flatten().find(|&&id| id as usize >= self.vocab) {
            return Err(Error::Tokenizer {
                path: self.tokenizer.path.clone(),
                message: format!(
                    "token id {bad} is past the model's vocab_size {}: tokenizer.json and config.json are from different models",
                    self.vocab
                ),
            });
        }
        // Sort by token count so that batches hold texts of similar length and take similar time.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| (ids[i].len(), i));
        let batches: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        // Batches run in parallel on rayon's pool, one core each.
        let start = std::time::Instant::now();
        let embedded: Vec<Vec<Vec<f32>>> = batches
            .par_iter()
            .map(|batch| {
                let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
                self.encoder.embed(&rows)
            })
            .collect();
        timings::record("encoder forward", start);
        let mut out = vec![Vec::new(); texts.len()];
        for (batch, vectors) in batches.iter().zip(embedded) {
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// A model's `tokenizer.json` with its baked-in truncation and padding replaced: truncation at the
/// model's window (special tokens included), and no padding (batches are padded to their longest
/// text by the embedder).
pub struct WindowedTokenizer {
    inner: Tokenizer,
    max_tokens: usize,
    path: PathBuf,
}

impl std::fmt::Debug for WindowedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedTokenizer")
            .field("path", &self.path)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl WindowedTokenizer {
    /// Loads `tokenizer.json` from `path` and applies a window of `max_tokens` tokens.
    pub fn open(path: &Path, max_tokens: usize) -> Result<Self> {
        let err = |message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let mut inner = crate::tokenizer_file::load(path).map_err(err)?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            inner,
            max_tokens,
            path: path.to_path_buf(),
        })
    }

    /// The window, in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of each text, with the special tokens, truncated to the window and unpadded.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .inner
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }
}
