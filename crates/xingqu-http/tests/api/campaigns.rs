//! Campaigns over HTTP: zones whose rules and the price history decide entries, the operator's
//! review, theme days and the official live room, subsidy pools that price carts and are never
//! overspent under concurrency, the ledger they post, and zones in the feed.

use crate::helpers::{Reply, TestApp, join_all};
use serde_json::{Value, json};

crate::api_tests!(
    zones_admit_entries_by_rule_price_history_and_review,
    campaign_prices_and_subsidies_price_carts_and_pools_are_never_overspent,
    campaign_bad_input_is_refused,
    accounts_crowding_one_device_are_kept_off_the_hot_lists,
    a_campaign_price_is_owed_to_earlier_buyers_under_price_protection,
    zone_figures_count_what_entries_sold_and_the_likes_they_drew,
    lines_of_one_cart_never_count_on_the_same_pool_money,
    refunds_of_some_units_take_them_off_the_hot_lists_once,
    refunds_and_late_payments_give_subsidies_back_exactly
);

// The test clock starts at 2025-11-26T00:00:00Z; the campaign runs around it.
const STARTS: &str = "2025-11-25T16:00:00Z";
const ENDS: &str = "2025-12-11T16:00:00Z";

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

async fn order(app: &TestApp, token: &str, key: &str, lines: Value) -> Reply {
    order_from(app, token, key, lines, None).await
}

