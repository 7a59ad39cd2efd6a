//! The layer around every route: counts and times each request for the metrics (by its route
//! template, never the raw path), and answers 503 when a request outlives the time limit.
//!
//! Why written out rather than as two `axum::middleware::from_fn` functions: every request of a
//! flash sale passes through it, and is polled through it twice (once to be admitted, once when
//! its order is durable). `from_fn` boxed a future and cloned the inner service into a box on
//! every request, at each of the two layers; this is one future, moved nowhere.

use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Wraps each route in [`Observe`].
#[derive(Debug, Clone)]
pub(crate) struct ObserveLayer {
    metrics: Arc<Metrics>,
    limit: Duration,
}

impl ObserveLayer {
    pub(crate) fn new(metrics: Metrics, limit: Duration) -> Self {
        Self { metrics: Arc::new(metrics), limit }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner, metrics: self.metrics.clone(), limit: self.limit }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    limit: Duration,
}

impl<S> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        self.metrics.in_flight.inc();
        ObserveFuture {
            inner: tokio::time::timeout(self.limit, self.inner.call(request)),
            in_flight: InFlight(self.metrics.clone()),
            method,
            route,
            started: Instant::now(),
            limit: self.limit,
        }
    }
}

/// Takes the request off the in-flight gauge when its future ends, answered or dropped (a
/// client that hangs up mid-request must not leave it counted).
struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct ObserveFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        in_flight: InFlight,
        method: Method,
        route: Option<MatchedPath>,
        started: Instant,
        limit: Duration,
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match std::task::ready!(this.inner.poll(cx)) {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_elapsed) => {
                tracing::warn!(limit_ms = this.limit.as_millis() as u64, "request timed out");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long; retry later")
                    .into_response()
            }
        };
        let metrics = &this.in_flight.0;
        let route = this.route.as_ref().map_or("unmatched", |path| path.as_str());
        let method = this.method.as_str();
        metrics.requests_total.with_label_values(&[method, route, response.status().as_str()]).inc();
        metrics.request_duration_s.with_label_values(&[method, route]).observe(this.started.elapsed().as_secs_f64());
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use tower::ServiceExt;

    fn observed(metrics: &Metrics) -> Router {
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        };
        Router::new()
            .route("/slow/{id}", get(slow))
            .route("/quick", get(|| async { "ok" }))
            .layer(ObserveLayer::new(metrics.clone(), Duration::from_secs(1)))
    }

    fn request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_are_answered_503_and_counted_by_route() {
        let metrics = Metrics::new().expect("metrics");
        let response = observed(&metrics).oneshot(request("/slow/7")).await.unwrap_or_default();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(body["error"]["code"], "timeout");
        let _ = observed(&metrics).oneshot(request("/quick")).await;
        let text = metrics.render();
        assert!(
            text.contains(r#"xingqu_http_requests_total{method="GET",route="/slow/{id}",status="503"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"xingqu_http_requests_total{method="GET",route="/quick",status="200"} 1"#), "{text}");
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_midway_leaves_the_in_flight_gauge() {
        let metrics = Metrics::new().expect("metrics");
        let pending = observed(&metrics).oneshot(request("/slow/7"));
        let dropped = tokio::time::timeout(Duration::from_millis(10), pending).await;
        assert!(dropped.is_err(), "the request was still running");
        assert_eq!(metrics.in_flight.get(), 0);
        assert!(!metrics.render().contains("route=\"/slow/{id}\""), "a dropped request is not counted as answered");
    }
}
