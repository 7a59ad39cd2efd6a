//! 安心购: merchants' enrolments, return-shipping insurance payouts, door pickups, and the
//! dispatch-promise compensation queue.

use crate::{Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRow {
    pub merchant_id: i64,
    pub status: String,
    /// Service names, as stored (JSON).
    pub services: Vec<String>,
    pub insurance_premium_fen: i64,
    pub insurance_cap_fen: i64,
    pub requested_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    pub decision_reason: Option<String>,
}

const ENROLMENT_COLUMNS: &str = "merchant_id, status, services, insurance_premium_fen, insurance_cap_fen, \
    requested_at_ms, decided_at_ms, decision_reason";

impl EnrolmentRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let services: String = row.try_get("services")?;
        Ok(Self {
            merchant_id: row.try_get("merchant_id")?,
            status: row.try_get("status")?,
            services: serde_json::from_str(&services).unwrap_or_default(),
            insurance_premium_fen: row.try_get("insurance_premium_fen")?,
            insurance_cap_fen: row.try_get("insurance_cap_fen")?,
            requested_at_ms: row.try_get("requested_at_ms")?,
            decided_at_ms: row.try_get("decided_at_ms")?,
            decision_reason: row.try_get("decision_reason")?,
        })
    }
}

/// Money an after-sale pays beyond the refund (insurance, counterfeit compensation), waiting for
/// (or accepted by) the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRow {
    pub after_sale_id: i64,
    pub kind: String,
    pub order_id: i64,
    pub amount_fen: i64,
    pub payout_status: String,
}

