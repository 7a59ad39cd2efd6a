//! The time windows that open an after-sale claim, to the millisecond: the seven-day return, price
//! protection and fresh-damage compensation, and what the law excludes from the seven-day return.
//!
//! A window is `(start_ms, end_ms)` with the end exclusive: a claim at `end_ms` is too late.
//! Calendar days are China Standard Time, UTC+8 with no daylight saving.

use super::{DAY_MS, HOUR_MS};
use crate::Invalid;
use crate::catalog::CategoryFlags;

/// China Standard Time, UTC+8 (no daylight saving).
const CHINA_OFFSET_MS: i64 = 8 * HOUR_MS;
const SEVEN_DAY_RETURN_DAYS: i64 = 7;
/// Spoiled fresh goods are reported within 48 hours of sign-off.
const FRESH_DAMAGE_MS: i64 = 48 * HOUR_MS;

/// The seven-day no-reason return window for goods signed for at `delivered_at_ms`: it starts at
/// 00:00 China time on the day after sign-off (the day of sign-off does not count, however late it
/// was) and ends seven days later.
pub fn seven_day_return_window(delivered_at_ms: i64) -> (i64, i64) {
    let local_ms = delivered_at_ms.saturating_add(CHINA_OFFSET_MS);
    let next_local_midnight_ms = (local_ms.div_euclid(DAY_MS) + 1).saturating_mul(DAY_MS);
    let start_ms = next_local_midnight_ms.saturating_sub(CHINA_OFFSET_MS);
    (start_ms, start_ms.saturating_add(SEVEN_DAY_RETURN_DAYS * DAY_MS))
}

/// Whether `now_ms` falls in `window`: from its start, up to but not including its end.
pub fn in_window(now_ms: i64, window: (i64, i64)) -> bool {
    window.0 <= now_ms && now_ms < window.1
}

/// Why goods cannot be returned without a reason within seven days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnExclusion {
    /// Made to the buyer's order (excluded by law).
    CustomMade,
    /// Fresh or perishable (excluded by law).
    Fresh,
    /// Digital goods, unsealed once delivered (excluded by law).
    Digital,
    /// Newspapers and periodicals (excluded by law).
    Periodical,
    /// Quality changes once unsealed: declared by the product and confirmed by the buyer at checkout.
    QualityChangesOnceUnsealed,
}

impl ReturnExclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnExclusion::CustomMade => "custom_made",
            ReturnExclusion::Fresh => "fresh",
            ReturnExclusion::Digital => "digital",
            ReturnExclusion::Periodical => "periodical",
            ReturnExclusion::QualityChangesOnceUnsealed => "quality_changes_once_unsealed",
        }
    }
}

/// Why the seven-day return does not apply to a product, if it does not: first the exclusions
/// by law (from the category), then the declared one. A product's declaration alone excludes
/// nothing: the buyer must have confirmed it at checkout, or the return stands.
pub fn seven_day_return_exclusion(
    flags: &CategoryFlags,
    quality_changes_once_unsealed_declared: bool,
    buyer_confirmed: bool,
) -> Option<ReturnExclusion> {
    if flags.custom_made {
        Some(ReturnExclusion::CustomMade)
    } else if flags.fresh {
        Some(ReturnExclusion::Fresh)
    } else if flags.digital {
        // The law excludes unsealed digital goods; a delivered digital good counts as unsealed.
        Some(ReturnExclusion::Digital)
    } else if flags.periodical {
        Some(ReturnExclusion::Periodical)
    } else if quality_changes_once_unsealed_declared && buyer_confirmed {
        Some(ReturnExclusion::QualityChangesOnceUnsealed)
    } else {
        None
    }
}

/// Where a price-protection window is counted from: order placement (JD third-party, Kuaishou) or
/// sign-off (JD self-operated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtectionWindowFrom {
    Placement,
    SignOff,
}

impl ProtectionWindowFrom {
    pub const ALL: [ProtectionWindowFrom; 2] = [ProtectionWindowFrom::Placement, ProtectionWindowFrom::SignOff];

    pub fn as_str(self) -> &'static str {
        match self {
            ProtectionWindowFrom::Placement => "placement",
            ProtectionWindowFrom::SignOff => "sign_off",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw).ok_or_else(|| {
            Invalid::new("protect_from", "invalid_protection_window_from", "must be placement or sign_off")
        })
    }
}

/// A price-protection window's length in days: 7, 15, 30 or 90.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtectionWindowDays(i64);

impl ProtectionWindowDays {
    pub const ALLOWED: [i64; 4] = [7, 15, 30, 90];

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if Self::ALLOWED.contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(Invalid::new("protect_window_days", "invalid_protection_window", "must be 7, 15, 30 or 90 days"))
        }
    }

    pub fn days(self) -> i64 {
        self.0
    }
}

/// The price-protection window of an order placed at `placed_at_ms` and signed for at
/// `delivered_at_ms`, counted to the millisecond from either. `None` when it counts from sign-off
/// and the goods are not signed for yet: the window has not opened.
pub fn protection_window(
    from: ProtectionWindowFrom,
    days: ProtectionWindowDays,
    placed_at_ms: i64,
    delivered_at_ms: Option<i64>,
) -> Option<(i64, i64)> {
    let start_ms = match from {
        ProtectionWindowFrom::Placement => placed_at_ms,
        ProtectionWindowFrom::SignOff => delivered_at_ms?,
    };
    Some((start_ms, start_ms.saturating_add(days.days() * DAY_MS)))
}

