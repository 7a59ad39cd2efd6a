//! Double-entry bookkeeping: accounts, and postings whose entries sum to zero by construction.
//!
//! Sign convention: an entry's `amount_fen` is positive for money flowing into the account's
//! holdings (debit) and negative for what the account owes or gives up (credit). A buyer paying
//! 100 分 is `buyer_payments +100`, `merchant_receivable:7 -100`.

use std::fmt;

/// A ledger account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// Money buyers paid in through payment gateways.
    BuyerPayments,
    /// Money paid back to buyers.
    Refunds,
    /// What the platform owes a merchant for orders not yet settled.
    MerchantReceivable(i64),
    /// What a merchant may withdraw: settled orders, less commission.
    MerchantSettlement(i64),
    /// The platform's commission income.
    PlatformCommission,
    /// The platform's budget for subsidies.
    PlatformSubsidyBudget,
    /// Commission owed to a creator.
    CreatorCommission(i64),
    /// The pool that pays return-shipping insurance.
    InsurancePool,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::BuyerPayments => f.write_str("buyer_payments"),
            Account::Refunds => f.write_str("refunds"),
            Account::MerchantReceivable(id) => write!(f, "merchant_receivable:{id}"),
            Account::MerchantSettlement(id) => write!(f, "merchant_settlement:{id}"),
            Account::PlatformCommission => f.write_str("platform_commission"),
            Account::PlatformSubsidyBudget => f.write_str("platform_subsidy_budget"),
            Account::CreatorCommission(id) => write!(f, "creator_commission:{id}"),
            Account::InsurancePool => f.write_str("insurance_pool"),
        }
    }
}

/// Why money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingKind {
    Payment,
    Refund,
    Settlement,
    /// Price protection paid back to a buyer.
    PriceProtection,
    /// Compensation to a buyer for a broken promise (dispatch, damage, counterfeit).
    Compensation,
}

impl PostingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::Payment => "payment",
            PostingKind::Refund => "refund",
            PostingKind::Settlement => "settlement",
            PostingKind::PriceProtection => "price_protection",
            PostingKind::Compensation => "compensation",
        }
    }
}

