//! The REST API end to end through the router: every operation, and every kind of bad request
//! answered with the right status and a message naming the problem and the fix, after which the
//! server still answers.

mod common;

use axum::http::StatusCode;
use bitseek_server::{Limits, Options};
use common::{call, points_json, state, with_points, Reply};
use std::sync::Arc;

const DIM: usize = 4;

/// After bad requests the server must keep answering.
async fn still_serving(state: &Arc<bitseek_server::AppState>) {
    let r = call(state, "GET", "/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "ok");
}

fn ids(r: &Reply) -> Vec<u64> {
    r.json["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {}", r.text))
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn collection_lifecycle() {
    let (_d, s) = state(Options::default());
    let r = call(
        &s,
        "PUT",
        "/collections/docs",
        Some(r#"{"dim": 4, "metric": "dot", "quantizer": "sign", "keep": "int8"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["name"], "docs");
    assert_eq!(r.json["config"]["dim"], 4);
    assert_eq!(r.json["config"]["metric"], "dot");
    assert_eq!(r.json["config"]["quantizer"], "sign");
    assert_eq!(r.json["config"]["keep"], "int8");

    let r = call(&s, "PUT", "/collections/docs", Some(r#"{"dim": 4}"#), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message().contains("already exists"), "{}", r.text);

    let r = call(&s, "GET", "/collections", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<&str> = r.json["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs"]);

    let r = call(&s, "GET", "/collections/docs", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["points"], 0);

    let r = call(&s, "DELETE", "/collections/docs", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&s, "GET", "/collections/docs", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.message().contains("PUT /collections/docs"), "{}", r.text);
    let r = call(&s, "DELETE", "/collections/docs", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_collection_definitions_are_refused() {
    let (_d, s) = state(Options::default());
    for (path, body, needle) in [
        ("/collections/c", r#"{"dim": 0}"#, "\"dim\" is 0"),
        ("/collections/c", r#"{"dims": 4}"#, "unknown field `dims`"),
        (
            "/collections/c",
            r#"{"metric": "cosine"}"#,
            "missing field `dim`",
        ),
        (
            "/collections/c",
            r#"{"dim": 4, "metric": "hamming"}"#,
            "hamming",
        ),
        ("/collections/c", r#"{"dim": 4"#, "not valid JSON"),
        ("/collections/c", "", "body is empty"),
        ("/collections/a.b", r#"{"dim": 4}"#, "a.b"),
    ] {
        let r = call(&s, "PUT", path, Some(body), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(
            r.message().contains(needle),
            "{body}: expected {needle:?} in {}",
            r.text
        );
    }
    // A name that would escape the data directory.
    let r = call(&s, "PUT", "/collections/..", Some(r#"{"dim": 4}"#), None).await;
    assert!(r.status.is_client_error(), "{}", r.text);
    let r = call(&s, "GET", "/collections", None, None).await;
    assert_eq!(r.json["collections"].as_array().unwrap().len(), 0);
    still_serving(&s).await;
}

#[tokio::test]
async fn upsert_get_search_delete() {
    let (_d, s) = state(Options::default());
    with_points(&s, 8).await;

    let r = call(&s, "GET", "/collections/c/points/5", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["id"], 5);
    assert_eq!(r.json["payload"]["name"], "point-5");
    assert_eq!(r.json["vector"].as_array().unwrap().len(), DIM);

    // Axis 1 holds points 1 and 5; 5 has the larger norm but cosine ignores norms, so both are at
    // the top, ahead of every other point.
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [0, 1, 0, 0], "k": 2}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut top = ids(&r);
    top.sort();
    assert_eq!(top, [1, 5]);
    assert!(r.json["hits"][0]["payload"]["name"]
        .as_str()
        .unwrap()
        .starts_with("point-"));

    // Filter inside the scan: only "go" points (odd ids) on axis 2 → 2 and 6 are rust, so the best
    // go hits are from other axes.
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [0, 0, 1, 0], "k": 3, "filter": {"field": "lang", "eq": "go"}}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = ids(&r);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|id| id % 2 == 1), "{got:?}");

    // Replace point 1 so it moves to axis 3.
    let r = call(
        &s,
        "PUT",
        "/collections/c/points",
        Some(r#"{"points": [{"id": 1, "vector": [0, 0, 0, 1], "payload": {"name": "moved"}}]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&s, "GET", "/collections/c/points/1", None, None).await;
    assert_eq!(r.json["payload"]["name"], "moved");

    let r = call(
        &s,
        "POST",
        "/collections/c/points/delete",
        Some(r#"{"ids": [5, 1000]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["deleted"], 1);
    assert_eq!(r.json["requested"], 2);
    let r = call(&s, "GET", "/collections/c/points/5", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.message().contains("no point with id 5"), "{}", r.text);
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [0, 1, 0, 0], "k": 8}"#),
        None,
    )
    .await;
    let got = ids(&r);
    assert_eq!(got.len(), 7, "8 points, one deleted: {got:?}");
    assert!(!got.contains(&5));

    let r = call(&s, "GET", "/collections/c", None, None).await;
    assert_eq!(r.json["points"], 7);
}

#[tokio::test]
async fn batch_search_equals_single_searches() {
    let (_d, s) = state(Options::default());
    with_points(&s, 20).await;
    let queries = [
        [1.0, 0.2, 0.0, 0.0],
        [0.0, 0.0, 0.3, 1.0],
        [0.5, 0.5, 0.5, 0.5],
    ];
    let body = serde_json::json!({"vectors": queries, "k": 5}).to_string();
    let r = call(&s, "POST", "/collections/c/search/batch", Some(&body), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.json["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (q, batch) in queries.iter().zip(results) {
        let body = serde_json::json!({"vector": q, "k": 5}).to_string();
        let single = call(&s, "POST", "/collections/c/search", Some(&body), None).await;
        assert_eq!(batch["hits"], single.json["hits"], "query {q:?}");
    }
}

#[tokio::test]
async fn bad_vectors_are_refused_with_the_reason() {
    let (_d, s) = state(Options::default());
    with_points(&s, 4).await;
    for (method, path, body, needle) in [
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": 9, "vector": [1, 2, 3]}]}"#,
            "has 3 values, but the collection's vectors have 4",
        ),
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": 9, "vector": [1, NaN, 3, 4]}]}"#,
            "NaN",
        ),
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": 9, "vector": [1, 1e39, 3, 4]}]}"#,
            "non-finite value at position 1",
        ),
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": -1, "vector": [1, 2, 3, 4]}]}"#,
            "not valid JSON",
        ),
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": []}"#,
            "\"points\" is empty",
        ),
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": 1, "vector": "1,2,3,4"}]}"#,
            "invalid type",
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2], "k": 3}"#,
            "has 2 values",
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"k": 3}"#,
            "exactly one of \"vector\"",
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 0, 0, 0], "k": 0}"#,
            "\"k\" is 0",
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 0, 0, 0], "oversample": 0.5}"#,
            "\"oversample\" is 0.5",
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 0, 0, 0], "top": 3}"#,
            "unknown field `top`",
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 0, 0, 0], "effort": 0}"#,
            "\"effort\" is 0",
        ),
        (
            "POST",
            "/collections/c/search/batch",
            r#"{"vectors": [[1, 0, 0, 0]], "effort": -2}"#,
            "field `effort`: invalid value: integer `-2`, expected usize",
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 4, "index": {"kind": "graph", "degree": "wide"}}"#,
            "field `index.degree`: invalid type: string \"wide\"",
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 4, "keep": "none", "index": {"kind": "ivf"}}"#,
            "keep \"f32\"",
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 4, "index": {"kind": "hnsw"}}"#,
            "unknown variant `hnsw`",
        ),
        (
            "POST",
            "/collections/c/search/batch",
            r#"{"vectors": [[1, 0, 0, 0], [1, 0]]}"#,
            "query 1 has 2 values",
        ),
        (
            "POST",
            "/collections/c/search/batch",
            r#"{"vectors": []}"#,
            "the batch is empty",
        ),
        (
            "POST",
            "/collections/c/search",
            "{not json",
            "not valid JSON",
        ),
        (
            "POST",
            "/collections/c/points/delete",
            r#"{"ids": ["a"]}"#,
            "invalid type",
        ),
        (
            "GET",
            "/collections/c/points/abc",
            "",
            "\"abc\" is not a whole number",
        ),
    ] {
        let r = call(&s, method, path, (!body.is_empty()).then_some(body), None).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {}",
            r.text
        );
        assert!(
            r.message().contains(needle),
            "{method} {path} {body}: expected {needle:?} in {}",
            r.text
        );
    }
    // Nothing of the refused writes got in.
    let r = call(&s, "GET", "/collections/c", None, None).await;
    assert_eq!(r.json["points"], 4);
    let r = call(&s, "GET", "/collections/c/points/9", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    still_serving(&s).await;
}

