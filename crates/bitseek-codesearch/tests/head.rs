//! Code search with and without the code head (`--encoder`): the head changes the stored and the
//! question vectors exactly as its towers say, `--encoder none` is the model's path unchanged,
//! searches never mix heads, and damaged or foreign head files are refused.

use bitseek_codesearch::encoder::Side;
use bitseek_codesearch::testing::{write_head, write_tiny_model, HIDDEN};
use bitseek_codesearch::{
    index_repo, load_base_model, load_model, CodeError, CodeIndex, Encoder, EncoderHead, Filter,
    IndexOptions, SearchMode,
};
use bitseek_embed::Embedder;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A small repository in two languages.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(r, "src/net.rs", "/// Parses a port number.\npub fn parse_port(s: &str) -> Option<u16> {\n    s.parse().ok()\n}\n\n/// Opens a TCP connection.\npub fn connect(host: &str, port: u16) -> Conn {\n    Conn::open(host, port)\n}\n");
    write(r, "src/files.rs", "/// Reads a whole file.\npub fn read_all(path: &Path) -> Vec<u8> {\n    std::fs::read(path).unwrap()\n}\n\npub struct Cache {\n    map: HashMap<String, Vec<u8>>,\n}\n");
    write(r, "tools/hash.py", "def checksum(path):\n    \"\"\"Hash a file.\"\"\"\n    return sha256(open(path, 'rb').read())\n\n\ndef retry(fn, times=3):\n    \"\"\"Call fn until it succeeds.\"\"\"\n    for _ in range(times):\n        try:\n            return fn()\n        except Exception:\n            pass\n");
    dir
}

/// A head with non-zero weights for the tiny model (`fingerprint` is the model it claims).
fn head_file(dir: &Path, fingerprint: &str) -> std::path::PathBuf {
    let path = dir.join("head.safetensors");
    write_head(&path, fingerprint).unwrap();
    path
}

/// Every stored vector, row by row.
fn stored(root: &Path) -> Vec<f32> {
    let idx = CodeIndex::open(root).unwrap();
    let rows: Vec<usize> = (0..idx.units()).collect();
    idx.collection().vectors_of(&rows).unwrap()
}

const QUESTIONS: [&str; 3] = ["parse a port", "hash a file", "retry a call"];

