//! Checkout, orders, payments, fulfilment, timers, the ledger and flash sales, over HTTP.

use crate::helpers::{Reply, TestApp, join_all};
use serde_json::{Value, json};

crate::api_tests!(
    quotes_split_carts_by_merchant,
    orders_are_idempotent_even_when_concurrent,
    stock_and_purchase_limits_hold,
    payment_callbacks_are_verified_and_idempotent,
    orders_live_through_to_settlement,
    unpaid_orders_expire_once_and_late_payments_are_refunded,
    cancelling_a_paid_order_refunds_it,
    pay_and_expire_race_to_one_outcome,
    flash_sales_admit_exactly_the_pool,
    carts_buy_flash_sales_at_the_flash_price,
    a_node_whose_gate_is_wrong_is_refused_by_the_store,
    flash_orders_can_be_read_and_paid_at_once,
    flash_sales_are_preheated_before_they_start,
    flash_sales_can_be_ended_early,
    flash_sales_are_listed_by_phase_to_those_who_may_see_them,
    order_bad_input_is_refused
);

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

/// Another node over the test app's store and clock. Nodes writing to one database have distinct
/// node ids (the ids of their orders).
fn another_node(app: &TestApp, node_id: u16) -> xingqu_app::App {
    xingqu_app::App::new(
        app.app.store().clone(),
        std::sync::Arc::new(app.clock.clone()),
        xingqu_app::AppConfig { node_id, ..xingqu_app::AppConfig::default() },
    )
}

/// [`address`] as the app takes it.
fn address_input() -> xingqu_app::orders::AddressInput {
    xingqu_app::orders::AddressInput {
        name: "金顺姬".into(),
        phone: "13800000000".into(),
        region_code: "222401".into(),
        detail: "延吉市光明街 1 号".into(),
    }
}

/// A newly registered consumer, as the app sees them.
async fn consumer_actor(app: &TestApp, email: &str) -> xingqu_domain::account::Actor {
    app.register(email, "consumer").await;
    let user = app.app.store().user_by_email(email).await.expect("user").expect("row");
    xingqu_domain::account::Actor { user_id: user.id, role: xingqu_domain::account::Role::Consumer, merchant_id: None }
}

/// Buys `quantity` from flash sale `id` over HTTP under idempotency key `key`.
async fn flash_buy(app: &TestApp, id: i64, token: &str, key: &str, quantity: i64) -> Reply {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/flash-sales/{id}/orders", app.url))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(json!({"quantity": quantity, "address": address()}).to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    Reply { status, body: response.json().await.unwrap_or(Value::Null) }
}

async fn order(app: &TestApp, token: &str, key: &str, lines: Value) -> Reply {
    let body = json!({"lines": lines, "address": address()}).to_string().into_bytes();
    let request = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body);
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    Reply { status, body: response.json().await.unwrap_or(Value::Null) }
}

async fn stock(app: &TestApp, sku: i64) -> i64 {
    app.get(&format!("/v1/skus/{sku}"), None).await.body["stock"].as_i64().expect("stock")
}

/// Pays an order through the simulated gateway's signed callback.
async fn pay(app: &TestApp, buyer: &str, order_id: i64) -> Reply {
    let payment = app.post(&format!("/v1/orders/{order_id}/pay"), Some(buyer), json!(null)).await;
    let payment = if payment.status == 415 || payment.status == 422 {
        app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(buyer), None).await
    } else {
        payment
    };
    assert_eq!(payment.status, 200, "{payment:?}");
    app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await
}

async fn ledger_is_consistent(app: &TestApp) {
    let report = app.app.store().check_ledger().await.expect("check ledger");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

async fn quotes_split_carts_by_merchant(app: &TestApp) {
    let (yanbian, yanbian_id) = app.shop("延吉米铺", "222401").await;
    let (suzhou, suzhou_id) = app.shop("苏州绣坊", "320500").await;
    let fulfilment = json!({"shipping_fee_fen": 800, "free_shipping_over_fen": 9900, "dispatch_promise": "within_24h"});
    assert_eq!(
        app.send(
            "PUT",
            &format!("/v1/merchants/{yanbian_id}/fulfilment"),
            Some(&yanbian),
            Some(("application/json", fulfilment.to_string().into_bytes()))
        )
        .await
        .status,
        200
    );
    let fee = json!({"shipping_fee_fen": 1200, "dispatch_promise": "none"});
    app.send(
        "PUT",
        &format!("/v1/merchants/{suzhou_id}/fulfilment"),
        Some(&suzhou),
        Some(("application/json", fee.to_string().into_bytes())),
    )
    .await;
    let (_, rice) = app.listed_product(&yanbian, "延边大米", 5990).await;
    let (_, kimchi) = app.listed_product(&yanbian, "辣白菜", 2990).await;
    let (_, fan) = app.listed_product(&suzhou, "苏绣团扇", 29900).await;
    let quote = app.post("/v1/quotes", None, json!({"lines": [{"sku_id": rice, "quantity": 1}, {"sku_id": fan, "quantity": 1}, {"sku_id": kimchi, "quantity": 1}]})).await;
    assert_eq!(quote.status, 200, "{quote:?}");
    let merchants = quote.body["merchants"].as_array().expect("merchants");
    assert_eq!(merchants.len(), 2);
    assert_eq!(
        (merchants[0]["goods_paid_fen"].as_i64(), merchants[0]["shipping_fen"].as_i64()),
        (Some(8980), Some(800))
    );
    assert_eq!(
        (merchants[1]["goods_paid_fen"].as_i64(), merchants[1]["shipping_fen"].as_i64()),
        (Some(29900), Some(1200))
    );
    assert_eq!(quote.body["total_fen"], 8980 + 800 + 29900 + 1200);
    let free = app.post("/v1/quotes", None, json!({"lines": [{"sku_id": rice, "quantity": 2}]})).await;
    assert_eq!(free.body["merchants"][0]["shipping_fen"], 0, "free over 99 yuan");

    let buyer = app.register("buyer@example.com", "consumer").await;
    let checkout =
        order(app, &buyer, "cart-1", json!([{"sku_id": rice, "quantity": 1}, {"sku_id": fan, "quantity": 1}])).await;
    assert_eq!(checkout.status, 201, "{checkout:?}");
    let orders = checkout.body["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 2, "one order per merchant");
    assert!(orders[0]["lines"][0]["product_version"].as_i64().is_some());
    assert_eq!(orders[0]["dispatch_promise"], "within_24h");
    assert_eq!(checkout.body["total_fen"], 5990 + 800 + 29900 + 1200);
}

async fn orders_are_idempotent_even_when_concurrent(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let lines = json!([{"sku_id": sku, "quantity": 2}]);
    let (a, b, c, d) = tokio::join!(
        order(app, &buyer, "same-key", lines.clone()),
        order(app, &buyer, "same-key", lines.clone()),
        order(app, &buyer, "same-key", lines.clone()),
        order(app, &buyer, "same-key", lines.clone())
    );
    let replies = [&a, &b, &c, &d];
    let ids: std::collections::BTreeSet<i64> =
        replies.iter().map(|r| r.body["checkout_id"].as_i64().expect("checkout")).collect();
    assert_eq!(ids.len(), 1, "{replies:?}");
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 200, 201]);
    assert_eq!(stock(app, sku).await, 98, "reserved once");
    order(app, &buyer, "same-key", json!([{"sku_id": sku, "quantity": 1}]))
        .await
        .assert_error(422, "idempotency_key_reused");
    let other_buyer = app.register("other@example.com", "consumer").await;
    assert_eq!(order(app, &other_buyer, "same-key", lines).await.status, 201, "keys are per buyer");
    assert_eq!(stock(app, sku).await, 96);
}

