//! A full disk and failing I/O: the Nth create, write, fsync or rename of a workload fails (the
//! `faults` feature's layer), or a real size-limited tmpfs fills up. Every failed write must be
//! refused with an error that says so (no space, or unavailable), leave nothing of itself visible,
//! and lose no acknowledged write, while the collection runs on and after it is reopened; writes
//! must resume once the fault is gone.
//!
//! `BITSEEK_FAULT_STEPS=all` tries every N (CI tries about a dozen per kind).

mod common;

use bitseek_store::faults::{self, Fault, FaultError, FaultOp};
use bitseek_store::{Db, DbOptions, Durability, ErrorKind, Keep, LiveCollection, Metric, Point};
use bitseek_store::{SearchRequest, StoreError};
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const DIM: usize = 8;

/// A temporary directory, in memory where there is `/dev/shm`: the faults are injected, so the
/// disk's own fsyncs only cost time here.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn open(root: &Path) -> Db {
    // Small flushes, so the workload also writes segments, tombstones and manifests.
    open_with(
        root,
        DbOptions {
            flush_rows: 6,
            ..DbOptions::default()
        },
    )
}

/// Opens the database, waiting out a lock held for a moment by another test's `mount` child: a
/// forked child holds the parent's lock file until its `exec` closes it.
fn open_with(root: &Path, options: DbOptions) -> Db {
    for _ in 0..100 {
        match Db::open_with(root, options) {
            Err(e) if e.to_string().contains("in use by another") => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            r => return r.unwrap(),
        }
    }
    panic!("{} stays locked", root.display())
}

fn create(db: &Db, durability: Durability) -> Arc<LiveCollection> {
    let mut cfg = config(DIM, Metric::L2, "rabitq", Keep::F32);
    cfg.durability = durability;
    db.create("c", cfg).unwrap()
}

/// One operation of the workload.
enum Op {
    Upsert(Vec<Point>),
    Delete(Vec<u64>),
    Compact,
}

/// A fixed workload: upserts over 20 ids (so later ones replace earlier), deletes, compactions.
fn workload(len: usize) -> Vec<Op> {
    let mut r = rng(17);
    (0..len)
        .map(|i| match i % 7 {
            3 => Op::Delete(vec![(i as u64 * 3) % 20, (i as u64 * 7) % 20]),
            6 => Op::Compact,
            _ => Op::Upsert(
                (0..3)
                    .map(|j| {
                        let id = (i as u64 * 5 + j) % 20;
                        Point {
                            id,
                            vector: vector(&mut r, DIM),
                            payload: json!({"op": i, "id": id}),
                        }
                    })
                    .collect(),
            ),
        })
        .collect()
}

/// Runs `op`; on success applies it to `model`.
fn run(c: &LiveCollection, op: &Op, model: &mut Model) -> Result<(), StoreError> {
    let result = match op {
        Op::Upsert(points) => c.upsert(points.clone()).map(drop),
        Op::Delete(ids) => c.delete(ids).map(drop),
        Op::Compact => c.compact().map(drop),
    };
    // A full memtable is flushed in the background; waiting keeps the order of the calls
    // the faults count the same in every run. A failed flush is no refused write: the frozen
    // rows stay in memory and in their log, and the next write that needs room flushes them.
    let _ = c.wait_for_flushes();
    result?;
    apply(op, model);
    Ok(())
}

