//! The code index on small fixture repositories: what gets indexed, incremental re-indexing (only
//! changed files are embedded, deleted ones drop out), failures that leave the old index usable,
//! filters, and the model check.

use bitseek_codesearch::testing::HashedWords;
use bitseek_codesearch::{
    group_by_file, hit_text, index_repo, CodeError, CodeHit, CodeIndex, Filter, IndexOptions,
    ModelInfo, SearchMode, Stale,
};
use bitseek_embed::{BertEmbedder, Embedder, ModelDir};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

const DIM: usize = 32;

/// The crate's test embedder (bag of hashed words).
const WORDS: HashedWords = HashedWords::new(DIM);

/// Counts the texts it embeds and remembers them; can be told to fail.
struct Counting<E> {
    inner: E,
    texts: Mutex<Vec<String>>,
    calls: AtomicUsize,
    fail: AtomicBool,
}

impl<E: Embedder> Counting<E> {
    fn new(inner: E) -> Self {
        Counting {
            inner,
            texts: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        }
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.texts.lock().unwrap())
    }
}

impl<E: Embedder> Embedder for Counting<E> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embed(&self, texts: &[&str]) -> bitseek_embed::Result<Vec<Vec<f32>>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.fail.load(Ordering::Relaxed) {
            return Err(bitseek_embed::Error::Io {
                path: "embedder".into(),
                source: std::io::Error::other("simulated failure"),
            });
        }
        self.texts
            .lock()
            .unwrap()
            .extend(texts.iter().map(|t| t.to_string()));
        self.inner.embed(texts)
    }
}

fn words_model() -> ModelInfo {
    ModelInfo {
        name: "words".into(),
        dim: DIM,
        fingerprint: "0".repeat(32),
        precision: "f32".into(),
        encoder: None,
        adapter: None,
    }
}

const PY: &str = r#"import os


def read_config(path):
    """Read the configuration file and return its settings."""
    with open(path) as f:
        return f.read()


class Cache:
    """A small in-memory cache."""

    def get(self, key):
        return self.items.get(key)

    def put(self, key, value):
        self.items[key] = value
"#;

const RS: &str = r#"/// Parses a port number from text.
pub fn parse_port(s: &str) -> Option<u16> {
    s.parse().ok()
}

/// A network address.
pub struct Address {
    host: String,
    port: u16,
}

impl Address {
    /// Formats the address as host:port.
    pub fn render(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}
"#;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "app/config.py", PY);
    write(root, "src/net.rs", RS);
    write(
        root,
        "src/util.rs",
        "pub fn double(x: u32) -> u32 {\n    x * 2\n}\n",
    );
    write(
        root,
        "README.md",
        "# Fixture\n\nA tiny repository for tests.\n",
    );
    write(root, "node_modules/dep/index.js", "function dep() {}\n");
    write(root, "blob.bin", "\0\0\0binary");
    tmp
}

fn index(root: &Path, e: &dyn Embedder) -> bitseek_codesearch::IndexReport {
    index_repo(
        root,
        e,
        &words_model(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap()
}

fn paths_of(texts: &[String]) -> Vec<String> {
    let mut p: Vec<String> = texts
        .iter()
        .map(|t| t.lines().next().unwrap_or("").to_owned())
        .collect();
    p.sort();
    p.dedup();
    p
}

#[test]
fn indexes_units_with_their_places() {
    let repo = fixture();
    let e = Counting::new(WORDS);
    let r = index(repo.path(), &e);
    assert_eq!(r.files, 4, "{r:?}");
    assert_eq!(
        (r.files_embedded, r.files_reused, r.files_deleted),
        (4, 0, 0)
    );
    assert_eq!(r.units, r.units_embedded);
    assert_eq!(e.take().len(), r.units);
    let skipped: Vec<String> = r
        .skipped
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(skipped.contains(&"node_modules".to_string()), "{skipped:?}");
    assert!(skipped.contains(&"blob.bin".to_string()), "{skipped:?}");
    assert!(repo.path().join(".bitseek/manifest.json").is_file());
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".bitseek/.gitignore")).unwrap(),
        "*\n"
    );

    let idx = CodeIndex::open(repo.path()).unwrap();
    assert_eq!((idx.units(), idx.files()), (r.units, 4));
    let p: Vec<serde_json::Value> = idx.collection().payloads().unwrap().to_vec();
    let read_config = p.iter().find(|p| p["name"] == "read_config").unwrap();
    assert_eq!(read_config["path"], "app/config.py");
    assert_eq!(read_config["lang"], "python");
    assert_eq!(read_config["kind"], "function");
    assert_eq!(read_config["start_line"], 4);
    assert_eq!(read_config["signature"], "def read_config(path)");
    assert_eq!(read_config["file_hash"].as_str().unwrap().len(), 32);
    let render = p.iter().find(|p| p["name"] == "render").unwrap();
    assert_eq!(
        (render["kind"].as_str(), render["doc_start_line"].as_u64()),
        (Some("method"), Some(13))
    );
}

