//! Interaction events: batches stored in order and replayable; bad batches refused whole.

use crate::helpers::TestApp;
use serde_json::{Value, json};

crate::api_tests!(events_are_stored_in_order_and_replayable, bad_event_batches_store_nothing);

fn event(kind: &str, item_type: &str, item_id: i64, occurred_at: &str) -> Value {
    json!({"kind": kind, "item_type": item_type, "item_id": item_id, "occurred_at": occurred_at})
}

async fn events_are_stored_in_order_and_replayable(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (product, _) = app.listed_product(&staff, "延边大米", 5990).await;
    let creator_token = app.register("zhubo@example.com", "creator").await;
    let creator = app.get("/v1/me", Some(&creator_token)).await.id();
    let buyer = app.register("buyer@example.com", "consumer").await;
    let mut view = event("view", "product", product, "2025-11-25T23:59:30Z");
    view["watch_ms"] = json!(12_000);
    let batch = json!({"events": [view, event("add_to_cart", "product", product, "2025-11-26T00:00:00Z"), event("follow", "creator", creator, "2025-11-26T00:00:00Z")]});
    let accepted = app.post("/v1/events", Some(&buyer), batch).await;
    assert_eq!((accepted.status, accepted.body["accepted"].as_i64()), (202, Some(3)), "{accepted:?}");
    let anonymous = app
        .post(
            "/v1/events",
            None,
            json!({"device_id": "dev-1", "events": [event("impression", "product", product, "2025-11-26T00:00:00Z")]}),
        )
        .await;
    assert_eq!(anonymous.status, 202, "{anonymous:?}");

    let op = app.operator().await;
    app.get("/v1/events", Some(&buyer)).await.assert_error(403, "forbidden");
    let log = app.get("/v1/events", Some(&op)).await;
    let kinds: Vec<&str> =
        log.body["items"].as_array().expect("items").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["view", "add_to_cart", "follow", "impression"], "arrival order");
    assert_eq!(log.body["items"][0]["watch_ms"], 12_000);
    assert_eq!(log.body["items"][3]["device_id"], "dev-1");
    let after = log.body["items"][1]["id"].as_i64().expect("id");
    let rest = app.get(&format!("/v1/events?after_id={after}"), Some(&op)).await;
    assert_eq!(rest.body["items"].as_array().map(Vec::len), Some(2));
}

async fn bad_event_batches_store_nothing(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (product, _) = app.listed_product(&staff, "延边大米", 5990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let ok = event("view", "product", product, "2025-11-26T00:00:00Z");
    let mut negative = ok.clone();
    negative["watch_ms"] = json!(-1);
    let cases = vec![
        (json!({"events": []}), "empty"),
        (json!({"events": vec![ok.clone(); 1001]}), "too_many"),
        (json!({"events": [ok.clone(), event("view", "product", product, "2025-11-26T00:05:00Z")]}), "in_future"),
        (json!({"events": [ok.clone(), event("view", "product", product, "2025-09-01T00:00:00Z")]}), "too_old"),
        (json!({"events": [ok.clone(), negative]}), "negative"),
        (json!({"events": [ok.clone(), event("view", "product", 99_999, "2025-11-26T00:00:00Z")]}), "unknown_item"),
        (json!({"events": [event("teleport", "product", product, "2025-11-26T00:00:00Z")]}), "unknown_kind"),
        (json!({"events": [event("view", "video", 999_999, "2025-11-26T00:00:00Z")]}), "unknown_item"),
        (json!({"events": [event("purchase", "video", 1, "2025-11-26T00:00:00Z")]}), "kind_item_mismatch"),
        (json!({"events": [event("follow", "product", product, "2025-11-26T00:00:00Z")]}), "kind_item_mismatch"),
        (json!({"events": [event("follow", "creator", product, "2025-11-26T00:00:00Z")]}), "unknown_item"),
        (json!({"events": [event("view", "product", product, "yesterday")]}), "invalid_time"),
        (json!({"device_id": "bad device!", "events": [ok.clone()]}), "invalid_device_id"),
    ];
    for (body, code) in cases {
        let reply = app.post("/v1/events", Some(&buyer), body.clone()).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{}",
            body.to_string().chars().take(200).collect::<String>()
        );
    }
    app.post("/v1/events", None, json!({"events": [ok.clone()]})).await.assert_error(422, "missing");
    app.raw("POST", "/v1/events", Some(&buyer), r#"{"events": [{"kind": "view""#)
        .await
        .assert_error(400, "malformed_json");
    let op = app.operator().await;
    assert!(
        app.get("/v1/events", Some(&op)).await.body["items"].as_array().is_some_and(Vec::is_empty),
        "nothing stored"
    );
}
