//! The product life cycle, SKUs and price history, listing, and who may touch which product.

use crate::helpers::TestApp;
use serde_json::{Value, json};

crate::api_tests!(
    product_life_cycle,
    price_changes_are_recorded,
    other_shops_resources_are_out_of_reach,
    listing_filters_sorts_and_pages
);

async fn product_life_cycle(app: &TestApp) {
    let (staff, merchant_id) = app.shop("延吉米铺", "222401").await;
    let op = app.operator().await;
    let (rice, skincare) = app.categories().await;
    let created = app
        .post(
            "/v1/products",
            Some(&staff),
            json!({"category_id": rice, "title": "延边大米 长粒香", "description": "延边稻田", "farm_specialty": true,
                   "geographic_indication": true, "image_urls": ["https://img.example.com/rice.jpg"],
                   "skus": [{"spec": {"规格": "5kg"}, "price_fen": 5990, "stock": 100, "weight_g": 5000},
                            {"spec": {"规格": "10kg"}, "price_fen": 10990, "stock": 50, "weight_g": 10000}]}),
        )
        .await;
    assert_eq!((created.status, created.body["status"].as_str()), (201, Some("draft")), "{created:?}");
    let id = created.id();
    assert_eq!(created.body["merchant_id"].as_i64(), Some(merchant_id));
    assert_eq!(created.body["origin_region_code"], "222401", "defaults to the shop's region");
    assert_eq!(created.body["min_price_fen"], 5990);
    assert_eq!(created.body["tags"], json!(["farm_specialty", "geographic_indication"]));
    assert_eq!(created.body["skus"].as_array().map(Vec::len), Some(2));

    // Products belong to leaf categories the shop serves.
    let not_served = app.post("/v1/products", Some(&staff), json!({"category_id": skincare, "title": "面霜"})).await;
    not_served.assert_error(422, "category_not_served");

    app.get(&format!("/v1/products/{id}"), None).await.assert_error(404, "product_not_found");
    assert_eq!(app.get(&format!("/v1/products/{id}"), Some(&staff)).await.status, 200);

    let path = |action: &str| format!("/v1/products/{id}/{action}");
    app.post(&path("review"), Some(&op), json!({"decision": "approve"})).await.assert_error(409, "invalid_transition");
    assert_eq!(app.post(&path("submit"), Some(&staff), json!({})).await.body["status"], "pending_review");
    app.post(&path("review"), Some(&staff), json!({"decision": "approve"})).await.assert_error(403, "forbidden");
    app.post(&path("review"), Some(&op), json!({"decision": "reject"})).await.assert_error(422, "empty");
    let rejected = app.post(&path("review"), Some(&op), json!({"decision": "reject", "reason": "主图不清晰"})).await;
    assert_eq!(
        (rejected.body["status"].as_str(), rejected.body["status_reason"].as_str()),
        (Some("draft"), Some("主图不清晰"))
    );
    app.post(&path("submit"), Some(&staff), json!({})).await;
    let listed = app.post(&path("review"), Some(&op), json!({"decision": "approve"})).await;
    assert_eq!(listed.body["status"], "listed");
    let public = app.get(&format!("/v1/products/{id}"), None).await;
    assert_eq!((public.status, public.body["skus"].as_array().map(Vec::len)), (200, Some(2)));

    // Editing what buyers see sends the product back to review; a stale version is refused.
    let version = listed.body["version"].as_i64().expect("version");
    let stale = app
        .patch(&format!("/v1/products/{id}"), Some(&staff), json!({"title": "x", "expected_version": version - 1}))
        .await;
    stale.assert_error(409, "version_conflict");
    let edited = app
        .patch(
            &format!("/v1/products/{id}"),
            Some(&staff),
            json!({"title": "延边大米 稻花香", "expected_version": version}),
        )
        .await;
    assert_eq!(
        (edited.body["status"].as_str(), edited.body["version"].as_i64()),
        (Some("pending_review"), Some(version + 1))
    );
    assert_eq!(edited.body["description"], "延边稻田", "fields not sent are kept");
    app.get(&format!("/v1/products/{id}"), None).await.assert_error(404, "product_not_found");
    app.post(&path("review"), Some(&op), json!({"decision": "approve"})).await;

    assert_eq!(app.post(&path("delist"), Some(&staff), json!({"reason": "换季"})).await.body["status"], "delisted");
    app.post(&path("delist"), Some(&staff), json!({})).await.assert_error(409, "invalid_transition");
    app.post(&path("ban"), Some(&staff), json!({"reason": "x"})).await.assert_error(403, "forbidden");
    app.post(&path("ban"), Some(&op), json!({})).await.assert_error(422, "empty");
    assert_eq!(app.post(&path("ban"), Some(&op), json!({"reason": "假冒地理标志"})).await.body["status"], "banned");
    app.post(&path("submit"), Some(&staff), json!({})).await.assert_error(409, "invalid_transition");
    app.patch(&format!("/v1/products/{id}"), Some(&staff), json!({"title": "y"}))
        .await
        .assert_error(409, "invalid_transition");

    let log = app.get(&path("status-log"), Some(&staff)).await;
    let moves: Vec<(String, String)> = log.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| (c["from_status"].as_str().unwrap_or("").to_owned(), c["to_status"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected = [
        ("draft", "pending_review"),
        ("pending_review", "draft"),
        ("draft", "pending_review"),
        ("pending_review", "listed"),
        ("pending_review", "listed"),
        ("listed", "delisted"),
        ("delisted", "banned"),
    ];
    assert_eq!(moves, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    app.get(&path("status-log"), None).await.assert_error(401, "unauthenticated");
}

async fn price_changes_are_recorded(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let (product, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    app.clock.advance_ms(60_000);
    let cut =
        app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"price_fen": 4990, "reason": "双11预热"})).await;
    assert_eq!((cut.status, cut.body["price_fen"].as_i64(), cut.body["stock"].as_i64()), (200, Some(4990), Some(100)));
    app.patch(&format!("/v1/skus/{sku}"), Some(&staff), json!({"stock": 80})).await;
    let added = app
        .post(
            &format!("/v1/products/{product}/skus"),
            Some(&staff),
            json!({"spec": {"规格": "2.5kg"}, "price_fen": 3290, "weight_g": 2500}),
        )
        .await;
    assert_eq!(added.status, 201, "{added:?}");

    let history = app.get(&format!("/v1/skus/{sku}/price-history"), None).await;
    let entries: Vec<(Value, Value, Value)> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["old_price_fen"].clone(), e["new_price_fen"].clone(), e["reason"].clone()))
        .collect();
    assert_eq!(
        entries,
        vec![(Value::Null, json!(5990), json!("initial price")), (json!(5990), json!(4990), json!("双11预热"))]
    );
    assert_eq!(history.body["items"][1]["changed_at"], "2025-11-26T00:01:00Z");
    let detail = app.get(&format!("/v1/products/{product}"), None).await;
    assert_eq!(detail.body["min_price_fen"], 3290);
    assert_eq!(app.get(&format!("/v1/skus/{sku}"), None).await.body["stock"], 80);
}

