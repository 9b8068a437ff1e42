//! History test: four clients upsert, delete, read and search one collection of `bitseek serve`
//! at once while the server is SIGKILLed and restarted on the same data at seeded random moments.
//! Every operation is recorded (client, invoke and complete time, outcome: answered, or unknown
//! because the server died with it in flight) and the whole history is checked at the end.
//!
//! Every written point carries a unique payload `{"w": n}` and a vector derived from `n`, so a
//! read names the one write it saw. Operations overlap, so the checker does not pick one order:
//! for a read of id `x` over `[invoke, complete]`, write `W` of `x` is *possible* unless it was
//! invoked after the read completed, or an acknowledged write of `x` invoked after `W` ended was
//! itself acknowledged before the read was invoked. A write with an unknown outcome "ends" when
//! its server is dead (it may or may not have been applied, but not later). The initial state is
//! an acknowledged "not found" at time 0. Checked:
//!
//! 1. every get returns a possible value of its id (404 counts as the value "deleted");
//! 2. hence a delete acknowledged before a read began, with no possible later write, reads 404;
//! 3. after every restart, before clients can reach the new server, and at the end, every id's
//!    state is possible, and an unknown-outcome upsert seen applied for one id was applied to
//!    all of its ids (none shows a value written wholly before it); each such quiescent state
//!    then counts as an acknowledged write of every id, so a write it showed as not applied
//!    cannot appear later;
//! 4. every search hit names a possible value of its id, with the score of that value's vector;
//!    the quiescent searches (cosine, `keep: f32`, every row rescored) equal brute force over the
//!    quiescent state, hit for hit up to score ties.
//!
//! Not checked: a single order of all operations (this is not a linearizability checker: two
//! reads may disagree on the order of two concurrent writes), the atomicity of unknown-outcome
//! deletes (a 404 does not name a write), and completeness of searches with writes in flight.
//!
//! CI runs 4 kills; the long run is
//! `BITSEEK_HISTORY_KILLS=60 cargo test --release -p bitseek --test history -- --nocapture`
//! (`BITSEEK_HISTORY_SEED` picks another sequence, `BITSEEK_HISTORY_DURABILITY=grouped` tests
//! grouped commits).

#[path = "common/server.rs"]
mod server;

use serde_json::{json, Value};
use server::{env, exchange, http, start, Rng};
use std::collections::{BTreeMap, HashSet};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIM: usize = 8;
/// Few ids, so that clients keep writing over each other.
const IDS: u64 = 40;
const CLIENTS: usize = 4;
const K: usize = 10;
const NAME: &str = "history";

