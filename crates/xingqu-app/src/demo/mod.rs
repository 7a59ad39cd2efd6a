//! The demo marketplace behind `xingqu serve --demo`: a category tree, four demo accounts, and
//! the shops and products of [`data`], seeded deterministically in one transaction, once.

pub mod data;

mod campaign;

use crate::accounts::hash_password;
use crate::{App, AppError, AppResult};
use std::collections::BTreeMap;
use xingqu_domain::account::{Password, Role};
use xingqu_domain::catalog::{CategoryFlags, OriginTags, ProductStatus, Qualification};
use xingqu_domain::rng::SplitMix64;
use xingqu_store::accounts::NewUser;
use xingqu_store::catalog::NewMerchant;
use xingqu_store::orders::NewFlashSale;
use xingqu_store::products::{Change, ProductContent, SkuValues};
use xingqu_store::{StoreError, Tx};

/// Marks a database that holds the demo; bump the suffix if the demo's content changes shape.
const SEED_MARKER: &str = "demo_seed_v1";
/// The seed every pseudo-random choice derives from, so two demos are identical.
const DEMO_SEED: u64 = 0x5849_4E47_5155_2026;
/// Every demo account's password.
pub const DEMO_PASSWORD: &str = "xingqu-demo";

/// The demo's category tree: slug, name, parent slug, rule flags.
const CATEGORIES: &[(&str, &str, Option<&str>, CategoryFlags)] = {
    const NONE: CategoryFlags =
        CategoryFlags { fresh: false, cosmetics: false, digital: false, custom_made: false, periodical: false };
    const FRESH: CategoryFlags = CategoryFlags { fresh: true, ..NONE };
    const COSMETICS: CategoryFlags = CategoryFlags { cosmetics: true, ..NONE };
    const DIGITAL: CategoryFlags = CategoryFlags { digital: true, ..NONE };
    const CUSTOM: CategoryFlags = CategoryFlags { custom_made: true, ..NONE };
    const PERIODICAL: CategoryFlags = CategoryFlags { periodical: true, ..NONE };
    &[
        ("food", "食品生鲜", None, NONE),
        ("rice-grain", "米面粮油", Some("food"), NONE),
        ("fresh-produce", "生鲜果蔬", Some("food"), FRESH),
        ("pickles", "酱菜泡菜", Some("food"), FRESH),
        ("seasoning", "调味品", Some("food"), NONE),
        ("tea", "茶叶", Some("food"), NONE),
        ("snacks", "休闲零食", Some("food"), NONE),
        ("apparel", "服饰鞋靴", None, NONE),
        ("womens", "女装", Some("apparel"), NONE),
        ("mens", "男装", Some("apparel"), NONE),
        ("shoes", "鞋靴", Some("apparel"), NONE),
        ("beauty", "美妆护肤", None, COSMETICS),
        ("skincare", "护肤", Some("beauty"), COSMETICS),
        ("makeup", "彩妆", Some("beauty"), COSMETICS),
        ("crafts", "非遗手作", None, NONE),
        ("embroidery", "刺绣", Some("crafts"), NONE),
        ("silverware", "银饰", Some("crafts"), NONE),
        ("teaware", "紫砂茶具", Some("crafts"), NONE),
        ("custom-crafts", "定制手作", Some("crafts"), CUSTOM),
        ("books-media", "图书音像", None, NONE),
        ("books", "图书", Some("books-media"), NONE),
        ("periodicals", "期刊杂志", Some("books-media"), PERIODICAL),
        ("digital", "数码", None, DIGITAL),
        ("phone-accessories", "手机配件", Some("digital"), DIGITAL),
        ("home", "家居", None, NONE),
        ("kitchen", "厨具", Some("home"), NONE),
        ("home-textiles", "家纺", Some("home"), NONE),
    ]
};

/// What the seed did, for the start-up banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// False when the database already held the demo (nothing was written).
    pub seeded: bool,
    pub merchants: usize,
    pub products: usize,
    pub skus: usize,
    /// Role, e-mail and password of each demo account.
    pub accounts: Vec<(Role, String, &'static str)>,
}

fn demo_accounts() -> Vec<(Role, String, &'static str)> {
    [Role::Operator, Role::MerchantStaff, Role::Creator, Role::Consumer]
        .into_iter()
        .map(|role| {
            let name = match role {
                Role::Operator => "operator",
                Role::MerchantStaff => "merchant",
                Role::Creator => "creator",
                Role::Consumer => "consumer",
            };
            (role, format!("{name}@xingqu.demo"), DEMO_PASSWORD)
        })
        .collect()
}

