//! The endpoints, one per library operation, at the paths `openapi.json` documents.

use crate::binary::{self, SearchBody};
use crate::{ApiError, AppState, Metrics};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bitseek_index::vector::{check_row, Problem};
use bitseek_store::{
    CollectionConfig, Durability, Filter, Keep, LiveCollection as Collection, Metric, Point,
    ScoredPoint, SearchRequest, SegmentIndex,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

type St = State<Arc<AppState>>;
type ApiResult<T> = Result<T, ApiError>;

/// Every route. `tests/api.rs` checks that each one is documented in `openapi.json` and that each
/// documented one answers.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/collections", get(list_collections))
        .route(
            "/collections/{name}",
            put(create_collection)
                .get(get_collection)
                .delete(drop_collection),
        )
        .route("/collections/{name}/points", put(upsert))
        .route("/collections/{name}/points/delete", post(delete_points))
        .route("/collections/{name}/points/{id}", get(get_point))
        .route("/collections/{name}/search", post(search))
        .route("/collections/{name}/search/batch", post(search_batch))
        .route("/collections/{name}/compact", post(compact))
        .route("/collections/{name}/snapshot", post(snapshot))
        .route("/collections/{name}/quantizer", put(set_quantizer))
        .merge(crate::code::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}

/// A JSON request body, parsed with errors that name the field and the fix (axum's own `Json`
/// answers in plain text and insists on a content type; curl's `-d` sends another one).
pub(crate) struct JsonBody<T>(pub T);

/// Bodies larger than this are parsed on the blocking pool: parsing megabytes of numbers takes
/// milliseconds, and on an async worker it would hold up every other request on that worker.
const INLINE_PARSE_BYTES: usize = 64 << 10;

impl<T: DeserializeOwned + Send + 'static> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.len() <= INLINE_PARSE_BYTES {
            return parse_json(&bytes).map(JsonBody);
        }
        blocking(move || parse_json(&bytes)).await.map(JsonBody)
    }
}

/// The request's body, within the body timeout and size limit.
pub(crate) async fn read_body(req: Request, state: &Arc<AppState>) -> ApiResult<Bytes> {
    let limits = state.options.limits;
    let limit = limits.max_body_bytes;
    // A client that sends its head and then dribbles the body would hold the connection and
    // this request's memory for as long as it likes.
    tokio::time::timeout(limits.body_timeout, Bytes::from_request(req, state))
        .await
        .map_err(|_| body_timeout(limits.body_timeout))?
        .map_err(|e| body_error(e, limit))
}

/// 413 when a request carries more items (`n` `what`) than the limit `name` allows, naming the
/// limit, its value and `fix`.
fn too_many(
    n: usize,
    what: &str,
    name: &'static str,
    limit: usize,
    fix: &str,
) -> Result<(), ApiError> {
    if n <= limit {
        return Ok(());
    }
    Err(ApiError::limit(
        StatusCode::PAYLOAD_TOO_LARGE,
        name,
        limit as u64,
        format!("{n} {what}, more than the limit of {limit} ({name}): {fix}"),
    ))
}

