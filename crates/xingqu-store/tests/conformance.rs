//! The storage contract: every behaviour runs on SQLite always and on PostgreSQL when
//! `XINGQU_TEST_POSTGRES_URL` is set, each test in its own database or schema.

use xingqu_domain::catalog::{CategoryFlags, ListingTag, OriginTags, ProductSort};
use xingqu_store::accounts::NewUser;
use xingqu_store::catalog::{MerchantFilter, NewMerchant};
use xingqu_store::products::{Change, ProductContent, ProductQuery, SkuValues};
use xingqu_store::testing::is_conflict;
use xingqu_store::{Store, StoreError};

/// Generates one test per case and backend: `sqlite::case` and `postgres::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = xingqu_store::testing::TestDb::sqlite().await;
                    super::$case(&db.store).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = xingqu_store::testing::TestDb::postgres().await else { return };
                    super::$case(&db.store).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(
    migrations_are_idempotent,
    users_are_unique_by_email,
    sessions_expire_and_revoke,
    category_tree_keeps_paths_and_flags,
    merchants_keep_categories_and_qualification,
    qualification_decisions_race_to_one_winner,
    sku_prices_append_to_history,
    product_edits_compare_and_set,
    listing_filters_sorts_and_pages,
    listing_text_matches_literally,
    dropped_transaction_leaves_nothing,
    concurrent_reservations_never_oversell,
    coupon_claims_hold_quantity_and_limits_in_the_store,
    protection_sweeps_pay_what_the_domain_rule_says_once,
    analytics_class_each_line_once,
);

const NOW_MS: i64 = 1_764_000_000_000;

fn change(actor_user_id: Option<i64>, reason: &str, now_ms: i64) -> Change<'_> {
    Change { actor_user_id, reason, now_ms }
}

async fn user(store: &Store, email: &str, role: &str) -> i64 {
    let user = NewUser { email, password_hash: "h", display_name: email, role, merchant_id: None, now_ms: NOW_MS };
    store.insert_user(&user).await.expect("insert user").id
}

/// A shop with one leaf category `/root/leaf/`; returns (merchant id, root id, leaf id).
async fn shop(store: &Store, name: &str, region_code: &str, qualification: &str) -> (i64, i64, i64) {
    let owner = user(store, &format!("owner-{name}@shop.example.com"), "consumer").await;
    let mut tx = store.begin().await.expect("begin");
    let root = match tx.insert_category(None, &format!("root-{name}"), "root", CategoryFlags::default(), NOW_MS).await {
        Ok(row) => row.id,
        Err(e) => panic!("root category: {e}"),
    };
    let leaf = tx
        .insert_category(Some(root), &format!("leaf-{name}"), "leaf", CategoryFlags::default(), NOW_MS)
        .await
        .expect("leaf category")
        .id;
    let merchant = NewMerchant {
        shop_name: name,
        region_code,
        qualification,
        owner_user_id: owner,
        category_ids: &[leaf],
        now_ms: NOW_MS,
    };
    let id = tx.insert_merchant(&merchant).await.expect("insert merchant").id;
    tx.commit().await.expect("commit");
    (id, root, leaf)
}

fn content<'a>(
    category_id: i64,
    title: &'a str,
    region: &'a str,
    tags: OriginTags,
    images: &'a [String],
) -> ProductContent<'a> {
    ProductContent {
        category_id,
        brand_id: None,
        title,
        description: "desc",
        image_urls: images,
        tags,
        origin_region_code: region,
    }
}

/// A listed product with one SKU at `price_fen`.
async fn listed(
    store: &Store,
    merchant_id: i64,
    category_id: i64,
    title: &str,
    region: &str,
    tags: OriginTags,
    price_fen: i64,
) -> i64 {
    let mut tx = store.begin().await.expect("begin");
    let id =
        tx.insert_product(merchant_id, &content(category_id, title, region, tags, &[]), NOW_MS).await.expect("product");
    let spec = vec![("规格".to_owned(), "1件".to_owned())];
    let sku = SkuValues { spec: &spec, price_fen, stock: Some(10), weight_g: 500 };
    tx.insert_sku(id, &sku, change(None, "initial price", NOW_MS)).await.expect("sku");
    tx.transition_product(id, "draft", "listed", change(None, "seed", NOW_MS)).await.expect("list");
    tx.commit().await.expect("commit");
    id
}

async fn migrations_are_idempotent(store: &Store) {
    store.migrate().await.expect("second migrate");
    store.ping().await.expect("ping");
    assert_eq!(store.setting("nothing").await.expect("setting"), None);
}

async fn users_are_unique_by_email(store: &Store) {
    let id = user(store, "li@example.com", "consumer").await;
    let again = NewUser {
        email: "li@example.com",
        password_hash: "x",
        display_name: "x",
        role: "creator",
        merchant_id: None,
        now_ms: NOW_MS,
    };
    let error = store.insert_user(&again).await.expect_err("duplicate e-mail");
    assert!(is_conflict(&error), "{error:?}");
    let found = store.user_by_email("li@example.com").await.expect("by email").expect("exists");
    assert_eq!((found.id, found.role.as_str()), (id, "consumer"));
    assert_eq!(store.user(id + 1000).await.expect("user"), None);
}

