//! Campaigns: their zones with eligibility rules, theme days, the official live room's slots,
//! merchants' zone entries at a campaign price, subsidy pools and what each order line took
//! from them.

use crate::{Store, StoreError, Tx};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use xingqu_domain::campaign::{RawZoneRule, ZoneRule};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by_user_id: i64,
    pub created_at_ms: i64,
}

const CAMPAIGN_COLUMNS: &str = "id, name, starts_at_ms, ends_at_ms, created_by_user_id, created_at_ms";

impl CampaignRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            starts_at_ms: row.try_get("starts_at_ms")?,
            ends_at_ms: row.try_get("ends_at_ms")?,
            created_by_user_id: row.try_get("created_by_user_id")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRow {
    pub id: i64,
    pub campaign_id: i64,
    pub name: String,
    /// The eligibility rule, JSON (the app encodes and decodes it).
    pub rule: String,
    pub traffic_target_bp: i64,
    pub created_at_ms: i64,
}

const ZONE_COLUMNS: &str = "id, campaign_id, name, rule, traffic_target_bp, created_at_ms";

impl ZoneRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            campaign_id: row.try_get("campaign_id")?,
            name: row.try_get("name")?,
            rule: row.try_get("rule")?,
            traffic_target_bp: row.try_get("traffic_target_bp")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThemeDayRow {
    pub id: i64,
    pub campaign_id: i64,
    pub day_starts_at_ms: i64,
    pub title: String,
    pub zone_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSlotRow {
    pub id: i64,
    pub campaign_id: i64,
    pub live_session_id: i64,
    pub title: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// The session's own status (scheduled, live, ended).
    pub session_status: String,
    /// Brands of the products the session sells: an official room strings several.
    pub brands: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsidyPoolRow {
    pub id: i64,
    pub campaign_id: i64,
    pub zone_id: Option<i64>,
    pub name: String,
    pub budget_fen: i64,
    pub spent_fen: i64,
    pub per_unit_fen: Option<i64>,
    pub percent_bp: Option<i64>,
    pub cap_per_unit_fen: Option<i64>,
    pub created_at_ms: i64,
}

const POOL_COLUMNS: &str =
    "id, campaign_id, zone_id, name, budget_fen, spent_fen, per_unit_fen, percent_bp, cap_per_unit_fen, created_at_ms";

impl SubsidyPoolRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            campaign_id: row.try_get("campaign_id")?,
            zone_id: row.try_get("zone_id")?,
            name: row.try_get("name")?,
            budget_fen: row.try_get("budget_fen")?,
            spent_fen: row.try_get("spent_fen")?,
            per_unit_fen: row.try_get("per_unit_fen")?,
            percent_bp: row.try_get("percent_bp")?,
            cap_per_unit_fen: row.try_get("cap_per_unit_fen")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubsidyPool {
    pub campaign_id: i64,
    pub zone_id: Option<i64>,
    pub name: String,
    pub budget_fen: i64,
    pub per_unit_fen: Option<i64>,
    pub percent_bp: Option<i64>,
    pub cap_per_unit_fen: Option<i64>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneEntryRow {
    pub id: i64,
    pub zone_id: i64,
    pub campaign_id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    pub merchant_id: i64,
    pub campaign_price_fen: i64,
    pub reference_price_fen: i64,
    pub status: String,
    pub review_reason: String,
    pub applied_by_user_id: i64,
    pub applied_at_ms: i64,
    pub reviewed_by_user_id: Option<i64>,
    pub reviewed_at_ms: Option<i64>,
}

const ENTRY_COLUMNS: &str = "e.id, e.zone_id, z.campaign_id, e.sku_id, e.product_id, e.merchant_id, \
    e.campaign_price_fen, e.reference_price_fen, e.status, e.review_reason, e.applied_by_user_id, e.applied_at_ms, \
    e.reviewed_by_user_id, e.reviewed_at_ms";

impl ZoneEntryRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            zone_id: row.try_get("zone_id")?,
            campaign_id: row.try_get("campaign_id")?,
            sku_id: row.try_get("sku_id")?,
            product_id: row.try_get("product_id")?,
            merchant_id: row.try_get("merchant_id")?,
            campaign_price_fen: row.try_get("campaign_price_fen")?,
            reference_price_fen: row.try_get("reference_price_fen")?,
            status: row.try_get("status")?,
            review_reason: row.try_get("review_reason")?,
            applied_by_user_id: row.try_get("applied_by_user_id")?,
            applied_at_ms: row.try_get("applied_at_ms")?,
            reviewed_by_user_id: row.try_get("reviewed_by_user_id")?,
            reviewed_at_ms: row.try_get("reviewed_at_ms")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewZoneEntry {
    pub zone_id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    pub merchant_id: i64,
    pub campaign_price_fen: i64,
    pub reference_price_fen: i64,
    pub applied_by_user_id: i64,
    pub now_ms: i64,
}

/// An approved entry of a running campaign, with the pools that may subsidise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignOfferRow {
    pub entry_id: i64,
    pub zone_id: i64,
    pub campaign_id: i64,
    pub sku_id: i64,
    pub campaign_price_fen: i64,
}

/// One line's subsidy from one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSubsidy {
    pub order_id: i64,
    pub line_id: i64,
    pub pool_id: i64,
    pub amount_fen: i64,
}

/// A zone of a running campaign and the products its approved entries bring (the feed's traffic
/// support and candidate source, the hot lists' zone lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveZone {
    pub zone_id: i64,
    pub name: String,
    pub traffic_target_bp: i64,
    pub product_ids: Vec<i64>,
    pub sku_ids: Vec<i64>,
}

