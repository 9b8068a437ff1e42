//! Damaged files: every truncation, bit flip and zero fill of a segment, payload, tombstone, log
//! or manifest file gives a clear error or a recovery that says what it cut or skipped — never a
//! panic, never silently wrong contents. Damage in the middle of the log loses only the writes
//! in the damaged bytes, and the report names them.

mod common;

use bitseek_store::{wal, Db, Keep, Metric, Point, SearchRequest};
use bitseek_store::{DbOptions, LiveCollection, LostWrites};
use common::*;
use rand::Rng;
use std::fs;
use std::path::Path;

/// A logged write, as the model sees it.
enum Change {
    Upsert(Vec<Point>),
    Delete(Vec<u64>),
}

impl Change {
    fn apply(&self, model: &mut Model) {
        match self {
            Change::Upsert(points) => {
                for p in points {
                    model.insert(p.id, (p.vector.clone(), p.payload.clone()));
                }
            }
            Change::Delete(ids) => {
                for id in ids {
                    model.remove(id);
                }
            }
        }
    }
}

/// The state after the last flush, and the writes in the log since, by sequence number.
struct Fixture {
    base: Model,
    log: Vec<(u64, Change)>,
}

impl Fixture {
    /// Every logged write up to `last_lsn` except the `lost` ones, on top of the base.
    fn expected(&self, last_lsn: u64, lost: &[LostWrites]) -> Model {
        let mut model = self.base.clone();
        for (lsn, change) in &self.log {
            let is_lost = lost
                .iter()
                .any(|l| (l.first_lsn..=l.last_lsn).contains(lsn));
            if *lsn <= last_lsn && !is_lost {
                change.apply(&mut model);
            }
        }
        model
    }

    fn full(&self) -> Model {
        self.expected(u64::MAX, &[])
    }
}

