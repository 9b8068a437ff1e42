//! Semantic code search over one repository: the library behind `bitseek index` and
//! `bitseek search`.
//!
//! [`index_repo`] walks a repository and cuts it into units (functions, methods, types, text
//! windows — `bitseek-chunk`), embeds them (`bitseek-embed`), and keeps them as a collection in
//! `DIR/.bitseek/` (`bitseek-store`: 1-bit RaBitQ codes, an `f32` copy for rescoring, one payload per
//! unit with its path, lines and signature). Re-indexing is incremental: each file's content hash is
//! kept in the collection's manifest, units of unchanged files keep their stored vectors, only new
//! and changed files are chunked and embedded, and deleted files drop out. The new generation
//! replaces the old one atomically, so an interrupted run leaves the previous index usable.
//!
//! [`CodeIndex`] opens that index and answers questions: the caller embeds them with the same model
//! (checked against the fingerprint in the manifest, [`ModelInfo`]) and [`CodeIndex::search`]
//! returns hits with path and lines, filtered by language or path glob ([`Filter`]), ranked by the
//! embeddings alone or fused with a lexical leg ([`SearchMode`], [`hybrid`]: BM25 over identifier
//! words, reciprocal rank fusion). [`eval`] measures both on query → function pairs
//! (`bitseek eval-code`). [`hit_text`] reads a hit's code and the lines around it back from the
//! repository, reporting files changed since indexing. [`LiveIndex`] keeps an index open across
//! many questions (`bitseek mcp`) and reopens it when a newer generation is committed; [`watch`]
//! turns file events into incremental updates (`bitseek index --watch`).
//!
//! Not here: the model itself and its download (`bitseek-embed`), the chunking rules
//! (`bitseek-chunk`), the on-disk format (`bitseek-store`), terminal output (the `bitseek` binary).

use bitseek_chunk::{SkipReason, Unit};
use bitseek_embed::ModelDir;
use bitseek_store::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub mod adapter;
mod context;
pub mod encoder;
pub mod eval;
mod fingerprint;
pub mod hybrid;
mod live;
mod search;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod update;
mod verify;
mod watch;

pub use adapter::{AdapterChoice, AdapterId};
pub use context::{hit_text, hit_text_in, HitText, SourceFile, Stale, MAX_CONTEXT};
pub use encoder::{CodeEmbedder, Encoder, EncoderHead, HeadId};
pub use hybrid::LexicalFile;
pub use live::LiveIndex;
pub use search::{group_by_file, CodeHit, CodeIndex, Filter, SearchMode, LANGS};
pub use update::{index_repo, IndexOptions, IndexReport};
pub use verify::{verify_index, Verified};
pub use watch::{watch, WatchEvent, WatchOptions};

/// The index directory inside the indexed repository.
pub const INDEX_DIR: &str = ".bitseek";

/// Identifies the unit texts: bump when the chunker's rules or what gets embedded change, so that
/// the next `bitseek index` re-embeds everything (3: JSDoc comments attach through blank lines).
pub const CHUNKER_VERSION: &str = "bitseek-chunk/3+path-text/1";

/// The lock file `bitseek index` holds while it updates an index, so two runs never interleave.
pub const LOCK_FILE: &str = "index.lock";

/// The manifest's `extra.kind` for a code index.
pub const KIND: &str = "code-index";

/// The index directory of `root`: `root/.bitseek`.
pub fn index_dir(root: &Path) -> PathBuf {
    root.join(INDEX_DIR)
}