impl PayoutRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            after_sale_id: r.try_get("after_sale_id")?,
            kind: r.try_get("kind")?,
            order_id: r.try_get("order_id")?,
            amount_fen: r.try_get("amount_fen")?,
            payout_status: r.try_get("payout_status")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupRow {
    pub after_sale_id: i64,
    pub address: String,
    pub slot_starts_at_ms: i64,
    pub slot_ends_at_ms: i64,
    pub status: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

impl Tx {
    /// Applies to enrol (again): the request waits for an operator.
    pub async fn request_enrolment(
        &mut self,
        merchant_id: i64,
        services: &[String],
        insurance_premium_fen: i64,
        insurance_cap_fen: i64,
        requested_by: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO assurance_enrolments (merchant_id, status, services, insurance_premium_fen, insurance_cap_fen, \
             requested_by, requested_at_ms) VALUES ($1, 'pending', $2, $3, $4, $5, $6) \
             ON CONFLICT (merchant_id) DO UPDATE SET status = 'pending', services = excluded.services, \
             insurance_premium_fen = excluded.insurance_premium_fen, insurance_cap_fen = excluded.insurance_cap_fen, \
             requested_by = excluded.requested_by, requested_at_ms = excluded.requested_at_ms, decided_by = NULL, \
             decided_at_ms = NULL, decision_reason = NULL",
        )
        .bind(merchant_id)
        .bind(serde_json::Value::from(services.to_vec()).to_string())
        .bind(insurance_premium_fen)
        .bind(insurance_cap_fen)
        .bind(requested_by)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// An operator's decision on a pending enrolment; false if it was not pending.
    pub async fn decide_enrolment(
        &mut self,
        merchant_id: i64,
        approve: bool,
        decided_by: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE assurance_enrolments SET status = $1, decided_by = $2, decided_at_ms = $3, decision_reason = $4 \
             WHERE merchant_id = $5 AND status = 'pending'",
        )
        .bind(if approve { "approved" } else { "rejected" })
        .bind(decided_by)
        .bind(now_ms)
        .bind(reason)
        .bind(merchant_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a payout of `kind` for an after-sale; a second one of the same kind is a
    /// [`StoreError::Conflict`] (each pays once).
    pub async fn insert_payout(
        &mut self,
        after_sale_id: i64,
        kind: &str,
        order_id: i64,
        amount_fen: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO after_sale_payouts (after_sale_id, kind, order_id, amount_fen, payout_status, created_at_ms) \
             VALUES ($1, $2, $3, $4, 'pending', $5)",
        )
        .bind(after_sale_id)
        .bind(kind)
        .bind(order_id)
        .bind(amount_fen)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn mark_payout_sent(
        &mut self,
        after_sale_id: i64,
        kind: &str,
        payout_ref: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE after_sale_payouts SET payout_status = 'sent', payout_ref = $1 \
             WHERE after_sale_id = $2 AND kind = $3 AND payout_status = 'pending'",
        )
        .bind(payout_ref)
        .bind(after_sale_id)
        .bind(kind)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Books a door pickup for a return; one per after-sale ([`StoreError::Conflict`] twice).
    pub async fn insert_pickup(
        &mut self,
        after_sale_id: i64,
        address: &str,
        slot: (i64, i64),
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pickup_tasks (after_sale_id, address, slot_starts_at_ms, slot_ends_at_ms, status, created_at_ms) \
             VALUES ($1, $2, $3, $4, 'requested', $5)",
        )
        .bind(after_sale_id)
        .bind(address)
        .bind(slot.0)
        .bind(slot.1)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The carrier collected the goods; false if the task was not waiting.
    pub async fn mark_pickup_collected(
        &mut self,
        after_sale_id: i64,
        carrier: &str,
        tracking_number: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pickup_tasks SET status = 'collected', carrier = $1, tracking_number = $2, collected_at_ms = $3 \
             WHERE after_sale_id = $4 AND status = 'requested'",
        )
        .bind(carrier)
        .bind(tracking_number)
        .bind(now_ms)
        .bind(after_sale_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an order's missed dispatch promise compensated (compare-and-set: once).
    pub async fn mark_dispatch_compensated(&mut self, order_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET dispatch_compensated_at_ms = $1 \
             WHERE id = $2 AND status = 'paid' AND dispatch_compensated_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(order_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The after-sales a buyer lost in disputes since `since_ms` (closed after a rejection or an
    /// arbitration for the merchant): the express-refund standing rule reads it.
    pub async fn lost_after_sales_since(&mut self, buyer_user_id: i64, since_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM after_sale_events e JOIN after_sales a ON a.id = e.after_sale_id \
             WHERE a.buyer_user_id = $1 AND e.to_status = 'closed' AND e.from_status IN ('rejected', 'disputed') \
             AND e.at_ms >= $2",
        )
        .bind(buyer_user_id)
        .bind(since_ms)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("n")?)
    }
}

impl Store {
    pub async fn enrolment(&self, merchant_id: i64) -> Result<Option<EnrolmentRow>, StoreError> {
        let sql = format!("SELECT {ENROLMENT_COLUMNS} FROM assurance_enrolments WHERE merchant_id = $1");
        let row = sqlx::query(&sql).bind(merchant_id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(EnrolmentRow::from_row).transpose()?)
    }

    /// Enrolments in `status` (pending, approved or rejected) with their shop's name, oldest
    /// request first: the operator's 安心购 queue.
    pub async fn enrolments_by_status(
        &self,
        status: &str,
        limit: i64,
    ) -> Result<Vec<(EnrolmentRow, String)>, StoreError> {
        let columns: Vec<String> = ENROLMENT_COLUMNS.split(", ").map(|c| format!("e.{}", c.trim())).collect();
        let sql = format!(
            "SELECT {}, m.shop_name FROM assurance_enrolments e JOIN merchants m ON m.id = e.merchant_id \
             WHERE e.status = $1 ORDER BY e.requested_at_ms, e.merchant_id LIMIT $2",
            columns.join(", ")
        );
        let rows = sqlx::query(&sql).bind(status).bind(limit).fetch_all(self.reader()).await?;
        rows.iter().map(|r| Ok((EnrolmentRow::from_row(r)?, r.try_get::<String, _>("shop_name")?))).collect()
    }

    pub async fn pending_payouts(&self, limit: i64) -> Result<Vec<PayoutRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT after_sale_id, kind, order_id, amount_fen, payout_status FROM after_sale_payouts \
             WHERE payout_status = 'pending' ORDER BY after_sale_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(PayoutRow::from_row).collect::<Result<_, _>>()?)
    }

    /// What an after-sale paid beyond its refund.
    pub async fn payouts_of(&self, after_sale_id: i64) -> Result<Vec<PayoutRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT after_sale_id, kind, order_id, amount_fen, payout_status FROM after_sale_payouts \
             WHERE after_sale_id = $1 ORDER BY kind",
        )
        .bind(after_sale_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(PayoutRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn pickup(&self, after_sale_id: i64) -> Result<Option<PickupRow>, StoreError> {
        let row = sqlx::query(
            "SELECT after_sale_id, address, slot_starts_at_ms, slot_ends_at_ms, status, carrier, tracking_number \
             FROM pickup_tasks WHERE after_sale_id = $1",
        )
        .bind(after_sale_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(PickupRow {
                after_sale_id: r.try_get("after_sale_id")?,
                address: r.try_get("address")?,
                slot_starts_at_ms: r.try_get("slot_starts_at_ms")?,
                slot_ends_at_ms: r.try_get("slot_ends_at_ms")?,
                status: r.try_get("status")?,
                carrier: r.try_get("carrier")?,
                tracking_number: r.try_get("tracking_number")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Paid orders whose dispatch deadline passed without shipment or compensation.
    pub async fn due_dispatch_compensations(&self, now_ms: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM orders WHERE status = 'paid' AND dispatch_deadline_ms IS NOT NULL \
             AND dispatch_compensated_at_ms IS NULL AND dispatch_deadline_ms < $1 ORDER BY dispatch_deadline_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| r.try_get("id").map_err(Into::into)).collect()
    }
}

/// Service names as stored on a line: a JSON array.
pub fn encode_services(names: &[String]) -> String {
    serde_json::Value::from(names.to_vec()).to_string()
}

/// The service names a line stores.
pub fn decode_services(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}
