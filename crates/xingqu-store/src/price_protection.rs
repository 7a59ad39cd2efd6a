//! Price protection: SKUs' policies, the price changes it pays for, the payments (claims,
//! shipment, sweeps), and the set-based sweep with its per-batch ledger posting.

use crate::{Backend, Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A SKU's price-protection promise (validated by the app): window in days (0: none), where it
/// starts (`placement` or `sign_off`), whether a price cut pays by itself, the platform's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionPolicy {
    pub window_days: i64,
    pub from: String,
    pub auto: bool,
    pub platform_bps: i64,
}

/// One row of the price history: a price change protection may pay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub id: i64,
    pub sku_id: i64,
    pub old_price_fen: Option<i64>,
    pub new_price_fen: i64,
    pub changed_at_ms: i64,
}

/// Price protection to pay, as a claim or shipment decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProtection {
    pub line_id: i64,
    pub drop_id: i64,
    /// The running flash sale whose price the claim compared with (0: the list price).
    pub flash_sale_id: i64,
    /// The shop coupon anyone could claim that brought today's price lower still (0: none), and
    /// what it took off a unit.
    pub coupon_id: i64,
    pub coupon_off_fen: i64,
    /// The campaign entry whose price made today's price (0: none).
    pub zone_entry_id: i64,
    pub order_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub units: i64,
    pub amount_fen: i64,
    pub platform_fen: i64,
    pub merchant_settled: bool,
    pub created_by: Option<i64>,
    pub now_ms: i64,
}

/// Price protection paid on a line for one price drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionRow {
    pub id: i64,
    pub line_id: i64,
    pub drop_id: i64,
    pub flash_sale_id: i64,
    pub coupon_id: i64,
    pub coupon_off_fen: i64,
    /// The campaign entry whose price it compared with (0: none), and that price.
    pub zone_entry_id: i64,
    pub campaign_price_fen: i64,
    pub order_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub units: i64,
    pub amount_fen: i64,
    pub platform_fen: i64,
    /// The price the drop set, per unit.
    pub new_price_fen: i64,
    /// `pending` (recorded, going out through the gateway) or `sent`.
    pub payout_status: String,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
}

impl ProtectionRow {
    pub fn merchant_fen(&self) -> i64 {
        self.amount_fen - self.platform_fen
    }

    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            line_id: row.try_get("line_id")?,
            drop_id: row.try_get("drop_id")?,
            flash_sale_id: row.try_get("flash_sale_id")?,
            coupon_id: row.try_get("coupon_id")?,
            coupon_off_fen: row.try_get("coupon_off_fen")?,
            zone_entry_id: row.try_get("zone_entry_id")?,
            campaign_price_fen: row.try_get("campaign_price_fen")?,
            order_id: row.try_get("order_id")?,
            buyer_user_id: row.try_get("buyer_user_id")?,
            merchant_id: row.try_get("merchant_id")?,
            units: row.try_get("units")?,
            amount_fen: row.try_get("amount_fen")?,
            platform_fen: row.try_get("platform_fen")?,
            new_price_fen: row.try_get("new_price_fen")?,
            payout_status: row.try_get("payout_status")?,
            created_by: row.try_get("created_by")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

const PROTECTION_SELECT: &str = "SELECT p.id, p.line_id, p.drop_id, p.flash_sale_id, p.coupon_id, p.coupon_off_fen, \
    p.zone_entry_id, COALESCE(e.campaign_price_fen, 0) AS campaign_price_fen, p.order_id, p.buyer_user_id, p.merchant_id, \
    p.units, p.amount_fen, p.platform_fen, h.new_price_fen, p.payout_status, p.created_by, p.created_at_ms \
    FROM price_protections p JOIN price_history h ON h.id = p.drop_id LEFT JOIN zone_entries e ON e.id = p.zone_entry_id";

/// What one batch of a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepBatch {
    /// Protection payments the batch recorded.
    pub refunds: i64,
    /// False once the sweep has passed the SKU's last protected line (and is marked done).
    pub more: bool,
    /// The sweep's cursor after the batch.
    pub after_line_id: i64,
}

