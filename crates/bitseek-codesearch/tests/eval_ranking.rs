//! `eval-code --ranking` end to end on a tiny pairs file with the tiny random model: packages
//! alternate between tune and held-out, symbol lookup counts a first hit that defines the name,
//! and definitions first finds every name whatever the (meaningless) embeddings say.

use bitseek_codesearch::eval::{
    evaluate_ranking, PairSet, PairVectors, RankingOptions, VectorSource,
};
use std::io::Write;

#[test]
fn symbol_lookup_and_package_split() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    bitseek_codesearch::testing::write_tiny_model(&model, 3).unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    let mut f = std::fs::File::create(&pairs).unwrap();
    let rows = [
        (
            "alpha",
            "notify_one",
            "Wakes one waiter.",
            "fn notify_one() { wake(); }",
        ),
        (
            "alpha",
            "notify_last",
            "Wakes the last waiter.",
            "fn notify_last() { notify_one(); notify_one(); }",
        ),
        (
            "beta",
            "parse_frame",
            "Parses a frame.",
            "fn parse_frame(b: &[u8]) { read(b) }",
        ),
        (
            "beta",
            "read_frame",
            "Reads a frame and parses it.",
            "fn read_frame() { parse_frame(&[]); parse_frame(&[]) }",
        ),
        (
            "gamma",
            "Index.open",
            "Opens an index file.",
            "def open(self, path):\n    return load(path)",
        ),
        (
            "gamma",
            "open_all",
            "Opens every index.",
            "def open_all(paths):\n    return [open(p) for p in paths]",
        ),
    ];
    for (package, name, query, code) in rows {
        let line = serde_json::json!({
            "package": package, "name": name, "query": query, "code": code,
            "name_in_query": false, "lang": "rust",
        });
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let set = PairSet::read(&pairs, None).unwrap();
    let source = VectorSource {
        embed: true,
        model_dir: Some(model.clone()),
        int8: false,
        adapter: None,
    };
    let vectors = PairVectors::load(&set, &source, &mut ()).unwrap();
    let options = RankingOptions {
        queries: None,
        symbols: None,
        model_dir: Some(model),
        adapter: None,
        head: None,
        default: bitseek_codesearch::hybrid::Ranking::default(),
    };
    let e = evaluate_ranking(&set, &vectors, &options, &mut ()).unwrap();
    assert_eq!(e.tune_packages, ["alpha", "gamma"]);
    assert_eq!(e.held_out_packages, ["beta"]);
    let row = |name: &str| e.rows.iter().find(|r| r.method == name).unwrap();
    let before = row("fused, before (rrf 60)");
    let after = row("default (after)");
    assert_eq!((after.tune.symbols, after.held_out.symbols), (4, 2));
    assert_eq!(after.tune.docstring.queries, 4);
    for part in [&after.tune, &after.held_out] {
        assert_eq!((part.symbol_name, part.symbol_words), (1.0, 1.0));
    }
    // Callers that repeat the name outrank the definition without definitions first.
    assert!(before.tune.symbol_name < 1.0 || before.held_out.symbol_name < 1.0);
    // A file without packages or names is refused, naming the line.
    std::fs::write(
        &pairs,
        r#"{"query": "q", "code": "fn a() {}", "name_in_query": false, "lang": "rust"}"#,
    )
    .unwrap();
    let set = PairSet::read(&pairs, None).unwrap();
    let vectors = PairVectors::load(&set, &source, &mut ()).unwrap();
    let err = evaluate_ranking(&set, &vectors, &options, &mut ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1") && err.contains("package"), "{err}");
}