#[test]
fn reindexing_embeds_only_changed_files_and_drops_deleted_ones() {
    let repo = fixture();
    let root = repo.path();
    let e = Counting::new(WORDS);
    let first = index(root, &e);
    e.take();

    // Nothing changed: nothing embedded, everything carried over, same results.
    let again = index(root, &e);
    assert_eq!(e.take().len(), 0);
    assert_eq!(
        (again.units, again.units_reused, again.files_reused),
        (first.units, first.units, 4)
    );
    // ... and nothing written: the committed generation already is this index.
    assert_eq!(again.generation, first.generation);
    assert_eq!(
        CodeIndex::open(root).unwrap().collection().generation(),
        first.generation
    );

    // One file edited: only its units are embedded.
    write(root, "src/util.rs", "pub fn double(x: u32) -> u32 {\n    x * 2\n}\n\npub fn triple(x: u32) -> u32 {\n    x * 3\n}\n");
    let r = index(root, &e);
    let texts = e.take();
    assert_eq!(paths_of(&texts), ["src/util.rs"]);
    assert_eq!(texts.len(), 2);
    assert_eq!(
        (r.files_embedded, r.files_reused, r.units),
        (1, 3, first.units + 1)
    );

    // The reused vectors are the ones computed before: search answers as from scratch.
    let idx = CodeIndex::open(root).unwrap();
    let q = WORDS.embed(&["parse a port number"]).unwrap();
    let hit = &idx.search(&q, 1, &Filter::default()).unwrap()[0][0];
    assert_eq!((hit.path.as_str(), hit.line), ("src/net.rs", 2));
    drop(idx);

    // One file deleted, one added: the deleted file's units are gone.
    std::fs::remove_file(root.join("app/config.py")).unwrap();
    write(root, "lib/new.py", "def fresh():\n    return 1\n");
    let r = index(root, &e);
    assert_eq!(paths_of(&e.take()), ["lib/new.py"]);
    assert_eq!((r.files_deleted, r.files_embedded, r.files), (1, 1, 4));
    let idx = CodeIndex::open(root).unwrap();
    assert!(idx
        .collection()
        .payloads()
        .unwrap()
        .iter()
        .all(|p| p["path"] != "app/config.py"));
    assert!(idx
        .collection()
        .payloads()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fresh"));
}

#[test]
fn a_failed_run_leaves_the_previous_index_usable() {
    let repo = fixture();
    let root = repo.path();
    let e = Counting::new(WORDS);
    let first = index(root, &e);
    write(root, "src/util.rs", "pub fn changed() {}\n");
    e.fail.store(true, Ordering::Relaxed);
    let err = index_repo(
        root,
        &e,
        &words_model(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("simulated failure"), "{err}");
    let idx = CodeIndex::open(root).unwrap();
    assert_eq!(
        (idx.units(), idx.collection().generation()),
        (first.units, first.generation)
    );
    let names: Vec<String> = std::fs::read_dir(root.join(".bitseek"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    assert_eq!(names, ["seg-1.bitseek"]);
}

#[test]
fn another_model_re_embeds_everything() {
    let repo = fixture();
    let root = repo.path();
    let e = Counting::new(WORDS);
    let first = index(root, &e);
    e.take();
    let other = ModelInfo {
        fingerprint: "1".repeat(32),
        ..words_model()
    };
    let r = index_repo(root, &e, &other, &IndexOptions::default(), &|_, _| {}).unwrap();
    assert_eq!(e.take().len(), first.units);
    assert!(r.rebuilt_because.unwrap().contains("model"));
    let idx = CodeIndex::open(root).unwrap();
    let err = idx.check_model(&words_model()).unwrap_err();
    assert!(matches!(err, CodeError::ModelMismatch { .. }));
    assert!(err.to_string().contains("--model-dir"), "{err}");
}

#[test]
fn filters_by_language_and_path() {
    let repo = fixture();
    let root = repo.path();
    index(root, &WORDS);
    let idx = CodeIndex::open(root).unwrap();
    let q = WORDS
        .embed(&["read the configuration file", "address port"])
        .unwrap();

    let all = idx.search(&q, 100, &Filter::default()).unwrap();
    assert_eq!(all[0].len(), idx.units());
    assert_eq!(all[0][0].signature, "def read_config(path)");
    assert!(all[0].windows(2).all(|w| w[0].score >= w[1].score));

    let rust = idx
        .search(&q, 3, &Filter::new(Some("rs"), None).unwrap())
        .unwrap();
    for hits in &rust {
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|h| h.lang == "rust"), "{hits:?}");
    }
    let by_dir = idx
        .search(&q, 50, &Filter::new(None, Some("src")).unwrap())
        .unwrap();
    assert!(by_dir[1].iter().all(|h| h.path.starts_with("src/")));
    assert_eq!(
        by_dir[1].len(),
        all[0].iter().filter(|h| h.path.starts_with("src/")).count()
    );
    let glob = idx
        .search(&q, 50, &Filter::new(Some("text"), Some("*.md")).unwrap())
        .unwrap();
    assert!(!glob[0].is_empty() && glob[0].iter().all(|h| h.path == "README.md"));
    let none = idx
        .search(&q, 5, &Filter::new(Some("go"), None).unwrap())
        .unwrap();
    assert!(none.iter().all(|h| h.is_empty()));

    assert!(Filter::new(Some("cobol"), None)
        .unwrap_err()
        .to_string()
        .contains("unknown language"));
    assert!(Filter::new(None, Some("a[")).is_err());
}

#[test]
fn no_index_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let err = CodeIndex::open(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(".bitseek") && msg.contains("run `bitseek index"),
        "{msg}"
    );
}

#[test]
fn a_tiny_bert_model_runs_the_whole_pipeline() {
    let repo = fixture();
    let root = repo.path();
    let model_dir = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model_dir.path(), 7).unwrap();
    let dir = ModelDir::open(model_dir.path()).unwrap();
    let bert = BertEmbedder::load(&dir).unwrap();
    let info = ModelInfo::of(&dir, bert.dim()).unwrap();
    assert_eq!(info, ModelInfo::of(&dir, bert.dim()).unwrap());
    let e = Counting::new(bert);
    let r = index_repo(root, &e, &info, &IndexOptions::default(), &|_, _| {}).unwrap();
    assert_eq!(e.take().len(), r.units);
    let idx = CodeIndex::open(root).unwrap();
    idx.check_model(&info).unwrap();
    let q = e.embed(&["where is the port parsed?"]).unwrap();
    let hits = idx
        .search(&q, 4, &Filter::new(Some("rust"), None).unwrap())
        .unwrap();
    assert_eq!(hits[0].len(), 4);

    // Another model (other weights) is refused for queries.
    let other = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(other.path(), 8).unwrap();
    let other_info = ModelInfo::of(
        &ModelDir::open(other.path()).unwrap(),
        bitseek_codesearch::testing::HIDDEN,
    )
    .unwrap();
    assert_ne!(other_info.fingerprint, info.fingerprint);
    assert!(idx.check_model(&other_info).is_err());
}

