//! A flash-sale scenario built straight into the store — an approved shop, a listed product, a
//! flash sale running now, and many signed-in buyers — for `xingqu bench flash-sale` and the
//! crash test. Registering thousands of buyers through the API would spend minutes in argon2.

use crate::accounts::{hash_password, token_sha256};
use crate::{App, AppError, AppResult};
use xingqu_domain::account::Password;
use xingqu_domain::catalog::{CategoryFlags, OriginTags};
use xingqu_store::accounts::NewUser;
use xingqu_store::catalog::NewMerchant;
use xingqu_store::orders::NewFlashSale;
use xingqu_store::price_protection::ProtectionPolicy;
use xingqu_store::products::{Change, ProductContent, SkuValues};

/// What was built.
#[derive(Debug, Clone)]
pub struct FlashScenario {
    pub flash_sale_id: i64,
    pub sku_id: i64,
    pub pool_units: i64,
    pub per_user_limit: i64,
    /// Bearer tokens of the buyers, one per buyer.
    pub buyer_tokens: Vec<String>,
    pub buyer_ids: Vec<i64>,
}

/// `n_buyers` consumers, each with a session valid for a day: (bearer tokens, user ids).
async fn insert_buyers(
    tx: &mut xingqu_store::Tx,
    n_buyers: usize,
    password_hash: &str,
    now_ms: i64,
) -> AppResult<(Vec<String>, Vec<i64>)> {
    let mut buyer_tokens = Vec::with_capacity(n_buyers);
    let mut buyer_ids = Vec::with_capacity(n_buyers);
    let expires_at_ms = now_ms + 24 * 3_600_000;
    for index in 0..n_buyers {
        let email = format!("buyer{index}@xingqu.bench");
        let user =
            NewUser { email: &email, password_hash, display_name: &email, role: "consumer", merchant_id: None, now_ms };
        let id = tx.insert_user(&user).await?.id;
        let token = crate::accounts::new_token();
        tx.insert_session(id, &token_sha256(&token), now_ms, expires_at_ms).await?;
        buyer_tokens.push(token);
        buyer_ids.push(id);
    }
    Ok((buyer_tokens, buyer_ids))
}

/// A price-protection scenario: a shop with many SKUs in automatic price protection and buyers;
/// `xingqu bench price-protection` fills it with orders.
#[derive(Debug, Clone)]
pub struct ProtectionScenario {
    pub merchant_id: i64,
    pub product_id: i64,
    /// The shop's staff member who changes prices.
    pub staff: xingqu_domain::account::Actor,
    /// SKU ids in creation order (contiguous); the first is the one whose price is cut.
    pub sku_ids: Vec<i64>,
    pub buyer_ids: Vec<i64>,
}

/// An approved shop for a scenario, with its owner as staff and a category of its own.
struct ScenarioShop {
    owner_email: &'static str,
    category_slug: &'static str,
    category_name: &'static str,
    shop_name: &'static str,
    region_code: &'static str,
}

impl ScenarioShop {
    /// Returns (owner, category id, merchant).
    async fn insert(
        &self,
        tx: &mut xingqu_store::Tx,
        password_hash: &str,
        now_ms: i64,
    ) -> AppResult<(xingqu_store::accounts::UserRow, i64, xingqu_store::catalog::MerchantRow)> {
        let owner = tx
            .insert_user(&NewUser {
                email: self.owner_email,
                password_hash,
                display_name: self.shop_name,
                role: "consumer",
                merchant_id: None,
                now_ms,
            })
            .await?;
        let category =
            tx.insert_category(None, self.category_slug, self.category_name, CategoryFlags::default(), now_ms).await?;
        let merchant = tx
            .insert_merchant(&NewMerchant {
                shop_name: self.shop_name,
                region_code: self.region_code,
                qualification: "approved",
                owner_user_id: owner.id,
                category_ids: &[category.id],
                now_ms,
            })
            .await?;
        tx.make_merchant_staff(owner.id, merchant.id).await?;
        Ok((owner, category.id, merchant))
    }
}

/// A claim-storm scenario: a platform coupon open for claiming now and signed-in buyers.
#[derive(Debug, Clone)]
pub struct CouponScenario {
    pub coupon_id: i64,
    pub buyer_tokens: Vec<String>,
    pub buyer_ids: Vec<i64>,
}

impl App {
    /// Builds, in one transaction, `n_buyers` consumers with live sessions and a platform coupon
    /// (5 元 off, valid 7 days) of `quantity` open for claiming now, `per_user_limit` each.
    pub async fn seed_coupon_scenario(
        &self,
        n_buyers: usize,
        quantity: i64,
        per_user_limit: i64,
    ) -> AppResult<CouponScenario> {
        let now_ms = self.now_ms();
        let password_hash = hash_password(Password::parse("scenario-password")?).await?;
        let mut tx = self.store().begin().await?;
        let (buyer_tokens, buyer_ids) = insert_buyers(&mut tx, n_buyers, &password_hash, now_ms).await?;
        let coupon = tx
            .insert_coupon(&xingqu_store::coupons::NewCoupon {
                class: "platform",
                merchant_id: None,
                creator_user_id: None,
                title: "双11 平台券 5 元".to_owned(),
                kind: "money_off",
                threshold_fen: 0,
                off_fen: 500,
                percent_bps: 0,
                cap_fen: 0,
                price_fen: 0,
                product_ids: String::new(),
                combines_with: "shop,fan".to_owned(),
                claim_starts_at_ms: now_ms - 1_000,
                claim_ends_at_ms: now_ms + 24 * 3_600_000,
                valid_from_ms: None,
                valid_until_ms: None,
                valid_days: Some(7),
                quantity,
                per_user_limit,
                budget_fen: None,
                pool_split: None,
                created_by: buyer_ids.first().copied().unwrap_or(1),
                now_ms,
            })
            .await?;
        tx.commit().await.map_err(AppError::from)?;
        Ok(CouponScenario { coupon_id: coupon.id, buyer_tokens, buyer_ids })
    }