async fn stock_and_purchase_limits_hold(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let (_, other) = app.listed_product(&staff, "辣白菜", 2990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    order(app, &buyer, "too-many", json!([{"sku_id": other, "quantity": 1}, {"sku_id": sku, "quantity": 99}, {"sku_id": sku + 1000, "quantity": 1}])).await.assert_error(422, "unknown_sku");
    app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"stock": 98})).await;
    let reply =
        order(app, &buyer, "too-many", json!([{"sku_id": other, "quantity": 1}, {"sku_id": sku, "quantity": 99}]))
            .await;
    reply.assert_error(409, "out_of_stock");
    assert_eq!((stock(app, sku).await, stock(app, other).await), (98, 100), "nothing reserved when one line fails");
    app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"stock": 100})).await;

    app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"per_user_limit": 3})).await;
    assert_eq!(order(app, &buyer, "l1", json!([{"sku_id": sku, "quantity": 2}])).await.status, 201);
    order(app, &buyer, "l2", json!([{"sku_id": sku, "quantity": 2}]))
        .await
        .assert_error(409, "purchase_limit_exceeded");
    assert_eq!(order(app, &buyer, "l3", json!([{"sku_id": sku, "quantity": 1}])).await.status, 201);
    assert_eq!(stock(app, sku).await, 97);

    // Many buyers at once on the last units: never more sold than there is.
    app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"stock": 5, "per_user_limit": 0})).await;
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(app.register(&format!("rush{i}@example.com"), "consumer").await);
    }
    let rush = |i: usize| order(app, &tokens[i], "rush", json!([{"sku_id": sku, "quantity": 1}]));
    let (r0, r1, r2, r3, r4, r5, r6, r7) =
        tokio::join!(rush(0), rush(1), rush(2), rush(3), rush(4), rush(5), rush(6), rush(7));
    let won = [r0, r1, r2, r3, r4, r5, r6, r7].iter().filter(|r| r.status == 201).count();
    assert_eq!((won, stock(app, sku).await), (5, 0));
}

async fn payment_callbacks_are_verified_and_idempotent(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let checkout = order(app, &buyer, "k", json!([{"sku_id": sku, "quantity": 1}])).await;
    let order_id = checkout.body["orders"][0]["id"].as_i64().expect("order");
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(&buyer), None).await;
    assert_eq!((payment.status, payment.body["amount_fen"].as_i64()), (200, Some(5990)), "{payment:?}");
    let callback = payment.body["simulated_callback"].clone();

    let mut forged = callback.clone();
    forged["signature"] = json!("00".repeat(32));
    app.post("/v1/payments/simulated/callback", None, forged).await.assert_error(401, "invalid_signature");
    let mut cheap = callback.clone();
    cheap["amount_fen"] = json!(1);
    app.post("/v1/payments/simulated/callback", None, cheap).await.assert_error(401, "invalid_signature");
    let mut unsigned = callback.clone();
    if let Some(object) = unsigned.as_object_mut() {
        object.remove("signature");
    }
    app.post("/v1/payments/simulated/callback", None, unsigned).await.assert_error(422, "missing_field");
    let order_view = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!((order_view.body["status"].as_str(), order_view.body["paid_fen"].as_i64()), (Some("created"), Some(0)));

    let (first, second) = tokio::join!(
        app.post("/v1/payments/simulated/callback", None, callback.clone()),
        app.post("/v1/payments/simulated/callback", None, callback.clone())
    );
    let mut outcomes = vec![first.body["outcome"].clone(), second.body["outcome"].clone()];
    outcomes.sort_by_key(|o| o.to_string());
    assert_eq!(outcomes, vec![json!("already_paid"), json!("paid")], "{first:?} {second:?}");
    let paid = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!((paid.body["status"].as_str(), paid.body["paid_fen"].as_i64()), (Some("paid"), Some(5990)));
    assert_eq!(app.app.store().account_balance("buyer_payments").await.expect("balance"), 5990, "posted once");
    let hot = app.get("/v1/hot-lists?window=1h&measure=gmv", None).await;
    assert_eq!(
        (hot.body["items"][0]["sku_id"].as_i64(), hot.body["items"][0]["value"].as_i64()),
        (Some(sku), Some(5990)),
        "{hot:?}"
    );
    app.get("/v1/hot-lists?window=week", None).await.assert_error(422, "unknown_window");
    app.get("/v1/hot-lists/suspects", Some(&buyer)).await.assert_error(403, "forbidden");
    let op = app.operator().await;
    assert_eq!(app.get("/v1/hot-lists/suspects", Some(&op)).await.status, 200);
    let mine = app.get("/v1/hot-lists/for-me", Some(&buyer)).await;
    assert_eq!(mine.body["items"][0]["sku_id"].as_i64(), Some(sku), "{mine:?}");
    app.get("/v1/hot-lists/for-me", None).await.assert_error(401, "unauthenticated");
    // The buyer pays a second time through the gateway: that money goes straight back.
    let gateway = xingqu_app::payments::SimulatedGateway::new(&xingqu_app::AppConfig::default().payment_secret);
    let mut second_body = callback.clone();
    second_body["gateway_ref"] = json!("sim-pay-second");
    second_body["signature"] = json!(gateway.sign(order_id, 5990, "sim-pay-second"));
    let duplicate = app.post("/v1/payments/simulated/callback", None, second_body.clone()).await;
    assert_eq!(duplicate.body["outcome"], "refunded_duplicate", "{duplicate:?}");
    let again = app.post("/v1/payments/simulated/callback", None, second_body).await;
    assert_eq!(again.body["outcome"], "already_paid", "refunded once");
    assert_eq!(app.app.store().account_balance("buyer_payments").await.expect("balance"), 11980);
    assert_eq!(app.app.store().account_balance("refunds").await.expect("balance"), -5990);
    ledger_is_consistent(app).await;
}

