//! Building and incrementally updating the index in `DIR/.bitseek`.

use crate::hybrid::file::{self as lexical_file, Checks};
use crate::hybrid::{term_counts, Bm25, Names};
use crate::{
    content_hash, index_dir, path_key, CodeError, CodeExtra, ModelInfo, Skipped, UnitPayload,
    CHUNKER_VERSION, KIND, LOCK_FILE,
};
use bitseek_chunk::{chunk_file_with, walk, ChunkOptions, SkipReason, Unit, WalkOptions};
use bitseek_embed::Embedder;
use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, Keep, Metric};
use bitseek_store::{GenerationCollection, StoreError};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// How [`index_repo`] walks, chunks, embeds and stores.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    pub walk: WalkOptions,
    pub chunk: ChunkOptions,
    /// Quantizer, metric and kept copy (default: 1-bit RaBitQ, cosine, keep `f32` — the kept copy
    /// rescores hits and is reused for unchanged files on the next run).
    pub build: BuildOptions,
    /// Texts per call to the embedder; progress is reported after each call (default 256).
    pub batch: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            walk: WalkOptions::default(),
            chunk: ChunkOptions::default(),
            build: BuildOptions {
                metric: Metric::Cosine,
                keep: Keep::F32,
                ..BuildOptions::default()
            },
            batch: 256,
        }
    }
}

/// What [`index_repo`] did.
#[derive(Debug)]
pub struct IndexReport {
    /// The indexed repository and its index directory.
    pub root: PathBuf,
    pub dir: PathBuf,
    /// Units and files in the new index.
    pub units: usize,
    pub files: usize,
    /// Files chunked and embedded (new or changed), files whose units were carried over, and files
    /// of the previous index that are gone.
    pub files_embedded: usize,
    pub files_reused: usize,
    pub files_deleted: usize,
    pub units_embedded: usize,
    pub units_reused: usize,
    /// What the walk (or reading and chunking) left out, and why.
    pub skipped: Skipped,
    /// Bytes on disk of the new generation, and its number.
    pub bytes: u64,
    pub generation: u64,
    /// Why nothing of the previous index could be reused, when there was one.
    pub rebuilt_because: Option<String>,
}

/// One walked file: carried over from the previous index, or cut into new units.
enum FileWork {
    Reuse {
        path: String,
        hash: String,
        rows: Vec<usize>,
    },
    New {
        path: String,
        hash: String,
        units: Vec<Unit>,
    },
    Skip(PathBuf, SkipReason),
}

/// The previous index, when its vectors can be reused.
struct Previous {
    collection: GenerationCollection,
    /// Each row's BM25 term counts, from the previous lexical file.
    terms: Vec<Vec<(String, u32)>>,
    /// The lexical file is the current version (an older one is rewritten even when no file
    /// changed).
    lexical_current: bool,
    files: BTreeMap<String, String>,
    rows_of: HashMap<String, Vec<usize>>,
}

