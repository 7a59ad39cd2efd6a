//! Prometheus metrics: request counts, latencies and in-flight requests by method, route and
//! status, in a registry owned by the app (not a global), exposed at `/metrics`; recorded by
//! [`crate::observe`].

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub(crate) requests_total: IntCounterVec,
    pub(crate) request_duration_s: HistogramVec,
    pub(crate) in_flight: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new("xingqu_http_requests_total", "HTTP requests answered, by method, route and status"),
            &["method", "route", "status"],
        )?;
        let request_duration_s = HistogramVec::new(
            HistogramOpts::new("xingqu_http_request_duration_seconds", "HTTP request latency, by method and route")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route"],
        )?;
        let in_flight = IntGauge::new("xingqu_http_requests_in_flight", "HTTP requests being served")?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_s.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self { registry, requests_total, request_duration_s, in_flight })
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
