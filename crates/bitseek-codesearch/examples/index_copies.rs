//! Indexes a tree made of copies of one repository (`DIR/<copy>/…`, e.g. `big/tokio_1` …
//! `big/tokio_12`) with the real model and head, embedding each unit of the copies once: a test
//! bed of 100k units for `bitseek search`'s whole-process time that costs one copy's embedding
//! instead of twelve.
//!
//! ```sh
//! cargo run --release -p bitseek-codesearch --example index_copies -- DIR
//! ```
//!
//! `bitseek index DIR` embeds every unit's text, and that text starts with the unit's path, so
//! the copies' units are all different texts. Here the text is looked up with its first path
//! component (the copy's folder) removed: the first copy to reach the embedder is embedded, and
//! its vector is reused for the same unit in the other copies. Every vector is the real model's
//! (and head's) vector of that unit's code under its path in one copy; only the copy's folder
//! name is not in it. The index records the real model's identity, so `bitseek search --dir DIR`
//! opens it as it opens one `bitseek index` wrote.

use bitseek_codesearch::{index_repo, load_model, Encoder, IndexOptions};
use bitseek_embed::Embedder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// `inner`, remembering each text's vector under the text without its first path component.
struct OncePerCopy<E> {
    inner: E,
    seen: Mutex<HashMap<String, Vec<f32>>>,
    embedded: Mutex<usize>,
}

/// The embed text (`path\ncode`) without the path's first component.
fn key(text: &str) -> &str {
    text.split_once('/').map_or(text, |(_, rest)| rest)
}

impl<E: Embedder> Embedder for OncePerCopy<E> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn embed(&self, texts: &[&str]) -> bitseek_embed::Result<Vec<Vec<f32>>> {
        let todo: Vec<&str> = {
            let seen = self.seen.lock().unwrap();
            let mut todo: Vec<&str> = texts
                .iter()
                .copied()
                .filter(|t| !seen.contains_key(key(t)))
                .collect();
            todo.sort_by_key(|t| key(t));
            todo.dedup_by_key(|t| key(t));
            todo
        };
        let vectors = self.inner.embed(&todo)?;
        *self.embedded.lock().unwrap() += todo.len();
        let mut seen = self.seen.lock().unwrap();
        for (t, v) in todo.iter().zip(vectors) {
            seen.insert(key(t).to_owned(), v);
        }
        Ok(texts.iter().map(|t| seen[key(t)].clone()).collect())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: index_copies DIR (a folder of copies of one repository)")?,
    );
    let (embedder, model) = load_model(None, false, &Encoder::Default)?;
    let once = OncePerCopy {
        inner: embedder.units(),
        seen: Mutex::new(HashMap::new()),
        embedded: Mutex::new(0),
    };
    let t = Instant::now();
    let report = index_repo(
        &dir,
        &once,
        &model,
        &IndexOptions::default(),
        &|done, all| {
            if done % 4096 < 64 {
                eprintln!("{done}/{all} units ({:.0} s)", t.elapsed().as_secs_f64());
            }
        },
    )?;
    println!(
        "{}: {} units in {} files, {} texts embedded by the model, in {:.1} s",
        dir.display(),
        report.units,
        report.files,
        once.embedded.lock().unwrap(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
