//! Test support (feature `testing`): a tiny BERT model with random weights, so that the whole
//! index-and-search pipeline runs in tests without the real model. Its vectors are meaningless for
//! ranking; they are only deterministic.

use std::io;
use std::path::Path;

const TOKENIZER: &str = include_str!("tiny-tokenizer.json");
/// The tiny model's vector dimension.
pub const HIDDEN: usize = 8;
const INTERMEDIATE: usize = 16;
const VOCAB: usize = 21;
const POSITIONS: usize = 64;

/// Writes `config.json`, `tokenizer.json` and `model.safetensors` of a 2-layer, 8-dimensional BERT
/// with weights drawn from `seed` into `dir` (created if needed).
pub fn write_tiny_model(dir: &Path, seed: u64) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "max_position_embeddings": POSITIONS, "num_attention_heads": 2,
        "num_hidden_layers": 2, "pad_token_id": 0, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": VOCAB,
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER)?;

    let mut rng = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    let mut random = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                // Sum of four uniforms: roughly normal, standard deviation about 0.5.
                let mut s = 0.0;
                for _ in 0..4 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    s += (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                }
                s * 0.87
            })
            .collect()
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add =
        |name: String, shape: Vec<usize>, data: Vec<f32>| tensors.push((name, shape, data));
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![VOCAB, HIDDEN],
        random(VOCAB * HIDDEN),
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![POSITIONS, HIDDEN],
        random(POSITIONS * HIDDEN),
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, HIDDEN],
        random(2 * HIDDEN),
    );
    let mut norms = vec!["embeddings.LayerNorm".to_string()];
    for l in 0..2 {
        let p = format!("encoder.layer.{l}");
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            add(
                format!("{p}.{m}.weight"),
                vec![HIDDEN, HIDDEN],
                random(HIDDEN * HIDDEN),
            );
            add(format!("{p}.{m}.bias"), vec![HIDDEN], random(HIDDEN));
        }
        add(
            format!("{p}.intermediate.dense.weight"),
            vec![INTERMEDIATE, HIDDEN],
            random(INTERMEDIATE * HIDDEN),
        );
        add(
            format!("{p}.intermediate.dense.bias"),
            vec![INTERMEDIATE],
            random(INTERMEDIATE),
        );
        add(
            format!("{p}.output.dense.weight"),
            vec![HIDDEN, INTERMEDIATE],
            random(HIDDEN * INTERMEDIATE),
        );
        add(
            format!("{p}.output.dense.bias"),
            vec![HIDDEN],
            random(HIDDEN),
        );
        norms.push(format!("{p}.attention.output.LayerNorm"));
        norms.push(format!("{p}.output.LayerNorm"));
    }
    for n in norms {
        add(format!("{n}.weight"), vec![HIDDEN], vec![1.0; HIDDEN]);
        add(format!("{n}.bias"), vec![HIDDEN], vec![0.0; HIDDEN]);
    }
    std::fs::write(dir.join("model.safetensors"), safetensors(&tensors))
}

/// The safetensors layout: u64 header length, JSON header of dtype/shape/offsets, raw data.
fn safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    out
}

/// A deterministic bag-of-words embedder, for tests and benchmarks that need vectors whose
/// ranking means something but not the model: each lower-cased word adds one to a hashed
/// dimension (FNV-1a; dimension 0 holds a constant, so no vector is zero), then L2
/// normalisation. Texts that share words are close; embedding costs microseconds.
#[derive(Clone, Copy, Debug)]
pub struct HashedWords {
    dim: usize,
    letters_only: bool,
}

impl HashedWords {
    /// `dim`-dimensional vectors (at least 2); words are runs of letters and digits.
    pub const fn new(dim: usize) -> Self {
        assert!(dim >= 2, "HashedWords needs at least 2 dimensions");
        HashedWords {
            dim,
            letters_only: false,
        }
    }

    /// As [`HashedWords::new`], but words are runs of letters only (`notify_one2` is `notify`,
    /// `one`).
    pub const fn letters(dim: usize) -> Self {
        HashedWords {
            letters_only: true,
            ..HashedWords::new(dim)
        }
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        v[0] = 0.1;
        let split = |c: char| {
            if self.letters_only {
                !c.is_alphabetic()
            } else {
                !c.is_alphanumeric()
            }
        };
        for w in text.split(split).filter(|w| !w.is_empty()) {
            let h = w
                .to_lowercase()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
                });
            v[1 + (h % (self.dim as u64 - 1)) as usize] += 1.0;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }
}

impl bitseek_embed::Embedder for HashedWords {
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&self, texts: &[&str]) -> bitseek_embed::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

/// Writes to `path` a code head for the tiny model ([`HIDDEN`] wide, 16 hidden units) with
/// fixed non-zero weights, claiming the vectors whose identity is `fingerprint`
/// (`ModelInfo::vectors_fingerprint`).
pub fn write_head(path: &Path, fingerprint: &str) -> io::Result<()> {
    use bitseek_codes::quantizer::learned::Mlp;
    let mlp = |seed: u32| {
        let v = |n: usize, k: u32| -> Vec<f32> {
            (0..n)
                .map(|i| (((i as u32).wrapping_mul(2654435761) ^ k) % 997) as f32 / 997.0 - 0.5)
                .collect()
        };
        Mlp {
            input: HIDDEN,
            hidden: 16,
            output: HIDDEN,
            w1: v(16 * HIDDEN, seed),
            b1: v(16, seed + 1),
            w2: v(HIDDEN * 16, seed + 2),
            b2: v(HIDDEN, seed + 3),
        }
    };
    let meta = crate::encoder::HeadMeta {
        base_name: "tiny".into(),
        base_fingerprint: fingerprint.into(),
        training: "{\"test\": true}".into(),
    };
    let bytes = crate::encoder::head_bytes(&mlp(1), &mlp(9), &meta).map_err(io::Error::other)?;
    std::fs::write(path, bytes)
}
