//! Price protection (价格保护): what an order line is owed when its SKU's price drops inside the
//! promised window.
//!
//! Like with like: the buyer's paid price net of merchant-funded discounts against today's price
//! net of merchant-funded discounts; platform coupons and payment discounts are excluded on both
//! sides (Pinduoduo's worked example: paid 50 with merchant discounts 2, 3 and 5 → 40; today 40
//! with a merchant discount of 10 → 30; owed 10 per unit). Owed only on units not refunded,
//! never negative, and never twice for one drop: protection already paid on the line is deducted.
//! `xingqu-store`'s sweep computes the same amount in SQL; a storage test holds the two equal.

use crate::after_sale::money::front_loaded_share;
use crate::after_sale::window::{ProtectionWindowDays, ProtectionWindowFrom, protection_window};
use crate::promo::coupon::CouponKind;

/// What price protection needs to know of an order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedLine {
    pub quantity: i64,
    pub returned_units: i64,
    /// The line's list total less merchant-funded discounts, at purchase.
    pub merchant_net_fen: i64,
    pub paid_fen: i64,
    pub refunded_fen: i64,
    pub protection_fen: i64,
    pub compensation_fen: i64,
}

impl ProtectedLine {
    /// Units still with the buyer (not refunded).
    pub fn kept_units(&self) -> i64 {
        self.quantity - self.returned_units
    }

    /// What the line owes its buyer now if today's price net of merchant-funded discounts is
    /// `today_unit_fen`: the kept units' share of the net price paid, less today's price for them,
    /// less the protection already paid on them; at most what the line has not yet paid back
    /// (refunds + protection + compensation never exceed what was paid).
    ///
    /// Shares are by largest remainder with the refunded units first (as
    /// [`crate::after_sale::money::LineMoney`] refunds them). A refund after protection was paid
    /// took that protection back for the refunded units (it paid their share of what was left),
    /// so only the rest counts as paid on the kept units.
    pub fn due_fen(&self, today_unit_fen: i64) -> i64 {
        let (quantity, returned) = (self.quantity, self.returned_units);
        let kept = quantity - returned;
        if quantity <= 0 || kept <= 0 || returned < 0 {
            return 0;
        }
        let net_kept = self.merchant_net_fen - front_loaded_share(self.merchant_net_fen.max(0), quantity, 0, returned);
        let paid_returned = front_loaded_share(self.paid_fen.max(0), quantity, 0, returned);
        let taken_back = (paid_returned - self.refunded_fen).clamp(0, self.protection_fen.max(0));
        let protection_kept = self.protection_fen - taken_back;
        let due = i128::from(net_kept) - i128::from(today_unit_fen) * i128::from(kept) - i128::from(protection_kept);
        let cap = i128::from(self.paid_fen - self.refunded_fen - self.protection_fen - self.compensation_fen);
        i64::try_from(due.min(cap).max(0)).unwrap_or(0)
    }
}

/// The platform's part of `amount_fen` at `platform_bps` basis points, rounded down; the merchant
/// bears the rest.
pub fn platform_share_fen(amount_fen: i64, platform_bps: i64) -> i64 {
    i64::try_from(i128::from(amount_fen) * i128::from(platform_bps.clamp(0, 10_000)) / 10_000).unwrap_or(0)
}

/// Whether a price change at `at_ms` falls in a line's protection: after the order was placed and
/// before the window's end (counted from placement, or from sign-off: an order in transit is
/// still covered).
pub fn covers(
    from: ProtectionWindowFrom,
    days: i64,
    placed_at_ms: i64,
    delivered_at_ms: Option<i64>,
    at_ms: i64,
) -> bool {
    if at_ms < placed_at_ms {
        return false;
    }
    match from {
        ProtectionWindowFrom::SignOff if delivered_at_ms.is_none() => true,
        _ => ProtectionWindowDays::parse(days)
            .ok()
            .and_then(|days| protection_window(from, days, placed_at_ms, delivered_at_ms))
            .is_some_and(|(_, end_ms)| at_ms < end_ms),
    }
}

/// A shop coupon anyone may claim today, as today's price sees it (the merchant funds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenCoupon {
    pub id: i64,
    pub kind: CouponKind,
    /// What is left of its budget, if it has one: it takes off no more.
    pub budget_left_fen: Option<i64>,
}