fn build(dir: &Path) -> Fixture {
    let db = Db::open_with(
        dir,
        DbOptions {
            flush_rows: 12,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let c = db
        .create("c", config(8, Metric::Cosine, "rabitq", Keep::F32))
        .unwrap();
    let mut rng = rng(5);
    let mut model = Model::new();
    let mut fixture = Fixture {
        base: Model::new(),
        log: Vec::new(),
    };
    for step in 0..20u64 {
        let before = c.info().generation;
        let change = if step % 4 == 3 {
            let ids = vec![rng.gen_range(0..30u64), rng.gen_range(0..30u64)];
            c.delete(&ids).unwrap();
            Change::Delete(ids)
        } else {
            let points: Vec<Point> = (0..3)
                .map(|_| {
                    let id = rng.gen_range(0..30u64);
                    Point {
                        id,
                        vector: vector(&mut rng, 8),
                        payload: payload(id + step),
                    }
                })
                .collect();
            c.upsert(points.clone()).unwrap();
            Change::Upsert(points)
        };
        // A full memtable is flushed in the background: wait, so that the segments hold
        // everything before this write once the generation changed.
        assert_eq!(c.wait_for_flushes(), None);
        if c.info().generation != before {
            // A flush happened before this write: the log starts again from the state before it.
            fixture.base = model.clone();
            fixture.log.clear();
        }
        change.apply(&mut model);
        let lsn = c.info().last_lsn;
        // A delete of absent ids writes nothing.
        if fixture.log.last().is_none_or(|(l, _)| *l != lsn) {
            fixture.log.push((lsn, change));
        }
    }
    let info = c.info();
    assert!(info.segments >= 2 && info.wal_records >= 2, "{info:?}");
    assert_eq!(fixture.full(), model);
    let dir_files: Vec<_> = fs::read_dir(dir.join("c")).unwrap().flatten().collect();
    assert!(
        dir_files
            .iter()
            .any(|e| e.file_name().to_string_lossy().starts_with("tombstones-")),
        "the fixture has tombstones"
    );
    fixture
}

/// Whether the collection holds exactly `model`.
fn holds(c: &LiveCollection, model: &Model) -> bool {
    if c.info().points != model.len() {
        return false;
    }
    for (id, (_, p)) in model {
        match c.get(*id) {
            Some(r) if &r.payload == p => {}
            _ => return false,
        }
    }
    let q = [0.3f32, -0.1, 0.5, 0.2, -0.7, 0.1, 0.0, 0.4];
    let req = SearchRequest {
        k: 5,
        oversample: Some(100.0),
        filter: None,
        effort: None,
    };
    let hits = c.search(&q, &req).unwrap();
    let exact = brute_force(model, Metric::Cosine, &q, 5, |_| true);
    hits.len() == exact.len()
        && hits
            .iter()
            .zip(&exact)
            .all(|(h, e)| (h.score - e.1).abs() < 1e-4)
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    errors: usize,
    recovered: usize,
    unaffected: usize,
    /// Writes reported lost to damage in the middle of the log.
    lost: usize,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn damaged_files_give_clear_errors_or_reported_recoveries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("db");
    let fixture = build(&root);
    let pristine = tmp.path().join("pristine");
    copy_dir(&root.join("c"), &pristine);
    let full = &fixture.full();
    let last_lsn = fixture.log.last().unwrap().0;
    let mut rng = rng(99);
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    let mut names: Vec<String> = fs::read_dir(&pristine)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let kind = name.split(['-', '.']).next().unwrap().to_string();
        let original = fs::read(pristine.join(name)).unwrap();
        let len = original.len();
        // Where the log's last record starts: damage before it has intact records after it.
        let last_record = (kind == "wal").then(|| {
            let scan = wal::scan(&original, 8).unwrap();
            assert_eq!(scan.records.len(), fixture.log.len());
            len - wal::encode(scan.records.last().unwrap(), 8).len()
        });
        let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
        for cut in [0, 1, len / 3, len / 2, len.saturating_sub(13), len - 1] {
            damages.push((format!("truncate to {cut}"), original[..cut].to_vec()));
        }
        for _ in 0..24 {
            let pos = rng.gen_range(0..len);
            let bit = rng.gen_range(0..8);
            let mut b = original.clone();
            b[pos] ^= 1 << bit;
            damages.push((format!("flip bit {bit} of byte {pos}"), b));
        }
        for _ in 0..6 {
            let pos = rng.gen_range(0..len);
            let n = rng.gen_range(1..=64).min(len - pos);
            let mut b = original.clone();
            b[pos..pos + n].fill(0);
            if b != original {
                damages.push((format!("zero {n} bytes at {pos}"), b));
            }
        }
        let mut b = original.clone();
        b[len / 2..].fill(0);
        damages.push(("zero the second half".into(), b));

        let mut tally = Tally::default();
        for (what, bytes) in damages {
            let dir = tmp.path().join("case");
            let _ = fs::remove_dir_all(&dir);
            copy_dir(&pristine, &dir);
            fs::write(dir.join(name), &bytes).unwrap();
            let case = format!("{name}: {what}");
            tally.cases += 1;
            let opened = std::panic::catch_unwind(|| LiveCollection::open(&dir))
                .unwrap_or_else(|_| panic!("{case}: opening panicked"));
            match opened {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&kind)
                            || msg.contains(name.as_str())
                            || msg.contains("manifest"),
                        "{case}: the error does not name the damaged file: {msg}"
                    );
                    tally.errors += 1;
                }
                Ok(c) if kind == "wal" => {
                    let info = c.info();
                    let expected = fixture.expected(info.last_lsn, c.lost_writes());
                    assert!(
                        holds(&c, &expected),
                        "{case}: contents are not the acknowledged writes less the reported lost ones"
                    );
                    let lost: u64 = c
                        .lost_writes()
                        .iter()
                        .map(|l| l.last_lsn - l.first_lsn + 1)
                        .sum();
                    if lost > 0 || info.last_lsn < last_lsn {
                        assert!(!c.recovery().is_empty(), "{case}: log cut without a report");
                    }
                    let first_change = bytes.iter().zip(&original).position(|(a, b)| a != b);
                    let before_last =
                        matches!((first_change, last_record), (Some(p), Some(l)) if p < l);
                    if what.starts_with("flip") && before_last {
                        // One damaged record in the middle: only its write is lost.
                        assert_eq!(info.last_lsn, last_lsn, "{case}: later writes were cut");
                        assert!(lost <= 1, "{case}: {lost} writes lost to one bit flip");
                    }
                    if c.recovery().is_empty() {
                        assert!(
                            bytes.len() >= original.len(),
                            "{case}: log lost bytes without a report"
                        );
                        tally.unaffected += 1;
                    } else {
                        tally.recovered += 1;
                        tally.lost += lost as usize;
                    }
                }
                Ok(c) => {
                    // Only damage the reader never needs may go unreported: none in these
                    // files.
                    assert!(
                        holds(&c, full),
                        "{case}: opened with wrong contents and no error"
                    );
                    if c.recovery().is_empty() {
                        tally.unaffected += 1;
                    } else {
                        tally.recovered += 1;
                    }
                }
            }
        }
        tallies.push((name.clone(), tally));
    }
    let mut total = Tally::default();
    for (name, t) in &tallies {
        println!(
            "{name:>22}: {} cases, {} clear errors, {} recovered with a report ({} writes lost), {} unaffected",
            t.cases, t.errors, t.recovered, t.lost, t.unaffected
        );
        total.cases += t.cases;
        total.errors += t.errors;
        total.recovered += t.recovered;
        total.unaffected += t.unaffected;
        total.lost += t.lost;
    }
    println!(
        "{:>22}: {} cases, {} clear errors, {} recovered with a report ({} writes lost), {} unaffected",
        "all", total.cases, total.errors, total.recovered, total.lost, total.unaffected
    );
    assert!(total.cases >= 200);
}

