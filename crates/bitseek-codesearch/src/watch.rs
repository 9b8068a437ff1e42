//! Watch mode (`bitseek index --watch`): keeps `DIR/.bitseek` fresh while files change.
//!
//! File events from the operating system (`notify`: inotify, FSEvents, ReadDirectoryChangesW) are
//! debounced, so an editor's save or a `git checkout` of many files becomes one update. Events
//! the index cannot care about are dropped before they cost anything: the index's own writes
//! (`.bitseek/`), `.git/`, hidden paths and the skipped directories (`target/`, `node_modules/`,
//! …) the walk never enters, and whatever the repository's `.gitignore` files exclude (a build
//! writing into an ignored directory wakes nothing). An update is [`index_repo`]: it re-hashes
//! the walked files, embeds only the units of new and changed files, drops deleted ones and
//! commits a new generation atomically — readers keep answering from the last committed one
//! ([`crate::LiveIndex`]). When nothing the walk sees has changed, nothing is written.

use crate::{index_dir, index_repo, CodeError, IndexOptions, IndexReport, ModelInfo};
use bitseek_embed::Embedder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify_debouncer_full::notify::{self, EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer_opt, DebounceEventResult, NoCache};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How [`watch`] waits and indexes.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub index: IndexOptions,
    /// Quiet time after the last event before an update starts (default 300 ms).
    pub debounce: Duration,
    /// Wait before retrying a failed update, e.g. while another `bitseek index` holds the lock
    /// (default 2 s).
    pub retry: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            index: IndexOptions::default(),
            debounce: Duration::from_millis(300),
            retry: Duration::from_secs(2),
        }
    }
}

/// What [`watch`] reports to its caller.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// The first update is done and file events are being watched: edits from now on are seen.
    Ready(&'a IndexReport),
    /// An update committed a new generation (`changed`: the relevant paths that triggered it,
    /// relative to the root; `took`: how long the update ran).
    Updated {
        report: &'a IndexReport,
        changed: &'a [PathBuf],
        took: Duration,
    },
    /// An update ran and found nothing the walk sees changed (say, a file saved unchanged):
    /// nothing was written.
    Unchanged { changed: &'a [PathBuf] },
    /// An update failed; the previous generation stays current and the update is retried.
    Failed(&'a CodeError),
    /// The file watcher reported an error (events may have been lost: an update follows).
    WatchError(String),
}

/// Indexes `root`, then keeps its index fresh until `stop` is set (checked every 100 ms), calling
/// `on_event` after each update. Returns an error only when the first update or setting up the
/// file watcher fails; later failures are reported as [`WatchEvent::Failed`] and retried.
pub fn watch(
    root: &Path,
    embedder: &dyn Embedder,
    model: &ModelInfo,
    opts: &WatchOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(WatchEvent<'_>),
) -> Result<(), CodeError> {
    // Canonical, so event paths (which the OS reports resolved) strip the root's prefix.
    let root = std::fs::canonicalize(root).map_err(|source| CodeError::Io {
        path: root.to_owned(),
        source,
    })?;
    let progress = |_: usize, _: usize| {};
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    // No file-id cache: it would walk the whole tree (ignored directories included) up front,
    // and a rename needs no pairing here (the update re-walks anyway).
    let mut debouncer = new_debouncer_opt::<_, RecommendedWatcher, _>(
        opts.debounce,
        None,
        tx,
        NoCache,
        notify::Config::default(),
    )
    .map_err(watch_error(&root))?;
    debouncer
        .watch(&root, RecursiveMode::Recursive)
        .map_err(watch_error(&root))?;
    // Watching starts before the first update, so an edit made during it is not missed.
    let report = index_repo(&root, embedder, model, &opts.index, &progress)?;
    on_event(WatchEvent::Ready(&report));

    let mut ignores = Ignores::new(&root, &opts.index);
    let mut changed: Vec<PathBuf> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(events)) => {
                // Opening and reading a file is an event too (the update's own reads among
                // them): only changes count.
                let changes = events
                    .iter()
                    .filter(|e| !matches!(e.kind, EventKind::Access(_)));
                for path in changes.flat_map(|e| &e.paths) {
                    if let Some(rel) = ignores.relevant(path) {
                        if !changed.contains(&rel) {
                            changed.push(rel);
                        }
                    }
                }
            }
            Ok(Err(errors)) => {
                let msg: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                on_event(WatchEvent::WatchError(msg.join("; ")));
                changed.push(PathBuf::new());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(watch_error(&root)(notify::Error::generic(
                    "the file watcher stopped",
                )));
            }
        }
        // The debouncer delivers a burst as one batch; a failed update waits for its retry.
        let due = retry_at.is_none_or(|t| Instant::now() >= t);
        if changed.is_empty() || !due {
            continue;
        }
        if changed.iter().any(|p| is_ignore_file(p)) {
            ignores = Ignores::new(&root, &opts.index);
        }
        let start = Instant::now();
        match index_repo(&root, embedder, model, &opts.index, &progress) {
            Ok(report) => {
                retry_at = None;
                if report.files_embedded + report.files_deleted > 0 {
                    // A directory's own event (its listing changed) says nothing its files'
                    // events do not.
                    let all = changed.clone();
                    changed.retain(|p| !all.iter().any(|q| q != p && q.starts_with(p)));
                    on_event(WatchEvent::Updated {
                        report: &report,
                        changed: &changed,
                        took: start.elapsed(),
                    });
                } else {
                    on_event(WatchEvent::Unchanged { changed: &changed });
                }
                changed.clear();
            }
            Err(e) => {
                on_event(WatchEvent::Failed(&e));
                retry_at = Some(Instant::now() + opts.retry);
            }
        }
    }
    Ok(())
}

