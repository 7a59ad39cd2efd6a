//! Price protection over HTTP: SKU settings, buyers' claims (idempotent), the automatic sweep a
//! price cut starts, protection at shipment, windows to the second, and the ledger after it all.

use crate::helpers::{Reply, TestApp};
use serde_json::{Value, json};

crate::api_tests!(
    fresh_damage_and_allergy_claims_end_to_the_second,
    every_waiting_claim_has_an_end_and_settled_orders_still_pay_back,
    seven_day_returns_end_to_the_second,
    refunding_every_unit_gives_the_coupon_back,
    assured_purchase_services_are_promised_per_line_and_kept,
    returns_follow_their_deadlines_to_the_second,
    rejections_go_to_arbitration_and_refunds_respect_protection,
    after_sale_requests_refuse_bad_input_and_strangers,
    price_protection_claims_pay_the_drop_once,
    automatic_protection_sweeps_eligible_lines_only,
    a_flash_sale_withdrawn_before_its_start_owes_no_protection,
    price_protection_bad_input_and_strangers_are_refused,
    the_assurance_queue_lists_requests_for_operators_only
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

    // A flash sale the merchant runs is today's price too (merchant-funded): the line is owed
    // down to it, once.
    let sale = json!({"sku_id": sku, "price_fen": 8_200, "starts_at": "2025-11-26T00:00:00Z",
        "ends_at": "2025-11-27T00:00:00Z", "pool_units": 10, "per_user_limit": 1});
    assert_eq!(app.post("/v1/flash-sales", Some(&staff), sale).await.status, 201);
    let flash = claim(app, &buyer, line_id).await;
    assert_eq!((flash.status, flash.body["amount_fen"].as_i64()), (201, Some(600)), "{flash:?}");
    assert_eq!(claim(app, &buyer, line_id).await.status, 200, "the same flash price pays once");

    // So is the list price less a shop coupon anyone may claim now (the merchant funds it too);
    // a coupon that needs more than one unit's price does not count.
    for (threshold_fen, off_fen) in [(10_000, 3_000), (5_000, 500)] {
        let coupon = json!({"class": "shop", "merchant_id": merchant, "title": "店铺券", "kind": "threshold",
            "threshold_fen": threshold_fen, "off_fen": off_fen, "claim_starts_at": "2025-11-25T00:00:00Z",
            "claim_ends_at": "2025-12-31T00:00:00Z", "valid_days": 7, "quantity": 100});
        assert_eq!(app.post("/v1/coupons", Some(&staff), coupon).await.status, 201);
    }
    let couponed = claim(app, &buyer, line_id).await;
    // (8 200 flash − (8 500 − 500)) × 2.
    assert_eq!((couponed.status, couponed.body["amount_fen"].as_i64()), (201, Some(400)), "{couponed:?}");
    assert!(couponed.body["reason"].as_str().is_some_and(|r| r.contains("brings it to 8000")), "{couponed:?}");
    assert_eq!(claim(app, &buyer, line_id).await.status, 200, "the same coupon price pays once");

    // The window is counted to the second from placement: 7 days less a second is inside.
    cut_price(app, &staff, sku, 8_000).await;
    app.clock.advance_ms(7 * DAY_MS - 1_000);
    let buyer = app.login("buyer@example.com").await;
    let last = claim(app, &buyer, line_id).await;
    // Down to 8 000 − 500 from 8 000.
    assert_eq!((last.status, last.body["amount_fen"].as_i64()), (201, Some(1_000)), "{last:?}");
    let staff = app.login("延吉米铺@shop.test").await;
    cut_price(app, &staff, sku, 7_000).await;
    app.clock.advance_ms(2_000);
    claim(app, &buyer, line_id).await.assert_error(409, "protection_window_closed");

    let listed = app.get(&format!("/v1/orders/{order_id}/after-sales"), Some(&staff)).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(5));
    let detail = app.get(&format!("/v1/price-protections/{}", paid.id()), Some(&buyer)).await;
    assert_eq!((detail.body["claimed"].as_bool(), detail.body["amount_fen"].as_i64()), (Some(true), Some(2_000)));
    app.get(&format!("/v1/price-protections/{}", paid.id()), Some(&app.register("x@example.com", "consumer").await))
        .await
        .assert_error(404, "price_protection_not_found");
    // The merchant bore 5 000 of protection on a 20 000 order: down to 7 500 a unit.
    let store = app.app.store();
    assert_eq!(store.account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance"), -15_000);
    assert_eq!(store.account_balance("refunds").await.expect("balance"), -5_000);
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
    // A flash sale below the list price is today's price too: when it starts, the sweep pays the
    // three shipped lines down to it (each has been paid down to 8 000 so far).
    let late_buyer = app.register("late@example.com", "consumer").await;
    let (unshipped, _) = paid_order(app, &late_buyer, "e", sku, 1).await;
    let sale = json!({"sku_id": sku, "price_fen": 7_000, "starts_at": "2025-11-26T00:00:00Z",
        "ends_at": "2025-11-28T00:00:00Z", "pool_units": 10, "per_user_limit": 1});
    assert_eq!(app.post("/v1/flash-sales", Some(&staff), sale).await.status, 201);
    assert_eq!(app.app.run_due_timers().await.expect("timers").protection_refunds, 3);
    assert_eq!(app.app.run_due_timers().await.expect("again").protection_refunds, 0);
    let flash_paid = app.get(&format!("/v1/orders/{waiting}/after-sales"), Some(&buyers[1])).await;
    assert_eq!(flash_paid.body[1]["amount_fen"], 1_000, "{flash_paid:?}");
    // Bought at 9 500 and shipped after the flash sale began: paid down to the flash price.
    ship(app, &staff, unshipped).await;
    let at_shipment = app.get(&format!("/v1/orders/{unshipped}/after-sales"), Some(&late_buyer)).await;
    assert_eq!(at_shipment.body[0]["amount_fen"], 2_500, "{at_shipment:?}");
    let store = app.app.store();
    assert!(store.account_balance("platform_subsidy_budget").await.expect("balance") > 0);
    assert!(store.account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance") < 0);
    ledger_is_clean(app).await;
}

/// A flash sale below the list price queues the sweep its start runs; withdrawn before it starts,
/// its price never applied, so its start pays nobody. One that does start pays the same line.
async fn a_flash_sale_withdrawn_before_its_start_owes_no_protection(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let set = put(
        app,
        &format!("/v1/skus/{sku}/price-protection"),
        &staff,
        json!({"window_days": 15, "from": "sign_off", "auto": true}),
    )
    .await;
    assert_eq!(set.status, 200, "{set:?}");
    let buyer = app.register("buyer@example.com", "consumer").await;
    let (order_id, _) = paid_order(app, &buyer, "a", sku, 1).await;
    ship(app, &staff, order_id).await;

    let sale = |starts_at: &str| {
        json!({"sku_id": sku, "price_fen": 7_000, "starts_at": starts_at, "ends_at": "2025-11-28T00:00:00Z",
               "pool_units": 10, "per_user_limit": 1})
    };
    let withdrawn = app.post("/v1/flash-sales", Some(&staff), sale("2025-11-26T01:00:00Z")).await.id();
    let ended =
        app.post(&format!("/v1/flash-sales/{withdrawn}/end"), Some(&staff), json!({"reason": "活动取消"})).await;
    assert_eq!(ended.body["status"], "withdrawn", "{ended:?}");
    app.clock.advance_ms(2 * 3_600_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").protection_refunds, 0);
    let (staff, buyer) = (app.login("延吉米铺@shop.test").await, app.login("buyer@example.com").await);
    assert_eq!(app.get(&format!("/v1/orders/{order_id}/after-sales"), Some(&buyer)).await.body, json!([]));

    app.post("/v1/flash-sales", Some(&staff), sale("2025-11-26T02:00:00Z")).await.id();
    assert_eq!(app.app.run_due_timers().await.expect("timers").protection_refunds, 1);
    let paid = app.get(&format!("/v1/orders/{order_id}/after-sales"), Some(&buyer)).await;
    assert_eq!(paid.body[0]["amount_fen"], 3_000, "{paid:?}");
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

async fn deliver(app: &TestApp, staff: &str, order_id: i64) {
    ship(app, staff, order_id).await;
    let delivered = app.post(&format!("/v1/orders/{order_id}/deliver"), Some(staff), json!({})).await;
    assert_eq!(delivered.body["status"], "delivered", "{delivered:?}");
}

async fn request(app: &TestApp, buyer: &str, order_id: i64, body: Value) -> Reply {
    app.post(&format!("/v1/orders/{order_id}/after-sales"), Some(buyer), body).await
}

async fn act(app: &TestApp, token: &str, id: i64, action: &str, body: Value) -> Reply {
    app.post(&format!("/v1/after-sales/{id}/{action}"), Some(token), body).await
}

async fn status_of(app: &TestApp, token: &str, id: i64) -> String {
    app.get(&format!("/v1/after-sales/{id}"), Some(token)).await.body["status"].as_str().unwrap_or_default().to_owned()
}

async fn returns_follow_their_deadlines_to_the_second(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;
    deliver(app, &staff, order_id).await;

    // A seven-day no-reason return of one of two units: the merchant does not answer.
    let asked = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "return_refund", "units": 1,
        "reason": "不想要了", "no_reason": true}),
    )
    .await;
    assert_eq!((asked.status, asked.body["status"].as_str()), (201, Some("requested")), "{asked:?}");
    let id = asked.id();
    app.clock.advance_ms(48 * 3_600_000 - 1_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").after_sales_moved, 0, "a second early");
    app.clock.advance_ms(2_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").after_sales_moved, 1);
    assert_eq!(app.app.run_due_timers().await.expect("again").after_sales_moved, 0, "timers act once");
    let buyer = app.login("buyer@example.com").await;
    let staff = app.login("延吉米铺@shop.test").await;
    assert_eq!(status_of(app, &buyer, id).await, "awaiting_return");

    // The buyer ships it back; the shop receives it and does not refund: the timer does, 7 days on.
    let shipped = act(app, &buyer, id, "return-shipment", json!({"carrier": "顺丰", "tracking_number": "SF9"})).await;
    assert_eq!(shipped.body["status"], "return_shipped", "{shipped:?}");
    act(app, &buyer, id, "receive", json!({})).await.assert_error(403, "forbidden");
    assert_eq!(act(app, &staff, id, "receive", json!({})).await.body["status"], "return_received");
    app.clock.advance_ms(7 * 86_400_000 - 1_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").after_sales_moved, 0);
    app.clock.advance_ms(2_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").after_sales_moved, 1);
    let buyer = app.login("buyer@example.com").await;
    let done = app.get(&format!("/v1/after-sales/{id}"), Some(&buyer)).await;
    assert_eq!((done.body["status"].as_str(), done.body["amount_fen"].as_i64()), (Some("refunded"), Some(10_000)));
    let trail: Vec<&str> =
        done.body["events"].as_array().expect("events").iter().filter_map(|e| e["to_status"].as_str()).collect();
    assert_eq!(trail, ["requested", "awaiting_return", "return_shipped", "return_received", "refunded"]);
    // Settlement waited for the open return (the return window had passed meanwhile).
    let store = app.app.store();
    assert_eq!(store.account_balance("refunds").await.expect("balance"), -10_000);
    assert_eq!(store.account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance"), -10_000);

    // A product declared "quality changes once unsealed": confirmed at checkout, no no-reason
    // return; not confirmed, the return stands.
    let staff = app.login("延吉米铺@shop.test").await;
    let buyer = app.login("buyer@example.com").await;
    let declared = put(
        app,
        &format!("/v1/products/{}/return-policy", app.get(&format!("/v1/skus/{sku}"), None).await.body["product_id"]),
        &staff,
        json!({"unsealed_no_return": true}),
    )
    .await;
    assert_eq!(declared.body["unsealed_no_return"], true, "{declared:?}");
    for (key, confirm, expected) in [("u1", true, 409), ("u2", false, 201)] {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/orders", app.url))
            .bearer_auth(&buyer)
            .header("idempotency-key", key)
            .json(&json!({"lines": [{"sku_id": sku, "quantity": 1}], "address": address(), "confirm_unsealed_no_return": confirm}))
            .send()
            .await
            .expect("send");
        let body: Value = response.json().await.expect("json");
        let (order, line) = (
            body["orders"][0]["id"].as_i64().expect("order"),
            body["orders"][0]["lines"][0]["id"].as_i64().expect("line"),
        );
        assert_eq!(body["orders"][0]["lines"][0]["unsealed_no_return_confirmed"], confirm);
        let payment = app.send("POST", &format!("/v1/orders/{order}/pay"), Some(&buyer), None).await;
        app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
        deliver(app, &staff, order).await;
        let asked = request(
            app,
            &buyer,
            order,
            json!({"line_id": line, "kind": "return_refund", "units": 1,
            "reason": "拆封后不想要", "no_reason": true}),
        )
        .await;
        assert_eq!(asked.status, expected, "{asked:?}");
        if expected == 409 {
            assert_eq!(asked.code(), "no_reason_return_excluded");
        }
    }

    // Another unit, another return: approved, but never shipped back within 7 days: closed.
    let staff = app.login("延吉米铺@shop.test").await;
    let second = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "return_refund", "units": 1,
        "reason": "质量问题", "evidence": ["https://img.example.com/1.jpg"]}),
    )
    .await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(act(app, &staff, second.id(), "approve", json!({})).await.body["status"], "awaiting_return");
    app.clock.advance_ms(7 * 86_400_000 + 1_000);
    app.app.run_due_timers().await.expect("timers");
    let buyer = app.login("buyer@example.com").await;
    assert_eq!(status_of(app, &buyer, second.id()).await, "closed");
    ledger_is_clean(app).await;
}

async fn rejections_go_to_arbitration_and_refunds_respect_protection(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    put(app, &format!("/v1/skus/{sku}/price-protection"), &staff, json!({"window_days": 30})).await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;
    ship(app, &staff, order_id).await;
    cut_price(app, &staff, sku, 9_000).await;
    assert_eq!(claim(app, &buyer, line_id).await.body["amount_fen"], 2_000);

    // Refund without return of one unit: rejected, disputed, and decided for the buyer.
    let asked = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_without_return", "units": 1,
        "reason": "少发了一件"}),
    )
    .await;
    let id = asked.id();
    let rejected = act(app, &staff, id, "reject", json!({"reason": "已核实发货"})).await;
    assert_eq!(rejected.body["status"], "rejected", "{rejected:?}");
    act(app, &staff, id, "approve", json!({})).await.assert_error(409, "invalid_transition");
    act(app, &buyer, id, "arbitrate", json!({"decision": "buyer", "reason": "x"})).await.assert_error(403, "forbidden");
    assert_eq!(act(app, &buyer, id, "dispute", json!({"reason": "确实少了"})).await.body["status"], "disputed");
    act(app, &op, id, "arbitrate", json!({"decision": "maybe", "reason": "x"}))
        .await
        .assert_error(422, "invalid_decision");
    let decided = act(app, &op, id, "arbitrate", json!({"decision": "buyer", "reason": "物流称重不符"})).await;
    // The unit's share of what is left: (20 000 − 2 000 protection) / 2.
    assert_eq!((decided.body["status"].as_str(), decided.body["amount_fen"].as_i64()), (Some("refunded"), Some(9_000)));

    // The last unit: refunded in full what it still holds; the line pays back exactly what was paid.
    let last = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_without_return", "units": 1,
        "reason": "也少了"}),
    )
    .await;
    let last = act(app, &staff, last.id(), "approve", json!({})).await;
    assert_eq!(last.body["amount_fen"], 9_000, "{last:?}");
    request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_without_return", "units": 1,
        "reason": "再来"}),
    )
    .await
    .assert_error(422, "out_of_range");
    assert_eq!(claim(app, &buyer, line_id).await.status, 200, "the drop was paid: the same payment again");
    let store = app.app.store();
    assert_eq!(store.account_balance("refunds").await.expect("balance"), -20_000, "refunds + protection = paid");
    ledger_is_clean(app).await;
}

