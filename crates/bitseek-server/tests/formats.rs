//! The code formats by name over HTTP: the fixed formats `bitseek build --quantizer` takes create
//! collections, re-encode them and search as with rabitq; `alloc:N` and `auto:N`, which calibrate
//! on a whole build, are refused with the reason and what to use instead.

mod common;

use axum::http::StatusCode;
use bitseek_server::Options;
use common::{call, points_json, state};

const DIM: usize = 8;

/// The ids of a search's hits.
fn hit_ids(r: &common::Reply) -> Vec<u64> {
    r.json["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {}", r.text))
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn new_formats_create_search_and_re_encode_by_name() {
    let (_d, s) = state(Options::default());
    // Point 5's own vector: with the f32 copy rescoring, it is its own nearest neighbour.
    let mut query = vec![0.01f32; DIM];
    query[5] = 1.05;
    let body = serde_json::json!({"vector": query, "k": 3, "oversample": 4}).to_string();
    for name in ["ternary", "fp8", "fp8-e5m2", "int4"] {
        let path = format!("/collections/{}", name.replace('-', "_"));
        let create = serde_json::json!({"dim": DIM, "metric": "cosine", "quantizer": name});
        let r = call(&s, "PUT", &path, Some(&create.to_string()), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
        assert_eq!(r.json["config"]["quantizer"], name);
        let r = call(
            &s,
            "PUT",
            &format!("{path}/points"),
            Some(&points_json(0..40, DIM)),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
        let r = call(&s, "POST", &format!("{path}/search"), Some(&body), None).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
        assert_eq!(hit_ids(&r)[0], 5, "{name}: {}", r.text);
        // Re-encoding an existing collection takes the same names.
        let r = call(
            &s,
            "PUT",
            "/collections/ternary/quantizer",
            Some(&serde_json::json!({"quantizer": name}).to_string()),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
        assert_eq!(r.json["config"]["quantizer"], name);
        let r = call(&s, "POST", "/collections/ternary/search", Some(&body), None).await;
        assert_eq!(hit_ids(&r)[0], 5, "re-encoded to {name}: {}", r.text);
    }
    for (name, reason) in [
        ("alloc:64", "alloc codes calibrate"),
        ("auto:64", "bitseek tune"),
    ] {
        let create = serde_json::json!({"dim": DIM, "quantizer": name});
        let r = call(&s, "PUT", "/collections/x", Some(&create.to_string()), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        assert!(
            r.message().contains(name) && r.message().contains(reason),
            "{name}: {}",
            r.text
        );
        let r = call(
            &s,
            "PUT",
            "/collections/int4/quantizer",
            Some(&serde_json::json!({"quantizer": name}).to_string()),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        assert!(r.message().contains(reason), "{name}: {}", r.text);
    }
}