/// The coupon that takes the most off one unit listed at `unit_fen` (a buyer of one unit gets
/// it: a threshold above the unit price does not count), with what it takes off; the oldest
/// on a tie. `None` when none takes anything off.
pub fn best_coupon_off(unit_fen: i64, coupons: &[OpenCoupon]) -> Option<(i64, i64)> {
    coupons
        .iter()
        .map(|c| (c.id, c.kind.off_fen(unit_fen, 1).min(c.budget_left_fen.unwrap_or(i64::MAX)).max(0)))
        .filter(|&(_, off_fen)| off_fen > 0)
        .min_by_key(|&(id, off_fen)| (std::cmp::Reverse(off_fen), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: i64, merchant_net_fen: i64, paid_fen: i64) -> ProtectedLine {
        ProtectedLine {
            quantity,
            returned_units: 0,
            merchant_net_fen,
            paid_fen,
            refunded_fen: 0,
            protection_fen: 0,
            compensation_fen: 0,
        }
    }

    #[test]
    fn pinduoduo_worked_example() {
        // Paid 50 less merchant discounts 2 + 3 + 5 = 40 net; a platform coupon of 4 made the
        // buyer pay 36. Today: 40 less a merchant discount of 10 = 30 net.
        assert_eq!(line(1, 4000, 3600).due_fen(3000), 1000);
    }

    #[test]
    fn only_kept_units_and_never_twice() {
        let mut l = line(3, 30_000, 30_000);
        assert_eq!(l.due_fen(9_000), 3_000);
        l.protection_fen = 3_000;
        assert_eq!(l.due_fen(9_000), 0, "the same drop pays once");
        assert_eq!(l.due_fen(8_000), 3_000, "a deeper drop pays the difference");
        // One unit refunded for its share of what was left (10 000 less its 1 000 of protection):
        // the kept two units hold 2 000 of protection.
        l.returned_units = 1;
        l.refunded_fen = 9_000;
        assert_eq!(l.due_fen(5_000), 20_000 - 10_000 - 2_000);
        assert_eq!(l.due_fen(20_000), 0, "never negative");
    }

    #[test]
    fn capped_by_what_was_not_paid_back() {
        // A platform coupon made the buyer pay little; protection cannot exceed it.
        let l = line(1, 10_000, 1_000);
        assert_eq!(l.due_fen(5_000), 1_000);
    }

    #[test]
    fn platform_share_rounds_down() {
        assert_eq!(platform_share_fen(999, 5_000), 499);
        assert_eq!(platform_share_fen(999, 0), 0);
        assert_eq!(platform_share_fen(999, 10_000), 999);
    }

    #[test]
    fn window_to_the_millisecond() {
        let day = 86_400_000;
        let placed = 1_000_000;
        assert!(covers(ProtectionWindowFrom::Placement, 7, placed, None, placed + 7 * day - 1_000));
        assert!(!covers(ProtectionWindowFrom::Placement, 7, placed, None, placed + 7 * day));
        assert!(!covers(ProtectionWindowFrom::Placement, 7, placed, None, placed - 1_000));
        assert!(covers(ProtectionWindowFrom::SignOff, 7, placed, None, placed + 30 * day));
        let signed = placed + 3 * day;
        assert!(covers(ProtectionWindowFrom::SignOff, 7, placed, Some(signed), signed + 7 * day - 1_000));
        assert!(!covers(ProtectionWindowFrom::SignOff, 7, placed, Some(signed), signed + 7 * day + 1_000));
    }

    #[test]
    fn the_best_open_coupon_for_one_unit() {
        let coupon = |id, kind, budget_left_fen| OpenCoupon { id, kind, budget_left_fen };
        let coupons = [
            coupon(1, CouponKind::Threshold { threshold_fen: 5_000, off_fen: 500 }, None),
            // Needs two units' worth: no use to a buyer of one.
            coupon(2, CouponKind::Threshold { threshold_fen: 9_000, off_fen: 2_000 }, None),
            coupon(3, CouponKind::PercentOff { percent_bps: 1_000, cap_fen: 800 }, Some(300)),
            coupon(4, CouponKind::MoneyOff { off_fen: 500 }, None),
        ];
        assert_eq!(best_coupon_off(6_000, &coupons), Some((1, 500)), "the oldest of the equal best");
        assert_eq!(best_coupon_off(9_000, &coupons), Some((2, 2_000)));
        assert_eq!(best_coupon_off(4_000, &coupons[..3]), Some((3, 300)), "capped by its budget");
        assert_eq!(best_coupon_off(4_000, &coupons[..2]), None);
        assert_eq!(best_coupon_off(100, &[coupon(5, CouponKind::MoneyOff { off_fen: 500 }, None)]), Some((5, 100)));
        assert_eq!(best_coupon_off(4_000, &[coupon(6, CouponKind::MoneyOff { off_fen: 500 }, Some(0))]), None);
    }
}