/// The window to report spoiled fresh goods: 48 hours from sign-off.
pub fn fresh_damage_window(delivered_at_ms: i64) -> (i64, i64) {
    (delivered_at_ms, delivered_at_ms.saturating_add(FRESH_DAMAGE_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_MS: i64 = 1_000;
    /// 2025-11-11T00:00:00 China time (2025-11-10T16:00:00Z).
    const NOV_11_CST: i64 = 1_762_790_400_000;

    /// One second before the start is out, the start is in, one second before the end is in, the
    /// end and one second after are out.
    fn assert_edges(window: (i64, i64)) {
        let (start, end) = window;
        assert!(!in_window(start - SECOND_MS, window), "before the start");
        assert!(in_window(start, window), "at the start");
        assert!(in_window(start + SECOND_MS, window), "after the start");
        assert!(in_window(end - SECOND_MS, window), "before the end");
        assert!(!in_window(end, window), "the end is exclusive");
        assert!(!in_window(end + SECOND_MS, window), "after the end");
    }

    #[test]
    fn seven_day_return_starts_the_next_china_day() {
        let nov_12 = NOV_11_CST + DAY_MS;
        let window = (nov_12, nov_12 + 7 * DAY_MS);
        // Signed for at 10:00, at midnight sharp, and one second before midnight, all on the 11th.
        for delivered in [NOV_11_CST + 10 * HOUR_MS, NOV_11_CST, nov_12 - SECOND_MS] {
            assert_eq!(seven_day_return_window(delivered), window, "delivered at {delivered}");
        }
        // One second later it is the 12th: the window moves a day.
        assert_eq!(seven_day_return_window(nov_12), (nov_12 + DAY_MS, nov_12 + 8 * DAY_MS));
        // 2025-11-11T20:00:00Z is already the 12th in Beijing.
        assert_eq!(seven_day_return_window(1_762_891_200_000).0, nov_12 + DAY_MS);
        assert_edges(window);
        let delivered = NOV_11_CST + 10 * HOUR_MS;
        assert!(!in_window(delivered, window), "the day of sign-off does not count");
    }

    #[test]
    fn protection_windows() {
        let placed = NOV_11_CST + 10 * HOUR_MS + 123;
        let delivered = placed + 3 * DAY_MS;
        for days in ProtectionWindowDays::ALLOWED {
            let d = ProtectionWindowDays::parse(days).expect("allowed");
            assert_eq!(d.days(), days);
            let from_placement = protection_window(ProtectionWindowFrom::Placement, d, placed, None);
            assert_eq!(from_placement, Some((placed, placed + days * DAY_MS)));
            let from_sign_off = protection_window(ProtectionWindowFrom::SignOff, d, placed, Some(delivered));
            assert_eq!(from_sign_off, Some((delivered, delivered + days * DAY_MS)));
            assert_eq!(protection_window(ProtectionWindowFrom::SignOff, d, placed, None), None, "not delivered yet");
            assert_edges(from_placement.expect("window"));
            assert_edges(from_sign_off.expect("window"));
        }
        for days in [0, 1, 8, 14, 60, 365, -7] {
            let err = ProtectionWindowDays::parse(days).expect_err("not allowed");
            assert_eq!(err.code, "invalid_protection_window");
        }
    }

    #[test]
    fn protection_window_from_names() {
        for from in ProtectionWindowFrom::ALL {
            assert_eq!(ProtectionWindowFrom::parse(from.as_str()), Ok(from));
        }
        assert_eq!(ProtectionWindowFrom::parse("signoff").map_err(|e| e.code), Err("invalid_protection_window_from"));
    }

    #[test]
    fn fresh_damage_is_48_hours_from_sign_off() {
        let delivered = NOV_11_CST + 10 * HOUR_MS;
        let window = fresh_damage_window(delivered);
        assert_eq!(window, (delivered, delivered + 2 * DAY_MS));
        assert_edges(window);
    }

    #[test]
    fn exclusions() {
        let none = CategoryFlags::default();
        assert_eq!(seven_day_return_exclusion(&none, false, false), None);
        let by_law = [
            (CategoryFlags { custom_made: true, ..none }, ReturnExclusion::CustomMade),
            (CategoryFlags { fresh: true, ..none }, ReturnExclusion::Fresh),
            (CategoryFlags { digital: true, ..none }, ReturnExclusion::Digital),
            (CategoryFlags { periodical: true, ..none }, ReturnExclusion::Periodical),
        ];
        for (flags, exclusion) in by_law {
            // The law needs no declaration or confirmation, and a declaration changes nothing.
            assert_eq!(seven_day_return_exclusion(&flags, false, false), Some(exclusion));
            assert_eq!(seven_day_return_exclusion(&flags, true, true), Some(exclusion));
        }
        // Cosmetics are returnable (they get allergy returns on top), unless declared and confirmed.
        let cosmetics = CategoryFlags { cosmetics: true, ..none };
        assert_eq!(seven_day_return_exclusion(&cosmetics, false, false), None);
        assert_eq!(seven_day_return_exclusion(&cosmetics, true, false), None, "declared but not confirmed");
        assert_eq!(seven_day_return_exclusion(&cosmetics, false, true), None, "confirmed but not declared");
        assert_eq!(
            seven_day_return_exclusion(&cosmetics, true, true),
            Some(ReturnExclusion::QualityChangesOnceUnsealed)
        );
        assert_eq!(ReturnExclusion::QualityChangesOnceUnsealed.as_str(), "quality_changes_once_unsealed");
    }
}
