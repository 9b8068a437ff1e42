//! Code search over HTTP: `bitseek serve --code DIR…` answers questions over the code indexes that
//! `bitseek index` built (`DIR/.bitseek`), with the page at `GET /code` and its JSON API,
//! `GET /code/repos` and `POST /code/search` (both in `openapi.json`).
//!
//! The repositories and the embedding model are opened once, when the server starts
//! ([`CodeRepos::open`]), so a directory without an index or a missing model stops the server with
//! the fix instead of failing each request; the same loaded model also serves the collections'
//! `"text"` searches. Ranking is the library's (`bitseek_codesearch::CodeIndex::search_with`,
//! hybrid unless `semantic_only`); each hit's code and context lines are read back from the
//! repository as `bitseek search --context N --with-text` does, and a file changed since indexing
//! is reported rather than misquoted. An index rebuilt while the server runs (`bitseek index`,
//! watch mode) is followed as `bitseek search`, `bitseek mcp` and Python follow it, through one
//! [`LiveIndex`] per repository: each search stats the manifest, reopens on a new commit, and is
//! retried on the newer generation when the one it started on lost its files under it. Searches
//! share the repositories and the model by reference and run side by side.

use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitseek_codesearch::hybrid::identifier_tokens;
use bitseek_codesearch::{
    AdapterChoice, CodeEmbedder, CodeError, CodeHit, Encoder, Filter, LiveIndex, ModelInfo,
    SearchMode, SourceFile, Stale, LANGS, MAX_CONTEXT,
};
use bitseek_embed::{BertEmbedder, Embedder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The code search page served at `GET /code`.
pub const CODE_PAGE: &str = include_str!("code.html");

/// Longest question accepted, in bytes: a question is a sentence or a name, and BM25 and the
/// embedding both cost in proportion to it.
pub const MAX_QUESTION_BYTES: usize = 4096;

/// English words a question is made of that say nothing about the code: not highlighted.
const STOP_WORDS: [&str; 40] = [
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "get",
    "how", "in", "into", "is", "it", "its", "of", "on", "or", "that", "the", "their", "there",
    "this", "to", "use", "used", "what", "when", "where", "which", "who", "why", "with", "we",
    "you",
];

/// The repositories a server searches and the model their questions are embedded with.
pub struct CodeRepos {
    repos: Vec<Repo>,
    embedder: CodeEmbedder,
    model: ModelInfo,
}

impl std::fmt::Debug for CodeRepos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRepos")
            .field("repos", &self.names())
            .field("model", &self.model.name)
            .finish_non_exhaustive()
    }
}

/// One indexed repository, reopened when its manifest changes.
struct Repo {
    /// How the API and the page name it: the directory's name, made unique.
    name: String,
    root: PathBuf,
    live: LiveIndex,
}

