//! Bad input of every kind, per resource: a 4xx with a stable code, never a 500, and stored
//! data unchanged afterwards.

use crate::helpers::TestApp;
use serde_json::{Value, json};

crate::api_tests!(
    every_json_endpoint_refuses_malformed_bodies,
    account_fields_are_validated,
    catalog_fields_are_validated,
    product_fields_are_validated,
    sku_amounts_are_validated,
    listing_parameters_are_validated
);

/// Everything a client can observe, as an operator sees it.
async fn snapshot(app: &TestApp) -> Value {
    let op = app.operator().await;
    let mut state = serde_json::Map::new();
    for path in [
        "/v1/categories",
        "/v1/brands?limit=100",
        "/v1/merchants?qualification=approved&limit=100",
        "/v1/merchants?qualification=pending&limit=100",
        "/v1/products?status=any&limit=100",
    ] {
        state.insert(path.to_owned(), app.get(path, Some(&op)).await.body);
    }
    let products = app.get("/v1/products?status=any&limit=100", Some(&op)).await.body;
    for product in products["items"].as_array().into_iter().flatten() {
        let id = product["id"].as_i64().unwrap_or_default();
        let detail = app.get(&format!("/v1/products/{id}"), Some(&op)).await.body;
        for sku in detail["skus"].as_array().into_iter().flatten() {
            let sku_id = sku["id"].as_i64().unwrap_or_default();
            state.insert(
                format!("history {sku_id}"),
                app.get(&format!("/v1/skus/{sku_id}/price-history"), Some(&op)).await.body,
            );
        }
        state.insert(format!("product {id}"), detail);
    }
    Value::Object(state)
}

/// A small marketplace: (operator, staff, consumer, rice category, product, sku, merchant).
async fn marketplace(app: &TestApp) -> (String, String, String, i64, i64, i64, i64) {
    let (staff, merchant) = app.shop("延吉米铺", "222401").await;
    let (product, sku) = app.listed_product(&staff, "延边大米", 5990).await;
    let (rice, _) = app.categories().await;
    let consumer = app.register("buyer@example.com", "consumer").await;
    (app.operator().await, staff, consumer, rice, product, sku, merchant)
}

async fn every_json_endpoint_refuses_malformed_bodies(app: &TestApp) {
    let (op, staff, consumer, _, product, sku, merchant) = marketplace(app).await;
    let before = snapshot(app).await;
    let endpoints: Vec<(&str, String, Option<&str>)> = vec![
        ("POST", "/v1/auth/register".into(), None),
        ("POST", "/v1/auth/login".into(), None),
        ("POST", "/v1/operators".into(), Some(&op)),
        ("POST", "/v1/categories".into(), Some(&op)),
        ("POST", "/v1/brands".into(), Some(&op)),
        ("POST", "/v1/merchants".into(), Some(&consumer)),
        ("PATCH", format!("/v1/merchants/{merchant}"), Some(&staff)),
        ("POST", format!("/v1/merchants/{merchant}/qualification"), Some(&op)),
        ("POST", "/v1/products".into(), Some(&staff)),
        ("PATCH", format!("/v1/products/{product}"), Some(&staff)),
        ("POST", format!("/v1/products/{product}/review"), Some(&op)),
        ("POST", format!("/v1/products/{product}/delist"), Some(&staff)),
        ("POST", format!("/v1/products/{product}/ban"), Some(&op)),
        ("POST", format!("/v1/products/{product}/skus"), Some(&staff)),
        ("PATCH", format!("/v1/skus/{sku}"), Some(&staff)),
        ("PUT", format!("/v1/merchants/{merchant}/fulfilment"), Some(&staff)),
        ("POST", "/v1/quotes".into(), None),
        ("POST", "/v1/orders".into(), Some(&consumer)),
        ("POST", "/v1/payments/simulated/callback".into(), None),
        ("POST", "/v1/flash-sales".into(), Some(&staff)),
    ];
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    for (method, path, token) in &endpoints {
        for (body, status, code) in [
            (r#"{"title": "#, 400, "malformed_json"),
            ("not json", 400, "malformed_json"),
            ("", 400, "malformed_json"),
            ("[1, 2]", 422, "invalid_type"),
            ("null", 422, "invalid_type"),
            (r#"{"no_such_field": 1}"#, 422, "unknown_field"),
            (huge.as_str(), 413, "payload_too_large"),
        ] {
            let reply = app.raw(method, path, *token, body).await;
            assert_eq!((reply.status, reply.code()), (status, code), "{method} {path} with {:.40}", body);
        }
        let text = app.send(method, path, *token, Some(("text/plain", b"{}".to_vec()))).await;
        assert_eq!((text.status, text.code()), (415, "unsupported_media_type"), "{method} {path}");
    }
    assert_eq!(snapshot(app).await, before);
}

async fn account_fields_are_validated(app: &TestApp) {
    let before = app.app.store().user_by_email("a@example.com").await.expect("lookup");
    let cases = [
        (json!({"email": "a@example.com", "password": "short", "display_name": "a"}), "too_short", "password"),
        (json!({"email": "a@example.com", "password": "p".repeat(129), "display_name": "a"}), "too_long", "password"),
        (json!({"email": "not-an-email", "password": "long enough", "display_name": "a"}), "invalid_email", "email"),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250)), "password": "long enough", "display_name": "a"}),
            "too_long",
            "email",
        ),
        (json!({"email": "a@example.com", "password": "long enough", "display_name": ""}), "empty", "display_name"),
        (
            json!({"email": "a@example.com", "password": "long enough", "display_name": "名".repeat(61)}),
            "too_long",
            "display_name",
        ),
        (json!({"email": 42, "password": "long enough", "display_name": "a"}), "invalid_type", "email"),
        (json!({"password": "long enough", "display_name": "a"}), "missing_field", "email"),
    ];
    for (body, code, field) in cases {
        let reply = app.post("/v1/auth/register", None, body.clone()).await;
        assert_eq!(
            (reply.status, reply.code(), reply.body["error"]["field"].as_str()),
            (422, code, Some(field)),
            "{body}"
        );
    }
    assert_eq!(app.app.store().user_by_email("a@example.com").await.expect("lookup"), before);
    let login = app.post("/v1/auth/login", None, json!({"email": "a@example.com"})).await;
    login.assert_error(422, "missing_field");
}

