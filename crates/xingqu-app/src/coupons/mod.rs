//! Coupons and red packets: who may issue which class, the rules a coupon is checked against when
//! it is created, the buyer's wallet, stopping a coupon, and the follow graph fan coupons need.
//! Claiming is in [`claims`]; using coupons at checkout is in [`redeem`].

pub mod claims;
pub mod redeem;

use crate::{App, AppError, AppResult};
use std::collections::BTreeSet;
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::promo::coupon::{ClassSet, CouponClass, CouponKind, CouponScope, KindFields, WalletCoupon};
use xingqu_domain::promo::red_packet::Split;
use xingqu_domain::rng::SplitMix64;
use xingqu_domain::text;
use xingqu_store::coupons::{CouponRow, NewCoupon, WalletRow};

/// Longest claiming window and validity, so nothing lives forever by mistake.
const WINDOW_DAYS_MAX: i64 = 366;
const QUANTITY_MAX: i64 = 10_000_000;
const PER_USER_LIMIT_MAX: i64 = 100;
const PRODUCTS_MAX: usize = 200;
const DAY_MS: i64 = 86_400_000;
/// Coupons a wallet shows and a checkout considers at most (the best-set search is exact up to it).
pub const WALLET_LIMIT: u32 = xingqu_domain::promo::stacking::WALLET_MAX as u32;

/// A coupon as its issuer defines it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CouponInput {
    pub class: String,
    /// The issuing shop, for shop coupons.
    pub merchant_id: Option<i64>,
    pub title: String,
    pub kind: String,
    pub fields: KindFields,
    pub product_ids: Vec<i64>,
    pub combines_with: Vec<String>,
    pub claim_starts_at_ms: i64,
    pub claim_ends_at_ms: i64,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub valid_days: Option<i64>,
    pub quantity: i64,
    pub per_user_limit: i64,
    pub budget_fen: Option<i64>,
}

/// A red-packet pool as an operator funds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolInput {
    pub title: String,
    pub pool_fen: i64,
    /// `fixed` (every packet `amount_fen`) or `random` (`recipients` packets of at least `min_fen`).
    pub mode: String,
    pub amount_fen: i64,
    pub recipients: i64,
    pub min_fen: i64,
    /// What a packet takes off: orders of at least this much (0: any order).
    pub threshold_fen: i64,
    pub claim_starts_at_ms: i64,
    pub claim_ends_at_ms: i64,
    pub valid_days: i64,
}

fn in_range(field: &'static str, value: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, AppError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(AppError::invalid(field, "out_of_range", format!("must be between {} and {}", range.start(), range.end())))
    }
}

/// The claiming window: ends after it starts and in the future, at most a year long.
fn check_window(starts_at_ms: i64, ends_at_ms: i64, now_ms: i64) -> AppResult<()> {
    if ends_at_ms <= starts_at_ms || ends_at_ms <= now_ms {
        return Err(AppError::invalid("claim_ends_at", "out_of_range", "must be after the start and in the future"));
    }
    if ends_at_ms - starts_at_ms > WINDOW_DAYS_MAX * DAY_MS {
        return Err(AppError::invalid(
            "claim_ends_at",
            "out_of_range",
            format!("claiming lasts at most {WINDOW_DAYS_MAX} days"),
        ));
    }
    Ok(())
}

/// A stored coupon's kind with its amounts.
pub(crate) fn coupon_kind(coupon: &CouponRow) -> AppResult<CouponKind> {
    let fields = KindFields {
        threshold_fen: coupon.threshold_fen,
        off_fen: coupon.off_fen,
        percent_bps: coupon.percent_bps,
        cap_fen: coupon.cap_fen,
        price_fen: coupon.price_fen,
    };
    Ok(CouponKind::parse(&coupon.kind, fields)?)
}

/// Which lines a stored coupon covers.
pub(crate) fn coupon_scope(coupon: &CouponRow) -> CouponScope {
    let product_ids: BTreeSet<i64> = coupon.product_ids.split(',').filter_map(|id| id.trim().parse().ok()).collect();
    CouponScope {
        merchant_id: coupon.merchant_id,
        product_ids: if product_ids.is_empty() { None } else { Some(product_ids) },
    }
}

