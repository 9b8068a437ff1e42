//! Encoder files: a trained learned-code encoder ([`Learned`]) in the same checksummed container
//! as an index ([`crate::format`]), told apart by the `kind` of its metadata.
//!
//! The metadata holds the encoder's shape, what it was trained on and how (free-form JSON from the
//! trainer), and the writing version; each weight array is one `f32` section. Opening verifies the
//! container (magic, version, checksums, truncation) and then every shape, so a damaged or foreign
//! file is refused with its name and the fix, never half-loaded.

use crate::format::{write_index, FormatError, IndexFile};
use bitseek_codes::quantizer::{Learned, LearnedConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `kind` of an encoder file's metadata.
pub const ENCODER_KIND: &str = "bitseek-encoder";

/// The metadata document of an encoder file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EncoderMeta {
    /// Always [`ENCODER_KIND`].
    pub kind: String,
    /// The network's shape, which the weights must match.
    pub config: LearnedConfig,
    /// How the encoder was trained (data, estimator, seed, validation metric, …).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Version of bitseek that wrote the file.
    pub written_by: String,
}

/// Why an encoder file could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The file is not a readable bitseek container.
    #[error("`{}` is not a bitseek encoder file: {source}; train one with `bitseek train`", path.display())]
    Container {
        /// The encoder file.
        path: PathBuf,
        /// Why the container was refused.
        #[source]
        source: FormatError,
    },
    /// A bitseek file of another kind (an index, say).
    #[error("`{}` is a bitseek file of kind {found:?}, not an encoder; pass the file written by `bitseek train --out`", path.display())]
    WrongKind {
        /// The encoder file.
        path: PathBuf,
        /// The kind the file says it is.
        found: String,
    },
    /// The container is sound but the encoder in it is not.
    #[error("`{}` is a corrupt encoder ({reason}); train it again with `bitseek train`", path.display())]
    Corrupt {
        /// The encoder file.
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// The encoder was trained for another embedding dimension.
    #[error("the encoder `{}` was trained for {expected}-dimensional embeddings but the vectors have {found} dimensions; train an encoder on embeddings of this model", path.display())]
    DimensionMismatch {
        /// The encoder file.
        path: PathBuf,
        /// The dimension the encoder was trained for.
        expected: usize,
        /// The vectors' dimension.
        found: usize,
    },
}

/// Writes `encoder` to `path` atomically; returns the file size.
pub fn save_encoder(
    path: &Path,
    encoder: &Learned,
    training: serde_json::Value,
) -> Result<u64, EncoderError> {
    let meta = EncoderMeta {
        kind: ENCODER_KIND.into(),
        config: encoder.config,
        training,
        written_by: env!("CARGO_PKG_VERSION").into(),
    };
    let meta = serde_json::to_value(&meta).map_err(|e| EncoderError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot serialise metadata: {e}"),
    })?;
    let tensors = encoder.tensors();
    let sections: Vec<(&str, &[u8])> = tensors
        .iter()
        .map(|(n, v)| (n.as_str(), bytemuck::cast_slice(v)))
        .collect();
    write_index(path, &meta, &sections).map_err(|source| EncoderError::Container {
        path: path.to_owned(),
        source,
    })
}

/// Opens and checks an encoder file.
pub fn load_encoder(path: &Path) -> Result<(Learned, EncoderMeta), EncoderError> {
    let file = IndexFile::open(path).map_err(|source| EncoderError::Container {
        path: path.to_owned(),
        source,
    })?;
    let kind = file
        .meta()
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("(none)")
        .to_string();
    if kind != ENCODER_KIND {
        return Err(EncoderError::WrongKind {
            path: path.to_owned(),
            found: kind,
        });
    }
    let corrupt = |reason: String| EncoderError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let meta: EncoderMeta = serde_json::from_value(file.meta().clone())
        .map_err(|e| corrupt(format!("metadata: {e}")))?;
    let learned = Learned::from_tensors(meta.config, |name| {
        file.section_as::<f32>(name)
            .map(<[f32]>::to_vec)
            .map_err(|e| e.to_string())
    })
    .map_err(corrupt)?;
    // Per-dimension code scales: optional (files written before them have none).
    let learned = if file.section_names().any(|n| n == "scales") {
        let scales = file
            .section_as::<f32>("scales")
            .map_err(|e| corrupt(e.to_string()))?
            .to_vec();
        learned.with_scales(scales).map_err(corrupt)?
    } else {
        learned
    };
    // Per-plane weights: optional too (files written before them have none).
    let learned = if file.section_names().any(|n| n == "plane_scales") {
        let plane_scales = file
            .section_as::<f32>("plane_scales")
            .map_err(|e| corrupt(e.to_string()))?
            .to_vec();
        learned.with_plane_scales(plane_scales).map_err(corrupt)?
    } else {
        learned
    };
    Ok((learned, meta))
}

/// [`load_encoder`], refusing an encoder trained for another dimension than `dim`.
pub fn load_encoder_for(path: &Path, dim: usize) -> Result<(Learned, EncoderMeta), EncoderError> {
    let (learned, meta) = load_encoder(path)?;
    if learned.dim() != dim {
        return Err(EncoderError::DimensionMismatch {
            path: path.to_owned(),
            expected: learned.dim(),
            found: dim,
        });
    }
    Ok((learned, meta))
}