async fn after_sale_requests_refuse_bad_input_and_strangers(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("苏州绣坊", "320500").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let stranger = app.register("stranger@example.com", "consumer").await;
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;
    let body = |kind: &str, units: i64| json!({"line_id": line_id, "kind": kind, "units": units, "reason": "r"});
    request(app, &buyer, order_id, body("bogus", 1)).await.assert_error(422, "invalid_after_sale_kind");
    request(app, &buyer, order_id, body("refund_before_shipment", 0)).await.assert_error(422, "out_of_range");
    request(app, &buyer, order_id, body("refund_before_shipment", 3)).await.assert_error(422, "out_of_range");
    request(app, &buyer, order_id, body("return_refund", 1)).await.assert_error(409, "not_delivered");
    request(app, &buyer, order_id, body("refund_without_return", 1)).await.assert_error(409, "not_shipped");
    request(app, &stranger, order_id, body("refund_before_shipment", 1))
        .await
        .assert_error(404, "order_line_not_found");
    request(app, &buyer, order_id, json!({"line_id": line_id, "kind": "refund_before_shipment"}))
        .await
        .assert_error(422, "missing_field");
    app.raw("POST", &format!("/v1/orders/{order_id}/after-sales"), Some(&buyer), "{\"line_id\":")
        .await
        .assert_error(400, "malformed_json");

    // Refund before shipment of one unit: the stock comes back; a retry with the key is the same request.
    let stock_before = app.get(&format!("/v1/skus/{sku}"), None).await.body["stock"].as_i64().expect("stock");
    let retry = |key: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v1/orders/{order_id}/after-sales", app.url))
            .bearer_auth(&buyer)
            .header("idempotency-key", key)
            .json(&body("refund_before_shipment", 1))
            .send()
    };
    let first = retry("as-1").await.expect("send");
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.expect("json");
    let again = retry("as-1").await.expect("send");
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.json::<Value>().await.expect("json")["id"], first["id"]);
    let id = first["id"].as_i64().expect("id");
    request(app, &buyer, order_id, body("refund_before_shipment", 2)).await.assert_error(422, "out_of_range");
    act(app, &other_staff, id, "approve", json!({})).await.assert_error(404, "after_sale_not_found");
    act(app, &buyer, id, "approve", json!({})).await.assert_error(403, "forbidden");
    app.get(&format!("/v1/after-sales/{id}"), Some(&stranger)).await.assert_error(404, "after_sale_not_found");
    let approved = act(app, &staff, id, "approve", json!({})).await;
    assert_eq!(
        (approved.body["status"].as_str(), approved.body["amount_fen"].as_i64()),
        (Some("refunded"), Some(10_000))
    );
    act(app, &buyer, id, "withdraw", json!({})).await.assert_error(409, "invalid_transition");
    let stock_after = app.get(&format!("/v1/skus/{sku}"), None).await.body["stock"].as_i64().expect("stock");
    assert_eq!(stock_after, stock_before + 1, "the unit never shipped goes back to stock");

    // A counterfeit claim: merchants cannot answer it; an operator confirms it, and the buyer gets
    // the unit's price back and three times it on top, from the merchant.
    let op = app.operator().await;
    let (fake, fake_line) = paid_order(app, &buyer, "k-fake", sku, 1).await;
    ship(app, &staff, fake).await;
    let claim_body = json!({"line_id": fake_line, "kind": "counterfeit", "units": 1, "reason": "鉴定为假",
        "evidence": ["https://img.example.com/report.jpg"]});
    let claimed = request(app, &buyer, fake, claim_body).await;
    assert_eq!(claimed.status, 201, "{claimed:?}");
    act(app, &staff, claimed.id(), "approve", json!({})).await.assert_error(409, "invalid_transition");
    let refunds_before = app.app.store().account_balance("refunds").await.expect("balance");
    let confirmed =
        act(app, &op, claimed.id(), "arbitrate", json!({"decision": "buyer", "reason": "鉴定报告属实"})).await;
    assert_eq!(
        (confirmed.body["status"].as_str(), confirmed.body["amount_fen"].as_i64()),
        (Some("refunded"), Some(10_000))
    );
    let detail = app.get(&format!("/v1/after-sales/{}", claimed.id()), Some(&buyer)).await;
    assert_eq!(
        detail.body["payouts"],
        json!([{"kind": "counterfeit_compensation", "amount_fen": 30000, "status": "sent"}])
    );
    let refunds_after = app.app.store().account_balance("refunds").await.expect("balance");
    assert_eq!(refunds_after - refunds_before, -40_000);

    // A withdrawn request frees its units.
    let second = request(app, &buyer, order_id, body("refund_before_shipment", 1)).await;
    assert_eq!(act(app, &buyer, second.id(), "withdraw", json!({})).await.body["status"], "closed");
    assert_eq!(request(app, &buyer, order_id, body("refund_before_shipment", 1)).await.status, 201);
    ledger_is_clean(app).await;
}