async fn order_from(app: &TestApp, token: &str, key: &str, lines: Value, device: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new().post(format!("{}/v1/orders", app.url));
    if let Some(device) = device {
        request = request.header("x-device-id", device);
    }
    let response = request
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(json!({"lines": lines, "address": address()}).to_string())
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

/// A campaign with a Yanbian farm-specialty zone: (operator token, campaign id, zone id).
async fn yanbian_campaign(app: &TestApp, traffic_target_bp: i64) -> (String, i64, i64) {
    let op = app.operator().await;
    let campaign =
        app.post("/v1/campaigns", Some(&op), json!({"name": "双11好物节", "starts_at": STARTS, "ends_at": ENDS})).await;
    assert_eq!(campaign.status, 201, "{campaign:?}");
    let campaign_id = campaign.id();
    let zone = app
        .post(
            &format!("/v1/campaigns/{campaign_id}/zones"),
            Some(&op),
            json!({"name": "风味延边", "rule": {"tags": ["farm_specialty"], "region_prefixes": ["222400"]},
                   "traffic_target_bp": traffic_target_bp}),
        )
        .await;
    assert_eq!(zone.status, 201, "{zone:?}");
    assert_eq!(zone.body["rule"]["region_prefixes"], json!(["2224"]));
    (op, campaign_id, zone.id())
}

async fn enter(app: &TestApp, staff: &str, zone: i64, sku: i64, price_fen: i64) -> Reply {
    app.post(&format!("/v1/zones/{zone}/entries"), Some(staff), json!({"sku_id": sku, "campaign_price_fen": price_fen}))
        .await
}

async fn zones_admit_entries_by_rule_price_history_and_review(app: &TestApp) {
    let (op, campaign_id, zone) = yanbian_campaign(app, 0).await;
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("北京米铺", "110101").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 5_000).await;
    let (_, beijing_sku) = app.listed_product(&other_staff, "京西稻", 5_000).await;

    // The rule: a Beijing product is not admitted; another shop's SKU is unknown to this one.
    enter(app, &other_staff, zone, beijing_sku, 4_000).await.assert_error(422, "not_eligible");
    enter(app, &other_staff, zone, sku, 4_000).await.assert_error(422, "unknown_sku");
    let buyer = app.register("buyer@example.com", "consumer").await;
    enter(app, &buyer, zone, sku, 4_000).await.assert_error(403, "forbidden");

    // The price history: raised to 6,000 just before, the campaign price must still beat 5,000.
    app.clock.advance_ms(60_000);
    let raised = app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"price_fen": 6_000})).await;
    assert_eq!(raised.status, 200, "{raised:?}");
    enter(app, &staff, zone, sku, 5_000).await.assert_error(422, "not_below_reference_price");
    let entry = enter(app, &staff, zone, sku, 4_500).await;
    assert_eq!(entry.status, 201, "{entry:?}");
    assert_eq!(
        (entry.body["status"].as_str(), entry.body["reference_price_fen"].as_i64()),
        (Some("pending"), Some(5_000))
    );
    assert_eq!(entry.body["merchant_id"], shop);
    enter(app, &staff, zone, sku, 4_400).await.assert_error(409, "already_entered");

    // Review: a rejection needs a reason; a decided entry is not decided again.
    let entry_id = entry.id();
    let review = format!("/v1/zone-entries/{entry_id}/review");
    app.post(&review, Some(&staff), json!({"approve": true})).await.assert_error(403, "forbidden");
    app.post(&review, Some(&op), json!({"approve": false})).await.assert_error(422, "required");
    let pending = app.get(&format!("/v1/zones/{zone}/entries?status=pending"), Some(&op)).await;
    assert_eq!(pending.body["items"].as_array().map(Vec::len), Some(1), "{pending:?}");
    let approved = app.post(&review, Some(&op), json!({"approve": true})).await;
    assert_eq!(approved.body["status"], "approved", "{approved:?}");
    app.post(&review, Some(&op), json!({"approve": false, "reason": "late"}))
        .await
        .assert_error(409, "invalid_transition");

    // Each shop sees its own entries only.
    let own = app.get(&format!("/v1/zones/{zone}/entries"), Some(&staff)).await;
    assert_eq!(own.body["items"].as_array().map(Vec::len), Some(1));
    let others = app.get(&format!("/v1/zones/{zone}/entries"), Some(&other_staff)).await;
    assert_eq!(others.body["items"].as_array().map(Vec::len), Some(0));
    app.get(&format!("/v1/zones/{zone}/entries"), Some(&buyer)).await.assert_error(403, "forbidden");
    app.post(&format!("/v1/zone-entries/{entry_id}/withdraw"), Some(&other_staff), json!({}))
        .await
        .assert_error(404, "zone_entry_not_found");

    // Theme days and the official live room's schedule.
    let day = app
        .post(
            &format!("/v1/campaigns/{campaign_id}/theme-days"),
            Some(&op),
            json!({"day": "2025-11-27T00:00:00+08:00", "title": "国潮崛起", "zone_id": zone}),
        )
        .await;
    assert_eq!(day.status, 201, "{day:?}");
    app.post(
        &format!("/v1/campaigns/{campaign_id}/theme-days"),
        Some(&op),
        json!({"day": "2025-11-27T00:00:00+08:00", "title": "抗寒挑战"}),
    )
    .await
    .assert_error(409, "theme_day_exists");
    app.post(
        &format!("/v1/campaigns/{campaign_id}/theme-days"),
        Some(&op),
        json!({"day": "2025-11-27T03:00:00+08:00", "title": "x"}),
    )
    .await
    .assert_error(422, "not_a_day_start");
    let host = app.register("official@example.com", "creator").await;
    let session = app.post("/v1/live-sessions", Some(&host), json!({"title": "官方直播间"})).await.id();
    let slot = json!({"live_session_id": session, "title": "品牌联播", "starts_at": "2025-11-26T12:00:00Z",
                      "ends_at": "2025-11-26T14:00:00Z"});
    let scheduled = app.post(&format!("/v1/campaigns/{campaign_id}/live-slots"), Some(&op), slot.clone()).await;
    assert_eq!(scheduled.status, 201, "{scheduled:?}");
    assert_eq!(scheduled.body["live_slots"][0]["session_status"], "live");
    assert_eq!(scheduled.body["theme_days"][0]["title"], "国潮崛起");
    app.post(&format!("/v1/campaigns/{campaign_id}/live-slots"), Some(&op), slot)
        .await
        .assert_error(409, "slot_exists");

    // Withdrawn by its shop, the entry stops for good.
    let withdrawn = app.post(&format!("/v1/zone-entries/{entry_id}/withdraw"), Some(&staff), json!({})).await;
    assert_eq!(withdrawn.body["status"], "withdrawn", "{withdrawn:?}");
    app.post(&format!("/v1/zone-entries/{entry_id}/withdraw"), Some(&staff), json!({}))
        .await
        .assert_error(409, "invalid_transition");

    // Zones are edited by operators; the campaign lists everything.
    let edited = app
        .send(
            "PUT",
            &format!("/v1/zones/{zone}"),
            Some(&op),
            Some((
                "application/json",
                json!({"rule": {"tags": ["domestic_brand"]}, "traffic_target_bp": 1500}).to_string().into_bytes(),
            )),
        )
        .await;
    assert_eq!((edited.status, edited.body["traffic_target_bp"].as_i64()), (200, Some(1500)), "{edited:?}");
    let campaign = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
    assert_eq!(campaign.body["zones"][0]["rule"]["tags"], json!(["domestic_brand"]));
    let list = app.get("/v1/campaigns", None).await;
    assert_eq!(list.body["items"][0]["id"], campaign_id);
}