    /// Builds, in one transaction, a shop with one product of `n_skus` SKUs at 100 元 (stock a
    /// million each), every SKU in automatic price protection for 30 days from placement, and
    /// `n_buyers` consumers.
    pub async fn seed_protection_scenario(&self, n_buyers: usize, n_skus: usize) -> AppResult<ProtectionScenario> {
        let now_ms = self.now_ms();
        let password_hash = hash_password(Password::parse("scenario-password")?).await?;
        let mut tx = self.store().begin().await?;
        let shop = ScenarioShop {
            owner_email: "protection-owner@xingqu.bench",
            category_slug: "protection-bench",
            category_name: "家电",
            shop_name: "国货家电旗舰店",
            region_code: "440300",
        };
        let (owner, category, merchant) = shop.insert(&mut tx, &password_hash, now_ms).await?;
        let images = vec!["https://img.xingqu.demo/kettle.jpg".to_owned()];
        let content = ProductContent {
            category_id: category,
            brand_id: None,
            title: "国货电热水壶",
            description: "价保30天",
            image_urls: &images,
            tags: OriginTags::default(),
            origin_region_code: "440300",
        };
        let product_id = tx.insert_product(merchant.id, &content, now_ms).await?;
        let change = Change { actor_user_id: Some(owner.id), reason: "initial price", now_ms };
        let policy = ProtectionPolicy { window_days: 30, from: "placement".to_owned(), auto: true, platform_bps: 0 };
        let mut sku_ids = Vec::with_capacity(n_skus);
        for index in 0..n_skus {
            let spec = vec![("款式".to_owned(), format!("{index:05}"))];
            let sku = tx
                .insert_sku(
                    product_id,
                    &SkuValues { spec: &spec, price_fen: 10_000, stock: Some(1_000_000), weight_g: 1500 },
                    change,
                )
                .await?;
            tx.set_protection_policy(sku.id, &policy).await?;
            sku_ids.push(sku.id);
        }
        tx.transition_product(product_id, "draft", "listed", change).await?;
        let (_, buyer_ids) = insert_buyers(&mut tx, n_buyers, &password_hash, now_ms).await?;
        tx.commit().await.map_err(AppError::from)?;
        let staff = xingqu_domain::account::Actor {
            user_id: owner.id,
            role: xingqu_domain::account::Role::MerchantStaff,
            merchant_id: Some(merchant.id),
        };
        Ok(ProtectionScenario { merchant_id: merchant.id, product_id, staff, sku_ids, buyer_ids })
    }

    /// Builds the scenario in one transaction: `n_buyers` consumers with live sessions, and a
    /// flash sale running now of `pool_units` at 2,990 分 (list price 5,990), `per_user_limit` each.
    pub async fn seed_flash_scenario(
        &self,
        n_buyers: usize,
        pool_units: i64,
        per_user_limit: i64,
    ) -> AppResult<FlashScenario> {
        let now_ms = self.now_ms();
        let password_hash = hash_password(Password::parse("scenario-password")?).await?;
        let mut tx = self.store().begin().await?;
        let shop = ScenarioShop {
            owner_email: "flash-owner@xingqu.bench",
            category_slug: "flash-bench",
            category_name: "秒杀",
            shop_name: "延边秒杀旗舰店",
            region_code: "222401",
        };
        let (owner, category, merchant) = shop.insert(&mut tx, &password_hash, now_ms).await?;
        let images = vec!["https://img.xingqu.demo/flash.jpg".to_owned()];
        let content = ProductContent {
            category_id: category,
            brand_id: None,
            title: "延边大米 5kg 秒杀",
            description: "双11秒杀",
            image_urls: &images,
            tags: OriginTags { farm_specialty: true, ..OriginTags::default() },
            origin_region_code: "222401",
        };
        let product_id = tx.insert_product(merchant.id, &content, now_ms).await?;
        let spec = vec![("规格".to_owned(), "5kg".to_owned())];
        let change = Change { actor_user_id: Some(owner.id), reason: "initial price", now_ms };
        let sku = tx
            .insert_sku(
                product_id,
                &SkuValues { spec: &spec, price_fen: 5990, stock: Some(1000), weight_g: 5000 },
                change,
            )
            .await?;
        tx.transition_product(product_id, "draft", "listed", change).await?;
        let sale = tx
            .insert_flash_sale(&NewFlashSale {
                sku_id: sku.id,
                merchant_id: merchant.id,
                price_fen: 2990,
                starts_at_ms: now_ms - 1_000,
                ends_at_ms: now_ms + 24 * 3_600_000,
                pool_units,
                per_user_limit,
                created_by: owner.id,
                now_ms,
            })
            .await?;
        let (buyer_tokens, buyer_ids) = insert_buyers(&mut tx, n_buyers, &password_hash, now_ms).await?;
        tx.commit().await.map_err(AppError::from)?;
        Ok(FlashScenario {
            flash_sale_id: sale.id,
            sku_id: sku.id,
            pool_units,
            per_user_limit,
            buyer_tokens,
            buyer_ids,
        })
    }
}