impl CodeRepos {
    /// Opens the index of each directory in `dirs` (each must hold one built by `bitseek index`)
    /// and loads the embedding model from `model_dir` (else `$BITSEEK_MODEL_DIR`, else the one
    /// `bitseek model fetch` installs), checking that every index was built with it. Errors name
    /// the directory and the fix. Loads the model: seconds, once.
    pub fn open(dirs: &[PathBuf], model_dir: Option<&Path>) -> Result<CodeRepos, CodeError> {
        let mut repos: Vec<Repo> = Vec::with_capacity(dirs.len());
        let mut seen: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            if !dir.is_dir() {
                return Err(CodeError::NotADirectory { path: dir.clone() });
            }
            let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if seen.contains(&canonical) {
                continue;
            }
            seen.push(canonical.clone());
            // Opened now, so a directory without an index stops the server before the model
            // is loaded.
            let live = LiveIndex::new(&canonical);
            live.index()?;
            let base = canonical
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "repo".into());
            let mut name = base.clone();
            let mut n = 1;
            while repos.iter().any(|r| r.name == name) {
                n += 1;
                name = format!("{base}-{n}");
            }
            repos.push(Repo {
                name,
                root: canonical,
                live,
            });
        }
        // Questions go through the code head the (first) index was built with; an index built
        // with another is refused by `with_model`, naming both.
        let (adapter, encoder) = match repos.first() {
            Some(r) => {
                let built = r.live.index()?.model().clone();
                (AdapterChoice::of_index(&built)?, Encoder::of_index(&built)?)
            }
            None => (AdapterChoice::Default, Encoder::Default),
        };
        let (embedder, model) =
            bitseek_codesearch::load_tuned(model_dir, false, &adapter, &encoder)?;
        let repos = repos
            .into_iter()
            .map(|r| {
                Ok(Repo {
                    live: r.live.with_model(model.clone())?,
                    ..r
                })
            })
            .collect::<Result<Vec<Repo>, CodeError>>()?;
        Ok(CodeRepos {
            repos,
            embedder,
            model,
        })
    }

    /// The repositories' names, in the order they were given.
    pub fn names(&self) -> Vec<&str> {
        self.repos.iter().map(|r| r.name.as_str()).collect()
    }

    /// The loaded embedding model, shared with the collections' text searches when it is the
    /// model as fetched: with a LoRA adapter merged (tuned for code) it is not, and text search
    /// loads its own.
    pub(crate) fn embedder(&self) -> Option<Arc<BertEmbedder>> {
        self.model
            .adapter
            .is_none()
            .then(|| self.embedder.model.clone())
    }
}

/// The code search routes; merged into the server's router before its fallbacks.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/code", get(page))
        .route("/code/repos", get(list_repos))
        .route("/code/search", post(search))
}

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(CODE_PAGE),
    )
}

fn repos_of(state: &AppState) -> Result<Arc<CodeRepos>, ApiError> {
    state.options.code.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_code",
            "this server searches no code: start it with `bitseek serve --code DIR` (DIR indexed by `bitseek index DIR`)",
        )
    })
}

/// Runs blocking work (file reads, embedding, the scan) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
}

#[derive(Serialize)]
struct RepoInfo {
    name: String,
    root: String,
    units: usize,
    files: usize,
    generation: u64,
}

#[derive(Serialize)]
struct ReposReply {
    repos: Vec<RepoInfo>,
    model: ModelInfo,
    /// What `"lang"` accepts.
    langs: Vec<&'static str>,
}

async fn list_repos(State(state): State<Arc<AppState>>) -> Result<Json<ReposReply>, ApiError> {
    let code = repos_of(&state)?;
    blocking(move || {
        let mut repos = Vec::with_capacity(code.repos.len());
        for r in &code.repos {
            let index = r.live.index().map_err(api_error)?;
            repos.push(RepoInfo {
                name: r.name.clone(),
                root: r.root.display().to_string(),
                units: index.units(),
                files: index.files(),
                generation: index.collection().generation(),
            });
        }
        Ok(Json(ReposReply {
            repos,
            model: code.model.clone(),
            langs: LANGS.to_vec(),
        }))
    })
    .await
}

/// `POST /code/search`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    question: String,
    #[serde(default = "default_k")]
    k: usize,
    /// One repository by name; all when absent.
    #[serde(default)]
    repo: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    context: usize,
    #[serde(default = "yes")]
    with_text: bool,
    #[serde(default)]
    group: bool,
    #[serde(default)]
    semantic_only: bool,
}