async fn campaign_prices_and_subsidies_price_carts_and_pools_are_never_overspent(app: &TestApp) {
    let (op, campaign_id, zone) = yanbian_campaign(app, 2_000).await;
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (product, sku) = app.listed_product(&staff, "延边大米 5kg", 5_000).await;
    let entry = enter(app, &staff, zone, sku, 4_500).await.id();
    let buyer = app.register("buyer@example.com", "consumer").await;
    let lines = json!([{"sku_id": sku, "quantity": 2}]);

    // Pending: not yet a campaign price.
    let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
    assert_eq!(quote.body["merchants"][0]["goods_paid_fen"], 10_000, "{quote:?}");
    app.post(&format!("/v1/zone-entries/{entry}/review"), Some(&op), json!({"approve": true})).await;
    // 5 元 a unit from a pool of 30 元: three carts of two units at most.
    let pool = app
        .post(
            &format!("/v1/campaigns/{campaign_id}/subsidy-pools"),
            Some(&op),
            json!({"name": "延边补贴", "zone_id": zone, "budget_fen": 3_000, "per_unit_fen": 500}),
        )
        .await;
    assert_eq!(pool.status, 201, "{pool:?}");
    let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
    let line = &quote.body["merchants"][0]["lines"][0];
    let discounts: Vec<(String, String, i64)> = line["discounts"]
        .as_array()
        .expect("discounts")
        .iter()
        .map(|d| {
            (
                d["source"].as_str().unwrap_or_default().to_owned(),
                d["funder"].as_str().unwrap_or_default().to_owned(),
                d["amount_fen"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        discounts,
        vec![("campaign_price".into(), "merchant".into(), 1_000), ("subsidy".into(), "platform".into(), 1_000)],
        "{quote:?}"
    );
    assert_eq!(line["paid_fen"], 8_000);

    // Eight buyers at once: the pool pays for exactly three, never more, whatever the order.
    let mut buyers = Vec::new();
    for i in 0..8 {
        buyers.push(app.register(&format!("b{i}@example.com"), "consumer").await);
    }
    let attempts: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let lines = lines.clone();
            async move { order(app, b, &format!("k{i}"), lines).await }
        })
        .collect();
    let placed: Vec<Reply> = join_all(attempts).await;
    let mut subsidised = 0;
    for reply in &placed {
        match reply.status {
            201 => {
                let paid = reply.body["orders"][0]["total_fen"].as_i64().expect("total");
                // 8,000 with the subsidy, 9,000 once the pool cannot cover a cart.
                assert!(paid == 8_000 || paid == 9_000, "{reply:?}");
                subsidised += i64::from(paid == 8_000);
            }
            409 => assert_eq!(reply.code(), "subsidy_spent", "{reply:?}"),
            _ => panic!("{reply:?}"),
        }
    }
    let pools = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
    let spent = pools.body["subsidy_pools"][0]["spent_fen"].as_i64().expect("spent");
    assert_eq!(spent, subsidised * 1_000);
    assert!(spent <= 3_000 && subsidised >= 1);
    // Spent out, the next quote no longer applies it.
    if spent == 3_000 {
        let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
        assert_eq!(quote.body["merchants"][0]["goods_paid_fen"], 9_000, "{quote:?}");
    }

    // Paid, the platform's subsidy budget carries the subsidy; cancelled, it comes back, and
    // so does the pool's money.
    let subsidised_order = placed
        .iter()
        .find(|r| r.body["orders"][0]["total_fen"] == 8_000)
        .and_then(|r| r.body["orders"][0]["id"].as_i64())
        .expect("a subsidised order");
    let owner = placed
        .iter()
        .position(|r| r.body["orders"][0]["id"] == subsidised_order)
        .map(|i| buyers[i].clone())
        .expect("its buyer");
    assert_eq!(pay(app, &owner, subsidised_order).await.status, 200);
    let store = app.app.store();
    assert_eq!(store.account_balance("platform_subsidy_budget").await.expect("balance"), 1_000);
    assert_eq!(store.account_balance(&format!("merchant_receivable:{shop}")).await.expect("balance"), -9_000);
    let cancelled = app.post(&format!("/v1/orders/{subsidised_order}/cancel"), Some(&owner), json!({})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(store.account_balance("platform_subsidy_budget").await.expect("balance"), 0);
    let pools = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
    assert_eq!(pools.body["subsidy_pools"][0]["spent_fen"], spent - 1_000);
    let report = store.check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);

    // Another paid order puts the SKU on the zone's hot list; a SKU outside the zone is not on it.
    let (_, outside_sku) = app.listed_product(&staff, "延边辣白菜", 3_000).await;
    let other = placed
        .iter()
        .filter(|r| r.status == 201)
        .filter_map(|r| r.body["orders"][0]["id"].as_i64())
        .find(|&id| id != subsidised_order)
        .expect("another order");
    let other_owner =
        placed.iter().position(|r| r.body["orders"][0]["id"] == other).map(|i| buyers[i].clone()).expect("its buyer");
    assert_eq!(pay(app, &other_owner, other).await.status, 200);
    let outside = order(app, &buyer, "outside", json!([{"sku_id": outside_sku, "quantity": 5}])).await;
    let outside_id = outside.body["orders"][0]["id"].as_i64().expect("order");
    assert_eq!(pay(app, &buyer, outside_id).await.status, 200);
    let zone_list = app.get(&format!("/v1/hot-lists?zone_id={zone}&window=1h"), None).await;
    assert_eq!(zone_list.body["items"].as_array().map(Vec::len), Some(1), "{zone_list:?}");
    assert_eq!(
        (zone_list.body["items"][0]["sku_id"].as_i64(), zone_list.body["items"][0]["value"].as_i64()),
        (Some(sku), Some(2))
    );
    let overall = app.get("/v1/hot-lists?window=1h", None).await;
    assert_eq!(overall.body["items"][0]["sku_id"], outside_sku, "{overall:?}");
    app.get("/v1/hot-lists?zone_id=999999", None).await.assert_error(404, "zone_not_found");

    // The zone is a candidate source of the feed, and its traffic target a programme.
    let feed = app.get("/v1/feed?device_id=device-campaign-1&limit=20", None).await;
    assert_eq!(feed.status, 200, "{feed:?}");
    let item = feed.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["type"] == "product" && i["id"] == product))
        .cloned()
        .unwrap_or_else(|| panic!("the zone's product is in the feed: {feed:?}"));
    let reasons: Vec<&str> = item["reasons"].as_array().expect("reasons").iter().filter_map(Value::as_str).collect();
    assert!(reasons.contains(&"campaign_zone"), "{reasons:?}");
    let exposure = app.get("/v1/feed/exposure", Some(&op)).await;
    assert!(
        exposure.body["programmes"].as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "zone:风味延边")),
        "{exposure:?}"
    );
}

