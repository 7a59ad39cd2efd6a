//! Analytics reads (GMV and quality GMV, series, regions, shipping points, farm specialties,
//! 安心购 reach, domestic brands) and the brushing flags they and the hot lists share.
//!
//! Every figure is over orders *paid* in a window `[from_ms, to_ms)` (shipping points: orders
//! *shipped* in it), optionally one merchant's (`merchant_id` 0 means all shops). Money is the
//! goods value buyers paid for (`order_lines.paid_fen`, shipping excluded).
//!
//! One line's class, decided in SQL the same way by every query ([`LINE_CLASS`]), first match wins:
//! `brushing` (a row in `brushing_flags`), `banned` (its product is banned now), `sanctioned` (its
//! shop's qualification is not `approved` now), else `ok`. What an `ok` line paid back is the whole
//! line when its order was cancelled or expired after payment, else the line's refunds and
//! compensation (`refunded_fen + compensation_fen`, never more than it paid: a CHECK).

use crate::{Store, StoreError};
use sqlx::Row;

/// The joins every analytics query shares: a line, its order, product, shop and brushing flag.
const LINES_FROM: &str = "FROM order_lines l JOIN orders o ON o.id = l.order_id \
     JOIN products p ON p.id = l.product_id JOIN merchants m ON m.id = o.merchant_id \
     LEFT JOIN brushing_flags bf ON bf.line_id = l.id";

/// Paid in the window, in scope: `$1` from, `$2` to, `$3` merchant (0: all).
const PAID_IN_WINDOW: &str =
    "o.paid_at_ms IS NOT NULL AND o.paid_at_ms >= $1 AND o.paid_at_ms < $2 AND ($3 = 0 OR o.merchant_id = $3)";

/// The class of a line (see the module doc).
const LINE_CLASS: &str = "CASE WHEN bf.line_id IS NOT NULL THEN 'brushing' WHEN p.status = 'banned' THEN 'banned' \
     WHEN m.qualification <> 'approved' THEN 'sanctioned' ELSE 'ok' END";

/// What a line paid back (see the module doc).
const LINE_PAID_BACK: &str =
    "CASE WHEN o.status IN ('cancelled', 'expired') THEN l.paid_fen ELSE l.refunded_fen + l.compensation_fen END";

fn quality_sql() -> String {
    format!("CASE WHEN {LINE_CLASS} = 'ok' THEN l.paid_fen - ({LINE_PAID_BACK}) ELSE 0 END")
}

/// GMV of a window and what separates it from quality GMV. `gmv_fen - refunds_fen - banned_fen -
/// sanctioned_fen - brushing_fen = quality_gmv_fen` holds by construction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GmvTotals {
    pub orders: i64,
    pub gmv_fen: i64,
    pub quality_gmv_fen: i64,
    /// Paid back on `ok` lines.
    pub refunds_fen: i64,
    pub banned_fen: i64,
    pub sanctioned_fen: i64,
    pub brushing_fen: i64,
}

/// One bucket of the GMV series: `bucket` counts buckets from the window's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GmvBucket {
    pub bucket: i64,
    pub gmv_fen: i64,
    pub quality_gmv_fen: i64,
}

/// Orders and GMV by a key (an origin region, a shipping point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedCount {
    pub key: String,
    pub orders: i64,
    pub gmv_fen: i64,
}

/// Farm-specialty lines of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FarmSales {
    pub orders: i64,
    pub units: i64,
    pub gmv_fen: i64,
}

/// One campaign zone's figures over a window: its approved entries, what they sold (GMV and
/// quality GMV as above) and the likes on its products and the videos that link them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFigures {
    pub zone_id: i64,
    pub name: String,
    pub traffic_target_bp: i64,
    pub entries: i64,
    pub orders: i64,
    pub units: i64,
    pub gmv_fen: i64,
    pub quality_gmv_fen: i64,
    pub likes: i64,
}

/// A flagged line as the hot lists need it back at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedLine {
    pub order_id: i64,
    pub buyer_user_id: i64,
    pub sku_id: i64,
    pub category_id: i64,
    pub units: i64,
    pub paid_fen: i64,
    pub paid_at_ms: i64,
    pub rule: String,
}

