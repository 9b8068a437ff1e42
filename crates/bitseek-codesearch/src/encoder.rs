//! The code-search head (issue 16, tier 1): two residual MLPs on top of the frozen sentence
//! model, `f(x) = normalise(x + W₂·relu(W₁·x + b₁) + b₂)`, one for questions and one for code,
//! trained contrastively on mined (docstring, function) pairs of packages the dev sets do not
//! contain (`bitseek-learn`'s `head` module, `scripts/head_experiment.sh`).
//!
//! Units are embedded by the model and then the code tower ([`CodeEmbedder::units`]); questions
//! by the model and then the question tower ([`CodeEmbedder::questions`]). Both sides must use
//! the same head, so the head is part of the index's model identity ([`crate::ModelInfo`]'s
//! `encoder`): a search with another head (or none) than the index was built with is refused, and
//! `bitseek index` re-embeds everything when the head changes.
//!
//! The trained head ships inside the binary ([`BUILTIN`], `assets/code-head.safetensors`, 0.8 MB
//! of f16 weights) and is used by default when the model's fingerprint is the one it was trained
//! on; [`Encoder::None`] (`--encoder none`) is the model alone, as before the head existed.
//!
//! The file is safetensors: tensors `query.{w1,b1,w2,b2}` and `doc.{w1,b1,w2,b2}` (f16 or f32),
//! metadata `kind` = [`HEAD_KIND`], the base model's `base_name`, `base_fingerprint` and `dim`,
//! `hidden`, free-form `training`, and `xxh3` over the tensor data, so a damaged file is refused
//! rather than loaded with wrong weights.

use crate::{CodeError, ModelInfo};
use bitseek_codes::quantizer::learned::Mlp;
use bitseek_embed::Embedder;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `kind` in a head file's metadata.
pub const HEAD_KIND: &str = "bitseek-code-head";

/// The head shipped with bitseek, trained on all-MiniLM-L6-v2's embeddings.
pub static BUILTIN: &[u8] = include_bytes!("../assets/code-head.safetensors");

/// The name the built-in head is recorded under in an index's manifest.
pub const BUILTIN_NAME: &str = "code-head";

/// The head shipped for all-MiniLM-L6-v2 with the built-in LoRA adapter merged
/// ([`crate::adapter::BUILTIN`]): trained on the adapted model's vectors (tier 1 + 2), so it goes
/// only with that adapter ([`crate::ModelInfo::vectors_fingerprint`]).
pub static BUILTIN_ADAPTED: &[u8] = include_bytes!("../assets/code-head-lora.safetensors");

/// The name [`BUILTIN_ADAPTED`] is recorded under in an index's manifest.
pub const BUILTIN_ADAPTED_NAME: &str = "code-head-lora";

/// [`BUILTIN_ADAPTED`]'s identity as an index records it.
pub fn builtin_adapted_id() -> &'static HeadId {
    static ID: std::sync::OnceLock<HeadId> = std::sync::OnceLock::new();
    ID.get_or_init(|| HeadId {
        name: BUILTIN_ADAPTED_NAME.into(),
        fingerprint: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(BUILTIN_ADAPTED)),
    })
}

/// Which head makes the vectors (`--encoder`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Encoder {
    /// The built-in head when the model is the one it was trained on, else none.
    #[default]
    Default,
    /// The model's vectors alone.
    None,
    /// A head file; refused unless it was trained on this model.
    File(PathBuf),
}

impl std::str::FromStr for Encoder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "default" => Encoder::Default,
            "none" => Encoder::None,
            "" => return Err("expected `default`, `none` or a head file".into()),
            path => Encoder::File(PathBuf::from(path)),
        })
    }
}

impl Encoder {
    /// The choice that embeds questions for an index built by `built`: the built-in head when it
    /// recorded one by [`BUILTIN_NAME`], none when it recorded none. A head file cannot be found
    /// from its record: that is an error asking for `--encoder FILE`.
    pub fn of_index(built: &ModelInfo) -> Result<Encoder, CodeError> {
        match &built.encoder {
            None => Ok(Encoder::None),
            Some(h) if h.name == BUILTIN_NAME || h.name == BUILTIN_ADAPTED_NAME => {
                Ok(Encoder::Default)
            }
            Some(h) => Err(CodeError::BadHead {
                path: PathBuf::from(&h.name),
                reason: format!(
                    "the index was built with this head file (fingerprint {}), which cannot be \
                     found from the index; pass it as --encoder PATH",
                    h.fingerprint
                ),
            }),
        }
    }
}

