//! Coupons and red packets, the claims in buyers' wallets, the discounts orders took from them,
//! and the follow graph fan coupons are checked against.

use crate::orders::{multi_insert, pieces};
use crate::{Backend, Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A coupon as an issuer defines it (already validated by the app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    pub class: &'static str,
    pub merchant_id: Option<i64>,
    pub creator_user_id: Option<i64>,
    pub title: String,
    pub kind: &'static str,
    pub threshold_fen: i64,
    pub off_fen: i64,
    pub percent_bps: i64,
    pub cap_fen: i64,
    pub price_fen: i64,
    pub product_ids: String,
    pub combines_with: String,
    pub claim_starts_at_ms: i64,
    pub claim_ends_at_ms: i64,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub valid_days: Option<i64>,
    pub quantity: i64,
    pub per_user_limit: i64,
    pub budget_fen: Option<i64>,
    pub pool_split: Option<String>,
    pub created_by: i64,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponRow {
    pub id: i64,
    pub class: String,
    pub merchant_id: Option<i64>,
    pub creator_user_id: Option<i64>,
    pub title: String,
    pub kind: String,
    pub threshold_fen: i64,
    pub off_fen: i64,
    pub percent_bps: i64,
    pub cap_fen: i64,
    pub price_fen: i64,
    pub product_ids: String,
    pub combines_with: String,
    pub claim_starts_at_ms: i64,
    pub claim_ends_at_ms: i64,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub valid_days: Option<i64>,
    pub quantity: i64,
    pub claimed: i64,
    pub per_user_limit: i64,
    pub budget_fen: Option<i64>,
    pub budget_used_fen: i64,
    pub pool_split: Option<String>,
    pub status: String,
    pub created_by: i64,
    pub created_at_ms: i64,
}

const COUPON_COLUMNS: &str = "id, class, merchant_id, creator_user_id, title, kind, threshold_fen, off_fen, percent_bps, \
     cap_fen, price_fen, product_ids, combines_with, claim_starts_at_ms, claim_ends_at_ms, valid_from_ms, valid_until_ms, \
     valid_days, quantity, claimed, per_user_limit, budget_fen, budget_used_fen, pool_split, status, created_by, created_at_ms";

impl CouponRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(CouponRow {
            id: row.try_get("id")?,
            class: row.try_get("class")?,
            merchant_id: row.try_get("merchant_id")?,
            creator_user_id: row.try_get("creator_user_id")?,
            title: row.try_get("title")?,
            kind: row.try_get("kind")?,
            threshold_fen: row.try_get("threshold_fen")?,
            off_fen: row.try_get("off_fen")?,
            percent_bps: row.try_get("percent_bps")?,
            cap_fen: row.try_get("cap_fen")?,
            price_fen: row.try_get("price_fen")?,
            product_ids: row.try_get("product_ids")?,
            combines_with: row.try_get("combines_with")?,
            claim_starts_at_ms: row.try_get("claim_starts_at_ms")?,
            claim_ends_at_ms: row.try_get("claim_ends_at_ms")?,
            valid_from_ms: row.try_get("valid_from_ms")?,
            valid_until_ms: row.try_get("valid_until_ms")?,
            valid_days: row.try_get("valid_days")?,
            quantity: row.try_get("quantity")?,
            claimed: row.try_get("claimed")?,
            per_user_limit: row.try_get("per_user_limit")?,
            budget_fen: row.try_get("budget_fen")?,
            budget_used_fen: row.try_get("budget_used_fen")?,
            pool_split: row.try_get("pool_split")?,
            status: row.try_get("status")?,
            created_by: row.try_get("created_by")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

/// One claim to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClaim {
    pub id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    pub seq: i64,
    pub idempotency_key: Option<String>,
    pub off_fen: Option<i64>,
    pub claimed_at_ms: i64,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
}

const CLAIM_INSERT: [&str; 10] = [
    "id",
    "coupon_id",
    "user_id",
    "seq",
    "idempotency_key",
    "off_fen",
    "claimed_at_ms",
    "valid_from_ms",
    "valid_until_ms",
    "status",
];

fn bind_claim<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    claim: &NewClaim,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(claim.id)
        .bind(claim.coupon_id)
        .bind(claim.user_id)
        .bind(claim.seq)
        .bind(claim.idempotency_key.clone())
        .bind(claim.off_fen)
        .bind(claim.claimed_at_ms)
        .bind(claim.valid_from_ms)
        .bind(claim.valid_until_ms)
        .bind("available")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    pub seq: i64,
    pub idempotency_key: Option<String>,
    pub off_fen: Option<i64>,
    pub claimed_at_ms: i64,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub status: String,
    pub checkout_id: Option<i64>,
}

const CLAIM_COLUMNS: &str = "cc.id AS claim_id, cc.coupon_id, cc.user_id, cc.seq, cc.idempotency_key, \
     cc.off_fen AS claim_off_fen, cc.claimed_at_ms, cc.valid_from_ms AS claim_valid_from_ms, \
     cc.valid_until_ms AS claim_valid_until_ms, cc.status AS claim_status, cc.checkout_id";

impl ClaimRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ClaimRow {
            id: row.try_get("claim_id")?,
            coupon_id: row.try_get("coupon_id")?,
            user_id: row.try_get("user_id")?,
            seq: row.try_get("seq")?,
            idempotency_key: row.try_get("idempotency_key")?,
            off_fen: row.try_get("claim_off_fen")?,
            claimed_at_ms: row.try_get("claimed_at_ms")?,
            valid_from_ms: row.try_get("claim_valid_from_ms")?,
            valid_until_ms: row.try_get("claim_valid_until_ms")?,
            status: row.try_get("claim_status")?,
            checkout_id: row.try_get("checkout_id")?,
        })
    }
}