/// A zone rule as stored: a JSON object.
pub fn encode_rule(rule: &ZoneRule) -> String {
    json!({
        "tags": rule.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "category_ids": rule.category_ids,
        "region_prefixes": rule.region_prefixes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "merchant_ids": rule.merchant_ids,
        "min_price_fen": rule.min_price_fen,
        "max_price_fen": rule.max_price_fen,
    })
    .to_string()
}

/// A stored zone rule, to be parsed again by the domain (what was stored was valid).
pub fn decode_rule(stored: &str) -> RawZoneRule {
    let value: Value = serde_json::from_str(stored).unwrap_or(Value::Null);
    let strings = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let ids = |key: &str| -> Vec<i64> {
        value[key].as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
    };
    RawZoneRule {
        tags: strings("tags"),
        category_ids: ids("category_ids"),
        region_prefixes: strings("region_prefixes"),
        merchant_ids: ids("merchant_ids"),
        min_price_fen: value["min_price_fen"].as_i64(),
        max_price_fen: value["max_price_fen"].as_i64(),
    }
}

impl Tx {
    pub async fn insert_campaign(
        &mut self,
        name: &str,
        starts_at_ms: i64,
        ends_at_ms: i64,
        created_by_user_id: i64,
        now_ms: i64,
    ) -> Result<CampaignRow, StoreError> {
        let sql = format!(
            "INSERT INTO campaigns (name, starts_at_ms, ends_at_ms, created_by_user_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {CAMPAIGN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(starts_at_ms)
            .bind(ends_at_ms)
            .bind(created_by_user_id)
            .bind(now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(CampaignRow::from_row(&row)?)
    }

    /// A new zone; `Conflict` when the campaign has a zone of that name.
    pub async fn insert_zone(
        &mut self,
        campaign_id: i64,
        name: &str,
        rule: &str,
        traffic_target_bp: i64,
        now_ms: i64,
    ) -> Result<ZoneRow, StoreError> {
        let sql = format!(
            "INSERT INTO campaign_zones (campaign_id, name, rule, traffic_target_bp, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {ZONE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(campaign_id)
            .bind(name)
            .bind(rule)
            .bind(traffic_target_bp)
            .bind(now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(ZoneRow::from_row(&row)?)
    }

    /// Changes a zone's rule or traffic target (entries already approved stay).
    pub async fn update_zone(&mut self, zone_id: i64, rule: &str, traffic_target_bp: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE campaign_zones SET rule = $1, traffic_target_bp = $2 WHERE id = $3")
            .bind(rule)
            .bind(traffic_target_bp)
            .bind(zone_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// `Conflict` when the campaign already has a theme for that day.
    pub async fn insert_theme_day(
        &mut self,
        campaign_id: i64,
        day_starts_at_ms: i64,
        title: &str,
        zone_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO campaign_theme_days (campaign_id, day_starts_at_ms, title, zone_id) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(campaign_id)
        .bind(day_starts_at_ms)
        .bind(title)
        .bind(zone_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// `Conflict` when the session is already on the campaign's schedule.
    pub async fn insert_live_slot(
        &mut self,
        campaign_id: i64,
        live_session_id: i64,
        title: &str,
        starts_at_ms: i64,
        ends_at_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO campaign_live_slots (campaign_id, live_session_id, title, starts_at_ms, ends_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(campaign_id)
        .bind(live_session_id)
        .bind(title)
        .bind(starts_at_ms)
        .bind(ends_at_ms)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    pub async fn insert_subsidy_pool(&mut self, pool: &NewSubsidyPool) -> Result<SubsidyPoolRow, StoreError> {
        let sql = format!(
            "INSERT INTO subsidy_pools (campaign_id, zone_id, name, budget_fen, per_unit_fen, percent_bp, \
             cap_per_unit_fen, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {POOL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(pool.campaign_id)
            .bind(pool.zone_id)
            .bind(pool.name.as_str())
            .bind(pool.budget_fen)
            .bind(pool.per_unit_fen)
            .bind(pool.percent_bp)
            .bind(pool.cap_per_unit_fen)
            .bind(pool.now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(SubsidyPoolRow::from_row(&row)?)
    }

    /// `Conflict` when the SKU is already entered in the zone.
    pub async fn insert_zone_entry(&mut self, entry: &NewZoneEntry) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO zone_entries (zone_id, sku_id, product_id, merchant_id, campaign_price_fen, \
             reference_price_fen, status, applied_by_user_id, applied_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8) RETURNING id",
        )
        .bind(entry.zone_id)
        .bind(entry.sku_id)
        .bind(entry.product_id)
        .bind(entry.merchant_id)
        .bind(entry.campaign_price_fen)
        .bind(entry.reference_price_fen)
        .bind(entry.applied_by_user_id)
        .bind(entry.now_ms)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Moves an entry from `from` to `to` (compare-and-set); false if it was not in `from`.
    pub async fn move_zone_entry(
        &mut self,
        entry_id: i64,
        from: &str,
        to: &str,
        reviewed_by_user_id: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE zone_entries SET status = $1, review_reason = $2, reviewed_by_user_id = $3, reviewed_at_ms = $4 \
             WHERE id = $5 AND status = $6",
        )
        .bind(to)
        .bind(reason)
        .bind(reviewed_by_user_id)
        .bind(now_ms)
        .bind(entry_id)
        .bind(from)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes `amount_fen` from a pool if it has that much left; false otherwise. One guarded
    /// update, so concurrent orders can never overspend it.
    pub async fn spend_subsidy(&mut self, pool_id: i64, amount_fen: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE subsidy_pools SET spent_fen = spent_fen + $1 WHERE id = $2 AND spent_fen + $1 <= budget_fen",
        )
        .bind(amount_fen)
        .bind(pool_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives subsidies back to their pools (a closed order's, or what a refund prorated). Pools
    /// are updated in id order, as orders spend them, so PostgreSQL transactions never wait on
    /// each other's pool rows in a cycle.
    pub async fn return_subsidies(&mut self, subsidies: &[OrderSubsidy]) -> Result<(), StoreError> {
        let mut by_pool: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
        for subsidy in subsidies {
            *by_pool.entry(subsidy.pool_id).or_default() += subsidy.amount_fen;
        }
        for (pool_id, amount_fen) in by_pool {
            sqlx::query("UPDATE subsidy_pools SET spent_fen = spent_fen - $1 WHERE id = $2")
                .bind(amount_fen)
                .bind(pool_id)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    pub async fn insert_order_subsidies(&mut self, subsidies: &[OrderSubsidy]) -> Result<(), StoreError> {
        for subsidy in subsidies {
            sqlx::query("INSERT INTO order_subsidies (order_id, line_id, pool_id, amount_fen) VALUES ($1, $2, $3, $4)")
                .bind(subsidy.order_id)
                .bind(subsidy.line_id)
                .bind(subsidy.pool_id)
                .bind(subsidy.amount_fen)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    pub async fn order_subsidies(&mut self, order_id: i64) -> Result<Vec<OrderSubsidy>, StoreError> {
        let rows = sqlx::query(
            "SELECT order_id, line_id, pool_id, amount_fen FROM order_subsidies WHERE order_id = $1 \
             ORDER BY line_id, pool_id",
        )
        .bind(order_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OrderSubsidy {
                    order_id: row.try_get("order_id")?,
                    line_id: row.try_get("line_id")?,
                    pool_id: row.try_get("pool_id")?,
                    amount_fen: row.try_get("amount_fen")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

impl Store {
    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRow>, StoreError> {
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(CampaignRow::from_row).transpose()?)
    }

    /// Campaigns not over at `now_ms` first (soonest ending first), then past ones, newest first.
    pub async fn campaigns(&self, now_ms: i64, limit: i64) -> Result<Vec<CampaignRow>, StoreError> {
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY CASE WHEN ends_at_ms > $1 THEN 0 ELSE 1 END, \
             CASE WHEN ends_at_ms > $1 THEN ends_at_ms ELSE -ends_at_ms END, id LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(now_ms).bind(limit).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(CampaignRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn zone(&self, id: i64) -> Result<Option<ZoneRow>, StoreError> {
        let sql = format!("SELECT {ZONE_COLUMNS} FROM campaign_zones WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(ZoneRow::from_row).transpose()?)
    }

    pub async fn zones(&self, campaign_id: i64) -> Result<Vec<ZoneRow>, StoreError> {
        let sql = format!("SELECT {ZONE_COLUMNS} FROM campaign_zones WHERE campaign_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(campaign_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ZoneRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn theme_days(&self, campaign_id: i64) -> Result<Vec<ThemeDayRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, campaign_id, day_starts_at_ms, title, zone_id FROM campaign_theme_days WHERE campaign_id = $1 \
             ORDER BY day_starts_at_ms",
        )
        .bind(campaign_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ThemeDayRow {
                    id: row.try_get("id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    day_starts_at_ms: row.try_get("day_starts_at_ms")?,
                    title: row.try_get("title")?,
                    zone_id: row.try_get("zone_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn live_slots(&self, campaign_id: i64) -> Result<Vec<LiveSlotRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.campaign_id, s.live_session_id, s.title, s.starts_at_ms, s.ends_at_ms, \
             l.status AS session_status, \
             (SELECT COALESCE(string_agg(b.name, '|'), '') FROM live_session_products lp \
               JOIN skus k ON k.id = lp.sku_id JOIN products p ON p.id = k.product_id \
               JOIN brands b ON b.id = p.brand_id WHERE lp.live_session_id = s.live_session_id) AS brands \
             FROM campaign_live_slots s JOIN live_sessions l ON l.id = s.live_session_id \
             WHERE s.campaign_id = $1 ORDER BY s.starts_at_ms, s.id",
        )
        .bind(campaign_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                let brands: String = row.try_get("brands")?;
                let mut brands: Vec<String> = brands.split('|').filter(|b| !b.is_empty()).map(str::to_owned).collect();
                brands.sort();
                brands.dedup();
                Ok(LiveSlotRow {
                    id: row.try_get("id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    live_session_id: row.try_get("live_session_id")?,
                    title: row.try_get("title")?,
                    starts_at_ms: row.try_get("starts_at_ms")?,
                    ends_at_ms: row.try_get("ends_at_ms")?,
                    session_status: row.try_get("session_status")?,
                    brands,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn subsidy_pools(&self, campaign_id: i64) -> Result<Vec<SubsidyPoolRow>, StoreError> {
        let sql = format!("SELECT {POOL_COLUMNS} FROM subsidy_pools WHERE campaign_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(campaign_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(SubsidyPoolRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn zone_entry(&self, id: i64) -> Result<Option<ZoneEntryRow>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM zone_entries e JOIN campaign_zones z ON z.id = e.zone_id WHERE e.id = $1"
        );
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(ZoneEntryRow::from_row).transpose()?)
    }

    /// A zone's entries, optionally one status or one merchant's, oldest first.
    pub async fn zone_entries(
        &self,
        zone_id: i64,
        status: Option<&str>,
        merchant_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ZoneEntryRow>, StoreError> {
        // Filters are added only when given: PostgreSQL cannot type a bare `$n IS NULL`.
        let mut sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM zone_entries e JOIN campaign_zones z ON z.id = e.zone_id WHERE e.zone_id = $1"
        );
        let mut next = 2;
        if status.is_some() {
            sql.push_str(&format!(" AND e.status = ${next}"));
            next += 1;
        }
        if merchant_id.is_some() {
            sql.push_str(&format!(" AND e.merchant_id = ${next}"));
            next += 1;
        }
        sql.push_str(&format!(" ORDER BY e.id LIMIT ${next}"));
        let mut query = sqlx::query(&sql).bind(zone_id);
        if let Some(status) = status {
            query = query.bind(status);
        }
        if let Some(merchant_id) = merchant_id {
            query = query.bind(merchant_id);
        }
        let rows = query.bind(limit).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ZoneEntryRow::from_row).collect::<Result<_, _>>()?)
    }

    /// The lowest list price a SKU had from `since_ms` until now: its price now and every price
    /// it changed from or to since.
    pub async fn lowest_price_since(&self, sku_id: i64, since_ms: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(price) AS lowest FROM ( \
               SELECT price_fen AS price FROM skus WHERE id = $1 \
               UNION ALL SELECT new_price_fen FROM price_history WHERE sku_id = $1 AND changed_at_ms >= $2 \
               UNION ALL SELECT old_price_fen FROM price_history WHERE sku_id = $1 AND changed_at_ms >= $2 \
                 AND old_price_fen IS NOT NULL) prices",
        )
        .bind(sku_id)
        .bind(since_ms)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("lowest")?)
    }

    /// Approved entries of campaigns running at `now_ms` for these SKUs.
    pub async fn campaign_offers(&self, sku_ids: &[i64], now_ms: i64) -> Result<Vec<CampaignOfferRow>, StoreError> {
        if sku_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..sku_ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT e.id AS entry_id, e.zone_id, z.campaign_id, e.sku_id, e.campaign_price_fen \
             FROM zone_entries e JOIN campaign_zones z ON z.id = e.zone_id JOIN campaigns c ON c.id = z.campaign_id \
             WHERE e.status = 'approved' AND c.starts_at_ms <= $1 AND c.ends_at_ms > $1 AND e.sku_id IN ({}) \
             ORDER BY e.sku_id, e.campaign_price_fen, e.id",
            placeholders.join(", ")
        );
        let query = sku_ids.iter().fold(sqlx::query(&sql).bind(now_ms), |q, id| q.bind(*id));
        let rows = query.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|row| {
                Ok(CampaignOfferRow {
                    entry_id: row.try_get("entry_id")?,
                    zone_id: row.try_get("zone_id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    sku_id: row.try_get("sku_id")?,
                    campaign_price_fen: row.try_get("campaign_price_fen")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Pools of a campaign with money left that apply to a zone (its own and campaign-wide ones).
    pub async fn pools_for_zone(&self, campaign_id: i64, zone_id: i64) -> Result<Vec<SubsidyPoolRow>, StoreError> {
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM subsidy_pools WHERE campaign_id = $1 AND (zone_id IS NULL OR zone_id = $2) \
             AND spent_fen < budget_fen ORDER BY id"
        );
        let rows = sqlx::query(&sql).bind(campaign_id).bind(zone_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(SubsidyPoolRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Zones of campaigns running at `now_ms`, with the products and SKUs of their approved
    /// entries.
    pub async fn live_zones(&self, now_ms: i64) -> Result<Vec<LiveZone>, StoreError> {
        let rows = sqlx::query(
            "SELECT z.id AS zone_id, z.name, z.traffic_target_bp, e.product_id, e.sku_id \
             FROM campaign_zones z JOIN campaigns c ON c.id = z.campaign_id \
             LEFT JOIN zone_entries e ON e.zone_id = z.id AND e.status = 'approved' \
             WHERE c.starts_at_ms <= $1 AND c.ends_at_ms > $1 ORDER BY z.id, e.product_id, e.sku_id",
        )
        .bind(now_ms)
        .fetch_all(self.reader())
        .await?;
        let mut zones: Vec<LiveZone> = Vec::new();
        for row in &rows {
            let zone_id: i64 = row.try_get("zone_id")?;
            if zones.last().is_none_or(|z| z.zone_id != zone_id) {
                zones.push(LiveZone {
                    zone_id,
                    name: row.try_get("name")?,
                    traffic_target_bp: row.try_get("traffic_target_bp")?,
                    product_ids: Vec::new(),
                    sku_ids: Vec::new(),
                });
            }
            let product_id: Option<i64> = row.try_get("product_id")?;
            let sku_id: Option<i64> = row.try_get("sku_id")?;
            if let (Some(zone), Some(product_id), Some(sku_id)) = (zones.last_mut(), product_id, sku_id) {
                if zone.product_ids.last() != Some(&product_id) {
                    zone.product_ids.push(product_id);
                }
                zone.sku_ids.push(sku_id);
            }
        }
        Ok(zones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_survives_storage() {
        let raw = RawZoneRule {
            tags: vec!["farm_specialty".into()],
            category_ids: vec![3],
            region_prefixes: vec!["2224".into()],
            merchant_ids: vec![9, 10],
            min_price_fen: Some(100),
            max_price_fen: None,
        };
        let rule = ZoneRule::parse(&raw).expect("valid");
        assert_eq!(decode_rule(&encode_rule(&rule)), raw);
    }
}
