//! Live sessions and lucky bags: conditions, the verifiable draw at the deadline, prizes as
//! 0-yuan orders or coupons, and a draw that fires twice, over HTTP.

use crate::helpers::{PASSWORD, TestApp};
use serde_json::{Value, json};
use xingqu_domain::promo::lucky_bag;

crate::api_tests!(lucky_bags_draw_verifiably_once_among_the_eligible, lucky_bag_bad_input_is_refused);

fn address() -> Value {
    json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"})
}

/// A creator's token and user id.
async fn creator(app: &TestApp, email: &str) -> (String, i64) {
    let reply = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "主播", "role": "creator"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    (reply.body["token"].as_str().expect("token").to_owned(), reply.body["user"]["id"].as_i64().expect("id"))
}

async fn viewer(app: &TestApp, email: &str) -> (String, i64) {
    let token = app.register(email, "consumer").await;
    let id = app.get("/v1/me", Some(&token)).await.body["id"].as_i64().expect("id");
    (token, id)
}

fn seed(proof: &Value) -> [u8; 32] {
    let hex = proof["seed"].as_str().expect("seed");
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    seed
}

async fn lucky_bags_draw_verifiably_once_among_the_eligible(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let (host, host_id) = creator(app, "zhubo@example.com").await;
    let session = app.post("/v1/live-sessions", Some(&host), json!({"title": "双11 延边专场"})).await;
    assert_eq!(session.status, 201, "{session:?}");
    let session_id = session.id();
    let bag = app
        .post(
            "/v1/lucky-bags",
            Some(&host),
            json!({"live_session_id": session_id, "prize": "sku", "sku_id": sku, "winners": 2, "watch_s_min": 60,
                   "comment_keyword": "想要", "must_follow": true, "deadline": "2025-11-26T00:10:00Z"}),
        )
        .await;
    assert_eq!(bag.status, 201, "{bag:?}");
    let bag_id = bag.id();
    let commitment = bag.body["seed_sha256"].as_str().expect("commitment").to_owned();
    assert_eq!(app.get(&format!("/v1/skus/{sku}"), None).await.body["stock"], 98, "the prizes are set aside");
    let early = app.get(&format!("/v1/lucky-bags/{bag_id}/proof"), None).await;
    assert!(early.body["seed"].is_null(), "the seed stays secret until the draw");

    // Five viewers: three meet every condition, one never comments, one does not follow.
    let mut viewers = Vec::new();
    for i in 0..5 {
        viewers.push(viewer(app, &format!("v{i}@example.com")).await);
    }
    let events = format!("/v1/live-sessions/{session_id}/events");
    for (i, (token, _)) in viewers.iter().enumerate() {
        assert_eq!(app.post(&events, Some(token), json!({"kind": "join"})).await.status, 204);
        if i != 4 {
            app.send("PUT", &format!("/v1/creators/{host_id}/follow"), Some(token), None).await;
        }
        let entry =
            app.post(&format!("/v1/lucky-bags/{bag_id}/entries"), Some(token), json!({"address": address()})).await;
        assert_eq!(entry.status, 201, "{entry:?}");
    }
    app.clock.advance_ms(90_000);
    for (i, (token, _)) in viewers.iter().enumerate() {
        assert_eq!(app.post(&events, Some(token), json!({"kind": "watch", "watch_ms": 90_000})).await.status, 204);
        if i != 3 {
            app.post(&events, Some(token), json!({"kind": "comment", "comment": "主播我想要!"})).await;
        }
    }
    // Entering twice changes nothing; the host cannot enter; late entries are refused.
    let again =
        app.post(&format!("/v1/lucky-bags/{bag_id}/entries"), Some(&viewers[0].0), json!({"address": address()})).await;
    assert_eq!((again.status, &again.body["joined"]), (200, &json!(false)));
    app.post(&format!("/v1/lucky-bags/{bag_id}/entries"), Some(&host), json!({})).await.assert_error(403, "forbidden");
    app.clock.advance_ms(10 * 60_000);
    let late = viewer(app, "late@example.com").await;
    app.post(&format!("/v1/lucky-bags/{bag_id}/entries"), Some(&late.0), json!({"address": address()}))
        .await
        .assert_error(409, "lucky_bag_closed");

    // The draw fires twice; only the first draws.
    let first = app.app.run_due_timers().await.expect("timers");
    let second = app.app.run_due_timers().await.expect("timers");
    assert_eq!((first.lucky_bags_drawn, second.lucky_bags_drawn), (1, 0));

    let proof = app.get(&format!("/v1/lucky-bags/{bag_id}/proof"), None).await;
    assert_eq!(proof.body["status"], "drawn", "{proof:?}");
    let seed = seed(&proof.body);
    assert_eq!(lucky_bag::commitment(&seed), commitment, "the revealed seed matches the commitment");
    let mut eligible: Vec<i64> = viewers[..3].iter().map(|v| v.1).collect();
    eligible.sort_unstable();
    let participants: Vec<i64> =
        proof.body["participants"].as_array().expect("participants").iter().filter_map(Value::as_i64).collect();
    assert_eq!(participants, eligible);
    let winners: Vec<i64> =
        proof.body["winners"].as_array().expect("winners").iter().filter_map(|w| w["user_id"].as_i64()).collect();
    assert_eq!(winners, lucky_bag::draw(&seed, &participants, 2), "anyone can recompute the winners");

    // Each winner has a 0-yuan lucky-bag order, paid, that the shop ships; the host pays the shop.
    for winner in proof.body["winners"].as_array().expect("winners") {
        let order_id = winner["order_id"].as_i64().expect("order");
        let token = &viewers.iter().find(|v| Some(v.1) == winner["user_id"].as_i64()).expect("winner").0;
        let order = app.get(&format!("/v1/orders/{order_id}"), Some(token)).await;
        assert_eq!(
            (order.body["trade_type"].as_str(), order.body["status"].as_str(), order.body["total_fen"].as_i64()),
            (Some("lucky_bag"), Some("paid"), Some(0)),
            "{order:?}"
        );
        let shipped = app
            .post(
                &format!("/v1/orders/{order_id}/ship"),
                Some(&staff),
                json!({"carrier": "顺丰", "tracking_number": "SF1"}),
            )
            .await;
        assert_eq!(shipped.status, 200, "{shipped:?}");
        app.post(&format!("/v1/orders/{order_id}/cancel"), Some(token), json!({}))
            .await
            .assert_error(409, "invalid_transition");
    }
    let store = app.app.store();
    assert_eq!(store.account_balance(&format!("creator_commission:{host_id}")).await.expect("balance"), 12_000);
    let report = store.check_ledger().await.expect("check");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(app.get(&format!("/v1/skus/{sku}"), None).await.body["stock"], 98);

    // A bag of fan coupons with more prizes than eligible viewers returns the rest.
    let (product, _) = app.listed_product(&staff, "延边苹果梨", 3000).await;
    let fan = app
        .post(
            "/v1/coupons",
            Some(&host),
            json!({"class": "fan", "title": "粉丝券", "kind": "money_off", "off_fen": 300, "product_ids": [product],
                   "claim_starts_at": "2025-11-25T00:00:00Z", "claim_ends_at": "2025-12-31T00:00:00Z", "valid_days": 7,
                   "quantity": 10}),
        )
        .await
        .id();
    let coupons = app
        .post(
            "/v1/lucky-bags",
            Some(&host),
            json!({"live_session_id": session_id, "prize": "coupon", "coupon_id": fan, "winners": 3,
                   "deadline": "2025-11-26T00:20:00Z"}),
        )
        .await;
    assert_eq!(coupons.status, 201, "{coupons:?}");
    assert_eq!(app.get(&format!("/v1/coupons/{fan}"), None).await.body["claimed"], 3);
    let entry = app.post(&format!("/v1/lucky-bags/{}/entries", coupons.id()), Some(&viewers[0].0), json!({})).await;
    assert_eq!(entry.status, 201, "{entry:?}");
    app.clock.advance_ms(10 * 60_000);
    assert_eq!(app.app.run_due_timers().await.expect("timers").lucky_bags_drawn, 1);
    assert_eq!(app.get(&format!("/v1/coupons/{fan}"), None).await.body["claimed"], 1, "unawarded prizes go back");
    let wallet = app.get("/v1/wallet", Some(&viewers[0].0)).await;
    assert_eq!(wallet.body.as_array().map(Vec::len), Some(1), "{wallet:?}");
}