async fn orders_live_through_to_settlement(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 10000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let order_id = order(app, &buyer, "k", json!([{"sku_id": sku, "quantity": 1}])).await.body["orders"][0]["id"]
        .as_i64()
        .expect("id");
    app.post(
        &format!("/v1/orders/{order_id}/ship"),
        Some(&staff),
        json!({"carrier": "顺丰", "tracking_number": "SF1"}),
    )
    .await
    .assert_error(409, "invalid_transition");
    assert_eq!(pay(app, &buyer, order_id).await.body["outcome"], "paid");
    app.post(
        &format!("/v1/orders/{order_id}/ship"),
        Some(&buyer),
        json!({"carrier": "顺丰", "tracking_number": "SF1"}),
    )
    .await
    .assert_error(403, "forbidden");
    let shipped = app
        .post(
            &format!("/v1/orders/{order_id}/ship"),
            Some(&staff),
            json!({"carrier": "顺丰", "tracking_number": "SF1234567890"}),
        )
        .await;
    assert_eq!(
        (shipped.body["status"].as_str(), shipped.body["tracking_number"].as_str()),
        (Some("shipped"), Some("SF1234567890"))
    );
    app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), json!({}))
        .await
        .assert_error(409, "invalid_transition");
    app.clock.advance_ms(86_400_000);
    // Sessions in these tests last an hour: sign in again a day later.
    let staff = app.login("延吉米铺@shop.test").await;
    let delivered = app.post(&format!("/v1/orders/{order_id}/deliver"), Some(&staff), json!({})).await;
    assert_eq!(delivered.body["status"], "delivered", "{delivered:?}");

    // Seven days later receipt is confirmed by the timer; settlement waits for the return window.
    app.clock.advance_ms(7 * 86_400_000);
    let report = app.app.run_due_timers().await.expect("timers");
    let staff = app.login("延吉米铺@shop.test").await;
    let buyer = app.login("buyer@example.com").await;
    assert_eq!((report.completed, report.settled), (1, 1), "the return window (7 days) has passed too");
    let again = app.app.run_due_timers().await.expect("timers again");
    assert_eq!((again.completed, again.settled), (0, 0), "timers act once");
    let done = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!(done.body["status"], "completed");
    assert!(done.body["settled_at"].is_string());
    // Commission is the category's 5% on the goods.
    let store = app.app.store();
    assert_eq!(store.account_balance(&format!("merchant_settlement:{merchant}")).await.expect("balance"), -9500);
    assert_eq!(store.account_balance("platform_commission").await.expect("balance"), -500);
    assert_eq!(store.account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance"), 0);
    let events = app.get(&format!("/v1/orders/{order_id}/events"), Some(&staff)).await;
    let moves: Vec<(&str, &str)> = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["from_status"].as_str().unwrap_or(""), e["to_status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        moves,
        vec![("created", "paid"), ("paid", "shipped"), ("shipped", "delivered"), ("delivered", "completed")]
    );
    app.get(&format!("/v1/orders/{order_id}/events"), Some(&app.register("nosy@example.com", "consumer").await))
        .await
        .assert_error(404, "order_not_found");
    ledger_is_consistent(app).await;
}

async fn unpaid_orders_expire_once_and_late_payments_are_refunded(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let order_id = order(app, &buyer, "k", json!([{"sku_id": sku, "quantity": 3}])).await.body["orders"][0]["id"]
        .as_i64()
        .expect("id");
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(&buyer), None).await;
    assert_eq!(stock(app, sku).await, 97);
    app.clock.advance_ms(15 * 60 * 1000 - 1);
    assert_eq!(app.app.run_due_timers().await.expect("timers").expired, 0);
    app.clock.advance_ms(1);
    assert_eq!(app.app.run_due_timers().await.expect("timers").expired, 1);
    assert_eq!(app.app.run_due_timers().await.expect("timers").expired, 0);
    assert_eq!(stock(app, sku).await, 100, "returned exactly once");
    app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(&buyer), None)
        .await
        .assert_error(409, "invalid_transition");

    let late = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(late.body["outcome"], "refunded_late", "{late:?}");
    let view = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!(
        (view.body["status"].as_str(), view.body["paid_fen"].as_i64(), view.body["refunded_fen"].as_i64()),
        (Some("expired"), Some(17970), Some(17970))
    );
    let again = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(again.body["outcome"], "already_paid");
    assert_eq!(app.app.store().account_balance("refunds").await.expect("balance"), -17970);
    ledger_is_consistent(app).await;
}

