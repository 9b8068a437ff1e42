//! Walking a tree: ignore files, skipped directories, binaries, size limit, generated files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bitseek_chunk::{chunk_file, chunk_repo, walk, ChunkOptions, SkipReason, WalkOptions};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".gitignore", b"ignored.txt\nsecret/\n");
    write(root, "ignored.txt", b"not listed\n");
    write(root, "secret/key.rs", b"fn key() {}\n");
    write(root, ".hidden.py", b"def h(): pass\n");
    write(
        root,
        "node_modules/left-pad/index.js",
        b"module.exports = 1;\n",
    );
    write(root, "sub/target/debug/out.rs", b"fn out() {}\n");
    write(root, "image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    write(root, "big.txt", &vec![b'a'; (1 << 20) + 1]);
    write(root, "exactly_1mib.txt", &vec![b'a'; 1 << 20]);
    write(root, "app.min.js", b"var a=1;\n");
    write(root, "Cargo.lock", b"# lock\n");
    write(root, "proto/api_pb2.py", b"x = 1\n");
    write(root, "web/client.generated.ts", b"export const x = 1;\n");
    write(
        root,
        "src/main.rs",
        b"/// Entry.\nfn main() {\n    println!(\"hi\");\n}\n",
    );
    write(root, "README.md", b"# Title\n\nSome text.\n");
    dir
}

fn paths(v: &[PathBuf]) -> Vec<String> {
    v.iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect()
}

fn skips(v: &[(PathBuf, SkipReason)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(p, r)| (p.to_string_lossy().replace('\\', "/"), r.to_string()))
        .collect()
}

#[test]
fn walk_lists_files_and_says_why_others_were_skipped() {
    let dir = fixture();
    let got = walk(dir.path(), &WalkOptions::default());
    assert_eq!(
        paths(&got.files),
        ["README.md", "exactly_1mib.txt", "src/main.rs"]
    );
    assert_eq!(
        skips(&got.skipped),
        [
            ("Cargo.lock".to_string(), "lock file".to_string()),
            ("app.min.js".into(), "generated file (*.min.js)".into()),
            ("big.txt".into(), "over 1 MiB (1.0 MiB)".into()),
            ("image.png".into(), "binary".into()),
            (
                "node_modules".into(),
                "vendored or build directory node_modules".into()
            ),
            (
                "proto/api_pb2.py".into(),
                "generated file (*_pb2.py)".into()
            ),
            (
                "sub/target".into(),
                "vendored or build directory target".into()
            ),
            (
                "web/client.generated.ts".into(),
                "generated file (*.generated.*)".into()
            ),
        ]
    );
    assert_eq!(
        got.skipped
            .iter()
            .find(|(p, _)| p == Path::new("big.txt"))
            .unwrap()
            .1,
        SkipReason::TooLarge {
            bytes: (1 << 20) + 1,
            limit: 1 << 20
        }
    );
}

#[test]
fn walk_options_turn_rules_off() {
    let dir = fixture();
    let opts = WalkOptions {
        respect_ignore_files: false,
        hidden: true,
        skip_generated: false,
        skip_dirs: vec![],
        max_file_bytes: 2 << 20,
        ..WalkOptions::default()
    };
    let got = walk(dir.path(), &opts);
    let files = paths(&got.files);
    for f in [
        ".gitignore",
        ".hidden.py",
        "ignored.txt",
        "secret/key.rs",
        "node_modules/left-pad/index.js",
        "sub/target/debug/out.rs",
        "big.txt",
        "app.min.js",
        "Cargo.lock",
    ] {
        assert!(files.contains(&f.to_string()), "{f} missing from {files:?}");
    }
    assert_eq!(
        skips(&got.skipped),
        [("image.png".to_string(), "binary".to_string())]
    );
}

#[test]
fn bitseekignore_is_honoured() {
    let dir = fixture();
    write(dir.path(), ".bitseekignore", b"*.md\n");
    let got = walk(dir.path(), &WalkOptions::default());
    assert_eq!(paths(&got.files), ["exactly_1mib.txt", "src/main.rs"]);
}

#[cfg(unix)]
#[test]
fn symlinks_are_reported_not_followed() {
    let dir = fixture();
    std::os::unix::fs::symlink(dir.path().join("src/main.rs"), dir.path().join("link.rs")).unwrap();
    let got = walk(dir.path(), &WalkOptions::default());
    assert!(skips(&got.skipped).contains(&("link.rs".into(), "symlink (not followed)".into())));
    assert!(!paths(&got.files).contains(&"link.rs".to_string()));
}

#[test]
fn chunk_repo_chunks_what_walk_lists() {
    let dir = fixture();
    let out = chunk_repo(
        dir.path(),
        &WalkOptions::default(),
        &ChunkOptions::default(),
    );
    assert_eq!(
        paths(&out.files),
        ["README.md", "exactly_1mib.txt", "src/main.rs"]
    );
    let main = out.units.iter().find(|u| u.name == "main").unwrap();
    assert_eq!(main.path, Path::new("src/main.rs"));
    assert_eq!(
        (main.doc_start_line, main.start_line, main.end_line),
        (1, 2, 4)
    );
    assert_eq!(main.doc, "Entry.");
    // a 1 MiB single line is one window, its text capped
    let big = out
        .units
        .iter()
        .find(|u| u.name == "exactly_1mib.txt")
        .unwrap();
    assert!(big.text.len() <= ChunkOptions::default().max_text_bytes + 4);
    assert_eq!(out.skipped.len(), 8);
}

/// Smoke test on this repository's own crates: many units, every span inside its file.
#[test]
fn chunks_the_bitseek_crates() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let t = Instant::now();
    let listed = walk(crates, &WalkOptions::default());
    let mut units = 0;
    let mut by_kind = std::collections::BTreeMap::new();
    for rel in &listed.files {
        let source = String::from_utf8_lossy(&fs::read(crates.join(rel)).unwrap()).into_owned();
        let lines = source.lines().count();
        for u in chunk_file(rel, &source).unwrap() {
            assert!(
                1 <= u.doc_start_line
                    && u.doc_start_line <= u.start_line
                    && u.start_line <= u.end_line
                    && u.end_line <= lines,
                "{}:{}-{} outside 1..={lines}",
                rel.display(),
                u.start_line,
                u.end_line
            );
            assert!(!u.name.is_empty() && !u.signature.is_empty(), "{u:?}");
            *by_kind.entry(u.kind).or_insert(0) += 1;
            units += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "chunked {} files of crates/ into {units} units in {secs:.3} s: {by_kind:?}",
        listed.files.len()
    );
    assert!(units > 100, "only {units} units");
}
