//! The generation-per-write collection code search keeps: every write builds a whole new
//! generation (one segment, one payload file) and swaps the manifest to it; see the crate docs.

use crate::error::{io_err, Fix, StoreError};
use crate::files::{
    open_segment_with, read_manifest_bytes, sync_dir, write_payloads_with_offsets, write_synced,
    Promise,
};
use crate::lazy_payloads::LazyPayloads;
use crate::manifest::{
    parse_manifest, Manifest, PayloadsEntry, SegmentEntry, FORMAT, MANIFEST, VERSION,
};
use crate::row_mask::RowMask;
use crate::verified::Stamp;
use bitseek_index::input::Vectors;
use bitseek_index::vector::check_rows;
use bitseek_index::{BuildOptions, Hit, Index, IndexError, SearchParams};
use std::fs;
use std::path::{Path, PathBuf};

/// An open collection: the manifest, the mapped segment and the mapped payloads (parsed as they
/// are used).
pub struct GenerationCollection {
    dir: PathBuf,
    manifest: Manifest,
    segment: Option<Index>,
    payloads: LazyPayloads,
    verified: bool,
}

impl std::fmt::Debug for GenerationCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationCollection")
            .field("dir", &self.dir)
            .field("generation", &self.manifest.generation)
            .field("rows", &self.manifest.rows)
            .finish_non_exhaustive()
    }
}

/// A new generation written to disk but not yet made current. [`commit`](Self::commit) swaps the
/// manifest; dropping it instead deletes its files and leaves the collection as it was.
#[derive(Debug)]
pub struct PendingGeneration {
    dir: PathBuf,
    manifest: Manifest,
    files: Vec<PathBuf>,
    committed: bool,
}

impl GenerationCollection {
    /// Writes `vectors` (no ids: row `i` gets id `i`) and one payload per row as a new generation
    /// of the collection in `dir` (created if needed), makes it current atomically, and deletes
    /// older generations' files. Returns the new collection, opened from disk.
    pub fn create_or_replace(
        dir: &Path,
        vectors: Vectors,
        payloads: &[serde_json::Value],
        opts: &BuildOptions,
        extra: serde_json::Value,
    ) -> Result<GenerationCollection, StoreError> {
        Self::write_generation(dir, vectors, payloads, opts, extra)?.commit()
    }