fn get_i64(row: &sqlx::any::AnyRow, column: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(column)?)
}

/// `column` of the row of `rows` whose `key_column` is `key`; 0 when no row has it (a grouped
/// count with nothing in the group).
fn column_for(rows: &[sqlx::any::AnyRow], key_column: &str, key: i64, column: &str) -> Result<i64, StoreError> {
    for row in rows {
        if get_i64(row, key_column)? == key {
            return get_i64(row, column);
        }
    }
    Ok(0)
}

impl Store {
    /// Records that the brushing rules flagged the lines of `sku_id` in `order_id`. A line
    /// flagged before keeps its first rule.
    pub async fn flag_brushing(&self, order_id: i64, sku_id: i64, rule: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO brushing_flags (line_id, order_id, rule, flagged_at_ms) \
             SELECT id, order_id, $3, $4 FROM order_lines WHERE order_id = $1 AND sku_id = $2 \
             ON CONFLICT (line_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(sku_id)
        .bind(rule)
        .bind(at_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Flagged lines of orders paid since `since_ms` (not cancelled), oldest first.
    pub async fn flagged_lines(&self, since_ms: i64) -> Result<Vec<FlaggedLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id AS order_id, o.buyer_user_id, l.sku_id, p.category_id, \
             l.quantity - l.returned_units AS quantity, l.paid_fen - l.refunded_fen AS paid_fen, \
             o.paid_at_ms, bf.rule FROM brushing_flags bf JOIN order_lines l ON l.id = bf.line_id \
             JOIN orders o ON o.id = l.order_id JOIN products p ON p.id = l.product_id \
             WHERE o.paid_at_ms IS NOT NULL AND o.paid_at_ms >= $1 AND o.status <> 'cancelled' \
             ORDER BY o.paid_at_ms, l.id",
        )
        .bind(since_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FlaggedLine {
                    order_id: get_i64(r, "order_id")?,
                    buyer_user_id: get_i64(r, "buyer_user_id")?,
                    sku_id: get_i64(r, "sku_id")?,
                    category_id: get_i64(r, "category_id")?,
                    units: get_i64(r, "quantity")?,
                    paid_fen: get_i64(r, "paid_fen")?,
                    paid_at_ms: get_i64(r, "paid_at_ms")?,
                    rule: r.try_get("rule")?,
                })
            })
            .collect()
    }

    /// Every zone of `campaign_id` with its figures over `[from_ms, to_ms)`, in zone order. A
    /// SKU entered in two zones counts in both (each zone's own performance).
    pub async fn zone_figures(
        &self,
        campaign_id: i64,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ZoneFigures>, StoreError> {
        let scope = merchant_id.unwrap_or(0);
        let zones = sqlx::query(
            "SELECT z.id, z.name, z.traffic_target_bp, \
             (SELECT COUNT(*) FROM zone_entries e WHERE e.zone_id = z.id AND e.status = 'approved' \
               AND ($2 = 0 OR e.merchant_id = $2)) AS entries \
             FROM campaign_zones z WHERE z.campaign_id = $1 ORDER BY z.id",
        )
        .bind(campaign_id)
        .bind(scope)
        .fetch_all(self.reader())
        .await?;
        let sales_sql = format!(
            "SELECT e.zone_id, COUNT(DISTINCT o.id) AS orders, CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) AS units, \
             CAST(COALESCE(SUM(l.paid_fen), 0) AS BIGINT) AS gmv_fen, \
             CAST(COALESCE(SUM({quality}), 0) AS BIGINT) AS quality_gmv_fen \
             {LINES_FROM} JOIN zone_entries e ON e.sku_id = l.sku_id AND e.status = 'approved' \
             JOIN campaign_zones z ON z.id = e.zone_id \
             WHERE {PAID_IN_WINDOW} AND z.campaign_id = $4 GROUP BY e.zone_id",
            quality = quality_sql(),
        );
        let sales = sqlx::query(&sales_sql)
            .bind(from_ms)
            .bind(to_ms)
            .bind(scope)
            .bind(campaign_id)
            .fetch_all(self.reader())
            .await?;
        // Likes on a zone's products and on videos linking them; an event counts once per zone.
        let likes = sqlx::query(
            "SELECT zone_id, COUNT(DISTINCT event_id) AS likes FROM ( \
               SELECT e.zone_id, ev.id AS event_id FROM interaction_events ev \
               JOIN zone_entries e ON ev.item_type = 'product' AND ev.item_id = e.product_id \
               JOIN campaign_zones z ON z.id = e.zone_id \
               WHERE ev.kind = 'like' AND ev.occurred_at_ms >= $1 AND ev.occurred_at_ms < $2 AND e.status = 'approved' \
                 AND z.campaign_id = $4 AND ($3 = 0 OR e.merchant_id = $3) \
               UNION ALL \
               SELECT e.zone_id, ev.id AS event_id FROM interaction_events ev \
               JOIN video_products vp ON ev.item_type = 'video' AND ev.item_id = vp.video_id \
               JOIN zone_entries e ON e.product_id = vp.product_id \
               JOIN campaign_zones z ON z.id = e.zone_id \
               WHERE ev.kind = 'like' AND ev.occurred_at_ms >= $1 AND ev.occurred_at_ms < $2 AND e.status = 'approved' \
                 AND z.campaign_id = $4 AND ($3 = 0 OR e.merchant_id = $3) \
             ) liked GROUP BY zone_id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(scope)
        .bind(campaign_id)
        .fetch_all(self.reader())
        .await?;
        let find =
            |rows: &[sqlx::any::AnyRow], zone_id: i64, column: &str| column_for(rows, "zone_id", zone_id, column);
        zones
            .iter()
            .map(|z| {
                let zone_id = get_i64(z, "id")?;
                Ok(ZoneFigures {
                    zone_id,
                    name: z.try_get("name")?,
                    traffic_target_bp: get_i64(z, "traffic_target_bp")?,
                    entries: get_i64(z, "entries")?,
                    orders: find(&sales, zone_id, "orders")?,
                    units: find(&sales, zone_id, "units")?,
                    gmv_fen: find(&sales, zone_id, "gmv_fen")?,
                    quality_gmv_fen: find(&sales, zone_id, "quality_gmv_fen")?,
                    likes: find(&likes, zone_id, "likes")?,
                })
            })
            .collect()
    }

    /// GMV, quality GMV and what lies between them, over orders paid in `[from_ms, to_ms)`.
    pub async fn gmv_totals(
        &self,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<GmvTotals, StoreError> {
        let class = LINE_CLASS;
        let sql = format!(
            "SELECT COUNT(DISTINCT o.id) AS orders, \
             CAST(COALESCE(SUM(l.paid_fen), 0) AS BIGINT) AS gmv_fen, \
             CAST(COALESCE(SUM({quality}), 0) AS BIGINT) AS quality_gmv_fen, \
             CAST(COALESCE(SUM(CASE WHEN {class} = 'ok' THEN {LINE_PAID_BACK} ELSE 0 END), 0) AS BIGINT) AS refunds_fen, \
             CAST(COALESCE(SUM(CASE WHEN {class} = 'banned' THEN l.paid_fen ELSE 0 END), 0) AS BIGINT) AS banned_fen, \
             CAST(COALESCE(SUM(CASE WHEN {class} = 'sanctioned' THEN l.paid_fen ELSE 0 END), 0) AS BIGINT) AS sanctioned_fen, \
             CAST(COALESCE(SUM(CASE WHEN {class} = 'brushing' THEN l.paid_fen ELSE 0 END), 0) AS BIGINT) AS brushing_fen \
             {LINES_FROM} WHERE {PAID_IN_WINDOW}",
            quality = quality_sql(),
        );
        let row =
            sqlx::query(&sql).bind(from_ms).bind(to_ms).bind(merchant_id.unwrap_or(0)).fetch_one(self.reader()).await?;
        Ok(GmvTotals {
            orders: get_i64(&row, "orders")?,
            gmv_fen: get_i64(&row, "gmv_fen")?,
            quality_gmv_fen: get_i64(&row, "quality_gmv_fen")?,
            refunds_fen: get_i64(&row, "refunds_fen")?,
            banned_fen: get_i64(&row, "banned_fen")?,
            sanctioned_fen: get_i64(&row, "sanctioned_fen")?,
            brushing_fen: get_i64(&row, "brushing_fen")?,
        })
    }

    /// GMV and quality GMV per bucket of `bucket_ms` from `from_ms`; buckets without sales are
    /// left out (the caller fills them).
    pub async fn gmv_series(
        &self,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<GmvBucket>, StoreError> {
        let sql = format!(
            "SELECT (o.paid_at_ms - $1) / $4 AS bucket, CAST(COALESCE(SUM(l.paid_fen), 0) AS BIGINT) AS gmv_fen, \
             CAST(COALESCE(SUM({quality}), 0) AS BIGINT) AS quality_gmv_fen \
             {LINES_FROM} WHERE {PAID_IN_WINDOW} GROUP BY bucket ORDER BY bucket",
            quality = quality_sql(),
        );
        let rows = sqlx::query(&sql)
            .bind(from_ms)
            .bind(to_ms)
            .bind(merchant_id.unwrap_or(0))
            .bind(bucket_ms.max(1))
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GmvBucket {
                    bucket: get_i64(r, "bucket")?,
                    gmv_fen: get_i64(r, "gmv_fen")?,
                    quality_gmv_fen: get_i64(r, "quality_gmv_fen")?,
                })
            })
            .collect()
    }

    /// Orders and GMV by the products' origin region, most GMV first, at most `limit`.
    pub async fn orders_by_origin_region(
        &self,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<KeyedCount>, StoreError> {
        let sql = format!(
            "SELECT p.origin_region_code AS key, COUNT(DISTINCT o.id) AS orders, \
             CAST(COALESCE(SUM(l.paid_fen), 0) AS BIGINT) AS gmv_fen \
             {LINES_FROM} WHERE {PAID_IN_WINDOW} GROUP BY p.origin_region_code \
             ORDER BY gmv_fen DESC, key LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(from_ms)
            .bind(to_ms)
            .bind(merchant_id.unwrap_or(0))
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        keyed(&rows)
    }

    /// Orders shipped in `[from_ms, to_ms)` by shipping point (the shop's region), most first.
    pub async fn shipped_by_point(
        &self,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<KeyedCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.region_code AS key, COUNT(*) AS orders, CAST(COALESCE(SUM(o.goods_list_fen), 0) AS BIGINT) AS gmv_fen \
             FROM orders o JOIN merchants m ON m.id = o.merchant_id \
             WHERE o.shipped_at_ms IS NOT NULL AND o.shipped_at_ms >= $1 AND o.shipped_at_ms < $2 \
             AND ($3 = 0 OR o.merchant_id = $3) GROUP BY m.region_code ORDER BY orders DESC, key LIMIT $4",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(merchant_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        keyed(&rows)
    }

    /// Orders shipped in `[from_ms, to_ms)` from each of `points` (shipping points with none are
    /// left out).
    pub async fn shipped_at_points(
        &self,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
        points: &[String],
    ) -> Result<Vec<KeyedCount>, StoreError> {
        if points.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..points.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT m.region_code AS key, COUNT(*) AS orders, CAST(COALESCE(SUM(o.goods_list_fen), 0) AS BIGINT) AS gmv_fen \
             FROM orders o JOIN merchants m ON m.id = o.merchant_id \
             WHERE o.shipped_at_ms IS NOT NULL AND o.shipped_at_ms >= $1 AND o.shipped_at_ms < $2 \
             AND ($3 = 0 OR o.merchant_id = $3) AND m.region_code IN ({}) GROUP BY m.region_code ORDER BY key",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(from_ms).bind(to_ms).bind(merchant_id.unwrap_or(0));
        for point in points {
            query = query.bind(point.as_str());
        }
        keyed(&query.fetch_all(self.reader()).await?)
    }

    /// Farm-specialty lines of orders paid in `[from_ms, to_ms)`.
    pub async fn farm_sales(
        &self,
        merchant_id: Option<i64>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<FarmSales, StoreError> {
        let sql = format!(
            "SELECT COUNT(DISTINCT o.id) AS orders, CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) AS units, \
             CAST(COALESCE(SUM(l.paid_fen), 0) AS BIGINT) AS gmv_fen \
             {LINES_FROM} WHERE {PAID_IN_WINDOW} AND p.farm_specialty = 1"
        );
        let row =
            sqlx::query(&sql).bind(from_ms).bind(to_ms).bind(merchant_id.unwrap_or(0)).fetch_one(self.reader()).await?;
        Ok(FarmSales {
            orders: get_i64(&row, "orders")?,
            units: get_i64(&row, "units")?,
            gmv_fen: get_i64(&row, "gmv_fen")?,
        })
    }

    /// Distinct buyers of lines carrying 安心购 services, in orders paid in `[from_ms, to_ms)`.
    pub async fn assured_buyers(&self, merchant_id: Option<i64>, from_ms: i64, to_ms: i64) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT COUNT(DISTINCT o.buyer_user_id) AS n {LINES_FROM} WHERE {PAID_IN_WINDOW} AND l.services <> '[]'"
        );
        let row =
            sqlx::query(&sql).bind(from_ms).bind(to_ms).bind(merchant_id.unwrap_or(0)).fetch_one(self.reader()).await?;
        get_i64(&row, "n")
    }

    /// Of `sku_ids`, those whose product carries a domestic brand, with the shop of each SKU:
    /// (sku, merchant, domestic).
    pub async fn sku_brand_origins(&self, sku_ids: &[i64]) -> Result<Vec<(i64, i64, bool)>, StoreError> {
        if sku_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..sku_ids.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT s.id AS sku_id, p.merchant_id, COALESCE(b.domestic_brand, 0) AS domestic FROM skus s \
             JOIN products p ON p.id = s.product_id LEFT JOIN brands b ON b.id = p.brand_id \
             WHERE s.id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in sku_ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| Ok((get_i64(r, "sku_id")?, get_i64(r, "merchant_id")?, get_i64(r, "domestic")? != 0)))
            .collect()
    }
}

