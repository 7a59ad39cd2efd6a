//! Content and the interest feed over HTTP: videos and live-session products published and
//! refused, and feeds that mix their sources, say why, follow fresh actions and never repeat an
//! item within a session.

use crate::helpers::{Reply, TestApp};
use serde_json::{Value, json};
use std::collections::HashSet;

crate::api_tests!(
    videos_and_live_products_are_published_and_refused_when_wrong,
    the_feed_mixes_its_sources_says_why_and_never_repeats_in_a_session,
    a_second_node_learns_what_the_first_ingested
);

/// Registers a creator: (token, user id).
async fn creator(app: &TestApp, email: &str) -> (String, i64) {
    let registered = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": crate::helpers::PASSWORD, "display_name": email, "role": "creator"}),
        )
        .await;
    assert_eq!(registered.status, 201, "{registered:?}");
    (registered.body["token"].as_str().expect("token").to_owned(), registered.body["user"]["id"].as_i64().expect("id"))
}

async fn publish(app: &TestApp, token: &str, title: &str, products: &[i64]) -> i64 {
    let video =
        app.post("/v1/videos", Some(token), json!({"title": title, "duration_s": 30, "product_ids": products})).await;
    assert_eq!(video.status, 201, "{video:?}");
    video.id()
}

async fn events(app: &TestApp, token: Option<&str>, device: Option<&str>, list: &[(&str, &str, i64)]) -> Reply {
    let events: Vec<Value> = list
        .iter()
        .map(|(kind, item_type, id)| {
            json!({"kind": kind, "item_type": item_type, "item_id": id, "occurred_at": "2025-11-26T00:00:00Z"})
        })
        .collect();
    let mut body = json!({"events": events});
    if let Some(device) = device {
        body["device_id"] = json!(device);
    }
    app.post("/v1/events", token, body).await
}

