use crate::{Error, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The name of the default model, and of its folder under the cache directory.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The environment variable that points at a model directory, overriding the cache default.
pub const MODEL_DIR_ENV: &str = "BITSEEK_MODEL_DIR";

/// The files every model directory must have.
pub(crate) const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A local directory holding a BERT-family model: `config.json`, `tokenizer.json` and
/// `model.safetensors`, and optionally `sentence_bert_config.json` (for `max_seq_length`).
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
    max_seq_length: Option<usize>,
}

impl ModelDir {
    /// Checks that `path` holds a model and reads its sentence-transformers settings. The weights
    /// are not read here.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::ModelMissing { dir: root });
        }
        for file in REQUIRED_FILES {
            if !root.join(file).is_file() {
                return Err(Error::MissingFile { dir: root, file });
            }
        }
        let st = root.join("sentence_bert_config.json");
        let max_seq_length = if st.is_file() {
            let value: serde_json::Value = read_json(&st)?;
            match value.get("max_seq_length") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_u64().filter(|&n| n > 0).ok_or_else(|| Error::Config {
                    path: st.clone(),
                    message: format!("max_seq_length must be a positive whole number, found {v}"),
                })? as usize),
            }
        } else {
            None
        };
        Ok(Self {
            root,
            max_seq_length,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `tokenizer.json`.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.root.join("tokenizer.json")
    }

    /// `model.safetensors`.
    pub fn weights_path(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }

    /// `max_seq_length` from `sentence_bert_config.json`, when the directory has one.
    pub fn max_seq_length(&self) -> Option<usize> {
        self.max_seq_length
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The user's cache directory: `$XDG_CACHE_HOME` when set to an absolute path, else `$HOME/.cache`.
/// Takes the variables' values so that it can be tested without touching the environment.
pub fn cache_dir_from(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    if let Some(xdg) = xdg_cache_home.map(PathBuf::from) {
        // The XDG spec says relative paths are invalid and must be ignored.
        if xdg.is_absolute() {
            return Some(xdg);
        }
    }
    home.filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache"))
}

/// Where `bitseek model fetch` installs the default model, given the variables' values:
/// `<cache>/bitseek/models/all-MiniLM-L6-v2`.
pub fn default_model_dir_from(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    cache_dir_from(xdg_cache_home, home)
        .map(|c| c.join("bitseek").join("models").join(DEFAULT_MODEL_NAME))
        .ok_or(Error::NoCacheDir)
}

/// Where `bitseek model fetch` installs the default model, from this process's environment.
pub fn default_model_dir() -> Result<PathBuf> {
    default_model_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

/// The model directory to use: `explicit` (a `--model-dir` flag) when given, else
/// `$BITSEEK_MODEL_DIR` when set, else [`default_model_dir`].
pub fn resolve_model_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => default_model_dir(),
    }
}