/// Ranking with the real model: hand-written questions find the function they describe first.
#[test]
#[ignore = "needs the model: bitseek model fetch"]
fn the_real_model_finds_the_described_function_first() {
    let path = bitseek_embed::resolve_model_dir(None).unwrap();
    let dir = ModelDir::open(&path).unwrap();
    let bert = BertEmbedder::load(&dir).unwrap();
    let info = ModelInfo::of(&dir, bert.dim()).unwrap();
    let repo = fixture();
    let root = repo.path();
    write(
        root,
        "src/files.rs",
        "/// Computes the SHA-256 checksum of a file on disk.\npub fn checksum_file(path: &Path) -> io::Result<String> {\n    let bytes = std::fs::read(path)?;\n    Ok(hex(sha256(&bytes)))\n}\n\n/// Sends an HTTP GET request and returns the response body.\npub fn http_get(url: &str) -> Result<String, Error> {\n    client().get(url).send()?.text()\n}\n",
    );
    index_repo(root, &bert, &info, &IndexOptions::default(), &|_, _| {}).unwrap();
    let idx = CodeIndex::open(root).unwrap();
    let cases = [
        ("how do I compute the hash of a file", "checksum_file"),
        ("download a web page over http", "http_get"),
        ("load settings from the config file", "read_config"),
        ("parse a port number from a string", "parse_port"),
    ];
    for (question, want) in cases {
        let q = bert.embed(&[question]).unwrap();
        let hits = idx.search(&q, 3, &Filter::default()).unwrap();
        let top = &hits[0][0];
        assert!(
            top.name == want,
            "{question:?}: expected {want}, got {:?}",
            hits[0]
        );
    }
}

