//! Crash test: `bitseek serve` is killed with SIGKILL at seeded random moments while a client
//! streams upserts, deletes and compactions over HTTP; after every restart, every acknowledged
//! write must be there, the one write in flight must be there whole or not at all, and searches
//! must equal those of a fresh rebuild of the same points.
//!
//! CI runs a few kills; the full run (60 kills) is
//! `BITSEEK_CRASH_KILLS=60 cargo test --release -p bitseek --test crash -- --nocapture`
//! (`BITSEEK_CRASH_SEED` picks another sequence, `BITSEEK_CRASH_DURABILITY=grouped` tests grouped
//! commits).

#[path = "common/server.rs"]
mod server;

use serde_json::{json, Value};
use server::{durability, env, http, start, Rng};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIM: usize = 8;

const IDS: u64 = 300;
const NAME: &str = "crash";

/// The vector of `id` at `version`, derived so a check can recompute it.
fn vector(id: u64, version: u64) -> Vec<f32> {
    let mut r = Rng::seed_from_u64(id * 1_000_003 + version);
    (0..DIM).map(|_| r.unit()).collect()
}

/// id → version of the live points.
type Model = BTreeMap<u64, u64>;

#[derive(Clone, Debug)]
enum Op {
    Upsert(Vec<(u64, u64)>),
    Delete(Vec<u64>),
    Compact,
}

fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Upsert(points) => {
            for &(id, v) in points {
                model.insert(id, v);
            }
        }
        Op::Delete(ids) => {
            for id in ids {
                model.remove(id);
            }
        }
        Op::Compact => {}
    }
}

fn send(port: u16, op: &Op) -> std::io::Result<u16> {
    let (status, _) = match op {
        Op::Upsert(points) => {
            let points: Vec<Value> = points
                .iter()
                .map(|&(id, v)| json!({"id": id, "vector": vector(id, v), "payload": {"v": v}}))
                .collect();
            http(
                port,
                "PUT",
                &format!("/collections/{NAME}/points"),
                Some(&json!({ "points": points })),
            )?
        }
        Op::Delete(ids) => http(
            port,
            "POST",
            &format!("/collections/{NAME}/points/delete"),
            Some(&json!({ "ids": ids })),
        )?,
        Op::Compact => http(port, "POST", &format!("/collections/{NAME}/compact"), None)?,
    };
    Ok(status)
}

/// The server's live points as id → version, read one GET at a time.
fn read_back(port: u16, name: &str) -> Model {
    let mut out = Model::new();
    for id in 0..IDS {
        let (status, body) = http(
            port,
            "GET",
            &format!("/collections/{name}/points/{id}"),
            None,
        )
        .expect("the restarted server answers");
        match status {
            200 => {
                let v = body["payload"]["v"]
                    .as_u64()
                    .expect("payload has the version");
                let got: Vec<f32> = serde_json::from_value(body["vector"].clone()).unwrap();
                let want = vector(id, v);
                assert!(
                    got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
                    "point {id} has a vector that is not version {v}'s"
                );
                out.insert(id, v);
            }
            404 => {}
            s => panic!("GET point {id}: status {s}: {body}"),
        }
    }
    out
}