/// A price drop whose automatic sweep has not finished. For a flash sale, `drop` carries the
/// list price change in force with the flash price and start as its price and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSweep {
    pub drop: PriceChange,
    /// The flash sale swept (0: a list-price cut).
    pub flash_sale_id: i64,
    pub after_line_id: i64,
    pub platform_bps: i64,
}

const DAY_MS: i64 = 86_400_000;

/// Reads price-history rows as [`PriceChange`]s.
const PRICE_CHANGE_SELECT: &str = "SELECT id, sku_id, old_price_fen, new_price_fen, changed_at_ms FROM price_history";

fn price_change(row: &AnyRow) -> Result<PriceChange, sqlx::Error> {
    Ok(PriceChange {
        id: row.try_get("id")?,
        sku_id: row.try_get("sku_id")?,
        old_price_fen: row.try_get("old_price_fen")?,
        new_price_fen: row.try_get("new_price_fen")?,
        changed_at_ms: row.try_get("changed_at_ms")?,
    })
}

/// SQL for `front_loaded_share(total, quantity, 0, returned_units)` of
/// `xingqu_domain::after_sale::money`: the refunded units' largest-remainder share of `total`.
fn front_loaded_sql(total: &str) -> String {
    format!(
        "(CASE WHEN l.returned_units = 0 THEN 0 ELSE l.returned_units * ({total} / l.quantity) + \
         CASE WHEN l.returned_units < {total} % l.quantity THEN l.returned_units ELSE {total} % l.quantity END END)"
    )
}

/// SQL for the protection a refund took back (see `ProtectedLine::due_fen`): what the refunded
/// units' share of the payment exceeds their refunds by, between 0 and the protection paid.
fn taken_back_sql(protection_fen: &str) -> String {
    let over = format!("({} - l.refunded_fen)", front_loaded_sql("l.paid_fen"));
    format!(
        "(CASE WHEN l.returned_units = 0 OR {over} < 0 THEN 0 WHEN {over} > {protection_fen} THEN {protection_fen} \
         ELSE {over} END)"
    )
}

/// SQL for the price protection paid on the line whose id is `line_id` (an SQL expression),
/// named `protection_fen`.
pub(crate) fn protection_paid_sql(line_id: &str) -> String {
    format!(
        "(SELECT CAST(COALESCE(SUM(p.amount_fen), 0) AS BIGINT) FROM price_protections p \
         WHERE p.line_id = {line_id}) AS protection_fen"
    )
}

