//! Coupons, red packets, claims under concurrency, best-combination quotes, coupons locked to
//! orders and released, and what each funder bears in the ledger, over HTTP.

use crate::helpers::{PASSWORD, Reply, TestApp};
use serde_json::{Value, json};

crate::api_tests!(
    coupons_are_issued_by_their_owners_and_checked,
    concurrent_claims_never_exceed_quantity_or_limits,
    quotes_pick_the_best_combination_and_orders_lock_it,
    platform_coupons_are_funded_by_the_platform_in_the_ledger,
    fan_coupons_are_for_followers,
    red_packet_pools_split_exactly,
    a_claim_pays_for_one_order_however_many_race,
    coupon_bad_input_is_refused
);

const OPEN: &str = "2025-11-25T00:00:00Z";
const CLOSE: &str = "2025-12-31T00:00:00Z";

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

/// A coupon body with sensible defaults, overridden by `extra`.
fn coupon(class: &str, extra: Value) -> Value {
    let mut body = json!({"class": class, "title": "双11券", "kind": "money_off", "off_fen": 500,
        "claim_starts_at": OPEN, "claim_ends_at": CLOSE, "valid_days": 7, "quantity": 100});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            body.insert(key.clone(), value.clone());
        }
    }
    body
}

async fn claim(app: &TestApp, token: &str, coupon_id: i64) -> Reply {
    app.send("POST", &format!("/v1/coupons/{coupon_id}/claims"), Some(token), None).await
}

async fn order(app: &TestApp, token: &str, key: &str, body: Value) -> Reply {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    Reply { status, body: response.json().await.unwrap_or(Value::Null) }
}

async fn pay(app: &TestApp, buyer: &str, order_id: i64) -> Reply {
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(buyer), None).await;
    assert_eq!(payment.status, 200, "{payment:?}");
    app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await
}

async fn wallet_status(app: &TestApp, buyer: &str) -> Vec<(i64, String)> {
    let claims = app.get("/v1/wallet/claims", Some(buyer)).await;
    claims
        .body
        .as_array()
        .expect("claims")
        .iter()
        .map(|c| (c["claim_id"].as_i64().expect("id"), c["status"].as_str().expect("status").to_owned()))
        .collect()
}

async fn coupons_are_issued_by_their_owners_and_checked(app: &TestApp) {
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("苏州绣坊", "320500").await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;

    let created = app.post("/v1/coupons", Some(&staff), coupon("shop", json!({"merchant_id": shop}))).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!((created.body["claimed"].as_i64(), created.body["status"].as_str()), (Some(0), Some("active")));
    app.post("/v1/coupons", Some(&other_staff), coupon("shop", json!({"merchant_id": shop})))
        .await
        .assert_error(403, "forbidden");
    app.post("/v1/coupons", Some(&buyer), coupon("platform", json!({}))).await.assert_error(403, "forbidden");
    assert_eq!(app.post("/v1/coupons", Some(&op), coupon("platform", json!({}))).await.status, 201);
    let creator = app.register("creator@example.com", "creator").await;
    app.post("/v1/coupons", Some(&creator), coupon("fan", json!({}))).await.assert_error(422, "missing_field");
    app.post("/v1/coupons", Some(&op), coupon("red_packet", json!({}))).await.assert_error(422, "use_red_packet_pools");

    // Each kind's fields, checked: a threshold above its discount, no stray fields, known kinds.
    let bad = [
        (json!({"kind": "threshold", "threshold_fen": 500, "off_fen": 500}), "out_of_range"),
        (json!({"kind": "percent_off", "off_fen": 0, "percent_bps": 10_000, "cap_fen": 100}), "out_of_range"),
        (json!({"kind": "money_off", "percent_bps": 10}), "unexpected_field"),
        (json!({"kind": "bogus"}), "unknown_kind"),
        (json!({"quantity": 0}), "out_of_range"),
        (json!({"quantity": -5}), "out_of_range"),
        (json!({"valid_days": null}), "invalid_validity"),
        (json!({"claim_ends_at": "2025-01-01T00:00:00Z"}), "out_of_range"),
        (json!({"combines_with": ["nonsense"]}), "unknown_class"),
    ];
    for (extra, code) in bad {
        let reply = app.post("/v1/coupons", Some(&op), coupon("platform", extra.clone())).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{extra}: {reply:?}");
    }
    let listed = app.get("/v1/coupons", Some(&buyer)).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(2), "claimable now: the shop's and the platform's");
    let mine = app.get("/v1/coupons?mine=true", Some(&staff)).await;
    assert_eq!(mine.body.as_array().map(Vec::len), Some(1));
    app.get(&format!("/v1/coupons?merchant_id={shop}"), Some(&other_staff)).await.assert_error(403, "forbidden");
}