/// A code index's collection and its manifest extras, from what opening (or verifying) its
/// directory gave: a missing index is [`CodeError::NoIndex`], any other collection is
/// [`CodeError::NotACodeIndex`] saying why.
pub(crate) fn code_collection(
    root: &Path,
    opened: Result<bitseek_store::GenerationCollection, bitseek_store::StoreError>,
) -> Result<(bitseek_store::GenerationCollection, CodeHead), CodeError> {
    let collection = match opened {
        Ok(c) => c,
        Err(bitseek_store::StoreError::NotFound { .. }) => {
            return Err(CodeError::NoIndex {
                root: root.to_owned(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let not_code = |reason: String| CodeError::NotACodeIndex {
        root: root.to_owned(),
        reason,
    };
    let mut extra = CodeHead::deserialize(collection.extra())
        .map_err(|e| not_code(format!("the manifest does not describe a code index ({e})")))?;
    extra.files = match collection.extra().get("files").and_then(|f| f.as_object()) {
        Some(files) => files.len(),
        None => return Err(not_code("the manifest lists no files".into())),
    };
    if extra.kind != KIND {
        return Err(not_code(format!(
            "the collection is a {:?}, not a {KIND:?}",
            extra.kind
        )));
    }
    Ok((collection, extra))
}

/// Why indexing or searching failed. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// `DIR/.bitseek` has no index.
    #[error("no index in {}; run `bitseek index {}`", index_dir(root).display(), root.display())]
    NoIndex { root: PathBuf },
    /// The directory to index is not a directory.
    #[error("{} is not a directory; pass the repository's root directory", path.display())]
    NotADirectory { path: PathBuf },
    /// The collection in `DIR/.bitseek` is not a code index (or one this version cannot read).
    #[error("{}: {reason}; re-run `bitseek index {}`", index_dir(root).display(), root.display())]
    NotACodeIndex { root: PathBuf, reason: String },
    /// The index was built with another model than the one given for the queries.
    #[error(
        "the index in {} was built with model {} ({} dimensions, fingerprint {}), \
         but the questions are embedded with {} ({} dimensions, fingerprint {}); \
         pass --model-dir with the model the index was built with, or re-run `bitseek index {}` with this one",
        index_dir(root).display(), built.name, built.dim, built.fingerprint,
        using.name, using.dim, using.fingerprint, root.display()
    )]
    ModelMismatch {
        root: PathBuf,
        built: Box<ModelInfo>,
        using: Box<ModelInfo>,
    },
    /// The index was built with another code head (or none) than the questions are embedded with.
    #[error(
        "the index in {} was built {}, but the questions are embedded {}; \
         pass the same --encoder as `bitseek index` had, or re-run `bitseek index {}` with this one",
        index_dir(root).display(), built, using, root.display()
    )]
    EncoderMismatch {
        root: PathBuf,
        /// The index's head, in words ([`encoder_words`]).
        built: String,
        /// The questions' head, in words.
        using: String,
    },
    /// The index was built with another adapter (or none) than the questions are embedded with.
    #[error(
        "the index in {} was built {}, but the questions are embedded {}; \
         pass the same --adapter as `bitseek index` had, or re-run `bitseek index {}` with this one",
        index_dir(root).display(), built, using, root.display()
    )]
    AdapterMismatch {
        root: PathBuf,
        /// The index's adapter, in words ([`adapter_words`]).
        built: String,
        /// The questions' adapter, in words.
        using: String,
    },
    /// An adapter file that cannot be used (damaged, not an adapter, made for another model).
    #[error("adapter {}: {reason}; pass an adapter written by scripts/train_adapter.py for this model, or --adapter none", path.display())]
    BadAdapter { path: PathBuf, reason: String },
    /// A code head file that cannot be used.
    #[error("{}: {reason}; pass a head file written by the train_head example, or --encoder none", path.display())]
    BadHead { path: PathBuf, reason: String },
    /// A code head file trained on another model.
    #[error(
        "the code head {} was trained on {head_base}, but the model is {model}; \
         pass a head trained on this model, or --encoder none",
        path.display()
    )]
    HeadModelMismatch {
        path: PathBuf,
        head_base: String,
        model: String,
    },
    /// Another `bitseek index` holds the index's lock.
    #[error(
        "another `bitseek index` is updating {} (it holds {}); wait for it to finish and run again",
        index_dir(root).display(), index_dir(root).join(LOCK_FILE).display()
    )]
    Locked { root: PathBuf },
    /// The embedder returned vectors of another length than it promised.
    #[error("the embedder returned a vector of {found} values, expected {expected}")]
    EmbedShape { expected: usize, found: usize },
    /// `--lang` or `--path` cannot be used.
    #[error("{0}")]
    BadFilter(String),
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] bitseek_embed::Error),
}

