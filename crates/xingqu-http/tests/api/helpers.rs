//! The test server and a small HTTP client around it.

use serde_json::{Value, json};
use std::sync::Arc;
use xingqu_app::clock::FakeClock;
use xingqu_app::{App, AppConfig};
use xingqu_http::HttpConfig;
use xingqu_store::Backend;
use xingqu_store::testing::TestDb;

/// 2025-11-26T00:00:00Z.
pub const START_MS: i64 = 1_764_115_200_000;
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub url: String,
    pub app: App,
    pub clock: FakeClock,
    client: reqwest::Client,
    db: TestDb,
    server: tokio::task::JoinHandle<()>,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }

    pub fn id(&self) -> i64 {
        self.body["id"].as_i64().unwrap_or_else(|| panic!("no id in {self:?}"))
    }

    /// Asserts a 4xx with the given status and error code, and the shape every error has.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{self:?}");
        assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, HttpConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, http: HttpConfig) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        let clock = FakeClock::new(START_MS);
        let app = App::new(
            db.store.clone(),
            Arc::new(clock.clone()),
            AppConfig { session_ttl_s: 3600, ..AppConfig::default() },
        );
        let router = xingqu_http::router(app.clone(), http).expect("router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = xingqu_http::serve(listener, router, std::future::pending()).await;
        });
        Some(TestApp { url, app, clock, client: reqwest::Client::new(), db, server })
    }

    pub async fn finish(self) {
        self.server.abort();
        self.db.finish().await;
    }

    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("send request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("read body");
        Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send("POST", path, token, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send("PATCH", path, token, Some(("application/json", body.to_string().into_bytes()))).await
    }

    /// Sends raw bytes as JSON (for malformed bodies).
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
        self.send(method, path, token, Some(("application/json", body.as_bytes().to_vec()))).await
    }

    pub async fn register(&self, email: &str, role: &str) -> String {
        let reply = self
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "display_name": email, "role": role}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["token"].as_str().expect("token").to_owned()
    }

    pub async fn login(&self, email: &str) -> String {
        let reply = self.post("/v1/auth/login", None, json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["token"].as_str().expect("token").to_owned()
    }

    /// An operator's token (operators are created out of band, as `xingqu admin` does).
    pub async fn operator(&self) -> String {
        let email = "op@xingqu.test";
        if self.app.store().user_by_email(email).await.expect("lookup").is_none() {
            self.app.create_operator(email, PASSWORD, "op").await.expect("create operator");
        }
        self.login(email).await
    }

    /// The category tree `food/rice` and `beauty/skincare`: returns (rice, skincare) leaf ids.
    pub async fn categories(&self) -> (i64, i64) {
        let op = self.operator().await;
        let existing = self.get("/v1/categories", None).await;
        let find = |slug: &str| {
            existing.body["items"]
                .as_array()
                .and_then(|items| items.iter().find(|c| c["slug"] == slug))
                .map(|c| c["id"].as_i64())
        };
        if let (Some(Some(rice)), Some(Some(skincare))) = (find("rice"), find("skincare")) {
            return (rice, skincare);
        }
        let food = self.post("/v1/categories", Some(&op), json!({"slug": "food", "name": "食品"})).await.id();
        let rice = self
            .post("/v1/categories", Some(&op), json!({"parent_id": food, "slug": "rice", "name": "米面"}))
            .await
            .id();
        let beauty = self
            .post("/v1/categories", Some(&op), json!({"slug": "beauty", "name": "美妆", "flags": {"cosmetics": true}}))
            .await
            .id();
        let skincare = self
            .post(
                "/v1/categories",
                Some(&op),
                json!({"parent_id": beauty, "slug": "skincare", "name": "护肤", "flags": {"cosmetics": true}}),
            )
            .await
            .id();
        (rice, skincare)
    }

    /// A shop approved by an operator, serving the rice category: returns (staff token, merchant id).
    pub async fn shop(&self, name: &str, region_code: &str) -> (String, i64) {
        let (rice, _) = self.categories().await;
        let staff = self.register(&format!("{name}@shop.test"), "consumer").await;
        let merchant = self
            .post(
                "/v1/merchants",
                Some(&staff),
                json!({"shop_name": name, "region_code": region_code, "category_ids": [rice]}),
            )
            .await;
        assert_eq!(merchant.status, 201, "{merchant:?}");
        let op = self.operator().await;
        let approved = self
            .post(&format!("/v1/merchants/{}/qualification", merchant.id()), Some(&op), json!({"decision": "approve"}))
            .await;
        assert_eq!(approved.status, 200, "{approved:?}");
        (staff, merchant.id())
    }

    /// A listed product with one SKU at `price_fen` in the shop of `staff`: returns (product, sku).
    pub async fn listed_product(&self, staff: &str, title: &str, price_fen: i64) -> (i64, i64) {
        let (rice, _) = self.categories().await;
        self.listed_product_in(staff, rice, title, price_fen).await
    }

    /// [`TestApp::listed_product`] in `category_id`.
    pub async fn listed_product_in(&self, staff: &str, category_id: i64, title: &str, price_fen: i64) -> (i64, i64) {
        let created = self
            .post(
                "/v1/products",
                Some(staff),
                json!({"category_id": category_id, "title": title, "farm_specialty": true,
                       "skus": [{"spec": {"规格": "5kg"}, "price_fen": price_fen, "stock": 100, "weight_g": 5000}]}),
            )
            .await;
        assert_eq!(created.status, 201, "{created:?}");
        let id = created.id();
        let submitted = self.post(&format!("/v1/products/{id}/submit"), Some(staff), json!({})).await;
        assert_eq!(submitted.status, 200, "{submitted:?}");
        let op = self.operator().await;
        let approved = self.post(&format!("/v1/products/{id}/review"), Some(&op), json!({"decision": "approve"})).await;
        assert_eq!(approved.body["status"], "listed", "{approved:?}");
        (id, created.body["skus"][0]["id"].as_i64().expect("sku id"))
    }
}

/// Polls all `futures` together (every request is in flight before any finishes) and returns
/// their outputs in order.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
