//! `bitseek index --watch`: the terminal side of watch mode (`bitseek_codesearch::watch`).

use bitseek_codesearch::{watch, IndexOptions, ModelInfo, WatchEvent, WatchOptions};
use bitseek_embed::Embedder;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Indexes `dir`, then updates the index on every change until the process is stopped, writing
/// one line per update (`--json`: one object with `"event"`: `ready`, `updated` or `failed`).
pub(crate) fn run(
    dir: &Path,
    embedder: &dyn Embedder,
    model: &ModelInfo,
    index: IndexOptions,
    debounce_ms: u64,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let opts = WatchOptions {
        index,
        debounce: Duration::from_millis(debounce_ms),
        ..WatchOptions::default()
    };
    // Set when the output is gone (a closed pipe); otherwise Ctrl-C ends the process, which
    // leaves the last committed index intact.
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let mut write_err: Option<std::io::Error> = None;
    let mut on_event = |e: WatchEvent<'_>| {
        let seconds = match &e {
            WatchEvent::Updated { took, .. } => took.as_secs_f64(),
            _ => start.elapsed().as_secs_f64(),
        };
        let r = write_event(out, &e, &model.name, seconds, json).and_then(|_| out.flush());
        if let Err(e) = r {
            write_err.get_or_insert(e);
            stop.store(true, Ordering::Relaxed);
        }
    };
    watch(dir, embedder, model, &opts, &stop, &mut on_event)?;
    match write_err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn write_event(
    out: &mut dyn Write,
    e: &WatchEvent<'_>,
    model: &str,
    seconds: f64,
    json: bool,
) -> std::io::Result<()> {
    match (e, json) {
        (WatchEvent::Ready(r), true) | (WatchEvent::Updated { report: r, .. }, true) => {
            let mut v = serde_json::to_value(crate::index::summary(r, model, seconds, false))?;
            let (event, changed) = match e {
                WatchEvent::Updated { changed, .. } => ("updated", *changed),
                _ => ("ready", &[][..]),
            };
            v["event"] = event.into();
            v["changed"] = changed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .into();
            writeln!(out, "{v}")
        }
        (WatchEvent::Ready(r), false) => {
            crate::index::print_human(out, r, seconds, false)?;
            writeln!(
                out,
                "watching {} for changes (Ctrl-C to stop)",
                r.root.display()
            )
        }
        (
            WatchEvent::Updated {
                report: r, changed, ..
            },
            false,
        ) => {
            let first = changed.first().map(|p| p.display().to_string());
            let more = match changed.len() {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            writeln!(
                out,
                "updated after {}{more}: {} files embedded, {} deleted, {} units embedded; {} units, generation {} ({:.1} s)",
                first.unwrap_or_else(|| "changes".into()),
                r.files_embedded,
                r.files_deleted,
                r.units_embedded,
                r.units,
                r.generation,
                seconds
            )
        }
        (WatchEvent::Unchanged { .. }, _) => Ok(()),
        (WatchEvent::Failed(err), true) => writeln!(
            out,
            "{}",
            serde_json::json!({"event": "failed", "error": err.to_string()})
        ),
        (WatchEvent::Failed(err), false) => {
            writeln!(
                out,
                "update failed (retrying; the last index stays current): {err}"
            )
        }
        (WatchEvent::WatchError(msg), true) => writeln!(
            out,
            "{}",
            serde_json::json!({"event": "watch_error", "error": msg})
        ),
        (WatchEvent::WatchError(msg), false) => {
            writeln!(out, "file watcher error (re-checking everything): {msg}")
        }
    }
}