/// Embeds every text to the same vector: the semantic ranking carries no information, so what
/// reorders hits is the lexical leg.
struct Constant;

impl Embedder for Constant {
    fn dim(&self) -> usize {
        DIM
    }
    fn embed(&self, texts: &[&str]) -> bitseek_embed::Result<Vec<Vec<f32>>> {
        let mut v = vec![0f32; DIM];
        v[0] = 1.0;
        Ok(vec![v; texts.len()])
    }
}

fn lexical_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(".bitseek"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lexical-") && n.ends_with(".bin"))
        .collect();
    names.sort();
    names
}

fn top_name(idx: &CodeIndex, question: &str, mode: SearchMode) -> String {
    let v = Constant.embed(&[question]).unwrap();
    let hits = idx
        .search_with(&[question], &v, 3, &Filter::default(), mode)
        .unwrap();
    hits[0][0].name.clone()
}

#[test]
fn the_lexical_leg_finds_identifiers_the_embedding_cannot() {
    let repo = fixture();
    let root = repo.path();
    index(root, &Constant);
    let idx = CodeIndex::open(root).unwrap();
    assert_eq!(top_name(&idx, "double", SearchMode::Hybrid), "double");
    assert_ne!(
        top_name(&idx, "double", SearchMode::Semantic),
        "double",
        "the fixture must not put `double` first by row order, or this test shows nothing"
    );
    // Scores stay cosines under fusion.
    let v = Constant.embed(&["double"]).unwrap();
    let hits = idx
        .search_with(&["double"], &v, 2, &Filter::default(), SearchMode::Hybrid)
        .unwrap();
    assert!(hits[0].iter().all(|h| (h.score - 1.0).abs() < 1e-5));
    // The filter applies to both legs.
    let rust_only = Filter::new(Some("python"), None).unwrap();
    let hits = idx
        .search_with(&["double"], &v, 3, &rust_only, SearchMode::Hybrid)
        .unwrap();
    assert!(hits[0].iter().all(|h| h.lang == "python"), "{hits:?}");
    assert_eq!(lexical_files(root).len(), 1);

    // Re-indexing keeps reused units' words and replaces the file.
    write(
        root,
        "src/util.rs",
        "pub fn triple(x: u32) -> u32 {\n    x * 3\n}\n",
    );
    let before = lexical_files(root);
    let report = index(root, &Constant);
    assert_eq!(report.rebuilt_because, None);
    assert!(report.units_reused > 0);
    let after = lexical_files(root);
    assert_eq!(after.len(), 1);
    assert_ne!(before, after);
    let idx = CodeIndex::open(root).unwrap();
    assert_eq!(top_name(&idx, "triple", SearchMode::Hybrid), "triple");
    let names: Vec<String> = {
        let v = Constant.embed(&["render"]).unwrap();
        idx.search_with(&["render"], &v, 1, &Filter::default(), SearchMode::Hybrid)
            .unwrap()[0]
            .iter()
            .map(|h| h.path.clone())
            .collect()
    };
    assert_eq!(names, ["src/net.rs"], "a reused file's words still count");
}

