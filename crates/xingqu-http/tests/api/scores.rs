//! Merchant experience scores: exact sub-scores and their weighted mean from a hand-made
//! fixture (quality after-sales, late and overdue dispatch, answers in and out of time), the
//! ranking, who may see which shop, and bad windows.

use crate::helpers::TestApp;
use serde_json::{Value, json};

crate::api_tests!(scores_follow_from_order_outcomes, scores_are_scoped_and_checked);

const HOUR_MS: i64 = 3_600_000;

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

/// Places and pays a one-line order: returns (order, line).
async fn paid_order(app: &TestApp, buyer: &str, key: &str, sku: i64) -> (i64, i64) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(buyer)
        .header("idempotency-key", key)
        .json(&json!({"lines": [{"sku_id": sku, "quantity": 1}], "address": address()}))
        .send()
        .await
        .expect("send");
    let created: Value = response.json().await.expect("json");
    let order = &created["orders"][0];
    let order_id = order["id"].as_i64().unwrap_or_else(|| panic!("no order in {created}"));
    let line_id = order["lines"][0]["id"].as_i64().unwrap_or_else(|| panic!("no line in {created}"));
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(buyer), None).await;
    assert_eq!(payment.status, 200, "{payment:?}");
    let paid = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(paid.body["outcome"], "paid", "{paid:?}");
    (order_id, line_id)
}

async fn ship(app: &TestApp, staff: &str, order_id: i64) {
    let shipped = app
        .post(
            &format!("/v1/orders/{order_id}/ship"),
            Some(staff),
            json!({"carrier": "顺丰", "tracking_number": format!("SF{order_id}")}),
        )
        .await;
    assert_eq!(shipped.body["status"], "shipped", "{shipped:?}");
}

async fn deliver(app: &TestApp, staff: &str, order_id: i64) {
    ship(app, staff, order_id).await;
    let delivered = app.post(&format!("/v1/orders/{order_id}/deliver"), Some(staff), json!({})).await;
    assert_eq!(delivered.body["status"], "delivered", "{delivered:?}");
}

/// A claim with a photo: returns its id.
async fn claim(app: &TestApp, buyer: &str, order_id: i64, line_id: i64, kind: &str) -> i64 {
    let asked = app
        .post(
            &format!("/v1/orders/{order_id}/after-sales"),
            Some(buyer),
            json!({"line_id": line_id, "kind": kind, "units": 1, "reason": "坏了",
                   "evidence": ["https://img.example.com/1.jpg"]}),
        )
        .await;
    assert_eq!((asked.status, asked.body["status"].as_str()), (201, Some("requested")), "{asked:?}");
    asked.id()
}

struct Fixture {
    shop_a: i64,
    shop_b: i64,
    staff_a: String,
    from_ms: i64,
    to_ms: i64,
}