/// Indexes the repository at `root` into `root/.bitseek`, reusing the previous index's vectors for
/// files whose content did not change (same model and chunker) and embedding the rest with
/// `embedder` in batches of `opts.batch`. `progress(done, total)` is called after each batch.
///
/// The new index replaces the old one atomically: if this fails or is interrupted, the previous
/// index stays as it was.
pub fn index_repo(
    root: &Path,
    embedder: &dyn Embedder,
    model: &ModelInfo,
    opts: &IndexOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<IndexReport, CodeError> {
    if !root.is_dir() {
        return Err(CodeError::NotADirectory {
            path: root.to_owned(),
        });
    }
    if embedder.dim() != model.dim {
        return Err(CodeError::EmbedShape {
            expected: model.dim,
            found: embedder.dim(),
        });
    }
    let dir = index_dir(root);
    let _lock = lock(root, &dir)?;
    let chunker = chunker_id(&opts.chunk);
    let (previous, rebuilt_because) = previous(&dir, model, &chunker, opts);

    let listed = walk(root, &opts.walk);
    let mut skipped = listed.skipped;
    let Pipeline {
        payloads,
        files,
        old_rows,
        new_rows,
        new_vectors,
        terms,
        files_embedded,
        files_reused,
        skipped: more_skipped,
    } = pipeline(
        root,
        &listed.files,
        previous.as_ref(),
        embedder,
        opts,
        progress,
    )?;
    skipped.extend(more_skipped);
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    let files_deleted = previous.as_ref().map_or(0, |p| {
        p.files.keys().filter(|f| !files.contains_key(*f)).count()
    });

    // Nothing new, changed or deleted: the committed generation already is this index, so
    // rewriting it would only cost time (and wake `bitseek index --watch` and readers).
    // An index in an older format (lexical file, payload row offsets) is rewritten regardless.
    let unchanged = files_embedded == 0 && files_deleted == 0;
    let current = |p: &&Previous| p.lexical_current && p.collection.has_row_offsets();
    if let Some(prev) = previous.as_ref().filter(|p| unchanged && current(p)) {
        return Ok(IndexReport {
            root: root.to_owned(),
            dir,
            units: payloads.len(),
            files: files.len(),
            files_embedded,
            files_reused,
            files_deleted,
            units_embedded: 0,
            units_reused: old_rows.len(),
            skipped,
            bytes: prev.collection.size_bytes(),
            generation: prev.collection.generation(),
            rebuilt_because,
        });
    }
    let dim = model.dim;
    let rows = payloads.len();
    let mut data = vec![0f32; rows * dim];
    if let Some(prev) = &previous {
        let from: Vec<usize> = old_rows.iter().map(|&(_, r)| r).collect();
        let vectors = prev.collection.vectors_of(&from)?;
        for (&(to, _), v) in old_rows.iter().zip(vectors.chunks_exact(dim)) {
            data[to * dim..(to + 1) * dim].copy_from_slice(v);
        }
    }
    for (&to, v) in new_rows.iter().zip(new_vectors.chunks_exact(dim)) {
        data[to * dim..(to + 1) * dim].copy_from_slice(v);
    }
    // The old segment is no longer needed: release its mapping before the files are replaced.
    drop(previous);

    let names = Names::of_payloads(&payloads);
    let lexical = lexical_file::write(&dir, &Bm25::from_term_counts(&terms), &names)?;
    let extra = CodeExtra {
        kind: KIND.into(),
        model: model.clone(),
        chunker,
        files,
        lexical: Some(lexical.clone()),
    };
    let files_count = extra.files.len();
    let extra = serde_json::to_value(&extra).map_err(|e| {
        CodeError::Store(StoreError::Input(format!(
            "cannot serialise the manifest: {e}"
        )))
    })?;
    let collection = GenerationCollection::create_or_replace(
        &dir,
        Vectors {
            dim,
            data,
            ids: None,
        },
        &payloads,
        &opts.build,
        extra,
    )?;
    // The new manifest names the new lexical file: older ones (and one left by a run that died
    // before its manifest swap) can go.
    lexical_file::remove_others(&dir, Some(&lexical.file));
    // Keep the index out of git without touching the repository's own .gitignore.
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        let _ = std::fs::write(&ignore, "*\n");
    }
    Ok(IndexReport {
        root: root.to_owned(),
        dir,
        units: rows,
        files: files_count,
        files_embedded,
        files_reused,
        files_deleted,
        units_embedded: new_rows.len(),
        units_reused: old_rows.len(),
        skipped,
        bytes: collection.size_bytes(),
        generation: collection.generation(),
        rebuilt_because,
    })
}

