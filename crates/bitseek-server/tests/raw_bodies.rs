//! Search bodies as raw little-endian f32 (`application/octet-stream`): the same hits as the JSON
//! body, and clear refusals for a body of the wrong size, a bad query string, or values the
//! collection cannot take.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bitseek_server::{AppState, Options};
use common::*;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

fn raw(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

async fn post_raw(state: &Arc<AppState>, path: &str, body: Vec<u8>) -> Reply {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
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

#[tokio::test]
async fn raw_f32_bodies_answer_what_json_answers() {
    let (_dir, s) = state(Options::default());
    with_points(&s, 40).await;
    let queries = [[1.0f32, 0.2, 0.0, 0.1], [0.0, 0.3, 1.0, -0.2]];
    for q in &queries {
        let json = call(
            &s,
            "POST",
            "/collections/c/search",
            Some(&serde_json::json!({"vector": q, "k": 7, "oversample": 2}).to_string()),
            None,
        )
        .await;
        assert_eq!(json.status, StatusCode::OK, "{}", json.text);
        let r = post_raw(&s, "/collections/c/search?k=7&oversample=2", raw(q)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json, json.json);
        assert_eq!(r.json["hits"].as_array().unwrap().len(), 7);
    }
    let json = call(
        &s,
        "POST",
        "/collections/c/search/batch",
        Some(&serde_json::json!({"vectors": queries, "k": 3}).to_string()),
        None,
    )
    .await;
    let flat: Vec<f32> = queries.concat();
    let r = post_raw(&s, "/collections/c/search/batch?k=3", raw(&flat)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json.json);
    assert_eq!(r.json["results"].as_array().unwrap().len(), 2);
    // k defaults to 10, as in JSON.
    let r = post_raw(&s, "/collections/c/search", raw(&queries[0])).await;
    assert_eq!(r.json["hits"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn bad_raw_bodies_are_refused_with_the_reason() {
    let (_dir, s) = state(Options::default());
    with_points(&s, 10).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "/collections/c/search",
            raw(&[1.0, 2.0, 3.0]),
            "has 3 values",
        ),
        (
            "/collections/c/search",
            vec![0u8; 7],
            "whole number of little-endian f32",
        ),
        (
            "/collections/c/search",
            raw(&[1.0, f32::NAN, 0.0, 0.0]),
            "non-finite",
        ),
        ("/collections/c/search", raw(&[0.0; 4]), "zero vector"),
        (
            "/collections/c/search?k=3&filter=x",
            raw(&[1.0; 4]),
            "query string",
        ),
        ("/collections/c/search?k=0", raw(&[1.0; 4]), "\"k\" is 0"),
        (
            "/collections/c/search/batch",
            raw(&[1.0; 6]),
            "multiple of the collection's dimension 4",
        ),
        (
            "/collections/c/search/batch",
            Vec::new(),
            "multiple of the collection's dimension 4",
        ),
    ];
    for (path, body, says) in cases {
        let r = post_raw(&s, path, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert!(r.message().contains(says), "{path}: {}", r.message());
    }
    let r = post_raw(&s, "/collections/nope/search", raw(&[1.0; 4])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