async fn lucky_bag_bad_input_is_refused(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (_, sku) = app.listed_product(&staff, "延边大米 5kg", 6000).await;
    let (host, _) = creator(app, "zhubo@example.com").await;
    let (other_host, _) = creator(app, "other@example.com").await;
    let (buyer, _) = viewer(app, "v@example.com").await;
    app.post("/v1/live-sessions", Some(&buyer), json!({"title": "x"})).await.assert_error(403, "forbidden");
    let session_id = app.post("/v1/live-sessions", Some(&host), json!({"title": "直播"})).await.id();
    let bag = |extra: Value| {
        let mut body = json!({"live_session_id": session_id, "prize": "sku", "sku_id": sku, "winners": 1,
                              "deadline": "2025-11-26T00:10:00Z"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"winners": 0}))).await.assert_error(422, "out_of_range");
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"winners": -3}))).await.assert_error(422, "out_of_range");
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"deadline": "2025-11-25T00:00:00Z"})))
        .await
        .assert_error(422, "out_of_range");
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"deadline": "soon"}))).await.assert_error(422, "invalid_time");
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"winners": 101}))).await.assert_error(409, "out_of_stock");
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"prize": "car"}))).await.assert_error(422, "unknown_prize");
    app.post("/v1/lucky-bags", Some(&other_host), bag(json!({}))).await.assert_error(403, "forbidden");
    app.post("/v1/lucky-bags", Some(&host), bag(json!({"live_session_id": 999_999})))
        .await
        .assert_error(404, "live_session_not_found");
    let id = app.post("/v1/lucky-bags", Some(&host), bag(json!({}))).await.id();
    app.post(&format!("/v1/lucky-bags/{id}/entries"), Some(&buyer), json!({})).await.assert_error(422, "missing_field");
    let events = format!("/v1/live-sessions/{session_id}/events");
    app.post(&events, Some(&buyer), json!({"kind": "watch", "watch_ms": 0})).await.assert_error(422, "out_of_range");
    app.post(&events, Some(&buyer), json!({"kind": "dance"})).await.assert_error(422, "unknown_kind");
    app.post(&events, Some(&buyer), json!({"kind": "watch", "watch_ms": "long"}))
        .await
        .assert_error(422, "invalid_type");
    app.post(&format!("/v1/live-sessions/{session_id}/end"), Some(&buyer), json!({}))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(app.post(&format!("/v1/live-sessions/{session_id}/end"), Some(&host), json!({})).await.status, 200);
    app.post(&events, Some(&buyer), json!({"kind": "join"})).await.assert_error(409, "live_session_ended");
    app.get("/v1/lucky-bags/424242/proof", None).await.assert_error(404, "lucky_bag_not_found");
}
