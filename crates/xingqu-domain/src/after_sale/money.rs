//! What an order line may still pay back: refunds of its units, price protection and other
//! compensation, never together more than the buyer paid for the line.
//!
//! A line's units share its payment by largest remainder (the extra fen go to the first units, as
//! in [`crate::promo::refund::prorate_refund`]), and units are refunded in order, so successive
//! partial refunds of every unit sum exactly to the paid amount.
//!
//! Price protection and compensation are paid on the units the buyer still holds, so a later
//! refund deducts them: the refund for some units is their share of what the line has left to pay
//! ([`LineMoney::remaining_fen`]) among the units not yet refunded, and never more than those
//! units' share of the payment. Without protection or compensation the two shares are equal;
//! with them, refunding every unit pays back exactly what is left, and the buyer ends up with what
//! they paid, neither more nor less.

use std::cmp::min;

/// What one order line was paid and has paid back. Valid by construction: at least one unit,
/// amounts not negative, `returned_units <= quantity`, and
/// `refunded_fen + protection_fen + compensation_fen <= paid_fen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMoney {
    quantity: i64,
    paid_fen: i64,
    /// Refunds of goods (units refunded, returned or not).
    refunded_fen: i64,
    /// Units refunded so far; they hold no money any more.
    returned_units: i64,
    /// Price protection paid.
    protection_fen: i64,
    /// Other compensation paid to the buyer (a damaged item kept, a missed dispatch promise).
    compensation_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "a line needs at least one unit, no negative amounts, returned units within its quantity and \
         payouts within what was paid"
    )]
    InvalidLine,
    #[error("{units} units asked for, {open} not yet refunded")]
    UnitsOutOfRange { units: i64, open: i64 },
    #[error("an amount must not be negative")]
    NegativeAmount,
    #[error("{fen} 分 is more than the {max} 分 the line may pay for this")]
    TooMuch { fen: i64, max: i64 },
}

impl MoneyError {
    /// A stable snake_case code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::InvalidLine => "invalid_line_money",
            MoneyError::UnitsOutOfRange { .. } => "units_out_of_range",
            MoneyError::NegativeAmount => "negative_amount",
            MoneyError::TooMuch { .. } => "exceeds_refundable",
        }
    }
}

impl LineMoney {
    /// A line as paid, nothing paid back yet.
    pub fn new(quantity: i64, paid_fen: i64) -> Result<Self, MoneyError> {
        Self::restore(quantity, paid_fen, 0, 0, 0, 0)
    }

    /// A line as stored, checked against the invariants.
    pub fn restore(
        quantity: i64,
        paid_fen: i64,
        refunded_fen: i64,
        returned_units: i64,
        protection_fen: i64,
        compensation_fen: i64,
    ) -> Result<Self, MoneyError> {
        let paid_back = i128::from(refunded_fen) + i128::from(protection_fen) + i128::from(compensation_fen);
        let valid = quantity >= 1
            && paid_fen >= 0
            && refunded_fen >= 0
            && protection_fen >= 0
            && compensation_fen >= 0
            && (0..=quantity).contains(&returned_units)
            && paid_back <= i128::from(paid_fen);
        if !valid {
            return Err(MoneyError::InvalidLine);
        }
        Ok(Self { quantity, paid_fen, refunded_fen, returned_units, protection_fen, compensation_fen })
    }

    pub fn quantity(&self) -> i64 {
        self.quantity
    }

    pub fn paid_fen(&self) -> i64 {
        self.paid_fen
    }

    pub fn refunded_fen(&self) -> i64 {
        self.refunded_fen
    }

    pub fn returned_units(&self) -> i64 {
        self.returned_units
    }

    pub fn protection_fen(&self) -> i64 {
        self.protection_fen
    }

    pub fn compensation_fen(&self) -> i64 {
        self.compensation_fen
    }

    /// Units the buyer still holds money for (not yet refunded).
    pub fn open_units(&self) -> i64 {
        self.quantity - self.returned_units
    }

    /// What the line may still pay back, all kinds together. Never negative (the invariant), and
    /// no overflow: each term is at least 0 and together they are at most `paid_fen`.
    pub fn remaining_fen(&self) -> i64 {
        self.paid_fen - self.refunded_fen - self.protection_fen - self.compensation_fen
    }

    /// The refund for `units` more units: the share of [`Self::remaining_fen`] those units hold
    /// among the units not yet refunded (so protection and compensation already paid on them are
    /// deducted), capped at their share of the payment (so a refund once made for less does not
    /// inflate the next one). Between 0 and `remaining_fen()`.
    pub fn refund_for_units(&self, units: i64) -> Result<i64, MoneyError> {
        let open = self.open_units();
        if units < 1 || units > open {
            return Err(MoneyError::UnitsOutOfRange { units, open });
        }
        let goods = front_loaded_share(self.paid_fen, self.quantity, self.returned_units, units);
        let left = front_loaded_share(self.remaining_fen(), open, 0, units);
        Ok(min(goods, left))
    }

