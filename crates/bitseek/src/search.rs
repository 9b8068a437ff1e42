//! `bitseek search "question"`: semantic code search over the index `bitseek index` built.

use anyhow::Context;
use bitseek_codesearch::{CodeHit, CodeIndex, Filter, SearchMode};
use bitseek_embed::Embedder;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The question, in plain words ("where are index files checksummed?").
    question: Option<String>,
    /// The indexed repository (its index is DIR/.bitseek).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Hits per question.
    #[arg(short, long, default_value_t = 10, value_parser = crate::positive)]
    k: usize,
    /// Only units in this language (python, rust, javascript, typescript, tsx, go, java, c, cpp,
    /// text).
    #[arg(long)]
    lang: Option<String>,
    /// Only units whose path (relative to DIR), or one of its directories, matches this glob.
    #[arg(long)]
    path: Option<String>,
    /// One JSON line per question: {"question", "hits": [{"path", "line", "end_line", "score",
    /// "signature"}]}.
    #[arg(long)]
    json: bool,
    /// Answer one question per line of this file (blank lines skipped), loading the model once.
    #[arg(long)]
    queries_file: Option<PathBuf>,
    /// A BERT-family model directory instead of $BITSEEK_MODEL_DIR or the one `bitseek model
    /// fetch` installs; it must be the model the index was built with.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Rank by the embeddings alone, without the lexical leg (BM25 over identifier words fused
    /// by reciprocal rank, on by default because it ranks better on the code-search dev sets).
    #[arg(long)]
    semantic_only: bool,
    /// Print timings (open, model load, embedding, search) to stderr.
    #[arg(short, long)]
    verbose: bool,
}

/// One line of `--json` output.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    question: &'a str,
    hits: Vec<JsonHit<'a>>,
}

#[derive(serde::Serialize)]
struct JsonHit<'a> {
    path: &'a str,
    line: usize,
    end_line: usize,
    score: f32,
    signature: &'a str,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    run_to(a, &mut out, color)
}

