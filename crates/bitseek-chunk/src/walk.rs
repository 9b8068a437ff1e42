//! Which files of a repository to chunk, and why the others were skipped.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::WalkBuilder;

/// Directories skipped by default: dependencies, build outputs, caches and virtual environments.
pub const DEFAULT_SKIP_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "bower_components",
    "vendor",
    "third_party",
    "target",
    "dist",
    "build",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
];

/// File-name suffixes of generated files skipped by default (matched case-insensitively).
pub const GENERATED_SUFFIXES: &[&str] = &[
    ".min.js",
    ".min.mjs",
    ".min.css",
    ".js.map",
    ".css.map",
    "_pb2.py",
    "_pb2.pyi",
    "_pb2_grpc.py",
    ".pb.go",
    ".pb.cc",
    ".pb.h",
];

/// Lock files skipped by default: every `*.lock` and these names.
pub const LOCK_FILES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "go.sum",
];

/// The name of the repository's own ignore file, read like `.gitignore`.
pub const IGNORE_FILE: &str = ".bitseekignore";

/// What [`walk`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkOptions {
    /// Files larger than this many bytes are skipped (default 1 MiB).
    pub max_file_bytes: u64,
    /// Directory names skipped wherever they occur, and reported once each (default
    /// [`DEFAULT_SKIP_DIRS`]).
    pub skip_dirs: Vec<String>,
    /// Skip generated and lock files ([`GENERATED_SUFFIXES`], `*.generated.*`, `*.lock`,
    /// [`LOCK_FILES`]) (default true).
    pub skip_generated: bool,
    /// Honour `.gitignore`, `.git/info/exclude`, the global git excludes, `.ignore` and
    /// [`IGNORE_FILE`] (default true). Files they exclude are left out silently: the repository
    /// excluded them itself. `.gitignore` counts even outside a git repository.
    pub respect_ignore_files: bool,
    /// Include hidden files and directories (names starting with `.`) (default false).
    pub hidden: bool,
    /// Follow symbolic links (default false: they are reported as skipped).
    pub follow_links: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_file_bytes: 1 << 20,
            skip_dirs: DEFAULT_SKIP_DIRS.iter().map(|s| s.to_string()).collect(),
            skip_generated: true,
            respect_ignore_files: true,
            hidden: false,
            follow_links: false,
        }
    }
}

/// Why a file or directory was not chunked. `Display` gives a short phrase for listings
/// (`binary`, `over 1 MiB`, `vendored or build directory node_modules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A NUL byte in the first 8 KiB.
    Binary,
    /// Larger than [`WalkOptions::max_file_bytes`].
    TooLarge { bytes: u64, limit: u64 },
    /// A directory named in [`WalkOptions::skip_dirs`]; nothing under it was read.
    SkippedDir(String),
    /// A generated file; the pattern it matched.
    Generated(String),
    /// A dependency lock file.
    LockFile,
    /// A symbolic link, not followed.
    Symlink,
    /// The file or directory could not be read; the error.
    Unreadable(String),
    /// The file could not be chunked ([`chunk_repo`](crate::chunk_repo) only); the error.
    ChunkFailed(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Binary => f.write_str("binary"),
            SkipReason::TooLarge { bytes, limit } => {
                write!(f, "over {} ({})", human_bytes(*limit), human_bytes(*bytes))
            }
            SkipReason::SkippedDir(name) => write!(f, "vendored or build directory {name}"),
            SkipReason::Generated(pattern) => write!(f, "generated file ({pattern})"),
            SkipReason::LockFile => f.write_str("lock file"),
            SkipReason::Symlink => f.write_str("symlink (not followed)"),
            SkipReason::Unreadable(e) => write!(f, "unreadable: {e}"),
            SkipReason::ChunkFailed(e) => write!(f, "not chunked: {e}"),
        }
    }
}

/// `1048576` → `1 MiB`, `1536` → `1.5 KiB`, `100` → `100 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// The files [`walk`] chose and the ones it skipped, both relative to the root and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkResult {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<(PathBuf, SkipReason)>,
}