async fn sessions_expire_and_revoke(store: &Store) {
    let id = user(store, "s@example.com", "consumer").await;
    store.insert_session(id, "hash-a", NOW_MS, NOW_MS + 1_000).await.expect("session a");
    store.insert_session(id, "hash-b", NOW_MS, NOW_MS + 1_000).await.expect("session b");
    let live = |hash: &'static str, at: i64| async move {
        store.session_user(hash, at).await.expect("lookup").map(|(u, _)| u.id)
    };
    assert_eq!(live("hash-a", NOW_MS + 999).await, Some(id));
    assert_eq!(live("hash-a", NOW_MS + 1_000).await, None, "expired at expires_at_ms");
    assert_eq!(live("unknown", NOW_MS).await, None);
    assert!(store.revoke_session("hash-a", NOW_MS).await.expect("revoke"));
    assert!(!store.revoke_session("hash-a", NOW_MS).await.expect("revoke twice"));
    assert_eq!(live("hash-a", NOW_MS).await, None);
    assert_eq!(live("hash-b", NOW_MS).await, Some(id));
    assert_eq!(store.revoke_user_sessions(id, NOW_MS).await.expect("revoke all"), 1);
    assert_eq!(live("hash-b", NOW_MS).await, None);
}

async fn category_tree_keeps_paths_and_flags(store: &Store) {
    let fresh = CategoryFlags { fresh: true, ..CategoryFlags::default() };
    let food = store.insert_category(None, "food", "食品", CategoryFlags::default(), NOW_MS).await.expect("food");
    let produce = store.insert_category(Some(food.id), "produce", "生鲜", fresh, NOW_MS).await.expect("produce");
    assert_eq!(produce.path, format!("/{}/{}/", food.id, produce.id));
    let loaded = store.category(produce.id).await.expect("load").expect("exists");
    assert_eq!(loaded, produce);
    assert!(loaded.flags.fresh && !loaded.flags.cosmetics);
    assert!(store.category_has_children(food.id).await.expect("children"));
    assert!(!store.category_has_children(produce.id).await.expect("children"));
    let dup =
        store.insert_category(None, "food", "again", CategoryFlags::default(), NOW_MS).await.expect_err("dup slug");
    assert!(is_conflict(&dup));
    let orphan =
        store.insert_category(Some(999_999), "x", "x", CategoryFlags::default(), NOW_MS).await.expect_err("orphan");
    assert!(matches!(orphan, StoreError::NotFound), "{orphan:?}");
    let all: Vec<i64> = store.categories().await.expect("all").iter().map(|c| c.id).collect();
    assert_eq!(all, vec![food.id, produce.id], "parents before children");
}

async fn merchants_keep_categories_and_qualification(store: &Store) {
    let (id, root, leaf) = shop(store, "延吉米铺", "222401", "pending").await;
    let merchant = store.merchant(id).await.expect("load").expect("exists");
    assert_eq!((merchant.category_ids.clone(), merchant.qualification.as_str()), (vec![leaf], "pending"));
    let mut tx = store.begin().await.expect("begin");
    tx.set_merchant_categories(id, &[root, leaf, leaf]).await.expect("set categories");
    tx.set_qualification(id, "pending", "approved", "", NOW_MS).await.expect("approve");
    tx.commit().await.expect("commit");
    let merchant = store.merchant(id).await.expect("load").expect("exists");
    let mut expected = vec![root, leaf];
    expected.sort_unstable();
    assert_eq!((merchant.category_ids, merchant.qualification.as_str()), (expected, "approved"));
    let pending = MerchantFilter { qualification: Some("pending".into()), after_id: None, limit: 10 };
    assert!(store.merchants(&pending).await.expect("list").is_empty());
    let owner = user(store, "dup@example.com", "consumer").await;
    let dup = NewMerchant {
        shop_name: "延吉米铺",
        region_code: "222401",
        qualification: "pending",
        owner_user_id: owner,
        category_ids: &[],
        now_ms: NOW_MS,
    };
    let mut tx = store.begin().await.expect("begin");
    assert!(is_conflict(&tx.insert_merchant(&dup).await.expect_err("dup shop name")));
}

async fn qualification_decisions_race_to_one_winner(store: &Store) {
    let (id, _, _) = shop(store, "race", "110000", "pending").await;
    let decide = |to: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await?;
            tx.set_qualification(id, "pending", to, "", NOW_MS).await?;
            tx.commit().await
        })
    };
    let (a, b) = (decide("approved"), decide("rejected"));
    let results = [a.await.expect("join"), b.await.expect("join")];
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().any(|r| matches!(r, Err(StoreError::Concurrent))));
}