pub(crate) fn run_to(a: Args, out: &mut dyn Write, color: bool) -> anyhow::Result<()> {
    let mut questions: Vec<String> = a.question.iter().cloned().collect();
    if let Some(f) = &a.queries_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the questions in {}", f.display()))?;
        questions.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if questions.is_empty() {
        anyhow::bail!(
            "no question: give one (`bitseek search \"how are files hashed?\"`) or --queries-file with one per line"
        );
    }
    let filter = Filter::new(a.lang.as_deref(), a.path.as_deref())?;

    let t = Instant::now();
    let index = CodeIndex::open(&a.dir)?;
    let t_open = t.elapsed();
    let t = Instant::now();
    let (embedder, model) = bitseek_codesearch::load_model(a.model_dir.as_deref(), false)?;
    index.check_model(&model)?;
    let t_model = t.elapsed();
    let t = Instant::now();
    let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs)?;
    let t_embed = t.elapsed();
    let t = Instant::now();
    let mode = if a.semantic_only {
        SearchMode::Semantic
    } else {
        SearchMode::Hybrid
    };
    let results = index.search_with(&refs, &vectors, a.k, &filter, mode)?;
    let t_search = t.elapsed();
    if a.verbose {
        let n = questions.len() as f64;
        eprintln!(
            "{} units; open {:.1} ms, model load {:.1} ms, embedding {:.2} ms/question, search {:.3} ms/question ({} questions)",
            index.units(),
            t_open.as_secs_f64() * 1e3,
            t_model.as_secs_f64() * 1e3,
            t_embed.as_secs_f64() * 1e3 / n,
            t_search.as_secs_f64() * 1e3 / n,
            questions.len()
        );
    }

    let mut files = Snippets::new(&a.dir);
    for (i, (question, hits)) in questions.iter().zip(&results).enumerate() {
        if a.json {
            let line = JsonLine {
                question,
                hits: hits
                    .iter()
                    .map(|h| JsonHit {
                        path: &h.path,
                        line: h.line,
                        end_line: h.end_line,
                        score: h.score,
                        signature: &h.signature,
                    })
                    .collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            if questions.len() > 1 {
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "{}", paint(color, "1", &format!("## {question}")))?;
            }
            if hits.is_empty() {
                writeln!(out, "no hits")?;
            }
            for h in hits {
                write_hit(out, h, color, &mut files)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Wraps `text` in an ANSI style when colouring.
fn paint(color: bool, style: &str, text: &str) -> String {
    if color {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Lines shown under a hit.
const SNIPPET_LINES: usize = 3;
/// Longest snippet line shown, in characters.
const SNIPPET_WIDTH: usize = 120;

/// `path:line  score  signature`, then up to three lines of the unit from the file.
fn write_hit(
    out: &mut dyn Write,
    h: &CodeHit,
    color: bool,
    files: &mut Snippets,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}:{}  {}  {}",
        paint(color, "35", &h.path),
        paint(color, "32", &h.line.to_string()),
        paint(color, "33", &format!("{:.3}", h.score)),
        paint(color, "1", &h.signature)
    )?;
    let last = h.end_line.min(h.line + SNIPPET_LINES - 1);
    if let Some(lines) = files.lines(&h.path) {
        for n in h.line..=last {
            let Some(text) = lines.get(n.wrapping_sub(1)) else {
                break;
            };
            let text = clip(text.trim_end(), SNIPPET_WIDTH);
            writeln!(out, "{}  {text}", paint(color, "2", &format!("{n:>6}")))?;
        }
    }
    Ok(())
}

/// At most `width` characters of `s`, with `…` when cut.
fn clip(s: &str, width: usize) -> String {
    match s.char_indices().nth(width) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Files read for snippets, each read once (missing or unreadable ones give no snippet).
struct Snippets {
    root: PathBuf,
    files: HashMap<String, Option<Vec<String>>>,
}

impl Snippets {
    fn new(root: &Path) -> Snippets {
        Snippets {
            root: root.to_owned(),
            files: HashMap::new(),
        }
    }

    fn lines(&mut self, path: &str) -> Option<&Vec<String>> {
        let root = &self.root;
        self.files
            .entry(path.to_owned())
            .or_insert_with(|| {
                let bytes = std::fs::read(root.join(path)).ok()?;
                Some(
                    String::from_utf8_lossy(&bytes)
                        .lines()
                        .map(String::from)
                        .collect(),
                )
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand)]
    enum Cmd {
        Index(crate::index::Args),
        Search(Args),
    }

    fn run_cli(args: &[&str]) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(std::iter::once("bitseek").chain(args.iter().copied()))?;
        let mut out = Vec::new();
        match cli.cmd {
            Cmd::Index(a) => crate::index::run_to(a, &mut out)?,
            Cmd::Search(a) => run_to(a, &mut out, false)?,
        }
        Ok(String::from_utf8(out)?)
    }

    fn repo() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("scripts")).unwrap();
        std::fs::write(
            root.join("src/lib.rs"),
            "/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\npub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
        )
        .unwrap();
        std::fs::write(
            root.join("scripts/tool.py"),
            "def read_file(path):\n    \"\"\"Read a file.\"\"\"\n    with open(path) as f:\n        return f.read()\n\n\nclass Cache:\n    def get(self, key):\n        return None\n",
        )
        .unwrap();
        tmp
    }

    #[test]
    fn index_then_search_with_filters_and_json() {
        let repo = repo();
        let model = tempfile::tempdir().unwrap();
        bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
        let root = repo.path().to_str().unwrap();
        let m = model.path().to_str().unwrap();

        let err = run_cli(&["search", "add", "--dir", root, "--model-dir", m]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("no index in") && msg.contains("run `bitseek index"),
            "{msg}"
        );

        let out = run_cli(&["index", root, "--model-dir", m, "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["files"], 2, "{v}");
        assert_eq!(v["files_embedded"], 2, "{v}");
        let units = v["units"].as_u64().unwrap();
        assert!(units >= 5, "{v}");

        let out = run_cli(&["index", root, "--model-dir", m, "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["units_embedded"].as_u64(), v["files_reused"].as_u64()),
            (Some(0), Some(2))
        );

        let out = run_cli(&[
            "search",
            "add numbers",
            "--dir",
            root,
            "--model-dir",
            m,
            "--json",
            "-k",
            "3",
            "--lang",
            "py",
        ])
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["question"], "add numbers");
        let hits = v["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 3);
        for h in hits {
            assert_eq!(h["path"], "scripts/tool.py");
            for f in ["line", "end_line", "score", "signature"] {
                assert!(h.get(f).is_some(), "{h}");
            }
        }

        let qf = repo.path().join("questions.txt");
        std::fs::write(&qf, "first question\n\nsecond question\n").unwrap();
        let out = run_cli(&[
            "search",
            "--queries-file",
            qf.to_str().unwrap(),
            "--dir",
            root,
            "--model-dir",
            m,
            "--path",
            "src/*.rs",
        ])
        .unwrap();
        assert!(
            out.contains("## first question") && out.contains("## second question"),
            "{out}"
        );
        assert!(out.contains("src/lib.rs:2  "), "{out}");
        assert!(
            out.contains("     2  pub fn add(a: i32, b: i32) -> i32 {"),
            "{out}"
        );
        assert!(!out.contains("tool.py") && !out.contains('\x1b'), "{out}");

        let err = run_cli(&[
            "search",
            "x",
            "--dir",
            root,
            "--model-dir",
            m,
            "--lang",
            "cobol",
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown language"), "{err:#}");
    }

    #[test]
    fn a_missing_model_says_how_to_fetch_it() {
        let repo = repo();
        let missing = repo.path().join("no-model");
        let err = run_cli(&[
            "index",
            repo.path().to_str().unwrap(),
            "--model-dir",
            missing.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("bitseek model fetch"),
            "{err:#}"
        );
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("héllo", 3), "hél…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