#[test]
fn a_damaged_lexical_file_is_an_error_and_the_next_index_rebuilds() {
    let repo = fixture();
    let root = repo.path();
    index(root, &Constant);
    let file = root.join(".bitseek").join(&lexical_files(root)[0]);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&file, &bytes).unwrap();
    let idx = CodeIndex::open(root).unwrap();
    let v = Constant.embed(&["double"]).unwrap();
    let err = idx
        .search_with(&["double"], &v, 3, &Filter::default(), SearchMode::Hybrid)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains("bitseek index"),
        "{err}"
    );
    // The semantic leg alone still answers.
    assert!(idx
        .search_with(&["double"], &v, 3, &Filter::default(), SearchMode::Semantic)
        .is_ok());
    let report = index(root, &Constant);
    let why = report.rebuilt_because.unwrap();
    assert!(why.contains("lexical file"), "{why}");
    assert_eq!(
        top_name(
            &CodeIndex::open(root).unwrap(),
            "double",
            SearchMode::Hybrid
        ),
        "double"
    );
}

#[test]
fn a_second_index_run_is_refused_while_one_holds_the_lock() {
    let repo = fixture();
    let root = repo.path();
    index(root, &Constant);
    let held =
        std::fs::File::open(root.join(".bitseek").join(bitseek_codesearch::LOCK_FILE)).unwrap();
    held.lock().unwrap();
    let err = index_repo(
        root,
        &Constant,
        &words_model(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, CodeError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("another `bitseek index`"), "{err}");
    held.unlock().unwrap();
    index(root, &Constant);
}

#[test]
fn changing_the_embedding_precision_re_embeds_and_queries_stay_compatible() {
    let repo = fixture();
    let root = repo.path();
    index(root, &WORDS);
    let int8 = ModelInfo {
        precision: "int8".into(),
        ..words_model()
    };
    let report = index_repo(root, &WORDS, &int8, &IndexOptions::default(), &|_, _| {}).unwrap();
    let why = report.rebuilt_because.unwrap();
    assert!(why.contains("f32 embeddings"), "{why}");
    assert_eq!(report.units_reused, 0);
    // Questions embedded in f32 (same model files) still search the int8-built index.
    let idx = CodeIndex::open(root).unwrap();
    assert!(idx.check_model(&words_model()).is_ok());
    assert_eq!(idx.model().precision, "int8");
}

#[test]
fn hit_text_reads_each_units_lines_back_and_catches_edits_since_indexing() {
    let repo = fixture();
    let root = repo.path();
    index(root, &WORDS);
    let idx = CodeIndex::open(root).unwrap();
    let q = WORDS.embed(&["double"]).unwrap();
    let hits = idx.search(&q, 100, &Filter::default()).unwrap().remove(0);
    for h in &hits {
        let file = std::fs::read_to_string(root.join(&h.path)).unwrap();
        let lines: Vec<&str> = file.lines().collect();
        let t = hit_text(root, h, 2).unwrap();
        assert_eq!(t.text, lines[h.line - 1..h.end_line], "{h:?}");
        assert_eq!(
            t.before,
            lines[h.line.saturating_sub(3)..h.line - 1],
            "{h:?}"
        );
        assert_eq!(
            t.after,
            lines[h.end_line..(h.end_line + 2).min(lines.len())]
        );
    }
    let double = hits.iter().find(|h| h.path == "src/util.rs").unwrap();
    // The same length but other content is caught by the hash, not quoted.
    write(
        root,
        "src/util.rs",
        "pub fn triple(x: u32) -> u32 {\n    x * 3\n}\n",
    );
    assert_eq!(hit_text(root, double, 0), Err(Stale::Changed));
    std::fs::remove_file(root.join("src/util.rs")).unwrap();
    assert_eq!(hit_text(root, double, 0), Err(Stale::Missing));
}

#[test]
fn group_by_file_keeps_rank_order_within_and_across_files() {
    let repo = fixture();
    index(repo.path(), &WORDS);
    let idx = CodeIndex::open(repo.path()).unwrap();
    let q = WORDS.embed(&["read the configuration file"]).unwrap();
    let hits = idx.search(&q, 100, &Filter::default()).unwrap().remove(0);
    let groups = group_by_file(&hits);
    assert!(groups.len() >= 3, "{groups:?}");
    let flat: Vec<&CodeHit> = groups.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    assert_eq!(flat.len(), hits.len());
    assert_eq!(groups[0].0, hits[0].path);
    for w in groups.windows(2) {
        assert!(w[0].1[0].score >= w[1].1[0].score, "files by best hit");
    }
    for (path, g) in &groups {
        assert!(g.iter().all(|h| h.path == *path));
        assert!(g.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

/// Indexes `root` with batches of `batch` texts into a copy of the repository and returns its
/// payloads and vectors row by row.
fn rows_of(root: &Path, e: &dyn Embedder, model: &ModelInfo, batch: usize) -> RowsOf {
    let copy = tempfile::tempdir().unwrap();
    for entry in walkdir_files(root) {
        let rel = entry.strip_prefix(root).unwrap();
        write(
            copy.path(),
            rel.to_str().unwrap(),
            &std::fs::read_to_string(&entry).unwrap(),
        );
    }
    let opts = IndexOptions {
        batch,
        ..IndexOptions::default()
    };
    let seen = Mutex::new(Vec::new());
    let r = index_repo(copy.path(), e, model, &opts, &|done, total| {
        seen.lock().unwrap().push((done, total))
    })
    .unwrap();
    let idx = CodeIndex::open(copy.path()).unwrap();
    let c = idx.collection();
    let rows: Vec<usize> = (0..c.rows()).collect();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last(), Some(&(r.units_embedded, r.units_embedded)));
    assert!(seen
        .windows(2)
        .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[1].0 <= w[1].1));
    (c.payloads().unwrap().to_vec(), c.vectors_of(&rows).unwrap())
}

type RowsOf = (Vec<serde_json::Value>, Vec<f32>);

fn walkdir_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Parsing and embedding overlap (files are planned a step at a time while batches are embedded):
/// the index must equal the one where every file was parsed before one embedding call, row for row
/// (walk order) and vector for vector, with a hashing embedder (bit for bit) and with a real BERT
/// encoder (within float noise: batches pack different texts together).
#[test]
fn the_overlapped_pipeline_builds_the_same_index_as_one_batch() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    // More files than one planning step (64), with several units each.
    for i in 0..150 {
        let text = format!(
            "/// Adds {i}.\npub fn add_{i}(x: u32) -> u32 {{\n    x + {i}\n}}\n\n/// Doubles and adds {i}.\npub fn twice_{i}(x: u32) -> u32 {{\n    2 * x + {i}\n}}\n"
        );
        write(root, &format!("src/m{}/f{i}.rs", i % 7), &text);
    }
    let (one_payloads, one_vectors) = rows_of(root, &WORDS, &words_model(), 1 << 20);
    let (payloads, vectors) = rows_of(root, &WORDS, &words_model(), 5);
    assert_eq!(payloads.len(), 300);
    assert_eq!(payloads, one_payloads);
    assert_eq!(vectors, one_vectors);

    let model_dir = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model_dir.path(), 3).unwrap();
    let dir = ModelDir::open(model_dir.path()).unwrap();
    let bert = BertEmbedder::load(&dir).unwrap();
    let info = ModelInfo::of(&dir, bert.dim()).unwrap();
    let (one_payloads, one_vectors) = rows_of(root, &bert, &info, 1 << 20);
    let (payloads, vectors) = rows_of(root, &bert, &info, 7);
    assert_eq!(payloads, one_payloads);
    assert_eq!(vectors.len(), one_vectors.len());
    for (a, b) in vectors.iter().zip(&one_vectors) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
}
