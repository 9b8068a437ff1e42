//! `bitseek serve`: the HTTP server (`bitseek-server`) over a directory of collections.

use anyhow::Context;
use bitseek_server::{Limits, Options};
use bitseek_store::DbOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The directory of collections (created if missing).
    #[arg(long, default_value = "bitseek-data")]
    data: PathBuf,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8347")]
    addr: SocketAddr,
    /// The key writes must carry (`Authorization: Bearer KEY`); default $BITSEEK_API_KEY. Without
    /// one, writes are open, and only a loopback address is allowed.
    #[arg(long)]
    api_key: Option<String>,
    /// Require the API key for reads (searches, listings) too.
    #[arg(long)]
    protect_reads: bool,
    /// The embedding model for "text" searches (default: $BITSEEK_MODEL_DIR or the model `bitseek
    /// model fetch` installs); loaded on the first text search, or at start with --code.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Also search the code of these repositories (each indexed by `bitseek index DIR`) at /code
    /// and POST /code/search; repeat the flag or list several. Their model (--model-dir) is loaded
    /// at start.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    code: Vec<PathBuf>,
    /// Where POST /collections/{name}/snapshot writes copies (default: DATA.snapshots).
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes, value_parser = crate::positive)]
    max_body_bytes: usize,
    /// Most points in one upsert or delete.
    #[arg(long, default_value_t = Limits::default().max_points_per_request, value_parser = crate::positive)]
    max_points_per_request: usize,
    /// Most queries in one batch search.
    #[arg(long, default_value_t = Limits::default().max_batch_queries, value_parser = crate::positive)]
    max_batch_queries: usize,
    /// Largest k a search may ask for.
    #[arg(long, default_value_t = Limits::default().max_k, value_parser = crate::positive)]
    max_k: usize,
    /// Largest oversample a search may ask for (candidates rescored per hit).
    #[arg(long, default_value_t = Limits::default().max_oversample, value_parser = at_least_one)]
    max_oversample: f32,
    /// Most candidates one search request may ask for: queries × k × oversample.
    #[arg(long, default_value_t = Limits::default().max_candidates, value_parser = crate::positive)]
    max_candidates: usize,
    /// Most connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, default_value_t = Limits::default().max_connections, value_parser = crate::positive)]
    max_connections: usize,
    /// Seconds a client has to send a request's head, from its first byte (then it is cut off).
    #[arg(long, default_value_t = secs(Limits::default().header_timeout), value_parser = crate::positive)]
    header_timeout: usize,
    /// Seconds a client has to send a request's body once its head is in (then 408).
    #[arg(long, default_value_t = secs(Limits::default().body_timeout), value_parser = crate::positive)]
    body_timeout: usize,
    /// Seconds a connection may sit with no request in flight before it is closed.
    #[arg(long, default_value_t = secs(Limits::default().idle_timeout), value_parser = crate::positive)]
    idle_timeout: usize,
}

fn secs(d: Duration) -> usize {
    d.as_secs() as usize
}

fn at_least_one(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x >= 1.0 => Ok(x),
        _ => Err(format!("{s:?} is not a number of at least 1")),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let api_key = a
        .api_key
        .or_else(|| std::env::var("BITSEEK_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let snapshot_dir = a.snapshot_dir.unwrap_or_else(|| {
        let mut s = a.data.clone().into_os_string();
        s.push(".snapshots");
        PathBuf::from(s)
    });
    if a.protect_reads && api_key.is_none() {
        anyhow::bail!("--protect-reads needs an API key: pass --api-key or set BITSEEK_API_KEY");
    }
    let code = if a.code.is_empty() {
        None
    } else {
        let repos = bitseek_server::CodeRepos::open(&a.code, a.model_dir.as_deref())
            .context("--code: cannot serve code search")?;
        Some(Arc::new(repos))
    };
    let options = Options {
        api_key,
        protect_reads: a.protect_reads,
        model_dir: a.model_dir,
        snapshot_dir,
        limits: Limits {
            max_body_bytes: a.max_body_bytes,
            max_points_per_request: a.max_points_per_request,
            max_batch_queries: a.max_batch_queries,
            max_k: a.max_k,
            max_oversample: a.max_oversample,
            max_candidates: a.max_candidates,
            max_connections: a.max_connections,
            header_timeout: Duration::from_secs(a.header_timeout as u64),
            body_timeout: Duration::from_secs(a.body_timeout as u64),
            idle_timeout: Duration::from_secs(a.idle_timeout as u64),
        },
        code,
    };
    bitseek_server::serve(a.data, a.addr, options, db_options())?;
    Ok(())
}

/// The store's options: memtable rows per flush from $BITSEEK_FLUSH_ROWS when it holds a positive
/// number (the crash test sets it low so that flushes happen under fire), the store's default
/// otherwise.
fn db_options() -> DbOptions {
    let mut options = DbOptions::default();
    if let Some(n) = std::env::var("BITSEEK_FLUSH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
    {
        options.flush_rows = n;
    }
    options
}