/// After-sale kinds that say the goods themselves were wrong (broken, defective, spoiled, a
/// reaction, fake). `return_refund` is not among them: the store does not record whether a
/// return was a seven-day no-reason one, so it cannot be told from a defect return.
const QUALITY_KINDS: &str = "'exchange', 'reship', 'repair', 'fresh_damage', 'allergy_return', 'counterfeit'";

/// Statuses of an after-sale that was accepted (by the merchant, a timer or arbitration), or done.
const ACCEPTED_STATUSES: &str =
    "'awaiting_return', 'return_shipped', 'return_received', 'awaiting_replacement', 'refunded', 'resolved'";

/// What one shop's experience score is computed from, over orders paid in a window (see
/// `xingqu_app::analytics::MerchantScore` for the formulas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScoreCounts {
    pub merchant_id: i64,
    pub shop_name: String,
    /// Orders paid in the window.
    pub orders: i64,
    /// Their lines, and those with an accepted quality after-sale (`QUALITY_KINDS`).
    pub lines: i64,
    pub quality_lines: i64,
    /// Orders that had to ship by now (shipped, or paid and past their deadline unshipped), and
    /// those shipped by the deadline.
    pub due_orders: i64,
    pub on_time_orders: i64,
    /// After-sales the merchant had to answer that left `requested` other than by the buyer's
    /// withdrawal, and those the shop's staff answered by the answer deadline.
    pub after_sales: i64,
    pub answered_in_time: i64,
}