pub(crate) fn encoder_words(head: &Option<HeadId>) -> String {
    match head {
        Some(h) => format!(
            "with the code head {} (fingerprint {})",
            h.name, h.fingerprint
        ),
        None => "without a code head (--encoder none)".into(),
    }
}

pub(crate) fn adapter_words(adapter: &Option<AdapterId>) -> String {
    match adapter {
        Some(a) => format!(
            "with the adapter {} (fingerprint {})",
            a.name, a.fingerprint
        ),
        None => "without an adapter (--adapter none)".into(),
    }
}

/// Whether a new index embeds its units in int8 when nobody chose: yes where the 8-bit dense
/// layers run on their AVX-512 VNNI kernel ([`bitseek_embed::int8_fast`]), about twice as fast
/// as `f32` at an MRR cost within 0.5% on both languages' dev sets (README, "Code search");
/// elsewhere the 8-bit path runs on its scalar twin, slower than `f32`, so `f32`. The index
/// records what it used ([`ModelInfo::precision`]), and later updates keep it ([`index_int8`]).
pub fn int8_by_default() -> bool {
    bitseek_embed::int8_fast()
}

/// What to tell whoever updates an index in int8 (`int8`) where the 8-bit layers run on their
/// scalar twin (no AVX-512 VNNI: [`int8_by_default`] is false), many times slower than `f32`, and
/// how to leave it; `None` where int8 is fast or not used. An index keeps its precision on every
/// update ([`index_int8`]), so one made int8 on another machine stays slow here until asked.
pub fn slow_int8_warning(int8: bool) -> Option<&'static str> {
    (int8 && !int8_by_default()).then_some(
        "this index embeds in int8, but this CPU has no AVX-512 VNNI, so its 8-bit layers run on scalar code, far slower than f32; re-embed it in f32 once with `bitseek index --f32` (Python: `update(int8=False)`)",
    )
}

/// The precision an update embeds with: `choice` when given (`--int8` / `--f32`, `int8=`), else
/// the existing index's (switching re-embeds every unit, so it is never done unasked), else
/// [`int8_by_default`].
pub fn index_int8(choice: Option<bool>, existing: Option<&ModelInfo>) -> bool {
    choice
        .or_else(|| existing.map(|m| m.precision == "int8"))
        .unwrap_or_else(int8_by_default)
}

/// Loads the embedding model for indexing and searching: `model_dir`, else `$BITSEEK_MODEL_DIR`,
/// else the one `bitseek model fetch` installs (the embed crate's errors say how to install a
/// missing one), with its fingerprint, and the code head `encoder` names on top
/// ([`encoder::resolve_head`]; recorded in [`ModelInfo::encoder`]). `int8` embeds with the
/// model's 8-bit dense layers.
pub fn load_model(
    model_dir: Option<&Path>,
    int8: bool,
    encoder: &Encoder,
) -> Result<(CodeEmbedder, ModelInfo), CodeError> {
    load_tuned(model_dir, int8, &AdapterChoice::Default, encoder)
}

/// [`load_model`] with the LoRA adapter `adapter` names merged into the model's weights
/// ([`adapter::resolve_adapter`]; recorded in [`ModelInfo::adapter`]) under the head.
pub fn load_tuned(
    model_dir: Option<&Path>,
    int8: bool,
    adapter: &AdapterChoice,
    encoder: &Encoder,
) -> Result<(CodeEmbedder, ModelInfo), CodeError> {
    let (bert, mut info) = load_adapted_model(model_dir, int8, adapter)?;
    let head =
        bitseek_embed::timings::time("head decode", || encoder::resolve_head(encoder, &info))?;
    info.encoder = head.as_ref().map(|h| h.id.clone());
    Ok((CodeEmbedder::new(bert, head), info))
}