/// The vector written with the unique value `w`.
fn vector(w: u64) -> Vec<f32> {
    let mut r = Rng::seed_from_u64(w.wrapping_mul(0x2545_f491_4f6c_dd1d));
    (0..DIM).map(|_| r.unit()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[derive(Clone, Debug)]
enum Kind {
    /// (id, w) pairs, distinct ids.
    Upsert(Vec<(u64, u64)>),
    Delete(Vec<u64>),
    Compact,
    Get(u64),
    Search(Vec<f32>),
}

#[derive(Clone, Debug)]
enum Outcome {
    /// 200, or 404 for a get.
    Answered(u16, Value),
    /// Any other status: not expected, counted, and a write is then treated as unknown.
    Status(u16, Value),
    /// Sent, but no answer: the server died (or the connection broke) with it in flight.
    Unknown(String),
}

#[derive(Debug)]
struct Op {
    client: usize,
    port: u16,
    kind: Kind,
    /// Nanoseconds since the test began, plus one (0 is the initial state).
    invoke: u64,
    complete: u64,
    outcome: Outcome,
}

struct Hit {
    id: u64,
    score: f32,
    w: Option<u64>,
}

/// A check with no other request in flight: after a restart, before clients learn the new port,
/// and at the end, after they stopped.
struct Quiet {
    label: String,
    start: u64,
    end: u64,
    /// id → w, or None when not found.
    state: BTreeMap<u64, Option<u64>>,
    searches: Vec<(Vec<f32>, Vec<Hit>)>,
}

struct Shared {
    t0: Instant,
    /// The live server's port; 0 while it is down.
    port: AtomicU16,
    stop: AtomicBool,
}

impl Shared {
    fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64 + 1
    }
}

fn request(kind: &Kind) -> (&'static str, String, Option<Value>) {
    let points = format!("/collections/{NAME}/points");
    match kind {
        Kind::Upsert(p) => {
            let points_json: Vec<Value> = p
                .iter()
                .map(|&(id, w)| json!({"id": id, "vector": vector(w), "payload": {"w": w}}))
                .collect();
            ("PUT", points, Some(json!({ "points": points_json })))
        }
        Kind::Delete(ids) => (
            "POST",
            format!("{points}/delete"),
            Some(json!({ "ids": ids })),
        ),
        Kind::Compact => ("POST", format!("/collections/{NAME}/compact"), None),
        Kind::Get(id) => ("GET", format!("{points}/{id}"), None),
        Kind::Search(q) => (
            "POST",
            format!("/collections/{NAME}/search"),
            Some(json!({"vector": q, "k": K, "oversample": 100})),
        ),
    }
}

/// `n` distinct ids.
fn ids(rng: &mut Rng, n: u64) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n as usize {
        let id = rng.gen_range(0..IDS);
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn query(rng: &mut Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.unit()).collect()
}

/// One client: a random mix of operations until told to stop; a refused connection (the server
/// is down, nothing was sent) is retried until the server is back.
fn client(me: usize, seed: u64, shared: Arc<Shared>) -> Vec<Op> {
    let mut rng = Rng::seed_from_u64(seed ^ (me as u64 + 1).wrapping_mul(0x9e37_79b9));
    let mut next_w = me as u64 * 1_000_000_000 + 1;
    let mut ops = Vec::new();
    'ops: while !shared.stop.load(Ordering::SeqCst) {
        let kind = match rng.gen_range(0..100) {
            0..=34 => {
                let n = rng.gen_range(1..4);
                Kind::Upsert(
                    ids(&mut rng, n)
                        .into_iter()
                        .map(|id| {
                            next_w += 1;
                            (id, next_w)
                        })
                        .collect(),
                )
            }
            35..=49 => {
                let n = rng.gen_range(1..3);
                Kind::Delete(ids(&mut rng, n))
            }
            50..=77 => Kind::Get(rng.gen_range(0..IDS)),
            78..=97 => Kind::Search(query(&mut rng)),
            _ => Kind::Compact,
        };
        let (method, path, body) = request(&kind);
        loop {
            let port = shared.port.load(Ordering::SeqCst);
            let invoke = shared.now();
            let stream = match port {
                0 => None,
                _ => TcpStream::connect(("127.0.0.1", port)).ok(),
            };
            let Some(stream) = stream else {
                if shared.stop.load(Ordering::SeqCst) {
                    break 'ops;
                }
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            let result = exchange(stream, method, &path, body.as_ref());
            let complete = shared.now();
            let outcome = match result {
                Ok((s, v)) if s == 200 || (s == 404 && matches!(kind, Kind::Get(_))) => {
                    Outcome::Answered(s, v)
                }
                Ok((s, v)) => Outcome::Status(s, v),
                Err(e) => Outcome::Unknown(e.to_string()),
            };
            ops.push(Op {
                client: me,
                port,
                kind,
                invoke,
                complete,
                outcome,
            });
            break;
        }
    }
    ops
}

fn payload_w(v: &Value) -> Option<u64> {
    v["payload"]["w"].as_u64()
}

fn create(port: u16) {
    server::create(port, NAME, DIM, "cosine", "BITSEEK_HISTORY_DURABILITY");
}

fn hits(body: &Value) -> Vec<Hit> {
    body["hits"]
        .as_array()
        .expect("a search answers hits")
        .iter()
        .map(|h| Hit {
            id: h["id"].as_u64().unwrap(),
            score: h["score"].as_f64().unwrap() as f32,
            w: payload_w(h),
        })
        .collect()
}

/// Reads every id and runs three searches, with no client able to reach `port`.
fn quiet_check(port: u16, shared: &Shared, rng: &mut Rng, label: String) -> Quiet {
    let start = shared.now();
    let mut state = BTreeMap::new();
    for id in 0..IDS {
        let path = format!("/collections/{NAME}/points/{id}");
        let (status, body) = http(port, "GET", &path, None).expect("the server answers");
        let w = match status {
            200 => Some(payload_w(&body).unwrap_or(0)),
            404 => None,
            s => panic!("{label}: GET {id}: {s} {body}"),
        };
        state.insert(id, w);
    }
    let searches = (0..3)
        .map(|_| {
            let q = query(rng);
            let (_, path, body) = request(&Kind::Search(q.clone()));
            let (status, answer) =
                http(port, "POST", &path, body.as_ref()).expect("the server answers");
            assert_eq!(status, 200, "{label}: search: {answer}");
            (q, hits(&answer))
        })
        .collect();
    Quiet {
        label,
        start,
        end: shared.now(),
        state,
        searches,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Source {
    Initial,
    Op(usize),
    Quiet(usize),
}

/// A write of one id, as the checker sees it.
struct Write {
    source: Source,
    invoke: u64,
    /// When it was acknowledged, or, when its outcome is unknown, when its server was dead.
    end: u64,
    acked: bool,
    value: Option<u64>,
}

/// The values a read of one id over `[invoke, complete]` may return (see the module doc).
fn possible(
    writes: &[Write],
    invoke: u64,
    complete: u64,
    skip: Option<Source>,
) -> Vec<Option<u64>> {
    let floor = writes
        .iter()
        .filter(|w| Some(w.source) != skip && w.acked && w.end < invoke)
        .map(|w| w.invoke)
        .max()
        .unwrap_or(0);
    writes
        .iter()
        .filter(|w| Some(w.source) != skip && w.invoke < complete && w.end >= floor)
        .map(|w| w.value)
        .collect()
}

#[derive(Default)]
struct Verdict {
    /// Observations that missed an acknowledged write (a stale or resurrected value).
    lost: usize,
    /// Observations of a value never written, a vector or score not that value's, a torn
    /// multi-point write, or a quiescent search unequal to brute force.
    wrong: usize,
    /// Reads, search hits and quiescent ids checked.
    observations: usize,
    /// Upserts left without an answer, and those of them a quiescent check showed applied.
    in_flight: usize,
    in_flight_applied: usize,
    messages: Vec<String>,
}

impl Verdict {
    fn fail(&mut self, lost: bool, msg: String) {
        if lost {
            self.lost += 1;
        } else {
            self.wrong += 1;
        }
        if self.messages.len() < 12 {
            self.messages.push(msg);
        }
    }
}

struct Checker {
    /// id → its writes.
    writes: BTreeMap<u64, Vec<Write>>,
    /// Every w ever sent, acknowledged or not.
    sent: HashSet<u64>,
    verdict: Verdict,
}

impl Checker {
    fn observe(
        &mut self,
        id: u64,
        got: Option<u64>,
        invoke: u64,
        complete: u64,
        skip: Option<Source>,
    ) {
        self.verdict.observations += 1;
        let writes = &self.writes[&id];
        let ok = possible(writes, invoke, complete, skip);
        if ok.contains(&got) {
            return;
        }
        let never = got.is_some_and(|w| !self.sent.contains(&w));
        let what = if never {
            "a value never written"
        } else {
            "a value an acknowledged write had replaced"
        };
        self.verdict.fail(
            !never,
            format!(
                "id {id} read {got:?} over [{invoke}, {complete}] ns: {what}; possible: {ok:?}"
            ),
        );
    }
}

fn check(ops: &[Op], quiet: &[Quiet], deaths: &BTreeMap<u16, u64>) -> Verdict {
    let mut writes: BTreeMap<u64, Vec<Write>> = (0..IDS)
        .map(|id| {
            let initial = Write {
                source: Source::Initial,
                invoke: 0,
                end: 0,
                acked: true,
                value: None,
            };
            (id, vec![initial])
        })
        .collect();
    let mut sent = HashSet::new();
    for (i, op) in ops.iter().enumerate() {
        let points: Vec<(u64, Option<u64>)> = match &op.kind {
            Kind::Upsert(p) => p.iter().map(|&(id, w)| (id, Some(w))).collect(),
            Kind::Delete(ids) => ids.iter().map(|&id| (id, None)).collect(),
            _ => continue,
        };
        let acked = matches!(op.outcome, Outcome::Answered(..));
        let end = match acked {
            true => op.complete,
            false => deaths.get(&op.port).copied().unwrap_or(u64::MAX),
        };
        for (id, value) in points {
            sent.extend(value);
            writes.get_mut(&id).unwrap().push(Write {
                source: Source::Op(i),
                invoke: op.invoke,
                end,
                acked,
                value,
            });
        }
    }
    for (qi, q) in quiet.iter().enumerate() {
        for (&id, &value) in &q.state {
            writes.get_mut(&id).unwrap().push(Write {
                source: Source::Quiet(qi),
                invoke: q.start,
                end: q.end,
                acked: true,
                value,
            });
        }
    }
    let mut c = Checker {
        writes,
        sent,
        verdict: Verdict::default(),
    };
    for op in ops {
        let Outcome::Answered(status, body) = &op.outcome else {
            continue;
        };
        match &op.kind {
            Kind::Get(id) => {
                let got = (*status == 200).then(|| payload_w(body).unwrap_or(0));
                if let Some(w) = got {
                    let stored: Vec<f32> =
                        serde_json::from_value(body["vector"].clone()).unwrap_or_default();
                    if stored.len() != DIM || cosine(&stored, &vector(w)) < 1.0 - 1e-6 {
                        c.verdict
                            .fail(false, format!("id {id}: vector is not w {w}'s: {stored:?}"));
                    }
                }
                c.observe(*id, got, op.invoke, op.complete, None);
            }
            Kind::Search(q) => {
                for h in hits(body) {
                    check_score(&mut c.verdict, q, &h);
                    c.observe(h.id, h.w, op.invoke, op.complete, None);
                }
            }
            _ => {}
        }
    }
    let shown: HashSet<u64> = quiet
        .iter()
        .flat_map(|q| q.state.values().flatten().copied())
        .collect();
    for op in ops {
        if let (Kind::Upsert(p), Outcome::Unknown(_)) = (&op.kind, &op.outcome) {
            c.verdict.in_flight += 1;
            if p.iter().any(|(_, w)| shown.contains(w)) {
                c.verdict.in_flight_applied += 1;
            }
        }
    }
    let mut previous_end = 0;
    for (qi, q) in quiet.iter().enumerate() {
        for (&id, &got) in &q.state {
            c.observe(id, got, q.start, q.end, Some(Source::Quiet(qi)));
        }
        torn(&mut c.verdict, ops, q, previous_end);
        for (query, got) in &q.searches {
            brute_force(&mut c.verdict, q, query, got);
        }
        previous_end = q.end;
    }
    c.verdict
}

/// A hit's score must be that of the vector written with its `w`.
fn check_score(v: &mut Verdict, q: &[f32], h: &Hit) {
    let want = h.w.map(|w| cosine(q, &vector(w)));
    if !want.is_some_and(|s| (s - h.score as f64).abs() < 1e-4) {
        v.fail(
            false,
            format!("hit {} (w {:?}): score {} != {want:?}", h.id, h.w, h.score),
        );
    }
}

/// An unknown-outcome upsert since the previous quiescent check that shows for one id must not
/// show an older value for another.
fn torn(v: &mut Verdict, ops: &[Op], q: &Quiet, previous_end: u64) {
    for op in ops {
        let (Kind::Upsert(points), false) = (&op.kind, matches!(op.outcome, Outcome::Answered(..)))
        else {
            continue;
        };
        if op.invoke < previous_end || op.invoke > q.start {
            continue;
        }
        if !points.iter().any(|&(id, w)| q.state[&id] == Some(w)) {
            continue;
        }
        for &(id, w) in points {
            let got = q.state[&id];
            if got == Some(w) {
                continue;
            }
            // Some write of `id` not wholly before this one must explain what is there.
            let explained = ops.iter().any(|o| {
                let end = match o.outcome {
                    Outcome::Answered(..) => o.complete,
                    _ => u64::MAX,
                };
                end >= op.invoke
                    && o.invoke < q.end
                    && match &o.kind {
                        Kind::Upsert(p) => got.is_some_and(|g| p.contains(&(id, g))),
                        Kind::Delete(ids) => got.is_none() && ids.contains(&id),
                        _ => false,
                    }
            });
            if !explained {
                v.fail(
                    false,
                    format!(
                        "{}: the upsert {points:?} in flight at the kill is applied for some ids \
                         but id {id} shows {got:?}, written before it",
                        q.label
                    ),
                );
            }
        }
    }
}

/// A quiescent search must equal brute force over the quiescent state, up to score ties.
fn brute_force(v: &mut Verdict, q: &Quiet, query: &[f32], got: &[Hit]) {
    let mut want: Vec<(u64, f64)> = q
        .state
        .iter()
        .filter_map(|(&id, &w)| w.map(|w| (id, cosine(query, &vector(w)))))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    want.truncate(K);
    let same = got.len() == want.len()
        && got.iter().zip(&want).all(|(h, (_, s))| {
            (h.score as f64 - s).abs() < 1e-4 && h.w.is_some() && q.state[&h.id] == h.w
        });
    if !same {
        let got: Vec<_> = got.iter().map(|h| (h.id, h.score)).collect();
        v.fail(
            false,
            format!("{}: search {got:?}, brute force {want:?}", q.label),
        );
    }
}

#[test]
fn concurrent_history_survives_sigkill() {
    let kills = env("BITSEEK_HISTORY_KILLS", 4);
    let seed = env("BITSEEK_HISTORY_SEED", 20261127);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = Rng::seed_from_u64(seed);
    let (mut child, mut port) = start(&data, &[]);
    create(port);
    let mut used = vec![port];
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        port: AtomicU16::new(port),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let shared = shared.clone();
            std::thread::spawn(move || client(me, seed, shared))
        })
        .collect();
    // This thread is the killer.
    let mut deaths = BTreeMap::new();
    let mut quiet = Vec::new();
    for kill in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..2500)));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        child.wait().unwrap();
        shared.port.store(0, Ordering::SeqCst);
        deaths.insert(port, shared.now());
        (child, port) = start(&data, &used);
        used.push(port);
        quiet.push(quiet_check(
            port,
            &shared,
            &mut rng,
            format!("after kill {kill}"),
        ));
        shared.port.store(port, Ordering::SeqCst);
    }
    std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
    shared.stop.store(true, Ordering::SeqCst);
    let mut ops: Vec<Op> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    ops.sort_by_key(|o| (o.invoke, o.client));
    quiet.push(quiet_check(port, &shared, &mut rng, "at the end".into()));
    let _ = child.kill();
    let _ = child.wait();

    let verdict = check(&ops, &quiet, &deaths);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for op in &ops {
        let kind = match op.kind {
            Kind::Upsert(_) => "upsert",
            Kind::Delete(_) => "delete",
            Kind::Compact => "compact",
            Kind::Get(_) => "get",
            Kind::Search(_) => "search",
        };
        let outcome = match &op.outcome {
            Outcome::Answered(404, _) => "not found",
            Outcome::Answered(..) => "ok",
            Outcome::Status(..) => "error status",
            Outcome::Unknown(_) => "unknown",
        };
        *counts.entry(format!("{kind} {outcome}")).or_default() += 1;
        // Only a kill may leave an operation without an answer, and no request should fail.
        let killed = deaths.contains_key(&op.port);
        match &op.outcome {
            Outcome::Status(s, body) => {
                unexpected.push(format!("{:?} answered {s}: {body}", op.kind));
            }
            Outcome::Unknown(e) if !killed => {
                unexpected.push(format!(
                    "{:?} got no answer from a live server: {e}",
                    op.kind
                ));
            }
            _ => {}
        }
    }
    let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "history test ({}): {CLIENTS} clients, {kills} SIGKILLs (seed {seed}) in {:.1} s; {} \
         operations ({}); {} quiescent checks ({} searches against brute force); {} reads, hits \
         and states checked; upserts in flight at a kill: {}, {} found applied, none torn; \
         acknowledged writes lost: {}, wrong reads: {}",
        std::env::var("BITSEEK_HISTORY_DURABILITY").unwrap_or_else(|_| "fsync".into()),
        shared.t0.elapsed().as_secs_f64(),
        ops.len(),
        counts.join(", "),
        quiet.len(),
        quiet.iter().map(|q| q.searches.len()).sum::<usize>(),
        verdict.observations,
        verdict.in_flight,
        verdict.in_flight_applied,
        verdict.lost,
        verdict.wrong,
    );
    assert!(
        unexpected.is_empty(),
        "requests failed with the server up: {unexpected:#?}"
    );
    assert!(
        verdict.lost == 0 && verdict.wrong == 0,
        "history check failed:\n{}",
        verdict.messages.join("\n")
    );
    assert!(
        ops.iter().any(|o| matches!(o.kind, Kind::Get(_))) && verdict.observations > quiet.len(),
        "the clients ran no checked reads"
    );
}

