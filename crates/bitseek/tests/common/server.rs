//! Helpers shared by the tests that run `bitseek serve` and kill it: a seeded generator, raw
//! HTTP/1.1 over 127.0.0.1 (no client dependency, and a request's fate is visible: not sent,
//! sent with no answer, or answered), and starting the server on a fresh port.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// splitmix64: a seeded generator small enough to keep this test free of dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn seed_from_u64(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `range` (the modulo bias is irrelevant here).
    pub fn gen_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next_u64() % (range.end - range.start)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// One HTTP/1.1 request on a fresh connection; `Err` when the server is gone mid-way.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    exchange(TcpStream::connect(("127.0.0.1", port))?, method, path, body)
}

/// One request on a connected stream: when this fails, the request may have been delivered
/// (a connect that fails delivers nothing, which is why callers that care connect first).
pub fn exchange(
    mut s: TcpStream,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("response cut short"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).map_err(|e| std::io::Error::other(format!("{e}: {body}")))?
    };
    Ok((status, value))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A free port not in `avoid`: a client still holding an old port must be refused, never
/// reach a newer server.
fn free_port(avoid: &[u16]) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !avoid.contains(&port) {
            return port;
        }
    }
}

/// Starts `bitseek serve` on `data` at a port not in `avoid` and waits until it answers.
pub fn start(data: &Path, avoid: &[u16]) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port(avoid);
        let mut child = Command::new(env!("CARGO_BIN_EXE_bitseek"))
            .args(["serve", "--data"])
            .arg(data)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .env("BITSEEK_FLUSH_ROWS", "40")
            .env_remove("BITSEEK_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bitseek serve starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(port, "GET", "/health", None) {
                return (child, port);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("bitseek serve exited with {status} before answering");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("bitseek serve did not come up");
}

/// `VAR=grouped` runs a test with grouped commits (5 ms window); otherwise every write is fsynced.
pub fn durability(var: &str) -> Value {
    match std::env::var(var).as_deref() {
        Ok("grouped") => json!({"mode": "grouped", "window_ms": 5}),
        _ => json!({"mode": "fsync"}),
    }
}

/// Creates collection `name` (rabitq codes, an f32 copy for exact rescoring) with the durability
/// `durability_var` asks for; an existing one (after a restart) is fine.
pub fn create(port: u16, name: &str, dim: usize, metric: &str, durability_var: &str) {
    let (status, body) = http(
        port,
        "PUT",
        &format!("/collections/{name}"),
        Some(
            &json!({"dim": dim, "metric": metric, "quantizer": "rabitq", "keep": "f32",
                     "durability": durability(durability_var)}),
        ),
    )
    .unwrap();
    assert!(
        status == 200 || status == 201,
        "create {name}: {status} {body}"
    );
}

/// The whole number in environment variable `name`, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