    /// The most price protection may pay now: what the line has left, and nothing once every unit
    /// is refunded (protection pays for units the buyer keeps).
    pub fn protection_cap_fen(&self) -> i64 {
        if self.open_units() == 0 { 0 } else { self.remaining_fen() }
    }

    /// Records a refund of `fen` for `units` more units; at most [`Self::refund_for_units`].
    pub fn apply_refund(self, units: i64, fen: i64) -> Result<Self, MoneyError> {
        let max = self.refund_for_units(units)?;
        check_amount(fen, max)?;
        Ok(Self { refunded_fen: self.refunded_fen + fen, returned_units: self.returned_units + units, ..self })
    }

    /// Records price protection of `fen`; at most [`Self::protection_cap_fen`].
    pub fn apply_protection(self, fen: i64) -> Result<Self, MoneyError> {
        check_amount(fen, self.protection_cap_fen())?;
        Ok(Self { protection_fen: self.protection_fen + fen, ..self })
    }

    /// Records compensation of `fen`; at most [`Self::remaining_fen`].
    pub fn apply_compensation(self, fen: i64) -> Result<Self, MoneyError> {
        check_amount(fen, self.remaining_fen())?;
        Ok(Self { compensation_fen: self.compensation_fen + fen, ..self })
    }
}

fn check_amount(fen: i64, max: i64) -> Result<(), MoneyError> {
    if fen < 0 {
        Err(MoneyError::NegativeAmount)
    } else if fen > max {
        Err(MoneyError::TooMuch { fen, max })
    } else {
        Ok(())
    }
}

