//! Mines BM25 hard negatives for the code-search head (issue 16, tier 1): for each training pair,
//! the code of OTHER pairs that bitseek's own lexical leg (`hybrid::Bm25` over identifier words,
//! the question's stop words dropped as search drops them) ranks highest for its docstring —
//! code that shares the question's words but is not its answer, which in-batch negatives rarely
//! are. Near-duplicates are left out: the same code or the same docstring, or a query or code
//! embedding cosine above `--near` with the pair's own (a docstring copied onto a sibling
//! function is an answer, not a negative).
//!
//!     cargo run --release -p bitseek-learn --example mine_negatives -- \
//!         --pairs python-train.jsonl --pairs rust-train.jsonl --npz both-train.npz \
//!         [--k 4] [--near 0.95] --out mined.txt
//!
//! `--pairs` files are given in the order their rows are in `--npz` (the training pairs file
//! `train_head` reads); each is mined on its own (one language, one corpus). The output has one
//! line per pair, the rows of its negatives best first (`train_head --mined`).

use bitseek_codesearch::hybrid::{lexical_words, Bm25, Question, Ranking};
use bitseek_learn::data::read_pairs_npz;
use clap::Parser;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Pairs (.jsonl with `query` and `code` fields), in the row order of --npz.
    #[arg(long, required = true)]
    pairs: Vec<PathBuf>,
    /// The embedded pairs (arrays `query`, `doc`) for the near-duplicate test.
    #[arg(long)]
    npz: PathBuf,
    /// Negatives kept per pair.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Query or code cosine above which another pair is a near-duplicate, never a negative.
    #[arg(long, default_value_t = 0.95)]
    near: f32,
    #[arg(long)]
    out: PathBuf,
}

/// One pair's texts.
struct Pair {
    query: String,
    code: String,
}

fn read_jsonl(path: &PathBuf) -> anyhow::Result<Vec<Pair>> {
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("--pairs {}: {e}", path.display()))?;
    std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            let field = |k: &str| {
                v[k].as_str().map(str::to_owned).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} line {}: no string field {k:?}; pairs files have `query` and `code`",
                        path.display(),
                        i + 1
                    )
                })
            };
            Ok(Pair {
                query: field("query")?,
                code: field("code")?,
            })
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let vectors = read_pairs_npz(&a.npz)?;
    let dim = vectors.dim;
    let cos = |x: &[f32], i: usize, y: &[f32], j: usize| -> f32 {
        let (u, v) = (&x[i * dim..(i + 1) * dim], &y[j * dim..(j + 1) * dim]);
        let dot: f32 = u.iter().zip(v).map(|(p, q)| p * q).sum();
        let n = |w: &[f32]| w.iter().map(|t| t * t).sum::<f32>().sqrt().max(1e-12);
        dot / (n(u) * n(v))
    };
    let ranking = Ranking::default();
    let mut lines: Vec<Vec<usize>> = Vec::with_capacity(vectors.len());
    let mut offset = 0;
    for path in &a.pairs {
        let pairs = read_jsonl(path)?;
        anyhow::ensure!(
            offset + pairs.len() <= vectors.len(),
            "the --pairs files hold more pairs than --npz has rows ({}); give the files that --npz was made from, in its order",
            vectors.len()
        );
        let bm25 = Bm25::new(&pairs.iter().map(|p| p.code.as_str()).collect::<Vec<_>>());
        let mut scores = vec![0f32; pairs.len()];
        for (i, p) in pairs.iter().enumerate() {
            let q = Question::new(&p.query);
            bm25.scores_words(lexical_words(&q, &ranking), &mut scores);
            let mut order: Vec<usize> = (0..pairs.len()).filter(|&j| scores[j] > 0.0).collect();
            order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]).then(x.cmp(&y)));
            let (gi, row) = (offset + i, &mut Vec::new());
            for j in order {
                if row.len() == a.k {
                    break;
                }
                let gj = offset + j;
                let near = j == i
                    || pairs[j].code == p.code
                    || pairs[j].query == p.query
                    || cos(&vectors.query, gi, &vectors.query, gj) > a.near
                    || cos(&vectors.doc, gi, &vectors.doc, gj) > a.near
                    || cos(&vectors.query, gi, &vectors.doc, gj) > a.near;
                if !near {
                    row.push(gj);
                }
            }
            lines.push(std::mem::take(row));
        }
        offset += pairs.len();
    }
    anyhow::ensure!(
        offset == vectors.len(),
        "the --pairs files hold {offset} pairs but --npz has {} rows; give the files that --npz was made from, in its order",
        vectors.len()
    );
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a.out)?);
    for row in &lines {
        let words: Vec<String> = row.iter().map(usize::to_string).collect();
        writeln!(out, "{}", words.join(" "))?;
    }
    out.flush()?;
    let empty = lines.iter().filter(|r| r.is_empty()).count();
    eprintln!(
        "mined {} negatives for {} pairs ({empty} pairs with none: no other code shares a question word)",
        lines.iter().map(Vec::len).sum::<usize>(),
        lines.len()
    );
    Ok(())
}