async fn sku_prices_append_to_history(store: &Store) {
    let (merchant, _, leaf) = shop(store, "prices", "222400", "approved").await;
    let actor = user(store, "staff@example.com", "consumer").await;
    let mut tx = store.begin().await.expect("begin");
    let product = tx
        .insert_product(merchant, &content(leaf, "延边大米", "222400", OriginTags::default(), &[]), NOW_MS)
        .await
        .expect("product");
    let spec = vec![("规格".to_owned(), "5kg".to_owned())];
    let sku = tx
        .insert_sku(
            product,
            &SkuValues { spec: &spec, price_fen: 5990, stock: Some(100), weight_g: 5000 },
            change(Some(actor), "initial price", NOW_MS),
        )
        .await
        .expect("sku");
    tx.commit().await.expect("commit");
    let before = store.product(product).await.expect("load").expect("exists");
    assert_eq!((before.min_price_fen, before.version), (5990, 2));

    let mut tx = store.begin().await.expect("begin");
    tx.update_sku(
        sku.id,
        &SkuValues { spec: &spec, price_fen: 5990, stock: Some(80), weight_g: 5000 },
        change(Some(actor), "restock", NOW_MS + 1),
    )
    .await
    .expect("stock only");
    tx.update_sku(
        sku.id,
        &SkuValues { spec: &spec, price_fen: 4990, stock: Some(80), weight_g: 5000 },
        change(Some(actor), "双11", NOW_MS + 2),
    )
    .await
    .expect("price cut");
    tx.commit().await.expect("commit");

    let history = store.price_history(sku.id, None, 10).await.expect("history");
    let seen: Vec<_> = history
        .iter()
        .map(|h| (h.old_price_fen, h.new_price_fen, h.changed_at_ms, h.reason.as_str(), h.actor_user_id))
        .collect();
    assert_eq!(
        seen,
        vec![(None, 5990, NOW_MS, "initial price", Some(actor)), (Some(5990), 4990, NOW_MS + 2, "双11", Some(actor))]
    );
    let after = store.product(product).await.expect("load").expect("exists");
    assert_eq!((after.min_price_fen, after.version), (4990, 3), "a stock change leaves the version alone");
    assert_eq!(store.sku(sku.id).await.expect("sku").map(|s| s.stock), Some(80));
    let page = store.price_history(sku.id, Some(history[0].id), 10).await.expect("page");
    assert_eq!(page.len(), 1);
    let mut tx = store.begin().await.expect("begin");
    let missing = tx
        .update_sku(
            sku.id + 999,
            &SkuValues { spec: &spec, price_fen: 1, stock: Some(1), weight_g: 1 },
            change(None, "x", NOW_MS),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

async fn product_edits_compare_and_set(store: &Store) {
    let (merchant, _, leaf) = shop(store, "edits", "320500", "approved").await;
    let id = listed(store, merchant, leaf, "苏绣团扇", "320500", OriginTags::default(), 29900).await;
    let product = store.product(id).await.expect("load").expect("exists");
    let images = vec!["https://img.example.com/1.jpg".to_owned()];
    let tags = OriginTags { intangible_heritage: true, ..OriginTags::default() };
    let edited = content(leaf, "苏绣双面绣团扇", "320500", tags, &images);
    let mut tx = store.begin().await.expect("begin");
    tx.update_product_content(id, product.version, &edited, "pending_review", NOW_MS + 5).await.expect("edit");
    let stale = tx.update_product_content(id, product.version, &edited, "pending_review", NOW_MS + 6).await;
    assert!(matches!(stale, Err(StoreError::Concurrent)), "{stale:?}");
    let wrong_from = tx.transition_product(id, "listed", "delisted", change(None, "x", NOW_MS)).await;
    assert!(matches!(wrong_from, Err(StoreError::Concurrent)), "{wrong_from:?}");
    tx.transition_product(id, "pending_review", "listed", change(None, "looks right", NOW_MS + 7))
        .await
        .expect("approve");
    tx.commit().await.expect("commit");
    let after = store.product(id).await.expect("load").expect("exists");
    assert_eq!(
        (after.title.as_str(), after.status.as_str(), after.version),
        ("苏绣双面绣团扇", "listed", product.version + 1)
    );
    assert_eq!((after.image_urls.clone(), after.tags), (images, tags));
    let log: Vec<_> = store
        .product_status_log(id)
        .await
        .expect("log")
        .into_iter()
        .map(|c| (c.from_status, c.to_status, c.reason))
        .collect();
    assert_eq!(
        log,
        vec![
            ("draft".into(), "listed".into(), "seed".into()),
            ("pending_review".into(), "listed".into(), "looks right".into())
        ]
    );
}

fn query(sort: ProductSort) -> ProductQuery {
    ProductQuery {
        statuses: vec!["listed".into()],
        approved_merchants_only: true,
        merchant_id: None,
        category_path: None,
        tag: None,
        region_prefix: None,
        min_price_fen: None,
        max_price_fen: None,
        text: None,
        sort,
        after: None,
        limit: 100,
    }
}

async fn titles(store: &Store, query: &ProductQuery) -> Vec<String> {
    store.list_products(query).await.expect("list").into_iter().map(|p| p.title).collect()
}

async fn listing_filters_sorts_and_pages(store: &Store) {
    let farm = OriginTags { farm_specialty: true, ..OriginTags::default() };
    let (yanbian, food, rice) = shop(store, "yanbian", "222401", "approved").await;
    let (suzhou, _, craft) = shop(store, "suzhou", "320500", "approved").await;
    let (pending, _, other) = shop(store, "pending", "110000", "pending").await;
    listed(store, yanbian, rice, "延边大米", "222401", farm, 5990).await;
    listed(store, yanbian, rice, "辣白菜", "222405", farm, 2990).await;
    listed(store, suzhou, craft, "苏绣", "320500", OriginTags::default(), 99900).await;
    listed(store, pending, other, "hidden", "110000", farm, 100).await;
    let mut tx = store.begin().await.expect("begin");
    tx.insert_product(yanbian, &content(rice, "draft rice", "222401", farm, &[]), NOW_MS).await.expect("draft");
    tx.commit().await.expect("commit");

    let check = |q: ProductQuery, expected: &'static [&'static str]| async move {
        assert_eq!(titles(store, &q).await, expected, "{q:?}");
    };
    check(query(ProductSort::Newest), &["苏绣", "辣白菜", "延边大米"]).await;
    check(query(ProductSort::PriceAsc), &["辣白菜", "延边大米", "苏绣"]).await;
    check(query(ProductSort::PriceDesc), &["苏绣", "延边大米", "辣白菜"]).await;
    check(
        ProductQuery { tag: Some(ListingTag::FarmSpecialty), ..query(ProductSort::PriceAsc) },
        &["辣白菜", "延边大米"],
    )
    .await;
    check(ProductQuery { region_prefix: Some("2224".into()), ..query(ProductSort::PriceAsc) }, &["辣白菜", "延边大米"])
        .await;
    check(ProductQuery { region_prefix: Some("222401".into()), ..query(ProductSort::PriceAsc) }, &["延边大米"]).await;
    let food_path = store.category(food).await.expect("cat").expect("exists").path;
    check(ProductQuery { category_path: Some(food_path), ..query(ProductSort::PriceAsc) }, &["辣白菜", "延边大米"])
        .await;
    check(ProductQuery { merchant_id: Some(suzhou), ..query(ProductSort::PriceAsc) }, &["苏绣"]).await;
    check(
        ProductQuery { min_price_fen: Some(3000), max_price_fen: Some(99900), ..query(ProductSort::PriceAsc) },
        &["延边大米", "苏绣"],
    )
    .await;
    check(ProductQuery { text: Some("大米".into()), ..query(ProductSort::PriceAsc) }, &["延边大米"]).await;
    let any_status = ProductQuery {
        statuses: vec![],
        approved_merchants_only: false,
        merchant_id: Some(yanbian),
        ..query(ProductSort::Newest)
    };
    check(any_status, &["draft rice", "辣白菜", "延边大米"]).await;
    check(ProductQuery { tag: Some(ListingTag::DomesticBrand), ..query(ProductSort::Newest) }, &[]).await;

    // Pages of one item walk every sort order without gaps or repeats.
    for sort in [ProductSort::Newest, ProductSort::PriceAsc, ProductSort::PriceDesc] {
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_products(&ProductQuery { after, limit: 1, ..query(sort) }).await.expect("page");
            let Some(last) = page.last() else { break };
            after = Some((last.min_price_fen, last.id));
            walked.push(last.title.clone());
        }
        assert_eq!(walked, titles(store, &query(sort)).await, "{sort:?}");
    }
}

