//! Price protection over HTTP: SKU settings, buyers' claims (idempotent), the automatic sweep a
//! price cut starts, protection at shipment, windows to the second, and the ledger after it all.

use crate::helpers::{Reply, TestApp};
use serde_json::{Value, json};

crate::api_tests!(
    price_protection_claims_pay_the_drop_once,
    automatic_protection_sweeps_eligible_lines_only,
    price_protection_bad_input_and_strangers_are_refused
);

const DAY_MS: i64 = 86_400_000;

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> Reply {
    app.send("PUT", path, Some(token), Some(("application/json", body.to_string().into_bytes()))).await
}

/// Places and pays an order for `quantity` of `sku`; returns (order id, line id).
async fn paid_order(app: &TestApp, buyer: &str, key: &str, sku: i64, quantity: i64) -> (i64, i64) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(buyer)
        .header("idempotency-key", key)
        .json(&json!({"lines": [{"sku_id": sku, "quantity": quantity}], "address": address()}))
        .send()
        .await
        .expect("send");
    let body: Value = response.json().await.expect("json");
    let order = &body["orders"][0];
    let (order_id, line_id) =
        (order["id"].as_i64().expect("order id"), order["lines"][0]["id"].as_i64().expect("line"));
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(buyer), None).await;
    let paid = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(paid.body["outcome"], "paid", "{paid:?}");
    (order_id, line_id)
}

async fn ship(app: &TestApp, staff: &str, order_id: i64) {
    let shipped = app
        .post(&format!("/v1/orders/{order_id}/ship"), Some(staff), json!({"carrier": "顺丰", "tracking_number": "SF1"}))
        .await;
    assert_eq!(shipped.body["status"], "shipped", "{shipped:?}");
}

async fn claim(app: &TestApp, buyer: &str, line_id: i64) -> Reply {
    app.send("POST", &format!("/v1/order-lines/{line_id}/price-protection"), Some(buyer), None).await
}

async fn cut_price(app: &TestApp, staff: &str, sku: i64, price_fen: i64) {
    let cut =
        app.patch(&format!("/v1/skus/{sku}"), Some(staff), json!({"price_fen": price_fen, "reason": "双11"})).await;
    assert_eq!(cut.status, 200, "{cut:?}");
}