async fn concurrent_claims_never_exceed_quantity_or_limits(app: &TestApp) {
    let op = app.operator().await;
    let created =
        app.post("/v1/coupons", Some(&op), coupon("platform", json!({"quantity": 5, "per_user_limit": 2}))).await;
    let id = created.id();
    let mut buyers = Vec::new();
    for i in 0..4 {
        buyers.push(app.register(&format!("b{i}@example.com"), "consumer").await);
    }
    // Every buyer asks three times at once: 12 claims for 5 coupons, at most 2 each.
    let mut tasks = Vec::new();
    for buyer in &buyers {
        for _ in 0..3 {
            let (url, token) = (app.url.clone(), buyer.clone());
            tasks.push(tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(format!("{url}/v1/coupons/{id}/claims"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("send");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
            }));
        }
    }
    let mut issued = 0;
    for task in tasks {
        let (status, code) = task.await.expect("task");
        match status {
            201 => issued += 1,
            409 => assert!(["coupon_exhausted", "claim_limit_reached"].contains(&code.as_str()), "{code}"),
            other => panic!("unexpected status {other} {code}"),
        }
    }
    assert_eq!(issued, 5);
    for buyer in &buyers {
        assert!(wallet_status(app, buyer).await.len() <= 2);
    }
    let stored = app.app.store().claim_state(id).await.expect("claims");
    assert_eq!(stored.len(), 5);
    assert_eq!(app.get(&format!("/v1/coupons/{id}"), None).await.body["claimed"], 5);

    // An idempotency key makes a retry return the first claim, also after a restart of the gate.
    let keyed = app.post("/v1/coupons", Some(&op), coupon("platform", json!({"quantity": 3}))).await.id();
    let buyer = app.register("keyed@example.com", "consumer").await;
    let send = |key: &'static str| {
        let (url, token) = (app.url.clone(), buyer.clone());
        async move {
            let response = reqwest::Client::new()
                .post(format!("{url}/v1/coupons/{keyed}/claims"))
                .bearer_auth(token)
                .header("idempotency-key", key)
                .send()
                .await
                .expect("send");
            (response.status().as_u16(), response.json::<Value>().await.expect("json"))
        }
    };
    let (first, second) = tokio::join!(send("claim-1"), send("claim-1"));
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201]);
    assert_eq!(first.1["claim_id"], second.1["claim_id"]);
    let again = send("claim-1").await;
    assert_eq!((again.0, &again.1["claim_id"]), (200, &first.1["claim_id"]));
    assert_eq!(send("claim-2").await.1["error"]["code"], "claim_limit_reached");
}