/// A collection `root/c` with eight logged writes (no flush) and its log: the path, the bytes and
/// where each record starts (the last entry is the end of the file).
fn eight_writes(root: &Path) -> (Fixture, std::path::PathBuf, Vec<u8>, Vec<usize>) {
    let db = Db::open_with(
        root,
        DbOptions {
            flush_rows: 1000,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let c = db
        .create("c", config(8, Metric::Cosine, "rabitq", Keep::F32))
        .unwrap();
    let dir = root.join("c");
    let mut rng = rng(17);
    let mut fixture = Fixture {
        base: Model::new(),
        log: Vec::new(),
    };
    for step in 0..8u64 {
        let change = if step % 3 == 2 {
            let ids = vec![step - 1, step - 2];
            c.delete(&ids).unwrap();
            Change::Delete(ids)
        } else {
            let points = vec![Point {
                id: step,
                vector: vector(&mut rng, 8),
                payload: payload(step),
            }];
            c.upsert(points.clone()).unwrap();
            Change::Upsert(points)
        };
        fixture.log.push((c.info().last_lsn, change));
    }
    assert_eq!(c.info().last_lsn, 8);
    drop((c, db));
    let path = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .unwrap();
    let bytes = fs::read(&path).unwrap();
    let scan = wal::scan(&bytes, 8).unwrap();
    let mut starts = vec![wal::MAGIC.len()];
    for r in &scan.records {
        starts.push(starts.last().unwrap() + wal::encode(r, 8).len());
    }
    assert_eq!(*starts.last().unwrap(), bytes.len());
    (fixture, path, bytes, starts)
}

#[test]
fn damage_in_the_middle_of_the_log_loses_only_the_damaged_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let (fixture, log, original, at) = eight_writes(&tmp.path().join("db"));
    copy_dir(log.parent().unwrap(), &pristine);
    let log_name = log.file_name().unwrap().to_owned();
    // (what, damage, the first and last lost sequence numbers; records are lsn - 1 in `at`)
    type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Damage<'_>, u64, u64)> = vec![
        (
            "flip a bit in the body of write 3",
            Box::new(|b| b[at[2] + 20] ^= 0x10),
            3,
            3,
        ),
        // A length 2^16 bytes too long: the search for the next record starts one byte after
        // the damaged record, not where its length points.
        (
            "flip a bit in the length of write 4",
            Box::new(|b| b[at[3] + 2] ^= 1),
            4,
            4,
        ),
        (
            "flip a bit in the checksum of write 1",
            Box::new(|b| b[at[0] + 9] ^= 0x80),
            1,
            1,
        ),
        (
            "zero from inside write 5 to inside write 7",
            Box::new(|b| b[at[4] + 3..at[6] + 15].fill(0)),
            5,
            7,
        ),
    ];
    for (what, damage, first, last) in cases {
        let dir = tmp.path().join("case");
        let _ = fs::remove_dir_all(&dir);
        copy_dir(&pristine, &dir);
        let mut bytes = original.clone();
        damage(&mut bytes);
        fs::write(dir.join(&log_name), &bytes).unwrap();

        let c = LiveCollection::open(&dir).unwrap();
        let lost = [LostWrites {
            first_lsn: first,
            last_lsn: last,
        }];
        assert_eq!(c.lost_writes(), lost, "{what}");
        assert_eq!(c.info().last_lsn, 8, "{what}: later writes were cut");
        assert!(
            holds(&c, &fixture.expected(8, &lost)),
            "{what}: wrong contents"
        );
        let report = c.recovery().join("\n");
        let skipped = at[first as usize - 1]..at[last as usize];
        assert!(
            report.contains(&format!("sequence numbers {first}..={last} are lost"))
                && report.contains(&format!("at offsets {}..{}", skipped.start, skipped.end)),
            "{what}: {report}"
        );
        // The log was rewritten without the damaged bytes and every record after them.
        let clean = fs::read(dir.join(&log_name)).unwrap();
        let scan = wal::scan(&clean, 8).unwrap();
        assert!(scan.skipped.is_empty() && scan.stopped.is_none(), "{what}");
        assert_eq!(clean.len(), original.len() - skipped.len(), "{what}");
        drop(c);

        // Reopened, the loss is still reported (from the jump in sequence numbers) until a flush
        // starts a new log,
        // and writing goes on from the last sequence number.
        let c = LiveCollection::open(&dir).unwrap();
        assert_eq!(c.lost_writes(), lost, "{what}: reopened");
        assert!(
            c.recovery()[0].contains("opened before"),
            "{what}: {:?}",
            c.recovery()
        );
        let p = Point {
            id: 100,
            vector: vec![0.5; 8],
            payload: payload(100),
        };
        assert_eq!(c.upsert(vec![p.clone()]).unwrap(), 9);
        drop(c);
        let c = LiveCollection::open(&dir).unwrap();
        let mut model = fixture.expected(8, &lost);
        Change::Upsert(vec![p]).apply(&mut model);
        assert!(holds(&c, &model), "{what}: the write after recovery");
        c.checkpoint().unwrap();
        drop(c);
        let c = LiveCollection::open(&dir).unwrap();
        assert!(
            c.lost_writes().is_empty() && c.recovery().is_empty(),
            "{what}: after a checkpoint"
        );
        assert!(holds(&c, &model), "{what}: after a checkpoint");
    }
}

#[test]
fn a_torn_tail_is_still_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (fixture, log, original, at) = eight_writes(tmp.path());
    let dir = log.parent().unwrap();
    for (what, bytes) in [
        ("cut inside write 8", original[..at[7] + 10].to_vec()),
        ("flip a bit in write 8", {
            let mut b = original.clone();
            b[at[7] + 20] ^= 4;
            b
        }),
    ] {
        fs::write(&log, &bytes).unwrap();
        let c = LiveCollection::open(dir).unwrap();
        assert!(c.lost_writes().is_empty(), "{what}");
        assert_eq!(c.info().last_lsn, 7, "{what}");
        assert!(holds(&c, &fixture.expected(7, &[])), "{what}");
        assert!(c.recovery()[0].contains(&format!("cut {} bytes", bytes.len() - at[7])));
        assert_eq!(fs::metadata(&log).unwrap().len(), at[7] as u64, "{what}");
    }
}