async fn campaign_bad_input_is_refused(app: &TestApp) {
    let op = app.operator().await;
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let create = |body: Value| {
        let op = op.clone();
        async move { app.post("/v1/campaigns", Some(&op), body).await }
    };
    create(json!({"name": "x", "starts_at": "soon", "ends_at": ENDS})).await.assert_error(422, "invalid_time");
    create(json!({"name": "x", "starts_at": ENDS, "ends_at": STARTS})).await.assert_error(422, "invalid_window");
    create(json!({"name": "x", "starts_at": STARTS, "ends_at": "2026-06-01T00:00:00Z"}))
        .await
        .assert_error(422, "window_too_long");
    create(json!({"name": "", "starts_at": STARTS, "ends_at": ENDS})).await.assert_error(422, "empty");
    create(json!({"name": "x", "starts_at": STARTS, "ends_at": ENDS, "extra": 1}))
        .await
        .assert_error(422, "unknown_field");
    app.raw("POST", "/v1/campaigns", Some(&op), "{not json").await.assert_error(400, "malformed_json");
    app.post("/v1/campaigns", Some(&staff), json!({"name": "x", "starts_at": STARTS, "ends_at": ENDS}))
        .await
        .assert_error(403, "forbidden");
    app.get("/v1/campaigns/999999", None).await.assert_error(404, "campaign_not_found");

    let (_, campaign_id, zone) = yanbian_campaign(app, 0).await;
    let zones = format!("/v1/campaigns/{campaign_id}/zones");
    for (body, code) in [
        (json!({"name": "a", "rule": {"tags": ["cheap"]}}), "unknown_tag"),
        (json!({"name": "a", "rule": {"region_prefixes": ["x"]}}), "invalid_region_code"),
        (json!({"name": "a", "rule": {"min_price_fen": 10, "max_price_fen": 5}}), "out_of_range"),
        (json!({"name": "a", "rule": {"merchant_ids": [-1]}}), "invalid_id"),
        (json!({"name": "a", "traffic_target_bp": 5_001}), "out_of_range"),
        (json!({"name": "a", "traffic_target_bp": -1}), "out_of_range"),
    ] {
        app.post(&zones, Some(&op), body).await.assert_error(422, code);
    }
    app.post(&zones, Some(&op), json!({"name": "风味延边"})).await.assert_error(409, "zone_exists");
    app.post(&zones, Some(&op), json!({"name": "a", "rule": {"tags": "farm"}})).await.assert_error(422, "invalid_type");

    let pools = format!("/v1/campaigns/{campaign_id}/subsidy-pools");
    for (body, code) in [
        (json!({"name": "p", "budget_fen": 0, "per_unit_fen": 100}), "out_of_range"),
        (json!({"name": "p", "budget_fen": 100, "per_unit_fen": 100, "percent_bp": 10}), "one_rate"),
        (json!({"name": "p", "budget_fen": 100}), "one_rate"),
        (json!({"name": "p", "budget_fen": 100, "percent_bp": 9_500}), "out_of_range"),
        (json!({"name": "p", "budget_fen": 100, "per_unit_fen": 100, "zone_id": zone + 1000}), "unknown_zone"),
    ] {
        app.post(&pools, Some(&op), body).await.assert_error(422, code);
    }
    let (_, sku) = app.listed_product(&staff, "延边大米", 5_000).await;
    for (body, status, code) in [
        (json!({"sku_id": sku, "campaign_price_fen": -5}), 422, "out_of_range"),
        (json!({"sku_id": sku, "campaign_price_fen": 0}), 422, "out_of_range"),
        (json!({"sku_id": 999_999, "campaign_price_fen": 100}), 422, "unknown_sku"),
        (json!({"sku_id": sku, "campaign_price_fen": "cheap"}), 422, "invalid_type"),
        (json!({"sku_id": sku}), 422, "missing_field"),
    ] {
        app.post(&format!("/v1/zones/{zone}/entries"), Some(&staff), body).await.assert_error(status, code);
    }
    app.post("/v1/zones/999999/entries", Some(&staff), json!({"sku_id": sku, "campaign_price_fen": 100}))
        .await
        .assert_error(404, "zone_not_found");
    app.get(&format!("/v1/zones/{zone}/entries?status=maybe"), Some(&op)).await.assert_error(422, "unknown_status");
    // Nothing was stored by any of it.
    let campaign = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
    assert_eq!(campaign.body["zones"].as_array().map(Vec::len), Some(1));
    assert_eq!(campaign.body["subsidy_pools"].as_array().map(Vec::len), Some(0));
    let entries = app.get(&format!("/v1/zones/{zone}/entries"), Some(&op)).await;
    assert_eq!(entries.body["items"].as_array().map(Vec::len), Some(0));
}

