//! The tiny BERT the tests share: random weights, a hand-made tokenizer, no real model needed.

// Each test file uses a part of this module.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub const TOKENIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tiny-tokenizer.json"
);
pub const HIDDEN: usize = 8;
pub const INTERMEDIATE: usize = 16;
pub const VOCAB: usize = 21;
pub const POSITIONS: usize = 32;

/// Writes config.json, tokenizer.json and model.safetensors of a 2-layer BERT into `dir`.
pub fn make_model(dir: &Path, max_seq_length: Option<usize>) -> HashMap<String, Tensor> {
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "max_position_embeddings": POSITIONS, "num_attention_heads": 2,
        "num_hidden_layers": 2, "pad_token_id": 0, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": VOCAB,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(TOKENIZER, dir.join("tokenizer.json")).unwrap();
    if let Some(n) = max_seq_length {
        std::fs::write(
            dir.join("sentence_bert_config.json"),
            format!(r#"{{"max_seq_length": {n}}}"#),
        )
        .unwrap();
    }
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let mut add = |name: String, shape: &[usize]| {
        let x = Tensor::randn(0f32, 0.5, shape, &dev).unwrap();
        t.insert(name, x);
    };
    add("embeddings.word_embeddings.weight".into(), &[VOCAB, HIDDEN]);
    add(
        "embeddings.position_embeddings.weight".into(),
        &[POSITIONS, HIDDEN],
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        &[2, HIDDEN],
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
            add(format!("{p}.{m}.weight"), &[HIDDEN, HIDDEN]);
            add(format!("{p}.{m}.bias"), &[HIDDEN]);
        }
        add(
            format!("{p}.intermediate.dense.weight"),
            &[INTERMEDIATE, HIDDEN],
        );
        add(format!("{p}.intermediate.dense.bias"), &[INTERMEDIATE]);
        add(format!("{p}.output.dense.weight"), &[HIDDEN, INTERMEDIATE]);
        add(format!("{p}.output.dense.bias"), &[HIDDEN]);
        norms.push(format!("{p}.attention.output.LayerNorm"));
        norms.push(format!("{p}.output.LayerNorm"));
    }
    for n in norms {
        t.insert(
            format!("{n}.weight"),
            Tensor::ones(HIDDEN, DType::F32, &dev).unwrap(),
        );
        t.insert(
            format!("{n}.bias"),
            Tensor::zeros(HIDDEN, DType::F32, &dev).unwrap(),
        );
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    t
}
