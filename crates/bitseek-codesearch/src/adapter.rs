//! Which LoRA adapter (issue 16, tier 2) is merged into the model's weights for code search, and
//! how an index records it.
//!
//! An adapter changes every vector the model makes, so it is part of the index's model identity
//! ([`crate::ModelInfo`]'s `adapter`, by name and xxh3-128 of the file's bytes): a search with
//! another adapter (or none) than the index was built with is refused naming both, and
//! `bitseek index` re-embeds everything when it changes. The merge itself (`W + alpha/r·B·A`, at
//! load, so embedding costs what it costs without one) and the checks that the adapter fits the
//! model's weights are `bitseek_embed::Adapter`'s.
//!
//! The adapter trained by `scripts/train_adapter.py` on the mined pairs ships inside the binary
//! ([`BUILTIN`], `bitseek-embed/adapters/minilm-code-lora.safetensors`, 1.3 MB);
//! [`AdapterChoice::Default`] uses it when [`DEFAULT_ON`] and the model is the one it was trained
//! on ([`BUILTIN_BASE_FINGERPRINT`]), [`AdapterChoice::None`] (`--adapter none`) never does.

use crate::{CodeError, ModelInfo};
use bitseek_embed::Adapter;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The adapter shipped with bitseek, trained on all-MiniLM-L6-v2.
pub static BUILTIN: &[u8] =
    include_bytes!("../../bitseek-embed/adapters/minilm-code-lora.safetensors");

/// The name the built-in adapter is recorded under in an index's manifest.
pub const BUILTIN_NAME: &str = "minilm-code-lora";

/// The fingerprint ([`ModelInfo::fingerprint`]) of the model the built-in adapter was trained on
/// (all-MiniLM-L6-v2 as `bitseek model fetch` installs it). The adapter's own check (SHA-256 of
/// the adapted base weights) still runs when it is merged.
pub const BUILTIN_BASE_FINGERPRINT: &str = "7249773d455313f391bd74e2adab8e85";

/// Whether `--adapter default` merges the built-in adapter: only if it wins on held-out test
/// packages of both languages, semantic and fused (README, "Code search's model").
pub const DEFAULT_ON: bool = true;

/// Which adapter is merged into the model (`--adapter`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The built-in adapter when it is the default ([`DEFAULT_ON`]) and the model is the one it
    /// was trained on, else none.
    #[default]
    Default,
    /// The built-in adapter whenever the model is the one it was trained on (`builtin`), default
    /// or not: what an index built with it asks for.
    Builtin,
    /// The model's weights as they are.
    None,
    /// An adapter file (`scripts/train_adapter.py`); refused unless it fits the model.
    File(PathBuf),
}

impl std::str::FromStr for AdapterChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "default" => AdapterChoice::Default,
            "builtin" => AdapterChoice::Builtin,
            "none" => AdapterChoice::None,
            "" => return Err("expected `default`, `none`, `builtin` or an adapter file".into()),
            path => AdapterChoice::File(PathBuf::from(path)),
        })
    }
}

impl AdapterChoice {
    /// The choice that embeds questions for an index built by `built`: the built-in adapter when
    /// it recorded it by [`BUILTIN_NAME`], none when it recorded none. An adapter file cannot be
    /// found from its record: that is an error asking for `--adapter FILE`.
    pub fn of_index(built: &ModelInfo) -> Result<AdapterChoice, CodeError> {
        match &built.adapter {
            None => Ok(AdapterChoice::None),
            Some(a) if a.name == BUILTIN_NAME => Ok(AdapterChoice::Builtin),
            Some(a) => Err(CodeError::BadAdapter {
                path: PathBuf::from(&a.name),
                reason: format!(
                    "the index was built with this adapter file (fingerprint {}), which cannot \
                     be found from the index; pass it as --adapter PATH",
                    a.fingerprint
                ),
            }),
        }
    }
}

