//! Categories, brands, merchant applications and qualification review, with who may do what.

use crate::helpers::TestApp;
use serde_json::json;

crate::api_tests!(category_tree_is_operator_managed, brands_and_domestic_certification, merchant_onboarding);

async fn category_tree_is_operator_managed(app: &TestApp) {
    let (rice, skincare) = app.categories().await;
    let list = app.get("/v1/categories", None).await;
    let slugs: Vec<&str> =
        list.body["items"].as_array().expect("items").iter().filter_map(|c| c["slug"].as_str()).collect();
    assert_eq!(slugs, vec!["food", "rice", "beauty", "skincare"]);
    let skincare_body = app.get(&format!("/v1/categories/{skincare}"), None).await.body;
    assert_eq!(skincare_body["flags"]["cosmetics"], true);
    assert_eq!(app.get(&format!("/v1/categories/{rice}"), None).await.body["flags"]["cosmetics"], false);

    let consumer = app.register("c@example.com", "consumer").await;
    app.post("/v1/categories", Some(&consumer), json!({"slug": "x", "name": "x"})).await.assert_error(403, "forbidden");
    let op = app.operator().await;
    app.post("/v1/categories", Some(&op), json!({"slug": "rice", "name": "dup"})).await.assert_error(409, "slug_taken");
    app.post("/v1/categories", Some(&op), json!({"parent_id": 999, "slug": "y", "name": "y"}))
        .await
        .assert_error(422, "unknown_category");
    app.post("/v1/categories", Some(&op), json!({"slug": "Bad Slug", "name": "y"}))
        .await
        .assert_error(422, "invalid_slug");
    app.get("/v1/categories/999", None).await.assert_error(404, "category_not_found");
    assert_eq!(
        app.get("/v1/categories", None).await.body["items"].as_array().map(Vec::len),
        Some(4),
        "nothing was added"
    );
}

async fn brands_and_domestic_certification(app: &TestApp) {
    let (staff, _) = app.shop("延吉米铺", "222401").await;
    let consumer = app.register("c@example.com", "consumer").await;
    let op = app.operator().await;
    app.post("/v1/brands", Some(&consumer), json!({"name": "某牌"})).await.assert_error(403, "forbidden");
    app.post("/v1/brands", Some(&staff), json!({"name": "自封国货", "domestic_brand": true}))
        .await
        .assert_error(403, "forbidden");
    let own = app.post("/v1/brands", Some(&staff), json!({"name": "长白山下"})).await;
    assert_eq!((own.status, own.body["domestic_brand"].as_bool()), (201, Some(false)));
    let certified = app.post("/v1/brands", Some(&op), json!({"name": "国风织造", "domestic_brand": true})).await;
    assert_eq!((certified.status, certified.body["domestic_brand"].as_bool()), (201, Some(true)));
    app.post("/v1/brands", Some(&op), json!({"name": "国风织造"})).await.assert_error(409, "brand_taken");
    let page = app.get("/v1/brands?limit=1", None).await;
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    let next = page.body["next_after_id"].as_i64().expect("next page");
    let rest = app.get(&format!("/v1/brands?after_id={next}"), None).await;
    assert_eq!(rest.body["items"][0]["name"], "国风织造");
    assert_eq!(app.get(&format!("/v1/brands/{}", certified.id()), None).await.body["name"], "国风织造");
}

async fn merchant_onboarding(app: &TestApp) {
    let (rice, skincare) = app.categories().await;
    let op = app.operator().await;
    let applicant = app.register("owner@example.com", "consumer").await;
    let creator = app.register("creator@example.com", "creator").await;
    let body = json!({"shop_name": "图们辣白菜", "region_code": "222402", "category_ids": [rice]});
    app.post("/v1/merchants", Some(&creator), body.clone()).await.assert_error(403, "forbidden");
    let applied = app.post("/v1/merchants", Some(&applicant), body.clone()).await;
    assert_eq!((applied.status, applied.body["qualification"].as_str()), (201, Some("pending")));
    let id = applied.id();
    let me = app.get("/v1/me", Some(&applicant)).await;
    assert_eq!((me.body["role"].as_str(), me.body["merchant_id"].as_i64()), (Some("merchant_staff"), Some(id)));
    app.post("/v1/merchants", Some(&applicant), body.clone()).await.assert_error(403, "forbidden");

    // A pending shop is invisible to the public, visible to its staff and operators.
    app.get(&format!("/v1/merchants/{id}"), None).await.assert_error(404, "merchant_not_found");
    assert_eq!(app.get(&format!("/v1/merchants/{id}"), Some(&applicant)).await.status, 200);
    app.get("/v1/merchants?qualification=pending", Some(&applicant)).await.assert_error(403, "forbidden");
    let pending = app.get("/v1/merchants?qualification=pending", Some(&op)).await;
    assert_eq!(pending.body["items"][0]["id"].as_i64(), Some(id));

    let decide = |token: String, decision: serde_json::Value| async move {
        app.post(&format!("/v1/merchants/{id}/qualification"), Some(&token), decision).await
    };
    decide(applicant.clone(), json!({"decision": "approve"})).await.assert_error(403, "forbidden");
    decide(op.clone(), json!({"decision": "reject"})).await.assert_error(422, "empty");
    decide(op.clone(), json!({"decision": "maybe"})).await.assert_error(422, "invalid_decision");
    let rejected = decide(op.clone(), json!({"decision": "reject", "reason": "营业执照不清晰"})).await;
    assert_eq!(rejected.body["qualification"], "rejected");
    decide(op.clone(), json!({"decision": "approve"})).await.assert_error(409, "invalid_transition");

    // Re-applying with a changed profile puts the shop back in the queue.
    let changed = json!({"shop_name": "图们辣白菜坊", "region_code": "222402", "category_ids": [rice, skincare]});
    let reapplied = app.patch(&format!("/v1/merchants/{id}"), Some(&applicant), changed).await;
    assert_eq!(
        (reapplied.body["qualification"].as_str(), reapplied.body["category_ids"].as_array().map(Vec::len)),
        (Some("pending"), Some(2))
    );
    let approved = decide(op.clone(), json!({"decision": "approve", "reason": "ok"})).await;
    assert_eq!(approved.body["qualification"], "approved");
    assert_eq!(app.get(&format!("/v1/merchants/{id}"), None).await.body["shop_name"], "图们辣白菜坊");
    let public = app.get("/v1/merchants", None).await;
    assert_eq!(public.body["items"].as_array().map(Vec::len), Some(1));

    // Another shop's staff cannot touch it; names stay unique.
    let (other_staff, _) = app.shop("另一家", "110000").await;
    let hijack = json!({"shop_name": "被改了", "region_code": "110000", "category_ids": [rice]});
    app.patch(&format!("/v1/merchants/{id}"), Some(&other_staff), hijack).await.assert_error(403, "forbidden");
    let taken = json!({"shop_name": "另一家", "region_code": "222402", "category_ids": [rice]});
    app.patch(&format!("/v1/merchants/{id}"), Some(&applicant), taken).await.assert_error(409, "shop_name_taken");
    assert_eq!(app.get(&format!("/v1/merchants/{id}"), None).await.body["shop_name"], "图们辣白菜坊");
}