#[tokio::test]
async fn unknown_collection_route_and_method() {
    let (_d, s) = state(Options::default());
    for (method, path, body) in [
        ("POST", "/collections/nope/search", r#"{"vector": [1]}"#),
        ("PUT", "/collections/nope/points", &*points_json(0..1, 4)),
        ("GET", "/collections/nope/points/1", ""),
        ("POST", "/collections/nope/compact", ""),
    ] {
        let r = call(&s, method, path, (!body.is_empty()).then_some(body), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert!(
            r.message().contains("no collection named \"nope\""),
            "{}",
            r.text
        );
    }
    let r = call(&s, "GET", "/no/such/route", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"]["code"], "no_route");
    assert!(r.message().contains("/openapi.json"));
    let r = call(&s, "PATCH", "/collections/c", Some("{}"), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "method_not_allowed");
    still_serving(&s).await;
}

#[tokio::test]
async fn limits_say_which_limit_and_its_value() {
    let limits = Limits {
        max_body_bytes: 4096,
        max_points_per_request: 3,
        max_batch_queries: 2,
        max_k: 5,
        max_oversample: 10.0,
        max_candidates: 40,
        ..Limits::default()
    };
    let (_d, s) = state(Options {
        limits,
        ..Options::default()
    });
    with_points(&s, 3).await;
    let limit = |r: &Reply| {
        (
            r.json["error"]["limit"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            r.json["error"]["limit"]["value"].as_u64().unwrap(),
        )
    };

    let big = points_json(0..60, DIM);
    assert!(big.len() > 4096);
    let r = call(&s, "PUT", "/collections/c/points", Some(&big), None).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(limit(&r), ("max_body_bytes".into(), 4096));
    assert!(r.message().contains("4096 bytes"), "{}", r.text);

    let r = call(
        &s,
        "PUT",
        "/collections/c/points",
        Some(&points_json(0..4, DIM)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(limit(&r), ("max_points_per_request".into(), 3));

    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [1, 0, 0, 0], "k": 6}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(limit(&r), ("max_k".into(), 5));
    assert!(r.message().contains("\"k\" is 6"), "{}", r.text);

    let r = call(
        &s,
        "POST",
        "/collections/c/search/batch",
        Some(r#"{"vectors": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], "k": 2}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(limit(&r), ("max_batch_queries".into(), 2));

    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [1, 0, 0, 0], "k": 2, "oversample": 11}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(limit(&r), ("max_oversample".into(), 10));

    // k and oversample each within their limits, their product over max_candidates.
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [1, 0, 0, 0], "k": 5, "oversample": 10}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(limit(&r), ("max_candidates".into(), 40));
    assert!(r.message().contains("= 50 candidates"), "{}", r.text);

    // A batch shares one budget: 2 × 5 × 4 (the default oversample) fits, 2 × 5 × 5 does not.
    let two = r#"[[1, 0, 0, 0], [0, 1, 0, 0]]"#;
    let r = call(
        &s,
        "POST",
        "/collections/c/search/batch",
        Some(&format!(r#"{{"vectors": {two}, "k": 5}}"#)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &s,
        "POST",
        "/collections/c/search/batch",
        Some(&format!(r#"{{"vectors": {two}, "k": 5, "oversample": 5}}"#)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(limit(&r), ("max_candidates".into(), 40));

    // Within the limits everything works.
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [1, 0, 0, 0], "k": 5}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids(&r).len(), 3);
    still_serving(&s).await;
}

#[tokio::test]
async fn api_key_guards_writes_and_optionally_reads() {
    let (_d, s) = state(Options {
        api_key: Some("s3cret".into()),
        ..Options::default()
    });
    let create = r#"{"dim": 4}"#;
    let r = call(&s, "PUT", "/collections/c", Some(create), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.message().contains("Authorization: Bearer"), "{}", r.text);
    let r = call(&s, "PUT", "/collections/c", Some(create), Some("wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("wrong"), "{}", r.text);
    let r = call(&s, "PUT", "/collections/c", Some(create), Some("s3cret")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let pts = points_json(0..4, DIM);
    let r = call(&s, "PUT", "/collections/c/points", Some(&pts), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (method, path) in [
        ("POST", "/collections/c/points/delete"),
        ("POST", "/collections/c/compact"),
        ("POST", "/collections/c/snapshot"),
        ("DELETE", "/collections/c"),
    ] {
        let r = call(&s, method, path, Some(r#"{"ids": [1]}"#), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // The key is checked before the body is read: an oversized body without a key is a 401.
    let r = call(
        &s,
        "PUT",
        "/collections/c/points",
        Some(&"x".repeat(65 << 20)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Reads are open.
    let r = call(&s, "GET", "/collections/c", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [1, 0, 0, 0]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // X-Api-Key works too.
    let req = axum::http::Request::builder()
        .method("PUT")
        .uri("/collections/c/points")
        .header("x-api-key", "s3cret")
        .body(axum::body::Body::from(pts))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(bitseek_server::router(s.clone()), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (_d2, s2) = state(Options {
        api_key: Some("s3cret".into()),
        protect_reads: true,
        ..Options::default()
    });
    let r = call(&s2, "GET", "/collections", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&s2, "GET", "/collections", None, Some("s3cret")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn compact_and_snapshot() {
    let (d, s) = state(Options::default());
    with_points(&s, 10).await;
    call(
        &s,
        "POST",
        "/collections/c/points/delete",
        Some(r#"{"ids": [0, 1]}"#),
        None,
    )
    .await;
    let before = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [0.3, 0.1, 0.9, 0.2], "k": 8}"#),
        None,
    )
    .await;
    let r = call(&s, "POST", "/collections/c/compact", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["collection"]["points"], 8);
    let after = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [0.3, 0.1, 0.9, 0.2], "k": 8}"#),
        None,
    )
    .await;
    assert_eq!(ids(&before), ids(&after));

    let r = call(&s, "POST", "/collections/c/snapshot", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let path = std::path::PathBuf::from(r.json["path"].as_str().unwrap());
    assert!(path.starts_with(d.path().join("snapshots")), "{path:?}");
    let copy = bitseek_store::LiveCollection::open(&path).expect("the snapshot opens");
    assert_eq!(copy.info().points, 8);
}

#[tokio::test]
async fn quantizer_change_re_encodes_or_is_refused_with_the_reason() {
    let (_d, s) = state(Options::default());
    with_points(&s, 12).await;
    let query = Some(r#"{"vector": [0.2, 0.9, 0.1, 0.3], "k": 12, "oversample": 4}"#);
    let before = call(&s, "POST", "/collections/c/search", query, None).await;
    let r = call(
        &s,
        "PUT",
        "/collections/c/quantizer",
        Some(r#"{"quantizer": "sign"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["config"]["quantizer"], "sign");
    assert_eq!(r.json["points"], 12);
    // With every point rescored from the f32 copy, the ranking does not depend on the codes.
    let after = call(&s, "POST", "/collections/c/search", query, None).await;
    assert_eq!(ids(&before), ids(&after));
    // The same with an effort: a flat collection has no lists to probe, so the answer is the same.
    let with_effort =
        Some(r#"{"vector": [0.2, 0.9, 0.1, 0.3], "k": 12, "oversample": 4, "effort": 3}"#);
    let r = call(&s, "POST", "/collections/c/search", with_effort, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids(&after), ids(&r));

    let r = call(
        &s,
        "PUT",
        "/collections/c/quantizer",
        Some(r#"{"quantizer": "bogus"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("bogus"), "{}", r.text);

    let r = call(
        &s,
        "PUT",
        "/collections/n",
        Some(r#"{"dim": 4, "keep": "none"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(
        &s,
        "PUT",
        "/collections/n/quantizer",
        Some(r#"{"quantizer": "sign"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("cannot be re-encoded"), "{}", r.text);
    still_serving(&s).await;
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_points() {
    let (_d, s) = state(Options::default());
    with_points(&s, 6).await;
    for _ in 0..3 {
        call(
            &s,
            "POST",
            "/collections/c/search",
            Some(r#"{"vector": [1, 0, 0, 0]}"#),
            None,
        )
        .await;
    }
    call(&s, "POST", "/collections/c/search", Some("{"), None).await;
    let r = call(&s, "GET", "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let t = &r.text;
    for line in [
        "bitseek_http_requests_total{method=\"POST\",route=\"/collections/{name}/search\",status=\"200\"} 3",
        "bitseek_http_requests_total{method=\"POST\",route=\"/collections/{name}/search\",status=\"400\"} 1",
        "bitseek_http_requests_total{method=\"PUT\",route=\"/collections/{name}/points\",status=\"200\"} 1",
        "bitseek_http_request_duration_seconds_count{method=\"POST\",route=\"/collections/{name}/search\"} 4",
        "bitseek_collection_points{collection=\"c\"} 6",
        "bitseek_points_upserted_total 6",
        "bitseek_search_queries_total 3",
        "bitseek_collections 1",
    ] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
}

#[tokio::test]
async fn text_search_without_a_model_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, s) = state(Options {
        model_dir: Some(dir.path().join("no-model-here")),
        ..Options::default()
    });
    with_points(&s, 3).await;
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"text": "where is the index written?"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.message()
            .contains("text search needs the embedding model"),
        "{}",
        r.text
    );
    assert!(r.message().contains("bitseek model fetch"), "{}", r.text);
    still_serving(&s).await;
}

#[tokio::test]
async fn text_search_embeds_the_question_with_the_model() {
    use bitseek_embed::{BertEmbedder, Embedder, ModelDir};
    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 7).unwrap();
    let dim = bitseek_codesearch::testing::HIDDEN;
    let (_d, s) = state(Options {
        model_dir: Some(model.path().to_path_buf()),
        ..Options::default()
    });
    // Words of the tiny model's vocabulary (others are all "unknown" to it).
    let texts = ["hello world", "read file", "fn a b c", "d e f g h"];
    let embedder = BertEmbedder::load(&ModelDir::open(model.path()).unwrap()).unwrap();
    let vectors = embedder.embed(&texts).unwrap();
    let points: Vec<_> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({"id": i, "vector": v, "payload": {"text": texts[i]}}))
        .collect();
    let body = format!(r#"{{"dim": {dim}}}"#);
    assert_eq!(
        call(&s, "PUT", "/collections/code", Some(&body), None)
            .await
            .status,
        StatusCode::CREATED
    );
    let body = serde_json::json!({ "points": points }).to_string();
    assert_eq!(
        call(&s, "PUT", "/collections/code/points", Some(&body), None)
            .await
            .status,
        StatusCode::OK
    );
    // The tiny model's vocabulary is small, so different texts may embed alike: the right answers
    // for a text are the points whose stored vector is (nearly) its own.
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    };
    let right = |i: usize| -> Vec<u64> {
        (0..texts.len())
            .filter(|&j| cos(&vectors[i], &vectors[j]) > 0.9999)
            .map(|j| j as u64)
            .collect()
    };
    assert!(
        right(0).len() < texts.len(),
        "the texts must not all embed alike"
    );
    for (i, t) in texts.iter().enumerate() {
        let body = serde_json::json!({"text": t, "k": 1, "oversample": 4}).to_string();
        let r = call(&s, "POST", "/collections/code/search", Some(&body), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(right(i).contains(&ids(&r)[0]), "{t}: {}", r.text);
        assert!(r.json["hits"][0]["score"].as_f64().unwrap() > 0.999);
    }
    let body = serde_json::json!({"texts": texts, "k": 1, "oversample": 4}).to_string();
    let r = call(
        &s,
        "POST",
        "/collections/code/search/batch",
        Some(&body),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.json["results"].as_array().unwrap();
    assert_eq!(results.len(), texts.len());
    for (i, h) in results.iter().enumerate() {
        assert!(
            right(i).contains(&h["hits"][0]["id"].as_u64().unwrap()),
            "{}",
            r.text
        );
    }

    // A collection of another dimension was not built with this model.
    with_points(&s, 2).await;
    let r = call(
        &s,
        "POST",
        "/collections/c/search",
        Some(r#"{"text": "read a file"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("4-dimensional"), "{}", r.text);
    let r = call(&s, "GET", "/health", None, None).await;
    assert_eq!(r.json["text_model_loaded"], true);
}

#[tokio::test]
async fn search_page_is_served() {
    let (_d, s) = state(Options::default());
    let r = call(&s, "GET", "/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.starts_with("<!doctype html>"));
    assert!(r.text.contains("id=\"collection\""));
    assert!(
        !r.text.contains("http://") && !r.text.contains("https://"),
        "the page must not load anything from elsewhere"
    );
}

/// Every `.route("...")` in the source (`routes.rs` and the code search's `code.rs`), with its
/// methods.
fn routes_in_source() -> Vec<(String, Vec<String>)> {
    let src = concat!(
        include_str!("../src/routes.rs"),
        include_str!("../src/code.rs")
    );
    let mut out = Vec::new();
    for chunk in src.split(".route(").skip(1) {
        let chunk = chunk
            .trim_start()
            .strip_prefix('"')
            .expect("a route path literal");
        let path = chunk[..chunk.find('"').unwrap()].to_string();
        // The method router: up to the closing parenthesis of `.route(`.
        let mut depth = 1;
        let mut end = 0;
        for (i, ch) in chunk.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &chunk[..end];
        let methods = ["get", "put", "post", "delete"]
            .into_iter()
            .filter(|m| {
                body.contains(&format!(" {m}("))
                    || body.contains(&format!(".{m}("))
                    || body.contains(&format!("\n{m}("))
                    || body.contains(&format!("({m}("))
            })
            .map(String::from)
            .collect();
        out.push((path, methods));
    }
    out
}

#[tokio::test]
async fn openapi_document_is_the_file_and_covers_every_route() {
    let (_d, s) = state(Options::default());
    let r = call(&s, "GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    assert_eq!(
        r.text, file,
        "the served document must be crates/bitseek-server/openapi.json"
    );
    let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();

    let routes = routes_in_source();
    assert!(routes.len() >= 13, "{routes:?}");
    for (path, methods) in &routes {
        assert!(!methods.is_empty(), "no methods found for {path}");
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is served but not in openapi.json"));
        for m in methods {
            assert!(
                item.get(m).is_some(),
                "{} {path} is served but not in openapi.json",
                m.to_uppercase()
            );
        }
    }
    // …and every documented operation is served (answers with something other than "no such
    // route" or "wrong method").
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    let served: usize = routes.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        documented, served,
        "openapi.json documents operations the server does not have"
    );
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{name}", "nope").replace("{id}", "1");
            let r = call(&s, &method.to_uppercase(), &concrete, Some("{}"), None).await;
            let code = r.json["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "no_route" && code != "method_not_allowed",
                "{method} {path} is documented but not served: {}",
                r.text
            );
        }
    }
}

/// A real listener: bytes that are not HTTP, a connection dropped mid-body, then normal service;
/// and graceful shutdown flushes what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_listener_survives_garbage_and_shuts_down_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (dir, s) = state(Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bitseek_server::serve_on(listener, s.clone(), async move {
        let _ = stop_rx.await;
    }));

    async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
    let garbage = raw(addr, b"\x00\x01\x02 not http at all\r\n\r\n").await;
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    {
        // Promises 1000 bytes, sends 10, hangs up.
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"PUT /collections/x/points HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"points\"")
            .await
            .unwrap();
    }
    let create = r#"{"dim": 4}"#;
    let req = format!(
        "PUT /collections/c HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{create}",
        create.len()
    );
    let resp = raw(addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let pts = points_json(0..50, DIM);
    let req = format!(
        "PUT /collections/c/points HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{pts}",
        pts.len()
    );
    let resp = raw(addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = raw(
        addr,
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.contains("\"ok\""),
        "{resp}"
    );

    stop_tx.send(()).unwrap();
    server.await.unwrap().expect("clean shutdown");
    drop(s);
    let db = bitseek_store::Db::open(&dir.path().join("data")).unwrap();
    let c = db.get("c").unwrap();
    assert_eq!(c.info().points, 50);
    assert_eq!(c.get(7).unwrap().payload["name"], "point-7");
}

/// Shutdown while a write is in flight: the request (headers and half its body sent when the
/// signal comes) is still read to the end, applied, acknowledged, and durable after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_an_in_flight_write() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (dir, s) = state(Options::default());
    let r = call(&s, "PUT", "/collections/c", Some(r#"{"dim": 4}"#), None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bitseek_server::serve_on(listener, s.clone(), async move {
        let _ = stop_rx.await;
    }));

    let body = points_json(0..500, DIM);
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /collections/c/points HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(first).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop_tx.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "the server must wait for the request in flight"
    );
    c.write_all(rest).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut resp))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"upserted\":500"), "{resp}");
    server.await.unwrap().expect("clean shutdown");

    // New connections are refused after shutdown.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    drop(s);
    let db = bitseek_store::Db::open(&dir.path().join("data")).unwrap();
    assert_eq!(db.get("c").unwrap().info().points, 500);
}

/// A write held up in the store does not hold up searches: with a single async worker and the
/// collection's writer held by the test, an upsert waits inside the store while five searches are
/// answered. (Were store calls made on the async worker instead of the blocking pool, the waiting
/// upsert would stall the worker, and no search would be answered until the hold is let go.)
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn searches_do_not_wait_for_a_long_write() {
    use std::sync::mpsc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(bitseek_store::Db::open(&dir.path().join("data")).unwrap());
    let options = Options {
        snapshot_dir: dir.path().join("snapshots"),
        ..Options::default()
    };
    let s = bitseek_server::AppState::new(db.clone(), options);
    let r = call(&s, "PUT", "/collections/c", Some(r#"{"dim": 64}"#), None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        &s,
        "PUT",
        "/collections/c/points",
        Some(&points_json(0..10, 64)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let coll = db.get("c").unwrap();

    // Hold the writer on a thread of its own until told to let go (or for a minute, should the
    // searches never be answered, so that the test fails instead of hanging).
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let coll = coll.clone();
        move || {
            let pause = coll.pause_writes().unwrap();
            held_tx.send(()).unwrap();
            let released = release_rx.recv_timeout(Duration::from_secs(60)).is_ok();
            drop(pause);
            released
        }
    });
    held_rx.recv().unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bitseek_server::serve_on(listener, s.clone(), async move {
        let _ = stop_rx.await;
    }));
    let big = points_json(1000..1100, 64);
    let writer = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PUT /collections/c/points HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            big.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(big.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).await.unwrap();
        String::from_utf8_lossy(&resp).into_owned()
    });
    // The upsert reaches the store and waits there for the writer.
    while coll.writes_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }

    for _ in 0..5 {
        let mut q = vec![0.0f32; 64];
        q[3] = 1.0;
        let body = serde_json::json!({"vector": q, "k": 3}).to_string();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST /collections/c/search HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).await.unwrap();
        assert!(
            resp.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
        assert_eq!(coll.writes_waiting(), 1, "the upsert is still waiting");
    }
    release_tx.send(()).unwrap();
    assert!(
        holder.join().unwrap(),
        "searches waited for the write: the hold ran out before they were answered"
    );
    let resp = writer.await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(coll.info().points, 110);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_ivf_collection_builds_its_index_behind_compaction_and_takes_effort() {
    index_built_behind_compaction_takes_effort("ivf").await;
}

#[tokio::test]
async fn a_graph_collection_builds_its_index_behind_compaction_and_takes_effort() {
    index_built_behind_compaction_takes_effort("graph").await;
}

/// A collection with segment index `kind` builds it behind a compaction, answers meanwhile,
/// and at full effort gives the exact answer.
async fn index_built_behind_compaction_takes_effort(kind: &str) {
    let (_d, s) = state(Options::default());
    let r = call(
        &s,
        "PUT",
        "/collections/iv",
        Some(&format!(
            r#"{{"dim": 4, "metric": "l2", "index": {{"kind": "{kind}", "min_rows": 64}}}}"#
        )),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["config"]["index"]["kind"], kind, "{}", r.text);
    let vec_of = |i: u64| {
        let x = i as f32;
        [
            (x * 0.37).sin(),
            (x * 0.11).cos(),
            (x * 0.53).sin(),
            x / 300.0,
        ]
    };
    let points: Vec<_> = (0..300u64)
        .map(|i| serde_json::json!({"id": i, "vector": vec_of(i)}))
        .collect();
    let body = serde_json::json!({ "points": points }).to_string();
    let r = call(&s, "PUT", "/collections/iv/points", Some(&body), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&s, "POST", "/collections/iv/compact", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The index is built in the background; the collection answers meanwhile.
    let mut kinds = serde_json::Value::Null;
    for _ in 0..500 {
        let r = call(&s, "GET", "/collections/iv", None, None).await;
        kinds = r.json["segment_indexes"].clone();
        if kinds == serde_json::json!([kind]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(kinds, serde_json::json!([kind]));
    // Every list probed (every row walked) and every row rescored: the exact answer.
    let q = [0.1f32, 0.5, -0.2, 0.4];
    let mut want: Vec<(f32, u64)> = (0..300u64)
        .map(|i| {
            let v = vec_of(i);
            (v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum(), i)
        })
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let body = format!(r#"{{"vector": {q:?}, "k": 5, "oversample": 60, "effort": 1000}}"#);
    let r = call(&s, "POST", "/collections/iv/search", Some(&body), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let want: Vec<u64> = want[..5].iter().map(|w| w.1).collect();
    assert_eq!(ids(&r), want);
}
