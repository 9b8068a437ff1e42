//! Request counts and latencies per route, written in the Prometheus text format by `GET /metrics`.
//!
//! Routes are labelled by their template (`/collections/{name}/search`), never by the concrete
//! path, so the number of series stays fixed however many collections and ids clients use.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters shared by all requests.
#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) -> requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route) -> latency histogram.
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    pub points_upserted: AtomicU64,
    pub points_deleted: AtomicU64,
    pub queries: AtomicU64,
    pub text_queries: AtomicU64,
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        {
            let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = l
            .entry((method.to_string(), route.to_string()))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The request metrics and counters in Prometheus text format (gauges about collections are
    /// appended by the caller).
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP bitseek_http_requests_total HTTP requests answered, by method, route template and status.\n");
        out.push_str("# TYPE bitseek_http_requests_total counter\n");
        for ((m, r, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "bitseek_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                escape(r)
            );
        }
        out.push_str("# HELP bitseek_http_request_duration_seconds Time from request to response, by method and route template.\n");
        out.push_str("# TYPE bitseek_http_request_duration_seconds histogram\n");
        for ((m, r), h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let r = escape(r);
            for (le, c) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "bitseek_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{le}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "bitseek_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "bitseek_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "bitseek_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {}",
                h.count
            );
        }
        for (name, help, c) in [
            (
                "bitseek_points_upserted_total",
                "Points written by acknowledged upserts.",
                &self.points_upserted,
            ),
            (
                "bitseek_points_deleted_total",
                "Points that existed and were deleted.",
                &self.points_deleted,
            ),
            (
                "bitseek_search_queries_total",
                "Search queries answered (each query of a batch counts).",
                &self.queries,
            ),
            (
                "bitseek_text_queries_total",
                "Search queries given as text and embedded by the server.",
                &self.text_queries,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", c.load(Ordering::Relaxed));
        }
    }
}

/// Escapes a Prometheus label value.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counted() {
        let m = Metrics::default();
        m.record("GET", "/health", 200, Duration::from_micros(300));
        m.record("GET", "/health", 200, Duration::from_millis(30));
        m.record("GET", "/health", 404, Duration::from_secs(20));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "bitseek_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "bitseek_http_requests_total{method=\"GET\",route=\"/health\",status=\"404\"} 1"
        ));
        assert!(out.contains("le=\"0.0005\"} 1\n"));
        assert!(out.contains("le=\"0.05\"} 2\n"));
        assert!(out.contains("le=\"10\"} 2\n"));
        assert!(out.contains("le=\"+Inf\"} 3\n"));
        assert!(out.contains(
            "bitseek_http_request_duration_seconds_count{method=\"GET\",route=\"/health\"} 3"
        ));
    }
}