async fn catalog_fields_are_validated(app: &TestApp) {
    let (op, staff, consumer, rice, _, _, merchant) = marketplace(app).await;
    let before = snapshot(app).await;
    let long = "长".repeat(61);
    let cases: Vec<(&str, String, &str, Value, u16, &str)> = vec![
        ("POST", "/v1/categories".into(), &op, json!({"slug": "", "name": "x"}), 422, "invalid_slug"),
        ("POST", "/v1/categories".into(), &op, json!({"slug": "ok", "name": long}), 422, "too_long"),
        (
            "POST",
            "/v1/categories".into(),
            &op,
            json!({"slug": "ok", "name": "x", "parent_id": "1"}),
            422,
            "invalid_type",
        ),
        (
            "POST",
            "/v1/categories".into(),
            &op,
            json!({"slug": "ok", "name": "x", "flags": {"fresh": "yes"}}),
            422,
            "invalid_type",
        ),
        ("POST", "/v1/brands".into(), &op, json!({"name": "   "}), 422, "empty"),
        ("POST", "/v1/brands".into(), &op, json!({"name": long}), 422, "too_long"),
        (
            "POST",
            "/v1/merchants".into(),
            &consumer,
            json!({"shop_name": "店", "region_code": "22240", "category_ids": [rice]}),
            422,
            "invalid_region_code",
        ),
        (
            "POST",
            "/v1/merchants".into(),
            &consumer,
            json!({"shop_name": "店", "region_code": "222401", "category_ids": []}),
            422,
            "out_of_range",
        ),
        (
            "POST",
            "/v1/merchants".into(),
            &consumer,
            json!({"shop_name": "店", "region_code": "222401", "category_ids": [99999]}),
            422,
            "unknown_category",
        ),
        (
            "POST",
            "/v1/merchants".into(),
            &consumer,
            json!({"shop_name": "店", "region_code": "222401", "category_ids": vec![rice; 21]}),
            422,
            "out_of_range",
        ),
        (
            "POST",
            "/v1/merchants".into(),
            &consumer,
            json!({"shop_name": long, "region_code": "222401", "category_ids": [rice]}),
            422,
            "too_long",
        ),
        (
            "POST",
            "/v1/merchants".into(),
            &consumer,
            json!({"shop_name": "延吉米铺", "region_code": "222401", "category_ids": [rice]}),
            409,
            "shop_name_taken",
        ),
        (
            "PATCH",
            format!("/v1/merchants/{merchant}"),
            &staff,
            json!({"shop_name": "x", "region_code": "abc123", "category_ids": [rice]}),
            422,
            "invalid_region_code",
        ),
        (
            "PATCH",
            "/v1/merchants/99999".into(),
            &op,
            json!({"shop_name": "x", "region_code": "222401", "category_ids": [rice]}),
            404,
            "merchant_not_found",
        ),
        (
            "POST",
            "/v1/merchants/99999/qualification".into(),
            &op,
            json!({"decision": "approve"}),
            404,
            "merchant_not_found",
        ),
        (
            "POST",
            format!("/v1/merchants/{merchant}/qualification"),
            &op,
            json!({"decision": "approve"}),
            409,
            "invalid_transition",
        ),
        ("POST", format!("/v1/merchants/{merchant}/qualification"), &op, json!({"decision": 1}), 422, "invalid_type"),
    ];
    for (method, path, token, body, status, code) in cases {
        let reply =
            app.send(method, &path, Some(token), Some(("application/json", body.to_string().into_bytes()))).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {path} {body}");
    }
    app.get("/v1/brands/99999", None).await.assert_error(404, "brand_not_found");
    app.get("/v1/merchants/99999", None).await.assert_error(404, "merchant_not_found");
    assert_eq!(snapshot(app).await, before);
}