async fn other_shops_resources_are_out_of_reach(app: &TestApp) {
    let (staff_a, shop_a) = app.shop("甲店", "222401").await;
    let (staff_b, _) = app.shop("乙店", "320500").await;
    let consumer = app.register("buyer@example.com", "consumer").await;
    let (listed, sku) = app.listed_product(&staff_a, "延边大米", 5990).await;
    let (rice, _) = app.categories().await;
    let draft = app.post("/v1/products", Some(&staff_a), json!({"category_id": rice, "title": "草稿"})).await.id();
    let before = app.get(&format!("/v1/products/{listed}"), Some(&staff_a)).await.body;

    for token in [&staff_b, &consumer] {
        app.patch(&format!("/v1/products/{listed}"), Some(token), json!({"title": "抢"}))
            .await
            .assert_error(403, "forbidden");
        app.patch(&format!("/v1/skus/{sku}"), Some(token), json!({"price_fen": 1}))
            .await
            .assert_error(403, "forbidden");
        app.post(&format!("/v1/products/{listed}/skus"), Some(token), json!({"price_fen": 1, "weight_g": 1}))
            .await
            .assert_error(403, "forbidden");
        app.post(&format!("/v1/products/{listed}/delist"), Some(token), json!({})).await.assert_error(403, "forbidden");
        app.get(&format!("/v1/products/{listed}/status-log"), Some(token)).await.assert_error(403, "forbidden");
        app.get(&format!("/v1/products/{draft}"), Some(token)).await.assert_error(404, "product_not_found");
        app.post(&format!("/v1/products/{draft}/submit"), Some(token), json!({}))
            .await
            .assert_error(404, "product_not_found");
        app.get(&format!("/v1/products?merchant_id={shop_a}&status=draft"), Some(token))
            .await
            .assert_error(403, "forbidden");
    }
    app.post("/v1/products", Some(&consumer), json!({"category_id": rice, "title": "x"}))
        .await
        .assert_error(403, "forbidden");
    app.get("/v1/products?status=draft", None).await.assert_error(403, "forbidden");
    let own = app.get(&format!("/v1/products?merchant_id={shop_a}&status=draft"), Some(&staff_a)).await;
    assert_eq!(own.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.get(&format!("/v1/products/{listed}"), Some(&staff_a)).await.body, before, "nothing changed");
}