/// A claim together with its coupon: a coupon in a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRow {
    pub claim: ClaimRow,
    pub coupon: CouponRow,
}

fn wallet_sql(filter: &str) -> String {
    let coupon_columns: Vec<String> = COUPON_COLUMNS.split(", ").map(|c| format!("c.{}", c.trim())).collect();
    format!(
        "SELECT {CLAIM_COLUMNS}, {} FROM coupon_claims cc JOIN coupons c ON c.id = cc.coupon_id WHERE {filter}",
        coupon_columns.join(", ")
    )
}

fn wallet_row(row: &AnyRow) -> Result<WalletRow, sqlx::Error> {
    Ok(WalletRow { claim: ClaimRow::from_row(row)?, coupon: CouponRow::from_row(row)? })
}

/// One line's share of one coupon in an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDiscount {
    pub order_id: i64,
    pub line_id: i64,
    pub claim_id: i64,
    pub coupon_id: i64,
    pub class: String,
    pub funder: String,
    pub funder_id: Option<i64>,
    pub amount_fen: i64,
}

/// Which coupons a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponScope {
    /// A shop's own coupons.
    Merchant(i64),
    /// A creator's fan coupons.
    Creator(i64),
    /// Coupons open for claiming at this time.
    Claimable(i64),
    /// Everything (operators).
    All,
}