async fn cancelling_a_paid_order_refunds_it(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let stranger = app.register("stranger@example.com", "consumer").await;
    let order_id = order(app, &buyer, "k", json!([{"sku_id": sku, "quantity": 2}])).await.body["orders"][0]["id"]
        .as_i64()
        .expect("id");
    pay(app, &buyer, order_id).await;
    app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&stranger), json!({}))
        .await
        .assert_error(404, "order_not_found");
    let hot = app.get("/v1/hot-lists", None).await;
    assert_eq!(hot.body["items"][0]["value"], 2, "two units sold");
    let cancelled = app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), json!({"reason": "买错了"})).await;
    assert!(
        app.get("/v1/hot-lists", None).await.body["items"].as_array().is_some_and(Vec::is_empty),
        "the refund subtracts"
    );
    assert_eq!(
        (cancelled.body["status"].as_str(), cancelled.body["refunded_fen"].as_i64()),
        (Some("cancelled"), Some(11980))
    );
    assert_eq!(stock(app, sku).await, 100);
    assert_eq!(app.app.store().account_balance(&format!("merchant_receivable:{merchant}")).await.expect("balance"), 0);
    app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), json!({}))
        .await
        .assert_error(409, "invalid_transition");
    ledger_is_consistent(app).await;
}

async fn pay_and_expire_race_to_one_outcome(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    for round in 0..6 {
        let buyer = app.register(&format!("racer{round}@example.com"), "consumer").await;
        let order_id = order(app, &buyer, "k", json!([{"sku_id": sku, "quantity": 1}])).await.body["orders"][0]["id"]
            .as_i64()
            .expect("id");
        let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(&buyer), None).await;
        app.clock.advance_ms(15 * 60 * 1000);
        let callback = payment.body["simulated_callback"].clone();
        let (paid, timers) =
            tokio::join!(app.post("/v1/payments/simulated/callback", None, callback), app.app.run_due_timers());
        let timers = timers.expect("timers");
        let view = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
        match (paid.body["outcome"].as_str(), timers.expired) {
            (Some("paid"), 0) => assert_eq!(view.body["status"], "paid"),
            (Some("refunded_late"), 1) => {
                assert_eq!(
                    (view.body["status"].as_str(), view.body["refunded_fen"].as_i64()),
                    (Some("expired"), Some(5990))
                )
            }
            other => panic!("round {round}: inconsistent outcome {other:?}: {paid:?} {view:?}"),
        }
    }
    let held: i64 = 100 - stock(app, sku).await;
    let paid = app.app.store().orders(xingqu_store::orders::OrderScope::Merchant(1), None, 100).await.expect("orders");
    let live = paid.iter().filter(|o| o.status == "paid").count() as i64;
    assert_eq!(held, live, "stock is held exactly by the paid orders");
    ledger_is_consistent(app).await;
}

async fn flash_sales_admit_exactly_the_pool(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let consumer = app.register("nosy@example.com", "consumer").await;
    let sale = |price: i64, pool: i64| {
        json!({"sku_id": sku, "price_fen": price, "starts_at": "2025-11-26T00:00:00Z", "ends_at": "2025-11-27T00:00:00Z",
               "pool_units": pool, "per_user_limit": 2})
    };
    app.post("/v1/flash-sales", Some(&consumer), sale(2990, 25)).await.assert_error(403, "forbidden");
    app.post("/v1/flash-sales", Some(&staff), sale(5990, 25)).await.assert_error(422, "not_a_discount");
    app.post("/v1/flash-sales", Some(&staff), sale(2990, 0)).await.assert_error(422, "out_of_range");
    let created = app.post("/v1/flash-sales", Some(&staff), sale(2990, 25)).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.id();

    let buy =
        |token: String, key: String, quantity: i64| async move { flash_buy(app, id, &token, &key, quantity).await };
    let first = app.register("first@example.com", "consumer").await;
    let bought = buy(first.clone(), "f1".into(), 2).await;
    assert_eq!((bought.status, bought.body["total_fen"].as_i64()), (201, Some(5980)), "{bought:?}");
    let replay = buy(first.clone(), "f1".into(), 2).await;
    assert_eq!((replay.status, replay.body["order_id"].clone()), (200, bought.body["order_id"].clone()));
    buy(first.clone(), "f1".into(), 1).await.assert_error(422, "idempotency_key_reused");
    buy(first.clone(), "f2".into(), 1).await.assert_error(409, "purchase_limit_exceeded");

    // 30 buyers, 2 attempts each plus a retry, for the 23 units left.
    let mut tokens = Vec::new();
    for i in 0..30 {
        tokens.push(app.register(&format!("flash{i}@example.com"), "consumer").await);
    }
    let mut attempts = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        attempts.push(buy(token.clone(), format!("a{i}"), 1));
        attempts.push(buy(token.clone(), format!("b{i}"), 1));
        attempts.push(buy(token.clone(), format!("a{i}"), 1));
    }
    let results = join_all(attempts).await;
    let mut order_ids = std::collections::BTreeSet::new();
    for result in &results {
        assert!(matches!(result.status, 200 | 201 | 409), "{result:?}");
        if let Some(order_id) = result.body["order_id"].as_i64() {
            order_ids.insert(order_id);
        }
    }
    let sale_now = app.get(&format!("/v1/flash-sales/{id}"), None).await;
    assert_eq!(sale_now.body["remaining_units"], 0);
    assert_eq!(order_ids.len(), 23, "one order per unit, replays return the same order");
    let held: i64 = app.app.store().flash_state(id).await.expect("state").0.iter().map(|h| h.1).sum();
    assert_eq!(held, 25);
    assert_eq!(stock(app, sku).await, 100, "the pool is apart from normal stock");

    // An unpaid flash order expires and its unit goes back to the pool, and can be bought again.
    app.clock.advance_ms(15 * 60 * 1000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").expired, 24);
    let again = buy(app.register("late@example.com", "consumer").await, "x".into(), 2).await;
    assert_eq!(again.status, 201, "{again:?}");
}