impl Store {
    /// Score inputs for every shop with orders paid in `[from_ms, to_ms)` (or only `merchant_id`),
    /// by shop id. An order without a dispatch promise is due `default_dispatch_ms` after
    /// payment; a merchant answers within `answer_ms` of the request; `now_ms` decides which
    /// unshipped orders are overdue.
    pub async fn score_counts(
        &self,
        merchant_id: Option<i64>,
        (from_ms, to_ms): (i64, i64),
        default_dispatch_ms: i64,
        answer_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<ScoreCounts>, StoreError> {
        let scope = merchant_id.unwrap_or(0);
        let shops = sqlx::query(&format!(
            "SELECT o.merchant_id, m.shop_name, COUNT(*) AS orders FROM orders o JOIN merchants m ON m.id = o.merchant_id \
             WHERE {PAID_IN_WINDOW} GROUP BY o.merchant_id, m.shop_name ORDER BY o.merchant_id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(scope)
        .fetch_all(self.reader())
        .await?;
        let product = sqlx::query(&format!(
            "SELECT o.merchant_id, COUNT(*) AS line_count, CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM after_sales a \
             WHERE a.line_id = l.id AND a.kind IN ({QUALITY_KINDS}) AND a.status IN ({ACCEPTED_STATUSES})) \
             THEN 1 ELSE 0 END), 0) AS BIGINT) AS quality_lines \
             FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE {PAID_IN_WINDOW} GROUP BY o.merchant_id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(scope)
        .fetch_all(self.reader())
        .await?;
        let deadline = "COALESCE(o.dispatch_deadline_ms, o.paid_at_ms + $4)";
        let logistics = sqlx::query(&format!(
            "SELECT o.merchant_id, COUNT(*) AS due_orders, CAST(COALESCE(SUM(CASE WHEN o.shipped_at_ms IS NOT NULL \
             AND o.shipped_at_ms <= {deadline} THEN 1 ELSE 0 END), 0) AS BIGINT) AS on_time_orders \
             FROM orders o WHERE {PAID_IN_WINDOW} \
             AND (o.shipped_at_ms IS NOT NULL OR (o.status = 'paid' AND {deadline} < $5)) GROUP BY o.merchant_id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(scope)
        .bind(default_dispatch_ms)
        .bind(now_ms)
        .fetch_all(self.reader())
        .await?;
        // The one event that took each request out of `requested`: the shop's answer, the
        // answer timer (no actor), or the buyer's withdrawal (not counted).
        let service = sqlx::query(&format!(
            "SELECT a.merchant_id, COUNT(*) AS after_sales, CAST(COALESCE(SUM(CASE WHEN ev.at_ms <= a.created_at_ms + $4 \
             AND EXISTS (SELECT 1 FROM users u WHERE u.id = ev.actor_user_id AND u.merchant_id = a.merchant_id) \
             THEN 1 ELSE 0 END), 0) AS BIGINT) AS answered_in_time \
             FROM after_sales a JOIN orders o ON o.id = a.order_id \
             JOIN after_sale_events ev ON ev.after_sale_id = a.id AND ev.from_status = 'requested' \
             WHERE {PAID_IN_WINDOW} AND a.kind NOT IN ('price_protection', 'counterfeit') \
             AND (ev.actor_user_id IS NULL OR ev.actor_user_id <> a.buyer_user_id) GROUP BY a.merchant_id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(scope)
        .bind(answer_ms)
        .fetch_all(self.reader())
        .await?;
        let find = |rows: &[sqlx::any::AnyRow], merchant_id: i64, column: &str| {
            column_for(rows, "merchant_id", merchant_id, column)
        };
        shops
            .iter()
            .map(|shop| {
                let id = get_i64(shop, "merchant_id")?;
                Ok(ScoreCounts {
                    merchant_id: id,
                    shop_name: shop.try_get("shop_name")?,
                    orders: get_i64(shop, "orders")?,
                    lines: find(&product, id, "line_count")?,
                    quality_lines: find(&product, id, "quality_lines")?,
                    due_orders: find(&logistics, id, "due_orders")?,
                    on_time_orders: find(&logistics, id, "on_time_orders")?,
                    after_sales: find(&service, id, "after_sales")?,
                    answered_in_time: find(&service, id, "answered_in_time")?,
                })
            })
            .collect()
    }
}

fn keyed(rows: &[sqlx::any::AnyRow]) -> Result<Vec<KeyedCount>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(KeyedCount { key: r.try_get("key")?, orders: get_i64(r, "orders")?, gmv_fen: get_i64(r, "gmv_fen")? })
        })
        .collect()
}