async fn ledger_is_clean(app: &TestApp) {
    let report = app.app.store().check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

async fn price_protection_claims_pay_the_drop_once(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let set = put(app, &format!("/v1/skus/{sku}/price-protection"), &staff, json!({"window_days": 7})).await;
    assert_eq!((set.status, set.body["window_days"].as_i64(), set.body["auto"].as_bool()), (200, Some(7), Some(false)));
    let buyer = app.register("buyer@example.com", "consumer").await;
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;

    // Before shipment a claim is refused: protection is paid at shipment.
    claim(app, &buyer, line_id).await.assert_error(409, "not_yet_shipped");
    ship(app, &staff, order_id).await;
    claim(app, &buyer, line_id).await.assert_error(409, "no_price_drop");

    cut_price(app, &staff, sku, 9_000).await;
    let paid = claim(app, &buyer, line_id).await;
    assert_eq!(paid.status, 201, "{paid:?}");
    assert_eq!(
        (paid.body["kind"].as_str(), paid.body["amount_fen"].as_i64(), paid.body["payout"].as_str()),
        (Some("price_protection"), Some(2_000), Some("sent"))
    );
    assert_eq!(paid.body["bearers"], json!([{"party": "merchant", "amount_fen": 2000}]));
    let again = claim(app, &buyer, line_id).await;
    assert_eq!((again.status, again.body["id"].clone()), (200, paid.body["id"].clone()), "the same drop pays once");

    // A deeper cut pays the difference only; raising the price again pays nothing more.
    cut_price(app, &staff, sku, 8_500).await;
    let deeper = claim(app, &buyer, line_id).await;
    assert_eq!((deeper.status, deeper.body["amount_fen"].as_i64()), (201, Some(1_000)));
    cut_price(app, &staff, sku, 9_500).await;
    cut_price(app, &staff, sku, 8_500).await;
    claim(app, &buyer, line_id).await.assert_error(409, "no_price_drop");

    // The window is counted to the second from placement: 7 days less a second is inside.
    cut_price(app, &staff, sku, 8_000).await;
    app.clock.advance_ms(7 * DAY_MS - 1_000);
    let buyer = app.login("buyer@example.com").await;
    let last = claim(app, &buyer, line_id).await;
    assert_eq!((last.status, last.body["amount_fen"].as_i64()), (201, Some(1_000)), "{last:?}");
    let staff = app.login("延吉米铺@shop.test").await;
    cut_price(app, &staff, sku, 7_000).await;
    app.clock.advance_ms(2_000);
    claim(app, &buyer, line_id).await.assert_error(409, "protection_window_closed");

    let listed = app.get(&format!("/v1/orders/{order_id}/after-sales"), Some(&staff)).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(3));
    let detail = app.get(&format!("/v1/price-protections/{}", paid.id()), Some(&buyer)).await;
    assert_eq!((detail.body["claimed"].as_bool(), detail.body["amount_fen"].as_i64()), (Some(true), Some(2_000)));
    app.get(&format!("/v1/price-protections/{}", paid.id()), Some(&app.register("x@example.com", "consumer").await))
        .await
        .assert_error(404, "price_protection_not_found");
    // The merchant bore 4 000 of protection on a 20 000 order.
    let store = app.app.store();
    assert_eq!(store.account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance"), -16_000);
    assert_eq!(store.account_balance("refunds").await.expect("balance"), -4_000);
    ledger_is_clean(app).await;
}

async fn automatic_protection_sweeps_eligible_lines_only(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let op = app.operator().await;
    // Automatic mode; during the campaign the platform bears half.
    let set = put(
        app,
        &format!("/v1/skus/{sku}/price-protection"),
        &staff,
        json!({"window_days": 15, "from": "sign_off", "auto": true}),
    )
    .await;
    assert_eq!(set.status, 200, "{set:?}");
    put(
        app,
        &format!("/v1/skus/{sku}/price-protection"),
        &staff,
        json!({"window_days": 15, "from": "sign_off", "auto": true, "platform_bps": 5000}),
    )
    .await
    .assert_error(403, "forbidden");
    let half = put(
        app,
        &format!("/v1/skus/{sku}/price-protection"),
        &op,
        json!({"window_days": 15, "from": "sign_off", "auto": true, "platform_bps": 5000}),
    )
    .await;
    assert_eq!(half.body["platform_bps"], 5000, "{half:?}");

    let mut buyers = Vec::new();
    for i in 0..4 {
        buyers.push(app.register(&format!("b{i}@example.com"), "consumer").await);
    }
    let (shipped, shipped_line) = paid_order(app, &buyers[0], "a", sku, 1).await;
    let (waiting, waiting_line) = paid_order(app, &buyers[1], "b", sku, 1).await;
    let (cancelled, _) = paid_order(app, &buyers[2], "c", sku, 1).await;
    let (claimed, claimed_line) = paid_order(app, &buyers[3], "d", sku, 1).await;
    ship(app, &staff, shipped).await;
    ship(app, &staff, claimed).await;
    let cancel = app.post(&format!("/v1/orders/{cancelled}/cancel"), Some(&buyers[2]), json!({})).await;
    assert_eq!(cancel.body["status"], "cancelled");

    // The cut is swept by the timers: shipped lines are paid, the unshipped one waits, the
    // cancelled one never is. A buyer who claimed first is not paid twice.
    cut_price(app, &staff, sku, 9_001).await;
    assert_eq!(claim(app, &buyers[3], claimed_line).await.status, 201);
    let report = app.app.run_due_timers().await.expect("timers");
    assert_eq!(report.protection_refunds, 1, "{report:?}");
    assert_eq!(app.app.run_due_timers().await.expect("again").protection_refunds, 0, "a sweep runs once");
    let paid = app.get(&format!("/v1/orders/{shipped}/after-sales"), Some(&buyers[0])).await;
    assert_eq!(
        (paid.body[0]["amount_fen"].as_i64(), paid.body[0]["line_id"].as_i64(), paid.body[0]["bearers"].clone()),
        (
            Some(999),
            Some(shipped_line),
            json!([{"party": "merchant", "amount_fen": 500}, {"party": "platform", "amount_fen": 499}])
        )
    );
    assert_eq!(
        app.get(&format!("/v1/orders/{claimed}/after-sales"), Some(&buyers[3])).await.body.as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(app.get(&format!("/v1/orders/{waiting}/after-sales"), Some(&buyers[1])).await.body, json!([]));
    assert_eq!(app.get(&format!("/v1/orders/{cancelled}/after-sales"), Some(&buyers[2])).await.body, json!([]));

    // The waiting order is paid when it ships, for the lowest price while it waited.
    cut_price(app, &staff, sku, 8_000).await;
    cut_price(app, &staff, sku, 9_500).await;
    app.app.run_due_timers().await.expect("timers");
    ship(app, &staff, waiting).await;
    let at_shipment = app.get(&format!("/v1/orders/{waiting}/after-sales"), Some(&buyers[1])).await;
    assert_eq!(
        (at_shipment.body[0]["amount_fen"].as_i64(), at_shipment.body[0]["line_id"].as_i64()),
        (Some(2_000), Some(waiting_line)),
        "{at_shipment:?}"
    );
    let store = app.app.store();
    assert!(store.account_balance("platform_subsidy_budget").await.expect("balance") > 0);
    assert!(store.account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance") < 0);
    ledger_is_clean(app).await;
}

async fn price_protection_bad_input_and_strangers_are_refused(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("苏州绣坊", "320500").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let path = format!("/v1/skus/{sku}/price-protection");
    put(app, &path, &staff, json!({"window_days": 10})).await.assert_error(422, "invalid_protection_window");
    put(app, &path, &staff, json!({"window_days": 7, "from": "tomorrow"}))
        .await
        .assert_error(422, "invalid_protection_window_from");
    put(app, &path, &staff, json!({"window_days": "7"})).await.assert_error(422, "invalid_type");
    put(app, &path, &other_staff, json!({"window_days": 7})).await.assert_error(404, "sku_not_found");
    put(app, "/v1/skus/999999/price-protection", &staff, json!({"window_days": 7}))
        .await
        .assert_error(404, "sku_not_found");
    assert_eq!(put(app, &path, &staff, json!({"window_days": 7})).await.status, 200);

    let buyer = app.register("buyer@example.com", "consumer").await;
    let stranger = app.register("stranger@example.com", "consumer").await;
    let (order_id, line_id) = paid_order(app, &buyer, "k", sku, 1).await;
    ship(app, &staff, order_id).await;
    cut_price(app, &staff, sku, 9_000).await;
    claim(app, &stranger, line_id).await.assert_error(404, "order_line_not_found");
    claim(app, &buyer, 999_999).await.assert_error(404, "order_line_not_found");
    claim(app, &buyer, -1).await.assert_error(400, "invalid_id");
    app.get(&format!("/v1/orders/{order_id}/after-sales"), Some(&stranger)).await.assert_error(404, "order_not_found");
    assert_eq!(app.get(&format!("/v1/orders/{order_id}/after-sales"), Some(&buyer)).await.body, json!([]));
}