/// An adapter's identity as an index's manifest records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdapterId {
    /// [`BUILTIN_NAME`], or the file name of an adapter given by path.
    pub name: String,
    /// xxh3-128 of the adapter file's bytes, 32 hex digits.
    pub fingerprint: String,
}

/// The adapter `choice` names for `model` (whose fingerprint is the base weights' identity), read
/// and checked, with its identity; `None` for no adapter. The fit against the weights is checked
/// when it is merged ([`bitseek_embed::BertEmbedder::load_adapted`]).
pub fn resolve_adapter(
    choice: &AdapterChoice,
    model: &ModelInfo,
) -> Result<Option<(Adapter, AdapterId)>, CodeError> {
    let builtin = || -> Result<(Adapter, AdapterId), CodeError> {
        let adapter = Adapter::from_bytes(BUILTIN, "<built-in adapter>")
            .map_err(|e| bad_adapter(PathBuf::from("<built-in adapter>"), e))?;
        Ok((adapter, builtin_id().clone()))
    };
    let trained_for = model.fingerprint == BUILTIN_BASE_FINGERPRINT;
    match choice {
        AdapterChoice::None => Ok(None),
        AdapterChoice::Default if !(DEFAULT_ON && trained_for) => Ok(None),
        AdapterChoice::Default => builtin().map(Some),
        AdapterChoice::Builtin if trained_for => builtin().map(Some),
        AdapterChoice::Builtin => Err(CodeError::BadAdapter {
            path: PathBuf::from("<built-in adapter>"),
            reason: format!(
                "it was trained on all-MiniLM-L6-v2 (fingerprint {BUILTIN_BASE_FINGERPRINT}), \
                 the model is {} (fingerprint {})",
                model.name, model.fingerprint
            ),
        }),
        AdapterChoice::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| CodeError::Io {
                path: path.clone(),
                source,
            })?;
            let adapter =
                Adapter::from_bytes(&bytes, path).map_err(|e| bad_adapter(path.clone(), e))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            let id = id(&name, adapter.digest());
            Ok(Some((adapter, id)))
        }
    }
}

/// The built-in adapter's identity as an index records it.
pub fn builtin_id() -> &'static AdapterId {
    static ID: std::sync::OnceLock<AdapterId> = std::sync::OnceLock::new();
    ID.get_or_init(|| id(BUILTIN_NAME, xxhash_rust::xxh3::xxh3_128(BUILTIN)))
}

/// `digest` is [`Adapter::digest`]: xxh3-128 of the file's bytes, hashed once when it is read.
fn id(name: &str, digest: u128) -> AdapterId {
    AdapterId {
        name: name.to_owned(),
        fingerprint: format!("{digest:032x}"),
    }
}

/// An adapter that cannot be used: `bitseek_embed`'s reason, with the way out.
pub(crate) fn bad_adapter(path: PathBuf, e: bitseek_embed::Error) -> CodeError {
    let reason = match e {
        bitseek_embed::Error::Adapter { message, .. } => message,
        other => other.to_string(),
    };
    CodeError::BadAdapter { path, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_adapter_loads_and_was_trained_on_the_builtin_heads_model() {
        let a = Adapter::from_bytes(BUILTIN, "b").unwrap();
        assert!(a.rank() > 0 && !a.modules().is_empty());
        // The head shipped with bitseek names the same model by the same fingerprint.
        let head = crate::EncoderHead::builtin().unwrap();
        assert_eq!(head.base_fingerprint, BUILTIN_BASE_FINGERPRINT);
    }

    #[test]
    fn choices_parse() {
        assert_eq!("default".parse(), Ok(AdapterChoice::Default));
        assert_eq!("none".parse(), Ok(AdapterChoice::None));
        assert_eq!("builtin".parse(), Ok(AdapterChoice::Builtin));
        assert_eq!(
            "a.safetensors".parse(),
            Ok(AdapterChoice::File("a.safetensors".into()))
        );
        assert!("".parse::<AdapterChoice>().is_err());
    }
}
