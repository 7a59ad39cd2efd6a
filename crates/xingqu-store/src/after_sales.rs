//! After-sale requests and their audit trail, and what each order line has paid back (refunds,
//! compensation; price protection is in `price_protection`).

use crate::orders::LineRow;
use crate::{Backend, Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An order line with what after-sales need of its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineForAfterSale {
    pub line: LineRow,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub order_status: String,
    pub placed_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub settled: bool,
}

/// An after-sale as a use case decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAfterSale {
    pub order_id: i64,
    pub line_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub kind: &'static str,
    pub status: &'static str,
    pub units: i64,
    pub amount_fen: i64,
    pub merchant_fen: i64,
    pub platform_fen: i64,
    pub reason: String,
    pub evidence: String,
    pub idempotency_key: Option<String>,
    pub due_at_ms: Option<i64>,
    pub created_by: Option<i64>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSaleRow {
    pub id: i64,
    pub order_id: i64,
    pub line_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub kind: String,
    pub status: String,
    pub units: i64,
    pub amount_fen: i64,
    pub merchant_fen: i64,
    pub platform_fen: i64,
    pub reason: String,
    pub evidence: String,
    pub due_at_ms: Option<i64>,
    pub return_carrier: Option<String>,
    pub return_tracking: Option<String>,
    /// What the buyer paid to ship the return (return-shipping insurance covers it).
    pub return_freight_fen: i64,
    /// When an express refund paid before the goods arrived.
    pub express_refunded_at_ms: Option<i64>,
    /// The merchant's outgoing shipment (re-ship, exchange, repair).
    pub replacement_carrier: Option<String>,
    pub replacement_tracking: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const AFTER_SALE_COLUMNS: &str = "id, order_id, line_id, buyer_user_id, merchant_id, kind, status, units, amount_fen, \
    merchant_fen, platform_fen, reason, evidence, due_at_ms, return_carrier, return_tracking, return_freight_fen, \
    express_refunded_at_ms, replacement_carrier, replacement_tracking, created_at_ms, updated_at_ms";

impl AfterSaleRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            line_id: row.try_get("line_id")?,
            buyer_user_id: row.try_get("buyer_user_id")?,
            merchant_id: row.try_get("merchant_id")?,
            kind: row.try_get("kind")?,
            status: row.try_get("status")?,
            units: row.try_get("units")?,
            amount_fen: row.try_get("amount_fen")?,
            merchant_fen: row.try_get("merchant_fen")?,
            platform_fen: row.try_get("platform_fen")?,
            reason: row.try_get("reason")?,
            evidence: row.try_get("evidence")?,
            due_at_ms: row.try_get("due_at_ms")?,
            return_carrier: row.try_get("return_carrier")?,
            return_tracking: row.try_get("return_tracking")?,
            return_freight_fen: row.try_get("return_freight_fen")?,
            express_refunded_at_ms: row.try_get("express_refunded_at_ms")?,
            replacement_carrier: row.try_get("replacement_carrier")?,
            replacement_tracking: row.try_get("replacement_tracking")?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        })
    }
}

/// One after-sale transition: who, when, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSaleEventRow {
    pub from_status: String,
    pub to_status: String,
    pub actor_user_id: Option<i64>,
    pub reason: String,
    pub at_ms: i64,
}

fn line_for_after_sale(row: &AnyRow) -> Result<LineForAfterSale, sqlx::Error> {
    Ok(LineForAfterSale {
        line: LineRow::from_row(row)?,
        buyer_user_id: row.try_get("buyer_user_id")?,
        merchant_id: row.try_get("merchant_id")?,
        order_status: row.try_get("order_status")?,
        placed_at_ms: row.try_get("placed_at_ms")?,
        delivered_at_ms: row.try_get("delivered_at_ms")?,
        settled: row.try_get::<Option<i64>, _>("settled_at_ms")?.is_some(),
    })
}