impl Tx {
    pub async fn insert_coupon(&mut self, coupon: &NewCoupon) -> Result<CouponRow, StoreError> {
        let sql = format!(
            "INSERT INTO coupons (class, merchant_id, creator_user_id, title, kind, threshold_fen, off_fen, percent_bps, \
             cap_fen, price_fen, product_ids, combines_with, claim_starts_at_ms, claim_ends_at_ms, valid_from_ms, \
             valid_until_ms, valid_days, quantity, per_user_limit, budget_fen, pool_split, status, created_by, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             'active', $22, $23) RETURNING {COUPON_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(coupon.class)
            .bind(coupon.merchant_id)
            .bind(coupon.creator_user_id)
            .bind(&coupon.title)
            .bind(coupon.kind)
            .bind(coupon.threshold_fen)
            .bind(coupon.off_fen)
            .bind(coupon.percent_bps)
            .bind(coupon.cap_fen)
            .bind(coupon.price_fen)
            .bind(&coupon.product_ids)
            .bind(&coupon.combines_with)
            .bind(coupon.claim_starts_at_ms)
            .bind(coupon.claim_ends_at_ms)
            .bind(coupon.valid_from_ms)
            .bind(coupon.valid_until_ms)
            .bind(coupon.valid_days)
            .bind(coupon.quantity)
            .bind(coupon.per_user_limit)
            .bind(coupon.budget_fen)
            .bind(coupon.pool_split.clone())
            .bind(coupon.created_by)
            .bind(coupon.now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(CouponRow::from_row(&row)?)
    }

    /// Writes a group of claims and counts them against their coupons (`takes`: coupon, claims).
    /// A coupon that would go over its quantity, or is no longer active, fails the whole group
    /// ([`StoreError::Constraint`]); a (coupon, user, seq) or idempotency key taken twice is a
    /// [`StoreError::Conflict`]. On SQLite the group is one multi-statement round trip.
    pub async fn insert_claim_group(&mut self, claims: &[NewClaim], takes: &[(i64, i64)]) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres || claims.is_empty() {
            for &(coupon_id, count) in takes {
                if !self.take_claims(coupon_id, count).await? {
                    return Err(StoreError::Constraint);
                }
            }
            for chunk in pieces(claims) {
                let sql = multi_insert(self.backend, "coupon_claims", &CLAIM_INSERT, chunk.len());
                chunk.iter().fold(sqlx::query(&sql), bind_claim).execute(self.conn()).await?;
            }
            return Ok(());
        }
        let mut sql = String::new();
        for _ in takes {
            // The CHECK (claimed <= quantity) refuses an over-issue; the status guard is checked
            // after the batch by the caller's gate, which never admits claims on a stopped coupon.
            sql.push_str("UPDATE coupons SET claimed = claimed + ? WHERE id = ?;\n");
        }
        sql.push_str(&multi_insert(Backend::Sqlite, "coupon_claims", &CLAIM_INSERT, claims.len()));
        let mut query = sqlx::query(&sql).persistent(false);
        for &(coupon_id, count) in takes {
            query = query.bind(count).bind(coupon_id);
        }
        query = claims.iter().fold(query, bind_claim);
        query.execute(self.conn()).await?;
        Ok(())
    }

    /// Counts `count` claims against a coupon if it is active and that many remain.
    pub async fn take_claims(&mut self, coupon_id: i64, count: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE coupons SET claimed = claimed + $1 WHERE id = $2 AND status = 'active' AND claimed + $1 <= quantity",
        )
        .bind(count)
        .bind(coupon_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_coupon_status(&mut self, coupon_id: i64, status: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE coupons SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(coupon_id)
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Locks an available claim of `user_id` to a checkout; false if it is not available to them.
    pub async fn lock_claim(&mut self, claim_id: i64, user_id: i64, checkout_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE coupon_claims SET status = 'used', checkout_id = $1 WHERE id = $2 AND user_id = $3 AND status = 'available'",
        )
        .bind(checkout_id)
        .bind(claim_id)
        .bind(user_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Returns the claims a checkout used to their owners' wallets; returns how many.
    pub async fn release_claims(&mut self, checkout_id: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE coupon_claims SET status = 'available', checkout_id = NULL WHERE checkout_id = $1 AND status = 'used'",
        )
        .bind(checkout_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Spends `amount_fen` of a coupon's budget if that much is left (or it has no budget).
    pub async fn use_budget(&mut self, coupon_id: i64, amount_fen: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE coupons SET budget_used_fen = budget_used_fen + $1 \
             WHERE id = $2 AND (budget_fen IS NULL OR budget_used_fen + $1 <= budget_fen)",
        )
        .bind(amount_fen)
        .bind(coupon_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn return_budget(&mut self, coupon_id: i64, amount_fen: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE coupons SET budget_used_fen = budget_used_fen - $1 WHERE id = $2")
            .bind(amount_fen)
            .bind(coupon_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_order_discounts(&mut self, discounts: &[OrderDiscount]) -> Result<(), StoreError> {
        const COLUMNS: [&str; 8] =
            ["order_id", "line_id", "claim_id", "coupon_id", "class", "funder", "funder_id", "amount_fen"];
        for chunk in pieces(discounts) {
            let sql = multi_insert(self.backend, "order_discounts", &COLUMNS, chunk.len());
            let query = chunk.iter().fold(sqlx::query(&sql), |q, d| {
                q.bind(d.order_id)
                    .bind(d.line_id)
                    .bind(d.claim_id)
                    .bind(d.coupon_id)
                    .bind(d.class.clone())
                    .bind(d.funder.clone())
                    .bind(d.funder_id)
                    .bind(d.amount_fen)
            });
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    pub async fn order_discounts(&mut self, order_id: i64) -> Result<Vec<OrderDiscount>, StoreError> {
        order_discounts(self.conn(), order_id).await
    }

    /// Orders of a checkout still live: neither cancelled nor expired, nor refunded unit by unit.
    pub async fn live_orders_in_checkout(&mut self, checkout_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM orders WHERE checkout_id = $1 AND status NOT IN ('cancelled', 'expired') \
             AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = orders.id AND l.returned_units < l.quantity)",
        )
        .bind(checkout_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Records that `follower` follows `creator`; following twice changes nothing.
    pub async fn follow(&mut self, follower_user_id: i64, creator_user_id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO follows (follower_user_id, creator_user_id, followed_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (follower_user_id, creator_user_id) DO NOTHING",
        )
        .bind(follower_user_id)
        .bind(creator_user_id)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn unfollow(&mut self, follower_user_id: i64, creator_user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM follows WHERE follower_user_id = $1 AND creator_user_id = $2")
            .bind(follower_user_id)
            .bind(creator_user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

async fn order_discounts(conn: &mut sqlx::AnyConnection, order_id: i64) -> Result<Vec<OrderDiscount>, StoreError> {
    let rows = sqlx::query(
        "SELECT order_id, line_id, claim_id, coupon_id, class, funder, funder_id, amount_fen FROM order_discounts \
         WHERE order_id = $1 ORDER BY line_id, claim_id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrderDiscount {
                order_id: r.try_get("order_id")?,
                line_id: r.try_get("line_id")?,
                claim_id: r.try_get("claim_id")?,
                coupon_id: r.try_get("coupon_id")?,
                class: r.try_get("class")?,
                funder: r.try_get("funder")?,
                funder_id: r.try_get("funder_id")?,
                amount_fen: r.try_get("amount_fen")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

impl Tx {
    /// A shop's coupons anyone may claim now (active, in their claim window, not all claimed):
    /// what today's price of its goods is net of.
    pub async fn claimable_shop_coupons(
        &mut self,
        merchant_id: i64,
        now_ms: i64,
    ) -> Result<Vec<CouponRow>, StoreError> {
        let sql = format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE merchant_id = $1 AND class = 'shop' AND status = 'active' \
             AND claim_starts_at_ms <= $2 AND claim_ends_at_ms > $2 AND claimed < quantity ORDER BY id"
        );
        let rows = sqlx::query(&sql).bind(merchant_id).bind(now_ms).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(CouponRow::from_row).collect::<Result<_, _>>()?)
    }
}

impl Store {
    pub async fn coupon(&self, id: i64) -> Result<Option<CouponRow>, StoreError> {
        let sql = format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(CouponRow::from_row).transpose()?)
    }

    /// Coupons in `scope`, newest first, before `before_id` if given.
    pub async fn coupons(
        &self,
        scope: CouponScope,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CouponRow>, StoreError> {
        let (filter, value) = match scope {
            CouponScope::Merchant(id) => ("merchant_id = $1", id),
            CouponScope::Creator(id) => ("creator_user_id = $1", id),
            CouponScope::Claimable(now_ms) => (
                "status = 'active' AND class <> 'red_packet' AND claim_starts_at_ms <= $1 AND claim_ends_at_ms > $1 \
                 AND claimed < quantity",
                now_ms,
            ),
            CouponScope::All => ("$1 = $1", 0),
        };
        let sql = format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE {filter} AND id < $2 ORDER BY id DESC LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(value)
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(CouponRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Every claim of a coupon: what the claim gate is rebuilt from.
    pub async fn claim_state(&self, coupon_id: i64) -> Result<Vec<ClaimRow>, StoreError> {
        let sql = format!("SELECT {CLAIM_COLUMNS} FROM coupon_claims cc WHERE cc.coupon_id = $1");
        let rows = sqlx::query(&sql).bind(coupon_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ClaimRow::from_row).collect::<Result<_, _>>()?)
    }

    /// A buyer's coupons not yet used and still valid at `now_ms`, soonest to expire first.
    pub async fn wallet(&self, user_id: i64, now_ms: i64, limit: u32) -> Result<Vec<WalletRow>, StoreError> {
        let sql = wallet_sql(
            "cc.user_id = $1 AND cc.status = 'available' AND cc.valid_until_ms > $2 \
             ORDER BY cc.valid_until_ms, cc.id LIMIT $3",
        );
        let rows = sqlx::query(&sql).bind(user_id).bind(now_ms).bind(i64::from(limit)).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(wallet_row).collect::<Result<_, _>>()?)
    }

    /// Every claim of a buyer, newest first (used and expired ones too).
    pub async fn claims_of(
        &self,
        user_id: i64,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WalletRow>, StoreError> {
        let sql = wallet_sql("cc.user_id = $1 AND cc.id < $2 ORDER BY cc.id DESC LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(wallet_row).collect::<Result<_, _>>()?)
    }

    pub async fn wallet_claim(&self, claim_id: i64) -> Result<Option<WalletRow>, StoreError> {
        let sql = wallet_sql("cc.id = $1");
        let row = sqlx::query(&sql).bind(claim_id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(wallet_row).transpose()?)
    }

    pub async fn order_discounts(&self, order_id: i64) -> Result<Vec<OrderDiscount>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        order_discounts(&mut conn, order_id).await
    }

    pub async fn follows(&self, follower_user_id: i64, creator_user_id: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM follows WHERE follower_user_id = $1 AND creator_user_id = $2")
            .bind(follower_user_id)
            .bind(creator_user_id)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.is_some())
    }
}
