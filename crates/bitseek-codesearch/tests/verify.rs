//! A code index's opens after the first trust the store's record of what was verified; damage
//! that a file's metadata does not show is still caught by `verify_index` (`bitseek index
//! --verify`), and the lexical file is checked fully on its first open and by `verify_index`.

use bitseek_codesearch::testing::HashedWords;
use bitseek_codesearch::{index_dir, index_repo, verify_index, CodeIndex, IndexOptions, ModelInfo};
use bitseek_embed::Embedder;
use std::fs;
use std::path::Path;

const DIM: usize = 8;

/// The crate's test embedder (bag of hashed words).
const WORDS: HashedWords = HashedWords::new(DIM);

fn indexed() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let src = repo.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for (name, body) in [("a.rs", "parse_port"), ("b.rs", "render_address")] {
        let text = format!("/// Doc.\npub fn {body}(x: u32) -> u32 {{\n    x + 1\n}}\n");
        fs::write(src.join(name), text).unwrap();
    }
    let model = ModelInfo {
        name: "words".into(),
        dim: DIM,
        fingerprint: "0".repeat(32),
        precision: "f32".into(),
        encoder: None,
        adapter: None,
    };
    index_repo(
        repo.path(),
        &WORDS,
        &model,
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    repo
}

/// Changes one byte of `path` in place, keeping its length and modification time.
fn damage_quietly(path: &Path, at: impl FnOnce(&[u8]) -> usize) {
    let modified = fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = fs::read(path).unwrap();
    let i = at(&bytes);
    bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    use std::io::Write;
    (&f).write_all(&bytes).unwrap();
    f.set_modified(modified).unwrap();
}

#[test]
fn verify_finds_what_cheap_opens_trust_and_says_to_reindex() {
    let repo = indexed();
    let root = repo.path();
    let v = verify_index(root).unwrap();
    assert_eq!((v.units, v.files), (2, 2));
    assert!(v.bytes > 0);

    let dir = index_dir(root);
    let payloads = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    // A line number in a payload: valid JSON either way, so only the checksum can tell.
    damage_quietly(&payloads, |b| {
        b.windows(13).position(|w| w == b"\"start_line\":").unwrap() + 13
    });
    let idx = CodeIndex::open(root).unwrap();
    assert!(!idx.collection().verified_now());
    drop(idx);
    let err = verify_index(root).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&payloads.display().to_string()), "{err}");
    assert!(
        err.contains("re-index") || err.contains("bitseek index"),
        "{err}"
    );
}

#[test]
fn a_missing_index_says_how_to_make_one() {
    let empty = tempfile::tempdir().unwrap();
    let err = verify_index(empty.path()).unwrap_err().to_string();
    assert!(err.contains("run `bitseek index"), "{err}");
}

#[test]
fn a_quietly_damaged_lexical_file_is_caught_by_verify() {
    use bitseek_codesearch::{Filter, SearchMode};
    let repo = indexed();
    let root = repo.path();
    let question = "parse_port";
    let v = WORDS.embed(&[question]).unwrap();
    let search = || {
        let idx = CodeIndex::open(root).unwrap();
        idx.search_with(&[question], &v, 2, &Filter::default(), SearchMode::Hybrid)
    };
    // The first search checks the lexical file and records it beside it.
    assert_eq!(search().unwrap()[0][0].name, "parse_port");
    let dir = index_dir(root);
    let lexical = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .unwrap();
    assert!(lexical.with_extension("bin.verified").exists());
    // A byte of a name as written: the structure stays valid, only the checksum can tell.
    damage_quietly(&lexical, |b| b.len() - 1);
    assert!(
        search().is_ok(),
        "later opens trust the recorded verification"
    );
    let err = verify_index(root).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&lexical.display().to_string()), "{err}");
    assert!(err.contains("bitseek index"), "{err}");
    // A damaged file that also changed its identity is caught by the next open.
    fs::write(&lexical, b"BSLEXv2\0").unwrap();
    let err = search().unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn an_index_without_payload_row_offsets_is_searched_and_rewritten_by_the_next_index() {
    use bitseek_codesearch::{Filter, SearchMode};
    let repo = indexed();
    let root = repo.path();
    let dir = index_dir(root);
    // What an older bitseek wrote: no row-offset table, no manifest entry for it.
    let manifest = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let table = m["payload_offsets"]["file"].as_str().unwrap().to_owned();
    fs::remove_file(dir.join(&table)).unwrap();
    m.as_object_mut().unwrap().remove("payload_offsets");
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let question = "render_address";
    let v = WORDS.embed(&[question]).unwrap();
    let idx = CodeIndex::open(root).unwrap();
    assert!(!idx.collection().has_row_offsets());
    let hits = idx
        .search_with(&[question], &v, 2, &Filter::default(), SearchMode::Hybrid)
        .unwrap();
    assert_eq!(hits[0][0].name, "render_address");
    let generation = idx.collection().generation();
    drop(idx);

    // Nothing changed in the repository, but the format did: the next index writes the table.
    let model = ModelInfo {
        name: "words".into(),
        dim: DIM,
        fingerprint: "0".repeat(32),
        precision: "f32".into(),
        encoder: None,
        adapter: None,
    };
    let report = index_repo(root, &WORDS, &model, &IndexOptions::default(), &|_, _| {}).unwrap();
    assert_eq!(report.units_embedded, 0, "the vectors are reused");
    assert_eq!(report.generation, generation + 1);
    let idx = CodeIndex::open(root).unwrap();
    assert!(idx.collection().has_row_offsets());
    let again = idx
        .search_with(&[question], &v, 2, &Filter::default(), SearchMode::Hybrid)
        .unwrap();
    assert_eq!(again, hits);
    // And an index that is current is left alone.
    drop(idx);
    let report = index_repo(root, &WORDS, &model, &IndexOptions::default(), &|_, _| {}).unwrap();
    assert_eq!(report.generation, generation + 1);
}

#[test]
fn a_quietly_damaged_payload_row_offset_table_is_caught_by_verify() {
    let repo = indexed();
    let root = repo.path();
    let dir = index_dir(root);
    let table = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "offsets"))
        .expect("a payload row-offset table");
    // The last byte of the file's length: the table's structure stays valid.
    damage_quietly(&table, |b| b.len() - 8);
    assert!(CodeIndex::open(root).is_ok(), "later opens trust the stamp");
    let err = verify_index(root).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&table.display().to_string()), "{err}");
    assert!(err.contains("bitseek index"), "{err}");
}
