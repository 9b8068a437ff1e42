//! The `bitseek` command: a thin shell over the library crates, which do the work: `bitseek-index`
//! (`build`, `query`, `eval`, `bench`), `bitseek-codesearch` (`index`, `search`, `mcp`, `eval-code`),
//! `bitseek-embed` (`model`), `bitseek-learn` (`train`) and `bitseek-server` (`serve`).
//!
//! Every subcommand validates through the library, prints human-readable output on a terminal and
//! JSON with `--json` (one object, or one line per query for `query`), and exits with 0 on success
//! and 2 on error, printing the whole error chain once.

mod bench;
mod build;
mod eval;
mod eval_code;
mod index;
mod mcp;
mod model;
mod query;
mod search;
mod serve;
mod train;
mod tune;
mod watch;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Compress float embeddings into binary and multi-bit codes and search them.
#[derive(Parser)]
#[command(name = "bitseek", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an index of codes from vectors (.npy, .fvecs or JSON lines).
    Build(build::Args),
    /// Search an index with query vectors.
    Query(query::Args),
    /// Recall@k of an index against exact float search, raw and rescored.
    Eval(eval::Args),
    /// Code-search evaluation on query → function pairs: MRR and recall@1/10 over the whole pool.
    EvalCode(eval_code::Args),
    /// Queries per second of an index next to exact float search, measured in the same run.
    Bench(bench::Args),
    /// Measure every code format within a byte budget on a calibration split: a Pareto table of
    /// recall and cost, and the winner `--quantizer auto:BYTES` builds.
    Tune(tune::Args),
    /// Install, locate and time the embedding model (all-MiniLM-L6-v2 by default).
    Model(model::Args),
    /// Index a repository for semantic code search (writes DIR/.bitseek; incremental).
    Index(index::Args),
    /// Search an indexed repository with a question in plain words.
    Search(search::Args),
    /// Serve code search to agents: a Model Context Protocol server over stdio (tools `search`
    /// and `index`).
    Mcp(mcp::Args),
    /// Train learned codes (a recurrent binarizer) on embedding pairs or vectors.
    Train(train::Args),
    /// Serve collections over HTTP: REST+JSON API, search page at /, metrics, OpenAPI document.
    Serve(serve::Args),
}

/// When `main` began, for `BITSEEK_TIMINGS`' total.
pub(crate) static MAIN_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    let start = *MAIN_START.get_or_init(std::time::Instant::now);
    let cli = Cli::parse();
    bitseek_embed::timings::record("arg parsing", start);
    let result = match cli.command {
        Command::Build(a) => build::run(a),
        Command::Query(a) => query::run(a),
        Command::Eval(a) => eval::run(a),
        Command::EvalCode(a) => eval_code::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Model(a) => model::run(a),
        Command::Index(a) => index::run(a),
        Command::Search(a) => search::run(a),
        Command::Mcp(a) => mcp::run(a),
        Command::Train(a) => train::run(a),
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("bitseek: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// What every searching command (`query`, `eval`, `bench`) takes: an index, queries, k and the
/// query's bits.
#[derive(clap::Args)]
pub(crate) struct Searched {
    /// The index file.
    pub index: std::path::PathBuf,
    /// Query vectors (.npy, .fvecs or JSON lines).
    #[arg(long)]
    pub queries: std::path::PathBuf,
    /// Hits per query.
    #[arg(short, long, default_value_t = 10, value_parser = positive)]
    pub k: usize,
    /// Bits of the asymmetric query for rabitq/residual codes (default: 4 for rabitq, 8 for
    /// residual codes).
    #[arg(long, value_parser = positive)]
    pub query_bits: Option<usize>,
    /// Search effort of an IVF index: lists probed (default: a tenth of the lists, at least 8);
    /// of a graph index: the beam width (default 48).
    /// `bench` takes a comma-separated list and prints the recall/QPS curve; a flat index ignores it.
    #[arg(long)]
    pub effort: Option<List>,
}

impl Searched {
    /// The one effort `query` and `eval` search with (the first of the list).
    pub fn effort(&self) -> Option<usize> {
        self.effort.as_ref().and_then(|l| l.0.first().copied())
    }
}

/// Reads query vectors for `index`, refusing invalid ones with the file, row and reason (zero
/// vectors too, when the index ranks by cosine).
pub(crate) fn read_queries(
    path: &Path,
    index: &bitseek_index::Index,
) -> anyhow::Result<bitseek_index::input::Vectors> {
    use bitseek_index::input::{read_vectors, validate};
    let v = read_vectors(path)?;
    validate(&v, path, &index.query_checks())?;
    Ok(v)
}

/// The query mode `--symmetric` asks for on `query`, `eval` and `bench`; refused for formats with
/// a single query mode, where the flag would run the asymmetric scan under a symmetric label.
pub(crate) fn query_mode(
    symmetric: bool,
    kind: &bitseek_codes::quantizer::QuantizerKind,
) -> anyhow::Result<bitseek_codes::quantizer::QueryMode> {
    use bitseek_codes::quantizer::{QuantizerKind, QueryMode};
    if !symmetric {
        return Ok(QueryMode::Asymmetric);
    }
    match kind {
        QuantizerKind::Rabitq
        | QuantizerKind::Residual { .. }
        | QuantizerKind::Ternary
        | QuantizerKind::Learned { .. } => Ok(QueryMode::Symmetric),
        other => anyhow::bail!(
            "{other} codes have one query mode, so --symmetric would run the same scan; use it with rabitq, residualB, ternary or learned indexes, or drop it"
        ),
    }
}

/// Opens an index (its errors name the file).
pub(crate) fn open_index(path: &Path) -> anyhow::Result<bitseek_index::Index> {
    Ok(bitseek_index::Index::open(path)?)
}

/// A progress bar on a terminal, hidden otherwise (and under `--json`).
pub(crate) fn progress(len: u64, what: &str, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A comma-separated list of positive whole numbers (`1,2,4`), parsed by clap so a bad entry is
/// reported against its flag before any work starts.
#[derive(Clone, Debug)]
pub(crate) struct List(pub Vec<usize>);

impl std::str::FromStr for List {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(|p| positive(p.trim()))
            .collect::<Result<_, _>>()
            .map(List)
    }
}

/// clap parser for counts that must be at least 1.
pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("0 is not allowed; use 1 or more".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// Median of a list of measurements (mean of the middle two for even counts).
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Runs `f` on a rayon pool of `threads` threads.
pub(crate) fn with_threads<T: Send>(
    threads: usize,
    f: impl FnOnce() -> T + Send,
) -> anyhow::Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    Ok(pool.install(f))
}