/// A balanced set of entries: constructed only if the amounts sum to zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    kind: PostingKind,
    entries: Vec<(Account, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostingError {
    #[error("entries sum to {0}, not zero")]
    Unbalanced(i128),
    #[error("a posting needs at least two non-zero entries")]
    Empty,
}

impl Posting {
    pub fn new(kind: PostingKind, entries: Vec<(Account, i64)>) -> Result<Self, PostingError> {
        let entries: Vec<(Account, i64)> = entries.into_iter().filter(|&(_, amount)| amount != 0).collect();
        if entries.len() < 2 {
            return Err(PostingError::Empty);
        }
        let sum: i128 = entries.iter().map(|&(_, amount)| i128::from(amount)).sum();
        if sum != 0 {
            return Err(PostingError::Unbalanced(sum));
        }
        Ok(Self { kind, entries })
    }

    /// A buyer's payment for a merchant's order.
    pub fn payment(merchant_id: i64, paid_fen: i64) -> Result<Self, PostingError> {
        Self::new(
            PostingKind::Payment,
            vec![(Account::BuyerPayments, paid_fen), (Account::MerchantReceivable(merchant_id), -paid_fen)],
        )
    }

    /// Money returned to the buyer out of the merchant's receivable.
    pub fn refund(merchant_id: i64, refund_fen: i64) -> Result<Self, PostingError> {
        Self::new(
            PostingKind::Refund,
            vec![(Account::MerchantReceivable(merchant_id), refund_fen), (Account::Refunds, -refund_fen)],
        )
    }

    /// A payment for an order some of whose discounts others fund (the platform's coupons and red
    /// packets, a creator's fan coupons): the merchant is owed what the buyer paid plus what each
    /// funder `(account, fen)` covers, and each funder's account bears its part.
    pub fn funded_payment(merchant_id: i64, paid_fen: i64, funded: &[(Account, i64)]) -> Result<Self, PostingError> {
        let covered_fen: i64 = funded.iter().map(|&(_, fen)| fen).sum();
        let mut entries = vec![(Account::BuyerPayments, paid_fen)];
        entries.extend_from_slice(funded);
        entries.push((Account::MerchantReceivable(merchant_id), -(paid_fen + covered_fen)));
        Self::new(PostingKind::Payment, entries)
    }

    /// The reverse of [`Posting::funded_payment`] for `refund_fen` of what the buyer paid and the
    /// funders' parts `funded` that go back to them with it. `merchant_account` bears the whole:
    /// the merchant's receivable, or its settlement account once the order is settled (the
    /// settlement paid the merchant the funders' parts too, so they come back from there).
    pub fn funded_refund(
        merchant_account: Account,
        refund_fen: i64,
        funded: &[(Account, i64)],
    ) -> Result<Self, PostingError> {
        let covered_fen: i64 = funded.iter().map(|&(_, fen)| fen).sum();
        let mut entries = vec![(merchant_account, refund_fen + covered_fen)];
        entries.extend(funded.iter().map(|&(account, fen)| (account, -fen)));
        entries.push((Account::Refunds, -refund_fen));
        Self::new(PostingKind::Refund, entries)
    }

    /// Money paid back to a buyer beyond a plain refund (price protection, compensation): the
    /// merchant's account for the order (`merchant_account`: its receivable, or its settlement
    /// once settled) bears `merchant_fen`, the platform's subsidy budget `platform_fen`.
    pub fn paid_back(
        kind: PostingKind,
        merchant_account: Account,
        merchant_fen: i64,
        platform_fen: i64,
    ) -> Result<Self, PostingError> {
        Self::new(
            kind,
            vec![
                (merchant_account, merchant_fen),
                (Account::PlatformSubsidyBudget, platform_fen),
                (Account::Refunds, -(merchant_fen + platform_fen)),
            ],
        )
    }

    /// The receivable of a finished order becomes the merchant's, less the platform's commission
    /// and the return-shipping insurance premiums of its lines (paid into the insurance pool).
    pub fn settlement(
        merchant_id: i64,
        receivable_fen: i64,
        commission_fen: i64,
        premium_fen: i64,
    ) -> Result<Self, PostingError> {
        Self::new(
            PostingKind::Settlement,
            vec![
                (Account::MerchantReceivable(merchant_id), receivable_fen),
                (Account::MerchantSettlement(merchant_id), -(receivable_fen - commission_fen - premium_fen)),
                (Account::PlatformCommission, -commission_fen),
                (Account::InsurancePool, -premium_fen),
            ],
        )
    }

    pub fn kind(&self) -> PostingKind {
        self.kind
    }

    pub fn entries(&self) -> &[(Account, i64)] {
        &self.entries
    }
}

/// Commission on `amount_fen` at `rate_bps` basis points, rounded down (in the merchant's favour).
pub fn commission_fen(amount_fen: i64, rate_bps: i64) -> i64 {
    let exact = i128::from(amount_fen) * i128::from(rate_bps) / 10_000;
    i64::try_from(exact).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_balance_or_are_refused() {
        assert!(Posting::payment(7, 5990).is_ok());
        assert_eq!(Posting::payment(7, 0), Err(PostingError::Empty));
        let settlement = Posting::settlement(7, 10_000, 500, 0).expect("balanced");
        assert_eq!(settlement.entries().len(), 3);
        assert_eq!(
            Posting::new(PostingKind::Refund, vec![(Account::Refunds, -5), (Account::BuyerPayments, 4)]),
            Err(PostingError::Unbalanced(-1))
        );
        assert_eq!(Account::MerchantReceivable(7).to_string(), "merchant_receivable:7");
        assert_eq!(commission_fen(5990, 500), 299);
    }

    #[test]
    fn funded_payment_and_refund_cancel_out() {
        let funded = [(Account::PlatformSubsidyBudget, 300), (Account::CreatorCommission(9), 200)];
        let paid = Posting::funded_payment(7, 5000, &funded).expect("balanced");
        assert!(paid.entries().contains(&(Account::MerchantReceivable(7), -5500)));
        let back = Posting::funded_refund(Account::MerchantReceivable(7), 5000, &funded).expect("balanced");
        let mut net = std::collections::BTreeMap::new();
        for (account, fen) in paid.entries().iter().chain(back.entries()) {
            *net.entry(account.to_string()).or_insert(0) += fen;
        }
        assert_eq!(net.get("merchant_receivable:7"), Some(&0));
        assert_eq!(net.get("platform_subsidy_budget"), Some(&0));
        assert_eq!(net.get("buyer_payments"), Some(&5000));
        assert_eq!(net.get("refunds"), Some(&-5000));
    }
}
