//! A full disk and a failing fsync seen over HTTP: 507 and 503 with the reason in the JSON error,
//! the read-only state in `GET /health` and the collection's info, searches answering meanwhile,
//! and writes resuming once the fault is gone.

mod common;

use axum::http::StatusCode;
use bitseek_server::Options;
use bitseek_store::faults::{self, Fault, FaultError, FaultOp};
use common::*;

#[tokio::test]
async fn a_full_disk_answers_507_and_writes_resume_when_space_returns() {
    let (dir, state) = state(Options::default());
    with_points(&state, 10).await;
    let data = dir.path().join("data");
    faults::inject(
        &data,
        Some(Fault {
            op: FaultOp::Write,
            nth: 1,
            sticky: true,
            error: FaultError::NoSpace,
        }),
    );
    for ids in [10..15, 15..20] {
        let r = call(
            &state,
            "PUT",
            "/collections/c/points",
            Some(&points_json(ids, 4)),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "no_space");
        assert!(r.message().contains("no space left"), "{}", r.message());
    }
    // Reads go on, and nothing of the refused writes is there.
    let r = call(&state, "GET", "/collections/c/points/12", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &state,
        "POST",
        "/collections/c/search",
        Some(r#"{"vector": [1, 0, 0, 0], "k": 3}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Space returns.
    faults::clear(&data);
    let r = call(
        &state,
        "PUT",
        "/collections/c/points",
        Some(&points_json(10..15, 4)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&state, "GET", "/collections/c", None, None).await;
    assert_eq!(r.json["points"], 15);
}

#[tokio::test]
async fn a_failed_fsync_answers_503_shows_read_only_in_health_then_recovers() {
    let (dir, state) = state(Options::default());
    with_points(&state, 10).await;
    let data = dir.path().join("data");
    faults::inject(
        &data,
        Some(Fault {
            op: FaultOp::Fsync,
            nth: 1,
            sticky: false,
            error: FaultError::Io,
        }),
    );
    let r = call(
        &state,
        "POST",
        "/collections/c/points/delete",
        Some(r#"{"ids": [1, 2]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "unavailable");
    assert!(
        r.message().contains("read-only") && r.message().contains("fsync"),
        "{}",
        r.message()
    );
    let h = call(&state, "GET", "/health", None, None).await;
    assert_eq!(h.json["status"], "degraded", "{}", h.text);
    assert_eq!(h.json["read_only"][0]["collection"], "c");
    assert!(h.json["read_only"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("fsync"));
    let info = call(&state, "GET", "/collections/c", None, None).await;
    assert!(info.json["read_only"].is_string(), "{}", info.text);
    assert_eq!(info.json["points"], 10, "the refused delete is not applied");
    // The next write rewrites the state into new files (the fault fired once) and goes through.
    let r = call(
        &state,
        "POST",
        "/collections/c/points/delete",
        Some(r#"{"ids": [1, 2]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = call(&state, "GET", "/health", None, None).await;
    assert_eq!(h.json["status"], "ok", "{}", h.text);
    assert!(h.json.get("read_only").is_none());
    faults::clear(&data);
}
