//! A prepared copy of the layers a LoRA adapter changes, merged once and kept in the cache.
//!
//! Merging an adapter at load (the `adapter` module) hashes the base layers it was trained on and
//! writes fresh copies of them with the deltas added: about 50 ms of a one-question process that
//! otherwise takes 30. The first load with a cache folder writes the merged layers there as a
//! safetensors file; later loads map it instead, as the base weights are mapped. The file's name is
//! a key over the base weights file (its path, size and modification time) and the adapter's bytes,
//! so a re-fetched model or another adapter never finds it; its metadata records the key and an
//! xxh3 of the merged values, checked on every load (the values are read by the forward pass
//! anyway). A missing, damaged or foreign copy is removed and the layers merged again; a copy that
//! cannot be written is skipped. Writers go through a temporary file and a rename, so concurrent
//! processes never see half a copy.

use crate::adapter::Adapter;
use crate::weights::MappedTensors;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use xxhash_rust::xxh3::Xxh3;

/// Bump when what a prepared copy holds changes.
const VERSION: &str = "bitseek-prepared/1";

/// Where the merged layers of one (base weights, adapter) pair live.
pub(crate) struct PreparedCopy {
    path: PathBuf,
    key: String,
}

/// One merged layer: its name in the base weights file, shape and values.
pub(crate) type Layer = (String, Vec<usize>, Vec<f32>);

impl PreparedCopy {
    /// The copy for `weights` with `adapter` merged, in `dir`; `None` when the weights file's
    /// identity cannot be read (then nothing is prepared).
    pub(crate) fn new(dir: &Path, weights: &Path, adapter: &Adapter) -> Option<PreparedCopy> {
        let meta = std::fs::metadata(weights).ok()?;
        let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        let canonical = std::fs::canonicalize(weights).ok()?;
        let mut h = Xxh3::new();
        h.update(VERSION.as_bytes());
        h.update(canonical.as_os_str().as_encoded_bytes());
        h.update(&meta.len().to_le_bytes());
        h.update(&mtime.as_nanos().to_le_bytes());
        h.update(&adapter.digest().to_le_bytes());
        let key = format!("{:032x}", h.digest128());
        Some(PreparedCopy {
            path: dir.join(format!("{key}.safetensors")),
            key,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The copy, mapped, when it exists and is intact. A damaged or foreign one is removed.
    pub(crate) fn open(&self) -> Option<MappedTensors> {
        if !self.path.exists() {
            return None;
        }
        let intact = (|| {
            let tensors = MappedTensors::open(&self.path).ok()?;
            let meta = tensors.metadata();
            if meta.get("key") != Some(&self.key) {
                return None;
            }
            let found = values_digest(&tensors)?;
            (meta.get("xxh3") == Some(&found)).then_some(tensors)
        })();
        if intact.is_none() {
            let _ = std::fs::remove_file(&self.path);
        }
        intact
    }

    /// Writes `layers` as the copy: a temporary file in the same folder, then a rename.
    pub(crate) fn write(&self, layers: &[Layer]) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut sorted: Vec<&Layer> = layers.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = Xxh3::new();
        for (name, _, values) in &sorted {
            h.update(name.as_bytes());
            h.update(bytemuck::cast_slice(values));
        }
        let mut views = Vec::with_capacity(sorted.len());
        for (name, shape, values) in &sorted {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(values))
                .map_err(std::io::Error::other)?;
            views.push((name.as_str(), view));
        }
        let metadata = HashMap::from([
            ("key".to_string(), self.key.clone()),
            ("xxh3".to_string(), format!("{:032x}", h.digest128())),
            ("format".to_string(), VERSION.to_string()),
        ]);
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        safetensors::serialize_to_file(views, Some(metadata), tmp.path())
            .map_err(std::io::Error::other)?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// xxh3 of every tensor's name and `f32` bytes in name order: what [`PreparedCopy::write`]
/// records. `None` for a tensor that is not little-endian `f32` (not one this module wrote).
fn values_digest(t: &MappedTensors) -> Option<String> {
    if !cfg!(target_endian = "little") {
        return None;
    }
    let mut names: Vec<&str> = t.names().collect();
    names.sort_unstable();
    let mut h = Xxh3::new();
    for name in names {
        let values = t.floats(name).ok()?;
        h.update(name.as_bytes());
        h.update(bytemuck::cast_slice(&values));
    }
    Some(format!("{:032x}", h.digest128()))
}

/// The environment variable naming the folder for prepared copies (`none`: keep none).
pub const PREPARED_DIR_ENV: &str = "BITSEEK_PREPARED_DIR";

/// Where prepared copies go by default: `$BITSEEK_PREPARED_DIR` when set (`none` turns them
/// off), else `<cache>/bitseek/prepared` beside the models `bitseek model fetch` installs.
pub fn default_prepared_dir() -> Option<PathBuf> {
    match std::env::var_os(PREPARED_DIR_ENV) {
        Some(v) if v == "none" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => crate::model_dir::cache_dir_from(
            std::env::var_os("XDG_CACHE_HOME"),
            std::env::var_os("HOME"),
        )
        .map(|c| c.join("bitseek").join("prepared")),
    }
}
