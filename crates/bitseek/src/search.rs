//! `bitseek search "question"`: semantic code search over the index `bitseek index` built.

use anyhow::Context;
use bitseek_codesearch::{
    group_by_file, AdapterChoice, CodeHit, Encoder, Filter, HitText, LiveIndex, SearchMode,
    SourceFile, Stale, MAX_CONTEXT,
};
use bitseek_embed::{timings, Embedder};
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
    /// N lines before and after each hit's unit (0 to 1000), marked `-` next to the unit's `:`;
    /// with --json, "context_before" and "context_after" (arrays of lines).
    #[arg(short = 'C', long, value_name = "N", allow_hyphen_values = true, value_parser = context_lines)]
    context: Option<usize>,
    /// With --json: each hit carries "text", the unit's code (lines line..=end_line).
    #[arg(long, requires = "json")]
    with_text: bool,
    /// Group hits by file, files in the order of their best hit (JSON: {"question", "files":
    /// [{"path", "hits"}]}).
    #[arg(long)]
    group: bool,
    /// Answer one question per line of this file (blank lines skipped), loading the model once.
    #[arg(long)]
    queries_file: Option<PathBuf>,
    /// A BERT-family model directory instead of $BITSEEK_MODEL_DIR or the one `bitseek model
    /// fetch` installs; it must be the model the index was built with.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// The code head questions go through: by default the one the index was built with
    /// (`bitseek index --encoder`); `none`, `default` or a head file must match it.
    #[arg(long, value_name = "default|none|FILE")]
    encoder: Option<Encoder>,
    /// The LoRA adapter merged into the model: by default the one the index was built with
    /// (`bitseek index --adapter`); `none`, `default`, `builtin` or an adapter file must match it.
    #[arg(long, value_name = "default|none|builtin|FILE")]
    adapter: Option<AdapterChoice>,
    /// Rank by the embeddings alone, without the lexical leg (BM25 over identifier words fused
    /// by reciprocal rank, on by default because it ranks better on the code-search dev sets).
    #[arg(long)]
    semantic_only: bool,
    /// Rank test, benchmark and example code like library code. By default it comes below library
    /// code of the same score unless the question asks for tests ("tests of the parser"). Test code
    /// is decided by path (tests/, benches/, examples/, test_*.py, *_test.go, *.spec.ts, …) and by
    /// attribute or name (#[test], #[cfg(test)] modules, def test_*, @Test).
    #[arg(long)]
    tests: bool,
    /// Print timings (open, model load, embedding, search) to stderr.
    #[arg(short, long)]
    verbose: bool,
}

/// `--context N`: a whole number of lines up to [`MAX_CONTEXT`].
fn context_lines(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_CONTEXT => Ok(n),
        _ => Err(format!(
            "{s:?} is not a number of context lines; use 0 to {MAX_CONTEXT}"
        )),
    }
}

/// One line of `--json` output.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    question: &'a str,
    hits: Vec<JsonHit<'a>>,
}

/// One line of `--json --group` output.
#[derive(serde::Serialize)]
struct JsonGroups<'a> {
    question: &'a str,
    files: Vec<JsonFile<'a>>,
}

#[derive(serde::Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    hits: Vec<JsonHit<'a>>,
}

#[derive(serde::Serialize)]
struct JsonHit<'a> {
    path: &'a str,
    line: usize,
    end_line: usize,
    score: f32,
    signature: &'a str,
    /// `--with-text`: the unit's lines joined by `\n`; null when the file is stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_before: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_after: Option<Vec<String>>,
    /// Why no text or context could be read (the file changed or went since indexing).
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<String>,
}