/// Lists the text files under `root` worth chunking.
///
/// Honours ignore files and hidden-file rules (see [`WalkOptions`]), does not descend into skipped
/// directories, and skips generated files, lock files, files over the size limit and binary files,
/// each with its [`SkipReason`]. Paths are relative to `root`, in sorted order. A `root` that is a
/// file gives that file (by its file name).
pub fn walk(root: &Path, opts: &WalkOptions) -> WalkResult {
    let skipped = Arc::new(Mutex::new(Vec::<(PathBuf, SkipReason)>::new()));
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(!opts.hidden)
        .follow_links(opts.follow_links)
        .git_ignore(opts.respect_ignore_files)
        .git_exclude(opts.respect_ignore_files)
        .git_global(opts.respect_ignore_files)
        .ignore(opts.respect_ignore_files)
        .parents(opts.respect_ignore_files)
        .require_git(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    if opts.respect_ignore_files {
        builder.add_custom_ignore_filename(IGNORE_FILE);
    }
    {
        let skip_dirs = opts.skip_dirs.clone();
        let skipped = Arc::clone(&skipped);
        let root = root.to_path_buf();
        builder.filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if entry.depth() == 0 || !is_dir {
                return true;
            }
            let name = entry.file_name().to_string_lossy();
            if skip_dirs.iter().any(|d| *d == name) {
                let rel = relative(&root, entry.path());
                if let Ok(mut s) = skipped.lock() {
                    s.push((rel, SkipReason::SkippedDir(name.into_owned())));
                }
                return false;
            }
            true
        });
    }
    let mut files = Vec::new();
    let mut own_skips = Vec::new();
    for entry in builder.build() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = error_path(&err).map_or_else(PathBuf::new, |p| relative(root, p));
                own_skips.push((path, SkipReason::Unreadable(err.to_string())));
                continue;
            }
        };
        let Some(ft) = entry.file_type() else {
            continue; // stdin
        };
        let rel = relative(root, entry.path());
        if ft.is_symlink() {
            own_skips.push((rel, SkipReason::Symlink));
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        if opts.skip_generated {
            if let Some(reason) = generated(entry.path()) {
                own_skips.push((rel, reason));
                continue;
            }
        }
        match check_contents(entry.path(), opts.max_file_bytes) {
            Ok(None) => files.push(rel),
            Ok(Some(reason)) => own_skips.push((rel, reason)),
            Err(e) => own_skips.push((rel, SkipReason::Unreadable(e.to_string()))),
        }
    }
    let mut skipped = match Arc::try_unwrap(skipped) {
        Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()),
        Err(arc) => arc.lock().map(|s| s.clone()).unwrap_or_default(),
    };
    skipped.extend(own_skips);
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    WalkResult { files, skipped }
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => path
            .file_name()
            .map_or_else(|| path.to_path_buf(), PathBuf::from),
    }
}

fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child),
        _ => None,
    }
}

/// Whether the file name marks a generated or lock file.
pub fn generated(path: &Path) -> Option<SkipReason> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".lock") || LOCK_FILES.contains(&name.as_str()) {
        return Some(SkipReason::LockFile);
    }
    if let Some(suffix) = GENERATED_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        return Some(SkipReason::Generated(format!("*{suffix}")));
    }
    if name.contains(".generated.") {
        return Some(SkipReason::Generated("*.generated.*".to_string()));
    }
    None
}

/// Size, then a NUL byte in the first 8 KiB.
fn check_contents(path: &Path, limit: u64) -> std::io::Result<Option<SkipReason>> {
    let mut file = File::open(path)?;
    let bytes = file.metadata()?.len();
    if bytes > limit {
        return Ok(Some(SkipReason::TooLarge { bytes, limit }));
    }
    let mut head = [0u8; 8192];
    let mut n = 0;
    while n < head.len() {
        let read = file.read(&mut head[n..])?;
        if read == 0 {
            break;
        }
        n += read;
    }
    Ok(head[..n].contains(&0).then_some(SkipReason::Binary))
}
