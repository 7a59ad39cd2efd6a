//! Analytics: GMV and quality GMV with exact figures (refunds, banned products and brushing
//! taken out), the series, regions, shipping points against their baseline, farm specialties
//! year on year, 安心购 reach, the domestic-brand share; who may see what; bad windows; CSV; and
//! the hot list's live stream.

use crate::helpers::{Reply, TestApp};
use serde_json::{Value, json};

crate::api_tests!(
    quality_gmv_takes_out_refunds_bans_and_brushing,
    analytics_are_scoped_and_checked,
    hot_list_stream_sends_changes
);

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const FIVE: [&str; 5] =
    ["authenticity_guarantee", "seven_day_return", "express_refund", "return_shipping_insurance", "door_pickup"];

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

/// Places and pays an order of `quantity` units of `sku`: returns the order id.
async fn paid_order(app: &TestApp, buyer: &str, key: &str, sku: i64, quantity: i64) -> i64 {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(buyer)
        .header("idempotency-key", key)
        .json(&json!({"lines": [{"sku_id": sku, "quantity": quantity}], "address": address()}))
        .send()
        .await
        .expect("send");
    let created: Value = response.json().await.expect("json");
    let order_id = created["orders"][0]["id"].as_i64().unwrap_or_else(|| panic!("no order in {created}"));
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(buyer), None).await;
    assert_eq!(payment.status, 200, "{payment:?}");
    let paid = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(paid.body["outcome"], "paid", "{paid:?}");
    order_id
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