/// The checker on hand-made histories: each bad one is caught as what it is, and the good ones
/// (overlapping writes, an unknown write applied or not) pass.
#[test]
fn checker_flags_bad_histories() {
    let op = |kind: Kind, invoke: u64, complete: u64, outcome: Outcome| Op {
        client: 0,
        port: 1,
        kind,
        invoke,
        complete,
        outcome,
    };
    let ok = || Outcome::Answered(200, Value::Null);
    let unknown = || Outcome::Unknown("killed".into());
    let found = |w: u64| Outcome::Answered(200, json!({"vector": vector(w), "payload": {"w": w}}));
    let missing = || Outcome::Answered(404, Value::Null);
    let put = |w: u64, a: u64, b: u64| op(Kind::Upsert(vec![(0, w)]), a, b, ok());
    let get = |a: u64, b: u64, outcome: Outcome| op(Kind::Get(0), a, b, outcome);
    let quiet = |start: u64, set: &[(u64, u64)]| Quiet {
        label: "quiet".into(),
        start,
        end: start + 10,
        state: (0..IDS)
            .map(|id| (id, set.iter().find(|p| p.0 == id).map(|p| p.1)))
            .collect(),
        searches: Vec::new(),
    };
    let deaths: BTreeMap<u16, u64> = [(1, 100)].into();
    let run = |ops: Vec<Op>, quiet: Vec<Quiet>| {
        let v = check(&ops, &quiet, &deaths);
        (v.lost, v.wrong)
    };
    // An acknowledged write, then a read that does not see it.
    assert_eq!(
        run(vec![put(5, 10, 20), get(30, 40, missing())], vec![]),
        (1, 0)
    );
    // A value nobody wrote.
    assert_eq!(
        run(vec![put(5, 10, 20), get(30, 40, found(9))], vec![]),
        (0, 1)
    );
    // A delete acknowledged before the read, and the deleted value comes back.
    let delete = op(Kind::Delete(vec![0]), 30, 40, ok());
    assert_eq!(
        run(vec![put(5, 10, 20), delete, get(50, 60, found(5))], vec![]),
        (1, 0)
    );
    // A read overlapping the write may see either side; one overlapping a newer write may see
    // the older value.
    for got in [missing(), found(5)] {
        assert_eq!(run(vec![put(5, 10, 20), get(15, 25, got)], vec![]), (0, 0));
    }
    assert_eq!(
        run(
            vec![put(5, 10, 20), put(6, 30, 50), get(40, 45, found(5))],
            vec![]
        ),
        (0, 0)
    );
    // An upsert in flight at the kill (port 1 died at 100) may be there or not after the
    // restart, but once a quiescent check showed it absent it must stay absent.
    let in_flight = || op(Kind::Upsert(vec![(0, 5), (1, 6)]), 90, 95, unknown());
    assert_eq!(
        run(vec![in_flight()], vec![quiet(200, &[(0, 5), (1, 6)])]),
        (0, 0)
    );
    assert_eq!(run(vec![in_flight()], vec![quiet(200, &[])]), (0, 0));
    assert_eq!(
        run(
            vec![in_flight(), get(400, 500, found(5))],
            vec![quiet(200, &[])]
        ),
        (1, 0)
    );
    // ... and it is applied whole: id 0 shows it, id 1 the state from before it.
    assert_eq!(run(vec![in_flight()], vec![quiet(200, &[(0, 5)])]), (0, 1));
    // An acknowledged write missing after the restart.
    assert_eq!(run(vec![put(5, 10, 20)], vec![quiet(200, &[])]), (1, 0));
    // A quiescent search that misses a live point, and a hit whose score is not its vector's.
    let mut q = quiet(200, &[(0, 5)]);
    q.searches.push((vector(7), Vec::new()));
    assert_eq!(run(vec![put(5, 10, 20)], vec![q]), (0, 1));
    let hit = json!({"hits": [{"id": 0, "score": 0.5, "payload": {"w": 5}}]});
    let search = op(Kind::Search(vector(7)), 30, 40, Outcome::Answered(200, hit));
    assert_eq!(run(vec![put(5, 10, 20), search], vec![]), (0, 1));
}
