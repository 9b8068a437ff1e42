//! Finding and opening model directories; no model needed.

use bitseek_embed::{cache_dir_from, default_model_dir_from, Error, ModelDir};
use std::path::{Path, PathBuf};

fn some(s: &str) -> Option<std::ffi::OsString> {
    Some(s.into())
}

#[test]
fn cache_dir_follows_xdg_then_home() {
    assert_eq!(
        cache_dir_from(some("/x/cache"), some("/home/u")),
        Some(PathBuf::from("/x/cache"))
    );
    assert_eq!(
        cache_dir_from(None, some("/home/u")),
        Some(PathBuf::from("/home/u/.cache"))
    );
    // Relative XDG_CACHE_HOME is invalid by the spec and ignored; empty too.
    assert_eq!(
        cache_dir_from(some("rel/cache"), some("/home/u")),
        Some(PathBuf::from("/home/u/.cache"))
    );
    assert_eq!(
        cache_dir_from(some(""), some("/home/u")),
        Some(PathBuf::from("/home/u/.cache"))
    );
    assert_eq!(cache_dir_from(None, None), None);
    assert_eq!(cache_dir_from(None, some("")), None);
}

#[test]
fn default_model_dir_is_under_bitseek_models() {
    assert_eq!(
        default_model_dir_from(some("/c"), None).unwrap(),
        Path::new("/c/bitseek/models/all-MiniLM-L6-v2")
    );
    let err = default_model_dir_from(None, None).unwrap_err();
    assert!(matches!(err, Error::NoCacheDir));
    assert!(err.to_string().contains("--model-dir"), "{err}");
}

#[test]
fn missing_model_says_how_to_fetch_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nope");
    let err = ModelDir::open(&dir).unwrap_err();
    assert!(matches!(err, Error::ModelMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(msg.contains("`bitseek model fetch`"), "{msg}");
}

#[test]
fn partial_model_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
    let err = ModelDir::open(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingFile {
                file: "tokenizer.json",
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::write(tmp.path().join("tokenizer.json"), "{}").unwrap();
    let err = ModelDir::open(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(msg.contains("bitseek model fetch"), "{msg}");
}

#[test]
fn max_seq_length_comes_from_sentence_bert_config() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::write(tmp.path().join(f), "{}").unwrap();
    }
    assert_eq!(ModelDir::open(tmp.path()).unwrap().max_seq_length(), None);
    let st = tmp.path().join("sentence_bert_config.json");
    std::fs::write(&st, r#"{"max_seq_length": 256, "do_lower_case": false}"#).unwrap();
    assert_eq!(
        ModelDir::open(tmp.path()).unwrap().max_seq_length(),
        Some(256)
    );
    std::fs::write(&st, r#"{"max_seq_length": -3}"#).unwrap();
    let err = ModelDir::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("sentence_bert_config.json"),
        "{err}"
    );
    std::fs::write(&st, "not json").unwrap();
    assert!(ModelDir::open(tmp.path()).is_err());
}