/// 408 when the body did not arrive within `body_timeout`.
fn body_timeout(t: std::time::Duration) -> ApiError {
    ApiError {
        status: StatusCode::REQUEST_TIMEOUT,
        code: "request_timeout",
        message: format!(
            "the request body did not arrive within {:.1} s (body_timeout): send it at once, or restart the server with a larger --body-timeout",
            t.as_secs_f64()
        ),
        limit: Some(crate::Limit {
            name: "body_timeout",
            value: t.as_secs_f64().ceil() as u64,
        }),
    }
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::limit(
            StatusCode::PAYLOAD_TOO_LARGE,
            "max_body_bytes",
            limit as u64,
            format!(
                "the request body is larger than the server's limit of {limit} bytes (max_body_bytes): send fewer points or queries per request, or restart the server with a larger --max-body-bytes"
            ),
        )
    } else {
        ApiError::bad_request(format!("cannot read the request body: {e}"))
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is empty: send a JSON object (see GET /openapi.json for this endpoint's fields)",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => de.end().map(|()| v).map_err(|e| (".".to_string(), e)),
        Err(e) => Err((e.path().to_string(), e.into_inner())),
    };
    parsed.map_err(|(field, e)| {
        // The field a value was wrong for, when there is one (`"effort": -1` → `effort`).
        let mut message = if field == "." || e.is_syntax() || e.is_eof() {
            format!("the request body is not valid JSON for this endpoint: {e}")
        } else {
            format!("the request body is not valid JSON for this endpoint: field `{field}`: {e}")
        };
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]);
        if e.is_syntax() && (text.contains("NaN") || text.contains("Infinity")) {
            message.push_str(
                "; JSON has no NaN or Infinity: every vector value must be a finite number",
            );
        } else {
            message.push_str("; see GET /openapi.json for this endpoint's fields");
        }
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    })
}

/// One query over a collection of at most this many values (points × dimension: about 64k
/// points of 384 dimensions, a scan of a fraction of a millisecond) runs on the async worker:
/// handing it to the blocking pool and back would cost about as much as the scan.
const INLINE_SEARCH_VALUES: usize = 1 << 25;

/// Inline searches running now (at most one).
static INLINE_SEARCHES: AtomicUsize = AtomicUsize::new(0);

/// Runs a store call on the blocking pool, so the async workers keep serving while it reads,
/// scans or fsyncs.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
}

fn collection(state: &AppState, name: &str) -> ApiResult<Arc<Collection>> {
    state.db.get(name).map_err(|e| {
        let mut err = ApiError::from(e);
        if err.status == StatusCode::NOT_FOUND {
            err.message = format!(
                "no collection named {name:?}: create it with PUT /collections/{name} (or list them with GET /collections)"
            );
        }
        err
    })
}

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(crate::PAGE),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no endpoint at {} {}: GET /openapi.json lists the endpoints",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}: GET /openapi.json lists each path's methods",
            req.method(),
            req.uri().path()
        ),
    )
}

#[derive(Serialize)]
struct Health {
    /// `"ok"`, or `"degraded"` while a collection refuses writes.
    status: &'static str,
    version: &'static str,
    collections: usize,
    /// The collections that refuse writes (a failed fsync or manifest swap), and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    read_only: Vec<ReadOnly>,
    text_model_loaded: bool,
    uptime_seconds: f64,
}

#[derive(Serialize)]
struct ReadOnly {
    collection: String,
    reason: String,
}

