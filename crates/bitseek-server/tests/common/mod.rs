//! Shared by the API and browser tests: a server over a fresh database, and one request at a time.

#![allow(dead_code)]

pub mod code;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bitseek_server::{AppState, Options};
use bitseek_store::Db;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

/// A server state over a fresh database in a temporary directory (kept alive by the returned guard).
pub fn state(options: Options) -> (tempfile::TempDir, Arc<AppState>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("data")).unwrap();
    let options = Options {
        snapshot_dir: dir.path().join("snapshots"),
        ..options
    };
    (dir, AppState::new(Arc::new(db), options))
}

/// A response: status, raw body and (when it parses) its JSON.
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub json: serde_json::Value,
}

impl Reply {
    /// The error message of a JSON error body.
    pub fn message(&self) -> &str {
        self.json["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {} {}", self.status, self.text))
    }
}

/// Sends one request to the router (no network), with an optional body and API key.
pub async fn call(
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Body::from(body.unwrap_or("").to_string()))
        .unwrap();
    let resp = bitseek_server::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Reply { status, text, json }
}

/// `n` points of dimension `dim`: point i is the unit vector on axis i % dim, scaled, with a payload
/// naming it.
pub fn points_json(ids: std::ops::Range<u64>, dim: usize) -> String {
    let points: Vec<serde_json::Value> = ids
        .map(|id| {
            let mut v = vec![0.01f32; dim];
            v[id as usize % dim] = 1.0 + id as f32 / 100.0;
            serde_json::json!({
                "id": id,
                "vector": v,
                "payload": {"name": format!("point-{id}"), "lang": if id % 2 == 0 { "rust" } else { "go" }}
            })
        })
        .collect();
    serde_json::json!({ "points": points }).to_string()
}

/// Creates collection `c` (4-d, cosine) and upserts points `0..n` into it.
pub async fn with_points(state: &Arc<AppState>, n: u64) {
    let r = call(
        state,
        "PUT",
        "/collections/c",
        Some(r#"{"dim": 4, "metric": "cosine"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(
        state,
        "PUT",
        "/collections/c/points",
        Some(&points_json(0..n, 4)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["upserted"], n);
}