async fn listing_text_matches_literally(store: &Store) {
    let (merchant, _, leaf) = shop(store, "literal", "330100", "approved").await;
    listed(store, merchant, leaf, "100% 纯棉 T恤", "330100", OriginTags::default(), 5990).await;
    listed(store, merchant, leaf, "1000 纯棉 T恤", "330100", OriginTags::default(), 5990).await;
    listed(store, merchant, leaf, "Cotton_Shirt", "330100", OriginTags::default(), 5990).await;
    let q = |text: &str| ProductQuery { text: Some(text.into()), ..query(ProductSort::Newest) };
    assert_eq!(titles(store, &q("100%")).await, vec!["100% 纯棉 T恤"]);
    assert_eq!(titles(store, &q("cotton_")).await, vec!["Cotton_Shirt"]);
    assert_eq!(titles(store, &q("t恤")).await.len(), 2, "case-insensitive");
}

async fn dropped_transaction_leaves_nothing(store: &Store) {
    {
        let mut tx = store.begin().await.expect("begin");
        tx.insert_brand("半途", true, NOW_MS).await.expect("brand");
        tx.insert_setting("marker", "x").await.expect("setting");
    }
    assert!(store.brands(None, 10).await.expect("brands").is_empty());
    assert_eq!(store.setting("marker").await.expect("setting"), None);
    let mut tx = store.begin().await.expect("begin");
    tx.insert_setting("marker", "x").await.expect("setting");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert!(is_conflict(&tx.insert_setting("marker", "y").await.expect_err("set twice")));
}