/// The wallet coupon a stored claim makes, as the checkout sees it.
pub(crate) fn wallet_coupon(row: &WalletRow) -> AppResult<WalletCoupon> {
    let coupon = &row.coupon;
    let class = CouponClass::parse(&coupon.class)?;
    let kind = match row.claim.off_fen {
        // A red packet of a random split carries its own amount.
        Some(off_fen) if coupon.threshold_fen > 0 => {
            CouponKind::Threshold { threshold_fen: coupon.threshold_fen.max(off_fen + 1), off_fen }
        }
        Some(off_fen) => CouponKind::MoneyOff { off_fen },
        None => coupon_kind(coupon)?,
    };
    Ok(WalletCoupon {
        claim_id: row.claim.id,
        coupon_id: coupon.id,
        class,
        kind,
        scope: coupon_scope(coupon),
        combines_with: ClassSet::parse(&coupon.combines_with)?,
        funder_id: coupon.merchant_id.or(coupon.creator_user_id),
        budget_left_fen: coupon.budget_fen.map(|budget| budget - coupon.budget_used_fen),
        valid_until_ms: row.claim.valid_until_ms,
    })
}

impl App {
    /// Creates a coupon. Shop coupons: the shop's staff (or an operator); fan coupons: a creator,
    /// for the products they sell; platform coupons: operators. Red packets are made as pools
    /// ([`App::create_red_packet_pool`]).
    pub async fn create_coupon(&self, actor: &Actor, input: CouponInput) -> AppResult<CouponRow> {
        let class = CouponClass::parse(&input.class)?;
        let (merchant_id, creator_user_id) = match class {
            CouponClass::Shop => {
                let merchant_id = input
                    .merchant_id
                    .ok_or_else(|| AppError::invalid("merchant_id", "missing_field", "a shop coupon names its shop"))?;
                if !actor.manages_merchant(merchant_id) {
                    return Err(AppError::Forbidden("only the shop's staff or an operator issue its coupons"));
                }
                let shop = self.store().merchant(merchant_id).await?.ok_or(AppError::not_found("merchant"))?;
                if shop.qualification != "approved" {
                    return Err(AppError::conflict("merchant_not_approved", "the shop is not approved yet"));
                }
                (Some(merchant_id), None)
            }
            CouponClass::Fan => {
                if actor.role != Role::Creator {
                    return Err(AppError::Forbidden("only creators issue fan coupons"));
                }
                if input.product_ids.is_empty() {
                    return Err(AppError::invalid(
                        "product_ids",
                        "missing_field",
                        "a fan coupon names the products the creator sells",
                    ));
                }
                (None, Some(actor.user_id))
            }
            CouponClass::Platform => {
                if !actor.is_operator() {
                    return Err(AppError::Forbidden("only operators issue platform coupons"));
                }
                (None, None)
            }
            CouponClass::RedPacket => {
                return Err(AppError::invalid(
                    "class",
                    "use_red_packet_pools",
                    "red packets are funded as pools: POST /v1/red-packet-pools",
                ));
            }
        };
        if input.merchant_id.is_some() && class != CouponClass::Shop {
            return Err(AppError::invalid("merchant_id", "unexpected_field", "only shop coupons name a shop"));
        }
        let title = text::bounded("title", &input.title, 60)?;
        let kind = CouponKind::parse(&input.kind, input.fields)?;
        let combines_with = ClassSet::parse(&input.combines_with.join(","))?;
        let product_ids = self.check_coupon_products(&input.product_ids, merchant_id).await?;
        let now_ms = self.now_ms();
        check_window(input.claim_starts_at_ms, input.claim_ends_at_ms, now_ms)?;
        match (input.valid_from_ms, input.valid_until_ms, input.valid_days) {
            (Some(from), Some(until), None) => {
                if until <= from || until <= now_ms || until - from > WINDOW_DAYS_MAX * DAY_MS {
                    return Err(AppError::invalid(
                        "valid_until",
                        "out_of_range",
                        "must be after valid_from, in the future, and at most a year later",
                    ));
                }
            }
            (None, None, Some(days)) => {
                in_range("valid_days", days, 1..=WINDOW_DAYS_MAX)?;
            }
            _ => {
                return Err(AppError::invalid(
                    "valid_days",
                    "invalid_validity",
                    "give either valid_from and valid_until, or valid_days",
                ));
            }
        }
        in_range("quantity", input.quantity, 1..=QUANTITY_MAX)?;
        in_range("per_user_limit", input.per_user_limit, 1..=PER_USER_LIMIT_MAX)?;
        if let Some(budget_fen) = input.budget_fen {
            in_range("budget_fen", budget_fen, 1..=i64::from(i32::MAX) * 100)?;
        }
        let fields = kind.fields();
        let coupon = NewCoupon {
            class: class.as_str(),
            merchant_id,
            creator_user_id,
            title,
            kind: kind.as_str(),
            threshold_fen: fields.threshold_fen,
            off_fen: fields.off_fen,
            percent_bps: fields.percent_bps,
            cap_fen: fields.cap_fen,
            price_fen: fields.price_fen,
            product_ids,
            combines_with: combines_with.to_string(),
            claim_starts_at_ms: input.claim_starts_at_ms,
            claim_ends_at_ms: input.claim_ends_at_ms,
            valid_from_ms: input.valid_from_ms,
            valid_until_ms: input.valid_until_ms,
            valid_days: input.valid_days,
            quantity: input.quantity,
            per_user_limit: input.per_user_limit,
            budget_fen: input.budget_fen,
            pool_split: None,
            created_by: actor.user_id,
            now_ms,
        };
        let mut tx = self.store().begin().await?;
        let row = tx.insert_coupon(&coupon).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Products a coupon is limited to: each must exist and, for a shop coupon, be the shop's.
    async fn check_coupon_products(&self, product_ids: &[i64], merchant_id: Option<i64>) -> AppResult<String> {
        if product_ids.len() > PRODUCTS_MAX {
            return Err(AppError::invalid("product_ids", "too_many", format!("at most {PRODUCTS_MAX} products")));
        }
        let unique: BTreeSet<i64> = product_ids.iter().copied().collect();
        for &product_id in &unique {
            let owner = self.store().product(product_id).await?.map(|p| p.merchant_id);
            match owner {
                None => {
                    return Err(AppError::invalid(
                        "product_ids",
                        "unknown_product",
                        format!("no product {product_id}"),
                    ));
                }
                Some(owner) if merchant_id.is_some_and(|m| m != owner) => {
                    return Err(AppError::invalid(
                        "product_ids",
                        "foreign_product",
                        format!("product {product_id} belongs to another shop"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(unique.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
    }

    /// Funds a red-packet pool (operators): `pool_fen` split into packets, fixed or random, that
    /// buyers grab first come first served; each packet is a platform-funded money-off coupon
    /// usable across shops. The packets sum exactly to the pool.
    pub async fn create_red_packet_pool(&self, actor: &Actor, input: PoolInput) -> AppResult<CouponRow> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators fund red-packet pools"));
        }
        let title = text::bounded("title", &input.title, 60)?;
        let split = Split::parse(&input.mode, input.amount_fen, input.recipients, input.min_fen)?;
        in_range("pool_fen", input.pool_fen, 1..=i64::from(i32::MAX) * 100)?;
        in_range("threshold_fen", input.threshold_fen, 0..=xingqu_domain::promo::coupon::COUPON_FEN_MAX)?;
        in_range("valid_days", input.valid_days, 1..=WINDOW_DAYS_MAX)?;
        let now_ms = self.now_ms();
        check_window(input.claim_starts_at_ms, input.claim_ends_at_ms, now_ms)?;
        // The packets are drawn now from a seed kept with the pool, so a restart rebuilds them.
        let seed = rand::random::<u64>() >> 11;
        let packets = split.packets(input.pool_fen, &mut SplitMix64::new(seed))?;
        let largest_fen = packets.iter().copied().max().unwrap_or(0);
        let pool_split = match split {
            Split::Fixed { amount_fen } => format!("fixed;amount_fen={amount_fen}"),
            Split::Random { recipients, min_fen } => {
                format!("random;recipients={recipients};min_fen={min_fen};seed={seed}")
            }
        };
        let coupon = NewCoupon {
            class: CouponClass::RedPacket.as_str(),
            merchant_id: None,
            creator_user_id: None,
            title,
            kind: if input.threshold_fen > 0 { "threshold" } else { "money_off" },
            threshold_fen: input.threshold_fen,
            off_fen: largest_fen,
            percent_bps: 0,
            cap_fen: 0,
            price_fen: 0,
            product_ids: String::new(),
            combines_with: ClassSet::all().to_string(),
            claim_starts_at_ms: input.claim_starts_at_ms,
            claim_ends_at_ms: input.claim_ends_at_ms,
            valid_from_ms: None,
            valid_until_ms: None,
            valid_days: Some(input.valid_days),
            quantity: i64::try_from(packets.len()).unwrap_or(i64::MAX),
            per_user_limit: 1,
            budget_fen: Some(input.pool_fen),
            pool_split: Some(pool_split),
            created_by: actor.user_id,
            now_ms,
        };
        let mut tx = self.store().begin().await?;
        let row = tx.insert_coupon(&coupon).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A coupon anyone signed in may see (claimable coupons are public; the issuer sees theirs).
    pub async fn coupon(&self, id: i64) -> AppResult<CouponRow> {
        self.store().coupon(id).await?.ok_or(AppError::not_found("coupon"))
    }

    /// Coupons: a shop's (its staff), a creator's (themselves), all (operators), or those open for
    /// claiming now (anyone).
    pub async fn list_coupons(
        &self,
        actor: &Actor,
        merchant_id: Option<i64>,
        mine: bool,
        before_id: Option<i64>,
        limit: u32,
    ) -> AppResult<Vec<CouponRow>> {
        use xingqu_store::coupons::CouponScope as Scope;
        let scope = match (merchant_id, mine) {
            (Some(m), _) if actor.manages_merchant(m) => Scope::Merchant(m),
            (Some(_), _) => return Err(AppError::Forbidden("only the shop's staff or an operator list its coupons")),
            (None, true) if actor.role == Role::Creator => Scope::Creator(actor.user_id),
            (None, true) if actor.is_operator() => Scope::All,
            (None, true) => match actor.merchant_id {
                Some(m) => Scope::Merchant(m),
                None => return Err(AppError::Forbidden("only issuers have coupons of their own")),
            },
            (None, false) => Scope::Claimable(self.now_ms()),
        };
        Ok(self.store().coupons(scope, before_id, limit).await?)
    }

    /// Stops (or resumes) claiming a coupon: its issuer or an operator. Claims already made stay
    /// usable; stopping is how an issuer ends a promotion early.
    pub async fn set_coupon_active(&self, actor: &Actor, coupon_id: i64, active: bool) -> AppResult<CouponRow> {
        let coupon = self.coupon(coupon_id).await?;
        let may = actor.is_operator()
            || coupon.merchant_id.is_some_and(|m| actor.manages_merchant(m))
            || coupon.creator_user_id == Some(actor.user_id);
        if !may {
            return Err(AppError::Forbidden("only the coupon's issuer or an operator stops it"));
        }
        let mut tx = self.store().begin().await?;
        tx.set_coupon_status(coupon_id, if active { "active" } else { "stopped" }).await?;
        tx.commit().await?;
        self.claim_gate_stopped(coupon_id, !active);
        self.coupon(coupon_id).await
    }

    /// The buyer's usable coupons (valid now, not used), soonest to expire first.
    pub async fn wallet(&self, actor: &Actor) -> AppResult<Vec<WalletRow>> {
        Ok(self.store().wallet(actor.user_id, self.now_ms(), WALLET_LIMIT).await?)
    }

    /// Every claim the buyer made, newest first, used and expired ones too.
    pub async fn claims_of(&self, actor: &Actor, before_id: Option<i64>, limit: u32) -> AppResult<Vec<WalletRow>> {
        Ok(self.store().claims_of(actor.user_id, before_id, limit).await?)
    }

    /// Follows a creator (following twice changes nothing).
    pub async fn follow(&self, actor: &Actor, creator_user_id: i64, follow: bool) -> AppResult<()> {
        let creator = self.store().user(creator_user_id).await?.ok_or(AppError::not_found("creator"))?;
        if creator.role != Role::Creator.as_str() {
            return Err(AppError::not_found("creator"));
        }
        if creator.id == actor.user_id {
            return Err(AppError::invalid("creator_id", "self_follow", "creators do not follow themselves"));
        }
        let mut tx = self.store().begin().await?;
        if follow {
            tx.follow(actor.user_id, creator_user_id, self.now_ms()).await?;
        } else {
            tx.unfollow(actor.user_id, creator_user_id).await?;
        }
        tx.commit().await?;
        self.feed().follow(actor.user_id, creator_user_id, follow).await;
        Ok(())
    }
}