impl<'a> JsonHit<'a> {
    fn new(h: &'a CodeHit, a: &Args, files: &mut Snippets) -> JsonHit<'a> {
        let mut j = JsonHit {
            path: &h.path,
            line: h.line,
            end_line: h.end_line,
            score: h.score,
            signature: &h.signature,
            text: None,
            context_before: None,
            context_after: None,
            stale: None,
        };
        if !a.with_text && a.context.is_none() {
            return j;
        }
        match files.text(h, a.context.unwrap_or(0)) {
            Ok(t) => {
                if a.with_text {
                    j.text = Some(Some(t.text.join("\n")));
                }
                if a.context.is_some() {
                    j.context_before = Some(t.before);
                    j.context_after = Some(t.after);
                }
            }
            Err(why) => {
                if a.with_text {
                    j.text = Some(None);
                }
                j.stale = Some(why.to_string());
            }
        }
        j
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // The process ends with this search: the model (the tokenizer's vocabulary, a hundred
    // thousand small allocations) and the index are left for the exit to reclaim instead of being
    // freed one by one.
    std::mem::forget(answer(a, &mut out, color)?);
    Ok(())
}

/// [`run`] into `out`, freeing what it loaded (the tests run many searches in one process).
#[cfg(test)]
pub(crate) fn run_to(a: Args, out: &mut dyn Write, color: bool) -> anyhow::Result<()> {
    answer(a, out, color).map(drop)
}

/// What a search loaded, returned so that [`run`] can skip freeing it.
struct Loaded {
    _embedder: bitseek_codesearch::CodeEmbedder,
    _index: LiveIndex,
}

fn answer(a: Args, out: &mut dyn Write, color: bool) -> anyhow::Result<Loaded> {
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
    let filter = Filter::new(a.lang.as_deref(), a.path.as_deref())?.with_tests(a.tests);

    let t = Instant::now();
    // Live: a search while `bitseek index` (or --watch) commits answers from one committed
    // generation, retrying on the new one if the old one's files went during the search.
    let index = LiveIndex::new(&a.dir);
    let units = index.index()?.units();
    let t_open = t.elapsed();
    let t = Instant::now();
    let encoder = match &a.encoder {
        Some(e) => e.clone(),
        None => Encoder::of_index(index.index()?.model())?,
    };
    let adapter = match &a.adapter {
        Some(x) => x.clone(),
        None => AdapterChoice::of_index(index.index()?.model())?,
    };
    let (embedder, model) =
        bitseek_codesearch::load_tuned(a.model_dir.as_deref(), false, &adapter, &encoder)?;
    index.index()?.check_model(&model)?;
    let t_model = t.elapsed();
    let t = Instant::now();
    let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
    let vectors = embedder.questions().embed(&refs)?;
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
            units,
            t_open.as_secs_f64() * 1e3,
            t_model.as_secs_f64() * 1e3,
            t_embed.as_secs_f64() * 1e3 / n,
            t_search.as_secs_f64() * 1e3 / n,
            questions.len()
        );
    }

    let t_print = Instant::now();
    let mut files = Snippets::new(&a.dir);
    for (i, (question, hits)) in questions.iter().zip(&results).enumerate() {
        if a.json {
            let line = if a.group {
                let files = group_by_file(hits)
                    .into_iter()
                    .map(|(path, hits)| JsonFile {
                        path,
                        hits: hits
                            .into_iter()
                            .map(|h| JsonHit::new(h, &a, &mut files))
                            .collect(),
                    })
                    .collect();
                serde_json::to_string(&JsonGroups { question, files })?
            } else {
                let hits = hits
                    .iter()
                    .map(|h| JsonHit::new(h, &a, &mut files))
                    .collect();
                serde_json::to_string(&JsonLine { question, hits })?
            };
            writeln!(out, "{line}")?;
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
            let context = a.context.unwrap_or(0);
            if a.group {
                for (g, (path, hits)) in group_by_file(hits).into_iter().enumerate() {
                    if g > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "{}", paint(color, "1;35", path))?;
                    for h in hits {
                        write_hit(out, h, None, context, color, &mut files)?;
                    }
                }
            } else {
                for h in hits {
                    write_hit(out, h, Some(&h.path), context, color, &mut files)?;
                }
            }
        }
    }
    out.flush()?;
    timings::record("printing", t_print);
    if timings::enabled() {
        print_timings(&[
            ("index open", t_open),
            ("model load", t_model),
            ("question embedding", t_embed),
            ("search", t_search),
        ]);
    }
    Ok(Loaded {
        _embedder: embedder,
        _index: index,
    })
}