async fn product_fields_are_validated(app: &TestApp) {
    let (op, staff, _, rice, product, _, _) = marketplace(app).await;
    let before = snapshot(app).await;
    let sku = json!({"price_fen": 100, "weight_g": 100});
    let base = |extra: Value| {
        let mut body = json!({"category_id": rice, "title": "好米", "skus": [sku.clone()]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (base(json!({"title": ""})), "empty", "title"),
        (base(json!({"title": "米".repeat(121)})), "too_long", "title"),
        (base(json!({"title": 7})), "invalid_type", "title"),
        (base(json!({"description": "述".repeat(5001)})), "too_long", "description"),
        (base(json!({"category_id": 99999})), "unknown_category", "category_id"),
        (base(json!({"category_id": "1"})), "invalid_type", "category_id"),
        (base(json!({"brand_id": 99999})), "unknown_brand", "brand_id"),
        (base(json!({"origin_region_code": "2224"})), "invalid_region_code", "origin_region_code"),
        (base(json!({"image_urls": ["ftp://x/a.jpg"]})), "invalid_url", "image_urls"),
        (base(json!({"image_urls": vec!["https://x/a.jpg"; 10]})), "too_many", "image_urls"),
        (base(json!({"farm_specialty": "true"})), "invalid_type", "farm_specialty"),
        (base(json!({"skus": [{"price_fen": 0, "weight_g": 1}]})), "not_positive", "price_fen"),
        (base(json!({"skus": [{"price_fen": -5, "weight_g": 1}]})), "not_positive", "price_fen"),
        (base(json!({"skus": [{"price_fen": 100_000_001, "weight_g": 1}]})), "too_large", "price_fen"),
        (base(json!({"skus": [{"price_fen": 1, "weight_g": 1, "stock": -1}]})), "negative", "stock"),
        (base(json!({"skus": [{"price_fen": 1, "weight_g": 0}]})), "not_positive", "weight_g"),
        (base(json!({"skus": [{"price_fen": 1}]})), "missing_field", "skus[0].weight_g"),
        (base(json!({"skus": [{"price_fen": 1.5, "weight_g": 1}]})), "invalid_type", "skus[0].price_fen"),
        (base(json!({"skus": [{"price_fen": 1, "weight_g": 1, "spec": {"颜色": ""}}]})), "empty", "spec"),
        (base(json!({"skus": vec![sku.clone(); 51]})), "too_many", "skus"),
    ];
    for (body, code, field) in cases {
        let reply = app.post("/v1/products", Some(&staff), body.clone()).await;
        assert_eq!(
            (reply.status, reply.code(), reply.body["error"]["field"].as_str()),
            (422, code, Some(field)),
            "{body}"
        );
    }
    // Overflowing integers are not numbers the API accepts.
    let overflow = format!(
        r#"{{"category_id": {rice}, "title": "x", "skus": [{{"price_fen": 99999999999999999999, "weight_g": 1}}]}}"#
    );
    app.raw("POST", "/v1/products", Some(&staff), &overflow).await.assert_error(422, "invalid_type");

    let product_path = format!("/v1/products/{product}");
    let patch = |body: Value| app.patch(&product_path, Some(&staff), body);
    patch(json!({"title": "   "})).await.assert_error(422, "empty");
    patch(json!({"expected_version": "1"})).await.assert_error(422, "invalid_type");
    app.patch("/v1/products/99999", Some(&staff), json!({"title": "x"})).await.assert_error(404, "product_not_found");
    app.post("/v1/products/99999/review", Some(&op), json!({"decision": "approve"}))
        .await
        .assert_error(404, "product_not_found");
    app.post(&format!("/v1/products/{product}/review"), Some(&op), json!({"decision": "later"}))
        .await
        .assert_error(422, "invalid_decision");
    app.post(&format!("/v1/products/{product}/ban"), Some(&op), json!({"reason": "因".repeat(501)}))
        .await
        .assert_error(422, "too_long");
    assert_eq!(snapshot(app).await, before);
}

async fn sku_amounts_are_validated(app: &TestApp) {
    let (_, staff, _, _, product, sku, _) = marketplace(app).await;
    let before = snapshot(app).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"price_fen": 0}), "not_positive"),
        (json!({"price_fen": -1}), "not_positive"),
        (json!({"price_fen": 100_000_001}), "too_large"),
        (json!({"price_fen": "5990"}), "invalid_type"),
        (json!({"price_fen": 59.9}), "invalid_type"),
        (json!({"stock": -3}), "negative"),
        (json!({"stock": 10_000_001}), "too_large"),
        (json!({"weight_g": -1}), "not_positive"),
        (json!({"price_fen": 4990, "reason": "因".repeat(501)}), "too_long"),
        (json!({"spec": {"a": "b".repeat(41)}}), "too_long"),
    ];
    for (body, code) in cases {
        let reply = app.patch(&format!("/v1/skus/{sku}"), Some(&staff), body.clone()).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{body}");
        let reply = app.post(&format!("/v1/products/{product}/skus"), Some(&staff), body.clone()).await;
        assert!(reply.status == 422, "{body}: {reply:?}");
    }
    app.raw("PATCH", &format!("/v1/skus/{sku}"), Some(&staff), r#"{"price_fen": 9223372036854775808}"#)
        .await
        .assert_error(422, "invalid_type");
    app.patch("/v1/skus/99999", Some(&staff), json!({"price_fen": 1})).await.assert_error(404, "sku_not_found");
    app.post("/v1/products/99999/skus", Some(&staff), json!({"price_fen": 1, "weight_g": 1}))
        .await
        .assert_error(404, "product_not_found");
    app.get("/v1/skus/99999/price-history", None).await.assert_error(404, "sku_not_found");
    assert_eq!(snapshot(app).await, before);
}