/// [`load_model`] without a head: the sentence model alone and its identity.
pub fn load_base_model(
    model_dir: Option<&Path>,
    int8: bool,
) -> Result<(bitseek_embed::BertEmbedder, ModelInfo), CodeError> {
    load_adapted_model(model_dir, int8, &AdapterChoice::None)
}

/// [`load_model`] without a head: the sentence model with the adapter `adapter` names merged into
/// its weights, and their identity.
pub fn load_adapted_model(
    model_dir: Option<&Path>,
    int8: bool,
    adapter: &AdapterChoice,
) -> Result<(bitseek_embed::BertEmbedder, ModelInfo), CodeError> {
    use bitseek_embed::Embedder;
    let path = bitseek_embed::resolve_model_dir(model_dir)?;
    let dir = ModelDir::open(&path)?;
    let options = bitseek_embed::EmbedOptions {
        int8,
        ..Default::default()
    };
    // The fingerprint names the base weights, which decide the default adapter; the width is
    // the loaded model's.
    let mut info = bitseek_embed::timings::time("model fingerprint", || ModelInfo::of(&dir, 0))?;
    let adapter = adapter::resolve_adapter(adapter, &info)?;
    // The merged layers are kept in the cache: later processes map them (bitseek-embed's
    // `prepared` module) instead of hashing the base weights and merging again.
    let prepared_dir = bitseek_embed::default_prepared_dir();
    let embedder = bitseek_embed::BertEmbedder::load_prepared(
        &dir,
        options,
        adapter.as_ref().map(|a| &a.0),
        prepared_dir.as_deref(),
    )
    .map_err(|e| match (&adapter, e) {
        (Some((a, _)), e @ bitseek_embed::Error::Adapter { .. }) => {
            adapter::bad_adapter(a.path().to_owned(), e)
        }
        (_, e) => CodeError::Embed(e),
    })?;
    info.dim = embedder.dim();
    info.adapter = adapter.map(|a| a.1);
    if int8 {
        info.precision = "int8".into();
    }
    Ok((embedder, info))
}

/// Which model made an index's vectors: queries must be embedded by the same one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model directory's name (`all-MiniLM-L6-v2`).
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// xxh3-128 over the model's files (config, tokenizer, sentence-transformers settings, weights),
    /// 32 hex digits: equal fingerprints embed equally.
    pub fingerprint: String,
    /// How the units were embedded: `f32`, or `int8` (the model's 8-bit dense layers, about 2x
    /// faster with AVX-512 VNNI, MRR within 0.5% of f32 on the dev sets; the default there,
    /// [`int8_by_default`]). Questions are embedded in `f32` either way; changing it re-embeds
    /// everything on the next `bitseek index`.
    #[serde(default = "f32_precision")]
    pub precision: String,
    /// The code head applied on top of the model ([`encoder`]); absent: none (the model's
    /// vectors alone, as every index built before the head existed). Changing it re-embeds
    /// everything on the next `bitseek index`; questions must use the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<HeadId>,
    /// The LoRA adapter merged into the model's weights ([`adapter`]); absent: none (the
    /// weights as fetched, as every index built before adapters existed). Changing it re-embeds
    /// everything on the next `bitseek index`; questions must use the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterId>,
}

fn f32_precision() -> String {
    "f32".into()
}