async fn accounts_crowding_one_device_are_kept_off_the_hot_lists(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5_000).await;
    let lines = json!([{"sku_id": sku, "quantity": 1}]);
    let buyer = app.register("b0@example.com", "consumer").await;
    order_from(app, &buyer, "bad", lines.clone(), Some("not a device!")).await.assert_error(422, "invalid_device_id");
    // Four accounts on one phone, each sending to their own address: the fourth is a cluster.
    for i in 0..4 {
        let buyer = app.register(&format!("d{i}@example.com"), "consumer").await;
        let placed = order_from(app, &buyer, "k", lines.clone(), Some("phone-7f3a")).await;
        assert_eq!(placed.status, 201, "{placed:?}");
        let paid = pay(app, &buyer, placed.body["orders"][0]["id"].as_i64().expect("order")).await;
        assert_eq!(paid.status, 200, "{paid:?}");
    }
    let op = app.operator().await;
    let suspects = app.get("/v1/hot-lists/suspects", Some(&op)).await;
    let rules: Vec<&str> =
        suspects.body["items"].as_array().expect("items").iter().filter_map(|s| s["rule"].as_str()).collect();
    assert_eq!(rules, vec!["device_cluster"], "{suspects:?}");
    // The flag is kept in the store too (analytics and a restarted node see it).
    let flagged = app.app.store().flagged_lines(0).await.expect("flags");
    assert_eq!(flagged.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), vec!["device_cluster"]);
    let list = app.get("/v1/hot-lists?window=1h", None).await;
    assert_eq!(list.body["items"][0]["value"], 3, "{list:?}");
}