async fn listing_parameters_are_validated(app: &TestApp) {
    marketplace(app).await;
    for (query, status, code) in [
        ("limit=0", 422, "out_of_range"),
        ("limit=101", 422, "out_of_range"),
        ("limit=abc", 400, "invalid_query"),
        ("limit=99999999999999999999", 400, "invalid_query"),
        ("tag=organic", 422, "unknown_tag"),
        ("sort=random", 422, "unknown_sort"),
        ("region=22a", 422, "invalid_region_code"),
        ("min_price_fen=-1", 422, "out_of_range"),
        ("max_price_fen=100000001", 422, "out_of_range"),
        ("category_id=99999", 422, "unknown_category"),
        ("category_id=x", 400, "invalid_query"),
        ("cursor=%%%", 422, "invalid_cursor"),
        ("cursor=bm90LWEtY3Vyc29y", 422, "invalid_cursor"),
        ("status=sold", 422, "invalid_status"),
    ] {
        let reply = app.get(&format!("/v1/products?{query}"), None).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{query}: {reply:?}");
    }
    let long_q = "词".repeat(61);
    app.get(&format!("/v1/products?q={long_q}"), None).await.assert_error(422, "too_long");
    app.get("/v1/brands?limit=0", None).await.assert_error(422, "out_of_range");
    app.get("/v1/merchants?qualification=odd", None).await.assert_error(422, "invalid_qualification");
}
