//! Ranking that knows code, on a fixture repository where a function has callers, tests, an
//! `impl` block and a longer-named sibling that all mention its name: asked for the name (as
//! written, as split words, qualified), the definition comes first; test code comes after
//! library code unless the question asks for tests or `--tests` ranks it plainly.

use bitseek_codesearch::testing::HashedWords;
use bitseek_codesearch::{
    index_repo, CodeHit, CodeIndex, Filter, IndexOptions, ModelInfo, SearchMode,
};
use bitseek_embed::Embedder;
use std::path::Path;

const DIM: usize = 64;

/// The crate's test embedder over words of letters only: the callers, which repeat the name's
/// words, are closer to the question than the definition.
const WORDS: HashedWords = HashedWords::letters(DIM);

const NOTIFY: &str = r#"use std::sync::atomic::{AtomicUsize, Ordering};

/// Wakes tasks waiting for an event.
pub struct Notify {
    waiters: AtomicUsize,
}

impl Notify {
    /// Wakes the first waiting task, or stores a permit for the next one.
    pub fn notify_one(&self) {
        let state = self.waiters.load(Ordering::SeqCst);
        if state > 0 {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes the most recent waiting task.
    pub fn notify_last(&self) {
        self.notify_one();
    }
}

/// Runs `f` on a thread where blocking is fine.
pub fn spawn_blocking(f: fn()) {
    f()
}

/// Runs `f` on a blocking thread of the given pool.
pub fn spawn_blocking_on(pool: usize, f: fn()) {
    let _ = pool;
    spawn_blocking(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_one() {
        let n = Notify { waiters: AtomicUsize::new(1) };
        n.notify_one();
        n.notify_one();
        assert_eq!(n.waiters.load(Ordering::SeqCst), 0);
    }
}
"#;

const CALLERS: &str = r#"use crate::notify::Notify;

/// Wake a task with notify one, for every waiter.
pub fn wake_all(notify: &Notify, n: usize) {
    for _ in 0..n {
        notify.notify_one();
        notify.notify_one();
    }
}

/// Hands a blocking job over: spawn blocking, then spawn blocking on the pool.
pub fn offload(job: fn()) {
    crate::notify::spawn_blocking(job);
    crate::notify::spawn_blocking_on(0, job);
    crate::notify::spawn_blocking(job);
}
"#;

const TESTS: &str = r#"use app::notify::{spawn_blocking, Notify};

/// Wake a task with notify one: the task wakes.
#[test]
fn wakes_one_task() {
    let n = Notify::default();
    n.notify_one();
}

#[test]
fn spawn_blocking_runs_spawn_blocking_jobs() {
    spawn_blocking(|| {});
    spawn_blocking(|| {});
}
"#;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn fixture() -> (tempfile::TempDir, CodeIndex) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "src/notify.rs", NOTIFY);
    write(root, "src/runtime.rs", CALLERS);
    write(root, "tests/notify.rs", TESTS);
    let model = ModelInfo {
        name: "words".into(),
        dim: DIM,
        fingerprint: "0".repeat(32),
        precision: "f32".into(),
        encoder: None,
        adapter: None,
    };
    index_repo(root, &WORDS, &model, &IndexOptions::default(), &|_, _| {}).unwrap();
    let idx = CodeIndex::open(root).unwrap();
    (tmp, idx)
}

fn search(idx: &CodeIndex, question: &str, filter: &Filter, mode: SearchMode) -> Vec<CodeHit> {
    let v = WORDS.embed(&[question]).unwrap();
    idx.search_with(&[question], &v, 10, filter, mode)
        .unwrap()
        .remove(0)
}

fn place(h: &CodeHit) -> String {
    format!("{}:{}:{}", h.path, h.kind, h.name)
}

fn places(hits: &[CodeHit]) -> Vec<String> {
    hits.iter().map(place).collect()
}

const DEFINITION: &str = "src/notify.rs:method:notify_one";

#[test]
fn a_name_finds_its_definition_first() {
    let (_repo, idx) = fixture();
    let all = Filter::default();
    // Without the code-aware ranking the fixture puts something else first, or it shows nothing.
    let semantic = search(&idx, "notify_one", &all, SearchMode::Semantic);
    assert_ne!(place(&semantic[0]), DEFINITION, "{:?}", places(&semantic));
    for q in [
        "notify_one",
        "notify one",
        "notifyOne",
        "Notify::notify_one",
        "notify_one()",
    ] {
        let hits = search(&idx, q, &all, SearchMode::Hybrid);
        assert_eq!(place(&hits[0]), DEFINITION, "{q}: {:?}", places(&hits));
        // The test of the same name (in a #[cfg(test)] module) is the other definition, after it.
        assert_eq!(
            place(&hits[1]),
            "src/notify.rs:function:notify_one",
            "{q}: {:?}",
            places(&hits)
        );
    }
    for q in ["spawn_blocking", "spawn blocking"] {
        let hits = search(&idx, q, &all, SearchMode::Hybrid);
        assert_eq!(
            place(&hits[0]),
            "src/notify.rs:function:spawn_blocking",
            "{q}: {:?}",
            places(&hits)
        );
    }
    // The type's definition outranks its impl block.
    let hits = search(&idx, "Notify", &all, SearchMode::Hybrid);
    assert_eq!(
        places(&hits[..2]),
        ["src/notify.rs:struct:Notify", "src/notify.rs:impl:Notify"]
    );
    // Filters still apply to the definitions put first.
    let elsewhere = Filter::new(None, Some("tests")).unwrap();
    let hits = search(&idx, "notify_one", &elsewhere, SearchMode::Hybrid);
    assert!(
        hits.iter().all(|h| h.path.starts_with("tests/")),
        "{:?}",
        places(&hits)
    );
}

#[test]
fn test_code_ranks_below_library_code_unless_asked_for() {
    let (_repo, idx) = fixture();
    let all = Filter::default();
    let rank_of = |hits: &[CodeHit], p: &str| hits.iter().position(|h| place(h) == p);
    let test = "tests/notify.rs:function:wakes_one_task";
    let caller = "src/runtime.rs:function:wake_all";
    // Plainly, the test (whose doc is the question) outranks the caller (whose doc nearly is).
    let plainly = all.clone().with_tests(true);
    let hits = search(
        &idx,
        "wake a task with notify one",
        &plainly,
        SearchMode::Hybrid,
    );
    let (t, c) = (
        rank_of(&hits, test).unwrap(),
        rank_of(&hits, caller).unwrap(),
    );
    assert!(t < c, "{:?}", places(&hits));
    // By default library code comes first ...
    let hits = search(
        &idx,
        "wake a task with notify one",
        &all,
        SearchMode::Hybrid,
    );
    let (t, c) = (
        rank_of(&hits, test).unwrap(),
        rank_of(&hits, caller).unwrap(),
    );
    assert!(c < t, "{:?}", places(&hits));
    // ... unless the question asks for tests.
    let hits = search(
        &idx,
        "tests that wake a task with notify one",
        &all,
        SearchMode::Hybrid,
    );
    let (t, c) = (
        rank_of(&hits, test).unwrap(),
        rank_of(&hits, caller).unwrap(),
    );
    assert!(t < c, "{:?}", places(&hits));
}
