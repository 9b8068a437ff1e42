//! LoRA adapters (Hu et al. 2021): a trained low-rank delta on a model's dense layers, merged into
//! the weights when the model is loaded, so that embedding costs exactly what it costs without one.
//!
//! An adapter file (`scripts/train_adapter.py` writes them) is a safetensors file with, for each
//! adapted layer `<module>` (named as in `model.safetensors`, e.g.
//! `encoder.layer.0.attention.self.query`), `<module>.lora_A` `[rank, in]` and `<module>.lora_B`
//! `[out, rank]`, and metadata: `format` ([`FORMAT`]), `rank`, `alpha`, `modules` (the adapted
//! layers in order) and `base_weights_sha256`, the SHA-256 of those layers' base weights as
//! little-endian `f32` in that order. Loading merges `W + (alpha / rank) · B · A` into each layer
//! and refuses an adapter that is damaged, does not fit the model's shapes, or was trained on
//! other base weights (the hash is over bytes the merge reads anyway, so the check costs one pass
//! over them, not a read of the whole weights file).

use crate::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `format` an adapter file must declare.
pub const FORMAT: &str = "bitseek-lora/1";

/// One adapted layer's factors: `A` `[rank][n_in]` and `B` `[n_out][rank]`, row-major.
#[derive(Debug, Clone)]
pub(crate) struct Factors {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub n_in: usize,
    pub n_out: usize,
}

/// A LoRA adapter read and checked from its file; [`BertEmbedder::load_adapted`] merges it.
///
/// [`BertEmbedder::load_adapted`]: crate::BertEmbedder::load_adapted
#[derive(Debug, Clone)]
pub struct Adapter {
    path: PathBuf,
    rank: usize,
    alpha: f32,
    base_weights_sha256: String,
    /// xxh3-128 of the file's bytes: names this adapter in a prepared copy's key.
    digest: u128,
    modules: Vec<String>,
    factors: HashMap<String, Factors>,
}