/// A head's identity as an index's manifest records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadId {
    /// [`BUILTIN_NAME`], or the file name of a head given by path.
    pub name: String,
    /// xxh3-128 of the head file's bytes, 32 hex digits.
    pub fingerprint: String,
}

/// Which tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Questions.
    Query,
    /// Code units.
    Doc,
}

/// A loaded head.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderHead {
    /// Applied to questions.
    pub query: Mlp,
    /// Applied to code.
    pub doc: Mlp,
    /// Its identity.
    pub id: HeadId,
    /// The model it was trained on: name, fingerprint ([`ModelInfo::vectors_fingerprint`]: the
    /// model's, or with an adapter, the pair's).
    pub base_name: String,
    pub base_fingerprint: String,
    /// How it was trained (free-form JSON text from the trainer).
    pub training: String,
}

/// What a head file's metadata says about the base model and training, for [`head_bytes`].
#[derive(Clone, Debug)]
pub struct HeadMeta {
    pub base_name: String,
    pub base_fingerprint: String,
    pub training: String,
}

impl EncoderHead {
    /// The head built into the binary.
    pub fn builtin() -> Result<EncoderHead, String> {
        EncoderHead::from_bytes(BUILTIN, BUILTIN_NAME)
    }

    /// Reads a head file; errors name the file and the fix.
    pub fn load(path: &Path) -> Result<EncoderHead, CodeError> {
        let bytes = std::fs::read(path).map_err(|source| CodeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        EncoderHead::from_bytes(&bytes, &name).map_err(|reason| CodeError::BadHead {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses and checks a head file's bytes: safetensors structure, kind, the data checksum,
    /// every shape, finite weights.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<EncoderHead, String> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file ({e})"))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| -> Result<&String, String> {
            meta.get(k)
                .ok_or_else(|| format!("its metadata has no {k:?}; it is not a bitseek code head"))
        };
        if get("kind")? != HEAD_KIND {
            return Err(format!("its kind is {:?}, not {HEAD_KIND:?}", get("kind")?));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| format!("damaged ({e})"))?;
        let number = |k: &str| -> Result<usize, String> {
            get(k)?
                .parse()
                .map_err(|_| format!("metadata {k:?} is not a number"))
        };
        let (dim, hidden) = (number("dim")?, number("hidden")?);
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for n in &names {
            h.update(n.as_bytes());
            h.update(st.tensor(n).map_err(|e| e.to_string())?.data());
        }
        let sum = format!("{:032x}", h.digest128());
        if *get("xxh3")? != sum {
            return Err(format!(
                "damaged: its weights hash to {sum}, the file says {}",
                get("xxh3")?
            ));
        }
        let tower = |side: &str| -> Result<Mlp, String> {
            let t = |part: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
                let name = format!("{side}.{part}");
                let v = st
                    .tensor(&name)
                    .map_err(|_| format!("it has no tensor {name:?}"))?;
                if v.shape() != shape {
                    return Err(format!(
                        "{name} has shape {:?}, expected {shape:?}",
                        v.shape()
                    ));
                }
                let values = to_f32(&v).ok_or_else(|| {
                    format!("{name} is {:?}; f16 and f32 are supported", v.dtype())
                })?;
                if values.iter().any(|x| !x.is_finite()) {
                    return Err(format!("{name} has a non-finite weight"));
                }
                Ok(values)
            };
            Ok(Mlp {
                input: dim,
                hidden,
                output: dim,
                w1: t("w1", &[hidden, dim])?,
                b1: t("b1", &[hidden])?,
                w2: t("w2", &[dim, hidden])?,
                b2: t("b2", &[dim])?,
            })
        };
        Ok(EncoderHead {
            query: tower("query")?,
            doc: tower("doc")?,
            id: HeadId {
                name: name.to_owned(),
                fingerprint: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes)),
            },
            base_name: get("base_name")?.clone(),
            base_fingerprint: get("base_fingerprint")?.clone(),
            training: meta.get("training").cloned().unwrap_or_default(),
        })
    }

    /// Input and output width.
    pub fn dim(&self) -> usize {
        self.query.input
    }

    /// The tower's outputs for `rows` (row-major, [`Self::dim`] wide), L2-normalised.
    pub fn apply(&self, side: Side, rows: &[f32]) -> Vec<f32> {
        let mlp = match side {
            Side::Query => &self.query,
            Side::Doc => &self.doc,
        };
        mlp.forward_normalized(rows)
    }
}