/// What the unit texts depend on besides the source: the chunker's version and options.
/// Takes the index's lock file without waiting: a second `bitseek index` of the same repository
/// fails with [`CodeError::Locked`] instead of interleaving its writes with the first. The lock
/// is released when the returned file is dropped (or the process dies).
fn lock(root: &Path, dir: &Path) -> Result<std::fs::File, CodeError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CodeError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(CodeError::Locked {
            root: root.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

fn chunker_id(c: &ChunkOptions) -> String {
    format!(
        "{CHUNKER_VERSION} window={}/{} text={} signature={}",
        c.window_lines, c.window_overlap, c.max_text_bytes, c.max_signature_bytes
    )
}

/// The text embedded for a unit: its path (a strong hint of what the code is about) and its source.
fn embed_text(path: &str, unit: &Unit) -> String {
    format!("{path}\n{}", unit.text)
}

/// Opens the previous index if its vectors can be reused; otherwise says why not (`None` when there
/// was no index at all).
fn previous(
    dir: &Path,
    model: &ModelInfo,
    chunker: &str,
    opts: &IndexOptions,
) -> (Option<Previous>, Option<String>) {
    let collection = match GenerationCollection::open(dir) {
        Ok(c) => c,
        Err(StoreError::NotFound { .. }) => return (None, None),
        Err(e) => return (None, Some(format!("the previous index is unusable ({e})"))),
    };
    let extra: CodeExtra = match serde_json::from_value(collection.extra().clone()) {
        Ok(x) => x,
        Err(e) => {
            return (
                None,
                Some(format!("the previous index is not a code index ({e})")),
            )
        }
    };
    if extra.kind != KIND {
        return (
            None,
            Some(format!("the previous index is a {:?}", extra.kind)),
        );
    }
    if extra.model.adapter != model.adapter {
        return (
            None,
            Some(format!(
                "the previous index was built {}",
                crate::adapter_words(&extra.model.adapter)
            )),
        );
    }
    if extra.model.encoder != model.encoder {
        return (
            None,
            Some(format!(
                "the previous index was built {}",
                crate::encoder_words(&extra.model.encoder)
            )),
        );
    }
    if extra.model != *model {
        return (
            None,
            Some(format!(
                "the previous index was built with model {} (fingerprint {}, {} embeddings)",
                extra.model.name, extra.model.fingerprint, extra.model.precision
            )),
        );
    }
    if extra.chunker != chunker {
        return (
            None,
            Some(format!(
                "the previous index was chunked by {}",
                extra.chunker
            )),
        );
    }
    let m = collection.manifest();
    if m.dim != model.dim || m.keep != Keep::F32 || m.metric != opts.build.metric {
        return (
            None,
            Some("the previous index keeps no reusable f32 vectors".into()),
        );
    }
    let (terms, lexical_current) = match &extra.lexical {
        None => {
            return (
                None,
                Some("the previous index has no lexical (BM25) file".into()),
            )
        }
        Some(entry) => match lexical_file::read(dir, entry, collection.rows(), Checks::Once) {
            Ok(t) => (t.bm25.doc_term_counts(), t.names.is_some()),
            Err((path, why)) => {
                return (
                    None,
                    Some(format!(
                        "the previous lexical file {} is unusable ({why})",
                        path.display()
                    )),
                )
            }
        },
    };
    let payloads = match collection.payloads() {
        Ok(p) => p,
        Err(e) => return (None, Some(format!("the previous index is unusable ({e})"))),
    };
    let mut rows_of: HashMap<String, Vec<usize>> = HashMap::new();
    for (row, p) in payloads.iter().enumerate() {
        match p.get("path").and_then(|p| p.as_str()) {
            Some(path) => rows_of.entry(path.to_owned()).or_default().push(row),
            None => {
                return (
                    None,
                    Some(format!("row {row} of the previous index has no path")),
                )
            }
        }
    }
    (
        Some(Previous {
            collection,
            terms,
            lexical_current,
            files: extra.files,
            rows_of,
        }),
        None,
    )
}

/// Reads and hashes one file; carries it over when its hash is unchanged, else chunks it.
fn plan_file(root: &Path, rel: &Path, prev: Option<&Previous>, chunk: &ChunkOptions) -> FileWork {
    let full = if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let bytes = match std::fs::read(&full) {
        Ok(b) => b,
        Err(e) => return FileWork::Skip(rel.to_owned(), SkipReason::Unreadable(e.to_string())),
    };
    let path = path_key(rel);
    let hash = content_hash(&bytes);
    if let Some(prev) = prev {
        if prev.files.get(&path) == Some(&hash) {
            let rows = prev.rows_of.get(&path).cloned().unwrap_or_default();
            return FileWork::Reuse { path, hash, rows };
        }
    }
    let source = String::from_utf8_lossy(&bytes);
    match chunk_file_with(rel, &source, chunk) {
        Ok(units) => FileWork::New { path, hash, units },
        Err(e) => FileWork::Skip(rel.to_owned(), SkipReason::ChunkFailed(e.to_string())),
    }
}

/// Files planned per step of the parsing thread (read, hashed and chunked in parallel).
const PLAN_STEP: usize = 64;
/// Planned steps the parsing thread may run ahead of the embedder.
const PLAN_AHEAD: usize = 16;
/// Batches per window of new texts sorted by length before they are embedded.
const WINDOW_BATCHES: usize = 8;

/// The rows of the new index as [`pipeline`] assembled them, in walk order.
struct Pipeline {
    payloads: Vec<serde_json::Value>,
    files: BTreeMap<String, String>,
    /// (new row, previous row) of each carried-over unit.
    old_rows: Vec<(usize, usize)>,
    /// The new row of each embedded unit, and their vectors in that order (`dim` values each).
    new_rows: Vec<usize>,
    new_vectors: Vec<f32>,
    /// Each row's BM25 term counts.
    terms: Vec<Vec<(String, u32)>>,
    files_embedded: usize,
    files_reused: usize,
    skipped: Skipped,
}

/// Plans and embeds the walked `files` with parsing and embedding overlapped: a thread reads,
/// hashes and chunks (tree-sitter) the files a step at a time on rayon's pool and hands them over
/// a bounded channel, while this thread turns them into rows and embeds their new unit texts a
/// window of batches at a time, sorted by length (the embedder tokenizes and encodes them, also on
/// rayon's pool). Rows keep the walk
/// order and each text is embedded on its own, so the index equals a sequential run's.
/// `progress(done, total)` follows the embedded units; `total` grows until the last file is
/// parsed.
fn pipeline(
    root: &Path,
    files: &[PathBuf],
    previous: Option<&Previous>,
    embedder: &dyn Embedder,
    opts: &IndexOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Pipeline, CodeError> {
    let batch = opts.batch.max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<FileWork>>(PLAN_AHEAD);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for step in files.chunks(PLAN_STEP) {
                let work: Vec<FileWork> = step
                    .par_iter()
                    .map(|rel| plan_file(root, rel, previous, &opts.chunk))
                    .collect();
                // The receiver is gone only when embedding failed: stop parsing.
                if tx.send(work).is_err() {
                    return;
                }
            }
        });
        let mut out = Pipeline {
            payloads: Vec::new(),
            files: BTreeMap::new(),
            old_rows: Vec::new(),
            new_rows: Vec::new(),
            new_vectors: Vec::new(),
            terms: Vec::new(),
            files_embedded: 0,
            files_reused: 0,
            skipped: Vec::new(),
        };
        // New texts not embedded yet, with their rows: embedded a window at a time, sorted by
        // length so that each call's texts (and the embedder's parallel slices of it) are alike
        // in length and take alike time.
        let window = batch.saturating_mul(WINDOW_BATCHES);
        let mut pending: Vec<(usize, String)> = Vec::new();
        let mut queued = 0;
        progress(0, 0);
        for work in rx {
            for w in work {
                queued += out.add(w, previous, &mut pending)?;
            }
            if pending.len() >= window {
                out.embed_sorted(embedder, &mut pending, batch, queued, progress)?;
            }
        }
        out.embed_sorted(embedder, &mut pending, batch, queued, progress)?;
        Ok(out)
    })
}

