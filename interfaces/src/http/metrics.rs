//! Prometheus metrics, kept in process by the `prometheus` crate and rendered as text at
//! `GET /metrics`.
//!
//! Three families: request counts per method, route template and status; request latency
//! histograms per method and route; store-operation latency histograms per operation and
//! outcome (every store call of the HTTP layer goes through [`Metrics::time`]). Route
//! *templates* (`/api/v1/threads/{thread_id}`) are used rather than raw paths so the label set
//! stays bounded whatever ids clients send. Each [`Metrics`] owns its registry (no global
//! state), so several servers in one process (the tests) never mix their counts.

use std::future::Future;
use std::time::{Duration, Instant};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Histogram bucket upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The registry and its three families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_latency: HistogramVec,
    store_latency: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the three families registered (all empty).
    pub fn new() -> Self {
        // The definitions are constants: a failure here is a programming error, not input.
        let requests = IntCounterVec::new(
            Opts::new(
                "waymark_http_requests_total",
                "HTTP requests by method, route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("a valid counter definition");
        let request_latency = HistogramVec::new(
            HistogramOpts::new(
                "waymark_http_request_duration_seconds",
                "HTTP request latency by method and route template.",
            )
            .buckets(BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("a valid histogram definition");
        let store_latency = HistogramVec::new(
            HistogramOpts::new(
                "waymark_store_operation_duration_seconds",
                "Store operation latency by operation and outcome.",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation", "outcome"],
        )
        .expect("a valid histogram definition");
        let registry = Registry::new();
        for family in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_latency.clone()),
            Box::new(store_latency.clone()),
        ] {
            registry
                .register(family)
                .expect("each family is registered once");
        }
        Self {
            registry,
            requests,
            request_latency,
            store_latency,
        }
    }

    /// Records one finished request.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.request_latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one store operation.
    pub fn record_store(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.store_latency
            .with_label_values(&[operation, outcome])
            .observe(elapsed.as_secs_f64());
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

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot render the metrics");
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
        assert!(text.contains(
            "waymark_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/threads/{thread_id}\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("# TYPE waymark_http_requests_total counter"));
        assert!(text.contains("# TYPE waymark_http_request_duration_seconds histogram"));
        assert!(text.contains("# TYPE waymark_store_operation_duration_seconds histogram"));
    }

    #[test]
    fn failures_and_odd_labels_are_recorded_escaped() {
        let m = Metrics::default();
        assert!(
            !m.render().contains("waymark_http_requests_total{"),
            "nothing recorded yet"
        );
        m.record_store("threads.get", false, Duration::from_secs(2));
        m.record_request("GET", "a\"b", 404, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains(
            "waymark_store_operation_duration_seconds_bucket{operation=\"threads.get\",outcome=\"error\",le=\"1\"} 0"
        ), "{text}");
        assert!(text.contains(
            "waymark_store_operation_duration_seconds_bucket{operation=\"threads.get\",outcome=\"error\",le=\"5\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "waymark_http_requests_total{method=\"GET\",route=\"a\\\"b\",status=\"404\"} 1"
            ),
            "{text}"
        );
    }
}