/// `BITSEEK_TIMINGS=1`: the wall time of each stage on stderr (the model load's parts, recorded
/// by the libraries, indented), and the time since `main` began.
fn print_timings(top: &[(&str, std::time::Duration)]) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mut e = std::io::stderr().lock();
    let (parts, late): (Vec<_>, Vec<_>) = timings::take()
        .into_iter()
        .partition(|(stage, _)| *stage != "printing");
    for (stage, took) in parts {
        let indent = if stage == "arg parsing" { "" } else { "  " };
        let _ = writeln!(e, "{indent}{stage:<30} {:>8.2} ms", ms(took));
    }
    for (stage, took) in top.iter().copied().chain(late) {
        let _ = writeln!(e, "{stage:<32} {:>8.2} ms", ms(took));
    }
    if let Some(start) = crate::MAIN_START.get() {
        let _ = writeln!(e, "{:<32} {:>8.2} ms", "main, all", ms(start.elapsed()));
    }
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

/// `path:line  score  signature` (`line  score  signature` under a file header when grouped),
/// then up to three lines of the unit from the file and `context` lines either side of it.
/// Like `grep -C`, the unit's lines are marked `:` and context lines `-` when context is shown.
fn write_hit(
    out: &mut dyn Write,
    h: &CodeHit,
    path: Option<&str>,
    context: usize,
    color: bool,
    files: &mut Snippets,
) -> std::io::Result<()> {
    let head = format!(
        "{}  {}  {}",
        paint(color, "32", &h.line.to_string()),
        paint(color, "33", &format!("{:.3}", h.score)),
        paint(color, "1", &h.signature)
    );
    match path {
        Some(p) => writeln!(out, "{}:{head}", paint(color, "35", p))?,
        None => writeln!(out, "{head}")?,
    }
    let t = match files.text(h, context) {
        Ok(t) => t,
        Err(why) => return writeln!(out, "{:>6}  {}", "", paint(color, "2", &format!("({why})"))),
    };
    let line = |out: &mut dyn Write, n: usize, mark: char, text: &str| {
        let text = clip(text.trim_end(), SNIPPET_WIDTH);
        let l = format!("{}{mark} {text}", paint(color, "2", &format!("{n:>6}")));
        writeln!(out, "{}", l.trim_end())
    };
    let own = if context > 0 { ':' } else { ' ' };
    let first = t.first_line(h);
    for (i, text) in t.before.iter().enumerate() {
        line(out, first + i, '-', text)?;
    }
    for (i, text) in t.text.iter().take(SNIPPET_LINES).enumerate() {
        line(out, h.line + i, own, text)?;
    }
    let hidden = t.text.len().saturating_sub(SNIPPET_LINES);
    if hidden > 0 && context > 0 {
        let more = format!("… {hidden} more line{}", if hidden == 1 { "" } else { "s" });
        writeln!(out, "{:>6}  {}", "", paint(color, "2", &more))?;
    }
    for (i, text) in t.after.iter().enumerate() {
        line(out, h.end_line + 1 + i, '-', text)?;
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

/// Files read for snippets and text, each read, hashed and split once.
struct Snippets {
    root: PathBuf,
    files: HashMap<String, Option<SourceFile>>,
}

impl Snippets {
    fn new(root: &Path) -> Snippets {
        Snippets {
            root: root.to_owned(),
            files: HashMap::new(),
        }
    }

    /// The hit's lines and `context` lines around them, or why the file no longer has them.
    fn text(&mut self, h: &CodeHit, context: usize) -> Result<HitText, Stale> {
        let root = &self.root;
        let file = self.files.entry(h.path.clone()).or_insert_with(|| {
            std::fs::read(root.join(&h.path))
                .ok()
                .map(|b| SourceFile::new(&b))
        });
        match file {
            Some(file) => file.hit_text(h, context),
            None => Err(Stale::Missing),
        }
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

    /// Indexes `repo()` with the tiny model; returns the repository and the model.
    fn indexed() -> (tempfile::TempDir, tempfile::TempDir) {
        let repo = repo();
        let model = tempfile::tempdir().unwrap();
        bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
        let (root, m) = (
            repo.path().to_str().unwrap(),
            model.path().to_str().unwrap(),
        );
        run_cli(&["index", root, "--model-dir", m]).unwrap();
        (repo, model)
    }

    fn search(
        repo: &tempfile::TempDir,
        model: &tempfile::TempDir,
        args: &[&str],
    ) -> anyhow::Result<String> {
        let (root, m) = (
            repo.path().to_str().unwrap(),
            model.path().to_str().unwrap(),
        );
        let mut all = vec!["search", "--dir", root, "--model-dir", m];
        all.extend_from_slice(args);
        run_cli(&all)
    }

    #[test]
    fn context_lines_are_marked_and_clamped_at_file_edges() {
        let (repo, model) = indexed();
        let out = search(
            &repo,
            &model,
            &["add numbers", "--path", "src/*", "-C", "3"],
        )
        .unwrap();
        // `add` (lines 2-4): one line before it (the file's first), three after.
        let add = out
            .split("src/lib.rs:")
            .find(|s| s.starts_with("2  "))
            .expect(&out);
        let want = "     1- /// Adds two numbers.\n     2: pub fn add(a: i32, b: i32) -> i32 {\n     3:     a + b\n     4: }\n     5-\n     6- pub fn sub(a: i32, b: i32) -> i32 {\n     7-     a - b\n";
        assert!(add.ends_with(want), "{out}");
        // `sub` (lines 6-8) ends the file: three lines before, none after.
        let sub = out
            .split("src/lib.rs:")
            .find(|s| s.starts_with("6  "))
            .expect(&out);
        assert!(
            sub.contains("     3-     a + b\n     4- }\n     5-\n     6: pub fn sub")
                && sub.trim_end().ends_with("     8: }"),
            "{out}"
        );

        // A unit longer than the snippet says how much of it is not shown before its context.
        let out = search(
            &repo,
            &model,
            &["read", "--lang", "python", "-C", "1", "-k", "10"],
        )
        .unwrap();
        assert!(
            out.contains("     3:     with open(path) as f:\n        … 1 more line\n     5-\n"),
            "{out}"
        );

        // Larger than the file: the whole file around the hit, nothing past its end.
        let out = search(
            &repo,
            &model,
            &[
                "add",
                "--path",
                "src/*",
                "-C",
                "1000",
                "--json",
                "--with-text",
            ],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let add = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["line"] == 2)
            .expect(&out);
        assert_eq!(add["end_line"], 4);
        assert_eq!(
            add["text"],
            "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}"
        );
        assert_eq!(
            add["context_before"],
            serde_json::json!(["/// Adds two numbers."])
        );
        assert_eq!(
            add["context_after"],
            serde_json::json!(["", "pub fn sub(a: i32, b: i32) -> i32 {", "    a - b", "}"])
        );
        assert!(add.get("stale").is_none(), "{add}");
    }

    #[test]
    fn with_text_alone_adds_only_the_units_code() {
        let (repo, model) = indexed();
        let out = search(
            &repo,
            &model,
            &[
                "cache",
                "--lang",
                "python",
                "--json",
                "--with-text",
                "-k",
                "10",
            ],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let file = std::fs::read_to_string(repo.path().join("scripts/tool.py")).unwrap();
        let lines: Vec<&str> = file.lines().collect();
        let hits = v["hits"].as_array().unwrap();
        assert!(!hits.is_empty());
        for h in hits {
            let (a, b) = (
                h["line"].as_u64().unwrap() as usize,
                h["end_line"].as_u64().unwrap() as usize,
            );
            assert_eq!(h["text"], lines[a - 1..b].join("\n"), "{h}");
            assert!(
                h.get("context_before").is_none() && h.get("context_after").is_none(),
                "{h}"
            );
        }
        // Without --with-text the shape is unchanged.
        let out = search(&repo, &model, &["cache", "--json"]).unwrap();
        assert!(
            !out.contains("\"text\"") && out.contains("\"hits\""),
            "{out}"
        );
    }

    #[test]
    fn a_file_changed_or_deleted_after_indexing_is_reported_not_misquoted() {
        let (repo, model) = indexed();
        std::fs::write(repo.path().join("src/lib.rs"), "pub fn add() {}\n").unwrap();
        std::fs::remove_file(repo.path().join("scripts/tool.py")).unwrap();
        let out = search(&repo, &model, &["add", "-C", "2", "-k", "20"]).unwrap();
        assert!(
            out.contains("(file changed since indexing; re-run `bitseek index`)"),
            "{out}"
        );
        assert!(
            out.contains("(file missing since indexing; re-run `bitseek index`)"),
            "{out}"
        );
        assert!(
            !out.contains("pub fn add() {}") && !out.contains("     1"),
            "{out}"
        );
        let out = search(
            &repo,
            &model,
            &["add", "-C", "2", "--json", "--with-text", "-k", "20"],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        for h in v["hits"].as_array().unwrap() {
            assert!(
                h["text"].is_null() && h.get("context_before").is_none(),
                "{h}"
            );
            assert!(
                h["stale"].as_str().unwrap().contains("since indexing"),
                "{h}"
            );
        }
    }

    #[test]
    fn group_puts_each_files_hits_together_in_order_of_its_best_hit() {
        let (repo, model) = indexed();
        let flat = search(&repo, &model, &["read a file", "--json", "-k", "20"]).unwrap();
        let flat: serde_json::Value = serde_json::from_str(flat.trim()).unwrap();
        let flat = flat["hits"].as_array().unwrap();
        let mut order: Vec<&str> = Vec::new();
        for h in flat {
            let p = h["path"].as_str().unwrap();
            if !order.contains(&p) {
                order.push(p);
            }
        }
        assert_eq!(order.len(), 2, "both files have hits");
        let out = search(
            &repo,
            &model,
            &["read a file", "--json", "-k", "20", "--group"],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["question"], "read a file");
        assert!(v.get("hits").is_none(), "{v}");
        let files = v["files"].as_array().unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(paths, order);
        for f in files {
            let want: Vec<&serde_json::Value> =
                flat.iter().filter(|h| h["path"] == f["path"]).collect();
            let got: Vec<&serde_json::Value> = f["hits"].as_array().unwrap().iter().collect();
            assert_eq!(got, want);
        }
        // On the terminal: one header per file, then its hits without the path.
        let out = search(&repo, &model, &["read a file", "-k", "20", "--group"]).unwrap();
        let headers: Vec<&str> = out.lines().filter(|l| order.contains(l)).collect();
        assert_eq!(headers, order, "{out}");
        assert!(
            !out.contains("src/lib.rs:") && !out.contains("tool.py:"),
            "{out}"
        );
        assert!(out.contains("\n2  ") && out.contains("\n1  "), "{out}");
    }

    #[test]
    fn bad_context_values_are_refused_clearly() {
        let (repo, model) = indexed();
        for bad in ["-1", "1001", "three"] {
            let err = search(&repo, &model, &["add", "--context", bad]).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains("context lines; use 0 to 1000"), "{bad}: {msg}");
        }
        let err = search(&repo, &model, &["add", "--with-text"]).unwrap_err();
        assert!(format!("{err:#}").contains("--json"), "{err:#}");
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