async fn quotes_pick_the_best_combination_and_orders_lock_it(app: &TestApp) {
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    // 满100减20 from the shop (combines with platform coupons), 10% off capped at 15 from the
    // shop (combines with nothing), 5 元 from the platform (combines with shop coupons).
    let threshold = app
        .post(
            "/v1/coupons",
            Some(&staff),
            coupon(
                "shop",
                json!({"merchant_id": shop, "kind": "threshold", "threshold_fen": 10000, "off_fen": 2000,
                "combines_with": ["platform"]}),
            ),
        )
        .await
        .id();
    let percent = app
        .post(
            "/v1/coupons",
            Some(&staff),
            coupon(
                "shop",
                json!({"merchant_id": shop, "kind": "percent_off", "off_fen": 0, "percent_bps": 1000,
                "cap_fen": 1500}),
            ),
        )
        .await
        .id();
    let platform =
        app.post("/v1/coupons", Some(&op), coupon("platform", json!({"combines_with": ["shop"]}))).await.id();
    let mut claims = Vec::new();
    for id in [threshold, percent, platform] {
        let claimed = claim(app, &buyer, id).await;
        assert_eq!(claimed.status, 201, "{claimed:?}");
        claims.push(claimed.body["claim_id"].as_i64().expect("claim id"));
    }
    let (threshold_claim, percent_claim, platform_claim) = (claims[0], claims[1], claims[2]);

    // Two units cost 12,000: 满100减20 and 5 元 together save 2,500; the 10% coupon alone 1,200.
    let lines = json!([{"sku_id": sku, "quantity": 2}]);
    let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
    assert_eq!(quote.status, 200, "{quote:?}");
    let used: Vec<i64> =
        quote.body["coupons"].as_array().expect("coupons").iter().filter_map(|c| c["claim_id"].as_i64()).collect();
    assert_eq!(used, vec![threshold_claim, platform_claim]);
    assert!(quote.body["coupon_reason"].as_str().is_some_and(|r| !r.is_empty()));
    let goods = quote.body["merchants"][0]["goods_paid_fen"].as_i64().expect("goods");
    assert_eq!(goods, 12_000 - 2_500);
    // Anonymous quotes use no coupons; an explicit choice that breaks a rule names it.
    let anonymous = app.post("/v1/quotes", None, json!({"lines": lines})).await;
    assert_eq!(anonymous.body["merchants"][0]["goods_paid_fen"], 12_000);
    app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": [percent_claim, platform_claim]}))
        .await
        .assert_error(422, "not_combinable");
    app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": [threshold_claim, percent_claim]}))
        .await
        .assert_error(422, "slot_taken");
    let one_unit = json!([{"sku_id": sku, "quantity": 1}]);
    app.post("/v1/quotes", Some(&buyer), json!({"lines": one_unit, "coupons": [threshold_claim]}))
        .await
        .assert_error(422, "threshold_not_met");
    let chosen = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": [percent_claim]})).await;
    assert_eq!(chosen.body["merchants"][0]["goods_paid_fen"], 12_000 - 1_200);
    let none = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": []})).await;
    assert_eq!(none.body["merchants"][0]["goods_paid_fen"], 12_000);

    // The order takes the best combination; its claims are used until the order closes.
    let placed = order(app, &buyer, "k1", json!({"lines": lines, "address": address()})).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let order_id = placed.body["orders"][0]["id"].as_i64().expect("order id");
    assert_eq!(placed.body["orders"][0]["discount_fen"], 2_500);
    let sources: Vec<&str> = placed.body["orders"][0]["lines"][0]["discounts"]
        .as_array()
        .expect("discounts")
        .iter()
        .filter_map(|d| d["source"].as_str())
        .collect();
    assert_eq!(sources, vec!["shop_coupon", "platform_coupon"]);
    let statuses = wallet_status(app, &buyer).await;
    assert!(
        statuses.contains(&(threshold_claim, "used".to_owned()))
            && statuses.contains(&(percent_claim, "available".to_owned()))
    );
    // A second order cannot use them again: the quote now picks the 10% coupon.
    let second = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
    assert_eq!(second.body["merchants"][0]["goods_paid_fen"], 12_000 - 1_200);
    app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": [threshold_claim]}))
        .await
        .assert_error(422, "coupon_used");
    // Cancelling returns them to the wallet.
    let cancelled =
        app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), json!({"reason": "changed my mind"})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let statuses = wallet_status(app, &buyer).await;
    assert!(statuses.iter().all(|(_, status)| status == "available"), "{statuses:?}");
}