impl Tx {
    /// An order line and its order, locked against concurrent after-sales on PostgreSQL (SQLite
    /// has one writer).
    pub async fn line_for_after_sale(&mut self, line_id: i64) -> Result<Option<LineForAfterSale>, StoreError> {
        let sql = self.lines_for_after_sale_sql("l.id = $1");
        let row = sqlx::query(&sql).bind(line_id).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(line_for_after_sale).transpose()?)
    }

    /// The lines of one order, as [`Tx::line_for_after_sale`] reads them.
    pub async fn lines_for_after_sale(&mut self, order_id: i64) -> Result<Vec<LineForAfterSale>, StoreError> {
        let sql = self.lines_for_after_sale_sql("l.order_id = $1");
        let rows = sqlx::query(&sql).bind(order_id).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(line_for_after_sale).collect::<Result<_, _>>()?)
    }

    /// Lines with their order's facts, where `filter`, in line order, locked on PostgreSQL.
    fn lines_for_after_sale_sql(&self, filter: &str) -> String {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE OF l" } else { "" };
        format!(
            "SELECT {}, o.buyer_user_id, o.merchant_id, o.status AS order_status, o.created_at_ms AS placed_at_ms, \
             o.delivered_at_ms, o.settled_at_ms FROM order_lines l JOIN orders o ON o.id = l.order_id \
             WHERE {filter} ORDER BY l.id{lock}",
            crate::orders::line_columns("l")
        )
    }

    /// Records an after-sale and its first audit event. A second record for the same line and
    /// price drop, or the buyer's idempotency key used again, is a [`StoreError::Conflict`].
    pub async fn insert_after_sale(&mut self, a: &NewAfterSale) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO after_sales (order_id, line_id, buyer_user_id, merchant_id, kind, status, units, amount_fen, \
             merchant_fen, platform_fen, reason, evidence, idempotency_key, due_at_ms, created_by, created_at_ms, \
             updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING id",
        )
        .bind(a.order_id)
        .bind(a.line_id)
        .bind(a.buyer_user_id)
        .bind(a.merchant_id)
        .bind(a.kind)
        .bind(a.status)
        .bind(a.units)
        .bind(a.amount_fen)
        .bind(a.merchant_fen)
        .bind(a.platform_fen)
        .bind(a.reason.clone())
        .bind(a.evidence.clone())
        .bind(a.idempotency_key.clone())
        .bind(a.due_at_ms)
        .bind(a.created_by)
        .bind(a.now_ms)
        .fetch_one(self.conn())
        .await?;
        let id: i64 = row.try_get("id")?;
        self.after_sale_event(id, "new", a.status, a.created_by, &a.reason, a.now_ms).await?;
        Ok(id)
    }

    pub async fn after_sale_event(
        &mut self,
        after_sale_id: i64,
        from_status: &str,
        to_status: &str,
        actor_user_id: Option<i64>,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO after_sale_events (after_sale_id, from_status, to_status, actor_user_id, reason, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(after_sale_id)
        .bind(from_status)
        .bind(to_status)
        .bind(actor_user_id)
        .bind(reason)
        .bind(at_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Adds refunds (and the units they cover) and compensation to what a line paid back; the
    /// store's CHECK refuses more than was paid ([`StoreError::Constraint`]).
    pub async fn add_line_paid_back(
        &mut self,
        line_id: i64,
        refunded_fen: i64,
        returned_units: i64,
        compensation_fen: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE order_lines SET refunded_fen = refunded_fen + $1, returned_units = returned_units + $2, \
             compensation_fen = compensation_fen + $3 WHERE id = $4",
        )
        .bind(refunded_fen)
        .bind(returned_units)
        .bind(compensation_fen)
        .bind(line_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Moves an after-sale from `from` to `to` (compare-and-set) with its audit event; false if
    /// it was no longer in `from`.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_after_sale(
        &mut self,
        id: i64,
        from: &str,
        to: &str,
        changes: &AfterSaleChanges,
        actor_user_id: Option<i64>,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE after_sales SET status = $1, updated_at_ms = $2, due_at_ms = $3, \
             amount_fen = COALESCE($4, amount_fen), merchant_fen = COALESCE($5, merchant_fen), \
             platform_fen = COALESCE($6, platform_fen), return_carrier = COALESCE($7, return_carrier), \
             return_tracking = COALESCE($8, return_tracking), return_freight_fen = COALESCE($9, return_freight_fen), \
             replacement_carrier = COALESCE($12, replacement_carrier), \
             replacement_tracking = COALESCE($13, replacement_tracking) \
             WHERE id = $10 AND status = $11",
        )
        .bind(to)
        .bind(now_ms)
        .bind(changes.due_at_ms)
        .bind(changes.amount_fen)
        .bind(changes.merchant_fen)
        .bind(changes.platform_fen)
        .bind(changes.return_carrier.clone())
        .bind(changes.return_tracking.clone())
        .bind(changes.return_freight_fen)
        .bind(id)
        .bind(from)
        .bind(changes.replacement_carrier.clone())
        .bind(changes.replacement_tracking.clone())
        .execute(self.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.after_sale_event(id, from, to, actor_user_id, reason, now_ms).await?;
        Ok(true)
    }

    pub async fn after_sale_for_update(&mut self, id: i64) -> Result<Option<AfterSaleRow>, StoreError> {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let sql = format!("SELECT {AFTER_SALE_COLUMNS} FROM after_sales WHERE id = $1{lock}");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(AfterSaleRow::from_row).transpose()?)
    }

    /// Records an express refund of `amount_fen` paid before the return arrived.
    pub async fn mark_express_refunded(&mut self, id: i64, amount_fen: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE after_sales SET express_refunded_at_ms = $1, amount_fen = $2, merchant_fen = $2, platform_fen = 0 \
             WHERE id = $3",
        )
        .bind(now_ms)
        .bind(amount_fen)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Units of a line held by requests still open (neither refunded, resolved nor closed): a new
    /// request may not ask for them again.
    pub async fn units_in_open_after_sales(&mut self, line_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(units), 0) AS BIGINT) AS units FROM after_sales \
             WHERE line_id = $1 AND status NOT IN ('refunded', 'resolved', 'closed')",
        )
        .bind(line_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("units")?)
    }

    /// Unanswered refund-before-shipment requests of an order: shipping waits until the merchant
    /// has answered them (a rejection the buyer disputes no longer holds the goods back).
    pub async fn open_refunds_before_shipment(&mut self, order_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM after_sales WHERE order_id = $1 AND kind = 'refund_before_shipment' \
             AND status = 'requested'",
        )
        .bind(order_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Locks a paid, unshipped order against shipment for the rest of the transaction; false if
    /// it is no longer `paid`.
    pub async fn hold_unshipped_order(&mut self, order_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE orders SET status = status WHERE id = $1 AND status = 'paid'")
            .bind(order_id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// After-sale requests of an order still open; with `paying_money_only`, those that may still
    /// pay money back (settlement waits for them; an exchange, re-ship or repair moves goods only).
    pub async fn open_after_sales_in_order(
        &mut self,
        order_id: i64,
        paying_money_only: bool,
    ) -> Result<i64, StoreError> {
        let sql = if paying_money_only {
            "SELECT COUNT(*) AS n FROM after_sales WHERE order_id = $1 \
             AND status NOT IN ('refunded', 'resolved', 'closed') AND kind NOT IN ('exchange', 'reship', 'repair')"
        } else {
            "SELECT COUNT(*) AS n FROM after_sales WHERE order_id = $1 AND status NOT IN ('refunded', 'resolved', 'closed')"
        };
        let row = sqlx::query(sql).bind(order_id).fetch_one(self.conn()).await?;
        Ok(row.try_get("n")?)
    }

    /// A buyer's earlier request under the same idempotency key.
    pub async fn after_sale_by_key(
        &mut self,
        buyer_user_id: i64,
        key: &str,
    ) -> Result<Option<AfterSaleRow>, StoreError> {
        let sql =
            format!("SELECT {AFTER_SALE_COLUMNS} FROM after_sales WHERE buyer_user_id = $1 AND idempotency_key = $2");
        let row = sqlx::query(&sql).bind(buyer_user_id).bind(key).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(AfterSaleRow::from_row).transpose()?)
    }
}

/// What a transition writes besides the status; `None` leaves a column as it is (except
/// `due_at_ms`, which is always set: a state without a deadline clears it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterSaleChanges {
    pub due_at_ms: Option<i64>,
    pub amount_fen: Option<i64>,
    pub merchant_fen: Option<i64>,
    pub platform_fen: Option<i64>,
    pub return_carrier: Option<String>,
    pub return_tracking: Option<String>,
    pub return_freight_fen: Option<i64>,
    pub replacement_carrier: Option<String>,
    pub replacement_tracking: Option<String>,
}