fn watch_error(root: &Path) -> impl Fn(notify::Error) -> CodeError + '_ {
    move |e| {
        let hint = match e.kind {
            notify::ErrorKind::MaxFilesWatch => {
                " (every directory under the root takes one watch, ignored ones too: on Linux \
                 raise fs.inotify.max_user_watches)"
            }
            _ => "",
        };
        CodeError::Io {
            path: root.to_owned(),
            source: std::io::Error::other(format!("cannot watch for file changes: {e}{hint}")),
        }
    }
}

/// `.gitignore` and `.ignore` files: a change to one changes what the walk indexes.
fn is_ignore_file(rel: &Path) -> bool {
    rel.file_name()
        .is_some_and(|n| n == ".gitignore" || n == ".ignore" || n == bitseek_chunk::IGNORE_FILE)
}

/// Decides which event paths can change the index, mirroring the walk's rules.
struct Ignores {
    root: PathBuf,
    index_dir: PathBuf,
    skip_dirs: Vec<String>,
    hidden: bool,
    respect: bool,
    /// Each directory's ignore matcher (`.gitignore`, `.ignore`, the tool's own ignore file),
    /// built on first use; `None` when the directory has none.
    matchers: HashMap<PathBuf, Option<Gitignore>>,
}

impl Ignores {
    fn new(root: &Path, opts: &IndexOptions) -> Ignores {
        Ignores {
            root: root.to_owned(),
            index_dir: index_dir(root),
            skip_dirs: opts.walk.skip_dirs.clone(),
            hidden: opts.walk.hidden,
            respect: opts.walk.respect_ignore_files,
            matchers: HashMap::new(),
        }
    }

    /// The path relative to the root when an event on it may change the index.
    fn relevant(&mut self, path: &Path) -> Option<PathBuf> {
        if path.starts_with(&self.index_dir) {
            return None; // the index's own writes
        }
        let rel = path.strip_prefix(&self.root).ok()?.to_owned();
        let parts: Vec<&str> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        let last = parts.len().checked_sub(1)?;
        for (i, part) in parts.iter().enumerate() {
            let is_dir = i < last;
            if *part == ".git" || (is_dir && self.skip_dirs.iter().any(|d| d == part)) {
                return None;
            }
            // Ignore files count although hidden: they change what is walked.
            if !self.hidden && part.starts_with('.') && (is_dir || !is_ignore_file(&rel)) {
                return None;
            }
        }
        if self.respect && !is_ignore_file(&rel) && self.ignored(path) {
            return None;
        }
        Some(rel)
    }

    /// Whether the ignore files of `path`'s directories exclude it (the deepest one that
    /// decides wins, as in git). A deleted path is matched as a file.
    fn ignored(&mut self, path: &Path) -> bool {
        let is_dir = path.is_dir();
        let dirs: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.root))
            .map(Path::to_owned)
            .collect();
        for dir in dirs {
            let m = self
                .matchers
                .entry(dir.clone())
                .or_insert_with(|| matcher(&dir));
            if let Some(m) = m {
                let found = m.matched_path_or_any_parents(path, is_dir);
                if found.is_ignore() {
                    return true;
                }
                if found.is_whitelist() {
                    return false;
                }
            }
        }
        false
    }
}

/// The ignore matcher of one directory's own ignore files, `None` when it has none.
fn matcher(dir: &Path) -> Option<Gitignore> {
    let mut b = GitignoreBuilder::new(dir);
    let mut any = false;
    for name in [".gitignore", ".ignore", bitseek_chunk::IGNORE_FILE] {
        let f = dir.join(name);
        if f.is_file() {
            any |= b.add(&f).is_none();
        }
    }
    if !any {
        return None;
    }
    b.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_the_walk_would_not_see_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("src/gen")).unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join(".gitignore"), "build/\n*.log\n").unwrap();
        std::fs::write(root.join("src/.gitignore"), "gen/\n!keep.log\n").unwrap();
        let mut ig = Ignores::new(&root, &IndexOptions::default());
        let rel = |ig: &mut Ignores, p: &str| ig.relevant(&root.join(p));
        assert_eq!(rel(&mut ig, "src/lib.rs"), Some("src/lib.rs".into()));
        assert_eq!(rel(&mut ig, "new.py"), Some("new.py".into()));
        assert_eq!(rel(&mut ig, ".gitignore"), Some(".gitignore".into()));
        for dropped in [
            ".bitseek/manifest.json",
            ".bitseek/seg-3.bitseek",
            ".git/index",
            ".hidden/x.rs",
            "node_modules/a/b.js",
            "target/release/x.rs",
            "build/out.rs",
            "debug.log",
            "src/gen/x.rs",
        ] {
            assert_eq!(rel(&mut ig, dropped), None, "{dropped}");
        }
        // A deeper .gitignore's negation re-includes what a shallower one excludes.
        assert_eq!(rel(&mut ig, "src/keep.log"), Some("src/keep.log".into()));
        assert_eq!(rel(&mut ig, "src/other.log"), None);
        // Outside the root: not ours.
        assert_eq!(ig.relevant(Path::new("/somewhere/else.rs")), None);
    }
}