impl App {
    /// Seeds the demo marketplace unless this database already holds it. All or nothing: one
    /// transaction, guarded by a marker row, so running it twice (or twice at once) seeds once.
    pub async fn seed_demo(&self) -> AppResult<SeedReport> {
        let accounts = demo_accounts();
        let merchants = data::MERCHANTS.len();
        let products = data::MERCHANTS.iter().map(|m| m.products.len()).sum();
        let skus = data::MERCHANTS.iter().flat_map(|m| m.products).map(|p| p.skus.len()).sum();
        let report = |seeded| SeedReport { seeded, merchants, products, skus, accounts: accounts.clone() };
        if self.store().setting(SEED_MARKER).await?.is_some() {
            return Ok(report(false));
        }
        // Hash before the transaction: it is slow, and the transaction holds SQLite's writer.
        let password_hash = hash_password(Password::parse(DEMO_PASSWORD)?).await?;
        let mut tx = self.store().begin().await?;
        if tx.setting(SEED_MARKER).await?.is_some() {
            return Ok(report(false));
        }
        self.seed_into(&mut tx, &password_hash, &accounts).await.map_err(|e| match e {
            AppError::Internal(inner) => AppError::internal(format!("demo seed failed: {inner}")),
            other => other,
        })?;
        match tx.insert_setting(SEED_MARKER, "1").await {
            // Another process seeded meanwhile; ours rolls back.
            Err(StoreError::Conflict { .. }) => return Ok(report(false)),
            other => other?,
        }
        tx.commit().await?;
        Ok(report(true))
    }

