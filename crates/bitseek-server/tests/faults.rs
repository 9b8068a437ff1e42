//! A full disk and a failing fsync seen over HTTP: 507 and 503 with the reason in the JSON error,
//! the read-only state in `GET /health` and the collection's info, searches answering meanwhile,
//! and writes resuming once the fault is gone.

mod common;

use axum::http::StatusCode;
use bitseek_server::{AppState, Options};
use bitseek_store::faults::{self, Fault, FaultError, FaultOp};
use bitseek_store::{Db, DbOptions};
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// One row of the fault table: a fault held for a phase while a writer's upserts are refused and a
/// well-behaved client searches; then the fault is cleared and writes resume.
struct Row {
    kind: &'static str,
    refused: usize,
    operations: usize,
    lost: usize,
    wrong: usize,
    before: (Duration, Duration),
    during: (Duration, Duration),
}

fn p50_p99(mut xs: Vec<Duration>) -> (Duration, Duration) {
    xs.sort();
    let at = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

/// Searches until `stop`, timing each; every one must answer 200.
async fn searcher(state: Arc<AppState>, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) || lat.len() < 20 {
        let t = Instant::now();
        let r = call(
            &state,
            "POST",
            "/collections/c/search",
            Some(r#"{"vector": [1, 0.5, 0, 0], "k": 5}"#),
            None,
        )
        .await;
        lat.push(t.elapsed());
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a search failed during a fault: {}",
            r.text
        );
    }
    lat
}

/// Upserts 5 points per write, ids counting up; returns the acknowledged ids and the refused ones.
async fn writer(
    state: &Arc<AppState>,
    next: &mut u64,
    writes: usize,
    want: StatusCode,
) -> (Vec<u64>, Vec<u64>) {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..writes {
        let ids = *next..*next + 5;
        *next += 5;
        let r = call(
            &state.clone(),
            "PUT",
            "/collections/c/points",
            Some(&points_json(ids.clone(), 4)),
            None,
        )
        .await;
        if r.status == StatusCode::OK {
            acked.extend(ids);
        } else {
            assert_eq!(r.status, want, "{}", r.text);
            assert!(!r.message().is_empty());
            refused.extend(ids);
        }
    }
    (acked, refused)
}

/// The fault table of the README: each kind of I/O fault held while a writer is refused and a
/// client searches; no acknowledged write lost, no refused write visible, searches answering.
/// `BITSEEK_FAULT_ROUNDS` writes per phase (CI: 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_table() {
    let writes: usize = std::env::var("BITSEEK_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Small flushes: every other write writes a segment, so renames happen.
    let db = Db::open_with(
        &data,
        DbOptions {
            flush_rows: 8,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let state = AppState::new(Arc::new(db), Options::default());
    with_points(&state, 10).await;
    let mut next = 10u64;
    let mut acked: Vec<u64> = (0..10).collect();
    let mut all_refused = Vec::new();
    let mut rows = Vec::new();
    for (kind, op, error, sticky, want) in [
        (
            "disk full",
            FaultOp::Write,
            FaultError::NoSpace,
            true,
            StatusCode::INSUFFICIENT_STORAGE,
        ),
        (
            "fsync error",
            FaultOp::Fsync,
            FaultError::Io,
            true,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            "write error",
            FaultOp::Write,
            FaultError::Io,
            true,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            "rename error",
            FaultOp::Rename,
            FaultError::Io,
            true,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        // Before: searches alongside writes that succeed.
        let stop = Arc::new(AtomicBool::new(false));
        let s = tokio::spawn(searcher(state.clone(), stop.clone()));
        let (a, r) = writer(&state, &mut next, writes, StatusCode::OK).await;
        assert!(r.is_empty());
        acked.extend(a);
        stop.store(true, Ordering::Relaxed);
        let before = s.await.unwrap();
        // During: the fault holds.
        faults::inject(
            &data,
            Some(Fault {
                op,
                nth: 1,
                sticky,
                error,
            }),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let s = tokio::spawn(searcher(state.clone(), stop.clone()));
        let (a, r) = writer(&state, &mut next, writes, want).await;
        stop.store(true, Ordering::Relaxed);
        let during = s.await.unwrap();
        assert!(!r.is_empty(), "{kind}: no write was refused");
        let refused = r.len() / 5;
        acked.extend(a);
        all_refused.extend(r);
        // After: the fault is gone, writes resume.
        faults::clear(&data);
        let (a, r) = writer(&state, &mut next, 2, StatusCode::OK).await;
        assert!(r.is_empty(), "{kind}: writes did not resume");
        acked.extend(a);
        let (lost, wrong) = audit(&state, &acked, &all_refused).await;
        rows.push(Row {
            kind,
            refused,
            operations: 2 * writes
                + 2
                + before.len()
                + during.len()
                + acked.len()
                + all_refused.len(),
            lost,
            wrong,
            before: p50_p99(before),
            during: p50_p99(during),
        });
    }
    eprintln!("| fault | faults injected (writes refused) | operations checked | acknowledged writes lost | wrong reads | search p50 / p99 before | search p50 / p99 during |");
    eprintln!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        eprintln!(
            "| {} | {} | {} | {} | {} | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            r.kind,
            r.refused,
            r.operations,
            r.lost,
            r.wrong,
            r.before.0.as_secs_f64() * 1e3,
            r.before.1.as_secs_f64() * 1e3,
            r.during.0.as_secs_f64() * 1e3,
            r.during.1.as_secs_f64() * 1e3,
        );
        assert_eq!((r.lost, r.wrong), (0, 0), "{}", r.kind);
    }
}

/// Acknowledged ids missing (lost) and refused ids present (wrong reads), by point lookups.
async fn audit(state: &Arc<AppState>, acked: &[u64], refused: &[u64]) -> (usize, usize) {
    let mut lost = 0;
    for id in acked {
        let r = call(
            state,
            "GET",
            &format!("/collections/c/points/{id}"),
            None,
            None,
        )
        .await;
        lost += usize::from(r.status != StatusCode::OK);
    }
    let mut wrong = 0;
    for id in refused {
        let r = call(
            state,
            "GET",
            &format!("/collections/c/points/{id}"),
            None,
            None,
        )
        .await;
        wrong += usize::from(r.status != StatusCode::NOT_FOUND);
    }
    (lost, wrong)
}
