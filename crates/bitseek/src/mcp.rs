//! `bitseek mcp [--dir DIR]`: code search for agents, as a Model Context Protocol server over
//! stdio (JSON-RPC 2.0, one message per line; the official SDK, `rmcp`, speaks the protocol and
//! negotiates its version).
//!
//! Two tools: `search` (a question in plain words → hits with path, lines, signature, score and
//! the code itself, optionally the lines around it) and `index` (bring `DIR/.bitseek` up to date,
//! embedding only new and changed files). The model is loaded once, in the background from the
//! start, and kept between calls; the index is reopened only when a newer generation is
//! committed (by the `index` tool, `bitseek index` or `bitseek index --watch`), so a search never
//! reads a half-written index. A missing index or model, or a bad argument, is a tool error
//! (`isError: true`) whose text says what to do — never a crash of the server.

use bitseek_codesearch::{
    index_repo, load_model, CodeEmbedder, CodeHit, Encoder, Filter, IndexOptions, LiveIndex,
    ModelInfo, SearchMode, SourceFile, MAX_CONTEXT,
};
use bitseek_embed::Embedder;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{schemars, tool, tool_handler, tool_router, Json, ServerHandler, ServiceExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The repository to search (its index is DIR/.bitseek; the `index` tool creates it).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// A BERT-family model directory instead of $BITSEEK_MODEL_DIR or the one `bitseek model
    /// fetch` installs; it must be the model the index was built with.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

/// Most hits one search returns.
const MAX_K: usize = 100;

/// The `search` tool's arguments.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// The question, in plain words or as an identifier ("where are index files checksummed?",
    /// "parse_manifest").
    question: String,
    /// Hits to return (1 to 100, default 10).
    k: Option<usize>,
    /// Only units in this language: python, rust, javascript, typescript, tsx, go, java, c, cpp
    /// or text.
    lang: Option<String>,
    /// Only units whose path (relative to the repository root), or one of its directories,
    /// matches this glob, e.g. "src/**" or "*.py".
    path: Option<String>,
    /// Lines of the file to include before and after each hit's code (0 to 1000, default 0).
    context: Option<usize>,
}

/// The `search` tool's answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SearchAnswer {
    question: String,
    /// Best first.
    hits: Vec<Hit>,
    /// Units in the index searched, and its generation (each update commits a new one).
    units: usize,
    generation: u64,
}

/// One hit of the `search` tool.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Hit {
    /// Relative to the repository root, `/`-separated.
    path: String,
    /// First and last line of the unit (1-based, inclusive; the doc comment is above `line`).
    line: usize,
    end_line: usize,
    /// Cosine similarity of the question and the unit.
    score: f32,
    signature: String,
    /// function, method, class, struct, … or window (a span of a file without definitions).
    kind: String,
    name: String,
    lang: String,
    /// The unit's code (lines line..=end_line); absent when the file changed since indexing.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    /// With `context`: the lines just before `line` and just after `end_line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    context_before: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_after: Option<Vec<String>>,
    /// Why the code is absent: the file changed or went since indexing (call `index`).
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<String>,
}

/// The `index` tool's answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct IndexAnswer {
    units: usize,
    files: usize,
    files_embedded: usize,
    files_reused: usize,
    files_deleted: usize,
    units_embedded: usize,
    generation: u64,
    seconds: f64,
    /// Why everything was re-embedded, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    rebuilt_because: Option<String>,
    /// Something the agent should pass on: an int8 index on a CPU where int8 is slow.
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

type Model = (CodeEmbedder, ModelInfo);

/// What the tools share: the repository, its live index and the models, loaded once.
struct State {
    root: PathBuf,
    model_dir: Option<PathBuf>,
    /// The model questions (and `f32` indexes) are embedded with.
    model: OnceLock<Result<Arc<Model>, String>>,
    /// Its 8-bit twin, for indexes in int8 (`bitseek index`'s default where the CPU has VNNI).
    model_int8: OnceLock<Result<Arc<Model>, String>>,
    /// Shared by the tools' calls without a lock: searches run side by side.
    live: LiveIndex,
}

impl State {
    fn model(&self, int8: bool) -> Result<Arc<Model>, String> {
        let cell = if int8 { &self.model_int8 } else { &self.model };
        cell.get_or_init(|| {
            // The built-in code head (when the model is its own): what `bitseek index` builds.
            load_model(self.model_dir.as_deref(), int8, &Encoder::Default)
                .map(Arc::new)
                .map_err(|e| format!("cannot load the embedding model: {e}"))
        })
        .clone()
    }

    fn search(&self, a: SearchArgs) -> Result<SearchAnswer, String> {
        let k = a.k.unwrap_or(10);
        if !(1..=MAX_K).contains(&k) {
            return Err(format!("k = {k} is out of range; use 1 to {MAX_K}"));
        }
        let context = a.context.unwrap_or(0);
        if context > MAX_CONTEXT {
            return Err(format!(
                "context = {context} is out of range; use 0 to {MAX_CONTEXT} lines"
            ));
        }
        if a.question.trim().is_empty() {
            return Err("the question is empty; ask in plain words or name an identifier".into());
        }
        let filter =
            Filter::new(a.lang.as_deref(), a.path.as_deref()).map_err(|e| e.to_string())?;
        let live = &self.live;
        // Open first: a missing index is reported before the model is waited for.
        let index = live.index().map_err(|e| self.explain(e))?;
        let model = self.model(false)?;
        index.check_model(&model.1).map_err(|e| e.to_string())?;
        let vectors = model
            .0
            .questions()
            .embed(&[a.question.as_str()])
            .map_err(|e| e.to_string())?;
        let (mut results, searched) = live
            .search_in(
                &[a.question.as_str()],
                &vectors,
                k,
                &filter,
                SearchMode::Hybrid,
            )
            .map_err(|e| self.explain(e))?;
        let hits = results.pop().unwrap_or_default();
        let (units, generation) = (searched.units(), searched.collection().generation());
        let mut files: HashMap<String, Option<SourceFile>> = HashMap::new();
        let hits = hits
            .into_iter()
            .map(|h| self.hit(h, context, &mut files))
            .collect();
        Ok(SearchAnswer {
            question: a.question,
            hits,
            units,
            generation,
        })
    }