fn default_k() -> usize {
    10
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
struct HitReply {
    repo: String,
    path: String,
    line: usize,
    end_line: usize,
    doc_start_line: usize,
    score: f32,
    signature: String,
    lang: String,
    kind: String,
    name: String,
    /// The unit's lines joined by `\n`; null when the file is stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_before: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_after: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<String>,
}

#[derive(Serialize)]
struct FileReply {
    repo: String,
    path: String,
    hits: Vec<HitReply>,
}

#[derive(Serialize)]
struct SearchReply {
    question: String,
    /// The question's words as the lexical leg splits them, less common English words: what the
    /// page highlights.
    terms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hits: Option<Vec<HitReply>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileReply>>,
}

async fn search(
    State(state): State<Arc<AppState>>,
    crate::routes::JsonBody(body): crate::routes::JsonBody<SearchBody>,
) -> Result<Json<SearchReply>, ApiError> {
    let code = repos_of(&state)?;
    let max_k = state.options.limits.max_k;
    blocking(move || run_search(&code, body, max_k).map(Json)).await
}

/// Checks the request, embeds the question once, searches each repository, merges and reads the
/// hits' code.
fn run_search(code: &CodeRepos, body: SearchBody, max_k: usize) -> Result<SearchReply, ApiError> {
    let question = body.question.trim();
    if question.is_empty() {
        return Err(ApiError::bad_request(
            "\"question\" is empty: ask in words (\"where are files hashed?\") or name an identifier",
        ));
    }
    if question.len() > MAX_QUESTION_BYTES {
        return Err(ApiError::bad_request(format!(
            "\"question\" is {} bytes, more than {MAX_QUESTION_BYTES}: ask a shorter question",
            question.len()
        )));
    }
    if body.k == 0 || body.k > max_k {
        return Err(ApiError::bad_request(format!(
            "\"k\" must be between 1 and {max_k} (max_k), not {}",
            body.k
        )));
    }
    if body.context > MAX_CONTEXT {
        return Err(ApiError::bad_request(format!(
            "\"context\" must be between 0 and {MAX_CONTEXT} lines, not {}",
            body.context
        )));
    }
    let filter = Filter::new(body.lang.as_deref(), body.path.as_deref()).map_err(|e| {
        ApiError::bad_request(
            e.to_string()
                .replace("for --lang", "for \"lang\"")
                .replace("--path ", "\"path\" "),
        )
    })?;
    let selected: Vec<(usize, &Repo)> = match &body.repo {
        None => code.repos.iter().enumerate().collect(),
        Some(name) => match code.repos.iter().position(|r| &r.name == name) {
            Some(i) => vec![(i, &code.repos[i])],
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "no repository named {name:?}: this server searches {} (GET /code/repos lists them)",
                        code.names().join(", ")
                    ),
                ))
            }
        },
    };
    let mode = if body.semantic_only {
        SearchMode::Semantic
    } else {
        SearchMode::Hybrid
    };

    let vectors = code
        .embedder
        .questions()
        .embed(&[question])
        .map_err(|e| ApiError::internal(format!("embedding the question failed: {e}")))?;
    // Each repository ranks its own units; their lists are interleaved by rank (ties by score),
    // so no repository's order is changed and scores of different indexes are never compared
    // across ranks.
    let mut ranked: Vec<(usize, usize, CodeHit)> = Vec::new();
    for &(i, repo) in &selected {
        let hits = repo
            .live
            .search_with(&[question], &vectors, body.k, &filter, mode)
            .map_err(api_error)?;
        let hits = hits.into_iter().next().unwrap_or_default();
        ranked.extend(hits.into_iter().enumerate().map(|(rank, h)| (rank, i, h)));
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.score.total_cmp(&a.2.score)));
    ranked.truncate(body.k);

    let mut files: HashMap<(usize, String), Option<SourceFile>> = HashMap::new();
    let want_text = body.with_text || body.context > 0;
    let hits: Vec<HitReply> = ranked
        .into_iter()
        .map(|(_, i, h)| {
            let repo = &code.repos[i];
            let mut reply = HitReply {
                repo: repo.name.clone(),
                path: h.path.clone(),
                line: h.line,
                end_line: h.end_line,
                doc_start_line: h.doc_start_line,
                score: h.score,
                signature: h.signature.clone(),
                lang: h.lang.clone(),
                kind: h.kind.clone(),
                name: h.name.clone(),
                text: None,
                context_before: None,
                context_after: None,
                stale: None,
            };
            if !want_text {
                return reply;
            }
            let file = files
                .entry((i, h.path.clone()))
                .or_insert_with(|| read_source(&repo.root, &h.path));
            let text = match file {
                Some(f) => f.hit_text(&h, body.context),
                None => Err(Stale::Missing),
            };
            match text {
                Ok(t) => {
                    if body.with_text {
                        reply.text = Some(Some(t.text.join("\n")));
                    }
                    if body.context > 0 {
                        reply.context_before = Some(t.before);
                        reply.context_after = Some(t.after);
                    }
                }
                Err(why) => {
                    if body.with_text {
                        reply.text = Some(None);
                    }
                    reply.stale = Some(why.to_string());
                }
            }
            reply
        })
        .collect();

    let mut terms: Vec<String> = Vec::new();
    for t in identifier_tokens(question) {
        if !STOP_WORDS.contains(&t.as_str()) && !terms.contains(&t) {
            terms.push(t);
        }
    }
    let (hits, files) = if body.group {
        (None, Some(group(hits)))
    } else {
        (Some(hits), None)
    };
    Ok(SearchReply {
        question: question.to_owned(),
        terms,
        hits,
        files,
    })
}