impl Pipeline {
    /// Adds one planned file's rows; its new unit texts go to `pending`. Returns how many.
    fn add(
        &mut self,
        w: FileWork,
        previous: Option<&Previous>,
        pending: &mut Vec<(usize, String)>,
    ) -> Result<usize, CodeError> {
        match w {
            FileWork::Skip(path, why) => self.skipped.push((path, why)),
            FileWork::Reuse { path, hash, rows } => {
                let Some(prev) = previous else { return Ok(0) };
                for r in rows {
                    let p = prev.collection.payload(r)?.unwrap_or_default();
                    self.old_rows.push((self.payloads.len(), r));
                    self.payloads.push(p);
                    self.terms
                        .push(prev.terms.get(r).cloned().unwrap_or_default());
                }
                self.files.insert(path, hash);
                self.files_reused += 1;
            }
            FileWork::New { path, hash, units } => {
                let n = units.len();
                for u in &units {
                    let payload = UnitPayload::of(u, &path, &hash);
                    let value = serde_json::to_value(&payload).unwrap_or_default();
                    let text = embed_text(&path, u);
                    self.terms.push(term_counts(&text));
                    pending.push((self.payloads.len(), text));
                    self.payloads.push(value);
                }
                self.files.insert(path, hash);
                self.files_embedded += 1;
                return Ok(n);
            }
        }
        Ok(0)
    }

    /// Embeds the `pending` texts (row, text), shortest first in calls of `batch`, appends their
    /// vectors and empties `pending`; `queued` new texts are known so far.
    fn embed_sorted(
        &mut self,
        embedder: &dyn Embedder,
        pending: &mut Vec<(usize, String)>,
        batch: usize,
        queued: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(), CodeError> {
        pending.sort_by_key(|(row, text)| (text.len(), *row));
        for texts in pending.chunks(batch) {
            self.embed(embedder, texts, queued, progress)?;
        }
        pending.clear();
        Ok(())
    }

    /// Embeds `texts` (row, text) and appends their vectors; `queued` new texts are known so far.
    fn embed(
        &mut self,
        embedder: &dyn Embedder,
        texts: &[(usize, String)],
        queued: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(), CodeError> {
        if texts.is_empty() {
            return Ok(());
        }
        let dim = embedder.dim();
        let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = embedder.embed(&refs)?;
        if vectors.len() != texts.len() {
            return Err(CodeError::EmbedShape {
                expected: texts.len(),
                found: vectors.len(),
            });
        }
        for ((row, _), v) in texts.iter().zip(&vectors) {
            if v.len() != dim {
                return Err(CodeError::EmbedShape {
                    expected: dim,
                    found: v.len(),
                });
            }
            self.new_rows.push(*row);
            self.new_vectors.extend_from_slice(v);
        }
        progress(self.new_rows.len(), queued);
        Ok(())
    }
}