    async fn seed_into(
        &self,
        tx: &mut Tx,
        password_hash: &str,
        accounts: &[(Role, String, &'static str)],
    ) -> AppResult<()> {
        let now_ms = self.now_ms();
        let mut rng = SplitMix64::new(DEMO_SEED);
        let mut user_ids = BTreeMap::new();
        for (role, email, _) in accounts {
            let display_name = email.split('@').next().unwrap_or("demo");
            // The demo merchant account becomes staff of the first shop below.
            let stored_role = if *role == Role::MerchantStaff { Role::Consumer } else { *role };
            let user =
                NewUser { email, password_hash, display_name, role: stored_role.as_str(), merchant_id: None, now_ms };
            user_ids.insert(*role, tx.insert_user(&user).await?.id);
        }

        let mut category_ids: BTreeMap<&str, i64> = BTreeMap::new();
        for &(slug, name, parent, flags) in CATEGORIES {
            let parent_id = parent.and_then(|p| category_ids.get(p).copied());
            category_ids.insert(slug, tx.insert_category(parent_id, slug, name, flags, now_ms).await?.id);
        }
        let category = |slug: &str| {
            category_ids
                .get(slug)
                .copied()
                .ok_or_else(|| AppError::internal(format!("demo data names unknown category {slug}")))
        };

        let mut brand_ids: BTreeMap<&str, i64> = BTreeMap::new();
        let n_products: usize = data::MERCHANTS.iter().map(|m| m.products.len()).sum();
        let mut product_index = 0usize;
        let mut flash_sale: Option<i64> = None;
        let mut first_shop: Option<i64> = None;
        let mut first_shop_skus = Vec::new();
        let mut seeded = Vec::new();
        for (index, merchant) in data::MERCHANTS.iter().enumerate() {
            let owner_id = match index {
                0 => user_ids
                    .get(&Role::MerchantStaff)
                    .copied()
                    .ok_or_else(|| AppError::internal("no demo merchant account"))?,
                _ => {
                    let email = format!("shop{:03}@xingqu.demo", index + 1);
                    let owner = NewUser {
                        email: &email,
                        password_hash,
                        display_name: merchant.shop_name,
                        role: "consumer",
                        merchant_id: None,
                        now_ms,
                    };
                    tx.insert_user(&owner).await?.id
                }
            };
            let mut served: Vec<i64> =
                merchant.products.iter().map(|p| category(p.category)).collect::<AppResult<_>>()?;
            served.sort_unstable();
            served.dedup();
            let new = NewMerchant {
                shop_name: merchant.shop_name,
                region_code: merchant.region_code,
                qualification: Qualification::Approved.as_str(),
                owner_user_id: owner_id,
                category_ids: &served,
                now_ms,
            };
            let merchant_id = tx.insert_merchant(&new).await?.id;
            first_shop.get_or_insert(merchant_id);
            tx.make_merchant_staff(owner_id, merchant_id).await?;
            let brand_id = match merchant.brand {
                None => None,
                Some(brand) => Some(match brand_ids.get(brand.name) {
                    Some(&id) => id,
                    None => {
                        let id = tx.insert_brand(brand.name, brand.domestic_brand, now_ms).await?.id;
                        brand_ids.insert(brand.name, id);
                        id
                    }
                }),
            };
            for product in merchant.products {
                // Spread creation over the last 90 days, oldest first, so "newest" means something.
                let age_ms = ((n_products - product_index) as i64) * 3_600_000 * 3 + rng.below(3_600_000) as i64;
                product_index += 1;
                let created_ms = now_ms - age_ms;
                let images = vec![format!("https://img.xingqu.demo/products/{product_index:04}.jpg")];
                let content = ProductContent {
                    category_id: category(product.category)?,
                    brand_id,
                    title: product.title,
                    description: product.description,
                    image_urls: &images,
                    tags: OriginTags {
                        farm_specialty: product.farm_specialty,
                        geographic_indication: product.geographic_indication,
                        intangible_heritage: product.intangible_heritage,
                    },
                    origin_region_code: merchant.region_code,
                };
                let product_id = tx.insert_product(merchant_id, &content, created_ms).await?;
                let tags = xingqu_domain::catalog::ListingTag::of(
                    content.tags,
                    merchant.brand.is_some_and(|b| b.domestic_brand),
                );
                let mut first_sku = None;
                for sku in product.skus {
                    let spec: Vec<(String, String)> =
                        sku.spec.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect();
                    // Vary stock by up to ±20% so shops do not look stamped out of one mould.
                    let jitter = sku.stock / 5;
                    let stock = sku.stock - jitter + rng.below((2 * jitter + 1) as usize) as i64;
                    let values =
                        SkuValues { spec: &spec, price_fen: sku.price_fen, stock: Some(stock), weight_g: sku.weight_g };
                    let change = Change { actor_user_id: Some(owner_id), reason: "initial price", now_ms: created_ms };
                    let sku_row = tx.insert_sku(product_id, &values, change).await?;
                    if first_shop == Some(merchant_id) {
                        first_shop_skus.push(sku_row.id);
                    }
                    first_sku.get_or_insert((sku_row.id, sku.price_fen));
                    // The demo's first product goes on a week-long flash sale at 70% of its price.
                    if flash_sale.is_none() {
                        let sale = NewFlashSale {
                            sku_id: sku_row.id,
                            merchant_id,
                            price_fen: sku.price_fen * 7 / 10,
                            starts_at_ms: now_ms,
                            ends_at_ms: now_ms + 7 * 86_400_000,
                            pool_units: 500,
                            per_user_limit: 2,
                            created_by: owner_id,
                            now_ms,
                        };
                        flash_sale = Some(tx.insert_flash_sale(&sale).await?.id);
                    }
                }
                let change = Change {
                    actor_user_id: user_ids.get(&Role::Operator).copied(),
                    reason: "demo seed",
                    now_ms: created_ms,
                };
                tx.transition_product(
                    product_id,
                    ProductStatus::Draft.as_str(),
                    ProductStatus::Listed.as_str(),
                    change,
                )
                .await?;
                if let Some((sku_id, price_fen)) = first_sku {
                    seeded.push(campaign::Seeded {
                        product_id,
                        merchant_id,
                        owner_user_id: owner_id,
                        category_id: category(product.category)?,
                        region_code: merchant.region_code,
                        tags,
                        sku_id,
                        price_fen,
                    });
                }
            }
        }
        let operator = user_ids.get(&Role::Operator).copied().ok_or_else(|| AppError::internal("no demo operator"))?;
        let shop = first_shop.ok_or_else(|| AppError::internal("no demo shop"))?;
        for coupon in demo_coupons(shop, operator, now_ms) {
            tx.insert_coupon(&coupon).await?;
        }
        // The first shop is in 安心购 (the five services and dispatch within 24 hours; insurance
        // premium 0.5 元, cap 10 元) and protects its prices for 30 days, automatically.
        let mut services: Vec<String> = xingqu_domain::assurance::MANDATORY.iter().map(|s| (*s).to_owned()).collect();
        services.push("dispatch_within_24h".to_owned());
        tx.request_enrolment(shop, &services, 50, 1_000, operator, now_ms).await?;
        tx.decide_enrolment(shop, true, operator, "demo seed", now_ms).await?;
        let policy = xingqu_store::price_protection::ProtectionPolicy {
            window_days: 30,
            from: "placement".to_owned(),
            auto: true,
            platform_bps: 0,
        };
        for sku_id in first_shop_skus {
            tx.set_protection_policy(sku_id, &policy).await?;
        }
        let creator = user_ids.get(&Role::Creator).copied().ok_or_else(|| AppError::internal("no demo creator"))?;
        campaign::seed_campaign(tx, operator, creator, &seeded, now_ms).await?;
        Ok(())
    }
}

/// Promotions to try in the demo, open for a week: the platform's 满199减30 (combines with shop
/// coupons), the first shop's 满99减10 (combines with platform coupons and red packets), and a
/// pool of 1,000 red packets of 5 元.
fn demo_coupons(shop: i64, operator: i64, now_ms: i64) -> Vec<xingqu_store::coupons::NewCoupon> {
    let week_ms = 7 * 86_400_000;
    let coupon =
        |class: &'static str, title: &str, threshold_fen: i64, off_fen: i64| xingqu_store::coupons::NewCoupon {
            class,
            merchant_id: (class == "shop").then_some(shop),
            creator_user_id: None,
            title: title.to_owned(),
            kind: if threshold_fen > 0 { "threshold" } else { "money_off" },
            threshold_fen,
            off_fen,
            percent_bps: 0,
            cap_fen: 0,
            price_fen: 0,
            product_ids: String::new(),
            combines_with: String::new(),
            claim_starts_at_ms: now_ms,
            claim_ends_at_ms: now_ms + week_ms,
            valid_from_ms: None,
            valid_until_ms: None,
            valid_days: Some(7),
            quantity: 100_000,
            per_user_limit: 1,
            budget_fen: None,
            pool_split: None,
            created_by: operator,
            now_ms,
        };
    let platform = xingqu_store::coupons::NewCoupon {
        combines_with: "shop,fan".to_owned(),
        budget_fen: Some(100_000_000),
        ..coupon("platform", "双11 平台券 满199减30", 19_900, 3_000)
    };
    let shop_coupon = xingqu_store::coupons::NewCoupon {
        combines_with: "platform,red_packet".to_owned(),
        ..coupon("shop", "延边好物 满99减10", 9_900, 1_000)
    };
    let red_packets = xingqu_store::coupons::NewCoupon {
        combines_with: "shop,fan,platform".to_owned(),
        quantity: 1_000,
        budget_fen: Some(500_000),
        pool_split: Some("fixed;amount_fen=500".to_owned()),
        ..coupon("red_packet", "双11 红包 5 元", 0, 500)
    };
    vec![platform, shop_coupon, red_packets]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use xingqu_domain::catalog::{RegionCode, TITLE_CHARS_MAX};
    use xingqu_domain::money::{PriceFen, Stock, WeightG};

    #[test]
    fn demo_data_follows_the_catalog_rules() {
        let slugs: BTreeSet<&str> = CATEGORIES.iter().map(|c| c.0).collect();
        let parents: BTreeSet<&str> = CATEGORIES.iter().filter_map(|c| c.2).collect();
        let mut titles = BTreeSet::new();
        let mut shops = BTreeSet::new();
        for merchant in data::MERCHANTS {
            assert!(shops.insert(merchant.shop_name), "duplicate shop {}", merchant.shop_name);
            assert!(RegionCode::parse("r", merchant.region_code).is_ok(), "{}", merchant.region_code);
            for product in merchant.products {
                assert!(titles.insert(product.title), "duplicate title {}", product.title);
                assert!(product.title.chars().count() <= TITLE_CHARS_MAX);
                assert!(
                    slugs.contains(product.category) && !parents.contains(product.category),
                    "{}",
                    product.category
                );
                assert!(!product.skus.is_empty(), "{} has no SKU", product.title);
                for sku in product.skus {
                    assert!(PriceFen::parse("p", sku.price_fen).is_ok() && Stock::parse("s", sku.stock).is_ok());
                    assert!(WeightG::parse("w", sku.weight_g).is_ok());
                }
            }
        }
        let products: usize = data::MERCHANTS.iter().map(|m| m.products.len()).sum();
        let yanbian = data::MERCHANTS.iter().filter(|m| m.region_code.starts_with("2224")).count();
        assert!(
            data::MERCHANTS.len() >= 60 && products >= 600 && yanbian >= 5,
            "{} {products} {yanbian}",
            data::MERCHANTS.len()
        );
        assert!(data::MERCHANTS[0].region_code.starts_with("2224"), "the demo merchant account runs a Yanbian shop");
    }

    #[test]
    fn splitmix_is_deterministic() {
        let (mut a, mut b) = (SplitMix64::new(DEMO_SEED), SplitMix64::new(DEMO_SEED));
        assert_eq!((a.next_u64(), a.below(10)), (b.next_u64(), b.below(10)));
    }
}