/// The part of `total_fen` held by parts `[from, from + count)` when it is split over `parts`
/// equal parts by largest remainder: each part gets the floor, and the fen left over go one each to
/// the first parts (as [`crate::allocation::allocate`] does with equal weights). Cumulative
/// shares telescope, so consecutive ranges covering every part sum exactly to `total_fen`.
///
/// Callers ensure `total_fen >= 0`, `parts >= 1` and `0 <= from <= from + count <= parts`; then
/// `k * (total_fen / parts) <= total_fen` for every `k <= parts`, so nothing overflows.
pub(crate) fn front_loaded_share(total_fen: i64, parts: i64, from: i64, count: i64) -> i64 {
    let (each, extra) = (total_fen / parts, total_fen % parts);
    let cumulative = |k: i64| k * each + min(k, extra);
    cumulative(from + count) - cumulative(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promo::refund::prorate_refund;
    use proptest::prelude::*;

    fn line(quantity: i64, paid_fen: i64) -> LineMoney {
        LineMoney::new(quantity, paid_fen).expect("valid line")
    }

    #[test]
    fn partial_refunds_share_the_payment() {
        // 100 分 over 3 units is 34 + 33 + 33, as the coupon pro-rating splits it.
        let l = line(3, 100);
        assert_eq!(l.refund_for_units(1), Ok(34));
        assert_eq!(l.refund_for_units(3), Ok(100));
        let l = l.apply_refund(1, 34).expect("first");
        assert_eq!(l.refund_for_units(1), Ok(33));
        assert_eq!(l.refund_for_units(2), Ok(66));
        let l = l.apply_refund(2, 66).expect("rest");
        assert_eq!((l.remaining_fen(), l.open_units(), l.protection_cap_fen()), (0, 0, 0));
    }

    #[test]
    fn later_refund_deducts_protection() {
        // Two units at 100 分; the price dropped by 10 分 a unit and protection paid 20 分.
        let l = line(2, 200).apply_protection(20).expect("protection");
        assert_eq!(l.refund_for_units(1), Ok(90));
        let l = l.apply_refund(1, 90).expect("first");
        // The second unit's 10 分 of protection is deducted once, not the whole 20 again.
        assert_eq!(l.refund_for_units(1), Ok(90));
        let l = l.apply_refund(1, 90).expect("second");
        assert_eq!(l.refunded_fen() + l.protection_fen(), 200);
        assert_eq!(l.remaining_fen(), 0);
    }

    #[test]
    fn an_under_refund_does_not_inflate_the_next() {
        // Merchant and buyer agreed on 50 分 for a worn first unit: the second is still worth 100.
        let l = line(2, 200).apply_refund(1, 50).expect("agreed");
        assert_eq!(l.remaining_fen(), 150);
        assert_eq!(l.refund_for_units(1), Ok(100));
    }

    #[test]
    fn compensation_is_spread_over_the_units_kept() {
        let l = line(2, 200).apply_compensation(30).expect("compensation");
        assert_eq!(l.refund_for_units(1), Ok(85));
        assert_eq!(l.refund_for_units(2), Ok(170));
    }

    #[test]
    fn refusals() {
        let l = line(3, 100);
        assert_eq!(l.refund_for_units(0), Err(MoneyError::UnitsOutOfRange { units: 0, open: 3 }));
        assert_eq!(l.refund_for_units(4), Err(MoneyError::UnitsOutOfRange { units: 4, open: 3 }));
        assert_eq!(l.apply_refund(1, 35), Err(MoneyError::TooMuch { fen: 35, max: 34 }));
        assert_eq!(l.apply_refund(1, -1), Err(MoneyError::NegativeAmount));
        assert_eq!(l.apply_protection(101), Err(MoneyError::TooMuch { fen: 101, max: 100 }));
        assert_eq!(l.apply_compensation(-5).map_err(|e| e.code()), Err("negative_amount"));
        let l = l.apply_compensation(100).expect("all of it");
        assert_eq!(l.apply_protection(1).map_err(|e| e.code()), Err("exceeds_refundable"));
        assert_eq!(l.refund_for_units(3), Ok(0), "nothing left to refund, but the units may still go back");
        let all_back = line(2, 10).apply_refund(2, 5).expect("under-refunded");
        assert_eq!(all_back.protection_cap_fen(), 0, "no units left to protect");
    }

    #[test]
    fn restore_checks_invariants() {
        assert!(LineMoney::restore(2, 200, 100, 1, 50, 50).is_ok());
        assert_eq!(LineMoney::restore(2, 200, 100, 1, 50, 51), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::restore(2, 200, 0, 3, 0, 0), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::restore(2, 200, 0, -1, 0, 0), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::restore(0, 200, 0, 0, 0, 0), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::restore(1, -1, 0, 0, 0, 0), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::restore(1, 100, -1, 0, 0, 0), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::restore(1, i64::MAX, i64::MAX, 0, i64::MAX, 0), Err(MoneyError::InvalidLine));
        assert_eq!(LineMoney::new(1, 0).map(|l| l.remaining_fen()), Ok(0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Refund `1 + units % open` units, paying `per_mille` of what is allowed.
        Refund {
            units: i64,
            per_mille: i64,
        },
        Protection {
            per_mille: i64,
        },
        Compensation {
            per_mille: i64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..1_000, 0i64..=1_000).prop_map(|(units, per_mille)| Op::Refund { units, per_mille }),
            // A full refund is the common case: make it likely.
            (0i64..1_000).prop_map(|units| Op::Refund { units, per_mille: 1_000 }),
            (0i64..=1_000).prop_map(|per_mille| Op::Protection { per_mille }),
            (0i64..=1_000).prop_map(|per_mille| Op::Compensation { per_mille }),
        ]
    }

    fn part(max: i64, per_mille: i64) -> i64 {
        i64::try_from(i128::from(max) * i128::from(per_mille) / 1_000).expect("at most max")
    }

    proptest! {
        #[test]
        fn payouts_never_exceed_payment(
            quantity in 1i64..=99,
            paid in 0i64..=10_000_000_000,
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let mut l = line(quantity, paid);
            let mut exact = true;
            for op in ops {
                l = match op {
                    Op::Refund { units, per_mille } => {
                        if l.open_units() == 0 { continue; }
                        let units = 1 + units % l.open_units();
                        let max = l.refund_for_units(units).expect("in range");
                        prop_assert!((0..=l.remaining_fen()).contains(&max));
                        exact &= per_mille == 1_000;
                        l.apply_refund(units, part(max, per_mille)).expect("within the refund")
                    }
                    Op::Protection { per_mille } => l.apply_protection(part(l.protection_cap_fen(), per_mille)).expect("capped"),
                    Op::Compensation { per_mille } => l.apply_compensation(part(l.remaining_fen(), per_mille)).expect("capped"),
                };
                prop_assert!(l.refunded_fen() + l.protection_fen() + l.compensation_fen() <= l.paid_fen());
                prop_assert!(l.remaining_fen() >= 0);
                prop_assert!(l.returned_units() <= l.quantity());
                let stored = LineMoney::restore(
                    l.quantity(), l.paid_fen(), l.refunded_fen(), l.returned_units(), l.protection_fen(), l.compensation_fen(),
                );
                prop_assert_eq!(stored, Ok(l));
            }
            // Refunding what is still open, in full, pays back everything left when every refund
            // so far was made in full: protection and compensation were deducted, never lost.
            if l.open_units() > 0 {
                let rest = l.refund_for_units(l.open_units()).expect("the rest");
                l = l.apply_refund(l.open_units(), rest).expect("the rest");
            }
            if exact {
                prop_assert_eq!(l.remaining_fen(), 0);
            }
        }

        #[test]
        fn full_refunds_in_any_partition_sum_to_paid(
            quantity in 1i64..=99,
            paid in 0i64..=10_000_000_000,
            chunks in prop::collection::vec(1i64..=20, 1..30),
        ) {
            let mut l = line(quantity, paid);
            let mut refunded = 0;
            for chunk in chunks.into_iter().chain(std::iter::once(quantity)) {
                let chunk = chunk.min(l.open_units());
                if chunk == 0 { break; }
                let fen = l.refund_for_units(chunk).expect("in range");
                // The same amount the coupon pro-rating gives for those units.
                let prorated = prorate_refund(paid, quantity, &[], l.returned_units(), chunk).expect("in range");
                prop_assert_eq!(fen, prorated.refund_fen);
                l = l.apply_refund(chunk, fen).expect("in full");
                refunded += fen;
            }
            prop_assert_eq!(l.open_units(), 0);
            prop_assert_eq!(refunded, paid);
            prop_assert_eq!(l.refunded_fen(), paid);
        }
    }
}
