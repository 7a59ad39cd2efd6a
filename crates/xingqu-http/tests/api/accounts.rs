//! Registration, sign-in, tokens that expire and revoke, and operator-only account creation.

use crate::helpers::{PASSWORD, TestApp};
use serde_json::json;

crate::api_tests!(
    register_login_logout,
    tokens_expire,
    concurrent_registrations_make_one_account,
    operators_create_operators
);

async fn register_login_logout(app: &TestApp) {
    let token = app.register("Li.Na@Example.com", "consumer").await;
    assert!(token.starts_with("xq_"));
    let me = app.get("/v1/me", Some(&token)).await;
    assert_eq!(
        (me.status, me.body["email"].as_str(), me.body["role"].as_str()),
        (200, Some("li.na@example.com"), Some("consumer"))
    );
    assert!(me.body.get("password_hash").is_none());

    let again = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "li.na@example.com", "password": PASSWORD, "display_name": "x"}),
        )
        .await;
    again.assert_error(409, "email_taken");
    let wrong =
        app.post("/v1/auth/login", None, json!({"email": "li.na@example.com", "password": "wrong password"})).await;
    wrong.assert_error(401, "invalid_credentials");
    let unknown = app.post("/v1/auth/login", None, json!({"email": "nobody@example.com", "password": PASSWORD})).await;
    unknown.assert_error(401, "invalid_credentials");

    let second = app.login("li.na@example.com").await;
    assert_ne!(second, token);
    assert_eq!(app.send("POST", "/v1/auth/logout", Some(&token), None).await.status, 204);
    app.get("/v1/me", Some(&token)).await.assert_error(401, "invalid_token");
    assert_eq!(app.get("/v1/me", Some(&second)).await.status, 200, "other sessions live on");

    app.get("/v1/me", None).await.assert_error(401, "unauthenticated");
    app.get("/v1/me", Some("xq_forged")).await.assert_error(401, "invalid_token");
    app.get("/v1/me", Some("not-even-a-token")).await.assert_error(401, "invalid_token");
    let basic =
        reqwest::Client::new().get(format!("{}/v1/me", app.url)).basic_auth("a", Some("b")).send().await.expect("send");
    assert_eq!(basic.status().as_u16(), 401);

    let creator = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "c@example.com", "password": PASSWORD, "display_name": "主播", "role": "creator"}),
        )
        .await;
    assert_eq!(creator.body["user"]["role"], "creator");
    for role in ["operator", "merchant_staff", "admin"] {
        let reply = app
            .post(
                "/v1/auth/register",
                None,
                json!({"email": "x@example.com", "password": PASSWORD, "display_name": "x", "role": role}),
            )
            .await;
        reply.assert_error(422, "invalid_role");
    }
    assert!(app.app.store().user_by_email("x@example.com").await.expect("lookup").is_none());
}

async fn tokens_expire(app: &TestApp) {
    let token = app.register("ttl@example.com", "consumer").await;
    app.clock.advance_ms(3_599_000);
    assert_eq!(app.get("/v1/me", Some(&token)).await.status, 200);
    app.clock.advance_ms(1_000);
    app.get("/v1/me", Some(&token)).await.assert_error(401, "invalid_token");
}

async fn concurrent_registrations_make_one_account(app: &TestApp) {
    let attempt = || {
        app.post(
            "/v1/auth/register",
            None,
            json!({"email": "race@example.com", "password": PASSWORD, "display_name": "r"}),
        )
    };
    let (a, b, c, d) = tokio::join!(attempt(), attempt(), attempt(), attempt());
    let mut statuses: Vec<u16> = [&a, &b, &c, &d].iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409], "{a:?} {b:?} {c:?} {d:?}");
}

async fn operators_create_operators(app: &TestApp) {
    let consumer = app.register("plain@example.com", "consumer").await;
    let body = json!({"email": "op2@xingqu.test", "password": PASSWORD, "display_name": "op2"});
    app.post("/v1/operators", Some(&consumer), body.clone()).await.assert_error(403, "forbidden");
    app.post("/v1/operators", None, body.clone()).await.assert_error(401, "unauthenticated");
    let op = app.operator().await;
    let created = app.post("/v1/operators", Some(&op), body).await;
    assert_eq!((created.status, created.body["role"].as_str()), (201, Some("operator")));
}