/// Two nodes over one store: the second node's gate still believes in units the first sold. Its
/// group is refused by the store (the pool's CHECK), retried order by order, and each buyer is
/// told the sale is over; nothing of the refused group is kept, and the writer goes on working.
async fn a_node_whose_gate_is_wrong_is_refused_by_the_store(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let sale = json!({"sku_id": sku, "price_fen": 2990, "starts_at": "2025-11-26T00:00:00Z",
        "ends_at": "2025-11-27T00:00:00Z", "pool_units": 3, "per_user_limit": 2});
    let id = app.post("/v1/flash-sales", Some(&staff), sale).await.id();
    let second = another_node(app, 1);
    let address = address_input();
    let mut buyers = Vec::new();
    for i in 0..5 {
        buyers.push(consumer_actor(app, &format!("b{i}@example.com")).await);
    }
    // The second node loads its gate (a first, good purchase), then the first node sells the rest.
    let first_sale = second.flash_purchase(&buyers[0], id, Some("k0"), 1, &address).await;
    assert!(first_sale.is_ok(), "{first_sale:?}");
    let rest = app.app.flash_purchase(&buyers[1], id, Some("k1"), 2, &address).await;
    assert!(rest.is_ok(), "{rest:?}");
    // Now the second node's gate admits two buyers the store has no units for.
    let late: Vec<_> = buyers[2..4]
        .iter()
        .enumerate()
        .map(|(i, buyer)| {
            let (second, address) = (&second, &address);
            async move { second.flash_purchase(buyer, id, Some(&format!("late{i}")), 1, address).await }
        })
        .collect();
    for refused in join_all(late).await {
        assert!(matches!(&refused, Err(xingqu_app::AppError::Conflict { code: "not_admitted", .. })), "{refused:?}");
    }
    let state = app.get(&format!("/v1/flash-sales/{id}"), None).await;
    assert_eq!(state.body["remaining_units"], 0);
    let held: i64 = app.app.store().flash_state(id).await.expect("state").0.iter().map(|h| h.1).sum();
    assert_eq!(held, 3, "nothing of the refused orders was kept");
    // The writer still works: a replay of a stored order answers as before.
    let replay = second.flash_purchase(&buyers[0], id, Some("k0"), 1, &address).await;
    assert_eq!(replay.ok().map(|o| o.order_id), first_sale.ok().map(|o| o.order_id));
    // A gate loaded from the store knows its stored purchases by their digests: a replay gets its
    // order, a different request under the same key is refused, a buyer at the limit stays there.
    let third = another_node(app, 2);
    let replay = third.flash_purchase(&buyers[1], id, Some("k1"), 2, &address).await;
    assert_eq!(replay.map(|o| (o.order_id, o.created)).ok(), rest.map(|o| (o.order_id, false)).ok());
    let reused = third.flash_purchase(&buyers[1], id, Some("k1"), 1, &address).await;
    assert!(
        matches!(&reused, Err(xingqu_app::AppError::Invalid(i)) if i.code == "idempotency_key_reused"),
        "{reused:?}"
    );
    let over = third.flash_purchase(&buyers[1], id, Some("k9"), 1, &address).await;
    assert!(matches!(&over, Err(xingqu_app::AppError::Conflict { code: "purchase_limit_exceeded", .. })), "{over:?}");
}

async fn carts_buy_flash_sales_at_the_flash_price(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let (_, kimchi) = app.listed_product(&staff, "辣白菜", 2990).await;
    let sale = json!({"sku_id": sku, "price_fen": 3990, "starts_at": "2025-11-26T00:00:00Z", "ends_at": "2025-11-27T00:00:00Z",
                      "pool_units": 3, "per_user_limit": 2});
    let id = app.post("/v1/flash-sales", Some(&staff), sale).await.id();
    let lines = json!([{"sku_id": sku, "quantity": 2}, {"sku_id": kimchi, "quantity": 1}]);
    let quote = app.post("/v1/quotes", None, json!({"lines": lines})).await;
    let discount = &quote.body["merchants"][0]["lines"][0]["discounts"][0];
    assert_eq!(
        (
            discount["lane"].as_str(),
            discount["funder"].as_str(),
            discount["source"].as_str(),
            discount["amount_fen"].as_i64()
        ),
        (Some("item_price"), Some("merchant"), Some("flash_sale"), Some(4000)),
        "{quote:?}"
    );
    assert_eq!(quote.body["merchants"][0]["lines"][0]["paid_fen"], 7980);

    let buyer = app.register("buyer@example.com", "consumer").await;
    let checkout = order(app, &buyer, "cart", lines).await;
    assert_eq!((checkout.status, checkout.body["total_fen"].as_i64()), (201, Some(7980 + 2990)), "{checkout:?}");
    assert_eq!(stock(app, sku).await, 100, "flash units come from the pool, not normal stock");
    assert_eq!(app.get(&format!("/v1/flash-sales/{id}"), None).await.body["remaining_units"], 1);
    order(app, &buyer, "cart-2", json!([{"sku_id": sku, "quantity": 1}]))
        .await
        .assert_error(409, "purchase_limit_exceeded");

    // The hot path and the cart share the pool: one unit left.
    let other = app.register("other@example.com", "consumer").await;
    let body = json!({"quantity": 1, "address": address()}).to_string().into_bytes();
    let flash_buy = |token: String, key: &'static str| {
        let body = body.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{}/v1/flash-sales/{id}/orders", app.url))
                .bearer_auth(token)
                .header("idempotency-key", key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            response.status().as_u16()
        }
    };
    assert_eq!(flash_buy(buyer.clone(), "h0").await, 409, "the cart's two units count against the limit");
    assert_eq!(flash_buy(other.clone(), "h1").await, 201);
    assert_eq!(flash_buy(app.register("third@example.com", "consumer").await, "h1").await, 409);
    assert_eq!(app.get(&format!("/v1/flash-sales/{id}"), None).await.body["remaining_units"], 0);

    // The cart order expires: its two units return to the pool and can be sold again.
    app.clock.advance_ms(15 * 60 * 1000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").expired, 2);
    assert_eq!(app.get(&format!("/v1/flash-sales/{id}"), None).await.body["remaining_units"], 3);
    let late = app.register("late@example.com", "consumer").await;
    assert_eq!(flash_buy(late, "h2").await, 201);
    ledger_is_consistent(app).await;
}