async fn concurrent_reservations_never_oversell(store: &Store) {
    let (merchant, _, leaf) = shop(store, "rush", "222401", "approved").await;
    let product = listed(store, merchant, leaf, "秒杀米", "222401", OriginTags::default(), 100).await;
    let sku = store.skus(product).await.expect("skus")[0].id;
    let mut tx = store.begin().await.expect("begin");
    let spec = vec![("规格".to_owned(), "1件".to_owned())];
    tx.update_sku(
        sku,
        &SkuValues { spec: &spec, price_fen: 100, stock: Some(7), weight_g: 500 },
        change(None, "restock", NOW_MS),
    )
    .await
    .expect("set stock");
    tx.commit().await.expect("commit");
    let mut tasks = Vec::new();
    for user in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await?;
            if !tx.reserve_stock(sku, 1).await? {
                return Ok::<bool, StoreError>(false);
            }
            tx.add_purchase(user, sku, 1).await?;
            tx.commit().await?;
            Ok(true)
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.expect("join").expect("reserve") {
            won += 1;
        }
    }
    let left = store.sku(sku).await.expect("sku").expect("exists").stock;
    assert_eq!((won, left), (7, 0), "sold + stock = initial, never more than there was");
}

async fn coupon_claims_hold_quantity_and_limits_in_the_store(store: &Store) {
    use xingqu_store::coupons::{NewClaim, NewCoupon};
    let operator = user(store, "op@coupons.test", "operator").await;
    let buyers = [user(store, "a@coupons.test", "consumer").await, user(store, "b@coupons.test", "consumer").await];
    let mut tx = store.begin().await.expect("begin");
    let coupon = tx
        .insert_coupon(&NewCoupon {
            class: "platform",
            merchant_id: None,
            creator_user_id: None,
            title: "券".to_owned(),
            kind: "money_off",
            threshold_fen: 0,
            off_fen: 500,
            percent_bps: 0,
            cap_fen: 0,
            price_fen: 0,
            product_ids: String::new(),
            combines_with: String::new(),
            claim_starts_at_ms: NOW_MS,
            claim_ends_at_ms: NOW_MS + 1_000,
            valid_from_ms: None,
            valid_until_ms: None,
            valid_days: Some(1),
            quantity: 2,
            per_user_limit: 1,
            budget_fen: Some(700),
            pool_split: None,
            created_by: operator,
            now_ms: NOW_MS,
        })
        .await
        .expect("coupon");
    tx.commit().await.expect("commit");
    let claim = |id: i64, user_id: i64, seq: i64| NewClaim {
        id,
        coupon_id: coupon.id,
        user_id,
        seq,
        idempotency_key: None,
        off_fen: None,
        claimed_at_ms: NOW_MS,
        valid_from_ms: NOW_MS,
        valid_until_ms: NOW_MS + 86_400_000,
    };
    let group = |claims: Vec<NewClaim>| {
        let store = store.clone();
        let count = claims.len() as i64;
        async move {
            let mut tx = store.begin().await?;
            tx.insert_claim_group(&claims, &[(coupon.id, count)]).await?;
            tx.commit().await
        }
    };
    // The same buyer's first claim twice: the unique (coupon, user, seq) refuses the group whole.
    let twice = group(vec![claim(1, buyers[0], 1), claim(2, buyers[0], 1)]).await;
    assert!(twice.as_ref().is_err_and(is_conflict), "{twice:?}");
    // Three claims of a coupon of two: the quantity CHECK refuses the group whole.
    let over = group(vec![claim(3, buyers[0], 1), claim(4, buyers[1], 1), claim(5, buyers[1], 2)]).await;
    assert!(matches!(over, Err(StoreError::Constraint)), "{over:?}");
    group(vec![claim(6, buyers[0], 1), claim(7, buyers[1], 1)]).await.expect("two claims fit");
    let stored = store.claim_state(coupon.id).await.expect("claims");
    assert_eq!((stored.len(), store.coupon(coupon.id).await.expect("coupon").expect("exists").claimed), (2, 2));
    // The budget moves only by guarded updates: 500 fits in 700, another 500 does not.
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.use_budget(coupon.id, 500).await.expect("use"));
    assert!(!tx.use_budget(coupon.id, 500).await.expect("use"));
    tx.return_budget(coupon.id, 500).await.expect("return");
    assert!(tx.lock_claim(6, buyers[0], 42).await.expect("lock"));
    assert!(!tx.lock_claim(6, buyers[0], 43).await.expect("lock twice"), "a claim locks to one checkout");
    assert!(!tx.lock_claim(7, buyers[0], 42).await.expect("foreign"), "another buyer's claim does not lock");
    assert_eq!(tx.release_claims(42).await.expect("release"), 1);
    tx.commit().await.expect("commit");
    assert_eq!(store.wallet(buyers[0], NOW_MS, 50).await.expect("wallet").len(), 1);
}

