//! The ledger: balanced postings written inside the caller's transaction, and the checks that
//! `xingqu check ledger` runs over everything written.

use crate::{Store, StoreError, Tx};
use sqlx::Row;
use xingqu_domain::ledger::Posting;

impl Tx {
    /// Writes a posting under a unique `reference` (e.g. `payment:order:42`). The same reference
    /// twice is a [`StoreError::Conflict`]: money never moves twice for one cause.
    pub async fn post(
        &mut self,
        posting: &Posting,
        reference: &str,
        order_id: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(
            "INSERT INTO ledger_transactions (kind, reference, order_id, at_ms) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(posting.kind().as_str())
        .bind(reference)
        .bind(order_id)
        .bind(now_ms)
        .fetch_one(self.conn())
        .await?;
        let transaction_id: i64 = row.try_get("id")?;
        for (account, amount_fen) in posting.entries() {
            sqlx::query(
                "INSERT INTO ledger_entries (transaction_id, account, amount_fen, order_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(transaction_id)
            .bind(account.to_string())
            .bind(*amount_fen)
            .bind(order_id)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

impl Tx {
    /// The sum of an account's entries for one order (negative: owed to the account's holder).
    pub async fn order_account_balance(&mut self, order_id: i64, account: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS balance FROM ledger_entries \
             WHERE order_id = $1 AND account = $2",
        )
        .bind(order_id)
        .bind(account)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("balance")?)
    }
}

/// What the ledger check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    pub transactions: i64,
    pub entries: i64,
    pub paid_orders: i64,
    /// Balance per account, by account name.
    pub balances: Vec<(String, i64)>,
    /// Each violation, in words.
    pub violations: Vec<String>,
}

impl Store {
    /// Balance of one account.
    pub async fn account_balance(&self, account: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS balance FROM ledger_entries WHERE account = $1",
        )
        .bind(account)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("balance")?)
    }

    /// Verifies the ledger: every transaction sums to zero; each paid order's payment equals the
    /// sum of its lines plus shipping and what the ledger received for it; refunds never exceed
    /// what was paid.
    pub async fn check_ledger(&self) -> Result<LedgerReport, StoreError> {
        let mut report = LedgerReport::default();
        let counts = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM ledger_transactions) AS transactions, (SELECT COUNT(*) FROM ledger_entries) AS entries, \
             (SELECT COUNT(*) FROM orders WHERE paid_fen > 0) AS paid_orders",
        )
        .fetch_one(self.reader())
        .await?;
        report.transactions = counts.try_get("transactions")?;
        report.entries = counts.try_get("entries")?;
        report.paid_orders = counts.try_get("paid_orders")?;

        let unbalanced = sqlx::query(
            "SELECT t.id, t.reference, CAST(COALESCE(SUM(e.amount_fen), 0) AS BIGINT) AS total, COUNT(e.id) AS n \
             FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id \
             GROUP BY t.id, t.reference HAVING COALESCE(SUM(e.amount_fen), 0) <> 0 OR COUNT(e.id) < 2 LIMIT 100",
        )
        .fetch_all(self.reader())
        .await?;
        for row in unbalanced {
            let (reference, total, n): (String, i64, i64) =
                (row.try_get("reference")?, row.try_get("total")?, row.try_get("n")?);
            report.violations.push(format!("transaction {reference} has {n} entries summing to {total}, not zero"));
        }

        let mismatched = sqlx::query(
            "SELECT * FROM (SELECT o.id, o.paid_fen, o.shipping_fen, \
             CAST((SELECT COALESCE(SUM(l.paid_fen), 0) FROM order_lines l WHERE l.order_id = o.id) AS BIGINT) AS lines_fen, \
             CAST((SELECT COALESCE(SUM(e.amount_fen), 0) FROM ledger_entries e \
                   WHERE e.order_id = o.id AND e.account = 'buyer_payments') AS BIGINT) AS received_fen \
             FROM orders o WHERE o.paid_fen > 0) x \
             WHERE x.paid_fen <> x.lines_fen + x.shipping_fen OR x.paid_fen <> x.received_fen LIMIT 100",
        )
        .fetch_all(self.reader())
        .await?;
        for row in mismatched {
            let (id, paid, shipping, lines, received): (i64, i64, i64, i64, i64) = (
                row.try_get("id")?,
                row.try_get("paid_fen")?,
                row.try_get("shipping_fen")?,
                row.try_get("lines_fen")?,
                row.try_get("received_fen")?,
            );
            if paid != lines + shipping {
                report
                    .violations
                    .push(format!("order {id} paid {paid} but its lines and shipping sum to {}", lines + shipping));
            }
            if paid != received {
                report.violations.push(format!("order {id} paid {paid} but the ledger received {received}"));
            }
        }

        let over_refunded = sqlx::query(
            "SELECT o.id, o.paid_fen, CAST((SELECT COALESCE(SUM(r.amount_fen), 0) FROM refunds r WHERE r.order_id = o.id) AS BIGINT) AS refunded \
             FROM orders o WHERE EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id)",
        )
        .fetch_all(self.reader())
        .await?;
        for row in over_refunded {
            let (id, paid, refunded): (i64, i64, i64) =
                (row.try_get("id")?, row.try_get("paid_fen")?, row.try_get("refunded")?);
            if refunded > paid {
                report.violations.push(format!("order {id} refunded {refunded}, more than the {paid} paid"));
            }
        }

        let balances = sqlx::query(
            "SELECT account, CAST(SUM(amount_fen) AS BIGINT) AS balance FROM ledger_entries GROUP BY account ORDER BY account LIMIT 10000",
        )
        .fetch_all(self.reader())
        .await?;
        for row in balances {
            report.balances.push((row.try_get("account")?, row.try_get("balance")?));
        }
        Ok(report)
    }
}