/// A flash order is answered once it is durable (on SQLite, in the order journal, before it is in
/// the tables): reading it, listing it and paying it right after the answer must all see it.
async fn flash_orders_can_be_read_and_paid_at_once(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let sale = json!({"sku_id": sku, "price_fen": 2990, "starts_at": "2025-11-26T00:00:00Z",
        "ends_at": "2025-11-27T00:00:00Z", "pool_units": 5, "per_user_limit": 2});
    let id = app.post("/v1/flash-sales", Some(&staff), sale).await.id();
    let buyer = app.register("buyer@example.com", "consumer").await;
    let mut order_ids = Vec::new();
    for key in ["k1", "k2"] {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/flash-sales/{id}/orders", app.url))
            .bearer_auth(&buyer)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(json!({"quantity": 1, "address": address()}).to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = response.json().await.expect("json");
        let order_id = body["order_id"].as_i64().expect("order id");
        let read = app.get(&format!("/v1/orders/{order_id}"), Some(&buyer)).await;
        assert_eq!((read.status, read.body["status"].as_str()), (200, Some("created")), "{read:?}");
        order_ids.push(order_id);
    }
    let listed = app.get("/v1/orders", Some(&buyer)).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    for order_id in &order_ids {
        assert!(listed.body.to_string().contains(&order_id.to_string()), "{listed:?}");
    }
    let shop_orders = app.get("/v1/orders", Some(&staff)).await;
    assert!(shop_orders.body.to_string().contains(&order_ids[0].to_string()), "{shop_orders:?}");
    assert_eq!(pay(app, &buyer, order_ids[0]).await.status, 200);
    assert_eq!(app.get(&format!("/v1/flash-sales/{id}"), None).await.body["remaining_units"], 3);

    // A flash sale's keys are its own: the same key on a cart order is another request.
    let (_, other_sku) = app.listed_product(&staff, "延边黄牛肉", 12800).await;
    let cart = order(app, &buyer, "k1", json!([{"sku_id": other_sku, "quantity": 1}])).await;
    assert_eq!(cart.status, 201, "{cart:?}");
    ledger_is_consistent(app).await;
}

/// Sales running or starting within minutes are made ready in memory before their first buyer
/// (gate, journal pool, writer); later ones wait for their turn; either way they sell the same.
async fn flash_sales_are_preheated_before_they_start(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let mut sales = Vec::new();
    for (name, starts_at) in [
        ("延边大米", "2025-11-25T23:00:00Z"),
        ("延边黄牛肉", "2025-11-26T00:02:00Z"),
        ("长白山人参", "2025-11-26T02:00:00Z"),
    ] {
        let (_, sku) = app.listed_product(&staff, name, 5990).await;
        let sale = json!({"sku_id": sku, "price_fen": 2990, "starts_at": starts_at,
            "ends_at": "2025-11-28T00:00:00Z", "pool_units": 5, "per_user_limit": 2});
        sales.push(app.post("/v1/flash-sales", Some(&staff), sale).await.id());
    }
    assert_eq!(app.app.preheat_flash_sales().await.expect("preheat"), 2);
    assert_eq!(app.app.preheat_flash_sales().await.expect("preheat again"), 0);
    app.clock.advance_ms(2 * 3_600_000 - 4 * 60_000);
    assert_eq!(app.app.preheat_flash_sales().await.expect("preheat the third"), 1);

    let buyer = app.register("buyer@example.com", "consumer").await;
    app.clock.advance_ms(5 * 60_000);
    for (i, id) in sales.iter().enumerate() {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/flash-sales/{id}/orders", app.url))
            .bearer_auth(&buyer)
            .header("idempotency-key", format!("k{i}"))
            .header("content-type", "application/json")
            .body(json!({"quantity": 2, "address": address()}).to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 201, "sale {id}");
        assert_eq!(app.get(&format!("/v1/flash-sales/{id}"), None).await.body["remaining_units"], 3);
    }
    ledger_is_consistent(app).await;
}

/// A flash sale ended before its time admits nobody afterwards, on this node at once and on
/// another node by its next timer tick, while what it sold stands; a sale ended before its start
/// is withdrawn and never runs; only its shop's staff or an operator may end it.
async fn flash_sales_can_be_ended_early(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("苏州绣坊", "320500").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let sale = |starts_at: &str| {
        json!({"sku_id": sku, "price_fen": 2990, "starts_at": starts_at, "ends_at": "2025-11-27T00:00:00Z",
               "pool_units": 10, "per_user_limit": 2})
    };
    let created = app.post("/v1/flash-sales", Some(&staff), sale("2025-11-26T00:00:00Z")).await;
    assert_eq!((created.status, created.body["status"].as_str()), (201, Some("running")), "{created:?}");
    let id = created.id();
    let buy = |token: String, key: &'static str| async move { flash_buy(app, id, &token, key, 1).await };
    let buyer = app.register("buyer@example.com", "consumer").await;
    let bought = buy(buyer.clone(), "k1").await;
    assert_eq!(bought.status, 201, "{bought:?}");
    // A second node over the same store, its gate loaded by a purchase of its own.
    let second = another_node(app, 1);
    let address_input = address_input();
    let actor = consumer_actor(app, "second@example.com").await;
    let on_second = second.flash_purchase(&actor, id, Some("s1"), 1, &address_input).await;
    assert!(on_second.is_ok(), "{on_second:?}");

    // Who may end it, and with what.
    let end = |token: String, body: Value| async move {
        app.post(&format!("/v1/flash-sales/{id}/end"), Some(&token), body).await
    };
    end(buyer.clone(), json!({"reason": "价格设错"})).await.assert_error(403, "forbidden");
    end(other_staff.clone(), json!({"reason": "价格设错"})).await.assert_error(403, "forbidden");
    end(staff.clone(), json!({"reason": "  "})).await.assert_error(422, "empty");
    end(staff.clone(), json!({"reason": "很".repeat(201)})).await.assert_error(422, "too_long");
    end(staff.clone(), json!({})).await.assert_error(422, "missing_field");
    app.post("/v1/flash-sales/999999/end", Some(&staff), json!({"reason": "价格设错"}))
        .await
        .assert_error(404, "flash_sale_not_found");
    assert_eq!(
        app.get(&format!("/v1/flash-sales/{id}"), None).await.body["status"],
        "running",
        "refusals change nothing"
    );

    let ended = end(staff.clone(), json!({"reason": "价格设错"})).await;
    assert_eq!(ended.status, 200, "{ended:?}");
    assert_eq!(
        (ended.body["status"].as_str(), ended.body["ended_early"]["reason"].as_str()),
        (Some("ended"), Some("价格设错")),
        "{ended:?}"
    );
    assert_eq!(ended.body["ends_at"], "2025-11-26T00:00:00.001Z", "it sold through the millisecond it was ended in");
    // Nobody is admitted any more: not in the millisecond it was ended in (still inside the
    // stored window, which only covers what was admitted before), nor after; a retry of an
    // earlier purchase still gets its order.
    let late = app.register("late@example.com", "consumer").await;
    buy(late.clone(), "k2").await.assert_error(409, "flash_sale_not_active");
    app.clock.advance_ms(1);
    buy(late, "k3").await.assert_error(409, "flash_sale_not_active");
    let replay = buy(buyer.clone(), "k1").await;
    assert_eq!((replay.status, &replay.body["order_id"]), (200, &bought.body["order_id"]), "{replay:?}");
    // Before its next timer tick the second node's gate still admits; on PostgreSQL (where nodes
    // share a database) the store refuses the order. (On SQLite one process owns the pools.)
    if !app.app.store().journalled() {
        let early = second.flash_purchase(&actor, id, Some("s2"), 1, &address_input).await;
        assert!(matches!(&early, Err(xingqu_app::AppError::Conflict { code: "not_admitted", .. })), "{early:?}");
    }
    // The second node learns of the end at its next timer tick.
    second.preheat_flash_sales().await.expect("the second node's timers");
    let refused = second.flash_purchase(&actor, id, Some("s2"), 1, &address_input).await;
    assert!(
        matches!(&refused, Err(xingqu_app::AppError::Conflict { code: "flash_sale_not_active", .. })),
        "{refused:?}"
    );
    // Ending it again changes nothing; a cart pays the list price again.
    let again = end(staff.clone(), json!({"reason": "再试一次"})).await;
    assert_eq!((again.status, &again.body["ended_early"]), (200, &ended.body["ended_early"]), "{again:?}");
    let quote = app.post("/v1/quotes", None, json!({"lines": [{"sku_id": sku, "quantity": 1}]})).await;
    assert_eq!(quote.body["merchants"][0]["lines"][0]["paid_fen"], 5990, "{quote:?}");
    // What it sold stands, also what was journalled before the end and applied after it.
    let second_order = on_second.as_ref().map(|o| o.order_id).expect("the second node's order");
    let stored = app.app.store().order(second_order).await.expect("read");
    assert_eq!(stored.map(|o| o.status), Some("created".to_owned()), "the order placed before the end is kept");
    // It is paid as usual.
    assert_eq!(pay(app, &buyer, bought.body["order_id"].as_i64().expect("order")).await.status, 200);
    assert_eq!(app.get(&format!("/v1/flash-sales/{id}"), None).await.body["remaining_units"], 8);

    // A sale ended before its start is withdrawn: it never runs, nor is it preheated.
    let (_, later_sku) = app.listed_product(&staff, "延边黄牛肉", 12800).await;
    let later = json!({"sku_id": later_sku, "price_fen": 9990, "starts_at": "2025-11-26T02:00:00Z",
        "ends_at": "2025-11-27T00:00:00Z", "pool_units": 10, "per_user_limit": 2});
    let later_id = app.post("/v1/flash-sales", Some(&staff), later).await.id();
    let op = app.operator().await;
    let withdrawn =
        app.post(&format!("/v1/flash-sales/{later_id}/end"), Some(&op), json!({"reason": "活动取消"})).await;
    assert_eq!(
        (withdrawn.status, withdrawn.body["status"].as_str(), withdrawn.body["ends_at"].as_str()),
        (200, Some("withdrawn"), withdrawn.body["starts_at"].as_str()),
        "{withdrawn:?}"
    );
    app.clock.advance_ms(3 * 3_600_000);
    assert_eq!(app.app.preheat_flash_sales().await.expect("preheat"), 0);
    // (Sessions here last an hour.)
    let buyer = app.login("buyer@example.com").await;
    flash_buy(app, later_id, &buyer, "w1", 1).await.assert_error(409, "flash_sale_not_active");
    // A sale that is over cannot be ended.
    app.clock.advance_ms(24 * 3_600_000);
    let staff = app.login("延吉米铺@shop.test").await;
    let (_, third_sku) = app.listed_product(&staff, "长白山人参", 5990).await;
    let short = json!({"sku_id": third_sku, "price_fen": 2990, "starts_at": "2025-11-27T03:00:00Z",
        "ends_at": "2025-11-27T03:00:01Z", "pool_units": 10, "per_user_limit": 2});
    let short_id = app.post("/v1/flash-sales", Some(&staff), short).await.id();
    app.clock.advance_ms(2_000);
    app.post(&format!("/v1/flash-sales/{short_id}/end"), Some(&staff), json!({"reason": "晚了"}))
        .await
        .assert_error(409, "flash_sale_over");
    ledger_is_consistent(app).await;
}

/// The sale channel lists sales by phase, newest first, in pages; a sale of a product taken off
/// sale is listed to its shop's staff and operators only.
async fn flash_sales_are_listed_by_phase_to_those_who_may_see_them(app: &TestApp) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("苏州绣坊", "320500").await;
    let (_, rice) = app.listed_product(&staff, "延边大米", 5990).await;
    let (beef_product, beef) = app.listed_product(&staff, "延边黄牛肉", 12800).await;
    let (_, silk) = app.listed_product(&other_staff, "苏绣团扇", 38000).await;
    let sale = |token: &str, sku: i64, price: i64, starts_at: &'static str| {
        let body = json!({"sku_id": sku, "price_fen": price, "starts_at": starts_at, "ends_at": "2025-11-27T00:00:00Z",
                          "pool_units": 10, "per_user_limit": 2});
        let token = token.to_owned();
        async move { app.post("/v1/flash-sales", Some(&token), body).await.id() }
    };
    let running = sale(&staff, rice, 2990, "2025-11-25T00:00:00Z").await;
    let upcoming = sale(&staff, rice, 2990, "2025-11-26T08:00:00Z").await;
    let withdrawn = sale(&staff, beef, 9990, "2025-11-26T09:00:00Z").await;
    let beef_running = sale(&staff, beef, 9990, "2025-11-25T12:00:00Z").await;
    let silk_running = sale(&other_staff, silk, 30000, "2025-11-25T00:00:00Z").await;
    let ended = app.post(&format!("/v1/flash-sales/{withdrawn}/end"), Some(&staff), json!({"reason": "取消"})).await;
    assert_eq!(ended.body["status"], "withdrawn");
    let ids = |reply: &Reply| -> Vec<i64> {
        reply.body["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["id"].as_i64()).collect())
            .unwrap_or_default()
    };

    let everyone = app.get("/v1/flash-sales", None).await;
    assert_eq!(ids(&everyone), vec![silk_running, beef_running, withdrawn, upcoming, running], "{everyone:?}");
    let now_running = app.get("/v1/flash-sales?status=running", None).await;
    assert_eq!(ids(&now_running), vec![silk_running, beef_running, running]);
    assert!(now_running.body["items"].as_array().into_iter().flatten().all(|i| i["status"] == "running"));
    assert_eq!(ids(&app.get("/v1/flash-sales?status=upcoming", None).await), vec![upcoming]);
    assert_eq!(ids(&app.get("/v1/flash-sales?status=withdrawn", None).await), vec![withdrawn]);
    assert_eq!(
        ids(&app.get(&format!("/v1/flash-sales?merchant_id={merchant}&status=running"), None).await),
        vec![beef_running, running]
    );
    assert_eq!(ids(&app.get(&format!("/v1/flash-sales?sku_id={rice}"), None).await), vec![upcoming, running]);
    // Pages.
    let first = app.get("/v1/flash-sales?limit=2", None).await;
    assert_eq!(
        (ids(&first), first.body["next_before_id"].as_i64()),
        (vec![silk_running, beef_running], Some(beef_running))
    );
    let second = app.get(&format!("/v1/flash-sales?limit=2&before_id={beef_running}"), None).await;
    assert_eq!(ids(&second), vec![withdrawn, upcoming]);

    // The beef is taken off sale: its sales leave the channel, but not its shop's own list.
    let delisted =
        app.post(&format!("/v1/products/{beef_product}/delist"), Some(&staff), json!({"reason": "换季"})).await;
    assert_eq!(delisted.body["status"], "delisted", "{delisted:?}");
    let buyer = app.register("buyer@example.com", "consumer").await;
    let as_buyer = app.get("/v1/flash-sales?status=running", Some(&buyer)).await;
    assert_eq!(ids(&as_buyer), vec![silk_running, running]);
    assert_eq!(ids(&app.get("/v1/flash-sales?status=running", Some(&other_staff)).await), vec![silk_running, running]);
    assert_eq!(
        ids(&app.get("/v1/flash-sales?status=running", Some(&staff)).await),
        vec![silk_running, beef_running, running]
    );
    let op = app.operator().await;
    assert_eq!(
        ids(&app.get("/v1/flash-sales?status=running", Some(&op)).await),
        vec![silk_running, beef_running, running]
    );

    // Bad input.
    app.get("/v1/flash-sales?status=soon", None).await.assert_error(422, "invalid_status");
    app.get("/v1/flash-sales?limit=0", None).await.assert_error(422, "out_of_range");
    app.get("/v1/flash-sales?before_id=x", None).await.assert_error(400, "invalid_query");
    app.get("/v1/flash-sales", Some("not-a-token")).await.assert_error(401, "invalid_token");
}

