//! Health, readiness, metrics, the OpenAPI document, request ids and unknown routes.

use crate::helpers::TestApp;

crate::api_tests!(
    openapi_describes_every_route,
    health_metrics_and_request_ids,
    unknown_routes_and_methods,
    http2_clients_multiplex_on_one_connection
);

async fn openapi_describes_every_route(app: &TestApp) {
    let doc = app.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc.body["openapi"]);
    let paths = doc.body["paths"].as_object().expect("paths");
    for expected in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/auth/logout",
        "/v1/me",
        "/v1/operators",
        "/v1/categories",
        "/v1/categories/{id}",
        "/v1/brands",
        "/v1/brands/{id}",
        "/v1/merchants",
        "/v1/merchants/{id}",
        "/v1/merchants/{id}/qualification",
        "/v1/products",
        "/v1/products/{id}",
        "/v1/products/{id}/submit",
        "/v1/products/{id}/review",
        "/v1/products/{id}/delist",
        "/v1/products/{id}/ban",
        "/v1/products/{id}/status-log",
        "/v1/products/{id}/skus",
        "/v1/skus/{id}",
        "/v1/skus/{id}/price-history",
        "/v1/merchants/{id}/fulfilment",
        "/v1/quotes",
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/orders/{id}/pay",
        "/v1/orders/{id}/events",
        "/v1/hot-lists",
        "/v1/hot-lists/suspects",
        "/v1/hot-lists/for-me",
        "/v1/hot-lists/stream",
        "/v1/analytics/overview",
        "/v1/analytics/overview.csv",
        "/v1/after-sales",
        "/v1/events",
        "/v1/orders/{id}/ship",
        "/v1/orders/{id}/deliver",
        "/v1/orders/{id}/confirm-receipt",
        "/v1/orders/{id}/cancel",
        "/v1/payments/simulated/callback",
        "/v1/flash-sales",
        "/v1/flash-sales/{id}",
        "/v1/flash-sales/{id}/orders",
        "/v1/coupons",
        "/v1/coupons/{id}/claims",
        "/v1/red-packet-pools",
        "/v1/wallet",
        "/v1/creators/{id}/follow",
        "/v1/live-sessions",
        "/v1/live-sessions/{id}/events",
        "/v1/lucky-bags",
        "/v1/lucky-bags/{id}/entries",
        "/v1/lucky-bags/{id}/proof",
        "/v1/skus/{id}/price-protection",
        "/v1/order-lines/{id}/price-protection",
        "/v1/orders/{id}/after-sales",
        "/v1/after-sales/{id}",
        "/v1/price-protections/{id}",
        "/v1/after-sales/{id}/pickup",
        "/v1/merchants/{id}/assurance",
        "/v1/assurance/requests",
        "/v1/analytics/scores",
        "/v1/videos",
        "/v1/videos/{id}",
        "/v1/creators/{id}/videos",
        "/v1/creators/{id}",
        "/v1/live-sessions/{id}/products",
        "/v1/feed",
        "/v1/feed/exposure",
        "/v1/campaigns",
        "/v1/campaigns/{id}",
        "/v1/campaigns/{id}/zones",
        "/v1/campaigns/{id}/theme-days",
        "/v1/campaigns/{id}/live-slots",
        "/v1/campaigns/{id}/subsidy-pools",
        "/v1/zones/{id}",
        "/v1/zones/{id}/entries",
        "/v1/zone-entries/{id}/review",
        "/v1/zone-entries/{id}/withdraw",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not described");
    }
    // Every operation documents its responses, and every body it accepts has a schema.
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            let bodiless = [
                "/submit",
                "/logout",
                "/pay",
                "/confirm-receipt",
                "/claims",
                "/stop",
                "/resume",
                "/follow",
                "/end",
                "/price-protection",
                "/approve",
                "/receive",
                "/refund",
                "/fulfil",
                "/withdraw",
                "/remove",
                "/start",
            ]
            .iter()
            .any(|end| path.ends_with(end));
            if matches!(method.as_str(), "post" | "patch" | "put") && !bodiless {
                assert!(operation["requestBody"].is_object(), "{method} {path} has no request body schema");
            }
        }
    }
    assert!(doc.body["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}

async fn health_metrics_and_request_ids(app: &TestApp) {
    assert_eq!(app.get("/healthz", None).await.body["status"], "ok");
    assert_eq!(app.get("/readyz", None).await.body["status"], "ok");
    app.get("/v1/products/999", None).await.assert_error(404, "product_not_found");
    let response = reqwest::get(format!("{}/metrics", app.url)).await.expect("metrics");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("x-request-id"), "responses carry a request id");
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"xingqu_http_requests_total{method="GET",route="/v1/products/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains("xingqu_http_request_duration_seconds_bucket"), "{text}");
    let client = reqwest::Client::new();
    let echoed =
        client.get(format!("{}/healthz", app.url)).header("x-request-id", "abc-123").send().await.expect("send");
    assert_eq!(echoed.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
}

async fn unknown_routes_and_methods(app: &TestApp) {
    app.get("/v1/nothing-here", None).await.assert_error(404, "route_not_found");
    app.send("DELETE", "/v1/categories", None, None).await.assert_error(405, "method_not_allowed");
    app.get("/v1/products/abc", None).await.assert_error(400, "invalid_id");
    app.get("/v1/products/-3", None).await.assert_error(400, "invalid_id");
    app.get("/v1/products/99999999999999999999999", None).await.assert_error(400, "invalid_id");
}

/// Apps speak HTTP/2 with prior knowledge: several requests in flight on one connection, each
/// answered with its own status and body, the error shape included.
async fn http2_clients_multiplex_on_one_connection(app: &TestApp) {
    let address = app.url.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let get = |path: &'static str| {
        let (send, url) = (send.clone(), app.url.clone());
        async move {
            let mut send = send.ready().await.expect("ready");
            let request = http::Request::get(format!("{url}{path}")).body(()).expect("request");
            let (response, _) = send.send_request(request, true).expect("send");
            let response = response.await.expect("response");
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk: bytes::Bytes = chunk.expect("chunk");
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).expect("json"))
        }
    };
    let (health, missing, ready) = tokio::join!(get("/healthz"), get("/v1/products/999"), get("/readyz"));
    assert_eq!((health.0, &health.1["status"]), (200, &serde_json::json!("ok")));
    assert_eq!((missing.0, &missing.1["error"]["code"]), (404, &serde_json::json!("product_not_found")));
    assert_eq!(ready.0, 200);
}