/// Evidence photos as stored: a JSON array of URLs.
pub fn encode_evidence(urls: &[String]) -> String {
    serde_json::Value::from(urls.to_vec()).to_string()
}

/// The stored evidence photos.
pub fn decode_evidence(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

impl Store {
    pub async fn after_sale(&self, id: i64) -> Result<Option<AfterSaleRow>, StoreError> {
        let sql = format!("SELECT {AFTER_SALE_COLUMNS} FROM after_sales WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(AfterSaleRow::from_row).transpose()?)
    }

    /// The after-sale requests of one order, oldest first.
    pub async fn after_sales_of_order(&self, order_id: i64) -> Result<Vec<AfterSaleRow>, StoreError> {
        let sql = format!(
            "SELECT {AFTER_SALE_COLUMNS} FROM after_sales WHERE line_id IN \
             (SELECT id FROM order_lines WHERE order_id = $1) ORDER BY id"
        );
        let rows = sqlx::query(&sql).bind(order_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(AfterSaleRow::from_row).collect::<Result<_, _>>()?)
    }

    /// The after-sale queue, newest first: every shop's (`merchant_id` `None`) or one shop's,
    /// only the open ones (not refunded, resolved or closed: `AfterSaleStatus::is_terminal`) or
    /// all, before `before_id` (a cursor), at most `limit`.
    pub async fn after_sale_queue(
        &self,
        merchant_id: Option<i64>,
        open_only: bool,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AfterSaleRow>, StoreError> {
        let sql = format!(
            "SELECT {AFTER_SALE_COLUMNS} FROM after_sales WHERE ($1 = 0 OR merchant_id = $1) \
             AND ($2 = 0 OR status NOT IN ('refunded', 'resolved', 'closed')) AND id < $3 ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(merchant_id.unwrap_or(0))
            .bind(crate::flag(open_only))
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(AfterSaleRow::from_row).collect::<Result<_, _>>()?)
    }

    /// After-sales whose deadline has come, soonest first.
    pub async fn due_after_sales(&self, now_ms: i64, limit: i64) -> Result<Vec<AfterSaleRow>, StoreError> {
        let sql = format!(
            "SELECT {AFTER_SALE_COLUMNS} FROM after_sales WHERE due_at_ms IS NOT NULL AND due_at_ms <= $1 \
             ORDER BY due_at_ms LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(now_ms).bind(limit).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(AfterSaleRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Moves a due request's deadline to `retry_at_ms` if it is still `due_at_ms` (a request moved
    /// meanwhile keeps its new deadline).
    pub async fn postpone_after_sale(
        &self,
        id: i64,
        due_at_ms: Option<i64>,
        retry_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE after_sales SET due_at_ms = $1 WHERE id = $2 AND due_at_ms = $3")
            .bind(retry_at_ms)
            .bind(id)
            .bind(due_at_ms)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// The audit trail of one after-sale, oldest first.
    pub async fn after_sale_events(&self, after_sale_id: i64) -> Result<Vec<AfterSaleEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, actor_user_id, reason, at_ms FROM after_sale_events \
             WHERE after_sale_id = $1 ORDER BY id",
        )
        .bind(after_sale_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AfterSaleEventRow {
                    from_status: r.try_get("from_status")?,
                    to_status: r.try_get("to_status")?,
                    actor_user_id: r.try_get("actor_user_id")?,
                    reason: r.try_get("reason")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