/// What `op` does to the points.
fn apply(op: &Op, model: &mut Model) {
    match op {
        Op::Upsert(points) => {
            for p in points {
                model.insert(p.id, (p.vector.clone(), p.payload.clone()));
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

/// The collection holds exactly `model`: every point by id, and a search over everything.
fn check(c: &LiveCollection, model: &Model, what: &str) {
    assert_eq!(c.info().points, model.len(), "{what}: point count");
    for id in 0..20u64 {
        let got = c.get(id);
        match model.get(&id) {
            None => assert!(
                got.is_none(),
                "{what}: id {id} is there but was deleted or never acknowledged"
            ),
            Some((v, p)) => {
                let got = got.unwrap_or_else(|| panic!("{what}: acknowledged id {id} is lost"));
                assert_eq!(&got.payload, p, "{what}: payload of id {id}");
                assert_eq!(
                    got.vector.as_deref(),
                    Some(&v[..]),
                    "{what}: vector of id {id}"
                );
            }
        }
    }
    let req = SearchRequest {
        k: 20,
        oversample: Some(100.0),
        filter: None,
        effort: None,
    };
    let mut ids: Vec<u64> = c
        .search(&[0.5; DIM], &req)
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        model.keys().copied().collect::<Vec<_>>(),
        "{what}: search"
    );
}

/// The kind of error a refused write must report for an injected `error`.
fn expected_kind(error: FaultError) -> ErrorKind {
    match error {
        FaultError::NoSpace => ErrorKind::NoSpace,
        FaultError::Io => ErrorKind::Unavailable,
    }
}

/// Which N to try among `calls`: all with `BITSEEK_FAULT_STEPS=all`, else about a dozen spread
/// over the range (always the first and the last).
fn steps(calls: u64) -> Vec<u64> {
    if std::env::var("BITSEEK_FAULT_STEPS").as_deref() == Ok("all") {
        return (1..=calls).collect();
    }
    let every = calls.div_ceil(12).max(1);
    let mut out: Vec<u64> = (1..=calls).step_by(every as usize).collect();
    if out.last() != Some(&calls) {
        out.push(calls);
    }
    out
}

/// What one fault kind's sweep saw.
#[derive(Default, Debug)]
struct Tally {
    runs: u64,
    refused: u64,
    operations: u64,
}

/// For each N: the Nth `op` of the workload fails with `error`. Checks the live collection after
/// every operation and, after the workload (or, with `crash`, right after the first refusal),
/// the collection reopened from disk.
fn sweep(op: FaultOp, error: FaultError, crash: bool) -> Tally {
    let ops = workload(28);
    // Count the calls of this kind the workload makes.
    let calls = {
        let dir = tempdir();
        let db = open(dir.path());
        let c = create(&db, Durability::Fsync);
        faults::inject(dir.path(), None);
        let mut model = Model::new();
        for o in &ops {
            run(&c, o, &mut model).unwrap();
        }
        let n = faults::calls(dir.path(), op).0;
        faults::clear(dir.path());
        n
    };
    assert!(calls > 0, "the workload makes no {op:?} call");
    let mut tally = Tally::default();
    for nth in steps(calls) {
        let what = format!("{op:?} #{nth} of {calls} fails with {error:?}");
        let dir = tempdir();
        let mut model = Model::new();
        {
            let db = open(dir.path());
            let c = create(&db, Durability::Fsync);
            faults::inject(
                dir.path(),
                Some(Fault {
                    op,
                    nth,
                    sticky: false,
                    error,
                }),
            );
            for (i, o) in ops.iter().enumerate() {
                tally.operations += 1;
                match run(&c, o, &mut model) {
                    Ok(()) => {}
                    Err(e) => {
                        tally.refused += 1;
                        assert_eq!(
                            e.kind(),
                            expected_kind(error),
                            "{what}: operation {i} refused with {e}"
                        );
                        assert!(
                            e.to_string().contains("injected fault"),
                            "{what}: the error names its cause: {e}"
                        );
                        // Nothing of the refused write is visible.
                        check(&c, &model, &format!("{what}, after refused operation {i}"));
                        if crash {
                            break;
                        }
                    }
                }
            }
            check(&c, &model, &format!("{what}, at the end"));
            if !crash {
                // Writes resume (a read-only state left by the last operations clears).
                run(&c, &ops[0], &mut model).unwrap();
                assert!(c.info().read_only.is_none(), "{what}: writes resumed");
                check(&c, &model, &format!("{what}, resumed"));
            }
            faults::clear(dir.path());
        }
        let db = open(dir.path());
        let c = db.get("c").unwrap();
        check(&c, &model, &format!("{what}, reopened"));
        assert!(c.lost_writes().is_empty(), "{what}: {:?}", c.recovery());
        tally.runs += 1;
    }
    tally
}

#[test]
fn the_nth_failing_write_fsync_rename_or_create_loses_nothing_acknowledged() {
    let mut table = BTreeMap::new();
    for op in [
        FaultOp::Write,
        FaultOp::Fsync,
        FaultOp::Rename,
        FaultOp::Create,
    ] {
        for error in [FaultError::NoSpace, FaultError::Io] {
            for crash in [false, true] {
                let t = sweep(op, error, crash);
                assert!(t.refused > 0, "{op:?} {error:?}: no fault fired");
                table.insert(format!("{op:?} {error:?} crash={crash}"), t);
            }
        }
    }
    for (k, t) in &table {
        eprintln!(
            "fault {k}: {} runs, {} operations, {} refused, 0 acknowledged writes lost, 0 wrong reads",
            t.runs, t.operations, t.refused
        );
    }
}

#[test]
fn a_failed_log_fsync_is_never_retried_the_collection_turns_read_only_then_rewrites_its_state() {
    let dir = tempdir();
    let db = open(dir.path());
    let c = create(&db, Durability::Fsync);
    let mut model = Model::new();
    let ops = workload(3);
    run(&c, &ops[0], &mut model).unwrap();
    let generation = c.info().generation;
    // The next write's log fsync fails (a write of the first upsert makes 1 fsync).
    faults::inject(
        dir.path(),
        Some(Fault {
            op: FaultOp::Fsync,
            nth: 1,
            sticky: false,
            error: FaultError::Io,
        }),
    );
    let e = run(&c, &ops[1], &mut model).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
    assert!(e.to_string().contains("fsync"), "{e}");
    let reason = c.info().read_only.expect("read-only after a failed fsync");
    assert!(reason.contains("fsync"), "{reason}");
    check(&c, &model, "read-only");
    // The next write writes a new generation from memory (it does not fsync the old log again)
    // and goes through.
    run(&c, &ops[2], &mut model).unwrap();
    assert!(c.info().read_only.is_none());
    assert!(c.info().generation > generation);
    // A flush (graceful shutdown) after a failed fsync rewrites too, rather than syncing again.
    faults::inject(
        dir.path(),
        Some(Fault {
            op: FaultOp::Fsync,
            nth: 1,
            sticky: false,
            error: FaultError::Io,
        }),
    );
    let generation = c.info().generation;
    run(&c, &ops[1], &mut model).unwrap_err();
    c.flush().unwrap();
    assert!(c.info().read_only.is_none());
    assert!(c.info().generation > generation);
    faults::clear(dir.path());
    drop((c, db));
    let db = open(dir.path());
    check(&db.get("c").unwrap(), &model, "reopened");
}

#[test]
fn a_full_disk_refuses_every_write_until_space_returns() {
    for durability in [Durability::Fsync, Durability::Grouped { window_ms: 2 }] {
        let dir = tempdir();
        let db = open(dir.path());
        let c = create(&db, durability);
        let ops = workload(40);
        let mut model = Model::new();
        for o in &ops[..10] {
            run(&c, o, &mut model).unwrap();
        }
        // The disk fills: every write and fsync fails from now on.
        for op in [FaultOp::Write, FaultOp::Fsync] {
            faults::inject(
                dir.path(),
                Some(Fault {
                    op,
                    nth: 1,
                    sticky: true,
                    error: FaultError::NoSpace,
                }),
            );
            for (i, o) in ops[10..20].iter().enumerate() {
                let e = run(&c, o, &mut model).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::NoSpace, "{durability:?} {op:?}: {e}");
                if e.to_string().contains("may still be applied") {
                    // A grouped write whose shared fsync failed was applied in memory before
                    // it waited, and the rewrite that clears the read-only state makes it
                    // durable: refused, but its outcome is "applied" (the error says so).
                    // Every later one is refused before it is applied.
                    assert_eq!(i, 0, "only the first write waits for a failing fsync");
                    apply(o, &mut model);
                }
            }
            check(&c, &model, &format!("{durability:?} {op:?}: disk full"));
            // Space returns: writes resume.
            faults::clear(dir.path());
            for o in &ops[20..26] {
                run(&c, o, &mut model).unwrap();
            }
            check(
                &c,
                &model,
                &format!("{durability:?} {op:?}: space returned"),
            );
        }
        drop((c, db));
        let db = open(dir.path());
        check(
            &db.get("c").unwrap(),
            &model,
            &format!("{durability:?}: reopened"),
        );
    }
}

/// A real full disk: the collection on a tmpfs of 8 MiB this test mounts (it must run as root;
/// elsewhere it says why it skipped). Upserts until the disk refuses, then checks what a failed
/// write left, grows the filesystem, and checks writes resume and everything acknowledged is
/// still there after reopening.
#[test]
fn a_real_tmpfs_that_fills_up() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = |opts: &str| {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&mnt)
            .output()
    };
    match mount("size=8m") {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED a_real_tmpfs_that_fills_up: mount -t tmpfs failed ({}); run as root \
                 where mounting is allowed",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED a_real_tmpfs_that_fills_up: cannot run mount ({e})");
            return;
        }
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let dim = 256;
    let db = open_with(
        &mnt,
        DbOptions {
            flush_rows: 2000,
            ..DbOptions::default()
        },
    );
    let c = db
        .create("c", config(dim, Metric::L2, "rabitq", Keep::F32))
        .unwrap();
    let mut r = rng(5);
    let mut acked: BTreeMap<u64, serde_json::Value> = BTreeMap::new();
    let mut refused = 0;
    let mut next = 0u64;
    // 8 MiB holds about 7,000 such points in the log alone: the disk fills well before 40 batches.
    for batch in 0..40 {
        let points: Vec<Point> = (0..200)
            .map(|i| {
                let id = next + i;
                Point {
                    id,
                    vector: vector(&mut r, dim),
                    payload: json!({"batch": batch}),
                }
            })
            .collect();
        match c.upsert(points.clone()) {
            Ok(_) => {
                for p in points {
                    acked.insert(p.id, p.payload);
                }
                next += 200;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
        }
    }
    assert!(refused > 0, "8 MiB never filled up");
    assert_eq!(c.info().points, acked.len());
    for (id, p) in &acked {
        assert_eq!(&c.get(*id).expect("acknowledged point").payload, p);
    }
    assert!(c.get(next).is_none(), "a refused write is visible");
    // Space returns.
    let grown = mount_remount(&mnt, "size=64m");
    assert!(grown, "remount to 64 MiB failed");
    let points: Vec<Point> = (0..200)
        .map(|i| Point {
            id: next + i,
            vector: vector(&mut r, dim),
            payload: json!({"batch": "after"}),
        })
        .collect();
    c.upsert(points.clone())
        .expect("writes resume once there is space");
    for p in points {
        acked.insert(p.id, p.payload);
    }
    c.compact().expect("compaction once there is space");
    drop((c, db));
    let db = open_with(&mnt, DbOptions::default());
    let c = db.get("c").unwrap();
    assert_eq!(c.info().points, acked.len());
    for (id, p) in &acked {
        assert_eq!(
            &c.get(*id).expect("acknowledged point after reopen").payload,
            p
        );
    }
    eprintln!(
        "tmpfs of 8 MiB: {} points acknowledged, {refused} upserts refused with no space, \
         writes resumed after growing it; 0 acknowledged writes lost",
        acked.len()
    );
}

fn mount_remount(mnt: &Path, opts: &str) -> bool {
    std::process::Command::new("mount")
        .args(["-o", &format!("remount,{opts}")])
        .arg(mnt)
        .status()
        .is_ok_and(|s| s.success())
}