/// Shop A, five one-line orders paid now (no dispatch promise: 48 hours to ship):
/// 1. shipped and delivered at once; an exchange the shop approves at once (a quality line);
/// 2. shipped and delivered at once; a repair the shop rejects at once (not a quality line);
/// 3. shipped and delivered at once; a re-ship the shop never answers: the timer approves it
///    48 hours later (a quality line, an answer missed);
/// 4. shipped 49 hours after payment (late);
/// 5. never shipped: overdue after 48 hours (late).
///
/// Also a withdrawn request on order 1 (not counted for service). Shop B: one order shipped at
/// once, no after-sales.
/// A: product 10000 × 3/5 = 6000, logistics 10000 × 3/5 = 6000, service 10000 × 2/3 = 6666,
/// overall (4×6000 + 3×6000 + 3×6666) / 10 = 6199. B: 10000, 10000, null → 10000.
async fn fixture(app: &TestApp) -> Fixture {
    let (staff_a, shop_a) = app.shop("延吉米铺", "222401").await;
    let (staff_b, shop_b) = app.shop("杭州茶庄", "330100").await;
    let (_, rice) = app.listed_product(&staff_a, "延边大米", 1_000).await;
    let (_, tea) = app.listed_product(&staff_b, "龙井", 3_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let start_ms = app.app.now_ms();
    let mut orders = Vec::new();
    for i in 0..5 {
        orders.push(paid_order(app, &buyer, &format!("a{i}"), rice).await);
    }
    let (b_order, _) = paid_order(app, &buyer, "b", tea).await;
    ship(app, &staff_b, b_order).await;
    for &(order_id, _) in &orders[..3] {
        deliver(app, &staff_a, order_id).await;
    }
    let exchange = claim(app, &buyer, orders[0].0, orders[0].1, "exchange").await;
    let approved = app.post(&format!("/v1/after-sales/{exchange}/approve"), Some(&staff_a), json!({})).await;
    assert_eq!(approved.body["status"], "awaiting_return", "{approved:?}");
    let repair = claim(app, &buyer, orders[1].0, orders[1].1, "repair").await;
    let rejected =
        app.post(&format!("/v1/after-sales/{repair}/reject"), Some(&staff_a), json!({"reason": "人为损坏"})).await;
    assert_eq!(rejected.body["status"], "rejected", "{rejected:?}");
    let reship = claim(app, &buyer, orders[2].0, orders[2].1, "reship").await;
    let withdrawn = claim(app, &buyer, orders[3].0, orders[3].1, "refund_before_shipment").await;
    let gone = app.post(&format!("/v1/after-sales/{withdrawn}/withdraw"), Some(&buyer), json!({})).await;
    assert_eq!(gone.body["status"], "closed", "{gone:?}");

    app.clock.advance_ms(49 * HOUR_MS);
    app.app.run_due_timers().await.expect("timers");
    let staff_a = app.login("延吉米铺@shop.test").await;
    let buyer = app.login("buyer@example.com").await;
    let status = app.get(&format!("/v1/after-sales/{reship}"), Some(&buyer)).await;
    assert_eq!(status.body["status"], "awaiting_replacement", "{status:?}");
    ship(app, &staff_a, orders[3].0).await;
    Fixture { shop_a, shop_b, staff_a, from_ms: start_ms - HOUR_MS, to_ms: start_ms + HOUR_MS }
}

fn scores_path(f: &Fixture, extra: &str) -> String {
    format!("/v1/analytics/scores?from_ms={}&to_ms={}{extra}", f.from_ms, f.to_ms)
}

async fn scores_follow_from_order_outcomes(app: &TestApp) {
    let f = fixture(app).await;
    let op = app.operator().await;
    let all = app.get(&scores_path(&f, ""), Some(&op)).await;
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(
        all.body,
        json!({"from_ms": f.from_ms, "to_ms": f.to_ms, "merchant_id": null, "items": [
            {"rank": 1, "merchant_id": f.shop_b, "shop_name": "杭州茶庄", "orders": 1,
             "overall_bp": 10_000, "product_bp": 10_000, "logistics_bp": 10_000, "service_bp": null,
             "lines": 1, "quality_lines": 0, "due_orders": 1, "on_time_orders": 1,
             "after_sales": 0, "answered_in_time": 0},
            {"rank": 2, "merchant_id": f.shop_a, "shop_name": "延吉米铺", "orders": 5,
             "overall_bp": 6_199, "product_bp": 6_000, "logistics_bp": 6_000, "service_bp": 6_666,
             "lines": 5, "quality_lines": 2, "due_orders": 5, "on_time_orders": 3,
             "after_sales": 3, "answered_in_time": 2},
        ]})
    );
    // One shop, for the operator and for its own staff: the same figures.
    for token in [&op, &f.staff_a] {
        let one = app.get(&scores_path(&f, &format!("&merchant_id={}", f.shop_a)), Some(token)).await;
        assert_eq!(one.body["merchant_id"], f.shop_a, "{one:?}");
        assert_eq!(one.body["items"].as_array().map(Vec::len), Some(1), "{one:?}");
        assert_eq!(one.body["items"][0]["overall_bp"], 6_199, "{one:?}");
    }
    let own = app.get(&scores_path(&f, ""), Some(&f.staff_a)).await;
    assert_eq!(
        (own.body["merchant_id"].as_i64(), own.body["items"][0]["merchant_id"].as_i64()),
        (Some(f.shop_a), Some(f.shop_a))
    );
    // A window before the orders: nobody to score.
    let early = app
        .get(&format!("/v1/analytics/scores?from_ms={}&to_ms={}", f.from_ms - 10 * 24 * HOUR_MS, f.from_ms), Some(&op))
        .await;
    assert_eq!(early.body["items"], json!([]), "{early:?}");
}

async fn scores_are_scoped_and_checked(app: &TestApp) {
    let (staff_a, _) = app.shop("延吉米铺", "222401").await;
    let (_, shop_b) = app.shop("杭州茶庄", "330100").await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let creator = app.register("creator@example.com", "creator").await;
    let path = "/v1/analytics/scores";
    app.get(path, Some(&buyer)).await.assert_error(403, "forbidden");
    app.get(path, Some(&creator)).await.assert_error(403, "forbidden");
    assert_eq!(app.get(path, None).await.status, 401);
    app.get(&format!("{path}?merchant_id={shop_b}"), Some(&staff_a)).await.assert_error(403, "forbidden");
    app.get(&format!("{path}?merchant_id=999999"), Some(&op)).await.assert_error(404, "merchant_not_found");
    app.get(&format!("{path}?merchant_id=0"), Some(&op)).await.assert_error(400, "invalid_id");
    app.get(&format!("{path}?from_ms=10&to_ms=10"), Some(&op)).await.assert_error(400, "invalid_window");
    app.get(&format!("{path}?from_ms=-1&to_ms=10"), Some(&op)).await.assert_error(400, "invalid_window");
    let too_long = 401 * 24 * HOUR_MS;
    app.get(&format!("{path}?from_ms=0&to_ms={too_long}"), Some(&op)).await.assert_error(400, "window_too_long");
    app.get(&format!("{path}?from_ms=soon"), Some(&op)).await.assert_error(400, "invalid_query");
    let empty = app.get(path, Some(&op)).await;
    assert_eq!((empty.status, &empty.body["items"]), (200, &json!([])), "{empty:?}");
}