async fn platform_coupons_are_funded_by_the_platform_in_the_ledger(app: &TestApp) {
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    // A platform coupon with a budget for exactly one use.
    let platform = app
        .post(
            "/v1/coupons",
            Some(&op),
            coupon("platform", json!({"off_fen": 800, "budget_fen": 800, "per_user_limit": 2})),
        )
        .await
        .id();
    assert_eq!(claim(app, &buyer, platform).await.status, 201);
    assert_eq!(claim(app, &buyer, platform).await.status, 201);
    let lines = json!([{"sku_id": sku, "quantity": 1}]);
    let placed = order(app, &buyer, "k1", json!({"lines": lines, "address": address()})).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let order_id = placed.body["orders"][0]["id"].as_i64().expect("order id");
    let total = placed.body["orders"][0]["total_fen"].as_i64().expect("total");
    assert_eq!(placed.body["orders"][0]["discount_fen"], 800);
    // The budget is spent: the second claim no longer applies, and claiming stopped.
    let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
    assert_eq!(quote.body["merchants"][0]["goods_paid_fen"], 6000);
    assert_eq!(claim(app, &app.register("late@example.com", "consumer").await, platform).await.code(), "budget_spent");

    assert_eq!(pay(app, &buyer, order_id).await.status, 200);
    let store = app.app.store();
    assert_eq!(store.account_balance("platform_subsidy_budget").await.expect("balance"), 800);
    assert_eq!(store.account_balance(&format!("merchant_receivable:{shop}")).await.expect("balance"), -(total + 800));
    let report = store.check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);

    // Cancelling the paid order refunds the buyer and gives the platform its 8 元 back.
    let cancelled = app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), json!({})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(store.account_balance("platform_subsidy_budget").await.expect("balance"), 0);
    assert_eq!(store.account_balance(&format!("merchant_receivable:{shop}")).await.expect("balance"), 0);
    assert_eq!(app.get(&format!("/v1/coupons/{platform}"), Some(&op)).await.body["budget_used_fen"], 0);
    let report = store.check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

async fn fan_coupons_are_for_followers(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (product, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let registered = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "zhubo@example.com", "password": PASSWORD, "display_name": "主播", "role": "creator"}),
        )
        .await;
    let (creator, creator_id) = (
        registered.body["token"].as_str().expect("token").to_owned(),
        registered.body["user"]["id"].as_i64().expect("id"),
    );
    let fan =
        app.post("/v1/coupons", Some(&creator), coupon("fan", json!({"product_ids": [product], "off_fen": 300}))).await;
    assert_eq!(fan.status, 201, "{fan:?}");
    let buyer = app.register("fan@example.com", "consumer").await;
    claim(app, &buyer, fan.id()).await.assert_error(403, "forbidden");
    assert_eq!(app.send("PUT", &format!("/v1/creators/{creator_id}/follow"), Some(&buyer), None).await.status, 204);
    let claimed = claim(app, &buyer, fan.id()).await;
    assert_eq!(claimed.status, 201, "{claimed:?}");
    let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": [{"sku_id": sku, "quantity": 1}]})).await;
    let discount = &quote.body["merchants"][0]["lines"][0]["discounts"][0];
    assert_eq!(
        (discount["source"].as_str(), discount["funder"].as_str(), discount["amount_fen"].as_i64()),
        (Some("fan_coupon"), Some("creator"), Some(300))
    );
    app.send("PUT", "/v1/creators/999999/follow", Some(&buyer), None).await.assert_error(404, "creator_not_found");
}

async fn red_packet_pools_split_exactly(app: &TestApp) {
    let op = app.operator().await;
    let pool = app
        .post(
            "/v1/red-packet-pools",
            Some(&op),
            json!({"title": "双11红包雨", "pool_fen": 5000, "mode": "random", "recipients": 7, "min_fen": 100,
                   "claim_starts_at": OPEN, "claim_ends_at": CLOSE, "valid_days": 3}),
        )
        .await;
    assert_eq!(pool.status, 201, "{pool:?}");
    assert_eq!(pool.body["pool_split"], "random");
    let mut total = 0;
    for i in 0..7 {
        let buyer = app.register(&format!("r{i}@example.com"), "consumer").await;
        let grabbed = claim(app, &buyer, pool.id()).await;
        assert_eq!(grabbed.status, 201, "{grabbed:?}");
        let packet = grabbed.body["off_fen"].as_i64().expect("packet");
        assert!(packet >= 100);
        total += packet;
    }
    assert_eq!(total, 5000, "the packets sum exactly to the pool");
    let late = app.register("late@example.com", "consumer").await;
    claim(app, &late, pool.id()).await.assert_error(409, "coupon_exhausted");
    let bad = app
        .post(
            "/v1/red-packet-pools",
            Some(&op),
            json!({"title": "x", "pool_fen": 500, "mode": "random", "recipients": 7, "min_fen": 100,
                   "claim_starts_at": OPEN, "claim_ends_at": CLOSE, "valid_days": 3}),
        )
        .await;
    bad.assert_error(422, "pool_too_small");
    let consumer = app.register("c@example.com", "consumer").await;
    app.post(
        "/v1/red-packet-pools",
        Some(&consumer),
        json!({"title": "x", "pool_fen": 500, "mode": "fixed", "amount_fen": 100,
        "claim_starts_at": OPEN, "claim_ends_at": CLOSE, "valid_days": 3}),
    )
    .await
    .assert_error(403, "forbidden");
}