/// Hits grouped by file (repository and path), files in the order of their best hit.
fn group(hits: Vec<HitReply>) -> Vec<FileReply> {
    let mut out: Vec<FileReply> = Vec::new();
    for h in hits {
        match out
            .iter_mut()
            .find(|f| f.repo == h.repo && f.path == h.path)
        {
            Some(f) => f.hits.push(h),
            None => out.push(FileReply {
                repo: h.repo.clone(),
                path: h.path.clone(),
                hits: vec![h],
            }),
        }
    }
    out
}

/// The file at `rel` under `root`, read for hits; `None` when it is gone, unreadable, or its
/// path would leave the repository (an index is data, not a licence to read any file).
fn read_source(root: &Path, rel: &str) -> Option<SourceFile> {
    let rel = Path::new(rel);
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    std::fs::read(root.join(rel))
        .ok()
        .map(|b| SourceFile::new(&b))
}

/// A search's failure as an answer: a bad filter is the client's; an index that went or changed
/// under the server is the operator's to fix (503, with the command); the rest is internal.
fn api_error(e: CodeError) -> ApiError {
    match e {
        CodeError::BadFilter(m) => ApiError::bad_request(m),
        CodeError::Store(s) => s.into(),
        e @ (CodeError::NoIndex { .. }
        | CodeError::NotACodeIndex { .. }
        | CodeError::ModelMismatch { .. }
        | CodeError::EncoderMismatch { .. }
        | CodeError::AdapterMismatch { .. }) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "index_unavailable",
            e.to_string(),
        ),
        e => ApiError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_repository_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s\n").unwrap();
        std::fs::write(root.join("a.rs"), "fn a() {}\n").unwrap();
        assert!(read_source(&root, "a.rs").is_some());
        assert!(read_source(&root, "./a.rs").is_some());
        assert!(read_source(&root, "../secret.txt").is_none());
        let abs = dir.path().join("secret.txt");
        assert!(read_source(&root, abs.to_str().unwrap()).is_none());
    }

    #[test]
    fn grouping_keeps_file_order_by_best_hit_and_separates_repositories() {
        let h = |repo: &str, path: &str, line: usize| HitReply {
            repo: repo.into(),
            path: path.into(),
            line,
            end_line: line,
            doc_start_line: line,
            score: 0.0,
            signature: String::new(),
            lang: "rust".into(),
            kind: "function".into(),
            name: String::new(),
            text: None,
            context_before: None,
            context_after: None,
            stale: None,
        };
        let groups = group(vec![
            h("a", "x.rs", 1),
            h("b", "x.rs", 2),
            h("a", "y.rs", 3),
            h("a", "x.rs", 4),
        ]);
        let got: Vec<(&str, &str, Vec<usize>)> = groups
            .iter()
            .map(|f| {
                (
                    f.repo.as_str(),
                    f.path.as_str(),
                    f.hits.iter().map(|h| h.line).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "x.rs", vec![1, 4]),
                ("b", "x.rs", vec![2]),
                ("a", "y.rs", vec![3])
            ]
        );
    }
}
