//! The bitseek HTTP server: the collections of a `bitseek-store` database over REST+JSON, a search
//! page at `/`, Prometheus metrics and an OpenAPI document. `bitseek serve` starts it. With
//! `bitseek serve --code DIR…` it also searches code indexes (`code.rs`: the page at `/code`).
//!
//! Every endpoint is one library operation (see `openapi.json` beside this crate's manifest, served
//! at `GET /openapi.json`). Store calls block (they read and fsync files), so each runs on tokio's
//! blocking pool: a search never waits behind a long write, and the async workers keep accepting
//! requests. An upsert is answered only after the store says it is durable.
//!
//! Bad requests never reach the store half-checked: bodies are size-limited before they are read,
//! parsed with messages that point at the offending field, and checked for dimension, finite values,
//! batch sizes and `k` before any work; every refusal is JSON (`{"error": {"status", "code",
//! "message", "limit"?}}`) naming the problem and the fix. Writes need the API key when one is
//! configured; reads need it only with [`Options::protect_reads`].
//!
//! Slow or hostile clients cannot starve the others: connections are capped, and a client that
//! dribbles a request's head or body, or sits idle, is cut off after a time limit ([`Limits`]);
//! a search's candidates are bounded, so no request asks for the whole collection.
//!
//! Not here: the storage itself (`bitseek-store`), embedding (`bitseek-embed`), TLS (put a reverse
//! proxy in front for that).

mod binary;
mod code;
mod conn;
mod error;
mod metrics;
mod routes;
mod text;

pub use code::{CodeRepos, CODE_PAGE};
pub use error::{ApiError, Limit};
pub use metrics::Metrics;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bitseek_store::{Db, DbOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The OpenAPI document served at `GET /openapi.json` (kept in the repository beside Cargo.toml).
pub const OPENAPI: &str = include_str!("../openapi.json");
/// The search page served at `GET /`.
pub const PAGE: &str = include_str!("page.html");

/// Sizes and times a request or connection may not exceed. Each is a `bitseek serve` flag of the
/// same name (times in seconds). Together they bound what one client can hold: a connection slot
/// for at most the header, body and idle times, and the work of one request by its size and its
/// candidates.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most points in one upsert (413 above it).
    pub max_points_per_request: usize,
    /// Most queries in one batch search (413 above it).
    pub max_batch_queries: usize,
    /// Largest `k` (400 above it).
    pub max_k: usize,
    /// Largest `oversample` (400 above it).
    pub max_oversample: f32,
    /// Most candidates one search request may ask for: queries × `k` × `oversample` (the store's
    /// default oversample when none is given). Bounds the rescoring work and the size of the
    /// answer, so that a batch of large-`k` queries cannot ask for the whole collection
    /// (400 above it).
    pub max_candidates: usize,
    /// Most connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time to send a request's head (line and headers), from its first byte; the connection is
    /// closed after it (slowloris).
    pub header_timeout: Duration,
    /// Time to send a request's body once its head is in (408 after it).
    pub body_timeout: Duration,
    /// Time a connection may sit with no request in flight before it is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_points_per_request: 10_000,
            max_batch_queries: 1_000,
            max_k: 1_000,
            max_oversample: 100.0,
            max_candidates: 250_000,
            max_connections: 1_024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How the server behaves, apart from where its data lives.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The key writes must carry (`Authorization: Bearer KEY` or `X-Api-Key: KEY`); `None` leaves
    /// writes open (only sensible on loopback).
    pub api_key: Option<String>,
    /// Require the key for reads (searches, listings, the page's data) too.
    pub protect_reads: bool,
    /// The embedding model for `"text"` searches; `None` uses `$BITSEEK_MODEL_DIR` or the default
    /// install of `bitseek model fetch`. Loaded on the first text search, once.
    pub model_dir: Option<PathBuf>,
    /// Where `POST /collections/{name}/snapshot` writes its copies (a directory per snapshot).
    pub snapshot_dir: PathBuf,
    pub limits: Limits,
    /// The code indexes searched at `/code` (`--code DIR`), opened with their model before the
    /// server starts; the model also serves the collections' text searches.
    pub code: Option<Arc<CodeRepos>>,
}

/// Everything a handler needs, shared by all requests.
pub struct AppState {
    pub(crate) db: Arc<Db>,
    pub(crate) options: Options,
    pub(crate) model: text::TextModel,
    pub(crate) metrics: Metrics,
    pub(crate) started: Instant,
}