async fn a_campaign_price_is_owed_to_earlier_buyers_under_price_protection(app: &TestApp) {
    let (op, _, zone) = yanbian_campaign(app, 0).await;
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 5_000).await;
    let protect = app
        .send(
            "PUT",
            &format!("/v1/skus/{sku}/price-protection"),
            Some(&staff),
            Some(("application/json", json!({"window_days": 30}).to_string().into_bytes())),
        )
        .await;
    assert_eq!(protect.status, 200, "{protect:?}");
    // Bought at the list price before the festival's price; shipped.
    let buyer = app.register("buyer@example.com", "consumer").await;
    let placed = order(app, &buyer, "k1", json!([{"sku_id": sku, "quantity": 2}])).await;
    let order_id = placed.body["orders"][0]["id"].as_i64().expect("order");
    let line_id = placed.body["orders"][0]["lines"][0]["id"].as_i64().expect("line");
    assert_eq!(pay(app, &buyer, order_id).await.status, 200);
    let shipped = app
        .post(
            &format!("/v1/orders/{order_id}/ship"),
            Some(&staff),
            json!({"carrier": "顺丰", "tracking_number": "SF1"}),
        )
        .await;
    assert_eq!(shipped.status, 200, "{shipped:?}");
    let claim = |token: String| async move {
        app.send("POST", &format!("/v1/order-lines/{line_id}/price-protection"), Some(&token), None).await
    };
    claim(buyer.clone()).await.assert_error(409, "no_price_drop");
    // The campaign price (merchant-funded) is a drop: 500 a unit is owed, once. The platform's
    // subsidy is not (like with like, as the rule says).
    let entry = enter(app, &staff, zone, sku, 4_500).await.id();
    app.post(&format!("/v1/zone-entries/{entry}/review"), Some(&op), json!({"approve": true})).await;
    let paid = claim(buyer.clone()).await;
    assert_eq!((paid.status, paid.body["amount_fen"].as_i64()), (201, Some(1_000)), "{paid:?}");
    assert!(paid.body["reason"].as_str().is_some_and(|r| r.contains("campaign entry")), "{paid:?}");
    let again = claim(buyer.clone()).await;
    assert_eq!((again.status, again.body["id"].clone()), (200, paid.body["id"].clone()));
    let report = app.app.store().check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

async fn zone_figures_count_what_entries_sold_and_the_likes_they_drew(app: &TestApp) {
    let (op, campaign_id, zone) = yanbian_campaign(app, 0).await;
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (other_staff, _) = app.shop("图们米铺", "222402").await;
    let (product, sku) = app.listed_product(&staff, "延边大米 5kg", 5_000).await;
    let entry = enter(app, &staff, zone, sku, 4_500).await.id();
    app.post(&format!("/v1/zone-entries/{entry}/review"), Some(&op), json!({"approve": true})).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let placed = order(app, &buyer, "k1", json!([{"sku_id": sku, "quantity": 2}])).await;
    assert_eq!(pay(app, &buyer, placed.body["orders"][0]["id"].as_i64().expect("order")).await.status, 200);
    // A like on the product, one on a video that links it, and a view that is not a like.
    let creator = app.register("zhubo@example.com", "creator").await;
    let video = app
        .post("/v1/videos", Some(&creator), json!({"title": "延边大米", "duration_s": 30, "product_ids": [product]}))
        .await;
    assert_eq!(video.status, 201, "{video:?}");
    let at = "2025-11-26T00:00:00Z";
    let events = json!({"events": [
        {"kind": "like", "item_type": "product", "item_id": product, "occurred_at": at},
        {"kind": "like", "item_type": "video", "item_id": video.id(), "occurred_at": at},
        {"kind": "view", "item_type": "video", "item_id": video.id(), "watch_ms": 5000, "occurred_at": at}]});
    assert_eq!(app.post("/v1/events", Some(&buyer), events).await.status, 202);
    app.clock.advance_ms(60_000);

    let overview = app.get(&format!("/v1/analytics/overview?campaign_id={campaign_id}"), Some(&op)).await;
    assert_eq!(overview.body["zones"]["campaign_id"], campaign_id, "{overview:?}");
    let figures = &overview.body["zones"]["items"][0];
    assert_eq!(
        [&figures["entries"], &figures["orders"], &figures["units"], &figures["gmv_fen"], &figures["likes"]],
        [&json!(1), &json!(1), &json!(2), &json!(9_000), &json!(2)],
        "{figures}"
    );
    assert_eq!(figures["quality_gmv_fen"], 9_000);
    // Another shop's staff see their shop's part: nothing.
    let theirs = app.get("/v1/analytics/overview", Some(&other_staff)).await;
    let figures = &theirs.body["zones"]["items"][0];
    assert_eq!([&figures["entries"], &figures["orders"], &figures["likes"]], [&json!(0), &json!(0), &json!(0)]);
    let csv = app.send("GET", "/v1/analytics/overview.csv?section=zones", Some(&op), None).await;
    assert_eq!(csv.status, 200);
    app.get("/v1/analytics/overview?campaign_id=999999", Some(&op)).await.assert_error(404, "campaign_not_found");
}

