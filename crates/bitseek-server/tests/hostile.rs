//! Slow and hostile clients over a real listener on 127.0.0.1: a header sent a byte at a time, a
//! body that never finishes, connections left idle, more connections than the server allows, and
//! hundreds of stalled connections while another client searches.
//!
//! Time limits are short here so that the file runs in seconds; every bound asserted is generous
//! (several times the limit), and latency is compared with a baseline measured in the same test.

mod common;

use bitseek_server::{Limits, Options};
use common::{state, with_points};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEARCH: &str = r#"{"vector": [1, 0, 0, 0], "k": 3}"#;

/// A server with `limits` on a fresh collection `c` of 50 points, until the guard is dropped.
struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(limits: Limits) -> Server {
    let (dir, s) = state(Options {
        limits,
        ..Options::default()
    });
    with_points(&s, 50).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bitseek_server::serve_on(listener, s, async move {
        let _ = stop_rx.await;
    }));
    Server {
        addr,
        _dir: dir,
        _stop: stop,
    }
}

fn search_request() -> String {
    format!(
        "POST /collections/c/search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{SEARCH}",
        SEARCH.len()
    )
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";

/// Reads one response: its status and body. `None` when the server closed the connection (or
/// reset it) before sending anything.
async fn response(s: &mut (impl AsyncRead + Unpin)) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return None,
            Ok(0) | Err(_) => panic!("connection closed mid-response: {buf:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned(),
    ))
}

/// Waits (at most `limit`) for the server to close `s`; returns how long that took, or `None` if
/// it stayed open. Bytes the server sends first (an error response) are skipped.
async fn closed_within(s: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One search on a fresh connection: its latency, after checking it answered with hits.
async fn timed_search(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(search_request().as_bytes()).await.unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), response(&mut s))
        .await
        .expect("a search took more than 10 s")
        .expect("the server closed a search's connection");
    let took = start.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hits\""), "{body}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

/// A client that starts a header and then sends a byte every 50 ms is cut off after the header
/// time limit, counted from its first byte, not allowed to go on for the idle limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_header_is_cut_off() {
    let server = start(limits(|l| {
        l.header_timeout = Duration::from_millis(300);
        l.idle_timeout = Duration::from_secs(20);
    }))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    let start = Instant::now();
    let (mut rd, wr) = s.into_split();
    let dribble = dribble(wr, b"a");
    let mut chunk = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut chunk)).await;
    let took = start.elapsed();
    dribble.abort();
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("expected a closed connection, got {:?}", &chunk[..n]),
        Err(_) => panic!("a dribbled header kept its connection open for 5 s"),
    }
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "closed after {took:?} with a header limit of 300 ms"
    );
}

/// Writes `byte` every 50 ms (200 times at most) until the server closes the connection: a client
/// that never finishes what it started sending.
fn dribble(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    byte: &'static [u8],
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if wr.write_all(byte).await.is_err() {
                return;
            }
        }
    })
}

/// A client that sends its head and then dribbles the body gets 408 in the usual error shape once
/// the body time limit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_gets_408() {
    let server = start(limits(|l| l.body_timeout = Duration::from_millis(300))).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /collections/c/search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let (mut rd, wr) = s.into_split();
    let dribble = dribble(wr, b" ");
    let answer = tokio::time::timeout(Duration::from_secs(5), response(&mut rd)).await;
    let took = start.elapsed();
    dribble.abort();
    let (status, body) = answer
        .expect("a dribbled body kept its request open for 5 s")
        .expect("the connection closed without an answer");
    assert_eq!(status, 408, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout", "{body}");
    assert_eq!(json["error"]["limit"]["name"], "body_timeout", "{body}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "answered after {took:?} with a body limit of 300 ms"
    );
}

/// A kept-alive connection is closed once idle for the idle limit; a client that connects and
/// says nothing for longer than the header limit (but less than the idle one) is still served,
/// because the header clock starts at the first byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_is_closed() {
    let server = start(limits(|l| {
        l.header_timeout = Duration::from_millis(200);
        l.idle_timeout = Duration::from_millis(1000);
    }))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(HEALTH.as_bytes()).await.unwrap();
    let (status, body) = response(&mut s).await.expect("closed before the request");
    assert_eq!(status, 200, "{body}");
    // Within the idle limit the connection is reused…
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(HEALTH.as_bytes()).await.unwrap();
    let (status, body) = response(&mut s).await.expect("closed while kept alive");
    assert_eq!(status, 200, "{body}");
    // …and past it, closed.
    let took = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("an idle connection stayed open for 5 s");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "closed after {took:?} idle with an idle limit of 1 s"
    );
}

/// With room for 4 connections, 4 held open and 3 more asking: the 3 wait (unanswered, not
/// refused) and are served as soon as the 4 close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_for_a_slot() {
    let server = start(limits(|l| l.max_connections = 4)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(HEALTH.as_bytes()).await.unwrap();
        let (status, _) = response(&mut s)
            .await
            .expect("a held connection was closed");
        assert_eq!(status, 200);
        held.push(s);
    }
    let mut waiting = Vec::new();
    for _ in 0..3 {
        // The kernel completes the handshake from its backlog; the server does not accept yet.
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(search_request().as_bytes()).await.unwrap();
        waiting.push(s);
    }
    for s in &mut waiting {
        let early = tokio::time::timeout(Duration::from_millis(300), response(s)).await;
        assert!(
            early.is_err(),
            "answered over the connection limit: {early:?}"
        );
    }
    drop(held);
    for s in &mut waiting {
        let (status, body) = tokio::time::timeout(Duration::from_secs(5), response(s))
            .await
            .expect("not served within 5 s of slots freeing")
            .expect("closed instead of served");
        assert_eq!(status, 200, "{body}");
    }
    timed_search(server.addr).await;
}

/// The headline: 300 connections hold a half-sent header open (a byte every 500 ms, well inside
/// the default 10 s header limit) while another client makes 50 searches, each on a new
/// connection. Every search answers, with a median latency within 5× (+20 ms) of the median of
/// 50 searches made before the attack, and the slow connections are all still open at the end
/// (the server neither starved the searcher nor dropped the slow clients early).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_keep_their_latency_under_300_slow_connections() {
    const SLOW: usize = 300;
    const SEARCHES: usize = 50;
    let server = start(Limits::default()).await;
    for _ in 0..5 {
        timed_search(server.addr).await;
    }
    let mut before = Vec::new();
    for _ in 0..SEARCHES {
        before.push(timed_search(server.addr).await);
    }

    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"POST /collections/c/search HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribbler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            // Bounded: at most 40 rounds of 500 ms.
            for _ in 0..40 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                for s in &mut slow {
                    let _ = s.write_all(b"a").await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            slow
        })
    };
    let mut during = Vec::new();
    for _ in 0..SEARCHES {
        during.push(timed_search(server.addr).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slow = dribbler.await.unwrap();

    let mut open = 0;
    let mut chunk = [0u8; 64];
    for s in &slow {
        if matches!(s.try_read(&mut chunk), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            open += 1;
        }
    }
    let (b, d) = (median(before), median(during));
    eprintln!(
        "median search latency: {b:?} before, {d:?} with {SLOW} slow connections ({open} still open)"
    );
    assert_eq!(
        open, SLOW,
        "the server closed slow connections before their header limit"
    );
    assert!(
        d <= b * 5 + Duration::from_millis(20),
        "median search latency {d:?} under {SLOW} slow connections, {b:?} before"
    );
}