async fn coupon_bad_input_is_refused(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let other = app.register("other@example.com", "consumer").await;
    claim(app, &buyer, 999_999).await.assert_error(404, "coupon_not_found");
    app.send("POST", "/v1/coupons/abc/claims", Some(&buyer), None).await.assert_error(400, "invalid_id");
    let short = app
        .post(
            "/v1/coupons",
            Some(&op),
            coupon("platform", json!({"valid_days": null, "valid_from": OPEN, "valid_until": "2025-11-27T00:00:00Z"})),
        )
        .await
        .id();
    let mine = claim(app, &buyer, short).await.body["claim_id"].as_i64().expect("claim");
    let lines = json!([{"sku_id": sku, "quantity": 1}]);
    // Another buyer's coupon does not exist for you; nor does a made-up one.
    app.post("/v1/quotes", Some(&other), json!({"lines": lines, "coupons": [mine]}))
        .await
        .assert_error(422, "unknown_coupon");
    app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": [123_456]}))
        .await
        .assert_error(422, "unknown_coupon");
    app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": "all"}))
        .await
        .assert_error(422, "invalid_type");
    app.post("/v1/quotes", None, json!({"lines": lines, "coupons": [mine]})).await.assert_error(401, "unauthenticated");
    // Stopped coupons cannot be claimed; expired claims cannot be used.
    let stopped = app.post(&format!("/v1/coupons/{short}/stop"), Some(&op), json!({})).await;
    assert_eq!(stopped.body["status"], "stopped", "{stopped:?}");
    claim(app, &other, short).await.assert_error(409, "coupon_stopped");
    app.post(&format!("/v1/coupons/{short}/stop"), Some(&buyer), json!({})).await.assert_error(403, "forbidden");
    app.clock.advance_ms(2 * 86_400_000);
    let buyer = app.login("buyer@example.com").await;
    app.post("/v1/quotes", Some(&buyer), json!({"lines": lines, "coupons": [mine]}))
        .await
        .assert_error(422, "coupon_expired");
    let placed = order(app, &buyer, "k1", json!({"lines": lines, "address": address(), "coupons": [mine]})).await;
    placed.assert_error(422, "coupon_expired");
    assert!(app.get("/v1/wallet", Some(&buyer)).await.body.as_array().is_some_and(Vec::is_empty));
}

async fn a_claim_pays_for_one_order_however_many_race(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let op = app.operator().await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let platform = app.post("/v1/coupons", Some(&op), coupon("platform", json!({"off_fen": 700}))).await.id();
    let claim_id = claim(app, &buyer, platform).await.body["claim_id"].as_i64().expect("claim");
    let body = json!({"lines": [{"sku_id": sku, "quantity": 1}], "address": address(), "coupons": [claim_id]});
    // Four orders with the same claim, in flight together.
    let (a, b, c, d) = tokio::join!(
        order(app, &buyer, "race-1", body.clone()),
        order(app, &buyer, "race-2", body.clone()),
        order(app, &buyer, "race-3", body.clone()),
        order(app, &buyer, "race-4", body.clone())
    );
    let replies = [a, b, c, d];
    let mut codes: Vec<(u16, String)> = replies.iter().map(|r| (r.status, r.code().to_owned())).collect();
    codes.sort();
    assert_eq!(codes[0].0, 201, "{codes:?}");
    for (status, code) in &codes[1..] {
        assert!(*status == 409 && code == "coupon_unavailable" || *status == 422 && code == "coupon_used", "{codes:?}");
    }
    let discounts = app.app.store().claim_state(platform).await.expect("claims");
    assert_eq!(discounts.iter().filter(|c| c.status == "used").count(), 1);
}