    fn hit(
        &self,
        h: CodeHit,
        context: usize,
        files: &mut HashMap<String, Option<SourceFile>>,
    ) -> Hit {
        let file = files.entry(h.path.clone()).or_insert_with(|| {
            std::fs::read(self.root.join(&h.path))
                .ok()
                .map(|b| SourceFile::new(&b))
        });
        let text = match file {
            Some(f) => f.hit_text(&h, context),
            None => Err(bitseek_codesearch::Stale::Missing),
        };
        let mut hit = Hit {
            path: h.path,
            line: h.line,
            end_line: h.end_line,
            score: h.score,
            signature: h.signature,
            kind: h.kind,
            name: h.name,
            lang: h.lang,
            code: None,
            context_before: None,
            context_after: None,
            stale: None,
        };
        match text {
            Ok(t) => {
                hit.code = Some(t.text.join("\n"));
                if context > 0 {
                    hit.context_before = Some(t.before);
                    hit.context_after = Some(t.after);
                }
            }
            Err(why) => {
                let why = why.to_string();
                hit.stale = Some(why.replace("re-run `bitseek index`", "call the index tool"));
            }
        }
        hit
    }

    fn index(&self) -> Result<IndexAnswer, String> {
        let start = Instant::now();
        // Keep the index's precision (anything else would re-embed every unit); a new index
        // gets `bitseek index`'s default.
        let existing = self.live.index().ok();
        let int8 = bitseek_codesearch::index_int8(None, existing.as_ref().map(|i| i.model()));
        let warning = bitseek_codesearch::slow_int8_warning(int8);
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        let model = self.model(int8)?;
        let r = index_repo(
            &self.root,
            &model.0.units(),
            &model.1,
            &IndexOptions::default(),
            &|_, _| {},
        )
        .map_err(|e| e.to_string())?;
        Ok(IndexAnswer {
            units: r.units,
            files: r.files,
            files_embedded: r.files_embedded,
            files_reused: r.files_reused,
            files_deleted: r.files_deleted,
            units_embedded: r.units_embedded,
            generation: r.generation,
            seconds: start.elapsed().as_secs_f64(),
            rebuilt_because: r.rebuilt_because,
            warning: warning.map(str::to_owned),
        })
    }

    /// An error's message, with the tool to call where the CLI's message names a command.
    fn explain(&self, e: bitseek_codesearch::CodeError) -> String {
        match e {
            bitseek_codesearch::CodeError::NoIndex { .. } => {
                format!("{e} (or call the `index` tool)")
            }
            e => e.to_string(),
        }
    }
}

/// The MCP server: the tools over one [`State`].
#[derive(Clone)]
pub struct Server {
    state: Arc<State>,
    tool_router: ToolRouter<Server>,
}

/// A tool's result: structured content on success, a tool error (`isError`) with the message
/// otherwise.
fn answer<T>(r: Result<Result<T, String>, tokio::task::JoinError>) -> Result<Json<T>, String> {
    match r {
        Ok(r) => r.map(Json),
        Err(e) => Err(format!("the tool failed unexpectedly: {e}")),
    }
}

#[tool_router]
impl Server {
    fn new(state: Arc<State>) -> Server {
        Server {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// Semantic code search over the repository.
    #[tool(
        description = "Search the repository's code with a question in plain words or an identifier. Returns the best units (functions, methods, types, or text windows), best first, each with path, line and end_line, signature, score and its code; `context` adds lines around each hit. Filter by `lang` and by a `path` glob."
    )]
    async fn search(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<Json<SearchAnswer>, String> {
        let state = self.state.clone();
        answer(tokio::task::spawn_blocking(move || state.search(args)).await)
    }

    /// Brings the index up to date.
    #[tool(
        description = "Update the repository's code index (.bitseek): embeds only new and changed files and drops deleted ones. Call it after editing files, or once to create the index."
    )]
    async fn index(&self) -> Result<Json<IndexAnswer>, String> {
        let state = self.state.clone();
        answer(tokio::task::spawn_blocking(move || state.index()).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("bitseek", env!("CARGO_PKG_VERSION"))
                    .with_title("bitseek code search"),
            )
            .with_instructions(format!(
                "Semantic code search over {}. Use `search` to find code by what it does or by name; \
                 call `index` after changing files (or when search reports no index).",
                self.state.root.display()
            ))
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !a.dir.is_dir() {
        anyhow::bail!(
            "{} is not a directory; pass the repository's root with --dir",
            a.dir.display()
        );
    }
    let state = Arc::new(State {
        root: a.dir.clone(),
        model_dir: a.model_dir,
        model: OnceLock::new(),
        model_int8: OnceLock::new(),
        live: LiveIndex::new(&a.dir),
    });
    // Load the model while the client connects: the first search then waits less (or not at all).
    let preload = state.clone();
    std::thread::spawn(move || {
        let _ = preload.model(false);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let service = match Server::new(state).serve(rmcp::transport::stdio()).await {
            Ok(service) => service,
            // A client that only probed (`server/discover`) or left before its first request.
            Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
            Err(e) => anyhow::bail!("the MCP client did not connect: {e}"),
        };
        service.waiting().await?;
        anyhow::Ok(())
    })
}
