//! Reading a WordPiece `tokenizer.json` (BERT's, all-MiniLM-L6-v2's) in a few milliseconds.
//!
//! `tokenizers`' own reader parses the model section into an untyped `serde_json::Value` first
//! (to tell its model kinds apart), which for a 30,522-word vocabulary means a 30k-entry BTreeMap
//! of boxed values built and thrown away: most of the 466 KB file's load time, the largest piece
//! of a `bitseek search` process. Here the file is parsed once into typed fields, the WordPiece
//! model is built from its vocabulary with `tokenizers`' builder, and the other parts
//! (normalizer, pre-tokenizer, post-processor, decoder, added tokens) are `tokenizers`' own types
//! read by their own deserializers, assembled as `tokenizers`' reader assembles them. Any other
//! model kind, version or shape falls back to `Tokenizer::from_file`; the two give the same ids
//! (tested on the real model's tokenizer and the test tokenizer).

use std::path::Path;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer,
};

/// The parts of `tokenizer.json` a tokenizer is made of (truncation and padding are set by the
/// embedder).
#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
    #[serde(default)]
    decoder: Option<DecoderWrapper>,
    model: Model,
}

/// A WordPiece model section.
#[derive(serde::Deserialize)]
struct Model {
    #[serde(rename = "type")]
    kind: String,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
    vocab: ahash::AHashMap<String, u32>,
}

/// The tokenizer in `path`: read fast when it is a WordPiece tokenizer, else by
/// `Tokenizer::from_file`.
pub(crate) fn load(path: &Path) -> Result<Tokenizer, String> {
    match fast(path) {
        Some(t) => Ok(t),
        None => Tokenizer::from_file(path).map_err(|e| e.to_string()),
    }
}

/// The WordPiece reader; `None` for anything it does not read (the caller falls back).
pub(crate) fn fast(path: &Path) -> Option<Tokenizer> {
    let bytes = std::fs::read(path).ok()?;
    let file: File = serde_json::from_slice(&bytes).ok()?;
    if file.model.kind != "WordPiece" || file.version.as_deref().is_some_and(|v| v != "1.0") {
        return None;
    }
    let m = file.model;
    let model = WordPiece::builder()
        .vocab(m.vocab)
        .unk_token(m.unk_token)
        .continuing_subword_prefix(m.continuing_subword_prefix)
        .max_input_chars_per_word(m.max_input_chars_per_word)
        .build()
        .ok()?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder);
    tokenizer.add_tokens(&file.added_tokens);
    Some(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code, prose, accents, CJK, special-token text and a word past the 100-character limit.
    const TEXTS: [&str; 7] = [
        "fn read_to_string(path: &Path) -> io::Result<String> { /* ... */ }",
        "Where are index files checksummed?",
        "naïve café résumé — ÉTÉ",
        "日本語のテキスト and 中文",
        "[CLS] a [MASK] in the middle [SEP] [PAD] [UNK]",
        "",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];

    fn same_as_tokenizers(path: &Path) {
        // The file's own padding and truncation are replaced by the embedder's window either
        // way (the fast reader does not read them).
        let mut reference = Tokenizer::from_file(path).unwrap();
        reference.with_padding(None);
        reference.with_truncation(None).unwrap();
        let ours = fast(path).expect("a WordPiece tokenizer is read by the fast path");
        assert_eq!(ours.get_vocab_size(true), reference.get_vocab_size(true));
        for text in TEXTS {
            for special in [true, false] {
                let (a, b) = (
                    ours.encode(text, special).unwrap(),
                    reference.encode(text, special).unwrap(),
                );
                assert_eq!(a.get_ids(), b.get_ids(), "{text:?}");
                assert_eq!(a.get_tokens(), b.get_tokens(), "{text:?}");
                assert_eq!(a.get_offsets(), b.get_offsets(), "{text:?}");
            }
            let ids = reference.encode(text, true).unwrap().get_ids().to_vec();
            assert_eq!(
                ours.decode(&ids, true).unwrap(),
                reference.decode(&ids, true).unwrap()
            );
        }
    }

    #[test]
    fn the_fast_reader_tokenizes_as_tokenizers_does() {
        same_as_tokenizers(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-tokenizer.json"),
        );
    }

    #[test]
    #[ignore = "needs the model: run `bitseek model fetch`"]
    fn the_fast_reader_tokenizes_the_real_model_as_tokenizers_does() {
        let dir = crate::default_model_dir().unwrap();
        same_as_tokenizers(&dir.join("tokenizer.json"));
    }

    #[test]
    fn other_files_fall_back_or_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("tokenizer.json");
        std::fs::write(&bad, b"{\"model\": {\"type\": \"BPE\"}}").unwrap();
        assert!(fast(&bad).is_none());
        assert!(load(&bad).is_err());
        assert!(load(&dir.path().join("missing.json")).is_err());
    }
}