    /// The first half of [`create_or_replace`](Self::create_or_replace): writes and syncs the new
    /// generation's segment and payload files without touching the manifest.
    pub fn write_generation(
        dir: &Path,
        vectors: Vectors,
        payloads: &[serde_json::Value],
        opts: &BuildOptions,
        extra: serde_json::Value,
    ) -> Result<PendingGeneration, StoreError> {
        if vectors.ids.is_some() {
            return Err(StoreError::Input(
                "collection rows are their own ids; pass vectors without ids".into(),
            ));
        }
        if vectors.dim == 0 {
            return Err(StoreError::Input("dimension 0".into()));
        }
        if !vectors.data.len().is_multiple_of(vectors.dim) {
            return Err(StoreError::Input(format!(
                "{} values are not a whole number of {}-dimensional vectors",
                vectors.data.len(),
                vectors.dim
            )));
        }
        let rows = vectors.rows();
        if payloads.len() != rows {
            return Err(StoreError::Input(format!(
                "{rows} vectors but {} payloads; give one payload per vector",
                payloads.len()
            )));
        }
        if !extra.is_object() {
            return Err(StoreError::Input("extra must be a JSON object".into()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let generation = next_generation(dir);
        let dim = vectors.dim;
        let mut pending = PendingGeneration {
            dir: dir.to_owned(),
            manifest: Manifest {
                format: FORMAT.into(),
                version: VERSION,
                generation,
                dim,
                rows,
                metric: opts.metric,
                quantizer: opts.quantizer.to_string(),
                keep: opts.keep,
                segments: Vec::new(),
                payloads: PayloadsEntry {
                    file: format!("payloads-{generation}.jsonl"),
                    rows,
                    xxh3: String::new(),
                },
                payload_offsets: None,
                extra,
            },
            files: Vec::new(),
            committed: false,
        };

        if rows > 0 {
            let file = format!("seg-{generation}.bitseek");
            let path = dir.join(&file);
            let index = Index::build(vectors, &path, opts, &|_| {})?;
            pending.files.push(path.clone());
            index.save(&path)?;
            pending.manifest.segments.push(SegmentEntry {
                file,
                rows,
                payloads: None,
            });
        }

        let file = pending.manifest.payloads.file.clone();
        pending.files.push(dir.join(&file));
        pending
            .files
            .push(dir.join(crate::row_offsets::table_name(&file)));
        let (entry, offsets) = write_payloads_with_offsets(dir, file, payloads)?;
        pending.manifest.payloads = entry;
        pending.manifest.payload_offsets = Some(offsets);
        sync_dir(dir)?;
        Ok(pending)
    }

    /// Opens the collection in `dir`: reads and checks the manifest and opens the segment and
    /// the payloads, checking them against it.
    ///
    /// The first open of a generation verifies it (every checksum of the segment, the payload
    /// file's checksum, one JSON payload per row) and records that it did (`verified.json`, the
    /// `verified` module); later opens of the same unchanged files check structure and shapes only
    /// and read payloads lazily, so an open costs next to nothing whatever the collection's size.
    /// [`verify`](Self::verify) checks everything regardless.
    pub fn open(dir: &Path) -> Result<GenerationCollection, StoreError> {
        Self::open_checked(dir, false)
    }

    /// Opens the collection in `dir` verifying every checksum and payload whatever was verified
    /// before (what `bitseek index --verify` runs), and records the verification.
    pub fn verify(dir: &Path) -> Result<GenerationCollection, StoreError> {
        Self::open_checked(dir, true)
    }

    fn open_checked(dir: &Path, force: bool) -> Result<GenerationCollection, StoreError> {
        let (path, bytes) = read_manifest_bytes(dir)?;
        let manifest = parse_manifest(&path, &bytes)?;

        let mut files = vec![MANIFEST, manifest.payloads.file.as_str()];
        files.extend(manifest.segments.iter().map(|s| s.file.as_str()));
        files.extend(manifest.payload_offsets.as_ref().map(|o| o.file.as_str()));
        let verify = force || !Stamp::matches(dir, manifest.generation, &files);
        // Taken before verifying: a file changed during verification no longer matches it.
        let stamp = verify
            .then(|| Stamp::of(dir, manifest.generation, &files))
            .flatten();
        if verify {
            // A failed verification must not leave an older stamp that still matches.
            Stamp::remove(dir);
        }

        let segment = match manifest.segments.first() {
            None => None,
            Some(entry) => Some(open_segment_with(
                &dir.join(&entry.file),
                &Promise {
                    generation: manifest.generation,
                    rows: entry.rows,
                    dim: manifest.dim,
                    metric: manifest.metric,
                    keep: manifest.keep,
                    quantizer: Some(&manifest.quantizer),
                    row_ids: true,
                    fix: Fix::Rebuild,
                },
                verify,
            )?),
        };

        let payloads = LazyPayloads::open(
            dir,
            &manifest.payloads,
            manifest.payload_offsets.as_ref(),
            Fix::Rebuild,
            verify,
        )?;
        if let Some(stamp) = stamp {
            stamp.write(dir);
        }
        Ok(GenerationCollection {
            dir: dir.to_owned(),
            manifest,
            segment,
            payloads,
            verified: verify,
        })
    }

    /// Whether this open verified every checksum (the generation's first open, or
    /// [`verify`](Self::verify)) rather than trusting an earlier verification of the same files.
    pub fn verified_now(&self) -> bool {
        self.verified
    }

    /// The directory the collection lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The caller's metadata from the manifest.
    pub fn extra(&self) -> &serde_json::Value {
        &self.manifest.extra
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.manifest.rows
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// Whether the generation has the payload file's row-offset table (written since it exists):
    /// older generations find a row's line by scanning the payload file once per open, and the
    /// next write adds the table.
    pub fn has_row_offsets(&self) -> bool {
        self.manifest.payload_offsets.is_some()
    }

    /// The payload of `row` (`None` past the last row), parsed from its line of the payload
    /// file (found through the row-offset table); an error when that line is damaged.
    pub fn payload(&self, row: usize) -> Result<Option<serde_json::Value>, StoreError> {
        self.payloads.get(row)
    }

    /// All payloads in row order: the first call reads the whole payload file, checking its
    /// checksum and that it holds one JSON value per row.
    pub fn payloads(&self) -> Result<&[serde_json::Value], StoreError> {
        self.payloads.all()
    }

    /// The segment, if the collection has rows.
    pub fn segment(&self) -> Option<&Index> {
        self.segment.as_ref()
    }

    /// Bytes on disk of the current generation: manifest, segment and payloads.
    pub fn size_bytes(&self) -> u64 {
        let mut files = vec![MANIFEST.to_string(), self.manifest.payloads.file.clone()];
        files.extend(self.manifest.segments.iter().map(|s| s.file.clone()));
        files.extend(self.manifest.payload_offsets.iter().map(|o| o.file.clone()));
        files
            .iter()
            .filter_map(|f| fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The kept `f32` vectors of `rows`, concatenated in the order given (normalised when the
    /// metric is cosine), so a caller can carry them into the next generation without recomputing
    /// them.
    pub fn vectors_of(&self, rows: &[usize]) -> Result<Vec<f32>, StoreError> {
        let dim = self.dim();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let kept = self
            .segment
            .as_ref()
            .and_then(|s| s.kept_f32())
            .ok_or_else(|| {
                StoreError::Input(format!(
                    "the collection in {} keeps no f32 vectors (keep = {}); rebuild it with keep f32 to reuse vectors",
                    self.dir.display(),
                    self.manifest.keep
                ))
            })?;
        let mut out = Vec::with_capacity(rows.len() * dim);
        for &r in rows {
            let v = kept.get(r * dim..(r + 1) * dim).ok_or_else(|| {
                StoreError::Input(format!("row {r} is past the {} rows", self.rows()))
            })?;
            out.extend_from_slice(v);
        }
        Ok(out)
    }

    /// Top-`params.k` rows for each row-major query (of the collection's dimension), best first;
    /// a hit's `id` is its row.
    ///
    /// With a `filter`, only rows whose payload it accepts come back: the filter is evaluated once
    /// per row into an allowed-rows mask that the scan itself honours
    /// ([`Index::search_batch_allowed`]), so `k` hits come back whenever `k` rows pass.
    pub fn search(
        &self,
        queries: &[f32],
        params: &SearchParams,
        filter: Option<&dyn Fn(&serde_json::Value) -> bool>,
    ) -> Result<Vec<Vec<Hit>>, StoreError> {
        let dim = self.dim();
        if params.k == 0 {
            return Err(IndexError::BadParam("k must be at least 1".into()).into());
        }
        // Checked here too, so an empty collection refuses what a full one would.
        let n = check_rows(queries, dim, self.manifest.metric).map_err(IndexError::from)?;
        let Some(segment) = &self.segment else {
            return Ok(vec![Vec::new(); n]);
        };
        let allowed = match filter {
            None => None,
            Some(accepts) => {
                let payloads = self.payloads()?;
                Some(RowMask::from_fn(self.rows(), |r| accepts(&payloads[r])))
            }
        };
        Ok(segment.search_batch_allowed(
            queries,
            dim,
            params,
            allowed.as_ref().map(RowMask::words),
        )?)
    }
}

impl PendingGeneration {
    /// The generation this will become.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// Makes this generation current (manifest written to a temporary file, synced, renamed over
    /// `manifest.json`, directory synced), deletes older generations' files, and opens the result.
    pub fn commit(mut self) -> Result<GenerationCollection, StoreError> {
        let bytes = serde_json::to_vec_pretty(&self.manifest).map_err(|e| {
            StoreError::Internal(format!(
                "{}: the manifest cannot be serialised ({e})",
                self.dir.join(MANIFEST).display()
            ))
        })?;
        let path = self.dir.join(MANIFEST);
        write_synced(&path, &bytes)?;
        sync_dir(&self.dir)?;
        self.committed = true;
        remove_stale(&self.dir, self.manifest.generation);
        GenerationCollection::open(&self.dir)
    }
}

impl Drop for PendingGeneration {
    fn drop(&mut self) {
        if !self.committed {
            for f in &self.files {
                let _ = fs::remove_file(f);
            }
        }
    }
}

/// The generation number in a file name this crate writes: `seg-<g>.bitseek`, `payloads-<g>.jsonl`,
/// `payloads-<g>.offsets` (and their `.tmp` twins).
fn generation_of(name: &str) -> Option<u64> {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    let g = name
        .strip_prefix("seg-")
        .and_then(|s| s.strip_suffix(".bitseek"))
        .or_else(|| {
            name.strip_prefix("payloads-").and_then(|s| {
                s.strip_suffix(".jsonl")
                    .or_else(|| s.strip_suffix(".offsets"))
            })
        })?;
    g.parse().ok()
}

/// One past the newest generation in `dir`: the manifest's, or any file's left by an interrupted
/// writer (so a new generation never shares a name with an old file).
fn next_generation(dir: &Path) -> u64 {
    let from_manifest = fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("generation").and_then(|g| g.as_u64()))
        .unwrap_or(0);
    let from_files = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| generation_of(&e.file_name().to_string_lossy()))
        .max()
        .unwrap_or(0);
    from_manifest.max(from_files) + 1
}

/// Deletes every generation's files but `keep`'s, and stray temporary files. Best effort: a file
/// that cannot be deleted now is deleted by the next writer.
fn remove_stale(dir: &Path, keep: u64) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = match generation_of(&name) {
            Some(g) => g != keep || name.ends_with(".tmp"),
            None => name == format!("{MANIFEST}.tmp"),
        };
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}