impl AppState {
    pub fn new(db: Arc<Db>, options: Options) -> Arc<AppState> {
        Arc::new(AppState {
            model: text::TextModel::new(
                options.model_dir.clone(),
                options.code.as_ref().and_then(|c| c.embedder()),
            ),
            db,
            options,
            metrics: Metrics::default(),
            started: Instant::now(),
        })
    }

    /// The database the server answers from.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Makes every collection durable (called on shutdown). Blocking.
    pub fn flush_all(&self) -> Vec<(String, bitseek_store::StoreError)> {
        let mut failed = Vec::new();
        for info in self.db.list() {
            let r = self.db.get(&info.name).and_then(|c| c.flush());
            if let Err(e) = r {
                failed.push((info.name, e));
            }
        }
        failed
    }
}

/// The application: every route of `openapi.json`, the body limit, the API-key check and the
/// per-route metrics.
pub fn router(state: Arc<AppState>) -> axum::Router {
    routes::routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.options.limits.max_body_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

/// Whether a request changes data: every PUT, DELETE and POST except the two searches.
fn is_write(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => !(path.ends_with("/search") || path.ends_with("/search/batch")),
        _ => true,
    }
}

/// The API key a request carries, from `Authorization: Bearer KEY` or `X-Api-Key: KEY`.
fn presented_key(req: &Request) -> Option<&str> {
    let h = req.headers();
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// Constant-time comparison, so the key cannot be guessed byte by byte from response times.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Refuses writes (and, with `protect_reads`, reads) without the configured key, before the body
/// is read.
async fn authorize(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = state.options.api_key.as_deref() else {
        return next.run(req).await;
    };
    let needed = state.options.protect_reads || is_write(req.method(), req.uri().path());
    if needed {
        match presented_key(&req) {
            None => {
                return ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!(
                        "{} {} needs the API key: send the header `Authorization: Bearer <key>` (or `X-Api-Key: <key>`) with the key the server was started with (--api-key or BITSEEK_API_KEY)",
                        req.method(),
                        req.uri().path()
                    ),
                )
                .into_response()
            }
            Some(k) if !same_key(k, key) => {
                return ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the API key is wrong: send the key the server was started with (--api-key or BITSEEK_API_KEY)",
                )
                .into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// Counts the request and its latency under its route template.
async fn measure(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state.metrics.record(
        method.as_str(),
        &route,
        resp.status().as_u16(),
        start.elapsed(),
    );
    resp
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (writes included: their blocking tasks run to completion) and flushes every collection.
/// Connections are capped and timed as [`Limits`] says.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    conn::serve(listener, app, state.options.limits, shutdown).await;
    let failed = tokio::task::spawn_blocking(move || state.flush_all())
        .await
        .map_err(std::io::Error::other)?;
    if let Some((name, e)) = failed.into_iter().next() {
        return Err(std::io::Error::other(format!(
            "flushing collection {name} on shutdown failed: {e}"
        )));
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `bitseek serve`: opens (or creates) the database in `data` with `db_options`, listens on
/// `addr` and serves until SIGINT/SIGTERM. Blocks the calling thread.
pub fn serve(
    data: PathBuf,
    addr: SocketAddr,
    options: Options,
    db_options: DbOptions,
) -> Result<(), ServeError> {
    if options.api_key.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::OpenWrites { addr });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let db = Db::open_with(&data, db_options).map_err(ServeError::Open)?;
    let state = AppState::new(Arc::new(db), options);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(ServeError::Runtime)?;
        let collections = state.db.list().len();
        let code = match &state.options.code {
            Some(c) => format!(", code search of {} at /code", c.names().join(", ")),
            None => String::new(),
        };
        eprintln!(
            "bitseek: serving {} ({collections} collections) on http://{local}/ (search page at /{code}, API at /openapi.json); Ctrl-C to stop",
            data.display()
        );
        if state.options.api_key.is_none() {
            eprintln!("bitseek: no API key set: writes are open to anyone who can reach {local}; pass --api-key or set BITSEEK_API_KEY");
        }
        serve_on(listener, state, shutdown_signal())
            .await
            .map_err(ServeError::Runtime)?;
        eprintln!("bitseek: stopped; all collections flushed");
        Ok(())
    })
}

/// Why `serve` could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No API key on a non-loopback address.
    #[error("refusing to listen on {addr} without an API key: anyone on the network could write; pass --api-key (or set BITSEEK_API_KEY), or listen on 127.0.0.1")]
    OpenWrites { addr: SocketAddr },
    #[error("cannot open the data directory: {0}")]
    Open(#[source] bitseek_store::StoreError),
    #[error("cannot listen on {addr}: {source}; pick another port with --addr 127.0.0.1:PORT")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(#[source] std::io::Error),
}