async fn lines_of_one_cart_never_count_on_the_same_pool_money(app: &TestApp) {
    let (op, campaign_id, zone) = yanbian_campaign(app, 0).await;
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, rice) = app.listed_product(&staff, "延边大米", 5_000).await;
    let (_, kimchi) = app.listed_product(&staff, "延边辣白菜", 3_000).await;
    for (sku, price) in [(rice, 4_500), (kimchi, 2_500)] {
        let entry = enter(app, &staff, zone, sku, price).await.id();
        app.post(&format!("/v1/zone-entries/{entry}/review"), Some(&op), json!({"approve": true})).await;
    }
    // 10% off each unit, at most 3 元 a unit, from a pool that holds 6 元.
    let pool = app
        .post(
            &format!("/v1/campaigns/{campaign_id}/subsidy-pools"),
            Some(&op),
            json!({"name": "延边补贴", "budget_fen": 600, "percent_bp": 1_000, "cap_per_unit_fen": 300}),
        )
        .await;
    assert_eq!(pool.status, 201, "{pool:?}");
    let buyer = app.register("buyer@example.com", "consumer").await;
    let lines = json!([{"sku_id": rice, "quantity": 2}, {"sku_id": kimchi, "quantity": 1}]);
    let quote = app.post("/v1/quotes", Some(&buyer), json!({"lines": lines})).await;
    let subsidies: Vec<i64> = quote.body["merchants"][0]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            l["discounts"]
                .as_array()
                .expect("discounts")
                .iter()
                .filter(|d| d["source"] == "subsidy")
                .map(|d| d["amount_fen"].as_i64().unwrap_or_default())
                .sum()
        })
        .collect();
    // The rice takes 2 × 3 元 (capped): the pool has nothing left for the kimchi's 2.5 元.
    assert_eq!(subsidies, vec![600, 0], "{quote:?}");
    let placed = order(app, &buyer, "k1", lines).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let campaign = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
    assert_eq!(campaign.body["subsidy_pools"][0]["left_fen"], 0);
}