const FIVE: [&str; 5] =
    ["authenticity_guarantee", "seven_day_return", "express_refund", "return_shipping_insurance", "door_pickup"];

async fn assured_purchase_services_are_promised_per_line_and_kept(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let op = app.operator().await;
    let path = format!("/v1/merchants/{merchant}/assurance");
    put(app, &path, &staff, json!({"services": FIVE[..4], "insurance_premium_fen": 50, "insurance_cap_fen": 1_000}))
        .await
        .assert_error(422, "mandatory_service_missing");
    let (other_staff, _) = app.shop("苏州绣坊", "320500").await;
    put(app, &path, &other_staff, json!({"services": FIVE, "insurance_premium_fen": 50, "insurance_cap_fen": 1_000}))
        .await
        .assert_error(403, "forbidden");
    let mut services: Vec<&str> = FIVE.to_vec();
    services.push("dispatch_within_24h");
    let asked =
        put(app, &path, &staff, json!({"services": services, "insurance_premium_fen": 50, "insurance_cap_fen": 1_000}))
            .await;
    assert_eq!(asked.body["status"], "pending", "{asked:?}");
    let buyer = app.register("buyer@example.com", "consumer").await;
    // Bought before approval: no services promised.
    let (before, before_line) = paid_order(app, &buyer, "k0", sku, 1).await;
    app.post(&format!("{path}/decision"), Some(&staff), json!({"decision": "approve"}))
        .await
        .assert_error(403, "forbidden");
    let approved = app.post(&format!("{path}/decision"), Some(&op), json!({"decision": "approve"})).await;
    assert_eq!(approved.body["status"], "approved", "{approved:?}");
    app.post(&format!("{path}/decision"), Some(&op), json!({"decision": "approve"}))
        .await
        .assert_error(409, "not_pending");
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 1).await;
    let order = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!(order.body["lines"][0]["services"].as_array().map(Vec::len), Some(6), "{order:?}");
    assert_eq!(order.body["lines"][0]["insurance_cap_fen"], 1_000);
    let old = app.get(&format!("/v1/orders/{before}"), Some(&buyer)).await;
    assert_eq!(old.body["lines"][0]["services"], json!([]));

    // Return with door pickup: approved, collected at the door with its freight; the buyer in
    // good standing is refunded at once (express refund), and the insurance pays the freight up
    // to its cap when the return completes — once.
    deliver(app, &staff, order_id).await;
    let asked = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "return_refund", "units": 1,
        "reason": "不合适", "no_reason": true}),
    )
    .await;
    let id = asked.id();
    assert_eq!(act(app, &staff, id, "approve", json!({})).await.body["status"], "awaiting_return");
    let slot =
        json!({"address": address(), "slot_starts_at": "2025-11-27T09:00:00Z", "slot_ends_at": "2025-11-27T11:00:00Z"});
    let booked = act(app, &buyer, id, "pickup", slot.clone()).await;
    assert_eq!((booked.status, booked.body["status"].as_str()), (201, Some("requested")), "{booked:?}");
    act(app, &buyer, id, "pickup", slot).await.assert_error(409, "pickup_booked");
    let collected = app
        .post(
            &format!("/v1/after-sales/{id}/pickup/collected"),
            Some(&staff),
            json!({"carrier": "顺丰", "tracking_number": "SF-PICK-1", "freight_fen": 1_200}),
        )
        .await;
    assert_eq!(
        (
            collected.body["status"].as_str(),
            collected.body["express_refunded_at"].is_string(),
            collected.body["amount_fen"].as_i64()
        ),
        (Some("return_shipped"), true, Some(10_000)),
        "{collected:?}"
    );
    assert_eq!(act(app, &staff, id, "receive", json!({})).await.body["status"], "return_received");
    let refunded = act(app, &staff, id, "refund", json!({})).await;
    assert_eq!(
        (refunded.body["status"].as_str(), refunded.body["amount_fen"].as_i64()),
        (Some("refunded"), Some(10_000))
    );
    let store = app.app.store();
    assert_eq!(store.account_balance("insurance_pool").await.expect("balance"), 1_000, "the freight up to the cap");
    assert_eq!(store.account_balance("refunds").await.expect("balance"), -11_000, "refunded once, plus the freight");

    // A line without the promise gets no pickup.
    deliver(app, &staff, before).await;
    let plain = request(
        app,
        &buyer,
        before,
        json!({"line_id": before_line, "kind": "return_refund", "units": 1,
        "reason": "不合适", "no_reason": true}),
    )
    .await;
    act(app, &staff, plain.id(), "approve", json!({})).await;
    let slot =
        json!({"address": address(), "slot_starts_at": "2025-11-27T09:00:00Z", "slot_ends_at": "2025-11-27T11:00:00Z"});
    act(app, &buyer, plain.id(), "pickup", slot).await.assert_error(409, "no_door_pickup");

    // Dispatch promised within 24 hours: an order still unshipped a second after is compensated
    // (5% of its payment, by the merchant), once.
    let fulfilment = json!({"shipping_fee_fen": 0, "dispatch_promise": "within_24h"});
    put(app, &format!("/v1/merchants/{merchant}/fulfilment"), &staff, fulfilment).await;
    let (late, _) = paid_order(app, &buyer, "k2", sku, 1).await;
    app.clock.advance_ms(24 * 3_600_000 - 1_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").dispatch_compensated, 0);
    app.clock.advance_ms(2_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").dispatch_compensated, 1);
    assert_eq!(app.app.run_due_timers().await.expect("again").dispatch_compensated, 0, "once");
    let buyer = app.login("buyer@example.com").await;
    let late = app.get(&format!("/v1/orders/{late}"), Some(&buyer)).await;
    assert_eq!(late.body["lines"][0]["compensation_fen"], 500, "{late:?}");
    ledger_is_clean(app).await;
}

async fn refunding_every_unit_gives_the_coupon_back(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let op = app.operator().await;
    let coupon = app
        .post(
            "/v1/coupons",
            Some(&op),
            json!({"class": "platform", "title": "双11券", "kind": "money_off", "off_fen": 500,
            "claim_starts_at": "2025-11-25T00:00:00Z", "claim_ends_at": "2025-12-31T00:00:00Z", "valid_days": 7,
            "quantity": 100, "budget_fen": 10_000}),
        )
        .await;
    assert_eq!(coupon.status, 201, "{coupon:?}");
    let buyer = app.register("buyer@example.com", "consumer").await;
    let claimed = app.send("POST", &format!("/v1/coupons/{}/claims", coupon.id()), Some(&buyer), None).await;
    assert_eq!(claimed.status, 201);
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;
    let order = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!(order.body["lines"][0]["paid_fen"], 19_500, "the platform coupon applied: {order:?}");
    ship(app, &staff, order_id).await;
    let wallet = |token: String| async move {
        app.get("/v1/wallet/claims", Some(&token)).await.body[0]["status"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(wallet(buyer.clone()).await, "used");

    // One unit back: the coupon stays used; its part of that unit goes back to the platform.
    let first = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_without_return", "units": 1,
        "reason": "少了一件"}),
    )
    .await;
    assert_eq!(act(app, &staff, first.id(), "approve", json!({})).await.body["amount_fen"], 9_750);
    assert_eq!(wallet(buyer.clone()).await, "used");
    // The last unit back: the whole discount is unspent, and the still-valid coupon returns.
    let last = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_without_return", "units": 1,
        "reason": "都没收到"}),
    )
    .await;
    assert_eq!(act(app, &staff, last.id(), "approve", json!({})).await.body["amount_fen"], 9_750);
    assert_eq!(wallet(buyer.clone()).await, "available");
    let store = app.app.store();
    assert_eq!(
        store.account_balance("platform_subsidy_budget").await.expect("balance"),
        0,
        "the platform got its 500 back"
    );
    ledger_is_clean(app).await;
}

