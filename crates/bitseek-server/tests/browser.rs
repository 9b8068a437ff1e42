//! The search page in a real headless browser (Debian's `chromium`): the page loads the collection
//! list, runs a search (a pasted vector, and a question embedded by the server), and renders the
//! hits with their payloads; a bad request shows the server's message.
//!
//! The code search page (`/code`) likewise: hits as path:line with the signature, the code and its
//! context lines, the question's words marked, markup in the code shown as text, grouping, errors.
//!
//! Skipped with a message when no chromium is installed, except under CI (`CI=true`), where a
//! missing browser fails the test. `BITSEEK_CHROMIUM` names another binary.

mod common;

use bitseek_server::Options;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BITSEEK_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// The DOM after the page's scripts ran (and their requests finished), as chromium prints it.
fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            // Virtual time runs the page until it is idle, waiting for pending fetches.
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `id="x"`'s text in a dumped DOM (simple: the element has no nested tags).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    &rest[open..open + close]
}

/// The `data-id`s of the rendered hit rows, in order.
fn hit_ids(dom: &str) -> Vec<u64> {
    dom.split("<tr class=\"hit\" data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect()
}

/// Minimal percent-encoding for a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn search_page_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("chromium is required in CI for the search-page test: apt-get install -y chromium (or set BITSEEK_CHROMIUM)");
        }
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium); the search-page browser test did not run");
        return;
    };

    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 3).unwrap();
    let (_dir, state) = common::state(Options {
        model_dir: Some(model.path().to_path_buf()),
        ..Options::default()
    });

    // A collection of 8-dimensional vectors made by the (tiny) model from texts, so that both a
    // question and a pasted vector can find them.
    use bitseek_embed::{BertEmbedder, Embedder, ModelDir};
    // Words of the tiny model's vocabulary, so that each text embeds differently.
    let texts = ["hello world", "read file", "fn a b c", "d e f g h"];
    let embedder = BertEmbedder::load(&ModelDir::open(model.path()).unwrap()).unwrap();
    let vectors = embedder.embed(&texts).unwrap();
    let dim = vectors[0].len();
    let db = state.db().clone();
    let c = db
        .create(
            "code",
            bitseek_store::CollectionConfig {
                dim,
                metric: bitseek_store::Metric::Cosine,
                quantizer: "rabitq".into(),
                keep: bitseek_store::Keep::F32,
                durability: Default::default(),
                index: Default::default(),
            },
        )
        .unwrap();
    c.upsert(
        vectors
            .iter()
            .enumerate()
            .map(|(i, v)| bitseek_store::Point {
                id: 100 + i as u64,
                vector: v.clone(),
                payload: serde_json::json!({"path": format!("src/file{i}.rs"), "line": 10 + i, "text": texts[i]}),
            })
            .collect(),
    )
    .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(bitseek_server::serve_on(
        listener,
        Arc::clone(&state),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // A pasted vector: the vector of text 2 must find point 102 first, and show its payload.
    let v = serde_json::to_string(&vectors[2]).unwrap();
    let dom = dump_dom(
        &browser,
        &format!("http://{addr}/?collection=code&k=3&q={}", encode(&v)),
    );
    assert!(
        dom.contains("data-state=\"done\""),
        "search did not finish: {dom}"
    );
    let ids = hit_ids(&dom);
    assert_eq!(ids.len(), 3, "{dom}");
    assert_eq!(ids[0], 102, "{dom}");
    assert!(
        dom.contains("src/file2.rs:12"),
        "payload location missing: {dom}"
    );
    assert!(dom.contains("fn a b c"), "payload missing: {dom}");
    assert!(text_of(&dom, "status").contains("3 hits"), "{dom}");
    assert!(
        dom.contains("<option value=\"code\""),
        "collection list: {dom}"
    );

    // A question, embedded by the server with the model.
    let dom = dump_dom(
        &browser,
        &format!(
            "http://{addr}/?collection=code&k=2&q={}",
            encode("d e f g h")
        ),
    );
    assert!(dom.contains("data-state=\"done\""), "{dom}");
    assert_eq!(hit_ids(&dom)[0], 103, "{dom}");
    assert!(
        text_of(&dom, "status").contains("question embedded by the server"),
        "{dom}"
    );

    // A vector of the wrong length: the server's message is shown, no hits.
    let dom = dump_dom(
        &browser,
        &format!("http://{addr}/?collection=code&q={}", encode("[1, 2, 3]")),
    );
    assert!(dom.contains("data-state=\"error\""), "{dom}");
    assert!(
        text_of(&dom, "error").contains("has 3 values, but the collection's vectors have 8"),
        "{dom}"
    );
    assert!(hit_ids(&dom).is_empty());

    stop_tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
}

/// The DOM of `/code?QUERY` on a server over the code search fixture (two repositories).
fn code_page(browser: &PathBuf, addr: SocketAddr, query: &str) -> String {
    dump_dom(browser, &format!("http://{addr}/code?{query}"))
}

/// The `<article class="hit" …>` elements of a dumped code page, in order.
fn code_hits(dom: &str) -> Vec<&str> {
    dom.split("<article class=\"hit\"")
        .skip(1)
        .map(|s| &s[..s.find("</article>").unwrap()])
        .collect()
}

#[test]
fn code_search_page_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("chromium is required in CI for the code-search-page test: apt-get install -y chromium (or set BITSEEK_CHROMIUM)");
        }
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium); the code-search-page browser test did not run");
        return;
    };
    let repos = common::code::Repos::new();
    let (_dir, state) = repos.state(&[repos.web(), repos.tools()], Options::default());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(bitseek_server::serve_on(
        listener,
        Arc::clone(&state),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // A name: its definition first as path:line, the signature and code with the question's
    // words marked, and the context lines around it numbered.
    let dom = code_page(&browser, addr, "q=hash_file&repo=web-app&context=2&k=3");
    assert!(
        dom.contains("data-state=\"done\""),
        "search did not finish: {dom}"
    );
    let hits = code_hits(&dom);
    assert_eq!(hits.len(), 3, "{dom}");
    let first = hits[0];
    assert!(
        first.contains("<span class=\"where\">src/files.rs:2</span>"),
        "{first}"
    );
    assert!(
        first.contains("<div class=\"sig\">pub fn <mark>hash</mark>_<mark>file</mark>(path: &amp;str) -&gt; u64</div>"),
        "{first}"
    );
    // Line 1 (the doc comment) is context; the file has no line before it.
    assert!(
        first.contains("<div class=\"ln ctx\"><span class=\"n\">1</span><code>/// Reads a <mark>file</mark> and hashes its bytes.</code></div><div class=\"ln unit\"><span class=\"n\">2</span>"),
        "{first}"
    );
    assert!(
        first.contains("<span class=\"n\">7</span><code>pub fn long_function() -&gt; u32 {</code>"),
        "two context lines after the unit (5): {first}"
    );
    assert!(!first.contains("<span class=\"n\">8</span>"), "{first}");
    assert!(text_of(&dom, "status").starts_with("3 hits"), "{dom}");
    // Both repositories are offered; one was asked for.
    assert!(dom.contains("<option value=\"tools\">"), "{dom}");

    // Markup in the repository's code is shown as text, never run or inserted as elements.
    let dom = code_page(&browser, addr, "q=render_banner&k=2");
    assert!(dom.contains("data-state=\"done\""), "{dom}");
    // (Over both repositories: each one's best hit comes before either one's second.)
    let first = *code_hits(&dom)
        .iter()
        .find(|h| h.contains("src/render.py:1"))
        .unwrap_or_else(|| panic!("{dom}"));
    assert!(
        first
            .contains("&lt;script&gt;document.body.setAttribute('data-pwned', '2')&lt;/script&gt;"),
        "{first}"
    );
    assert!(first.contains("title=\"&lt;img src=x onerror="), "{first}");
    assert!(first.contains("&lt;b&gt;bold&lt;/b&gt;"), "{first}");
    assert!(
        !dom.contains("data-pwned=\""),
        "a script from the repository ran: {dom}"
    );
    assert!(
        !dom.contains("<img") && !dom.contains("<b>"),
        "markup inserted: {dom}"
    );

    // A long unit shows its first lines and how many more; grouped by file, one header per file,
    // named with its repository when there are several.
    let dom = code_page(&browser, addr, "q=long_function&k=1&group=1");
    assert!(dom.contains("data-state=\"done\""), "{dom}");
    assert!(
        dom.contains("<h2 class=\"path\">web-app: src/files.rs</h2>"),
        "{dom}"
    );
    assert!(dom.contains(">… 11 more lines</button>"), "{dom}");
    assert!(dom.contains("<span class=\"where\">line 7</span>"), "{dom}");
    assert!(text_of(&dom, "status").contains("in 1 file"), "{dom}");

    // A bad request: the server's message, no hits.
    let dom = code_page(&browser, addr, &format!("q=x&path={}", encode("a[")));
    assert!(dom.contains("data-state=\"error\""), "{dom}");
    assert!(
        text_of(&dom, "error").contains("\"path\" \"a[\" is not a valid glob"),
        "{dom}"
    );
    assert!(code_hits(&dom).is_empty());

    stop_tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
}
