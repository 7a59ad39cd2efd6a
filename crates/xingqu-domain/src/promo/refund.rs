//! Pro-rating a line's payment and its discounts over partial refunds.
//!
//! A full refund of an order returns its coupons to the wallet while they are still valid (the
//! app's job). A partial refund keeps the coupon used and pro-rates the discount by largest
//! remainder, so the refund is computed on what was actually paid: the line's paid amount and each
//! discount are split over its units by [`allocate`] with equal weights, and refunding units
//! `[already, already + refund)` returns exactly those units' parts. Successive partial refunds
//! therefore sum exactly to the paid amount and to each discount, never more.

use crate::allocation::allocate;
use crate::checkout::QUANTITY_MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSplit {
    pub refund_fen: i64,
    /// Per discount, in the order given: the share that no longer counts as spent by its funder.
    pub discount_returned_fen: Vec<i64>,
}

/// The refund for the next `refund_units` of a line of `line_units` of which
/// `already_refunded_units` were refunded before. `None` when the units are out of range (a line
/// holds 1 to [`QUANTITY_MAX`]; the refund takes 1 or more of the units not yet refunded) or an
/// amount is negative.
pub fn prorate_refund(
    line_paid_fen: i64,
    line_units: i64,
    discounts_fen: &[i64],
    already_refunded_units: i64,
    refund_units: i64,
) -> Option<RefundSplit> {
    if !(1..=QUANTITY_MAX).contains(&line_units)
        || already_refunded_units < 0
        || refund_units < 1
        || already_refunded_units + refund_units > line_units
    {
        return None;
    }
    let per_unit = vec![1; usize::try_from(line_units).ok()?];
    let from = usize::try_from(already_refunded_units).ok()?;
    let to = from + usize::try_from(refund_units).ok()?;
    let share = |total_fen: i64| allocate(total_fen, &per_unit).map(|parts| parts[from..to].iter().sum::<i64>());
    Some(RefundSplit {
        refund_fen: share(line_paid_fen)?,
        discount_returned_fen: discounts_fen.iter().map(|&d| share(d)).collect::<Option<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn three_units_refunded_one_then_two() {
        // 100 分 over 3 units is 34 + 33 + 33: the first refund takes the extra fen.
        let first = prorate_refund(100, 3, &[50, 0], 0, 1).expect("first");
        assert_eq!(first, RefundSplit { refund_fen: 34, discount_returned_fen: vec![17, 0] });
        let rest = prorate_refund(100, 3, &[50, 0], 1, 2).expect("rest");
        assert_eq!(rest, RefundSplit { refund_fen: 66, discount_returned_fen: vec![33, 0] });
        assert_eq!(prorate_refund(100, 3, &[50], 0, 3).map(|s| s.refund_fen), Some(100));
    }

    #[test]
    fn out_of_range() {
        assert_eq!(prorate_refund(100, 3, &[], 2, 2), None, "more than is left");
        assert_eq!(prorate_refund(100, 3, &[], 0, 0), None);
        assert_eq!(prorate_refund(100, 0, &[], 0, 1), None);
        assert_eq!(prorate_refund(100, QUANTITY_MAX + 1, &[], 0, 1), None);
        assert_eq!(prorate_refund(-1, 3, &[], 0, 1), None);
        assert_eq!(prorate_refund(100, 3, &[-5], 0, 1), None);
        assert_eq!(prorate_refund(100, 3, &[], -1, 1), None);
    }

    proptest! {
        #[test]
        fn successive_refunds_sum_exactly(
            paid in 0i64..10_000_000,
            discounts in prop::collection::vec(0i64..1_000_000, 0..4),
            units in 1i64..=QUANTITY_MAX,
            chunks in prop::collection::vec(1i64..=20, 1..30),
        ) {
            let (mut done, mut refunded, mut returned) = (0, 0, vec![0; discounts.len()]);
            for chunk in chunks {
                let chunk = chunk.min(units - done);
                if chunk == 0 { break; }
                let split = prorate_refund(paid, units, &discounts, done, chunk).expect("in range");
                done += chunk;
                refunded += split.refund_fen;
                for (sum, part) in returned.iter_mut().zip(&split.discount_returned_fen) { *sum += part; }
                prop_assert!(refunded <= paid);
                prop_assert!(returned.iter().zip(&discounts).all(|(r, d)| r <= d));
            }
            if done < units {
                let split = prorate_refund(paid, units, &discounts, done, units - done).expect("the rest");
                refunded += split.refund_fen;
                for (sum, part) in returned.iter_mut().zip(&split.discount_returned_fen) { *sum += part; }
            }
            prop_assert_eq!(refunded, paid);
            prop_assert_eq!(returned, discounts);
        }
    }
}