/// The sweep's set-based SQL against `ProtectedLine::due_fen`, over lines of every shape (several
/// units, some refunded, compensation paid, cancelled, outside the window), in small batches, for a
/// first drop and a deeper second one (which deducts what the first paid); a re-run pays nothing.
async fn protection_sweeps_pay_what_the_domain_rule_says_once(store: &Store) {
    use std::collections::BTreeMap;
    use xingqu_domain::price_protection::ProtectedLine;
    use xingqu_domain::rng::SplitMix64;
    use xingqu_store::orders::{NewCheckout, NewLine, NewOrder, OrderChanges};
    use xingqu_store::price_protection::{PendingSweep, ProtectionPolicy};

    const DAY_MS: i64 = 86_400_000;
    let (merchant, _, leaf) = shop(store, "价保店", "440300", "approved").await;
    let product = listed(store, merchant, leaf, "电热水壶", "440300", OriginTags::default(), 10_000).await;
    let sku = store.skus(product).await.expect("skus")[0].id;
    let buyer = user(store, "buyer@protect.test", "consumer").await;
    let mut tx = store.begin().await.expect("begin");
    let policy = ProtectionPolicy { window_days: 30, from: "placement".to_owned(), auto: true, platform_bps: 2_500 };
    tx.set_protection_policy(sku, &policy).await.expect("policy");
    let mut mix = SplitMix64::new(7);
    let mut expected_lines = BTreeMap::new();
    for n in 1..=60_i64 {
        let quantity = 1 + mix.below(4) as i64;
        let paid_fen = quantity * 10_000 - mix.below(3_000) as i64;
        let merchant_net_fen = paid_fen + mix.below(2_000) as i64;
        let placed_ms = if n % 11 == 0 { NOW_MS - 40 * DAY_MS } else { NOW_MS - DAY_MS };
        let (order_id, line_id) = (1_000 + n, 2_000 + n);
        tx.insert_checkouts(&[NewCheckout {
            id: order_id,
            buyer_user_id: buyer,
            idempotency_key: format!("k{n}"),
            request_sha256: String::new(),
            total_fen: paid_fen,
            created_at_ms: placed_ms,
        }])
        .await
        .expect("checkout");
        tx.insert_orders(&[NewOrder {
            id: order_id,
            checkout_id: order_id,
            buyer_user_id: buyer,
            merchant_id: merchant,
            trade_type: "normal",
            flash_sale_id: None,
            goods_list_fen: paid_fen,
            discount_fen: 0,
            shipping_fen: 0,
            total_fen: paid_fen,
            address: "{}".to_owned(),
            dispatch_promise: "none",
            created_at_ms: placed_ms,
            expires_at_ms: placed_ms + 900_000,
        }])
        .await
        .expect("order");
        tx.insert_lines(&[NewLine {
            id: line_id,
            order_id,
            sku_id: sku,
            product_id: product,
            product_version: 1,
            title: "电热水壶".to_owned(),
            spec: "{}".to_owned(),
            unit_price_fen: 10_000,
            quantity,
            list_total_fen: quantity * 10_000,
            discount_fen: quantity * 10_000 - paid_fen,
            paid_fen,
            discounts: "[]".to_owned(),
            commission_bps: 500,
            dispatch_promise: "none",
            flash_sale_id: None,
            merchant_net_fen,
            protect_window_days: 30,
            protect_from: "placement".to_owned(),
            services: "[]".to_owned(),
            insurance_premium_fen: 0,
            insurance_cap_fen: 0,
            unsealed_no_return_confirmed: false,
        }])
        .await
        .expect("line");
        let paid = OrderChanges { paid_fen: Some(paid_fen), paid_at_ms: Some(placed_ms), ..OrderChanges::default() };
        tx.transition_order(order_id, "created", "paid", &paid, change(None, "paid", placed_ms)).await.expect("pay");
        if n % 7 == 0 {
            let closed = OrderChanges { closed_at_ms: Some(placed_ms), ..OrderChanges::default() };
            tx.transition_order(order_id, "paid", "cancelled", &closed, change(None, "cancel", placed_ms))
                .await
                .expect("cancel");
            continue;
        }
        let shipped = OrderChanges { shipped_at_ms: Some(placed_ms), ..OrderChanges::default() };
        tx.transition_order(order_id, "paid", "shipped", &shipped, change(None, "ship", placed_ms))
            .await
            .expect("ship");
        // Some lines had units refunded (for their share, or less) or compensation paid.
        let returned = if n % 3 == 0 { mix.below(quantity as usize) as i64 } else { 0 };
        let share = paid_fen * returned / quantity;
        let refunded = if returned > 0 { share - mix.below(50) as i64 } else { 0 };
        let compensation = if n % 5 == 0 { mix.below(500) as i64 } else { 0 };
        tx.add_line_paid_back(line_id, refunded.max(0), returned, compensation).await.expect("paid back");
        if n % 11 != 0 {
            expected_lines.insert(
                line_id,
                ProtectedLine {
                    quantity,
                    returned_units: returned,
                    merchant_net_fen,
                    paid_fen,
                    refunded_fen: refunded.max(0),
                    protection_fen: 0,
                    compensation_fen: compensation,
                },
            );
        }
    }
    tx.commit().await.expect("commit");

    for (cut_fen, label) in [(9_000, "first drop"), (7_500, "deeper drop")] {
        let mut tx = store.begin().await.expect("begin");
        let spec = vec![("规格".to_owned(), "5kg".to_owned())];
        tx.update_sku(
            sku,
            &SkuValues { spec: &spec, price_fen: cut_fen, stock: None, weight_g: 500 },
            change(None, label, NOW_MS),
        )
        .await
        .expect("cut");
        let drop = tx.latest_price_change(sku).await.expect("read").expect("the cut");
        tx.queue_protection_sweep(&drop, NOW_MS).await.expect("queue");
        tx.commit().await.expect("commit");
        for rerun in [false, true] {
            if rerun {
                let mut tx = store.begin().await.expect("begin");
                assert!(tx.restart_protection_sweep(drop.id).await.expect("restart"));
                tx.commit().await.expect("commit");
            }
            let mut sweep =
                PendingSweep { drop: drop.clone(), flash_sale_id: 0, after_line_id: 0, platform_bps: 2_500 };
            let mut paid = 0;
            loop {
                let mut tx = store.begin().await.expect("begin");
                let batch = tx.sweep_protection_batch(&sweep, 7, NOW_MS).await.expect("batch");
                tx.commit().await.expect("commit");
                paid += batch.refunds;
                if !batch.more {
                    break;
                }
                sweep.after_line_id = batch.after_line_id;
            }
            let stored: BTreeMap<i64, (i64, i64, i64)> = store
                .protections_for_drop(drop.id)
                .await
                .expect("protections")
                .into_iter()
                .map(|a| (a.line_id, (a.amount_fen, a.merchant_fen(), a.platform_fen)))
                .collect();
            let expected: BTreeMap<i64, i64> = expected_lines
                .iter()
                .map(|(&line, l)| (line, l.due_fen(cut_fen)))
                .filter(|&(_, due)| due > 0)
                .collect();
            assert!(expected.len() >= 20, "{label}: most lines are owed something");
            assert_eq!(
                stored.iter().map(|(&line, &(amount, _, _))| (line, amount)).collect::<BTreeMap<_, _>>(),
                expected,
                "{label}: the store pays what the rule says"
            );
            for (amount, merchant_fen, platform_fen) in stored.values() {
                assert_eq!(*platform_fen, amount * 2_500 / 10_000);
                assert_eq!(merchant_fen + platform_fen, *amount);
            }
            assert_eq!(paid, if rerun { 0 } else { expected.len() as i64 }, "{label}: each line once");
        }
        for (line, l) in expected_lines.iter_mut() {
            let lines = store.lines(1_000 + line - 2_000).await.expect("lines");
            l.protection_fen = lines[0].protection_fen;
        }
    }
    let report = store.check_ledger().await.expect("check");
    assert!(report.violations.iter().all(|v| !v.contains("summing")), "{:?}", report.violations);
}