/// A refund of some units takes them off the hot lists, a refund of the rest the rest, and a
/// rebuild from the store agrees at every step.
async fn refunds_of_some_units_take_them_off_the_hot_lists_once(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5_000).await;
    let buyer = app.register("buyer@example.com", "consumer").await;
    let placed = order(app, &buyer, "k1", json!([{"sku_id": sku, "quantity": 3}])).await;
    let order_id = placed.body["orders"][0]["id"].as_i64().expect("order");
    let line_id = placed.body["orders"][0]["lines"][0]["id"].as_i64().expect("line");
    assert_eq!(pay(app, &buyer, order_id).await.status, 200);
    let units = || async {
        let list = app.get("/v1/hot-lists?window=1h", None).await;
        list.body["items"].as_array().and_then(|items| items.first()).and_then(|i| i["value"].as_i64()).unwrap_or(0)
    };
    assert_eq!(units().await, 3);
    let asked = app
        .post(
            &format!("/v1/orders/{order_id}/after-sales"),
            Some(&buyer),
            json!({"line_id": line_id, "kind": "refund_before_shipment", "units": 1, "reason": "拍多了"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{asked:?}");
    let approved = app.post(&format!("/v1/after-sales/{}/approve", asked.id()), Some(&staff), json!({})).await;
    assert_eq!(approved.body["status"], "refunded", "{approved:?}");
    assert_eq!(units().await, 2);
    app.app.rebuild_hot_lists().await.expect("rebuild");
    assert_eq!(units().await, 2, "a rebuild reads lines net of what they paid back");
    // A cancel is refused once part of the order is refunded; the rest is refunded instead.
    let rest = app
        .post(
            &format!("/v1/orders/{order_id}/after-sales"),
            Some(&buyer),
            json!({"line_id": line_id, "kind": "refund_before_shipment", "units": 2, "reason": "不要了"}),
        )
        .await;
    let approved = app.post(&format!("/v1/after-sales/{}/approve", rest.id()), Some(&staff), json!({})).await;
    assert_eq!(approved.body["status"], "refunded", "{approved:?}");
    assert_eq!(units().await, 0);
    app.app.rebuild_hot_lists().await.expect("rebuild");
    assert_eq!(units().await, 0);
}

/// A refund of some units gives their share of the subsidy back to the pool and the budget; the
/// rest comes back with the last unit. A payment that arrives after the order expired is refunded
/// with the funders' parts reversed too.
async fn refunds_and_late_payments_give_subsidies_back_exactly(app: &TestApp) {
    let (op, campaign_id, zone) = yanbian_campaign(app, 0).await;
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米", 5_000).await;
    let entry = enter(app, &staff, zone, sku, 4_500).await.id();
    app.post(&format!("/v1/zone-entries/{entry}/review"), Some(&op), json!({"approve": true})).await;
    let pool = app
        .post(
            &format!("/v1/campaigns/{campaign_id}/subsidy-pools"),
            Some(&op),
            json!({"name": "延边补贴", "budget_fen": 10_000, "per_unit_fen": 500}),
        )
        .await;
    assert_eq!(pool.status, 201, "{pool:?}");
    let spent = || async {
        let campaign = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
        campaign.body["subsidy_pools"][0]["spent_fen"].as_i64().expect("spent")
    };
    let store = app.app.store();
    let buyer = app.register("buyer@example.com", "consumer").await;
    let placed = order(app, &buyer, "k1", json!([{"sku_id": sku, "quantity": 2}])).await;
    let order_id = placed.body["orders"][0]["id"].as_i64().expect("order");
    let line_id = placed.body["orders"][0]["lines"][0]["id"].as_i64().expect("line");
    assert_eq!(pay(app, &buyer, order_id).await.status, 200);
    assert_eq!(spent().await, 1_000);
    for (units, left) in [(1, 500), (1, 0)] {
        let asked = app
            .post(
                &format!("/v1/orders/{order_id}/after-sales"),
                Some(&buyer),
                json!({"line_id": line_id, "kind": "refund_before_shipment", "units": units, "reason": "不要了"}),
            )
            .await;
        let approved = app.post(&format!("/v1/after-sales/{}/approve", asked.id()), Some(&staff), json!({})).await;
        assert_eq!(approved.body["status"], "refunded", "{approved:?}");
        assert_eq!(spent().await, left);
        assert_eq!(store.account_balance("platform_subsidy_budget").await.expect("balance"), left);
    }
    assert_eq!(store.account_balance(&format!("merchant_receivable:{shop}")).await.expect("balance"), 0);

    // Placed, left unpaid until it expired (its subsidy back in the pool), then paid late.
    let late = order(app, &buyer, "k2", json!([{"sku_id": sku, "quantity": 1}])).await;
    let late_id = late.body["orders"][0]["id"].as_i64().expect("order");
    let payment = app.send("POST", &format!("/v1/orders/{late_id}/pay"), Some(&buyer), None).await;
    assert_eq!(spent().await, 500);
    app.clock.advance_ms(16 * 60 * 1000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").expired, 1);
    assert_eq!(spent().await, 0);
    let paid = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(paid.body["outcome"], "refunded_late", "{paid:?}");
    assert_eq!(store.account_balance("platform_subsidy_budget").await.expect("balance"), 0);
    assert_eq!(store.account_balance(&format!("merchant_receivable:{shop}")).await.expect("balance"), 0);
    let report = store.check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}