impl ModelInfo {
    /// The identity of the model in `dir`, whose vectors have `dim` values. Hashes the files in
    /// place through a read-only mapping (xxh3 runs at memory speed; reading the 87 MB of weights
    /// into fresh memory instead cost more than the hash on every `bitseek search`), once: the
    /// result is recorded in the user's cache, keyed by the files' identities ([`fingerprint`]).
    pub fn of(dir: &ModelDir, dim: usize) -> Result<ModelInfo, CodeError> {
        let files = [
            dir.config_path(),
            dir.tokenizer_path(),
            dir.path().join("sentence_bert_config.json"),
            dir.weights_path(),
        ];
        // sentence_bert_config.json is optional.
        let optional = |p: &Path| p.ends_with("sentence_bert_config.json");
        let records = fingerprint::records_dir();
        let fingerprint = fingerprint::fingerprint(&files, optional, records.as_deref())?;
        let canonical = std::fs::canonicalize(dir.path()).unwrap_or_else(|_| dir.path().to_owned());
        let name = canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| canonical.display().to_string());
        Ok(ModelInfo {
            name,
            dim,
            fingerprint,
            precision: f32_precision(),
            encoder: None,
            adapter: None,
        })
    }

    /// The identity of the vectors a code head takes as input: the model's fingerprint, or with
    /// an adapter, xxh3-128 of the model's and the adapter's fingerprints (a head trained on
    /// adapted vectors records this as its `base_fingerprint`).
    pub fn vectors_fingerprint(&self) -> String {
        match &self.adapter {
            None => self.fingerprint.clone(),
            Some(a) => format!(
                "{:032x}",
                xxhash_rust::xxh3::xxh3_128(
                    format!("{}+lora:{}", self.fingerprint, a.fingerprint).as_bytes()
                )
            ),
        }
    }
}

/// What the index keeps per unit (one payload per row of the collection).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnitPayload {
    /// Relative to the indexed root, `/`-separated.
    pub path: String,
    /// `python`, `rust`, … `text` (see [`bitseek_chunk::Lang::name`]).
    pub lang: String,
    /// `function`, `method`, `class`, … `window`.
    pub kind: String,
    pub name: String,
    pub start_line: usize,
    pub end_line: usize,
    pub doc_start_line: usize,
    pub signature: String,
    /// The content hash of the file the unit came from (as in [`CodeExtra::files`]).
    pub file_hash: String,
    /// The enclosing type, class or function (absent in indexes built before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Test, benchmark or example code ([`bitseek_chunk::Unit::test`]; in indexes built before it
    /// was kept, search decides by the path alone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

impl UnitPayload {
    fn of(unit: &Unit, path: &str, file_hash: &str) -> UnitPayload {
        UnitPayload {
            path: path.to_owned(),
            lang: unit.lang.name().to_owned(),
            kind: unit.kind.name().to_owned(),
            name: unit.name.clone(),
            start_line: unit.start_line,
            end_line: unit.end_line,
            doc_start_line: unit.doc_start_line,
            signature: unit.signature.clone(),
            file_hash: file_hash.to_owned(),
            parent: unit.parent.clone(),
            test: unit.test,
        }
    }
}

/// The code index's part of the collection manifest (`extra`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CodeExtra {
    /// Always [`KIND`].
    pub kind: String,
    pub model: ModelInfo,
    /// [`CHUNKER_VERSION`] and the chunk options the units were cut with.
    pub chunker: String,
    /// Every indexed file (relative, `/`-separated) and the xxh3-128 of its bytes.
    pub files: BTreeMap<String, String>,
    /// The BM25 file of the lexical leg (absent in indexes built before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical: Option<LexicalFile>,
}

/// What opening a code index reads of [`CodeExtra`]: all but the per-file hashes, which only
/// `bitseek index` needs (building them cost an open more than everything else at 100k units);
/// they are counted in place.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct CodeHead {
    pub kind: String,
    pub model: ModelInfo,
    #[serde(default)]
    pub lexical: Option<LexicalFile>,
    /// How many files [`CodeExtra::files`] lists.
    #[serde(skip)]
    pub files: usize,
}

/// A path as stored in payloads: relative, `/`-separated.
pub(crate) fn path_key(path: &Path) -> String {
    let s = path.to_string_lossy();
    if std::path::MAIN_SEPARATOR == '/' {
        s.into_owned()
    } else {
        s.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

/// The hash of a file's bytes as kept in the manifest.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// What was left out of an index and why, for `--verbose` listings.
pub type Skipped = Vec<(PathBuf, SkipReason)>;
