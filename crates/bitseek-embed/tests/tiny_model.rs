//! The whole embedding pipeline on a tiny BERT made here with random weights and a hand-made
//! tokenizer: truncation, no padding, batching by length, pooling and normalisation. No real model
//! needed.

mod common;

use bitseek_embed::{BertEmbedder, EmbedOptions, Embedder, Error, ModelDir, WindowedTokenizer};
use candle_core::{DType, Device, Tensor};
use common::{make_model, HIDDEN, POSITIONS, TOKENIZER};
use std::path::Path;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn tokenizer_window_replaces_the_baked_in_truncation_and_padding() {
    // tiny-tokenizer.json truncates at 4 and pads to 128 on its own; both must be overridden.
    let tok = WindowedTokenizer::open(Path::new(TOKENIZER), 6).unwrap();
    let ids = tok.encode(&["a b c d e f g h", "hello", ""]).unwrap();
    assert_eq!(ids[0].len(), 6, "{:?}", ids[0]);
    assert_eq!(ids[0].first(), Some(&2)); // [CLS]
    assert_eq!(ids[0].last(), Some(&3)); // [SEP]
    assert_eq!(ids[0][1..5], [7, 8, 9, 10]); // a b c d
    assert_eq!(ids[1], [2, 5, 3]); // no padding
    assert_eq!(ids[2], [2, 3]);
    let wide = WindowedTokenizer::open(Path::new(TOKENIZER), 512).unwrap();
    assert_eq!(wide.encode(&["a b c d e f g h"]).unwrap()[0].len(), 10);
}

#[test]
fn bad_tokenizer_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    std::fs::write(&path, "{\"not\": \"a tokenizer\"}").unwrap();
    let err = WindowedTokenizer::open(&path, 8).unwrap_err();
    assert!(matches!(err, Error::Tokenizer { .. }), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn embeddings_are_unit_vectors_independent_of_batching() {
    let tmp = tempfile::tempdir().unwrap();
    make_model(tmp.path(), Some(8));
    let dir = ModelDir::open(tmp.path()).unwrap();
    let texts = [
        "hello world",
        "a b c d e f g h a b c d e f g h", // past the window of 8
        "",
        "fn read files, a.",
        "b",
        "unknown wörds 文件 😀",
        "hello world",
        "c d e",
    ];
    let one_batch = BertEmbedder::load_with(
        &dir,
        EmbedOptions {
            batch_size: 64,
            max_tokens: None,
            int8: false,
        },
    )
    .unwrap();
    assert_eq!(one_batch.dim(), HIDDEN);
    assert_eq!(one_batch.max_tokens(), 8);
    let all = one_batch.embed(&texts).unwrap();
    assert_eq!(all.len(), texts.len());
    for v in &all {
        assert_eq!(v.len(), HIDDEN);
        assert!(v.iter().all(|x| x.is_finite()));
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_eq!(all[0], all[6]);
    assert!(cosine(&all[0], &all[4]) < 0.9999);

    // Each text alone (no padding at all) and in batches of 3 (padding inside batches) agree.
    let small = BertEmbedder::load_with(
        &dir,
        EmbedOptions {
            batch_size: 3,
            max_tokens: None,
            int8: false,
        },
    )
    .unwrap();
    let batched = small.embed(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let alone = one_batch.embed(&[t]).unwrap().remove(0);
        assert!(cosine(&alone, &all[i]) > 0.99999, "text {i}");
        assert!(cosine(&alone, &batched[i]) > 0.99999, "text {i}");
    }
    assert!(one_batch.embed(&[]).unwrap().is_empty());
}

#[test]
fn window_defaults_to_the_model_and_is_capped_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    make_model(tmp.path(), None);
    let dir = ModelDir::open(tmp.path()).unwrap();
    assert_eq!(BertEmbedder::load(&dir).unwrap().max_tokens(), POSITIONS);
    let over = EmbedOptions {
        batch_size: 4,
        max_tokens: Some(10_000),
        int8: false,
    };
    let e = BertEmbedder::load_with(&dir, over).unwrap();
    assert_eq!(e.max_tokens(), POSITIONS);
    // Texts longer than the position table are truncated, not an error.
    let long = "a ".repeat(100);
    assert_eq!(e.embed(&[long.as_str()]).unwrap()[0].len(), HIDDEN);
}

#[test]
fn damaged_weights_and_config_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    make_model(tmp.path(), None);
    std::fs::write(tmp.path().join("model.safetensors"), b"garbage").unwrap();
    let err = BertEmbedder::load(&ModelDir::open(tmp.path()).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Weights { .. }), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::write(tmp.path().join("config.json"), b"{\"hidden_size\": 8}").unwrap();
    let err = BertEmbedder::load(&ModelDir::open(tmp.path()).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

/// The packed encoder against candle-transformers' `BertModel` (padded batch, attention mask, mean
/// pooling done here) on the same random weights.
#[test]
fn packed_encoder_matches_candle_bert() {
    use candle_transformers::models::bert::{BertModel, Config};
    let tmp = tempfile::tempdir().unwrap();
    make_model(tmp.path(), Some(16));
    let dir = ModelDir::open(tmp.path()).unwrap();
    let texts = [
        "hello world",
        "a b c d e f g h a b c",
        "",
        "fn read files.",
        "x y z",
    ];
    let ours = BertEmbedder::load(&dir).unwrap();
    let ids = ours.tokenizer().encode(&texts).unwrap();
    let got = ours.embed(&texts).unwrap();

    let dev = Device::Cpu;
    let config: Config =
        serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(
        std::fs::read(tmp.path().join("model.safetensors")).unwrap(),
        DType::F32,
        &dev,
    )
    .unwrap();
    let bert = BertModel::load(vb, &config).unwrap();
    let len = ids.iter().map(Vec::len).max().unwrap();
    let mut input = vec![0u32; texts.len() * len];
    let mut mask = vec![0f32; texts.len() * len];
    for (r, t) in ids.iter().enumerate() {
        input[r * len..r * len + t.len()].copy_from_slice(t);
        mask[r * len..r * len + t.len()].fill(1.0);
    }
    let input = Tensor::from_vec(input, (texts.len(), len), &dev).unwrap();
    let mask = Tensor::from_vec(mask, (texts.len(), len), &dev).unwrap();
    let hidden = bert
        .forward(&input, &input.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let summed = hidden
        .broadcast_mul(&mask.unsqueeze(2).unwrap())
        .unwrap()
        .sum(1)
        .unwrap();
    let mean = summed.broadcast_div(&mask.sum_keepdim(1).unwrap()).unwrap();
    let want = mean.to_vec2::<f32>().unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt();
        let w: Vec<f32> = w.iter().map(|x| x / norm).collect();
        for (a, b) in g.iter().zip(&w) {
            assert!((a - b).abs() < 1e-4, "text {i}: {g:?} vs {w:?}");
        }
    }
}
