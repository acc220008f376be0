//! Prometheus metrics, kept in process and rendered as text at `GET /metrics`.
//!
//! Three families: request counts per method, route template and status; request latency
//! histograms per method and route; store-operation latency histograms per operation (every
//! store call of the HTTP layer goes through [`Metrics::time`]). Route *templates*
//! (`/api/v1/threads/{thread_id}`) are used rather than raw paths so the label set stays
//! bounded whatever ids clients send. A hand-written registry is enough for this and keeps the
//! dependency list short.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Histogram bucket upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    request_latency: BTreeMap<(String, String), Histogram>,
    store_latency: BTreeMap<(&'static str, bool), Histogram>,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records one finished request.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        inner
            .request_latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default()
            .observe(elapsed);
    }

    /// Records one store operation.
    pub fn record_store(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .store_latency
            .entry((operation, ok))
            .or_default()
            .observe(elapsed);
    }

    /// Runs a store call and records how long it took and whether it failed.
    pub async fn time<T, E>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let out = fut.await;
        self.record_store(operation, out.is_ok(), start.elapsed());
        out
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        out.push_str("# HELP waymark_http_requests_total HTTP requests by method, route template and status.\n");
        out.push_str("# TYPE waymark_http_requests_total counter\n");
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "waymark_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        out.push_str("# HELP waymark_http_request_duration_seconds HTTP request latency by method and route template.\n");
        out.push_str("# TYPE waymark_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &inner.request_latency {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            h.render(&mut out, "waymark_http_request_duration_seconds", &labels);
        }
        out.push_str("# HELP waymark_store_operation_duration_seconds Store operation latency by operation and outcome.\n");
        out.push_str("# TYPE waymark_store_operation_duration_seconds histogram\n");
        for ((op, ok), h) in &inner.store_latency {
            let outcome = if *ok { "ok" } else { "error" };
            let labels = format!("operation=\"{op}\",outcome=\"{outcome}\"");
            h.render(
                &mut out,
                "waymark_store_operation_duration_seconds",
                &labels,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_counts_requests_and_buckets_latencies() {
        let m = Metrics::default();
        m.record_request(
            "GET",
            "/api/v1/threads/{thread_id}",
            200,
            Duration::from_millis(3),
        );
        m.record_request(
            "GET",
            "/api/v1/threads/{thread_id}",
            200,
            Duration::from_millis(30),
        );
        m.record_store("threads.get", true, Duration::from_micros(100));
        let text = m.render();
        assert!(text.contains(
            "waymark_http_requests_total{method=\"GET\",route=\"/api/v1/threads/{thread_id}\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "waymark_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/threads/{thread_id}\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "waymark_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/threads/{thread_id}\"} 2"
        ));
        assert!(text.contains(
            "waymark_store_operation_duration_seconds_count{operation=\"threads.get\",outcome=\"ok\"} 1"
        ));
    }
}