#[test]
fn the_head_makes_the_vectors_and_none_is_the_model_alone() {
    let models = tempfile::tempdir().unwrap();
    write_tiny_model(models.path(), 7).unwrap();
    let (bert, base) = load_base_model(Some(models.path()), false).unwrap();
    let head_path = head_file(models.path(), &base.fingerprint);
    let head = EncoderHead::load(&head_path).unwrap();

    // Today's path: the model's vectors straight into index_repo.
    let (plain, none, headed) = (repo(), repo(), repo());
    index_repo(
        plain.path(),
        &bert,
        &base,
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    // --encoder none.
    let (e_none, info_none) = load_model(Some(models.path()), false, &Encoder::None).unwrap();
    assert_eq!(info_none, base);
    index_repo(
        none.path(),
        &e_none.units(),
        &info_none,
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    // --encoder FILE.
    let file = Encoder::File(head_path.clone());
    let (e_head, info_head) = load_model(Some(models.path()), false, &file).unwrap();
    assert_eq!(info_head.encoder.as_ref(), Some(&head.id));
    index_repo(
        headed.path(),
        &e_head.units(),
        &info_head,
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();

    // none = the model alone, bit for bit: vectors, manifest, hits and scores.
    let (v_plain, v_none, v_head) = (
        stored(plain.path()),
        stored(none.path()),
        stored(headed.path()),
    );
    assert!(!v_plain.is_empty());
    assert_eq!(
        v_plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        v_none.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let manifest = |r: &Path| {
        let idx = CodeIndex::open(r).unwrap();
        serde_json::to_value(idx.model()).unwrap()
    };
    assert_eq!(manifest(plain.path()), manifest(none.path()));
    assert!(manifest(none.path()).get("encoder").is_none());
    let all = Filter::new(None, None).unwrap();
    let search = |root: &Path, e: &dyn Embedder, info| {
        let idx = CodeIndex::open(root).unwrap();
        idx.check_model(info).unwrap();
        let q = e.embed(&QUESTIONS).unwrap();
        idx.search_with(&QUESTIONS, &q, 5, &all, SearchMode::Hybrid)
            .unwrap()
    };
    assert_eq!(
        search(plain.path(), &bert, &base),
        search(none.path(), &e_none.questions(), &info_none)
    );

    // The head: every stored vector is its code tower's output on the model's vector.
    let want = head.apply(Side::Doc, &v_plain);
    assert_eq!(v_head.len(), want.len());
    for (a, b) in v_head.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    assert!(v_head
        .iter()
        .zip(&v_plain)
        .any(|(a, b)| (a - b).abs() > 1e-3));
    // Questions go through the question tower, and semantic hits (1-bit codes rescored) are the
    // brute-force float ranking of the head's outputs, scores included.
    let q = e_head.questions().embed(&QUESTIONS).unwrap();
    let q_model = bert.embed(&QUESTIONS).unwrap();
    let idx = CodeIndex::open(headed.path()).unwrap();
    idx.check_model(&info_head).unwrap();
    let hits = idx.search(&q, 3, &all).unwrap();
    for (i, (qv, hits)) in q.iter().zip(&hits).enumerate() {
        let want_q = head.apply(Side::Query, &q_model[i]);
        for (a, b) in qv.iter().zip(&want_q) {
            assert!((a - b).abs() < 1e-6);
        }
        let mut exact: Vec<f32> = v_head
            .chunks(HIDDEN)
            .map(|d| d.iter().zip(qv).map(|(x, y)| x * y).sum())
            .collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        let got: Vec<f32> = hits.iter().map(|h| h.score).collect();
        for (g, w) in got.iter().zip(&exact) {
            assert!((g - w).abs() < 1e-5, "question {i}: {got:?} vs {exact:?}");
        }
    }

    // No mixing: questions without the head against the headed index, and the other way round.
    let err = idx.check_model(&info_none).unwrap_err();
    assert!(matches!(err, CodeError::EncoderMismatch { .. }), "{err}");
    assert!(err.to_string().contains("--encoder"), "{err}");
    let err = CodeIndex::open(none.path())
        .unwrap()
        .check_model(&info_head)
        .unwrap_err();
    assert!(err.to_string().contains("without a code head"), "{err}");
    // The index follows its record; re-indexing with another head re-embeds everything.
    assert!(Encoder::of_index(idx.model()).is_err());
    assert_eq!(
        Encoder::of_index(CodeIndex::open(none.path()).unwrap().model()).unwrap(),
        Encoder::None
    );
    let r = index_repo(
        headed.path(),
        &e_none.units(),
        &info_none,
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    assert!(
        r.rebuilt_because
            .as_deref()
            .unwrap_or("")
            .contains("code head"),
        "{:?}",
        r.rebuilt_because
    );
    assert_eq!(stored(headed.path()), v_plain);
}

#[test]
fn damaged_foreign_and_mismatched_heads_are_refused() {
    let models = tempfile::tempdir().unwrap();
    write_tiny_model(models.path(), 7).unwrap();
    let (_, base) = load_base_model(Some(models.path()), false).unwrap();
    // The built-in head was trained on another model: by default the tiny model has none.
    let (_, info) = load_model(Some(models.path()), false, &Encoder::Default).unwrap();
    assert_eq!(info.encoder, None);

    // A head trained on another model.
    let other = tempfile::tempdir().unwrap();
    let path = head_file(other.path(), &"f".repeat(32));
    let err = load_model(Some(models.path()), false, &Encoder::File(path.clone()))
        .err()
        .unwrap();
    assert!(matches!(err, CodeError::HeadModelMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&base.fingerprint), "{err}");

    // A damaged one: one flipped weight byte.
    let path = head_file(other.path(), &base.fingerprint);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = load_model(Some(models.path()), false, &Encoder::File(path.clone()))
        .err()
        .unwrap();
    assert!(matches!(err, CodeError::BadHead { .. }), "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(err.to_string().contains("--encoder none"), "{err}");

    // Not a head at all, and a missing file.
    std::fs::write(&path, b"{\"not\": \"a head\"}").unwrap();
    let err = EncoderHead::load(&path).unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
    let err = EncoderHead::load(&other.path().join("missing")).unwrap_err();
    assert!(matches!(err, CodeError::Io { .. }), "{err}");
}