impl Adapter {
    /// Reads the adapter at `path`, checking its metadata and that every adapted layer has both
    /// factors with consistent shapes and finite values. Whether it fits a model is checked when
    /// it is merged.
    pub fn open(path: impl AsRef<Path>) -> Result<Adapter> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        Adapter::from_bytes(&bytes, path)
    }

    /// Reads an adapter from the bytes of its file (one built into a program); `path` is what
    /// errors and [`Adapter::path`] call it. The checks are [`Adapter::open`]'s.
    pub fn from_bytes(bytes: &[u8], path: impl Into<PathBuf>) -> Result<Adapter> {
        let path = path.into();
        let bad = |message: String| Error::Adapter {
            path: path.clone(),
            message,
        };
        let tensors =
            Tensors::parse(bytes).map_err(|e| bad(format!("not an adapter file ({e})")))?;
        let meta = &tensors.metadata;
        let field = |key: &str| {
            meta.get(key)
                .map(String::as_str)
                .ok_or_else(|| bad(format!("its metadata has no {key:?}")))
        };
        let format = field("format")?;
        if format != FORMAT {
            return Err(bad(format!(
                "format {format:?} is not {FORMAT:?}, the one this version reads"
            )));
        }
        let rank: usize = field("rank")?
            .parse()
            .ok()
            .filter(|&r| r > 0)
            .ok_or_else(|| bad("rank must be a positive whole number".into()))?;
        let alpha: f32 = field("alpha")?
            .parse()
            .ok()
            .filter(|a: &f32| a.is_finite())
            .ok_or_else(|| bad("alpha must be a finite number".into()))?;
        let base_weights_sha256 = field("base_weights_sha256")?.to_string();
        if base_weights_sha256.len() != 64
            || !base_weights_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad("base_weights_sha256 must be 64 hex digits".into()));
        }
        let modules: Vec<String> = field("modules")?
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        if modules.is_empty() {
            return Err(bad("it adapts no layer (empty \"modules\")".into()));
        }
        let mut factors = HashMap::new();
        for m in &modules {
            let read = |suffix: &str| -> Result<(Vec<f32>, Vec<usize>)> {
                let name = format!("{m}.{suffix}");
                let view = tensors
                    .views
                    .get(&name)
                    .ok_or_else(|| bad(format!("it has no tensor {name}")))?;
                let shape = view.shape().to_vec();
                let values = floats(view)
                    .ok_or_else(|| bad(format!("tensor {name} is not a float tensor")))?;
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(bad(format!("tensor {name} has a non-finite value at {i}")));
                }
                Ok((values, shape))
            };
            let (a, a_shape) = read("lora_A")?;
            let (b, b_shape) = read("lora_B")?;
            let (n_in, n_out) = match (a_shape.as_slice(), b_shape.as_slice()) {
                (&[ra, n_in], &[n_out, rb]) if ra == rank && rb == rank => (n_in, n_out),
                _ => {
                    return Err(bad(format!(
                        "{m}: lora_A has shape {a_shape:?} and lora_B {b_shape:?}, expected \
                         [{rank}, in] and [out, {rank}] (rank {rank})"
                    )))
                }
            };
            if factors
                .insert(m.clone(), Factors { a, b, n_in, n_out })
                .is_some()
            {
                return Err(bad(format!("layer {m} is listed twice in \"modules\"")));
            }
        }
        let belongs = |n: &str| {
            n.strip_suffix(".lora_A")
                .or_else(|| n.strip_suffix(".lora_B"))
                .is_some_and(|m| factors.contains_key(m))
        };
        if let Some(extra) = tensors.views.keys().find(|n| !belongs(n)) {
            return Err(bad(format!(
                "tensor {extra} belongs to no layer in \"modules\""
            )));
        }
        Ok(Adapter {
            path,
            rank,
            alpha,
            base_weights_sha256,
            digest: xxhash_rust::xxh3::xxh3_128(bytes),
            modules,
            factors,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rank of every delta.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// LoRA's alpha: the deltas are scaled by `alpha / rank`.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// The adapted layers, named as in `model.safetensors`, in the order of the base hash.
    pub fn modules(&self) -> &[String] {
        &self.modules
    }

    /// xxh3-128 of the adapter file's bytes.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// SHA-256 of the base weights it was trained on (the adapted layers' weights, in order).
    pub fn base_weights_sha256(&self) -> &str {
        &self.base_weights_sha256
    }

    pub(crate) fn factors(&self, module: &str) -> Option<&Factors> {
        self.factors.get(module)
    }

    pub(crate) fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// The error for an adapter that does not fit the model whose weights are at `weights`.
    pub(crate) fn mismatch(&self, weights: &Path, message: String) -> Error {
        Error::Adapter {
            path: self.path.clone(),
            message: format!(
                "{message}: it was not trained for the model {}; use the adapter made for that \
                 model (scripts/train_adapter.py trains one), or none",
                weights.display()
            ),
        }
    }
}

/// A safetensors file's tensors and metadata, borrowed from its bytes.
struct Tensors<'a> {
    views: HashMap<String, TensorView<'a>>,
    metadata: HashMap<String, String>,
}

impl<'a> Tensors<'a> {
    fn parse(bytes: &'a [u8]) -> std::result::Result<Tensors<'a>, safetensors::SafeTensorError> {
        let metadata = SafeTensors::read_metadata(bytes)?
            .1
            .metadata()
            .clone()
            .unwrap_or_default();
        let views = SafeTensors::deserialize(bytes)?
            .tensors()
            .into_iter()
            .collect();
        Ok(Tensors { views, metadata })
    }
}

/// A tensor's values as `f32` (stored as `f32`, `f16` or `bf16`), or `None` for other dtypes.
fn floats(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let d = view.data();
    let halves = |f: fn(u16) -> f32| {
        d.chunks_exact(2)
            .map(|b| f(u16::from_le_bytes([b[0], b[1]])))
            .collect()
    };
    match view.dtype() {
        Dtype::F32 => Some(
            d.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(halves(|b| half::f16::from_bits(b).to_f32())),
        Dtype::BF16 => Some(halves(|b| half::bf16::from_bits(b).to_f32())),
        _ => None,
    }
}

/// `weight` (`[n_out][n_in]`) plus `scale · B · A`: the merged weight of one layer.
pub(crate) fn merge(weight: &[f32], f: &Factors, rank: usize, scale: f32) -> Vec<f32> {
    let mut out = weight.to_vec();
    for (o, row) in out.chunks_exact_mut(f.n_in).enumerate() {
        for k in 0..rank {
            let coef = scale * f.b[o * rank + k];
            for (w, &a) in row.iter_mut().zip(&f.a[k * f.n_in..(k + 1) * f.n_in]) {
                *w += coef * a;
            }
        }
    }
    out
}
