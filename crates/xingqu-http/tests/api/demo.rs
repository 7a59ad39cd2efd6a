//! The demo marketplace: seeded once, deterministic, and what the README promises.

use crate::helpers::TestApp;
use serde_json::json;
use xingqu_app::demo::DEMO_PASSWORD;

crate::api_tests!(demo_seeds_once_and_serves_the_prefecture);

async fn demo_seeds_once_and_serves_the_prefecture(app: &TestApp) {
    let first = app.app.seed_demo().await.expect("seed");
    assert!(first.seeded && first.merchants >= 60 && first.products >= 600, "{first:?}");
    let second = app.app.seed_demo().await.expect("seed again");
    assert!(!second.seeded);
    let merchants = app.get("/v1/merchants?limit=100", None).await;
    assert_eq!(merchants.body["items"].as_array().map(Vec::len), Some(first.merchants), "no duplicate shops");

    let farm = app.get("/v1/products?tag=farm_specialty&region=2224&limit=100", None).await;
    let items = farm.body["items"].as_array().expect("items");
    assert!(items.len() >= 20, "Yanbian farm products: {}", items.len());
    assert!(items.iter().all(|p| p["origin_region_code"].as_str().is_some_and(|r| r.starts_with("2224"))));

    // Walk the whole catalog through the cursor: every product, once.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page = app.get(&format!("/v1/products?limit=100&sort=price_asc{cursor}"), None).await;
        for product in page.body["items"].as_array().expect("items") {
            assert!(seen.insert(product["id"].as_i64()), "repeated {product}");
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), first.products);

    for (role, email, _) in &first.accounts {
        let login = app.post("/v1/auth/login", None, json!({"email": email, "password": DEMO_PASSWORD})).await;
        assert_eq!((login.status, login.body["user"]["role"].as_str()), (200, Some(role.as_str())), "{email}");
    }
    let merchant_token =
        app.post("/v1/auth/login", None, json!({"email": "merchant@xingqu.demo", "password": DEMO_PASSWORD})).await;
    let shop_id = merchant_token.body["user"]["merchant_id"].as_i64().expect("demo merchant has a shop");
    let shop = app.get(&format!("/v1/merchants/{shop_id}"), None).await;
    assert!(shop.body["region_code"].as_str().is_some_and(|r| r.starts_with("2224")), "{shop:?}");
    let flash = app.get("/v1/flash-sales/1", None).await;
    assert_eq!((flash.status, flash.body["pool_units"].as_i64()), (200, Some(500)), "{flash:?}");
    let domestic = app.get("/v1/products?tag=domestic_brand&limit=5", None).await;
    assert_eq!(domestic.body["items"].as_array().map(Vec::len), Some(5));

    // The festival runs: three zones with approved entries; a Yanbian entry prices a cart at its
    // campaign price with the platform's subsidy.
    let campaigns = app.get("/v1/campaigns", None).await;
    let campaign_id = campaigns.body["items"][0]["id"].as_i64().expect("a demo campaign");
    let campaign = app.get(&format!("/v1/campaigns/{campaign_id}"), None).await;
    assert_eq!(campaign.body["zones"].as_array().map(Vec::len), Some(3), "{campaign:?}");
    assert_eq!(campaign.body["live_slots"][0]["session_status"], "scheduled");
    let yanbian = campaign.body["zones"][0]["id"].as_i64().expect("zone");
    let operator =
        app.post("/v1/auth/login", None, json!({"email": "operator@xingqu.demo", "password": DEMO_PASSWORD})).await;
    let operator = operator.body["token"].as_str().expect("token");
    let entries = app.get(&format!("/v1/zones/{yanbian}/entries?status=approved"), Some(operator)).await;
    let entry = entries.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["sku_id"] != flash.body["sku_id"]))
        .cloned()
        .expect("an approved Yanbian entry");
    let quote = app.post("/v1/quotes", None, json!({"lines": [{"sku_id": entry["sku_id"], "quantity": 1}]})).await;
    let sources: Vec<&str> = quote.body["merchants"][0]["lines"][0]["discounts"]
        .as_array()
        .expect("discounts")
        .iter()
        .filter_map(|d| d["source"].as_str())
        .collect();
    assert_eq!(sources, vec!["campaign_price", "subsidy"], "{quote:?}");
}