fn search(port: u16, name: &str, q: &[f32]) -> Vec<(u64, f32)> {
    let (status, body) = http(
        port,
        "POST",
        &format!("/collections/{name}/search"),
        Some(&json!({"vector": q, "k": 10, "oversample": 100})),
    )
    .expect("search answers");
    assert_eq!(status, 200, "search: {body}");
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_u64().unwrap(),
                h["score"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

/// `BITSEEK_CRASH_DURABILITY=grouped` runs the test with grouped commits (5 ms window).
const DURABILITY_VAR: &str = "BITSEEK_CRASH_DURABILITY";

fn create(port: u16, name: &str) {
    server::create(port, name, DIM, "l2", DURABILITY_VAR);
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let kills = env("BITSEEK_CRASH_KILLS", 6) as usize;
    let seed = env("BITSEEK_CRASH_SEED", 20261126);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = Rng::seed_from_u64(seed);
    let (mut child, mut port) = start(&data, &[]);
    create(port, NAME);
    let mut model = Model::new();
    let mut version = 0u64;
    let (mut acked_total, mut in_flight_applied, mut in_flight_lost) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    for kill in 0..kills {
        // Kill after a random delay while the client keeps writing.
        let delay = Duration::from_millis(rng.gen_range(5..250));
        let dead = Arc::new(AtomicBool::new(false));
        let pid = child.id();
        let killer = {
            let dead = dead.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // SIGKILL: no chance to flush anything.
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                dead.store(true, Ordering::SeqCst);
            })
        };
        let mut in_flight: Option<Op> = None;
        loop {
            let op = match rng.gen_range(0..20) {
                0..=13 => Op::Upsert(
                    (0..rng.gen_range(1..20))
                        .map(|_| {
                            version += 1;
                            (rng.gen_range(0..IDS), version)
                        })
                        .collect(),
                ),
                14..=18 => Op::Delete(
                    (0..rng.gen_range(1..6))
                        .map(|_| rng.gen_range(0..IDS))
                        .collect(),
                ),
                _ => Op::Compact,
            };
            match send(port, &op) {
                Ok(200) => {
                    apply(&mut model, &op);
                    acked_total += 1;
                }
                Ok(s) if !dead.load(Ordering::SeqCst) => panic!("{op:?} answered {s}"),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    // Never delivered: the server was already gone.
                    break;
                }
                _ => {
                    in_flight = Some(op);
                    break;
                }
            }
            if dead.load(Ordering::SeqCst) {
                break;
            }
        }
        killer.join().unwrap();
        child.wait().unwrap();
        (child, port) = start(&data, &[]);
        let found = read_back(port, NAME);
        // Every acknowledged write is there; the write in flight is there whole or not at all.
        let mut with = model.clone();
        if let Some(op) = &in_flight {
            apply(&mut with, op);
        }
        if found == model {
            if in_flight
                .as_ref()
                .is_some_and(|op| with != model && !matches!(op, Op::Compact))
            {
                in_flight_lost += 1;
            }
        } else if found == with {
            model = with;
            in_flight_applied += 1;
        } else {
            let missing: Vec<_> = model
                .iter()
                .filter(|(id, v)| found.get(id) != Some(v))
                .take(5)
                .collect();
            panic!(
                "kill {kill}: contents are neither the acknowledged writes nor those plus the write in \
                 flight ({in_flight:?}); first differences from the acknowledged state: {missing:?}"
            );
        }
        // Searches equal those of a fresh rebuild of the same points.
        let fresh = format!("fresh-{kill}");
        create(port, &fresh);
        let points: Vec<Value> = model
            .iter()
            .map(|(&id, &v)| json!({"id": id, "vector": vector(id, v), "payload": {"v": v}}))
            .collect();
        for chunk in points.chunks(200) {
            let (s, b) = http(
                port,
                "PUT",
                &format!("/collections/{fresh}/points"),
                Some(&json!({"points": chunk})),
            )
            .unwrap();
            assert_eq!(s, 200, "{b}");
        }
        for _ in 0..3 {
            let q: Vec<f32> = (0..DIM).map(|_| rng.unit()).collect();
            let a = search(port, NAME, &q);
            let b = search(port, &fresh, &q);
            assert_eq!(a.len(), b.len(), "kill {kill}: hit counts differ");
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x.1 - y.1).abs() < 1e-4,
                    "kill {kill}: {a:?} vs fresh {b:?}"
                );
            }
        }
        let (s, _) = http(port, "DELETE", &format!("/collections/{fresh}"), None).unwrap();
        assert!(s == 200 || s == 204);
    }
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "crash test ({}): {kills} SIGKILLs (seed {seed}) in {:.1} s, {acked_total} acknowledged writes all \
         present; writes in flight at a kill: {in_flight_applied} found whole, {in_flight_lost} absent, \
         none partial; searches equal a fresh rebuild after every restart; {} live points at the end",
        durability(DURABILITY_VAR)["mode"].as_str().unwrap_or("fsync"),
        started.elapsed().as_secs_f64(),
        model.len()
    );
}