async fn seven_day_returns_end_to_the_second(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;
    // Signed for at 2025-11-26 08:00 Beijing time: the seven days run from the 27th, to the
    // end of 3 December Beijing time (16:00 UTC).
    deliver(app, &staff, order_id).await;
    let window_end_ms = crate::helpers::START_MS + 86_400_000 - 8 * 3_600_000 + 7 * 86_400_000;
    let no_reason =
        json!({"line_id": line_id, "kind": "return_refund", "units": 1, "reason": "不想要了", "no_reason": true});
    app.clock.advance_ms(window_end_ms - crate::helpers::START_MS - 1_000);
    let buyer = app.login("buyer@example.com").await;
    let inside = request(app, &buyer, order_id, no_reason.clone()).await;
    assert_eq!(inside.status, 201, "a second before the end: {inside:?}");
    app.clock.advance_ms(2_000);
    request(app, &buyer, order_id, no_reason).await.assert_error(409, "return_window_closed");
    // A defect is still returnable with photos.
    let defect = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "return_refund", "units": 1,
        "reason": "米里有虫", "evidence": ["https://img.example.com/bug.jpg"]}),
    )
    .await;
    assert_eq!(defect.status, 201, "{defect:?}");
}

async fn every_waiting_claim_has_an_end_and_settled_orders_still_pay_back(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let store = app.app.store();
    let balance = |account: String| async move { store.account_balance(&account).await.expect("balance") };

    // A refund asked before shipment holds the shipment until the shop answers it.
    let (order_id, line_id) = paid_order(app, &buyer, "k1", sku, 2).await;
    let early = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_before_shipment", "units": 1, "reason": "拍多了"}),
    )
    .await;
    assert_eq!(early.status, 201, "{early:?}");
    app.post(
        &format!("/v1/orders/{order_id}/ship"),
        Some(&staff),
        json!({"carrier": "顺丰", "tracking_number": "SF1"}),
    )
    .await
    .assert_error(409, "after_sale_in_progress");
    assert_eq!(act(app, &staff, early.id(), "reject", json!({"reason": "已打包"})).await.body["status"], "rejected");
    deliver(app, &staff, order_id).await;
    request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "refund_before_shipment", "units": 1, "reason": "再试"}),
    )
    .await
    .assert_error(409, "not_before_shipment");

    // The buyer never disputes the rejection: it closes after 7 days, and the order settles.
    app.clock.advance_ms(7 * DAY_MS - 1_000);
    app.app.run_due_timers().await.expect("timers");
    let buyer = app.login("buyer@example.com").await;
    assert_eq!(status_of(app, &buyer, early.id()).await, "rejected", "a second early");
    app.clock.advance_ms(2_000);
    app.app.run_due_timers().await.expect("timers");
    app.app.run_due_timers().await.expect("timers");
    let (buyer, staff) = (app.login("buyer@example.com").await, app.login("延吉米铺@shop.test").await);
    assert_eq!(status_of(app, &buyer, early.id()).await, "closed");
    assert!(app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await.body["settled_at"].is_string());
    // Two units at 100 元, less the category's 5% commission.
    assert_eq!(balance(format!("merchant_settlement:{merchant}")).await, -19_000);

    // A re-ship: approved, then the shop ships the replacement with its tracking number.
    let reship =
        request(app, &buyer, order_id, json!({"line_id": line_id, "kind": "reship", "units": 1, "reason": "少发一袋"}))
            .await;
    assert_eq!(act(app, &staff, reship.id(), "approve", json!({})).await.body["status"], "awaiting_replacement");
    assert_eq!(act(app, &staff, reship.id(), "fulfil", json!({})).await.status, 422, "the shipment is required");
    act(app, &buyer, reship.id(), "fulfil", json!({"carrier": "顺丰", "tracking_number": "SF2"}))
        .await
        .assert_error(403, "forbidden");
    let sent = act(app, &staff, reship.id(), "fulfil", json!({"carrier": "顺丰", "tracking_number": "SF2"})).await;
    assert_eq!(
        (sent.body["status"].as_str(), sent.body["replacement_tracking"].as_str()),
        (Some("resolved"), Some("SF2")),
        "{sent:?}"
    );

    // A return the shop never confirms: taken as received 10 days after it shipped, and refunded
    // out of the merchant's settlement (the order is settled).
    let back = request(
        app,
        &buyer,
        order_id,
        json!({"line_id": line_id, "kind": "return_refund", "units": 1, "reason": "霉变",
        "evidence": ["https://img.example.com/1.jpg"]}),
    )
    .await;
    assert_eq!(act(app, &staff, back.id(), "approve", json!({})).await.body["status"], "awaiting_return");
    let shipped =
        act(app, &buyer, back.id(), "return-shipment", json!({"carrier": "顺丰", "tracking_number": "SF3"})).await;
    assert_eq!(shipped.body["status"], "return_shipped", "{shipped:?}");
    app.clock.advance_ms(10 * DAY_MS - 1_000);
    app.app.run_due_timers().await.expect("timers");
    let buyer = app.login("buyer@example.com").await;
    assert_eq!(status_of(app, &buyer, back.id()).await, "return_shipped", "a second early");
    app.clock.advance_ms(2_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").after_sales_moved, 1);
    let buyer = app.login("buyer@example.com").await;
    let refunded = app.get(&format!("/v1/after-sales/{}", back.id()), Some(&buyer)).await;
    assert_eq!(
        (refunded.body["status"].as_str(), refunded.body["amount_fen"].as_i64()),
        (Some("refunded"), Some(10_000)),
        "{refunded:?}"
    );
    assert_eq!(balance(format!("merchant_settlement:{merchant}")).await, -9_000, "the merchant gave it back");

    // A confirmed counterfeit: refund plus three times the price from the merchant, more than the
    // order brought in. Settling it moves the debt onto the merchant's settlement account.
    let staff = app.login("延吉米铺@shop.test").await;
    let (fake_order, fake_line) = paid_order(app, &buyer, "k2", sku, 1).await;
    deliver(app, &staff, fake_order).await;
    let fake = request(
        app,
        &buyer,
        fake_order,
        json!({"line_id": fake_line, "kind": "counterfeit", "units": 1, "reason": "鉴定为假",
        "evidence": ["https://img.example.com/2.jpg"]}),
    )
    .await;
    let op = app.operator().await;
    let decided = act(app, &op, fake.id(), "arbitrate", json!({"decision": "buyer", "reason": "鉴定报告"})).await;
    assert_eq!(decided.body["status"], "refunded", "{decided:?}");
    app.clock.advance_ms(8 * DAY_MS);
    app.app.run_due_timers().await.expect("timers");
    let buyer = app.login("buyer@example.com").await;
    assert!(app.get(&format!("/v1/orders/{fake_order}"), Some(&buyer)).await.body["settled_at"].is_string());
    assert_eq!(balance(format!("merchant_receivable:{merchant}")).await, 0, "nothing left on the receivable");
    assert_eq!(balance(format!("merchant_settlement:{merchant}")).await, -9_000 + 30_000, "the merchant owes 210 元");
    ledger_is_clean(app).await;
}