/// A paid order of one line (`id` is the order's and, plus 1, the line's), in its own transaction.
async fn paid_line(store: &Store, id: i64, merchant: i64, product: i64, buyer: i64, paid_fen: i64, paid_at_ms: i64) {
    use xingqu_store::orders::{NewCheckout, NewLine, NewOrder, OrderChanges};
    let sku = store.skus(product).await.expect("skus")[0].id;
    let mut tx = store.begin().await.expect("begin");
    let checkout = NewCheckout {
        id,
        buyer_user_id: buyer,
        idempotency_key: format!("k{id}"),
        request_sha256: String::new(),
        total_fen: paid_fen,
        created_at_ms: paid_at_ms,
    };
    tx.insert_checkouts(&[checkout]).await.expect("checkout");
    let order = NewOrder {
        id,
        checkout_id: id,
        buyer_user_id: buyer,
        merchant_id: merchant,
        trade_type: "normal",
        flash_sale_id: None,
        goods_list_fen: paid_fen,
        discount_fen: 0,
        shipping_fen: 0,
        total_fen: paid_fen,
        address: "{}".to_owned(),
        dispatch_promise: "none",
        created_at_ms: paid_at_ms,
        expires_at_ms: paid_at_ms + 900_000,
    };
    tx.insert_orders(&[order]).await.expect("order");
    let line = NewLine {
        id: id + 1,
        order_id: id,
        sku_id: sku,
        product_id: product,
        product_version: 1,
        title: "t".to_owned(),
        spec: "{}".to_owned(),
        unit_price_fen: paid_fen,
        quantity: 1,
        list_total_fen: paid_fen,
        discount_fen: 0,
        paid_fen,
        discounts: "[]".to_owned(),
        commission_bps: 500,
        dispatch_promise: "none",
        flash_sale_id: None,
        merchant_net_fen: paid_fen,
        protect_window_days: 0,
        protect_from: "placement".to_owned(),
        services: "[]".to_owned(),
        insurance_premium_fen: 0,
        insurance_cap_fen: 0,
        unsealed_no_return_confirmed: false,
    };
    tx.insert_lines(&[line]).await.expect("line");
    let paid = OrderChanges { paid_fen: Some(paid_fen), paid_at_ms: Some(paid_at_ms), ..OrderChanges::default() };
    tx.transition_order(id, "created", "paid", &paid, change(None, "paid", paid_at_ms)).await.expect("pay");
    tx.commit().await.expect("commit");
}