impl Tx {
    pub async fn set_protection_policy(&mut self, sku_id: i64, policy: &ProtectionPolicy) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE skus SET protect_window_days = $1, protect_from = $2, protect_auto = $3, protect_platform_bps = $4 \
             WHERE id = $5",
        )
        .bind(policy.window_days)
        .bind(policy.from.clone())
        .bind(i64::from(policy.auto))
        .bind(policy.platform_bps)
        .bind(sku_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The SKU's latest price change (the price in force), read inside the transaction.
    pub async fn latest_price_change(&mut self, sku_id: i64) -> Result<Option<PriceChange>, StoreError> {
        let row = sqlx::query(&format!("{PRICE_CHANGE_SELECT} WHERE sku_id = $1 ORDER BY id DESC LIMIT 1"))
            .bind(sku_id)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.as_ref().map(price_change).transpose()?)
    }

    /// The lowest price the SKU was set to in `[from_ms, until_ms)` (the change that set it): what
    /// an order shipped late is owed protection for.
    pub async fn lowest_price_between(
        &mut self,
        sku_id: i64,
        from_ms: i64,
        until_ms: i64,
    ) -> Result<Option<PriceChange>, StoreError> {
        let row = sqlx::query(&format!(
            "{PRICE_CHANGE_SELECT} WHERE sku_id = $1 AND changed_at_ms >= $2 AND changed_at_ms < $3 ORDER BY new_price_fen, id LIMIT 1"
        ))
        .bind(sku_id)
        .bind(from_ms)
        .bind(until_ms)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.as_ref().map(price_change).transpose()?)
    }

    /// The lowest flash-sale price of the SKU among sales that started in `[from_ms, until_ms)`:
    /// (sale id, price, start). A sale ended before its start (an empty window) never sold.
    pub async fn lowest_flash_between(
        &mut self,
        sku_id: i64,
        from_ms: i64,
        until_ms: i64,
    ) -> Result<Option<(i64, i64, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, price_fen, starts_at_ms FROM flash_sales WHERE sku_id = $1 AND starts_at_ms >= $2 \
             AND starts_at_ms < $3 AND ends_at_ms > starts_at_ms ORDER BY price_fen, id LIMIT 1",
        )
        .bind(sku_id)
        .bind(from_ms)
        .bind(until_ms)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get("price_fen")?, r.try_get("starts_at_ms")?)))
            .transpose()
            .map_err(|e: sqlx::Error| e.into())
    }

    /// The SKU's list price change in force at `at_ms`.
    pub async fn price_change_at(&mut self, sku_id: i64, at_ms: i64) -> Result<Option<PriceChange>, StoreError> {
        let row = sqlx::query(&format!(
            "{PRICE_CHANGE_SELECT} WHERE sku_id = $1 AND changed_at_ms <= $2 ORDER BY changed_at_ms DESC, id DESC LIMIT 1"
        ))
        .bind(sku_id)
        .bind(at_ms)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.as_ref().map(price_change).transpose()?)
    }

    /// Queues the automatic sweep of a price drop; queuing twice is harmless.
    pub async fn queue_protection_sweep(&mut self, drop: &PriceChange, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO protection_sweeps (drop_id, sku_id, status, created_at_ms) VALUES ($1, $2, 'pending', $3) \
             ON CONFLICT (drop_id, flash_sale_id) DO NOTHING",
        )
        .bind(drop.id)
        .bind(drop.sku_id)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Queues the sweep of a flash sale below the list price, to run when it starts; queuing
    /// twice is harmless.
    pub async fn queue_flash_protection_sweep(
        &mut self,
        drop: &PriceChange,
        flash_sale_id: i64,
        starts_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO protection_sweeps (drop_id, flash_sale_id, due_at_ms, sku_id, status, created_at_ms) \
             VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (drop_id, flash_sale_id) DO NOTHING",
        )
        .bind(drop.id)
        .bind(flash_sale_id)
        .bind(starts_at_ms)
        .bind(drop.sku_id)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Closes the pending sweeps of a flash sale ended before its start: its price never applied,
    /// so it owes no line anything.
    pub async fn drop_flash_protection_sweeps(&mut self, flash_sale_id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE protection_sweeps SET status = 'done', finished_at_ms = $1 \
             WHERE flash_sale_id = $2 AND status = 'pending'",
        )
        .bind(now_ms)
        .bind(flash_sale_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Runs a finished sweep again from the start (after a fix, or to prove it idempotent): every
    /// line it already paid conflicts or is owed nothing, so a re-run pays only what is missing.
    pub async fn restart_protection_sweep(&mut self, drop_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE protection_sweeps SET status = 'pending', after_line_id = 0, finished_at_ms = NULL WHERE drop_id = $1",
        )
        .bind(drop_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records price protection paid on a line for a drop (to go out through the gateway). A
    /// second payment for the same line and drop is a [`StoreError::Conflict`].
    pub async fn insert_price_protection(&mut self, p: &NewProtection) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO price_protections (line_id, drop_id, flash_sale_id, order_id, buyer_user_id, merchant_id, units, \
             amount_fen, platform_fen, merchant_settled, payout_status, created_by, created_at_ms, coupon_id, \
             coupon_off_fen, zone_entry_id) \
             VALUES ($1, $2, $12, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $13, $14, $15) RETURNING id",
        )
        .bind(p.line_id)
        .bind(p.drop_id)
        .bind(p.order_id)
        .bind(p.buyer_user_id)
        .bind(p.merchant_id)
        .bind(p.units)
        .bind(p.amount_fen)
        .bind(p.platform_fen)
        .bind(i64::from(p.merchant_settled))
        .bind(p.created_by)
        .bind(p.now_ms)
        .bind(p.flash_sale_id)
        .bind(p.coupon_id)
        .bind(p.coupon_off_fen)
        .bind(p.zone_entry_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// One batch of a price drop's automatic sweep, in one transaction: the next `batch_lines`
    /// protected lines of the SKU after the sweep's cursor. Set-based: one `INSERT … SELECT`
    /// records every line's protection (the amount is
    /// `xingqu_domain::price_protection::due_fen`, written in SQL), then the batch's ledger
    /// posting and the lines' running totals are written from the inserted rows. A line already
    /// paid for this drop (a claim, an earlier run) conflicts and is skipped; the cursor moves by
    /// compare-and-set, so two workers cannot both run a batch.
    pub async fn sweep_protection_batch(
        &mut self,
        sweep: &PendingSweep,
        batch_lines: i64,
        now_ms: i64,
    ) -> Result<SweepBatch, StoreError> {
        let drop = &sweep.drop;
        let lo = sweep.after_line_id;
        let hi: Option<i64> = sqlx::query(
            "SELECT MAX(id) AS hi FROM (SELECT id FROM order_lines WHERE sku_id = $1 AND protect_window_days > 0 \
             AND id > $2 ORDER BY id LIMIT $3) x",
        )
        .bind(drop.sku_id)
        .bind(lo)
        .bind(batch_lines)
        .fetch_one(self.conn())
        .await?
        .try_get("hi")?;
        let Some(hi) = hi else {
            let done = sqlx::query(
                "UPDATE protection_sweeps SET status = 'done', finished_at_ms = $1 \
                 WHERE drop_id = $2 AND flash_sale_id = $4 AND status = 'pending' AND after_line_id = $3",
            )
            .bind(now_ms)
            .bind(drop.id)
            .bind(lo)
            .bind(sweep.flash_sale_id)
            .execute(self.conn())
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Concurrent);
            }
            return Ok(SweepBatch { refunds: 0, more: false, after_line_id: lo });
        };
        if self.backend == Backend::Postgres {
            // Claims lock the line they pay; the batch locks its lines in id order.
            sqlx::query(
                "SELECT id FROM order_lines WHERE sku_id = $1 AND protect_window_days > 0 AND id > $2 AND id <= $3 \
                 ORDER BY id FOR UPDATE",
            )
            .bind(drop.sku_id)
            .bind(lo)
            .bind(hi)
            .fetch_all(self.conn())
            .await?;
        }
        // Protection already paid on a line for an earlier drop is deducted; a SKU on which no
        // other drop has paid anything (the common case) skips looking it up. Payments for this
        // drop itself (a buyer's claim) conflict on (line, drop) and are skipped either way.
        let earlier: Option<(Option<i64>, i64)> =
            sqlx::query("SELECT protect_first_drop_id, protect_multi FROM skus WHERE id = $1")
                .bind(drop.sku_id)
                .fetch_optional(self.conn())
                .await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get("protect_first_drop_id")?, r.try_get("protect_multi")?)))
                .transpose()?;
        // A flash sale's sweep always looks: its drop may have paid already, under the list price.
        let look_up_earlier = sweep.flash_sale_id != 0
            || earlier.is_some_and(|(first, multi)| multi != 0 || first.is_some_and(|d| d != drop.id));
        let (paid_join, paid_fen) = if look_up_earlier {
            (
                "LEFT JOIN (SELECT line_id, CAST(SUM(amount_fen) AS BIGINT) AS paid_fen FROM price_protections \
                 WHERE line_id IN (SELECT id FROM order_lines \
                 WHERE sku_id = $6 AND protect_window_days > 0 AND id > $7 AND id <= $3) \
                 GROUP BY line_id) pp ON pp.line_id = l.id",
                "COALESCE(pp.paid_fen, 0)",
            )
        } else {
            ("", "0")
        };
        // Eligible: shipped (unshipped orders are paid at shipment; cancelled ones never), placed
        // before the drop, and the drop inside the line's window, to the millisecond.
        let inserted = sqlx::query(&format!(
            "INSERT INTO price_protections (line_id, drop_id, flash_sale_id, order_id, buyer_user_id, merchant_id, units, \
             amount_fen, platform_fen, sweep_batch, merchant_settled, payout_status, created_at_ms) \
             SELECT line_id, $2, $9, order_id, buyer_user_id, merchant_id, units, amount_fen, amount_fen * $1 / 10000, \
             $3, settled, 'pending', $4 \
             FROM (SELECT order_id, line_id, buyer_user_id, merchant_id, units, settled, \
                   CASE WHEN due_fen < cap_fen THEN due_fen ELSE cap_fen END AS amount_fen \
                   FROM (SELECT l.order_id, l.id AS line_id, o.buyer_user_id, o.merchant_id, \
                         CASE WHEN o.settled_at_ms IS NULL THEN 0 ELSE 1 END AS settled, \
                         l.quantity - l.returned_units AS units, \
                         l.merchant_net_fen - {net_returned} - $5 * (l.quantity - l.returned_units) \
                           - {paid_fen} + {taken_back} AS due_fen, \
                         l.paid_fen - l.refunded_fen - {paid_fen} - l.compensation_fen AS cap_fen \
                         FROM order_lines l JOIN orders o ON o.id = l.order_id {paid_join} \
                         WHERE l.sku_id = $6 AND l.protect_window_days > 0 AND l.id > $7 AND l.id <= $3 \
                         AND o.status IN ('shipped', 'delivered', 'completed') AND o.created_at_ms <= $8 \
                         AND $8 < (CASE WHEN l.protect_from = 'placement' THEN o.created_at_ms \
                                   ELSE COALESCE(o.delivered_at_ms, $8) END) + l.protect_window_days * {DAY_MS}) d) q \
             WHERE amount_fen > 0 \
             ON CONFLICT (line_id, drop_id, flash_sale_id, coupon_id, zone_entry_id) DO NOTHING",
            net_returned = front_loaded_sql("l.merchant_net_fen"),
            taken_back = taken_back_sql(paid_fen),
        ))
        .bind(sweep.platform_bps)
        .bind(drop.id)
        .bind(hi)
        .bind(now_ms)
        .bind(drop.new_price_fen)
        .bind(drop.sku_id)
        .bind(lo)
        .bind(drop.changed_at_ms)
        .bind(sweep.flash_sale_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        let refunds = i64::try_from(inserted).map_err(|_| StoreError::Constraint)?;
        if refunds > 0 {
            self.post_sweep_batch((drop.id, sweep.flash_sale_id), hi, lo, now_ms).await?;
            self.note_protection_paid(drop.sku_id, drop.id, sweep.flash_sale_id != 0).await?;
        }
        let moved = sqlx::query(
            "UPDATE protection_sweeps SET after_line_id = $1, refunds = refunds + $2 \
             WHERE drop_id = $3 AND flash_sale_id = $5 AND status = 'pending' AND after_line_id = $4",
        )
        .bind(hi)
        .bind(refunds)
        .bind(drop.id)
        .bind(lo)
        .bind(sweep.flash_sale_id)
        .execute(self.conn())
        .await?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::Concurrent);
        }
        Ok(SweepBatch { refunds, more: true, after_line_id: hi })
    }

    /// The ledger posting of one sweep batch, from the rows the batch inserted: one posting in
    /// which each merchant's account (receivable, or settlement for orders already settled) and
    /// the platform's subsidy budget give up their parts and the refunds account takes the total.
    /// Posted merchant by merchant rather than order by order (a sweep pays hundreds of thousands
    /// of lines); the batch's after-sale rows attribute it to orders, and settlement deducts them.
    async fn post_sweep_batch(
        &mut self,
        (drop_id, flash_sale_id): (i64, i64),
        hi: i64,
        lo: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let transaction_id: i64 = sqlx::query(
            "INSERT INTO ledger_transactions (kind, reference, order_id, at_ms) VALUES ('price_protection', $1, NULL, $2) \
             RETURNING id",
        )
        .bind(format!("price_protection:drop:{drop_id}:flash:{flash_sale_id}:batch:{hi}"))
        .bind(now_ms)
        .fetch_one(self.conn())
        .await?
        .try_get("id")?;
        // One scan of the batch's rows, grouped by merchant; the platform's and the refunds'
        // entries are sums of the groups.
        sqlx::query(
            "WITH g AS (SELECT a.merchant_id, a.merchant_settled, \
             CAST(SUM(a.amount_fen - a.platform_fen) AS BIGINT) AS merchant_fen, \
             CAST(SUM(a.platform_fen) AS BIGINT) AS platform_fen, CAST(SUM(a.amount_fen) AS BIGINT) AS amount_fen \
             FROM price_protections a WHERE a.drop_id = $2 AND a.flash_sale_id = $5 AND a.sweep_batch = $3 \
             AND a.line_id > $4 AND a.line_id <= $3 GROUP BY a.merchant_id, a.merchant_settled) \
             INSERT INTO ledger_entries (transaction_id, account, amount_fen, order_id) \
             SELECT $1, CASE WHEN merchant_settled = 0 THEN 'merchant_receivable:' ELSE 'merchant_settlement:' END \
             || CAST(merchant_id AS TEXT), merchant_fen, CAST(NULL AS BIGINT) FROM g WHERE merchant_fen > 0 \
             UNION ALL SELECT $1, 'platform_subsidy_budget', CAST(SUM(platform_fen) AS BIGINT), CAST(NULL AS BIGINT) \
             FROM g HAVING SUM(platform_fen) > 0 \
             UNION ALL SELECT $1, 'refunds', -CAST(SUM(amount_fen) AS BIGINT), CAST(NULL AS BIGINT) FROM g \
             HAVING COUNT(*) > 0",
        )
        .bind(transaction_id)
        .bind(drop_id)
        .bind(hi)
        .bind(lo)
        .bind(flash_sale_id)
        .execute(self.conn())
        .await?;
        // Balanced by construction (merchant + platform = amount, a CHECK); verified anyway, as
        // every posting is.
        let total: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS total FROM ledger_entries WHERE transaction_id = $1",
        )
        .bind(transaction_id)
        .fetch_one(self.conn())
        .await?
        .try_get("total")?;
        if total != 0 {
            return Err(StoreError::Constraint);
        }
        Ok(())
    }

    /// Remembers that `drop_id` paid protection on the SKU (a sweep looks up earlier payments only
    /// on SKUs where another drop has paid).
    pub async fn note_protection_paid(&mut self, sku_id: i64, drop_id: i64, flash: bool) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE skus SET protect_multi = CASE WHEN $3 = 1 OR (protect_first_drop_id IS NOT NULL \
             AND protect_first_drop_id <> $1) THEN 1 ELSE protect_multi END, \
             protect_first_drop_id = COALESCE(protect_first_drop_id, $1) WHERE id = $2",
        )
        .bind(drop_id)
        .bind(sku_id)
        .bind(i64::from(flash))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// What sweeps paid out of an order's receivable (its merchant's parts of batch-posted price
    /// protection while unsettled): settlement deducts it from the order's ledger balance.
    pub async fn swept_protection_merchant_fen(&mut self, order_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen - platform_fen), 0) AS BIGINT) AS fen FROM price_protections \
             WHERE line_id IN (SELECT id FROM order_lines WHERE order_id = $1) AND sweep_batch IS NOT NULL \
             AND merchant_settled = 0",
        )
        .bind(order_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("fen")?)
    }

    /// Records that the gateway accepted a price-protection payout.
    pub async fn mark_protection_paid_out(&mut self, protection_id: i64, payout_ref: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE price_protections SET payout_status = 'sent', payout_ref = $1 WHERE id = $2 AND payout_status = 'pending'",
        )
        .bind(payout_ref)
        .bind(protection_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// What a line was paid for one price drop (with a flash sale and a shop coupon, 0 for
    /// none), if anything.
    pub async fn protection_for_drop(
        &mut self,
        line_id: i64,
        (drop_id, flash_sale_id, coupon_id, zone_entry_id): (i64, i64, i64, i64),
    ) -> Result<Option<ProtectionRow>, StoreError> {
        let sql = format!(
            "{PROTECTION_SELECT} WHERE p.line_id = $1 AND p.drop_id = $2 AND p.flash_sale_id = $3 AND p.coupon_id = $4 \
             AND p.zone_entry_id = $5"
        );
        let row = sqlx::query(&sql)
            .bind(line_id)
            .bind(drop_id)
            .bind(flash_sale_id)
            .bind(coupon_id)
            .bind(zone_entry_id)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.as_ref().map(ProtectionRow::from_row).transpose()?)
    }
}