/// A listed product with one SKU, optionally branded: returns (product, sku).
async fn product(app: &TestApp, staff: &str, title: &str, price_fen: i64, brand_id: Option<i64>) -> (i64, i64) {
    let (rice, _) = app.categories().await;
    let created = app
        .post(
            "/v1/products",
            Some(staff),
            json!({"category_id": rice, "title": title, "farm_specialty": true, "brand_id": brand_id,
                   "skus": [{"spec": {"规格": "1kg"}, "price_fen": price_fen, "stock": 100, "weight_g": 1000}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.id();
    app.post(&format!("/v1/products/{id}/submit"), Some(staff), json!({})).await;
    let op = app.operator().await;
    let approved = app.post(&format!("/v1/products/{id}/review"), Some(&op), json!({"decision": "approve"})).await;
    assert_eq!(approved.body["status"], "listed", "{approved:?}");
    (id, created.body["skus"][0]["id"].as_i64().expect("sku id"))
}

fn overview_path(from_ms: i64, to_ms: i64, extra: &str) -> String {
    format!("/v1/analytics/overview?from_ms={from_ms}&to_ms={to_ms}{extra}")
}

/// The figures the hand-made fixture must give, as (path, value).
#[track_caller]
fn check(reply: &Reply, expected: &[(&str, Value)]) {
    assert_eq!(reply.status, 200, "{reply:?}");
    for (path, value) in expected {
        let got = path.split('.').fold(&reply.body, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        });
        assert_eq!(got, value, "{path} in {}", reply.body);
    }
}

struct Fixture {
    shop_a: i64,
    shop_b: i64,
    staff_a: String,
    from_ms: i64,
    to_ms: i64,
}

/// Two shops. A (延边, 222401, 安心购): a year before, one farm order (10 元); two days before,
/// one order shipped (the shipping point's baseline); now, orders of 20 元 and 10 元 (both
/// shipped now) and 20 元 of a product banned afterwards. B (杭州, 330100, a domestic brand):
/// now, 30 元 cancelled after payment, and one buyer's eleven 30 元 orders, the eleventh flagged
/// by the velocity rule.
async fn fixture(app: &TestApp) -> Fixture {
    let (staff_a, shop_a) = app.shop("延吉米铺", "222401").await;
    let (staff_b, shop_b) = app.shop("杭州茶庄", "330100").await;
    let op = app.operator().await;
    let brand = app.post("/v1/brands", Some(&op), json!({"name": "国风茶", "domestic_brand": true})).await.id();
    let (_, rice) = product(app, &staff_a, "延边大米", 1_000, None).await;
    let (banned, pepper) = product(app, &staff_a, "辣白菜", 2_000, None).await;
    let (_, tea) = product(app, &staff_b, "龙井", 3_000, Some(brand)).await;
    for email in ["b1@example.com", "b2@example.com", "b3@example.com"] {
        app.register(email, "consumer").await;
    }
    let year_ago = app.login("b1@example.com").await;
    paid_order(app, &year_ago, "y", rice, 1).await;

    app.clock.advance_ms(363 * DAY_MS);
    let b1 = app.login("b1@example.com").await;
    let staff_a = relogin_staff(app, "延吉米铺").await;
    let baseline = paid_order(app, &b1, "base", rice, 1).await;
    ship(app, &staff_a, baseline).await;

    app.clock.advance_ms(2 * DAY_MS);
    let staff_a = relogin_staff(app, "延吉米铺").await;
    let op = app.operator().await;
    let path = format!("/v1/merchants/{shop_a}/assurance");
    let asked = app
        .send(
            "PUT",
            &path,
            Some(&staff_a),
            Some((
                "application/json",
                json!({"services": FIVE, "insurance_premium_fen": 50, "insurance_cap_fen": 1_000})
                    .to_string()
                    .into_bytes(),
            )),
        )
        .await;
    assert_eq!(asked.body["status"], "pending", "{asked:?}");
    app.post(&format!("{path}/decision"), Some(&op), json!({"decision": "approve"})).await;
    let (b1, b2, b3) =
        (app.login("b1@example.com").await, app.login("b2@example.com").await, app.login("b3@example.com").await);
    let first = paid_order(app, &b1, "1", rice, 2).await;
    paid_order(app, &b1, "2", pepper, 1).await;
    let cancelled = paid_order(app, &b2, "3", tea, 1).await;
    let fourth = paid_order(app, &b2, "4", rice, 1).await;
    ship(app, &staff_a, first).await;
    ship(app, &staff_a, fourth).await;
    let cancel = app.post(&format!("/v1/orders/{cancelled}/cancel"), Some(&b2), json!({"reason": "买错了"})).await;
    assert_eq!(cancel.body["status"], "cancelled", "{cancel:?}");
    for i in 0..11 {
        paid_order(app, &b3, &format!("v{i}"), tea, 1).await;
    }
    let ban = app.post(&format!("/v1/products/{banned}/ban"), Some(&op), json!({"reason": "假冒"})).await;
    assert_eq!(ban.body["status"], "banned", "{ban:?}");
    let now = app.app.now_ms();
    Fixture { shop_a, shop_b, staff_a, from_ms: now - HOUR_MS, to_ms: now + HOUR_MS }
}

/// Sessions last an hour in tests: the shop's staff signs in again after the clock moved.
async fn relogin_staff(app: &TestApp, shop: &str) -> String {
    app.login(&format!("{shop}@shop.test")).await
}

async fn quality_gmv_takes_out_refunds_bans_and_brushing(app: &TestApp) {
    let f = fixture(app).await;
    let op = app.operator().await;
    let all = app.get(&overview_path(f.from_ms, f.to_ms, ""), Some(&op)).await;
    // GMV: 20+20+10 (A) + 30 + 11×30 (B) = 410 元; quality: less the cancelled 30, the banned
    // 20 and the brushed 30.
    check(
        &all,
        &[
            ("merchant_id", Value::Null),
            ("gmv.orders", json!(15)),
            ("gmv.gmv_fen", json!(41_000)),
            ("gmv.refunds_fen", json!(3_000)),
            ("gmv.banned_fen", json!(2_000)),
            ("gmv.brushing_fen", json!(3_000)),
            ("gmv.sanctioned_fen", json!(0)),
            ("gmv.quality_gmv_fen", json!(33_000)),
            ("series.bucket_ms", json!(HOUR_MS)),
            (
                "series.points",
                json!([
                    {"start_ms": f.from_ms, "gmv_fen": 0, "quality_gmv_fen": 0},
                    {"start_ms": f.from_ms + HOUR_MS, "gmv_fen": 41_000, "quality_gmv_fen": 33_000},
                ]),
            ),
            (
                "regions",
                json!([
                    {"region_code": "330100", "orders": 12, "gmv_fen": 36_000},
                    {"region_code": "222401", "orders": 3, "gmv_fen": 5_000},
                ]),
            ),
            ("farm_specialty.current", json!({"orders": 15, "units": 16, "gmv_fen": 41_000})),
            ("farm_specialty.year_earlier", json!({"orders": 1, "units": 1, "gmv_fen": 1_000})),
            ("farm_specialty.gmv_ratio", json!(41.0)),
            ("assured_purchase.buyers_served", json!(2)),
            // The day's list: rice (3), pepper (1), tea (10 after the refund, brushing kept out).
            ("domestic_brands", json!({"ranked_skus": 3, "domestic_skus": 1, "share_bps": 3_333})),
            ("shipping_points.0.region_code", json!("222401")),
            ("shipping_points.0.shipped_orders", json!(2)),
            ("shipping_points.0.per_day", json!(24.0)),
            ("shipping_points.0.baseline_orders", json!(1)),
        ],
    );
    let point = &all.body["shipping_points"][0];
    let expected_ratio = 24.0 / (1.0 / 28.0);
    assert!((point["ratio"].as_f64().expect("ratio") - expected_ratio).abs() < 1e-9, "{point}");
    assert_eq!(all.body["shipping_points"].as_array().map(Vec::len), Some(1), "B shipped nothing");

    // The brushed order is under review, and stays so (and out of the list) after a restart.
    let suspects = app.get("/v1/hot-lists/suspects", Some(&op)).await;
    assert_eq!(suspects.body["items"].as_array().map(Vec::len), Some(1), "{suspects:?}");
    app.app.rebuild_hot_lists().await.expect("rebuild");
    assert_eq!(app.get("/v1/hot-lists/suspects", Some(&op)).await.body, suspects.body);
    let again = app.get(&overview_path(f.from_ms, f.to_ms, ""), Some(&op)).await;
    assert_eq!(again.body["domestic_brands"], all.body["domestic_brands"]);
    let tea = app.get("/v1/hot-lists?window=24h", None).await;
    assert_eq!(tea.body["items"][0]["value"], 10, "{tea:?}");

    // One shop's figures, for an operator and for that shop's staff alike.
    let shop_a = app.get(&overview_path(f.from_ms, f.to_ms, &format!("&merchant_id={}", f.shop_a)), Some(&op)).await;
    let a_expected = [
        ("merchant_id", json!(f.shop_a)),
        ("gmv.orders", json!(3)),
        ("gmv.gmv_fen", json!(5_000)),
        ("gmv.banned_fen", json!(2_000)),
        ("gmv.refunds_fen", json!(0)),
        ("gmv.brushing_fen", json!(0)),
        ("gmv.quality_gmv_fen", json!(3_000)),
        ("regions", json!([{"region_code": "222401", "orders": 3, "gmv_fen": 5_000}])),
        ("assured_purchase.buyers_served", json!(2)),
        ("domestic_brands", json!({"ranked_skus": 2, "domestic_skus": 0, "share_bps": 0})),
    ];
    check(&shop_a, &a_expected);
    let own = app.get(&overview_path(f.from_ms, f.to_ms, ""), Some(&f.staff_a)).await;
    check(&own, &a_expected);
    assert_eq!(own.body, shop_a.body);
    let shop_b = app.get(&overview_path(f.from_ms, f.to_ms, &format!("&merchant_id={}", f.shop_b)), Some(&op)).await;
    check(
        &shop_b,
        &[
            ("gmv.gmv_fen", json!(36_000)),
            ("gmv.refunds_fen", json!(3_000)),
            ("gmv.brushing_fen", json!(3_000)),
            ("gmv.quality_gmv_fen", json!(30_000)),
            ("assured_purchase.buyers_served", json!(0)),
            ("farm_specialty.gmv_ratio", Value::Null),
            ("shipping_points", json!([])),
            ("domestic_brands", json!({"ranked_skus": 1, "domestic_skus": 1, "share_bps": 10_000})),
        ],
    );

    // CSV: a header row, then the rows of the section.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/v1/analytics/overview.csv?section=gmv_series&from_ms={}&to_ms={}",
            app.url, f.from_ms, f.to_ms
        ))
        .bearer_auth(&op)
        .send()
        .await
        .expect("csv");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/csv; charset=utf-8"));
    let text = response.text().await.expect("text");
    assert_eq!(
        text,
        format!("start_ms,gmv_fen,quality_gmv_fen\n{},0,0\n{},41000,33000\n", f.from_ms, f.from_ms + HOUR_MS)
    );
    let totals = reqwest::Client::new()
        .get(format!("{}/v1/analytics/overview.csv?section=totals&from_ms={}&to_ms={}", app.url, f.from_ms, f.to_ms))
        .bearer_auth(&f.staff_a)
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("text");
    assert_eq!(
        totals,
        "orders,gmv_fen,quality_gmv_fen,refunds_fen,banned_fen,sanctioned_fen,brushing_fen,assured_buyers\n\
         3,5000,3000,0,2000,0,0,2\n"
    );
}

async fn analytics_are_scoped_and_checked(app: &TestApp) {
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (_, other) = app.shop("杭州茶庄", "330100").await;
    let op = app.operator().await;
    let consumer = app.register("buyer@example.com", "consumer").await;
    let creator = app.register("creator@example.com", "creator").await;
    let now = app.app.now_ms();
    let ok = overview_path(now - DAY_MS, now, "");
    app.get(&ok, None).await.assert_error(401, "unauthenticated");
    app.get(&ok, Some(&consumer)).await.assert_error(403, "forbidden");
    app.get(&ok, Some(&creator)).await.assert_error(403, "forbidden");
    app.get(&overview_path(now - DAY_MS, now, &format!("&merchant_id={other}")), Some(&staff))
        .await
        .assert_error(403, "forbidden");
    let own = app.get(&overview_path(now - DAY_MS, now, &format!("&merchant_id={shop}")), Some(&staff)).await;
    check(&own, &[("merchant_id", json!(shop)), ("gmv.gmv_fen", json!(0)), ("farm_specialty.gmv_ratio", Value::Null)]);
    app.get(&overview_path(now - DAY_MS, now, "&merchant_id=99999"), Some(&op))
        .await
        .assert_error(404, "merchant_not_found");
    // Defaults: the last day, hourly.
    let default = app.get("/v1/analytics/overview", Some(&op)).await;
    check(&default, &[("from_ms", json!(now - DAY_MS)), ("to_ms", json!(now)), ("series.bucket_ms", json!(HOUR_MS))]);
    assert_eq!(default.body["series"]["points"].as_array().map(Vec::len), Some(24));
    let daily = app.get(&overview_path(now - 30 * DAY_MS, now, ""), Some(&op)).await;
    check(&daily, &[("series.bucket_ms", json!(DAY_MS))]);
    assert_eq!(daily.body["series"]["points"].as_array().map(Vec::len), Some(30));
    for (path, code) in [
        (overview_path(now, now, ""), "invalid_window"),
        (overview_path(now, now - 1, ""), "invalid_window"),
        (overview_path(-5, now, ""), "invalid_window"),
        (overview_path(now - 401 * DAY_MS, now, ""), "window_too_long"),
        (overview_path(now - DAY_MS, now, "&merchant_id=0"), "invalid_id"),
        ("/v1/analytics/overview?from_ms=yesterday".to_owned(), "invalid_query"),
        ("/v1/analytics/overview?to_ms=99999999999999999999".to_owned(), "invalid_query"),
        ("/v1/analytics/overview.csv".to_owned(), "unknown_section"),
        ("/v1/analytics/overview.csv?section=secrets".to_owned(), "unknown_section"),
        ("/v1/analytics/overview.csv?section=regions&from_ms=5&to_ms=1".to_owned(), "invalid_window"),
    ] {
        app.get(&path, Some(&op)).await.assert_error(400, code);
    }
    app.get("/v1/analytics/overview.csv?section=regions", Some(&consumer)).await.assert_error(403, "forbidden");

    // The after-sale queue: the shop's own for its staff, any shop's for operators.
    let (_, sku) = product(app, &staff, "延边大米", 1_000, None).await;
    let order_id = paid_order(app, &consumer, "k1", sku, 2).await;
    let order = app.get(&format!("/v1/orders/{order_id}"), Some(&consumer)).await;
    let line_id = order.body["lines"][0]["id"].as_i64().expect("line id");
    let asked = app
        .post(
            &format!("/v1/orders/{order_id}/after-sales"),
            Some(&consumer),
            json!({"line_id": line_id, "kind": "return_refund", "units": 1, "reason": "不想要了"}),
        )
        .await;
    assert_eq!(asked.status, 409, "not delivered yet: {asked:?}");
    let asked = app
        .post(
            &format!("/v1/orders/{order_id}/after-sales"),
            Some(&consumer),
            json!({"line_id": line_id, "kind": "refund_before_shipment", "units": 1, "reason": "不想要了"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{asked:?}");
    let ids = |reply: Reply| -> Vec<i64> {
        reply.body["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let own_queue = app.get("/v1/after-sales", Some(&staff)).await;
    assert_eq!(ids(own_queue), vec![asked.id()]);
    assert_eq!(
        ids(app.get(&format!("/v1/after-sales?merchant_id={shop}&status=all"), Some(&op)).await),
        vec![asked.id()]
    );
    assert_eq!(ids(app.get(&format!("/v1/after-sales?merchant_id={other}"), Some(&op)).await), Vec::<i64>::new());
    app.get(&format!("/v1/after-sales?merchant_id={other}"), Some(&staff)).await.assert_error(403, "forbidden");
    app.get("/v1/after-sales", Some(&consumer)).await.assert_error(403, "forbidden");
    app.get("/v1/after-sales?status=odd", Some(&op)).await.assert_error(422, "unknown_status");
    let regions = reqwest::Client::new()
        .get(format!("{}/v1/analytics/overview.csv?section=regions", app.url))
        .bearer_auth(&op)
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("text");
    assert_eq!(regions, "region_code,orders,gmv_fen\n");
}

/// Reads server-sent events until one named `hot_list` arrives: its data as JSON.
async fn next_list(response: &mut reqwest::Response, buffer: &mut String) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: hot_list") {
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                return serde_json::from_str(&data).expect("event data is JSON");
            }
            continue;
        }
        let chunk = response.chunk().await.expect("read stream").expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn hot_list_stream_sends_changes(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = product(app, &staff, "延边大米", 1_000, None).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    app.get("/v1/hot-lists/stream?window=week", None).await.assert_error(422, "unknown_window");
    let mut response = reqwest::Client::new()
        .get(format!("{}/v1/hot-lists/stream?window=1h&measure=units", app.url))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    let mut buffer = String::new();
    let first = next_list(&mut response, &mut buffer).await;
    assert_eq!(first, json!({"window": "1h", "measure": "units", "items": []}));
    paid_order(app, &buyer, "k1", sku, 3).await;
    let second = next_list(&mut response, &mut buffer).await;
    assert_eq!(second["items"][0]["sku_id"], sku, "{second}");
    assert_eq!(second["items"][0]["value"], 3, "{second}");
    paid_order(app, &buyer, "k2", sku, 2).await;
    let third = next_list(&mut response, &mut buffer).await;
    assert_eq!(third["items"][0]["value"], 5, "{third}");
}
