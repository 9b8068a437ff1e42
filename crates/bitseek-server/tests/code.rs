//! The code search API (`bitseek serve --code DIR…`): `GET /code/repos`, `POST /code/search` and
//! the page at `GET /code`, over repositories indexed with the tiny random model. Names are found
//! by the lexical leg, so the hits asserted here do not depend on the model's (random) vectors.

mod common;

use axum::http::StatusCode;
use bitseek_server::{CodeRepos, Options};
use common::code::{files_rs, write, Repos};
use common::{call, state};
use serde_json::{json, Value};

async fn search(s: &std::sync::Arc<bitseek_server::AppState>, body: Value) -> common::Reply {
    call(s, "POST", "/code/search", Some(&body.to_string()), None).await
}

fn hit<'a>(hits: &'a Value, path: &str, line: u64) -> &'a Value {
    hits.as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"] == path && h["line"] == line)
        .unwrap_or_else(|| panic!("no hit {path}:{line} in {hits}"))
}

#[tokio::test]
async fn a_question_finds_units_with_their_code_and_context_lines() {
    let repos = Repos::new();
    let (_d, s) = repos.state(&[repos.web()], Options::default());

    let r = search(
        &s,
        json!({"question": "where is hash_file", "k": 10, "context": 3}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The question's identifier words, less the English ones: what the page highlights.
    assert_eq!(r.json["terms"], json!(["hash", "file"]));
    let hits = &r.json["hits"];
    assert_eq!(
        hits[0]["path"], "src/files.rs",
        "the named function first: {hits}"
    );
    let h = hit(hits, "src/files.rs", 2);
    assert_eq!(h["repo"], "web-app");
    assert_eq!(
        (h["end_line"].as_u64(), h["doc_start_line"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(h["signature"], "pub fn hash_file(path: &str) -> u64");
    assert_eq!(
        (h["lang"].as_str(), h["kind"].as_str()),
        (Some("rust"), Some("function"))
    );
    assert_eq!(h["name"], "hash_file");
    let file = files_rs();
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(h["text"], lines[1..5].join("\n"));
    // Context stops at the file's first line: one line before, three after.
    assert_eq!(h["context_before"], json!([lines[0]]));
    assert_eq!(h["context_after"], json!(lines[5..8]));
    assert!(h.get("stale").is_none(), "{h}");

    // The last unit of a file: no context after it.
    let r = search(
        &s,
        json!({"question": "read_config", "k": 10, "context": 5, "path": "src/store.py"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hits = r.json["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h["path"] == "src/store.py"), "{hits:?}");
    let h = hit(&r.json["hits"], "src/store.py", 1);
    assert_eq!(h["context_before"], json!([]));
    assert_eq!(h["context_after"], json!([]));

    // Without text: only where the units are.
    let r = search(&s, json!({"question": "hash_file", "with_text": false})).await;
    let h = &r.json["hits"][0];
    assert!(
        h.get("text").is_none() && h.get("context_before").is_none(),
        "{h}"
    );
    assert!(h["score"].is_number());

    // A language filter.
    let r = search(&s, json!({"question": "file", "lang": "py", "k": 20})).await;
    let hits = r.json["hits"].as_array().unwrap();
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h["lang"] == "python"),
        "{hits:?}"
    );
}

#[tokio::test]
async fn several_repositories_are_searched_together_or_one_by_name() {
    let repos = Repos::new();
    let (_d, s) = repos.state(&[repos.web(), repos.tools()], Options::default());

    let r = call(&s, "GET", "/code/repos", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let names: Vec<&str> = r.json["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-app", "tools"]);
    assert_eq!(r.json["repos"][0]["files"], 3);
    assert!(r.json["repos"][1]["units"].as_u64().unwrap() >= 1);
    assert_eq!(r.json["model"]["dim"], 8);
    assert!(r.json["langs"].as_array().unwrap().contains(&json!("rust")));

    // Both repositories' definitions of the name come first, one from each (interleaved by rank).
    let r = search(
        &s,
        json!({"question": "hash_file_quickly hash_file", "k": 4}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let top: Vec<&str> = r.json["hits"].as_array().unwrap()[..2]
        .iter()
        .map(|h| h["repo"].as_str().unwrap())
        .collect();
    assert!(
        top.contains(&"web-app") && top.contains(&"tools"),
        "{}",
        r.text
    );
    assert_eq!(r.json["hits"].as_array().unwrap().len(), 4);

    let r = search(&s, json!({"question": "hash", "repo": "tools", "k": 10})).await;
    let hits = r.json["hits"].as_array().unwrap();
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h["repo"] == "tools"),
        "{hits:?}"
    );

    let r = search(&s, json!({"question": "hash", "repo": "nope"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.message().contains("web-app, tools"), "{}", r.text);
}

#[tokio::test]
async fn group_puts_a_files_hits_together() {
    let repos = Repos::new();
    let (_d, s) = repos.state(&[repos.web()], Options::default());
    let flat = search(&s, json!({"question": "file hash long function", "k": 20})).await;
    let grouped = search(
        &s,
        json!({"question": "file hash long function", "k": 20, "group": true}),
    )
    .await;
    assert_eq!(grouped.status, StatusCode::OK, "{}", grouped.text);
    assert!(grouped.json.get("hits").is_none());
    let files = grouped.json["files"].as_array().unwrap();
    let mut order: Vec<&str> = Vec::new();
    for h in flat.json["hits"].as_array().unwrap() {
        let p = h["path"].as_str().unwrap();
        if !order.contains(&p) {
            order.push(p);
        }
    }
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, order);
    for f in files {
        let want: Vec<&Value> = flat.json["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["path"] == f["path"])
            .collect();
        let got: Vec<&Value> = f["hits"].as_array().unwrap().iter().collect();
        assert_eq!(got, want);
        assert_eq!(f["repo"], "web-app");
    }
}

#[tokio::test]
async fn bad_requests_get_json_errors_naming_the_field() {
    let repos = Repos::new();
    let (_d, s) = repos.state(&[repos.web()], Options::default());
    for (body, status, code, needle) in [
        (
            json!({"question": "  "}),
            400,
            "bad_request",
            "\"question\" is empty",
        ),
        (
            json!({"question": "x", "k": 0}),
            400,
            "bad_request",
            "\"k\" must be between 1 and 1000",
        ),
        (
            json!({"question": "x", "k": 1001}),
            400,
            "bad_request",
            "(max_k)",
        ),
        (
            json!({"question": "x", "context": 1001}),
            400,
            "bad_request",
            "\"context\" must be between 0 and 1000",
        ),
        (
            json!({"question": "x", "lang": "cobol"}),
            400,
            "bad_request",
            "unknown language \"cobol\" for \"lang\"",
        ),
        (
            json!({"question": "x", "path": "a["}),
            400,
            "bad_request",
            "\"path\" \"a[\" is not a valid glob",
        ),
        (
            json!({"question": "x".repeat(5000)}),
            400,
            "bad_request",
            "more than 4096",
        ),
        (
            json!({"question": "x", "kk": 3}),
            400,
            "malformed_json",
            "unknown field `kk`",
        ),
        (
            json!({"k": 3}),
            400,
            "malformed_json",
            "missing field `question`",
        ),
        (
            json!({"question": 3}),
            400,
            "malformed_json",
            "invalid type",
        ),
    ] {
        let r = search(&s, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["code"], code, "{body}: {}", r.text);
        assert!(r.message().contains(needle), "{body}: {}", r.text);
    }
    let r = call(&s, "GET", "/code/search", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "method_not_allowed");
    let r = call(&s, "POST", "/code/search", Some("not json"), None).await;
    assert_eq!(r.json["error"]["code"], "malformed_json", "{}", r.text);
}

#[tokio::test]
async fn without_code_the_routes_say_how_to_add_it() {
    let (_d, s) = state(Options::default());
    for (method, path) in [("GET", "/code/repos"), ("POST", "/code/search")] {
        let r = call(&s, method, path, Some(r#"{"question": "x"}"#), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "no_code");
        assert!(
            r.message().contains("bitseek serve --code DIR"),
            "{}",
            r.text
        );
    }
    // The page itself is there, and shows that message.
    let r = call(&s, "GET", "/code", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.starts_with("<!doctype html>") && r.text.contains("id=\"question\""));
    assert!(
        !r.text.contains("http://") && !r.text.contains("https://"),
        "the page must not load anything from elsewhere"
    );
    assert!(
        !r.text.contains("innerHTML"),
        "repository text goes in as text only"
    );
}

#[tokio::test]
async fn reads_need_the_key_when_protected() {
    let repos = Repos::new();
    let (_d, s) = repos.state(
        &[repos.web()],
        Options {
            api_key: Some("k3y".into()),
            protect_reads: true,
            ..Options::default()
        },
    );
    let body = r#"{"question": "hash_file"}"#;
    let r = call(&s, "POST", "/code/search", Some(body), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&s, "POST", "/code/search", Some(body), Some("k3y")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Without protect_reads a search is a read: no key needed even when writes need one.
    let (_d2, s) = repos.state(
        &[repos.web()],
        Options {
            api_key: Some("k3y".into()),
            ..Options::default()
        },
    );
    let r = call(&s, "POST", "/code/search", Some(body), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_reindexed_repository_is_searched_as_it_is_now() {
    let repos = Repos::new();
    let web = repos.web();
    let (_d, s) = repos.state(std::slice::from_ref(&web), Options::default());
    let r = search(&s, json!({"question": "frobnicate_widget"})).await;
    assert!(!r.text.contains("frobnicate_widget("), "{}", r.text);

    // An edit not yet indexed: the hits in that file say so instead of quoting other lines.
    write(&web, "src/files.rs", "pub fn frobnicate_widget() {}\n");
    let r = search(&s, json!({"question": "hash_file", "k": 20})).await;
    let h = hit(&r.json["hits"], "src/files.rs", 2);
    assert!(h["text"].is_null(), "{h}");
    assert_eq!(
        h["stale"],
        "file changed since indexing; re-run `bitseek index`"
    );

    // `bitseek index` while the server runs: the next search reads the new generation.
    repos.index(&web);
    let r = search(&s, json!({"question": "frobnicate_widget"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = &r.json["hits"][0];
    assert_eq!(
        (h["path"].as_str(), h["line"].as_u64()),
        (Some("src/files.rs"), Some(1))
    );
    assert_eq!(h["text"], "pub fn frobnicate_widget() {}");
    let r = call(&s, "GET", "/code/repos", None, None).await;
    assert_eq!(r.json["repos"][0]["generation"], 2, "{}", r.text);

    // The index deleted under the server: a clear 503 with the fix.
    std::fs::remove_dir_all(web.join(".bitseek")).unwrap();
    let r = search(&s, json!({"question": "x"})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.message().contains("run `bitseek index"), "{}", r.text);
}

#[test]
fn startup_refuses_a_directory_without_an_index_or_a_missing_model() {
    let repos = Repos::new();
    let err = CodeRepos::open(&[repos.web()], Some(&repos.model())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no index in") && msg.contains("run `bitseek index"),
        "{msg}"
    );

    let missing = repos.tmp.path().join("nowhere");
    let err = CodeRepos::open(std::slice::from_ref(&missing), Some(&repos.model())).unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");

    repos.index(&repos.web());
    let no_model = repos.tmp.path().join("no-model");
    let err = CodeRepos::open(&[repos.web()], Some(&no_model)).unwrap_err();
    assert!(err.to_string().contains("bitseek model fetch"), "{err}");

    // Indexed with another model than the one given: refused, with both fingerprints.
    let other = repos.tmp.path().join("other-model");
    bitseek_codesearch::testing::write_tiny_model(&other, 9).unwrap();
    let err = CodeRepos::open(&[repos.web()], Some(&other)).unwrap_err();
    assert!(err.to_string().contains("was built with model"), "{err}");

    // The same repository twice is searched once; two of one name are told apart.
    let twice = CodeRepos::open(&[repos.web(), repos.web()], Some(&repos.model())).unwrap();
    assert_eq!(twice.names(), ["web-app"]);
    let nested = repos.tmp.path().join("more/web-app");
    write(&nested, "a.py", "def a():\n    return 1\n");
    repos.index(&nested);
    let two = CodeRepos::open(&[repos.web(), nested], Some(&repos.model())).unwrap();
    assert_eq!(two.names(), ["web-app", "web-app-2"]);
}

#[tokio::test]
async fn the_code_model_also_serves_text_searches_loaded_once() {
    let repos = Repos::new();
    let (_d, s) = repos.state(&[repos.web()], Options::default());
    let r = call(&s, "GET", "/health", None, None).await;
    assert_eq!(r.json["text_model_loaded"], true, "{}", r.text);
}