async fn health(State(state): St) -> ApiResult<Json<Health>> {
    let s = state.clone();
    let infos = blocking(move || Ok(s.db.list())).await?;
    let read_only: Vec<ReadOnly> = infos
        .iter()
        .filter_map(|i| {
            i.read_only.as_ref().map(|reason| ReadOnly {
                collection: i.name.clone(),
                reason: reason.clone(),
            })
        })
        .collect();
    Ok(Json(Health {
        status: if read_only.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        version: env!("CARGO_PKG_VERSION"),
        collections: infos.len(),
        read_only,
        text_model_loaded: state.model.is_loaded(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    }))
}

async fn metrics(State(state): St) -> ApiResult<Response> {
    let s = state.clone();
    let infos = blocking(move || Ok(s.db.list())).await?;
    let mut out = String::new();
    state.metrics.render(&mut out);
    let _ = writeln!(
        out,
        "# HELP bitseek_collections Collections in the database.\n# TYPE bitseek_collections gauge\nbitseek_collections {}",
        infos.len()
    );
    for (name, help, value) in [
        (
            "bitseek_collection_points",
            "Live points (upserted, not deleted).",
            (|i: &bitseek_store::CollectionInfo| i.points as u64) as fn(&_) -> u64,
        ),
        ("bitseek_collection_segments", "Immutable segments.", |i| {
            i.segments as u64
        }),
        (
            "bitseek_collection_wal_records",
            "Records in the write-ahead log not yet compacted into segments.",
            |i| i.wal_records as u64,
        ),
        ("bitseek_collection_size_bytes", "Bytes on disk.", |i| {
            i.size_bytes
        }),
        (
            "bitseek_collection_generation",
            "Manifest generation.",
            |i| i.generation,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for i in &infos {
            let _ = writeln!(
                out,
                "{name}{{collection=\"{}\"}} {}",
                crate::metrics::escape(&i.name),
                value(i)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP bitseek_text_model_loaded 1 once the text model is loaded.\n# TYPE bitseek_text_model_loaded gauge\nbitseek_text_model_loaded {}",
        u8::from(state.model.is_loaded())
    );
    let _ = writeln!(
        out,
        "# HELP bitseek_uptime_seconds Seconds since the server started.\n# TYPE bitseek_uptime_seconds gauge\nbitseek_uptime_seconds {}",
        state.started.elapsed().as_secs_f64()
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[derive(Serialize)]
struct Collections {
    collections: Vec<bitseek_store::CollectionInfo>,
}

async fn list_collections(State(state): St) -> ApiResult<Json<Collections>> {
    let collections = blocking(move || Ok(state.db.list())).await?;
    Ok(Json(Collections { collections }))
}

/// `PUT /collections/{name}`: only `dim` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCollection {
    dim: usize,
    #[serde(default = "default_metric")]
    metric: Metric,
    #[serde(default = "default_quantizer")]
    quantizer: String,
    #[serde(default = "default_keep")]
    keep: Keep,
    #[serde(default)]
    durability: Option<Durability>,
    #[serde(default)]
    index: SegmentIndex,
}

fn default_metric() -> Metric {
    Metric::Cosine
}

fn default_quantizer() -> String {
    "rabitq".into()
}

fn default_keep() -> Keep {
    Keep::F32
}

async fn create_collection(
    State(state): St,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<CreateCollection>,
) -> ApiResult<Response> {
    if req.dim == 0 {
        return Err(ApiError::bad_request(
            "\"dim\" is 0: give the length of the vectors the collection will hold (e.g. 384)",
        ));
    }
    let config = CollectionConfig {
        dim: req.dim,
        metric: req.metric,
        quantizer: req.quantizer,
        keep: req.keep,
        durability: req.durability.unwrap_or_default(),
        index: req.index,
    };
    let info = blocking(move || {
        let c = state.db.create(&name, config).map_err(|e| {
            let mut err = ApiError::from(e);
            if err.status == StatusCode::CONFLICT {
                err.message = format!(
                    "collection {name:?} already exists: use it, delete it first (DELETE /collections/{name}), or pick another name"
                );
            }
            err
        })?;
        Ok(c.info())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn get_collection(
    State(state): St,
    Path(name): Path<String>,
) -> ApiResult<Json<bitseek_store::CollectionInfo>> {
    let info = blocking(move || Ok(collection(&state, &name)?.info())).await?;
    Ok(Json(info))
}

async fn drop_collection(
    State(state): St,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        collection(&state, &name)?;
        state.db.drop_collection(&name)?;
        Ok(Json(serde_json::json!({ "dropped": name })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upsert {
    points: Vec<Point>,
}

/// The collection's dimension and metric: what [`check_vector`] checks against.
fn shape(c: &Collection) -> (usize, Metric) {
    let view = c.snapshot_view();
    (view.config().dim, view.config().metric)
}

/// Refuses vectors the collection cannot hold ([`check_row`]), naming the point or query.
fn check_vector(
    v: &[f32],
    (dim, metric): (usize, Metric),
    what: impl Fn() -> String,
) -> ApiResult<()> {
    check_row(v, dim, metric).map_err(|problem| {
        ApiError::bad_request(match problem {
            Problem::Dimension { found, .. } => format!(
                "{} has {found} values, but the collection's vectors have {dim} (its \"dim\"): send {dim} numbers",
                what()
            ),
            Problem::NonFinite { column, value } => format!(
                "{} has a non-finite value at position {column} ({value}): every value must be a finite number within f32's range",
                what()
            ),
            Problem::Zero => format!(
                "{} is a zero vector, which cosine cannot normalise: send a vector with a non-zero value",
                what()
            ),
        })
    })
}

async fn upsert(
    State(state): St,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<Upsert>,
) -> ApiResult<Json<serde_json::Value>> {
    let limits = state.options.limits;
    let n = req.points.len();
    if n == 0 {
        return Err(ApiError::bad_request(
            "\"points\" is empty: send at least one {\"id\", \"vector\", \"payload\"}",
        ));
    }
    too_many(
        n,
        "points in one request",
        "max_points_per_request",
        limits.max_points_per_request,
        "split them into several requests",
    )?;
    blocking(move || {
        let c = collection(&state, &name)?;
        let shape = shape(&c);
        for (i, p) in req.points.iter().enumerate() {
            check_vector(&p.vector, shape, || format!("point {i} (id {})", p.id))?;
        }
        let lsn = c.upsert(req.points)?;
        Metrics::add(&state.metrics.points_upserted, n);
        Ok(Json(serde_json::json!({ "upserted": n, "lsn": lsn })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    ids: Vec<u64>,
}

async fn delete_points(
    State(state): St,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<Delete>,
) -> ApiResult<Json<serde_json::Value>> {
    let limits = state.options.limits;
    too_many(
        req.ids.len(),
        "ids in one request",
        "max_points_per_request",
        limits.max_points_per_request,
        "split them into several requests",
    )?;
    blocking(move || {
        let c = collection(&state, &name)?;
        let deleted = c.delete(&req.ids)?;
        Metrics::add(&state.metrics.points_deleted, deleted);
        Ok(Json(
            serde_json::json!({ "deleted": deleted, "requested": req.ids.len() }),
        ))
    })
    .await
}

async fn get_point(
    State(state): St,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<bitseek_store::Record>> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "point id {id:?} is not a whole number: ids are unsigned 64-bit integers"
        ))
    })?;
    blocking(move || {
        let c = collection(&state, &name)?;
        c.get(id).map(Json).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no point with id {id} in collection {name:?} (never upserted, or deleted)"
                ),
            )
        })
    })
    .await
}

/// The fields `search` and `search/batch` share.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    oversample: Option<f32>,
    #[serde(default)]
    effort: Option<usize>,
    #[serde(default)]
    filter: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBatch {
    #[serde(default)]
    vectors: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    texts: Option<Vec<String>>,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    oversample: Option<f32>,
    #[serde(default)]
    effort: Option<usize>,
    #[serde(default)]
    filter: Option<Filter>,
}

pub(crate) fn default_k() -> usize {
    10
}

#[derive(Serialize)]
struct Hits {
    hits: Vec<ScoredPoint>,
}

#[derive(Serialize)]
struct BatchHits {
    results: Vec<Hits>,
}

/// Checks `k`, `oversample` and `effort` against the limits.
fn search_request(
    state: &AppState,
    k: usize,
    oversample: Option<f32>,
    effort: Option<usize>,
    filter: Option<Filter>,
) -> ApiResult<SearchRequest> {
    let limits = state.options.limits;
    if k == 0 {
        return Err(ApiError::bad_request(
            "\"k\" is 0: ask for at least one hit",
        ));
    }
    if k > limits.max_k {
        return Err(ApiError::limit(
            StatusCode::BAD_REQUEST,
            "max_k",
            limits.max_k as u64,
            format!(
                "\"k\" is {k}, more than the limit of {} (max_k): ask for fewer hits, or restart the server with a larger --max-k",
                limits.max_k
            ),
        ));
    }
    if let Some(o) = oversample {
        if !(o.is_finite() && o >= 1.0) {
            return Err(ApiError::bad_request(format!(
                "\"oversample\" is {o}: it must be a number of at least 1 (how many times k candidates to rescore)"
            )));
        }
        if o > limits.max_oversample {
            return Err(ApiError::limit(
                StatusCode::BAD_REQUEST,
                "max_oversample",
                limits.max_oversample as u64,
                format!(
                    "\"oversample\" is {o}, more than the limit of {} (max_oversample)",
                    limits.max_oversample
                ),
            ));
        }
    }
    if effort == Some(0) {
        return Err(ApiError::bad_request(
            "\"effort\" is 0: give at least 1 (IVF lists probed, or the graph's beam width), or leave it out for the index's default",
        ));
    }
    candidates(state, 1, k, oversample)?;
    Ok(SearchRequest {
        k,
        oversample,
        filter,
        effort,
    })
}

/// 400 when `queries` × `k` × `oversample` exceeds `max_candidates`: each query ranks and rescores
/// `k × oversample` candidates and returns `k` hits, so this is the work and the answer's size.
fn candidates(
    state: &AppState,
    queries: usize,
    k: usize,
    oversample: Option<f32>,
) -> ApiResult<()> {
    let limit = state.options.limits.max_candidates;
    let o = oversample
        .unwrap_or(bitseek_store::db::DEFAULT_OVERSAMPLE)
        .max(1.0);
    let asked = queries as f64 * k as f64 * o.ceil() as f64;
    if asked <= limit as f64 {
        return Ok(());
    }
    Err(ApiError::limit(
        StatusCode::BAD_REQUEST,
        "max_candidates",
        limit as u64,
        format!(
            "{queries} × k {k} × oversample {o} = {asked} candidates, more than the limit of {limit} (max_candidates): ask for fewer hits, a smaller oversample or fewer queries per batch, or restart the server with a larger --max-candidates"
        ),
    ))
}

async fn search(
    State(state): St,
    Path(name): Path<String>,
    body: SearchBody<Search>,
) -> ApiResult<Json<Hits>> {
    let req = match body {
        SearchBody::Json(req) => req,
        SearchBody::Raw { values, params } => {
            let sreq = search_request(&state, params.k, params.oversample, params.effort, None)?;
            let c = collection(&state, &name)?;
            let view = c.snapshot_view();
            let small = view.points().saturating_mul(view.config().dim) <= INLINE_SEARCH_VALUES;
            let run = move || {
                let shape = shape(&c);
                check_vector(&values, shape, || "the raw query".to_string())?;
                let hits = c.search(&values, &sreq)?;
                Metrics::add(&state.metrics.queries, 1);
                Ok(Json(Hits { hits }))
            };
            // One inline search at a time, so that many concurrent ones never hold up the
            // workers that read and answer every other connection.
            if small
                && INLINE_SEARCHES
                    .compare_exchange(0, 1, SeqCst, SeqCst)
                    .is_ok()
            {
                let out = run();
                INLINE_SEARCHES.store(0, SeqCst);
                return out;
            }
            return blocking(run).await;
        }
    };
    let sreq = search_request(&state, req.k, req.oversample, req.effort, req.filter)?;
    blocking(move || {
        let c = collection(&state, &name)?;
        let shape = shape(&c);
        let dim = shape.0;
        let vector = match (req.vector, req.text) {
            (Some(v), None) => {
                check_vector(&v, shape, || "\"vector\"".to_string())?;
                v
            }
            (None, Some(t)) => {
                let mut v = state.model.embed(&name, dim, &[t.as_str()])?;
                Metrics::add(&state.metrics.text_queries, 1);
                v.pop().unwrap_or_default()
            }
            _ => {
                return Err(ApiError::bad_request(
                    "send exactly one of \"vector\" (an array of numbers) or \"text\" (a question, embedded with the model)",
                ))
            }
        };
        let hits = c.search(&vector, &sreq)?;
        Metrics::add(&state.metrics.queries, 1);
        Ok(Json(Hits { hits }))
    })
    .await
}

async fn search_batch(
    State(state): St,
    Path(name): Path<String>,
    body: SearchBody<SearchBatch>,
) -> ApiResult<Json<BatchHits>> {
    let limits = state.options.limits;
    let req = match body {
        SearchBody::Json(req) => req,
        SearchBody::Raw { values, params } => {
            let sreq = search_request(&state, params.k, params.oversample, params.effort, None)?;
            return blocking(move || {
                let c = collection(&state, &name)?;
                let shape = shape(&c);
                let n = binary::queries(&values, shape.0)?;
                too_many(
                    n,
                    "queries in one batch",
                    "max_batch_queries",
                    limits.max_batch_queries,
                    "split the batch",
                )?;
                candidates(&state, n, params.k, params.oversample)?;
                for (i, v) in values.chunks_exact(shape.0).enumerate() {
                    check_vector(v, shape, || format!("query {i}"))?;
                }
                let results = c.search_batch(&values, &sreq)?;
                Metrics::add(&state.metrics.queries, results.len());
                Ok(Json(BatchHits {
                    results: results.into_iter().map(|hits| Hits { hits }).collect(),
                }))
            })
            .await;
        }
    };
    let sreq = search_request(&state, req.k, req.oversample, req.effort, req.filter)?;
    let n = match (&req.vectors, &req.texts) {
        (Some(v), None) => v.len(),
        (None, Some(t)) => t.len(),
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of \"vectors\" (arrays of numbers) or \"texts\" (questions, embedded with the model)",
            ))
        }
    };
    if n == 0 {
        return Err(ApiError::bad_request(
            "the batch is empty: send at least one query",
        ));
    }
    too_many(
        n,
        "queries in one batch",
        "max_batch_queries",
        limits.max_batch_queries,
        "split the batch",
    )?;
    candidates(&state, n, req.k, req.oversample)?;
    blocking(move || {
        let c = collection(&state, &name)?;
        let shape = shape(&c);
        let dim = shape.0;
        let rows = match (req.vectors, req.texts) {
            (Some(vs), _) => {
                for (i, v) in vs.iter().enumerate() {
                    check_vector(v, shape, || format!("query {i}"))?;
                }
                vs
            }
            (_, Some(ts)) => {
                let refs: Vec<&str> = ts.iter().map(String::as_str).collect();
                let vs = state.model.embed(&name, dim, &refs)?;
                Metrics::add(&state.metrics.text_queries, vs.len());
                vs
            }
            _ => unreachable!("checked above"),
        };
        let flat: Vec<f32> = rows.concat();
        let results = c.search_batch(&flat, &sreq)?;
        Metrics::add(&state.metrics.queries, results.len());
        Ok(Json(BatchHits {
            results: results.into_iter().map(|hits| Hits { hits }).collect(),
        }))
    })
    .await
}

async fn compact(State(state): St, Path(name): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let c = collection(&state, &name)?;
        let report = c.compact()?;
        let info = c.info();
        Ok(Json(serde_json::json!({
            "report": report,
            "collection": info,
        })))
    })
    .await
}

async fn snapshot(
    State(state): St,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let c = collection(&state, &name)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let dest = state.options.snapshot_dir.join(format!("{name}-{stamp}"));
        c.snapshot(&dest)?;
        Ok(Json(serde_json::json!({
            "collection": name,
            "path": dest.display().to_string(),
        })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuantizer {
    quantizer: String,
}

/// `PUT /collections/{name}/quantizer`: re-encodes every point from the kept `f32` copy (refused,
/// with the reason, when the collection keeps none).
async fn set_quantizer(
    State(state): St,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<SetQuantizer>,
) -> ApiResult<Json<bitseek_store::CollectionInfo>> {
    blocking(move || {
        let c = collection(&state, &name)?;
        c.set_quantizer(&req.quantizer)?;
        Ok(Json(c.info()))
    })
    .await
}