async fn fresh_damage_and_allergy_claims_end_to_the_second(app: &TestApp) {
    let op = app.operator().await;
    let (_, skincare) = app.categories().await;
    let seafood = app
        .post("/v1/categories", Some(&op), json!({"slug": "seafood", "name": "海鲜", "flags": {"fresh": true}}))
        .await
        .id();
    let staff = app.register("海鲜铺@shop.test", "consumer").await;
    let shop = app
        .post(
            "/v1/merchants",
            Some(&staff),
            json!({"shop_name": "海鲜铺", "region_code": "370200", "category_ids": [seafood, skincare]}),
        )
        .await;
    assert_eq!(shop.status, 201, "{shop:?}");
    let approved = app
        .post(&format!("/v1/merchants/{}/qualification", shop.id()), Some(&op), json!({"decision": "approve"}))
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    let (_, crab) = app.listed_product_in(&staff, seafood, "帝王蟹", 20_000).await;
    let (_, cream) = app.listed_product_in(&staff, skincare, "面霜", 30_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let (crab_order, crab_line) = paid_order(app, &buyer, "k1", crab, 2).await;
    let (cream_order, cream_line) = paid_order(app, &buyer, "k2", cream, 2).await;
    deliver(app, &staff, crab_order).await;
    deliver(app, &staff, cream_order).await;
    let photo = json!(["https://img.example.com/crab.jpg"]);
    let fresh = |units: i64, evidence: Value| json!({"line_id": crab_line, "kind": "fresh_damage", "units": units, "reason": "到货已死", "evidence": evidence});
    let allergy = |evidence: Value| json!({"line_id": cream_line, "kind": "allergy_return", "units": 1, "reason": "过敏", "evidence": evidence});

    // Fresh damage: with photos, within 48 hours of sign-off, for fresh goods only.
    request(
        app,
        &buyer,
        cream_order,
        json!({"line_id": cream_line, "kind": "fresh_damage", "units": 1,
        "reason": "坏了", "evidence": photo.clone()}),
    )
    .await
    .assert_error(409, "not_fresh");
    app.clock.advance_ms(48 * 3_600_000 - 1_000);
    let buyer = app.login("buyer@example.com").await;
    request(app, &buyer, crab_order, fresh(1, json!([]))).await.assert_error(422, "evidence_required");
    let inside = request(app, &buyer, crab_order, fresh(1, photo.clone())).await;
    assert_eq!(inside.status, 201, "a second before the end: {inside:?}");
    app.clock.advance_ms(2_000);
    request(app, &buyer, crab_order, fresh(1, photo.clone())).await.assert_error(409, "claim_window_closed");
    // Approved, it refunds the damaged unit without a return.
    let staff = app.login("海鲜铺@shop.test").await;
    let paid = act(app, &staff, inside.id(), "approve", json!({})).await;
    assert_eq!((paid.body["status"].as_str(), paid.body["amount_fen"].as_i64()), (Some("refunded"), Some(20_000)));

    // Cosmetics allergy return: within 30 days of sign-off, with photos, cosmetics only.
    request(
        app,
        &buyer,
        crab_order,
        json!({"line_id": crab_line, "kind": "allergy_return", "units": 1,
        "reason": "过敏", "evidence": photo.clone()}),
    )
    .await
    .assert_error(409, "not_cosmetics");
    app.clock.advance_ms(30 * DAY_MS - 48 * 3_600_000 - 2_000);
    let buyer = app.login("buyer@example.com").await;
    request(app, &buyer, cream_order, allergy(json!([]))).await.assert_error(422, "evidence_required");
    let opened = request(app, &buyer, cream_order, allergy(photo.clone())).await;
    assert_eq!(opened.status, 201, "a second before the end: {opened:?}");
    assert_eq!(opened.body["status"], "requested");
    app.clock.advance_ms(2_000);
    request(app, &buyer, cream_order, allergy(photo)).await.assert_error(409, "claim_window_closed");
    ledger_is_clean(app).await;
}

/// The operator's 安心购 queue: pending requests oldest first with their shop's name, decided
/// ones under their status; everyone else is refused, bad filters are 422.
async fn the_assurance_queue_lists_requests_for_operators_only(app: &TestApp) {
    let five = json!([
        "authenticity_guarantee",
        "seven_day_return",
        "express_refund",
        "return_shipping_insurance",
        "door_pickup"
    ]);
    let (staff_a, shop_a) = app.shop("延吉米铺", "222401").await;
    let (staff_b, shop_b) = app.shop("杭州茶庄", "330100").await;
    let body = json!({"services": five, "insurance_premium_fen": 50, "insurance_cap_fen": 1_000});
    assert_eq!(put(app, &format!("/v1/merchants/{shop_a}/assurance"), &staff_a, body.clone()).await.status, 200);
    app.clock.advance_ms(1_000);
    assert_eq!(put(app, &format!("/v1/merchants/{shop_b}/assurance"), &staff_b, body).await.status, 200);
    let op = app.operator().await;

    let queue = app.get("/v1/assurance/requests?status=pending", Some(&op)).await;
    assert_eq!(queue.status, 200, "{queue:?}");
    let pending: Vec<(i64, &str, &str)> = queue.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["merchant_id"].as_i64().unwrap_or(0),
                i["shop_name"].as_str().unwrap_or(""),
                i["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(pending, vec![(shop_a, "延吉米铺", "pending"), (shop_b, "杭州茶庄", "pending")]);
    let stored = json!([
        "authenticity_guarantee",
        "door_pickup",
        "express_refund",
        "return_shipping_insurance",
        "seven_day_return"
    ]);
    assert_eq!(queue.body["items"][0]["services"], stored, "services come back in name order");

    let decided = app
        .post(
            &format!("/v1/merchants/{shop_a}/assurance/decision"),
            Some(&op),
            json!({"decision": "reject", "reason": "资质不全"}),
        )
        .await;
    assert_eq!(decided.body["status"], "rejected", "{decided:?}");
    let queue = app.get("/v1/assurance/requests", Some(&op)).await;
    assert_eq!(queue.body["items"].as_array().map(Vec::len), Some(1), "{queue:?}");
    assert_eq!(queue.body["items"][0]["merchant_id"], shop_b);
    let rejected = app.get("/v1/assurance/requests?status=rejected", Some(&op)).await;
    assert_eq!(rejected.body["items"][0]["decision_reason"], "资质不全", "{rejected:?}");
    assert_eq!(app.get("/v1/assurance/requests?status=approved", Some(&op)).await.body["items"], json!([]));

    app.get("/v1/assurance/requests", Some(&staff_b)).await.assert_error(403, "forbidden");
    let buyer = app.register("buyer@example.com", "consumer").await;
    app.get("/v1/assurance/requests", Some(&buyer)).await.assert_error(403, "forbidden");
    assert_eq!(app.get("/v1/assurance/requests", None).await.status, 401);
    app.get("/v1/assurance/requests?status=maybe", Some(&op)).await.assert_error(422, "unknown_status");
    app.get("/v1/assurance/requests?limit=0", Some(&op)).await.assert_error(422, "out_of_range");
    app.get("/v1/assurance/requests?limit=x", Some(&op)).await.assert_error(400, "invalid_query");
}