/// Quality GMV's classes: each line counts once, under the first of brushing, banned, sanctioned;
/// an `ok` line gives back its refunds and compensation, or all of it when its order was
/// cancelled after payment; the window is `[from, to)`.
async fn analytics_class_each_line_once(store: &Store) {
    use xingqu_store::analytics::GmvTotals;
    use xingqu_store::orders::OrderChanges;
    let (good, _, leaf) = shop(store, "好店", "222401", "approved").await;
    let (sanctioned, _, sanctioned_leaf) = shop(store, "停业店", "330100", "rejected").await;
    let tags = OriginTags::default();
    let rice = listed(store, good, leaf, "大米", "222401", tags, 1_000).await;
    let fake = listed(store, good, leaf, "假货", "222401", tags, 1_000).await;
    let tea = listed(store, sanctioned, sanctioned_leaf, "茶", "330100", tags, 1_000).await;
    let buyer = user(store, "buyer@analytics.test", "consumer").await;
    let t = NOW_MS;
    paid_line(store, 100, good, rice, buyer, 1_000, t).await; // ok, partly refunded and compensated
    paid_line(store, 110, good, rice, buyer, 2_000, t + 1).await; // ok, cancelled after payment
    paid_line(store, 120, good, fake, buyer, 4_000, t + 2).await; // banned (and refunded: not twice)
    paid_line(store, 130, sanctioned, tea, buyer, 8_000, t + 3).await; // sanctioned seller
    paid_line(store, 140, sanctioned, tea, buyer, 16_000, t + 4).await; // brushing beats sanctioned
    paid_line(store, 150, good, rice, buyer, 32_000, t + 10).await; // paid at `to`: outside
    paid_line(store, 160, good, rice, buyer, 64_000, t - 1).await; // before `from`: outside
    let mut tx = store.begin().await.expect("begin");
    tx.add_line_paid_back(101, 300, 0, 200).await.expect("refund");
    tx.add_line_paid_back(121, 4_000, 1, 0).await.expect("refund");
    let closed = OrderChanges { closed_at_ms: Some(t + 5), ..OrderChanges::default() };
    tx.transition_order(110, "paid", "cancelled", &closed, change(None, "cancel", t + 5)).await.expect("cancel");
    tx.transition_product(fake, "listed", "banned", change(None, "counterfeit", t + 6)).await.expect("ban");
    tx.commit().await.expect("commit");
    store.flag_brushing(140, tea_sku(store, tea).await, "velocity", t + 4).await.expect("flag");
    store.flag_brushing(140, tea_sku(store, tea).await, "address_cluster", t + 4).await.expect("flag again");

    let all = store.gmv_totals(None, t, t + 10).await.expect("totals");
    assert_eq!(
        all,
        GmvTotals {
            orders: 5,
            gmv_fen: 31_000,
            quality_gmv_fen: 500,
            refunds_fen: 2_500,
            banned_fen: 4_000,
            sanctioned_fen: 8_000,
            brushing_fen: 16_000,
        }
    );
    assert_eq!(
        all.gmv_fen - all.refunds_fen - all.banned_fen - all.sanctioned_fen - all.brushing_fen,
        all.quality_gmv_fen
    );
    let good_only = store.gmv_totals(Some(good), t, t + 10).await.expect("totals");
    assert_eq!((good_only.gmv_fen, good_only.quality_gmv_fen, good_only.brushing_fen), (7_000, 500, 0));
    let series = store.gmv_series(None, t - 5, t + 10, 5).await.expect("series");
    let buckets: Vec<(i64, i64, i64)> = series.iter().map(|b| (b.bucket, b.gmv_fen, b.quality_gmv_fen)).collect();
    assert_eq!(buckets, vec![(0, 64_000, 64_000), (1, 31_000, 500)], "[t-5, t) holds the early order");
    let flagged = store.flagged_lines(t).await.expect("flagged");
    assert_eq!(flagged.len(), 1);
    assert_eq!((flagged[0].order_id, flagged[0].paid_fen, flagged[0].rule.as_str()), (140, 16_000, "velocity"));
}

async fn tea_sku(store: &Store, product: i64) -> i64 {
    store.skus(product).await.expect("skus")[0].id
}

/// One process sells from a SQLite database's flash-sale pools: the one holding its journal. A
/// second store opened on the same file cannot, until the first lets the journal go.
#[tokio::test]
async fn one_store_owns_a_sqlite_flash_journal() {
    let db = xingqu_store::testing::TestDb::sqlite().await;
    assert!(db.store.journalled() && !db.store.flash_pools_elsewhere());
    let second = xingqu_store::connect(&db.url).await.expect("open");
    second.migrate().await.expect("migrate");
    assert!(second.flash_pools_elsewhere() && !second.journalled());
    let empty = xingqu_store::orders::FlashGroup {
        checkouts: &[],
        orders: &[],
        lines: &[],
        takes: &[],
        holdings: &[],
        encoded: &[],
    };
    assert!(matches!(second.commit_flash_group(&empty).await, Err(StoreError::FlashPoolsElsewhere)));
    let mut tx = second.begin().await.expect("begin");
    assert!(matches!(tx.take_flash_units(1, 1).await, Err(StoreError::FlashPoolsElsewhere)));
    drop(tx);
    second.close().await;

    db.store.close().await;
    let third = xingqu_store::connect(&db.url).await.expect("open");
    third.migrate().await.expect("migrate");
    assert!(third.journalled(), "the journal is free once its owner closed");
    third.close().await;
}