impl Store {
    pub async fn protection_policy(&self, sku_id: i64) -> Result<Option<ProtectionPolicy>, StoreError> {
        let row = sqlx::query(
            "SELECT protect_window_days, protect_from, protect_auto, protect_platform_bps FROM skus WHERE id = $1",
        )
        .bind(sku_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(ProtectionPolicy {
                window_days: r.try_get("protect_window_days")?,
                from: r.try_get("protect_from")?,
                auto: r.try_get::<i64, _>("protect_auto")? != 0,
                platform_bps: r.try_get("protect_platform_bps")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Sweeps due and not yet finished, oldest first, with the SKU's platform share now. A flash
    /// sale's sweep carries its price and start as the drop's.
    pub async fn pending_protection_sweeps(&self, now_ms: i64, limit: i64) -> Result<Vec<PendingSweep>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.id, h.sku_id, h.old_price_fen, COALESCE(f.price_fen, h.new_price_fen) AS new_price_fen, \
             COALESCE(f.starts_at_ms, h.changed_at_ms) AS changed_at_ms, w.flash_sale_id, w.after_line_id, \
             s.protect_platform_bps FROM protection_sweeps w JOIN price_history h ON h.id = w.drop_id \
             JOIN skus s ON s.id = h.sku_id LEFT JOIN flash_sales f ON f.id = w.flash_sale_id \
             WHERE w.status = 'pending' AND w.due_at_ms <= $2 ORDER BY w.due_at_ms, w.drop_id LIMIT $1",
        )
        .bind(limit)
        .bind(now_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingSweep {
                    drop: price_change(r)?,
                    flash_sale_id: r.try_get("flash_sale_id")?,
                    after_line_id: r.try_get("after_line_id")?,
                    platform_bps: r.try_get("protect_platform_bps")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// What one price drop paid, line by line.
    pub async fn protections_for_drop(&self, drop_id: i64) -> Result<Vec<ProtectionRow>, StoreError> {
        let sql = format!("{PROTECTION_SELECT} WHERE p.drop_id = $1 ORDER BY p.line_id");
        let rows = sqlx::query(&sql).bind(drop_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ProtectionRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn price_protection(&self, id: i64) -> Result<Option<ProtectionRow>, StoreError> {
        let sql = format!("{PROTECTION_SELECT} WHERE p.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(ProtectionRow::from_row).transpose()?)
    }

    /// Price protection paid on an order's lines, oldest first.
    pub async fn protections_of_order(&self, order_id: i64) -> Result<Vec<ProtectionRow>, StoreError> {
        let sql = format!(
            "{PROTECTION_SELECT} WHERE p.line_id IN (SELECT id FROM order_lines WHERE order_id = $1) ORDER BY p.id"
        );
        let rows = sqlx::query(&sql).bind(order_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ProtectionRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Price-protection payouts not yet accepted by the gateway, oldest first.
    pub async fn pending_protection_payouts(&self, limit: i64) -> Result<Vec<ProtectionRow>, StoreError> {
        let sql = format!("{PROTECTION_SELECT} WHERE p.payout_status = 'pending' ORDER BY p.id LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ProtectionRow::from_row).collect::<Result<_, _>>()?)
    }
}
