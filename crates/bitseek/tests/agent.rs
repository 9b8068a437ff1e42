//! The commands agents run beside them. `bitseek index --watch` as a process: one JSON line per
//! update as files change. `bitseek mcp` spoken to in raw JSON-RPC 2.0 over its stdin/stdout, one
//! message per line, the way an MCP client launches it: the initialize handshake, tools/list, the `search` and `index`
//! tools, and the errors an agent must be able to read (no index, no model, bad arguments) as
//! tool errors while the server keeps running. A tiny random model stands in for the real one
//! (python/tests/test_mcp.py drives the server with the official Python SDK and the real model).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `bitseek mcp` and the lines it writes.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl Server {
    fn start(dir: &Path, model: &Path) -> Server {
        Server::start_with(dir, model, &[])
    }

    /// [`Server::start`] with extra environment variables.
    fn start_with(dir: &Path, model: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bitseek"))
            .envs(env.iter().copied())
            .args(["mcp", "--dir"])
            .arg(dir)
            .arg("--model-dir")
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bitseek mcp");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 1,
        }
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request and returns its response (skipping notifications the server sends).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no response to {method} within 60 s"));
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "{v}");
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
            assert!(v.get("id").is_none(), "a response to another request: {v}");
        }
    }

    /// Calls a tool; returns its result (`isError`, `content`, `structuredContent`).
    fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        assert!(
            r.get("error").is_none(),
            "a protocol error, not a tool result: {r}"
        );
        r["result"].clone()
    }

    fn initialize(&mut self) -> Value {
        let r = self.request(
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"}
            }),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    /// Closes stdin (the client going away) and expects a clean exit.
    fn close(mut self) {
        drop(self.stdin.take());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "bitseek mcp exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("bitseek mcp did not exit within 15 s of stdin closing");
    }
}

/// The text of a tool error.
fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], true, "expected a tool error: {result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

const LIB_RS: &str = "/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\npub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n";

fn repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("src")).unwrap();
    std::fs::write(tmp.path().join("src/lib.rs"), LIB_RS).unwrap();
    std::fs::write(
        tmp.path().join("tool.py"),
        "def read_file(path):\n    \"\"\"Read a file.\"\"\"\n    with open(path) as f:\n        return f.read()\n",
    )
    .unwrap();
    tmp
}

