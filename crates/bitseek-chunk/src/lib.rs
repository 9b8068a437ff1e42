//! Cutting a repository into search units for code search.
//!
//! [`walk`] lists the files of a repository worth indexing: it honours `.gitignore`, `.ignore` and
//! `.bitseekignore`, leaves out hidden files, and skips binaries, files over a size limit, vendored
//! and build directories (`node_modules`, `vendor`, `target`, …), generated files (`*.min.js`,
//! `*_pb2.py`, `*.generated.*`) and lock files, saying why for each ([`SkipReason`]).
//!
//! [`chunk_file`] cuts one file into [`Unit`]s. Python, Rust, JavaScript, TypeScript/TSX, Go, Java,
//! C and C++ are parsed with their tree-sitter grammars, and every function, method, class, struct,
//! enum, trait, impl and interface becomes a unit (nested ones too) with its name, its enclosing
//! unit, its line span, a one-line signature and its doc comment or docstring. Other text files —
//! and source files without any definition — become overlapping line windows. [`chunk_repo`] does
//! both for a whole tree. Each unit says whether it is test, benchmark or example code
//! ([`Unit::test`]): by its path ([`is_test_path`]: `tests/`, `benches/`, `examples/`,
//! `test_*.py`, `*_test.go`, …), its attributes or name (`#[test]`, `#[tokio::test]`,
//! `def test_*`, `@Test`, …) or what encloses it (a `#[cfg(test)]` module, a test class), so that
//! search can rank it below library code.
//!
//! ```
//! use std::path::Path;
//!
//! let source = "/// Adds two numbers.\n#[inline]\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
//! let units = bitseek_chunk::chunk_file(Path::new("src/math.rs"), source)?;
//! let add = &units[0];
//! assert_eq!((add.name.as_str(), add.kind), ("add", bitseek_chunk::UnitKind::Function));
//! assert_eq!((add.doc_start_line, add.start_line, add.end_line), (1, 3, 5));
//! assert_eq!(add.signature, "pub fn add(a: i32, b: i32) -> i32");
//! assert_eq!(add.doc, "Adds two numbers.");
//! # Ok::<(), bitseek_chunk::ChunkError>(())
//! ```
//!
//! This crate does not read models, embed, or index: a unit's [`Unit::text`] is what an embedder
//! should see, and its path and lines are what a search hit points back to. It is kept apart from
//! the core crates because the grammars are C code that takes a while to compile.

mod chunk;
mod doc;
mod lang;
mod test_code;
mod unit;
mod walk;

use std::path::{Path, PathBuf};

pub use chunk::{chunk_file, chunk_file_with, ChunkError, ChunkOptions};
pub use lang::Lang;
pub use test_code::{is_test_path, TEST_DIRS};
pub use unit::{Unit, UnitKind};
pub use walk::{
    generated, human_bytes, walk, SkipReason, WalkOptions, WalkResult, DEFAULT_SKIP_DIRS,
    GENERATED_SUFFIXES, IGNORE_FILE, LOCK_FILES,
};

/// The units of a whole tree, and what was left out.
#[derive(Debug, Clone, Default)]
pub struct RepoChunks {
    /// Units of every chunked file, file by file in walk order; paths relative to the root.
    pub units: Vec<Unit>,
    /// Files chunked (including those that gave no unit because they are blank).
    pub files: Vec<PathBuf>,
    /// Files and directories left out, with why: [`walk`]'s reasons, plus files that could not be
    /// read or parsed.
    pub skipped: Vec<(PathBuf, SkipReason)>,
}

/// Walks `root` and chunks every file it lists. Files that are not valid UTF-8 are read lossily.
pub fn chunk_repo(root: &Path, walk_opts: &WalkOptions, chunk_opts: &ChunkOptions) -> RepoChunks {
    let listed = walk(root, walk_opts);
    let mut out = RepoChunks {
        skipped: listed.skipped,
        ..RepoChunks::default()
    };
    for rel in listed.files {
        let full = if rel.as_os_str().is_empty() || root.is_file() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let bytes = match std::fs::read(&full) {
            Ok(b) => b,
            Err(e) => {
                out.skipped
                    .push((rel, SkipReason::Unreadable(e.to_string())));
                continue;
            }
        };
        let source = String::from_utf8_lossy(&bytes);
        match chunk_file_with(&rel, &source, chunk_opts) {
            Ok(units) => {
                out.units.extend(units);
                out.files.push(rel);
            }
            Err(e) => out
                .skipped
                .push((rel, SkipReason::ChunkFailed(e.to_string()))),
        }
    }
    out.skipped.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
