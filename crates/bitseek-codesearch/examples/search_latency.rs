//! How long `bitseek search` takes past the question's embedding, on a repository of any size:
//! opening the index, the semantic leg (1-bit codes, rescoring) and the lexical leg (BM25, fusion).
//!
//! ```sh
//! cargo run --release -p bitseek-codesearch --example search_latency -- DIR [QUESTIONS] [WORK]
//! ```
//!
//! DIR is indexed into a temporary copy of its tree (DIR itself is not written) with a hashed
//! bag-of-words embedder of the real model's width (384), so the run needs no model and takes
//! seconds; the search work does not depend on what the vectors mean. Each of QUESTIONS (default
//! 200 generated from the units' own names) is answered by a fresh `CodeIndex::open` and one
//! hybrid search, as one `bitseek search` call does; it prints the median and 99th percentile of
//! the open, the first search after it (which reads what a search reads once per open: the lexical
//! file, the name table) and a second search on the same open (the per-question cost alone).
//!
//! With WORK, the copy is made there and kept (made only when WORK does not exist yet, indexed
//! incrementally otherwise), so that two builds of this example can be timed in turns on the same
//! tree without indexing it again each time.

use bitseek_codesearch::testing::HashedWords;
use bitseek_codesearch::{index_repo, CodeIndex, Filter, IndexOptions, ModelInfo, SearchMode};
use bitseek_embed::Embedder;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DIM: usize = 384;

/// The crate's test embedder (bag of hashed words).
const WORDS: HashedWords = HashedWords::new(DIM);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: search_latency DIR [QUESTIONS]")?);
    let questions: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    let kept = args.next().map(PathBuf::from);

    // Index a copy of the tree, so the measured repository is never written.
    let tmp = tempfile::tempdir()?;
    let work = kept.unwrap_or_else(|| tmp.path().join("repo"));
    if !work.exists() {
        copy_tree(&dir, &work)?;
    }
    let model = ModelInfo {
        name: "hashed-words".into(),
        dim: DIM,
        fingerprint: "0".repeat(32),
        precision: "f32".into(),
        encoder: None,
        adapter: None,
    };
    let t = Instant::now();
    let report = index_repo(&work, &WORDS, &model, &IndexOptions::default(), &|_, _| {})?;
    println!(
        "{}: {} units in {} files, indexed in {:.1} s (hashed embedder), index {:.1} MiB",
        dir.display(),
        report.units,
        report.files,
        t.elapsed().as_secs_f64(),
        report.bytes as f64 / (1 << 20) as f64
    );

    let names: Vec<String> = {
        let idx = CodeIndex::open(&work)?;
        let all = idx.collection().payloads()?;
        let step = (all.len() / questions.max(1)).max(1);
        all.iter()
            .step_by(step)
            .take(questions)
            .filter_map(|p| p.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .map(|n| format!("where is {n} defined and what does it return"))
            .collect()
    };
    let mut open_ms = Vec::new();
    let mut total_ms = Vec::new();
    let mut again_ms = Vec::new();
    for q in &names {
        let v = WORDS.embed(&[q.as_str()])?;
        let t = Instant::now();
        let idx = CodeIndex::open(&work)?;
        let opened = t.elapsed();
        let hits = idx.search_with(
            &[q.as_str()],
            &v,
            10,
            &Filter::default(),
            SearchMode::Hybrid,
        )?;
        let total = t.elapsed();
        assert!(!hits[0].is_empty());
        let t = Instant::now();
        let again = idx.search_with(
            &[q.as_str()],
            &v,
            10,
            &Filter::default(),
            SearchMode::Hybrid,
        )?;
        again_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(again, hits);
        open_ms.push(opened.as_secs_f64() * 1e3);
        total_ms.push(total.as_secs_f64() * 1e3);
    }
    let first: Vec<f64> = total_ms.iter().zip(&open_ms).map(|(t, o)| t - o).collect();
    println!(
        "{} questions, open + hybrid search, ms: median {:.2}, p99 {:.2} \
         (open {:.2}, first search {:.2}, second search on the same open {:.2})",
        names.len(),
        pct(&mut total_ms, 0.5),
        pct(&mut total_ms, 0.99),
        pct(&mut open_ms, 0.5),
        pct(&mut first.clone(), 0.5),
        pct(&mut again_ms, 0.5),
    );
    Ok(())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Copies the files under `from` to `to` (so the index is written into the copy, never into the
/// measured repository).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type()?;
        if ty.is_dir() {
            if e.file_name() != ".bitseek" && e.file_name() != ".git" {
                copy_tree(&src, &dst)?;
            }
        } else if ty.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
