//! `bitseek serve` as a process: it starts on an ephemeral port, answers, stops on SIGTERM with
//! exit 0 after flushing, and refuses unsafe or contradictory settings before listening.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_starts_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("BITSEEK_API_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // "bitseek: serving DIR (0 collections) on http://127.0.0.1:PORT/ ..."
    let port: u16 = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let health = get(port, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    assert!(data.is_dir(), "the data directory is created");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "exit {status:?}: {line}{rest}");
    assert!(rest.contains("stopped; all collections flushed"), "{rest}");
}

#[test]
fn serve_refuses_open_writes_off_loopback_and_read_protection_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["serve", "--addr", "0.0.0.0:0", "--data", data],
            "refusing to listen on 0.0.0.0:0 without an API key",
        ),
        (
            vec![
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--protect-reads",
                "--data",
                data,
            ],
            "--protect-reads needs an API key",
        ),
        (
            vec!["serve", "--addr", "localhost", "--data", data],
            "invalid value 'localhost'",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bitseek"))
            .args(&args)
            .env_remove("BITSEEK_API_KEY")
            .output()
            .unwrap();
        let text = common::describe(&args, &out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{text}"
        );
    }
}

#[test]
fn serve_help_names_the_key_and_the_limits() {
    let out = common::bitseek(&["serve", "--help"]);
    let text = common::describe(&["serve", "--help"], &out);
    assert!(out.status.success(), "{text}");
    for flag in [
        "--data",
        "--addr",
        "--api-key",
        "BITSEEK_API_KEY",
        "--model-dir",
        "--max-body-bytes",
        "--max-points-per-request",
        "--max-batch-queries",
        "--max-k",
    ] {
        assert!(text.contains(flag), "{flag} missing: {text}");
    }
}

/// A POST with a JSON body on a fresh connection; the raw response.
fn post(port: u16, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_code_searches_an_indexed_repository_and_refuses_one_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, model, data) = (
        dir.path().join("shop"),
        dir.path().join("model"),
        dir.path().join("data"),
    );
    bitseek_codesearch::testing::write_tiny_model(&model, 1).unwrap();
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("src/cart.rs"),
        "pub fn checkout_cart(total: u32) -> u32 {\n    total\n}\n",
    )
    .unwrap();
    let (repo_s, model_s, data_s) = (
        repo.to_str().unwrap(),
        model.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    let serve_args = [
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data",
        data_s,
        "--model-dir",
        model_s,
        "--code",
        repo_s,
    ];

    // Not indexed yet, or no model: the server does not start, and says what to run.
    let out = common::bitseek(&serve_args);
    let text = common::describe(&serve_args, &out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--code: cannot serve code search: no index in")
            && stderr.contains(&format!("run `bitseek index {repo_s}`")),
        "{text}"
    );
    let index = ["index", repo_s, "--model-dir", model_s];
    let out = common::bitseek(&index);
    assert!(out.status.success(), "{}", common::describe(&index, &out));
    let missing = dir.path().join("no-model");
    let mut no_model = serve_args.to_vec();
    no_model[6] = missing.to_str().unwrap();
    let out = common::bitseek(&no_model);
    let text = common::describe(&no_model, &out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bitseek model fetch"),
        "{text}"
    );

    // Indexed: the page and the search answer from the one binary.
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .args(serve_args)
        .env_remove("BITSEEK_API_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("code search of shop at /code"), "{line}");
    let port: u16 = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let page = get(port, "/code");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("bitseek code search"),
        "{page}"
    );
    let found = post(
        port,
        "/code/search",
        r#"{"question": "checkout_cart", "k": 1, "context": 1}"#,
    );
    assert!(found.starts_with("HTTP/1.1 200"), "{found}");
    let body: serde_json::Value =
        serde_json::from_str(&found[found.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    let hit = &body["hits"][0];
    assert_eq!(
        (
            hit["repo"].as_str(),
            hit["path"].as_str(),
            hit["line"].as_u64()
        ),
        (Some("shop"), Some("src/cart.rs"), Some(1)),
        "{body}"
    );
    assert_eq!(hit["signature"], "pub fn checkout_cart(total: u32) -> u32");
    assert_eq!(hit["context_after"], serde_json::json!([]), "{body}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
}