async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    let reply = app.get(&format!("/v1/products?{query}"), None).await;
    assert_eq!(reply.status, 200, "{query}: {reply:?}");
    reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["title"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn listing_filters_sorts_and_pages(app: &TestApp) {
    let (yanbian, _) = app.shop("延吉米铺", "222401").await;
    let (suzhou, suzhou_id) = app.shop("苏州绣坊", "320500").await;
    for (title, price) in [("延边大米", 5990), ("辣白菜 500g", 2990), ("烤串蘸料", 1590)] {
        app.listed_product(&yanbian, title, price).await;
    }
    app.listed_product(&suzhou, "苏绣 猫", 99900).await;

    assert_eq!(titles(app, "").await, vec!["苏绣 猫", "烤串蘸料", "辣白菜 500g", "延边大米"]);
    assert_eq!(titles(app, "sort=price_asc").await, vec!["烤串蘸料", "辣白菜 500g", "延边大米", "苏绣 猫"]);
    assert_eq!(titles(app, "sort=price_desc&region=2224").await, vec!["延边大米", "辣白菜 500g", "烤串蘸料"]);
    assert_eq!(
        titles(app, "region=222400&min_price_fen=2000&max_price_fen=6000&sort=price_asc").await,
        vec!["辣白菜 500g", "延边大米"]
    );
    assert_eq!(titles(app, &format!("merchant_id={suzhou_id}")).await, vec!["苏绣 猫"]);
    assert_eq!(titles(app, "q=%E5%A4%A7%E7%B1%B3").await, vec!["延边大米"], "q=大米");
    assert_eq!(titles(app, "tag=farm_specialty&region=32").await, vec!["苏绣 猫"]);
    assert!(titles(app, "tag=domestic_brand").await.is_empty());

    for sort in ["newest", "price_asc", "price_desc"] {
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("/v1/products?sort={sort}&limit=3&cursor={c}"),
                None => format!("/v1/products?sort={sort}&limit=3"),
            };
            let page = app.get(&query, None).await;
            walked.extend(page.body["items"].as_array().expect("items").iter().map(|p| p["id"].as_i64()));
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let all: Vec<Option<i64>> = app.get(&format!("/v1/products?sort={sort}"), None).await.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| p["id"].as_i64())
            .collect();
        assert_eq!(walked, all, "{sort}");
    }
    let first = app.get("/v1/products?sort=price_asc&limit=1", None).await;
    let cursor = first.body["next_cursor"].as_str().expect("cursor");
    app.get(&format!("/v1/products?sort=newest&cursor={cursor}"), None).await.assert_error(422, "invalid_cursor");
}