#[test]
fn search_and_index_tools_over_raw_json_rpc() {
    let repo = repo();
    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
    let mut s = Server::start(repo.path(), model.path());

    let init = s.initialize();
    let r = &init["result"];
    assert_eq!(r["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(r["serverInfo"]["name"], "bitseek", "{init}");
    assert!(r["capabilities"]["tools"].is_object(), "{init}");

    let tools = s.request("tools/list", json!({}));
    let tools = tools["result"]["tools"].as_array().unwrap().clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{tools:?}");
    assert!(
        names.contains(&"search") && names.contains(&"index"),
        "{names:?}"
    );
    let search = tools.iter().find(|t| t["name"] == "search").unwrap();
    let props = &search["inputSchema"]["properties"];
    for arg in ["question", "k", "lang", "path", "context"] {
        assert!(props.get(arg).is_some(), "search lacks {arg}: {search}");
    }
    assert_eq!(search["inputSchema"]["required"], json!(["question"]));

    // Before any index: a tool error that says what to do, and the server stays up.
    let text = error_text(&s.call("search", json!({"question": "add numbers"})));
    assert!(
        text.contains("no index in") && text.contains("`index` tool"),
        "{text}"
    );

    let r = s.call("index", json!({}));
    assert_eq!(r["isError"], false, "{r}");
    let report = &r["structuredContent"];
    assert_eq!(report["files"], 2, "{r}");
    assert_eq!(report["files_embedded"], 2, "{r}");
    let units = report["units"].as_u64().unwrap();
    assert!(units >= 3, "{r}");

    // A search: path, span, signature, score and the code itself, with context lines clamped at
    // the file's first line.
    let r = s.call(
        "search",
        json!({"question": "add numbers", "k": 10, "lang": "rust", "context": 2}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let answer = &r["structuredContent"];
    // The text content carries the same answer for clients that only read text.
    let from_text: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&from_text, answer);
    assert_eq!(answer["units"], units);
    let hits = answer["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{r}");
    let lines: Vec<&str> = LIB_RS.lines().collect();
    for h in hits {
        assert_eq!(h["path"], "src/lib.rs", "{h}");
        assert_eq!(h["lang"], "rust", "{h}");
        assert!(h["score"].is_number() && h["signature"].is_string(), "{h}");
        let (a, b) = (
            h["line"].as_u64().unwrap() as usize,
            h["end_line"].as_u64().unwrap() as usize,
        );
        assert_eq!(h["code"], lines[a - 1..b].join("\n"), "{h}");
        assert_eq!(
            h["context_before"],
            json!(lines[a.saturating_sub(3)..a - 1]),
            "{h}"
        );
        assert_eq!(
            h["context_after"],
            json!(lines[b..(b + 2).min(lines.len())]),
            "{h}"
        );
    }
    let add = hits.iter().find(|h| h["name"] == "add").expect("add found");
    assert_eq!(
        (add["line"].as_u64(), add["end_line"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(add["signature"], "pub fn add(a: i32, b: i32) -> i32");

    // k and the path glob are honoured; without context no context fields.
    let r = s.call(
        "search",
        json!({"question": "read", "k": 1, "path": "*.py"}),
    );
    let hits = r["structuredContent"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{r}");
    assert_eq!(hits[0]["path"], "tool.py");
    assert!(hits[0].get("context_before").is_none(), "{r}");

    // Bad arguments are tool errors naming the fix.
    let text = error_text(&s.call("search", json!({"question": "x", "lang": "cobol"})));
    assert!(text.contains("unknown language"), "{text}");
    let text = error_text(&s.call("search", json!({"question": "x", "k": 0})));
    assert!(text.contains("use 1 to 100"), "{text}");
    let text = error_text(&s.call("search", json!({"question": "x", "context": 5000})));
    assert!(text.contains("use 0 to 1000"), "{text}");
    let text = error_text(&s.call("search", json!({"question": "  "})));
    assert!(text.contains("question is empty"), "{text}");

    // An edit, then `index`: only the changed file is embedded, and the next search (same
    // server, model kept) sees the new generation.
    std::fs::write(
        repo.path().join("tool.py"),
        "def write_file(path, text):\n    with open(path, 'w') as f:\n        f.write(text)\n",
    )
    .unwrap();
    let before = s.call("search", json!({"question": "file", "k": 10}));
    let stale = before["structuredContent"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"] == "tool.py")
        .expect("tool.py still indexed")
        .clone();
    assert!(stale.get("code").is_none(), "{stale}");
    assert!(
        stale["stale"]
            .as_str()
            .unwrap()
            .contains("call the index tool"),
        "{stale}"
    );
    let r = s.call("index", json!({}));
    assert_eq!(
        (
            r["structuredContent"]["files_embedded"].as_u64(),
            r["structuredContent"]["files_reused"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
    let gen = r["structuredContent"]["generation"].clone();
    let r = s.call(
        "search",
        json!({"question": "write", "k": 10, "path": "*.py"}),
    );
    assert_eq!(r["structuredContent"]["generation"], gen, "{r}");
    let hits = r["structuredContent"]["hits"].as_array().unwrap();
    assert_eq!(hits[0]["name"], "write_file", "{r}");
    assert!(hits[0]["code"]
        .as_str()
        .unwrap()
        .starts_with("def write_file"));

    // An unknown tool is a protocol error, and the server still answers afterwards.
    let r = s.request("tools/call", json!({"name": "nope", "arguments": {}}));
    assert!(r.get("error").is_some(), "{r}");
    let r = s.request("ping", json!({}));
    assert!(r.get("result").is_some(), "{r}");
    s.close();
}

#[test]
fn an_int8_index_on_a_cpu_without_vnni_is_updated_with_a_warning() {
    // Capped below AVX-512 the 8-bit layers run on their scalar twin; the index keeps the int8 it
    // was made with, and the agent is told how to leave it.
    let repo = repo();
    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
    let avx2 = [("BITSEEK_KERNELS", "avx2")];
    let out = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .envs(avx2)
        .arg("index")
        .arg(repo.path())
        .arg("--int8")
        .arg("--model-dir")
        .arg(model.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        repo.path().join("src/more.rs"),
        "pub fn mul(a: i32) -> i32 {\n    a * 2\n}\n",
    )
    .unwrap();

    let mut s = Server::start_with(repo.path(), model.path(), &avx2);
    s.initialize();
    let r = s.call("index", json!({}));
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["structuredContent"]["files_embedded"], 1, "{r}");
    let warning = r["structuredContent"]["warning"]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.contains("no AVX-512 VNNI") && warning.contains("--f32"),
        "{r}"
    );
    s.close();

    // An f32 index there gets no warning.
    let f32_repo = self::repo();
    let mut s = Server::start_with(f32_repo.path(), model.path(), &avx2);
    s.initialize();
    let r = s.call("index", json!({}));
    assert_eq!(r["isError"], false, "{r}");
    assert!(r["structuredContent"].get("warning").is_none(), "{r}");
    s.close();
}

#[test]
fn a_missing_model_is_a_tool_error_that_says_how_to_install_it() {
    let repo = repo();
    let missing = repo.path().join("no-model");
    let mut s = Server::start(repo.path(), &missing);
    s.initialize();
    let text = error_text(&s.call("index", json!({})));
    assert!(text.contains("bitseek model fetch"), "{text}");
    // Not a crash: the server answers the next request.
    let text = error_text(&s.call("search", json!({"question": "add"})));
    assert!(text.contains("no index in"), "{text}");
    s.close();
}

#[test]
fn a_dir_that_is_not_a_directory_fails_before_serving() {
    let out = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .args(["mcp", "--dir", "/definitely/not/here"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn index_watch_reports_each_update_as_a_json_line() {
    let repo = repo();
    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .args(["index", "--watch", "--json", "--debounce-ms", "50"])
        .arg(repo.path())
        .arg("--model-dir")
        .arg(model.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("one JSON object per line"));
        }
    });
    let next = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {what} line within 60 s"))
    };
    let ready = next("ready");
    assert_eq!(ready["event"], "ready", "{ready}");
    assert_eq!(ready["files_embedded"], 2, "{ready}");

    std::fs::write(
        repo.path().join("src/lib.rs"),
        format!("{LIB_RS}\npub fn mul() {{}}\n"),
    )
    .unwrap();
    let mut updated = next("updated");
    // A save can reach the watcher in two bursts; the edit's own update names the file.
    while !updated["changed"]
        .as_array()
        .unwrap()
        .contains(&json!("src/lib.rs"))
    {
        updated = next("updated");
    }
    assert_eq!(updated["event"], "updated", "{updated}");
    assert_eq!(
        (
            updated["files_embedded"].as_u64(),
            updated["files_reused"].as_u64()
        ),
        (Some(1), Some(1)),
        "{updated}"
    );
    assert!(updated["generation"].as_u64() > ready["generation"].as_u64());
    child.kill().unwrap();
    child.wait().unwrap();
}
