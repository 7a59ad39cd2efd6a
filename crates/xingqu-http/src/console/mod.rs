//! The operator and merchant console: static pages, script, styles and the vendored Chart.js,
//! compiled into the binary and served under `/console` (no files at run time, no build step).
//!
//! The pages hold no data: their script signs in through `POST /v1/auth/login`, keeps the token
//! in `sessionStorage`, and calls the JSON API with `Authorization: Bearer`, so the API's scoping
//! (operators see everything, staff their own shop) is the console's too. A visit without a
//! valid token is sent to `/console/login`.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{MethodRouter, get};

/// Scripts and styles come only from this server; the API is same-origin. Chart.js sets canvas
/// sizes through inline styles, hence `'unsafe-inline'` for styles only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";

/// The console's routes; stateless, so they merge into any router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", page(include_str!("assets/index.html")))
        .route("/console/login", page(include_str!("assets/login.html")))
        .route("/console/operator", page(include_str!("assets/operator.html")))
        .route("/console/merchant", page(include_str!("assets/merchant.html")))
        .route("/console/campaigns", page(include_str!("assets/campaigns.html")))
        .route("/console/assets/console.js", asset("text/javascript; charset=utf-8", include_str!("assets/console.js")))
        .route("/console/assets/console.css", asset("text/css; charset=utf-8", include_str!("assets/console.css")))
        .route(
            "/console/assets/vendor/chart.umd.min.js",
            asset("text/javascript; charset=utf-8", include_str!("assets/vendor/chart.umd.min.js")),
        )
        .route(
            "/console/assets/vendor/chart.js-LICENSE.md",
            asset("text/plain; charset=utf-8", include_str!("assets/vendor/chart.js-LICENSE.md")),
        )
}

/// A page: never cached (it is tiny, and a stale one would call an API that moved on).
fn page<S: Clone + Send + Sync + 'static>(body: &'static str) -> MethodRouter<S> {
    get(move || async move {
        (
            [
                (header::CONTENT_TYPE, HTML),
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            body,
        )
            .into_response()
    })
}

/// A script or style sheet: cached briefly (a new binary may change it under the same name).
fn asset<S: Clone + Send + Sync + 'static>(content_type: &'static str, body: &'static str) -> MethodRouter<S> {
    get(move || async move {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=300"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn fetch(path: &str) -> (StatusCode, String, String) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap_or_default();
        let response = routes::<()>().oneshot(request).await.unwrap_or_default();
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        (status, content_type, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn pages_and_assets_are_served_from_the_binary() {
        for (path, content_type, contains) in [
            ("/console/", HTML, "data-page=\"index\""),
            ("/console/login", HTML, "login-form"),
            ("/console/operator", HTML, "gmv-chart"),
            ("/console/merchant", HTML, "orders"),
            ("/console/campaigns", HTML, "review-queue"),
            ("/console/assets/console.js", "text/javascript; charset=utf-8", "EventSource"),
            ("/console/assets/console.css", "text/css; charset=utf-8", "--accent"),
            ("/console/assets/vendor/chart.umd.min.js", "text/javascript; charset=utf-8", "Chart.js v4"),
            ("/console/assets/vendor/chart.js-LICENSE.md", "text/plain; charset=utf-8", "MIT License"),
        ] {
            let (status, got_type, body) = fetch(path).await;
            assert_eq!((status, got_type.as_str()), (StatusCode::OK, content_type), "{path}");
            assert!(body.contains(contains), "{path} lacks {contains}");
        }
        assert_eq!(fetch("/console").await.0, StatusCode::PERMANENT_REDIRECT);
    }

    /// Every script and style sheet a page names is one the console serves (no CDN, no inline
    /// script, which the CSP would block).
    #[tokio::test]
    async fn pages_load_only_served_assets() {
        for page in [
            "assets/index.html",
            "assets/login.html",
            "assets/operator.html",
            "assets/merchant.html",
            "assets/campaigns.html",
        ] {
            let html = match page {
                "assets/index.html" => include_str!("assets/index.html"),
                "assets/login.html" => include_str!("assets/login.html"),
                "assets/operator.html" => include_str!("assets/operator.html"),
                "assets/campaigns.html" => include_str!("assets/campaigns.html"),
                _ => include_str!("assets/merchant.html"),
            };
            assert!(!html.contains("<script>"), "{page} has an inline script");
            for reference in html.split(['"', '\'']).filter(|s| s.starts_with("/console/assets/")) {
                assert_eq!(fetch(reference).await.0, StatusCode::OK, "{page} names {reference}");
            }
            assert!(!html.contains("http://") && !html.contains("https://"), "{page} loads from elsewhere");
        }
    }
}
