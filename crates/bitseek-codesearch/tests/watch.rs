//! Watch mode end to end on a real directory and the operating system's file events: an edit, a
//! new file and a deletion each reach the index (embedding only what changed), ignored files and
//! the index's own writes trigger nothing, and readers searching all the while always get an
//! answer from a committed generation. Waits poll the index with a deadline, never fixed sleeps.

use bitseek_codesearch::testing::write_tiny_model;
use bitseek_codesearch::{
    load_base_model, watch, Filter, LiveIndex, SearchMode, WatchEvent, WatchOptions,
};
use bitseek_embed::Embedder;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What the watcher reported, as the test thread sees it.
#[derive(Debug)]
enum Seen {
    Ready,
    Updated {
        changed: Vec<PathBuf>,
        files_embedded: usize,
        files_deleted: usize,
    },
    Unchanged,
    Failed(String),
}

/// Every unit's (path, name) in the newest committed generation.
fn units(live: &mut LiveIndex, q: &[Vec<f32>]) -> Vec<(String, String)> {
    let hits = live
        .search_with(&["x"], q, 10_000, &Filter::default(), SearchMode::Semantic)
        .expect("search the live index");
    let mut u: Vec<(String, String)> = hits[0]
        .iter()
        .map(|h| (h.path.clone(), h.name.clone()))
        .collect();
    u.sort();
    u
}