async fn videos_and_live_products_are_published_and_refused_when_wrong(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (product, sku) = app.listed_product(&staff, "延边大米", 10_000).await;
    let (author, author_id) = creator(app, "zhubo@example.com").await;
    let buyer = app.register("buyer@example.com", "consumer").await;

    let video = json!({"title": "延边大米怎么煮", "tags": ["美食", "大米", "美食"], "duration_s": 45, "product_ids": [product]});
    app.post("/v1/videos", Some(&buyer), video.clone()).await.assert_error(403, "forbidden");
    app.post("/v1/videos", None, video.clone()).await.assert_error(401, "unauthenticated");
    for (bad, code) in [
        (json!({"title": "x", "duration_s": 0}), "out_of_range"),
        (json!({"title": "x", "duration_s": 3_601}), "out_of_range"),
        (json!({"title": "", "duration_s": 10}), "empty"),
        (json!({"title": "x", "duration_s": 10, "product_ids": [999_999]}), "unknown_product"),
        (json!({"title": "x", "duration_s": 10, "tags": vec!["a"; 11]}), "too_many"),
    ] {
        let reply = app.post("/v1/videos", Some(&author), bad).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{reply:?}");
    }
    app.post("/v1/videos", Some(&author), json!({"title": "x", "duration_s": "long"}))
        .await
        .assert_error(422, "invalid_type");
    let published = app.post("/v1/videos", Some(&author), video).await;
    assert_eq!(published.status, 201, "{published:?}");
    assert_eq!(published.body["tags"], json!(["美食", "大米"]), "tags deduplicated");
    assert_eq!(published.body["product_ids"], json!([product]));
    assert_eq!(published.body["creator_user_id"], author_id);
    let id = published.id();
    assert_eq!(app.get(&format!("/v1/videos/{id}"), None).await.body["status"], "published");
    let listed = app.get(&format!("/v1/creators/{author_id}/videos"), None).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));

    // Events on videos: watched and liked, never bought.
    assert_eq!(events(app, Some(&buyer), None, &[("view", "video", id), ("like", "video", id)]).await.status, 202);
    let wrong = events(app, Some(&buyer), None, &[("purchase", "video", id)]).await;
    assert_eq!((wrong.status, wrong.code()), (422, "kind_item_mismatch"), "{wrong:?}");

    // Removed: by its creator only; gone for everyone else, kept for the record.
    app.post(&format!("/v1/videos/{id}/remove"), Some(&buyer), json!({})).await.assert_error(403, "forbidden");
    let removed = app.post(&format!("/v1/videos/{id}/remove"), Some(&author), json!({})).await;
    assert_eq!(removed.body["status"], "removed", "{removed:?}");
    app.post(&format!("/v1/videos/{id}/remove"), Some(&author), json!({})).await.assert_error(409, "video_removed");
    app.get(&format!("/v1/videos/{id}"), None).await.assert_error(404, "video_not_found");
    assert_eq!(app.get(&format!("/v1/videos/{id}"), Some(&author)).await.body["status"], "removed");
    assert_eq!(app.get(&format!("/v1/creators/{author_id}/videos"), None).await.body, json!([]));
    let late = events(app, Some(&buyer), None, &[("view", "video", id)]).await;
    assert_eq!((late.status, late.code()), (422, "unknown_item"), "a removed video takes no events: {late:?}");

    // The creator's profile counts followers and videos and shows the live session on air.
    let follow = app.send("PUT", &format!("/v1/creators/{author_id}/follow"), Some(&buyer), None).await;
    assert_eq!(follow.status, 204);
    let profile = app.get(&format!("/v1/creators/{author_id}"), Some(&buyer)).await;
    assert_eq!(
        (profile.body["followers"].as_i64(), profile.body["videos"].as_i64(), profile.body["followed"].as_bool()),
        (Some(1), Some(0), Some(true)),
        "{profile:?}"
    );
    app.get("/v1/creators/999999", None).await.assert_error(404, "creator_not_found");
    let buyer_id = app.get("/v1/me", Some(&buyer)).await.body["id"].as_i64().expect("id");
    app.get(&format!("/v1/creators/{buyer_id}"), None).await.assert_error(404, "creator_not_found");

    // A live session announced ahead: scheduled, nobody joins yet, its creator starts it.
    let ahead = |when: &str| json!({"title": "双11专场", "scheduled_for": when});
    let late = app.post("/v1/live-sessions", Some(&author), ahead("2025-11-25T00:00:00Z")).await;
    assert_eq!((late.status, late.code()), (422, "out_of_range"), "{late:?}");
    let scheduled = app.post("/v1/live-sessions", Some(&author), ahead("2025-11-27T12:00:00Z")).await;
    assert_eq!(
        (scheduled.status, scheduled.body["status"].as_str(), scheduled.body["started_at"].is_null()),
        (201, Some("scheduled"), true),
        "{scheduled:?}"
    );
    assert_eq!(scheduled.body["scheduled_for"], "2025-11-27T12:00:00Z");
    let planned = scheduled.id();
    app.post(&format!("/v1/live-sessions/{planned}/events"), Some(&buyer), json!({"kind": "join"}))
        .await
        .assert_error(409, "live_session_not_started");
    let (stranger, _) = creator(app, "stranger@example.com").await;
    app.post(&format!("/v1/live-sessions/{planned}/start"), Some(&stranger), json!({}))
        .await
        .assert_error(403, "forbidden");
    let started = app.post(&format!("/v1/live-sessions/{planned}/start"), Some(&author), json!({})).await;
    assert_eq!((started.body["status"].as_str(), started.body["started_at"].is_string()), (Some("live"), true));
    app.post(&format!("/v1/live-sessions/{planned}/start"), Some(&author), json!({}))
        .await
        .assert_error(409, "not_scheduled");
    app.post(&format!("/v1/live-sessions/{planned}/end"), Some(&author), json!({})).await;

    // A live session sells listed SKUs at a live price no higher than the list price.
    let live = app.post("/v1/live-sessions", Some(&author), json!({"title": "大米直播"})).await.id();
    let path = format!("/v1/live-sessions/{live}/products");
    let send = |token: &str, body: Value| {
        let (path, token) = (path.clone(), token.to_owned());
        async move { app.send("PUT", &path, Some(&token), Some(("application/json", body.to_string().into_bytes()))).await }
    };
    let (other, _) = creator(app, "other@example.com").await;
    send(&other, json!({"products": [{"sku_id": sku, "live_price_fen": 9_000}]})).await.assert_error(403, "forbidden");
    for (bad, code) in [
        (json!({"products": [{"sku_id": sku, "live_price_fen": 10_001}]}), "out_of_range"),
        (json!({"products": [{"sku_id": sku, "live_price_fen": 0}]}), "out_of_range"),
        (json!({"products": [{"sku_id": 999_999, "live_price_fen": 100}]}), "unknown_sku"),
        (
            json!({"products": [{"sku_id": sku, "live_price_fen": 100}, {"sku_id": sku, "live_price_fen": 200}]}),
            "duplicate_sku",
        ),
    ] {
        let reply = send(&author, bad).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{reply:?}");
    }
    let set = send(&author, json!({"products": [{"sku_id": sku, "live_price_fen": 8_800}]})).await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body["products"][0]["live_price_fen"], 8_800);
    assert_eq!(set.body["products"][0]["list_price_fen"], 10_000);
    app.post(&format!("/v1/live-sessions/{live}/events"), Some(&buyer), json!({"kind": "join"})).await;
    assert_eq!(app.get(&format!("/v1/live-sessions/{live}/detail"), None).await.body["viewers"], 1);
    assert_eq!(app.get(&format!("/v1/creators/{author_id}"), None).await.body["live_session_id"], live);
    app.post(&format!("/v1/live-sessions/{live}/end"), Some(&author), json!({})).await;
    send(&author, json!({"products": []})).await.assert_error(409, "live_session_ended");
}

