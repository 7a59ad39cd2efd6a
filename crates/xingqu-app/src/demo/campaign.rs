//! The demo's festival: a 双11好物节 running now, with zones whose rules pick the seeded
//! products (approved at 90% of their price), theme days, a subsidy pool and the official live
//! room's first broadcast on the schedule.

use crate::{AppError, AppResult};
use xingqu_domain::campaign::{ProductFacts, RawZoneRule, ZoneRule};
use xingqu_domain::catalog::ListingTag;
use xingqu_store::Tx;
use xingqu_store::campaigns::{NewSubsidyPool, NewZoneEntry, encode_rule};

const DAY_MS: i64 = 86_400_000;
/// Entries approved per zone at most.
const ENTRIES_PER_ZONE: usize = 40;

/// A seeded product as the zones' rules see it, with its first SKU.
#[derive(Debug, Clone)]
pub(super) struct Seeded {
    pub product_id: i64,
    pub merchant_id: i64,
    pub owner_user_id: i64,
    pub category_id: i64,
    pub region_code: &'static str,
    pub tags: Vec<ListingTag>,
    pub sku_id: i64,
    pub price_fen: i64,
}

/// (name, rule, traffic target in basis points, subsidy per unit in 分 or 0).
fn zones() -> Vec<(&'static str, RawZoneRule, i64, i64)> {
    let tagged = |tag: &str| RawZoneRule { tags: vec![tag.to_owned()], ..RawZoneRule::default() };
    vec![
        (
            "风味延边",
            RawZoneRule {
                tags: vec!["farm_specialty".to_owned()],
                region_prefixes: vec!["2224".to_owned()],
                ..RawZoneRule::default()
            },
            1_500,
            500,
        ),
        ("国潮崛起", tagged("domestic_brand"), 1_000, 0),
        ("非遗好物", tagged("intangible_heritage"), 500, 0),
    ]
}

pub(super) async fn seed_campaign(
    tx: &mut Tx,
    operator: i64,
    creator: i64,
    products: &[Seeded],
    now_ms: i64,
) -> AppResult<()> {
    // Started yesterday at midnight, China time; sixteen days long.
    let today_ms = (now_ms + 8 * 3_600_000).div_euclid(DAY_MS) * DAY_MS - 8 * 3_600_000;
    let starts_at_ms = today_ms - DAY_MS;
    let campaign = tx.insert_campaign("双11好物节", starts_at_ms, starts_at_ms + 16 * DAY_MS, operator, now_ms).await?;
    for (index, (name, raw, traffic_target_bp, per_unit_fen)) in zones().into_iter().enumerate() {
        let rule = ZoneRule::parse(&raw).map_err(|e| AppError::internal(format!("demo zone rule: {e}")))?;
        let zone = tx.insert_zone(campaign.id, name, &encode_rule(&rule), traffic_target_bp, now_ms).await?;
        let admitted = products.iter().filter(|p| {
            rule.admits(&ProductFacts {
                merchant_id: p.merchant_id,
                category_id: p.category_id,
                origin_region_code: p.region_code,
                tags: &p.tags,
                price_fen: p.price_fen,
            })
            .is_ok()
        });
        for product in admitted.take(ENTRIES_PER_ZONE) {
            let entry = NewZoneEntry {
                zone_id: zone.id,
                sku_id: product.sku_id,
                product_id: product.product_id,
                merchant_id: product.merchant_id,
                campaign_price_fen: (product.price_fen * 9 / 10).max(1),
                reference_price_fen: product.price_fen,
                applied_by_user_id: product.owner_user_id,
                now_ms,
            };
            if entry.campaign_price_fen >= entry.reference_price_fen {
                continue;
            }
            let id = tx.insert_zone_entry(&entry).await?;
            tx.move_zone_entry(id, "pending", "approved", operator, "demo seed", now_ms).await?;
        }
        if per_unit_fen > 0 {
            let pool = NewSubsidyPool {
                campaign_id: campaign.id,
                zone_id: Some(zone.id),
                name: format!("{name}补贴"),
                budget_fen: 10_000_000,
                per_unit_fen: Some(per_unit_fen),
                percent_bp: None,
                cap_per_unit_fen: None,
                now_ms,
            };
            tx.insert_subsidy_pool(&pool).await?;
        }
        tx.insert_theme_day(campaign.id, today_ms + index as i64 * DAY_MS, name, Some(zone.id)).await?;
    }
    // The official live room's first broadcast: announced for tonight at eight.
    let tonight_ms = today_ms + 20 * 3_600_000;
    let session = tx.insert_live_session(creator, "双11官方直播间：国货品牌联播", now_ms, Some(tonight_ms)).await?;
    tx.insert_live_slot(campaign.id, session.id, "国货品牌联播", tonight_ms, tonight_ms + 3 * 3_600_000).await?;
    Ok(())
}