/// Polls until `cond` holds on the index's units, or fails after 30 s with what it saw.
fn wait_for(
    live: &mut LiveIndex,
    q: &[Vec<f32>],
    what: &str,
    cond: impl Fn(&[(String, String)]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let u = units(live, q);
        if cond(&u) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; units: {u:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has(u: &[(String, String)], path: &str, name: &str) -> bool {
    u.iter().any(|(p, n)| p == path && n == name)
}

#[test]
fn watch_picks_up_an_edit_a_new_file_and_a_deletion() {
    let tmp = tempfile::tempdir().unwrap();
    let root: PathBuf = std::fs::canonicalize(tmp.path()).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "pub fn alpha() -> u32 {\n    1\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("old.py"), "def gone():\n    return 1\n").unwrap();
    let model_dir = tempfile::tempdir().unwrap();
    write_tiny_model(model_dir.path(), 3).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, seen) = mpsc::channel::<Seen>();
    let watcher = {
        let (root, model_dir, stop) = (root.clone(), model_dir.path().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let (embedder, model) = load_base_model(Some(&model_dir), false).unwrap();
            let opts = WatchOptions {
                debounce: Duration::from_millis(50),
                ..WatchOptions::default()
            };
            watch(&root, &embedder, &model, &opts, &stop, &mut |e| {
                let s = match e {
                    WatchEvent::Ready(_) => Seen::Ready,
                    WatchEvent::Updated {
                        report, changed, ..
                    } => Seen::Updated {
                        changed: changed.to_vec(),
                        files_embedded: report.files_embedded,
                        files_deleted: report.files_deleted,
                    },
                    WatchEvent::Unchanged { .. } => Seen::Unchanged,
                    WatchEvent::Failed(e) => Seen::Failed(e.to_string()),
                    WatchEvent::WatchError(e) => Seen::Failed(e),
                };
                let _ = tx.send(s);
            })
        })
    };
    match seen.recv_timeout(Duration::from_secs(60)) {
        Ok(Seen::Ready) => {}
        other => panic!("expected the first update, got {other:?}"),
    }

    let (embedder, _) = load_base_model(Some(model_dir.path()), false).unwrap();
    let q = embedder.embed(&["anything"]).unwrap();
    let mut live = LiveIndex::new(&root);
    let u = units(&mut live, &q);
    assert!(
        has(&u, "src/lib.rs", "alpha") && has(&u, "old.py", "gone"),
        "{u:?}"
    );

    // Readers search without pause while the watcher commits: every search must succeed.
    let searching = Arc::new(AtomicBool::new(true));
    let searches = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (root, q, searching, searches) =
            (root.clone(), q.clone(), searching.clone(), searches.clone());
        std::thread::spawn(move || {
            let live = LiveIndex::new(&root);
            while searching.load(Ordering::Relaxed) {
                let hits = live
                    .search_with(&["alpha"], &q, 5, &Filter::default(), SearchMode::Hybrid)
                    .expect("a search during an update answers from the last committed generation");
                assert!(!hits[0].is_empty());
                searches.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // A write the walk ignores, then an edit: the edit is picked up, the ignored file is not.
    std::fs::write(root.join("build/out.rs"), "pub fn ignored() {}\n").unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "pub fn alpha() -> u32 {\n    1\n}\n\npub fn beta() -> u32 {\n    2\n}\n",
    )
    .unwrap();
    wait_for(&mut live, &q, "the edit", |u| has(u, "src/lib.rs", "beta"));

    std::fs::write(root.join("src/new.rs"), "pub fn gamma() {}\n").unwrap();
    wait_for(&mut live, &q, "the new file", |u| {
        has(u, "src/new.rs", "gamma")
    });

    std::fs::remove_file(root.join("old.py")).unwrap();
    wait_for(&mut live, &q, "the deletion", |u| {
        !u.iter().any(|(p, _)| p == "old.py")
    });

    searching.store(false, Ordering::Relaxed);
    reader.join().expect("the reader's searches all succeeded");
    assert!(searches.load(Ordering::Relaxed) > 0);

    // Settled: the updates' own reads and writes must not wake the watcher again (reading a
    // file is an event too). Ten debounce periods of silence, checked once.
    // (The index shows the deletion a moment before the watcher reports it: wait for that.)
    let mut seen_so_far: Vec<Seen> = Vec::new();
    while !seen_so_far.iter().any(|s| {
        matches!(
            s,
            Seen::Updated {
                files_deleted: 1,
                ..
            }
        )
    }) {
        let s = seen.recv_timeout(Duration::from_secs(30));
        seen_so_far.push(s.expect("the deletion's update is reported"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let late: Vec<Seen> = seen.try_iter().collect();
    assert!(
        late.is_empty(),
        "the watcher kept updating after the last change: {late:?}"
    );
    stop.store(true, Ordering::Relaxed);
    watcher
        .join()
        .unwrap()
        .expect("watch ends cleanly when stopped");

    let u = units(&mut live, &q);
    assert!(!u.iter().any(|(p, _)| p.starts_with("build/")), "{u:?}");
    // Each update embedded only what changed, and nothing was triggered by the index's own
    // writes or by the ignored file.
    let mut embedded = 0;
    let mut deleted = 0;
    seen_so_far.extend(seen.try_iter());
    for s in seen_so_far {
        match s {
            Seen::Updated {
                changed,
                files_embedded,
                files_deleted,
            } => {
                for p in &changed {
                    assert!(
                        !p.starts_with(".bitseek") && !p.starts_with("build"),
                        "{p:?} triggered an update"
                    );
                }
                assert!(
                    files_embedded <= changed.len(),
                    "re-embedded unchanged files: {files_embedded} for {changed:?}"
                );
                embedded += files_embedded;
                deleted += files_deleted;
            }
            Seen::Unchanged => {}
            Seen::Failed(msg) => panic!("an update failed: {msg}"),
            Seen::Ready => panic!("a second Ready"),
        }
    }
    // (An edit seen half-written is embedded again when complete, hence at least.)
    assert!(
        embedded >= 2 && deleted == 1,
        "{embedded} embedded, {deleted} deleted"
    );
}

#[test]
fn a_missing_root_is_an_error_not_a_hang() {
    let model_dir = tempfile::tempdir().unwrap();
    write_tiny_model(model_dir.path(), 3).unwrap();
    let (embedder, model) = load_base_model(Some(model_dir.path()), false).unwrap();
    let stop = AtomicBool::new(false);
    let err = watch(
        Path::new("/no/such/repository"),
        &embedder,
        &model,
        &WatchOptions::default(),
        &stop,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("/no/such/repository"), "{err}");
}