async fn order_bad_input_is_refused(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let line = |quantity: i64| json!([{"sku_id": sku, "quantity": quantity}]);
    order(app, &buyer, "k", line(0)).await.assert_error(422, "out_of_range");
    order(app, &buyer, "k", line(-1)).await.assert_error(422, "out_of_range");
    order(app, &buyer, "k", line(100)).await.assert_error(422, "out_of_range");
    order(app, &buyer, "k", json!([])).await.assert_error(422, "out_of_range");
    order(app, &buyer, "k", json!([{"sku_id": sku, "quantity": 1}, {"sku_id": sku, "quantity": 1}]))
        .await
        .assert_error(422, "duplicate_sku");
    order(app, &buyer, "bad key with spaces", line(1)).await.assert_error(422, "invalid_idempotency_key");
    order(app, &staff, "k", line(1)).await.assert_error(403, "forbidden");
    let no_key = app.post("/v1/orders", Some(&buyer), json!({"lines": line(1), "address": address()})).await;
    no_key.assert_error(422, "invalid_idempotency_key");
    let mut bad_address = address();
    bad_address["phone"] = json!("call me");
    let body = json!({"lines": line(1), "address": bad_address});
    let reply = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(&buyer)
        .header("idempotency-key", "k")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status().as_u16(), 422);
    app.raw("POST", "/v1/orders", Some(&buyer), r#"{"lines": [{"sku_id": 1, "quantity": 99999999999999999999}]"#)
        .await
        .assert_error(400, "malformed_json");
    app.get("/v1/orders/99999", Some(&buyer)).await.assert_error(404, "order_not_found");
    app.post(
        "/v1/payments/simulated/callback",
        None,
        json!({"order_id": 99999, "amount_fen": 1, "gateway_ref": "x", "signature": "zz"}),
    )
    .await
    .assert_error(401, "invalid_signature");
    assert_eq!(stock(app, sku).await, 100, "nothing reserved");
    assert!(app.get("/v1/orders", Some(&buyer)).await.body["items"].as_array().is_some_and(Vec::is_empty));
}