async fn the_feed_mixes_its_sources_says_why_and_never_repeats_in_a_session(app: &TestApp) {
    let (staff, shop) = app.shop("延吉米铺", "222401").await;
    let mut products = Vec::new();
    for title in ["延边大米", "长白山木耳", "松茸", "人参", "苹果梨"] {
        products.push(app.listed_product(&staff, title, 5_000).await.0);
    }
    let (followed, followed_id) = creator(app, "followed@example.com").await;
    let (stranger, _) = creator(app, "stranger@example.com").await;
    let mut followed_videos = Vec::new();
    for (i, title) in ["大米开箱", "木耳怎么泡", "松茸炖鸡"].iter().enumerate() {
        followed_videos.push(publish(app, &followed, title, &[products[i]]).await);
    }
    let stranger_video = publish(app, &stranger, "人参的吃法", &[products[3]]).await;

    // Other buyers' behaviour: those who watch the stranger's video buy the 苹果梨.
    for n in 0..4 {
        let other = app.register(&format!("u{n}@example.com"), "consumer").await;
        let did = [
            ("view", "video", stranger_video),
            ("product_click", "product", products[4]),
            ("purchase", "product", products[4]),
        ];
        assert_eq!(events(app, Some(&other), None, &did).await.status, 202);
    }
    let buyer = app.register("buyer@example.com", "consumer").await;
    let follow = app.send("PUT", &format!("/v1/creators/{followed_id}/follow"), Some(&buyer), None).await;
    assert_eq!(follow.status, 204);
    app.app.rebuild_feed().await.expect("rebuild");

    // Page by page: each item says why; at most two per author; nothing twice in the session.
    let first = app.get("/v1/feed?limit=4", Some(&buyer)).await;
    assert_eq!(first.status, 200, "{first:?}");
    let items = first.body["items"].as_array().expect("items").clone();
    assert!(!items.is_empty());
    for item in &items {
        assert!(item["reasons"].as_array().is_some_and(|r| !r.is_empty()), "{item}");
    }
    let followed_reason = items
        .iter()
        .filter(|i| i["type"] == "video" && i["author_id"] == followed_id)
        .all(|i| i["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r == "followed_creator")));
    assert!(followed_reason, "{items:?}");
    let mut per_author: std::collections::HashMap<(bool, i64), usize> = Default::default();
    for item in &items {
        *per_author.entry((item["type"] == "product", item["author_id"].as_i64().unwrap_or(0))).or_default() += 1;
    }
    assert!(per_author.values().all(|&n| n <= 2), "{items:?}");
    let mut shown: HashSet<(String, i64)> = HashSet::new();
    let mut cursor = first.body["next_cursor"].as_str().expect("cursor").to_owned();
    for item in &items {
        assert!(shown.insert((item["type"].as_str().unwrap_or("").to_owned(), item["id"].as_i64().unwrap_or(0))));
    }
    for _ in 0..3 {
        let next = app.get(&format!("/v1/feed?limit=4&cursor={cursor}"), Some(&buyer)).await;
        assert_eq!(next.status, 200, "{next:?}");
        for item in next.body["items"].as_array().expect("items") {
            let key = (item["type"].as_str().unwrap_or("").to_owned(), item["id"].as_i64().unwrap_or(0));
            assert!(shown.insert(key), "shown twice in one session: {item}");
        }
        cursor = next.body["next_cursor"].as_str().expect("cursor").to_owned();
    }

    // A fresh action changes the next feed: after watching the stranger's video, the 苹果梨 its
    // watchers buy comes up as similar (and the watched video is not offered again).
    assert_eq!(events(app, Some(&buyer), None, &[("view", "video", stranger_video)]).await.status, 202);
    let fresh = app.get("/v1/feed?limit=20", Some(&buyer)).await;
    let fresh_items = fresh.body["items"].as_array().expect("items");
    let pear = fresh_items.iter().find(|i| i["type"] == "product" && i["id"] == products[4]).expect("the pear");
    assert!(pear["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r == "similar")), "{pear}");
    assert!(!fresh_items.iter().any(|i| i["type"] == "video" && i["id"] == stranger_video), "{fresh_items:?}");
    // Retrained from the log kept in memory (ingested events included), it still knows.
    app.app.rebuild_feed().await.expect("rebuild");
    let retrained = app.get("/v1/feed?limit=20", Some(&buyer)).await;
    let pear = retrained.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["type"] == "product" && i["id"] == products[4])
        .cloned();
    assert!(pear.is_some_and(|p| p["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r == "similar"))));

    // A removed video leaves every feed at once.
    let gone = followed_videos[0];
    app.post(&format!("/v1/videos/{gone}/remove"), Some(&followed), json!({})).await;
    let after = app.get("/v1/feed?limit=20", Some(&buyer)).await;
    assert!(!after.body["items"].as_array().expect("items").iter().any(|i| i["type"] == "video" && i["id"] == gone));

    // A paid order is a purchase in the log, and its product comes back as buy-again.
    let sku =
        app.get(&format!("/v1/products/{}", products[1]), None).await.body["skus"][0]["id"].as_i64().expect("sku");
    let ordered = reqwest::Client::new()
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(&buyer)
        .header("idempotency-key", "feed-1")
        .json(&json!({"lines": [{"sku_id": sku, "quantity": 1}],
            "address": {"name": "金顺姬", "phone": "13800000000", "region_code": "222401", "detail": "延吉市光明街 1 号"}}))
        .send()
        .await
        .expect("send");
    let order: Value = ordered.json().await.expect("json");
    let order_id = order["orders"][0]["id"].as_i64().expect("order");
    let payment = app.send("POST", &format!("/v1/orders/{order_id}/pay"), Some(&buyer), None).await;
    let paid = app.post("/v1/payments/simulated/callback", None, payment.body["simulated_callback"].clone()).await;
    assert_eq!(paid.body["outcome"], "paid", "{paid:?}");
    let op = app.operator().await;
    let log = app.get("/v1/events", Some(&op)).await;
    let purchases = log.body["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "purchase" && e["item_id"] == products[1] && e["user_id"].is_i64());
    assert_eq!(purchases.count(), 1, "{log:?}");
    // Two items per shop a page: the bought product comes within the session's first pages.
    let (mut cursor, mut bought) = (String::new(), None);
    for _ in 0..4 {
        let path = if cursor.is_empty() {
            "/v1/feed?limit=20".to_owned()
        } else {
            format!("/v1/feed?limit=20&cursor={cursor}")
        };
        let page = app.get(&path, Some(&buyer)).await;
        let query_cursor = page.body["next_cursor"].as_str().unwrap_or_default().to_owned();
        bought = page.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["type"] == "product" && i["id"] == products[1])
            .cloned();
        if bought.is_some() {
            break;
        }
        cursor = query_cursor;
    }
    assert!(
        bought.is_some_and(|i| i["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r == "buy_again"))),
        "the bought product is offered again"
    );

    // Anonymous viewers by device: trending first (nothing known about them yet).
    let anonymous = app.get("/v1/feed?limit=5&device_id=device-1", None).await;
    let reasons: Vec<&Value> = anonymous.body["items"].as_array().expect("items").iter().collect();
    // A full page even for someone the log knows nothing about: two items from each of the shop
    // and the two creators' content, less the removed video.
    assert_eq!(reasons.len(), 5, "{anonymous:?}");
    assert!(reasons.iter().any(|i| i["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r == "trending"))));
    app.get("/v1/feed", None).await.assert_error(422, "missing");
    app.get("/v1/feed?device_id=bad%20id", None).await.assert_error(422, "invalid_device_id");
    app.get("/v1/feed?limit=0", Some(&buyer)).await.assert_error(422, "out_of_range");
    app.get("/v1/feed?limit=51", Some(&buyer)).await.assert_error(422, "out_of_range");
    app.get("/v1/feed?cursor=nonsense", Some(&buyer)).await.assert_error(422, "invalid_cursor");

    // Traffic support is measured against its target: operators only.
    app.get("/v1/feed/exposure", Some(&buyer)).await.assert_error(403, "forbidden");
    let exposure = app.get("/v1/feed/exposure", Some(&op)).await;
    assert!(exposure.body["impressions"].as_u64().is_some_and(|n| n > 0), "{exposure:?}");
    assert_eq!(exposure.body["programmes"][0]["name"], "farm_specialties");
    assert_eq!(exposure.body["programmes"][0]["target_share"], 0.15);
    let _ = shop;
}

/// Two nodes over one store: events ingested through one reach the other's feed when it reads
/// the log (the timers do every second), and each event counts once on each node.
async fn a_second_node_learns_what_the_first_ingested(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (product, _) = app.listed_product(&staff, "延边大米", 10_000).await;
    let second = xingqu_app::App::new(
        app.app.store().clone(),
        std::sync::Arc::new(app.clock.clone()),
        xingqu_app::AppConfig::default(),
    );
    let device = xingqu_app::feed::Viewer::Device("phone-b".to_owned());
    let buy_again = |page: &xingqu_app::feed::FeedPage| {
        page.items.iter().any(|i| i.id == product && i.reasons.iter().any(|r| r == "buy_again"))
    };
    // Both nodes have loaded the log before the purchase.
    assert!(!buy_again(&second.feed_page(&device, None, 20).await.expect("page")));
    assert!(app.get("/v1/feed?device_id=phone-b&limit=20", None).await.status == 200);
    let purchase = json!({"device_id": "phone-b", "events": [{"kind": "purchase", "item_type": "product",
        "item_id": product, "occurred_at": "2025-11-26T00:00:00Z"}]});
    assert_eq!(app.post("/v1/events", None, purchase).await.status, 202);
    // The first node knows at once; the second once it reads the log, and only once.
    let first = app.get("/v1/feed?device_id=phone-b&limit=20", None).await;
    assert!(
        first.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["id"] == product && i["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r == "buy_again"))),
        "{first:?}"
    );
    assert!(!buy_again(&second.feed_page(&device, None, 20).await.expect("page")));
    assert_eq!(second.tail_feed().await.expect("tail"), 1);
    assert_eq!(second.tail_feed().await.expect("tail"), 0);
    assert!(buy_again(&second.feed_page(&device, None, 20).await.expect("page")));
    // The first node does not learn its own event twice.
    assert_eq!(app.app.tail_feed().await.expect("tail"), 0);
}