fn to_f32(v: &TensorView<'_>) -> Option<Vec<f32>> {
    let d = v.data();
    match v.dtype() {
        Dtype::F32 => Some(
            d.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            d.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        _ => None,
    }
}

/// A head file's bytes: the two towers' weights stored as f16, with `meta` and the checksum.
pub fn head_bytes(query: &Mlp, doc: &Mlp, meta: &HeadMeta) -> Result<Vec<u8>, String> {
    if query.input != query.output
        || (doc.input, doc.hidden, doc.output) != (query.input, query.hidden, query.output)
    {
        return Err("the two towers must be residual MLPs of one shape".into());
    }
    let f16 = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect()
    };
    let (d, h) = (query.input, query.hidden);
    let mut data: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (side, m) in [("query", query), ("doc", doc)] {
        data.push((format!("{side}.w1"), f16(&m.w1), vec![h, d]));
        data.push((format!("{side}.b1"), f16(&m.b1), vec![h]));
        data.push((format!("{side}.w2"), f16(&m.w2), vec![d, h]));
        data.push((format!("{side}.b2"), f16(&m.b2), vec![d]));
    }
    data.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    for (n, bytes, _) in &data {
        hash.update(n.as_bytes());
        hash.update(bytes);
    }
    let views = data
        .iter()
        .map(|(n, bytes, shape)| {
            TensorView::new(Dtype::F16, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let info: HashMap<String, String> = [
        ("kind", HEAD_KIND.to_string()),
        ("base_name", meta.base_name.clone()),
        ("base_fingerprint", meta.base_fingerprint.clone()),
        ("dim", d.to_string()),
        ("hidden", h.to_string()),
        ("training", meta.training.clone()),
        ("xxh3", format!("{:032x}", hash.digest128())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    safetensors::serialize(views, Some(info)).map_err(|e| e.to_string())
}

/// The head `choice` names for `model`: `None` for [`Encoder::None`], and for
/// [`Encoder::Default`] when the model (and adapter) is not one a built-in head was trained on
/// ([`BUILTIN`] for all-MiniLM-L6-v2 alone, [`BUILTIN_ADAPTED`] with the built-in adapter). A
/// head file trained on other vectors is refused.
pub fn resolve_head(choice: &Encoder, model: &ModelInfo) -> Result<Option<EncoderHead>, CodeError> {
    match choice {
        Encoder::None => Ok(None),
        Encoder::Default => {
            for (bytes, name) in [
                (BUILTIN, BUILTIN_NAME),
                (BUILTIN_ADAPTED, BUILTIN_ADAPTED_NAME),
            ] {
                let head =
                    EncoderHead::from_bytes(bytes, name).map_err(|reason| CodeError::BadHead {
                        path: PathBuf::from(format!("<built-in {name}>")),
                        reason,
                    })?;
                if head.base_fingerprint == model.vectors_fingerprint() && head.dim() == model.dim {
                    return Ok(Some(head));
                }
            }
            Ok(None)
        }
        Encoder::File(path) => {
            let head = EncoderHead::load(path)?;
            if head.base_fingerprint != model.vectors_fingerprint() || head.dim() != model.dim {
                return Err(CodeError::HeadModelMismatch {
                    path: path.clone(),
                    head_base: format!(
                        "{} ({} dimensions, fingerprint {})",
                        head.base_name,
                        head.dim(),
                        head.base_fingerprint
                    ),
                    model: format!(
                        "{} ({} dimensions, fingerprint {})",
                        match &model.adapter {
                            Some(a) => format!("{} with the adapter {}", model.name, a.name),
                            None => model.name.clone(),
                        },
                        model.dim,
                        model.vectors_fingerprint()
                    ),
                });
            }
            Ok(Some(head))
        }
    }
}

/// The model and the head on top of it: [`Self::units`] embeds code for the index,
/// [`Self::questions`] embeds questions.
pub struct CodeEmbedder<E = bitseek_embed::BertEmbedder> {
    /// The sentence model (shared: a server also embeds collection texts with it).
    pub model: Arc<E>,
    /// The head, when one is used.
    pub head: Option<Arc<EncoderHead>>,
}

impl<E: Embedder> CodeEmbedder<E> {
    /// `model` with `head` on top.
    pub fn new(model: E, head: Option<EncoderHead>) -> Self {
        CodeEmbedder {
            model: Arc::new(model),
            head: head.map(Arc::new),
        }
    }

    /// Embeds code units (the head's code tower).
    pub fn units(&self) -> Tower<'_, E> {
        Tower {
            embedder: self,
            side: Side::Doc,
        }
    }

    /// Embeds questions (the head's question tower).
    pub fn questions(&self) -> Tower<'_, E> {
        Tower {
            embedder: self,
            side: Side::Query,
        }
    }
}

/// One side of a [`CodeEmbedder`], as an [`Embedder`].
pub struct Tower<'a, E> {
    embedder: &'a CodeEmbedder<E>,
    side: Side,
}

impl<E: Embedder> Embedder for Tower<'_, E> {
    fn dim(&self) -> usize {
        self.embedder.model.dim()
    }

    fn embed(&self, texts: &[&str]) -> bitseek_embed::Result<Vec<Vec<f32>>> {
        let vectors = self.embedder.model.embed(texts)?;
        let Some(head) = &self.embedder.head else {
            return Ok(vectors);
        };
        let d = head.dim();
        if vectors.iter().any(|v| v.len() != d) {
            // The dimension was checked against the model when the head was resolved.
            return Ok(vectors);
        }
        let flat: Vec<f32> = vectors.concat();
        let start = std::time::Instant::now();
        let out = head
            .apply(self.side, &flat)
            .chunks_exact(d)
            .map(<[f32]>::to_vec)
            .collect();
        bitseek_embed::timings::record("head apply", start);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp(dim: usize, hidden: usize, seed: u32) -> Mlp {
        let v = |n: usize, k: u32| -> Vec<f32> {
            (0..n)
                .map(|i| (((i as u32).wrapping_mul(2654435761) ^ k) % 1000) as f32 / 1000.0 - 0.5)
                .map(|v| v * 0.2)
                .collect()
        };
        Mlp {
            input: dim,
            hidden,
            output: dim,
            w1: v(hidden * dim, seed),
            b1: v(hidden, seed + 1),
            w2: v(dim * hidden, seed + 2),
            b2: v(dim, seed + 3),
        }
    }

    fn meta() -> HeadMeta {
        HeadMeta {
            base_name: "m".into(),
            base_fingerprint: "0".repeat(32),
            training: "{}".into(),
        }
    }

    #[test]
    fn a_head_file_round_trips_through_f16() {
        let (q, d) = (mlp(8, 4, 1), mlp(8, 4, 7));
        let bytes = head_bytes(&q, &d, &meta()).unwrap();
        let head = EncoderHead::from_bytes(&bytes, "h").unwrap();
        for (a, b) in head.query.w1.iter().zip(&q.w1) {
            assert!((a - b).abs() <= 1e-3 * b.abs().max(1e-2), "{a} vs {b}");
        }
        assert_eq!(head.doc.b2.len(), 8);
        assert_eq!(head.base_fingerprint, "0".repeat(32));
        // The two towers differ, and each output is unit length.
        let x: Vec<f32> = (0..16).map(|i| (i as f32).sin()).collect();
        let (a, b) = (head.apply(Side::Query, &x), head.apply(Side::Doc, &x));
        assert_ne!(a, b);
        for r in a.chunks(8) {
            assert!((r.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let bytes = head_bytes(&mlp(8, 4, 1), &mlp(8, 4, 7), &meta()).unwrap();
        // A flipped weight byte (the last bytes are tensor data).
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x40;
        let err = EncoderHead::from_bytes(&bad, "h").unwrap_err();
        assert!(err.contains("damaged"), "{err}");
        // Truncated.
        let err = EncoderHead::from_bytes(&bytes[..n - 10], "h").unwrap_err();
        assert!(
            err.contains("damaged") || err.contains("safetensors"),
            "{err}"
        );
        // Not safetensors at all.
        let err = EncoderHead::from_bytes(b"hello world, not a head", "h").unwrap_err();
        assert!(err.contains("not a safetensors file"), "{err}");
    }

    #[test]
    fn the_builtin_head_loads_and_names_its_model() {
        let head = EncoderHead::builtin().unwrap();
        assert_eq!(head.dim(), 384);
        assert_eq!(head.base_name, bitseek_embed::DEFAULT_MODEL_NAME);
        assert_eq!(head.base_fingerprint.len(), 32);
        assert!(head.training.contains("pairs"), "{}", head.training);
    }
}
