//! Xingqu's HTTP API: the axum router, request and response types, the error shape, auth,
//! the OpenAPI document, metrics, the middleware every request passes through, and the
//! operator and merchant console's pages (`console/`).

mod console;
pub mod error;
pub mod extract;
pub mod metrics;
mod observe;
mod routes;
mod time_format;

use crate::error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use xingqu_app::App;

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Bodies larger than this are refused with 413.
    pub body_limit_bytes: usize,
    /// A request still running after this is answered with 503.
    pub request_timeout: Duration,
    /// Turns true when the server starts shutting down: long-lived streams (server-sent events)
    /// end then, so the graceful shutdown does not wait for them. A receiver whose sender is
    /// gone never ends them.
    pub streams_end: tokio::sync::watch::Receiver<bool>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            streams_end: tokio::sync::watch::channel(false).1,
        }
    }
}

/// What handlers share. One `Arc`, because axum clones the state for every request.
#[derive(Debug, Clone)]
pub struct AppState(std::sync::Arc<SharedState>);

#[derive(Debug)]
pub struct SharedState {
    pub app: App,
    pub metrics: metrics::Metrics,
    /// Permits for server-sent-event streams (at most `routes::hot::STREAMS_MAX` at once).
    pub streams: std::sync::Arc<tokio::sync::Semaphore>,
    pub streams_end: tokio::sync::watch::Receiver<bool>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Xingqu",
        description = "Interest e-commerce: marketplace catalog, accounts and operations. Money is in 分 (fen) as integers. \
                       Errors share one shape: {\"error\":{\"code\",\"message\",\"field\"}}.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, readiness, metrics"),
        (name = "accounts", description = "Registration, sign-in, sessions"),
        (name = "catalog", description = "Categories, brands, merchants"),
        (name = "products", description = "Products, SKUs, price history"),
        (name = "orders", description = "Quotes, orders, payments, fulfilment, flash sales, hot lists"),
        (name = "feed", description = "Interaction events"),
        (name = "promotions", description = "Coupons, red packets, wallets, follows, live sessions, lucky bags"),
        (name = "campaigns", description = "Campaigns, zones and their entries, theme days, the official live room, subsidy pools"),
        (name = "after-sales", description = "Price protection, after-sale requests and their audit trail"),
        (name = "analytics", description = "GMV and quality GMV, regions, shipping points, 安心购 reach (operators and shop staff)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("xq_…").build()),
        );
    }
}

/// The API's routes and its OpenAPI document, both from the same handler annotations.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::system::routes())
        .merge(routes::accounts::routes())
        .merge(routes::catalog::routes())
        .merge(routes::products::routes())
        .merge(routes::orders::routes())
        .merge(routes::hot::routes())
        .merge(routes::events::routes())
        .merge(routes::coupons::routes())
        .merge(routes::lucky_bags::routes())
        .merge(routes::content::routes())
        .merge(routes::after_sales::routes())
        .merge(routes::price_protection::routes())
        .merge(routes::assurance::routes())
        .merge(routes::campaigns::routes())
        .merge(routes::analytics::routes())
        .split_for_parts()
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The whole application as an axum router, ready to serve.
pub fn router(app: App, config: HttpConfig) -> Result<Router, prometheus::Error> {
    let metrics = metrics::Metrics::new()?;
    let state = AppState(std::sync::Arc::new(SharedState {
        app,
        metrics: metrics.clone(),
        streams: std::sync::Arc::new(tokio::sync::Semaphore::new(routes::hot::STREAMS_MAX)),
        streams_end: config.streams_end.clone(),
    }));
    let (api, document) = api();
    let document_json = document.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = config.request_timeout;
    let router = api
        .route("/openapi.json", axum::routing::get(move || async move { ([("content-type", "application/json")], document_json) }))
        .merge(console::routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(observe::ObserveLayer::new(metrics, timeout))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), ProcessRequestIds::new()))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let request_id =
                                request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(panic_response)),
        );
    Ok(router)
}

/// Request ids unique across processes without a random draw per request: a random prefix chosen
/// when the router is built, then a counter (`3f9c1a2b7d4e5f60-1a`). A UUID per request costs a
/// `getrandom` system call on every request of a flash sale; the id is written into a stack buffer,
/// not through `format!`, as it is made for every request.
#[derive(Clone)]
struct ProcessRequestIds {
    /// The prefix in hex and the dash.
    prefix: [u8; 17],
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ProcessRequestIds {
    fn new() -> Self {
        let mut prefix = [b'-'; 17];
        hex_into(rand::random(), &mut prefix[..16]);
        Self { prefix, next: std::sync::Arc::default() }
    }
}

/// Writes `value` as lowercase hex right-aligned in `out`, zero-padded.
fn hex_into(mut value: u64, out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

impl MakeRequestId for ProcessRequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let sequence = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let digits = (16 - sequence.leading_zeros() as usize / 4).max(1);
        let mut id = [0u8; 33];
        id[..17].copy_from_slice(&self.prefix);
        hex_into(sequence, &mut id[17..17 + digits]);
        HeaderValue::from_bytes(&id[..17 + digits]).ok().map(RequestId::new)
    }
}

async fn route_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged").into_response()
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes in-flight requests.
/// HTTP/1.1 (responses written as one buffer, `TCP_NODELAY`, so a keep-alive request costs one
/// read and one write) and HTTP/2 with prior knowledge (app clients multiplex many requests on one
/// connection, so one read and one write carry many), told apart by the connection preface.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    http.http1().writev(false).timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    http.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service).into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use tower::ServiceExt;

    async fn error_of(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
    }

    fn request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap_or_default()
    }

    #[test]
    fn request_ids_are_the_prefix_then_the_counter_in_hex() {
        let mut prefix = [b'-'; 17];
        hex_into(0x3f9c_1a2b_7d4e_5f60, &mut prefix[..16]);
        for sequence in [0, 1, 0x1a, 0xff, 0x100, 0x1234_5678_9abc, u64::MAX] {
            let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(sequence));
            let mut ids = ProcessRequestIds { prefix, next };
            let id = ids.make_request_id(&request("/")).map(|id| id.into_header_value());
            let expected = format!("3f9c1a2b7d4e5f60-{sequence:x}");
            assert_eq!(id.as_ref().and_then(|v| v.to_str().ok()), Some(expected.as_str()));
        }
    }

    #[tokio::test]
    async fn panics_become_500_in_the_error_shape() {
        #[allow(clippy::panic)]
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let router = Router::new().route("/boom", get(boom)).layer(CatchPanicLayer::custom(panic_response));
        let response = router.oneshot(request("/boom")).await.unwrap_or_default();
        assert_eq!(error_of(response).await, (StatusCode::INTERNAL_SERVER_ERROR, "internal".to_owned()));
    }
}
