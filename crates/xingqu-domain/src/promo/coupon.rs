//! What a coupon is — its class (who issues and funds it, which lane it sits in), its kind (what
//! it takes off a base), its scope and the classes it combines with — as held in a buyer's wallet.

use crate::Invalid;
use crate::checkout::{Funder, Lane};
use std::collections::BTreeSet;
use std::fmt;

/// The largest amount any coupon field holds: 10 000 000 元.
pub const COUPON_FEN_MAX: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CouponClass {
    Shop,
    Fan,
    Platform,
    RedPacket,
}

impl CouponClass {
    /// In the order coupons apply: the shop lane's classes, then the platform lane's.
    pub const ALL: [CouponClass; 4] =
        [CouponClass::Shop, CouponClass::Fan, CouponClass::Platform, CouponClass::RedPacket];

    pub fn as_str(self) -> &'static str {
        match self {
            CouponClass::Shop => "shop",
            CouponClass::Fan => "fan",
            CouponClass::Platform => "platform",
            CouponClass::RedPacket => "red_packet",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == raw)
            .ok_or_else(|| Invalid::new("class", "unknown_class", "must be one of shop, fan, platform, red_packet"))
    }

    /// Fan coupons price the creator's goods like a shop coupon does, so they share the shop lane.
    pub fn lane(self) -> Lane {
        match self {
            CouponClass::Shop | CouponClass::Fan => Lane::Shop,
            CouponClass::Platform | CouponClass::RedPacket => Lane::Platform,
        }
    }

    pub fn funder(self) -> Funder {
        match self {
            CouponClass::Shop => Funder::Merchant,
            CouponClass::Fan => Funder::Creator,
            CouponClass::Platform | CouponClass::RedPacket => Funder::Platform,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of coupon classes, stored as their names joined by commas (`"shop,fan"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassSet(u8);

impl ClassSet {
    pub fn none() -> Self {
        Self(0)
    }

    pub fn all() -> Self {
        Self::of(&CouponClass::ALL)
    }

    pub fn of(classes: &[CouponClass]) -> Self {
        Self(classes.iter().fold(0, |bits, c| bits | c.bit()))
    }

    /// Comma-separated class names; blanks around names and empty items are ignored.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let mut set = Self::none();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let class = CouponClass::parse(name).map_err(|e| Invalid { field: "combines_with", ..e })?;
            set.0 |= class.bit();
        }
        Ok(set)
    }

    pub fn contains(self, class: CouponClass) -> bool {
        self.0 & class.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = CouponClass> {
        CouponClass::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl fmt::Display for ClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(CouponClass::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// What a coupon takes off the base it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponKind {
    /// 满X减Y: `off_fen` when the base reaches `threshold_fen`.
    Threshold {
        threshold_fen: i64,
        off_fen: i64,
    },
    MoneyOff {
        off_fen: i64,
    },
    /// `percent_bps` of the base (1 bp = 0.01 %), rounded down, at most `cap_fen`.
    PercentOff {
        percent_bps: i64,
        cap_fen: i64,
    },
    /// Each eligible unit costs `price_fen`; takes off whatever the base is above that.
    FixedPrice {
        price_fen: i64,
    },
}

/// A kind's amounts as stored: one column each, 0 where the kind has no use for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindFields {
    pub threshold_fen: i64,
    pub off_fen: i64,
    pub percent_bps: i64,
    pub cap_fen: i64,
    pub price_fen: i64,
}

impl KindFields {
    fn named(self) -> [(&'static str, i64); 5] {
        [
            ("threshold_fen", self.threshold_fen),
            ("off_fen", self.off_fen),
            ("percent_bps", self.percent_bps),
            ("cap_fen", self.cap_fen),
            ("price_fen", self.price_fen),
        ]
    }
}

impl CouponKind {
    /// `kind` is `threshold`, `money_off`, `percent_off` or `fixed_price`. The fields it uses must
    /// be 1 to [`COUPON_FEN_MAX`] (percent: 1 to 9 999 bp); the ones it doesn't must be 0, so a
    /// form that sets the wrong field is refused rather than silently ignored.
    pub fn parse(kind: &str, fields: KindFields) -> Result<Self, Invalid> {
        let used: &[&str] = match kind {
            "threshold" => &["threshold_fen", "off_fen"],
            "money_off" => &["off_fen"],
            "percent_off" => &["percent_bps", "cap_fen"],
            "fixed_price" => &["price_fen"],
            _ => {
                return Err(Invalid::new(
                    "kind",
                    "unknown_kind",
                    "must be one of threshold, money_off, percent_off, fixed_price",
                ));
            }
        };
        for (name, value) in fields.named() {
            let max = if name == "percent_bps" { 9_999 } else { COUPON_FEN_MAX };
            let wanted = used.contains(&name);
            if wanted && value == 0 {
                return Err(Invalid::new(name, "missing_field", format!("a {kind} coupon needs {name}")));
            }
            if wanted && !(1..=max).contains(&value) {
                return Err(Invalid::new(name, "out_of_range", format!("must be between 1 and {max}")));
            }
            if !wanted && value != 0 {
                return Err(Invalid::new(name, "unexpected_field", format!("a {kind} coupon has no {name}")));
            }
        }
        let f = fields;
        let parsed = match kind {
            "threshold" => CouponKind::Threshold { threshold_fen: f.threshold_fen, off_fen: f.off_fen },
            "money_off" => CouponKind::MoneyOff { off_fen: f.off_fen },
            "percent_off" => CouponKind::PercentOff { percent_bps: f.percent_bps, cap_fen: f.cap_fen },
            _ => CouponKind::FixedPrice { price_fen: f.price_fen },
        };
        if let CouponKind::Threshold { threshold_fen, off_fen } = parsed
            && off_fen >= threshold_fen
        {
            return Err(Invalid::new("off_fen", "out_of_range", "must be below threshold_fen"));
        }
        Ok(parsed)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            CouponKind::Threshold { .. } => "threshold",
            CouponKind::MoneyOff { .. } => "money_off",
            CouponKind::PercentOff { .. } => "percent_off",
            CouponKind::FixedPrice { .. } => "fixed_price",
        }
    }

    pub fn fields(&self) -> KindFields {
        match *self {
            CouponKind::Threshold { threshold_fen, off_fen } => {
                KindFields { threshold_fen, off_fen, ..KindFields::default() }
            }
            CouponKind::MoneyOff { off_fen } => KindFields { off_fen, ..KindFields::default() },
            CouponKind::PercentOff { percent_bps, cap_fen } => {
                KindFields { percent_bps, cap_fen, ..KindFields::default() }
            }
            CouponKind::FixedPrice { price_fen } => KindFields { price_fen, ..KindFields::default() },
        }
    }

    /// What this takes off `base_fen` spread over `units` eligible units: never negative, never
    /// more than the base. The best-set search relies on two more properties, for every kind: it
    /// never falls as the base rises (a coupon applied later sees a smaller base, so it takes off
    /// no more than it would now), and except across a threshold it rises by at most 1 分 per 分
    /// of base (so what is left to pay never falls as the base rises).
    pub fn off_fen(&self, base_fen: i64, units: i64) -> i64 {
        let base = base_fen.max(0);
        let off = match *self {
            CouponKind::Threshold { threshold_fen, off_fen } => {
                if base >= threshold_fen {
                    off_fen
                } else {
                    0
                }
            }
            CouponKind::MoneyOff { off_fen } => off_fen,
            CouponKind::PercentOff { percent_bps, cap_fen } => {
                // Below 100 % the share is below the base; i128 only for bases past 9·10^14 分.
                let share = match base.checked_mul(percent_bps) {
                    Some(scaled) => scaled / 10_000,
                    None => i64::try_from(i128::from(base) * i128::from(percent_bps) / 10_000).unwrap_or(base),
                };
                share.min(cap_fen)
            }
            CouponKind::FixedPrice { price_fen } => base.saturating_sub(price_fen.saturating_mul(units.max(0))),
        };
        off.clamp(0, base)
    }
}

/// Which lines a coupon covers; `None` means any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CouponScope {
    pub merchant_id: Option<i64>,
    pub product_ids: Option<BTreeSet<i64>>,
}

impl CouponScope {
    pub fn covers(&self, merchant_id: i64, product_id: i64) -> bool {
        self.merchant_id.is_none_or(|m| m == merchant_id)
            && self.product_ids.as_ref().is_none_or(|ids| ids.contains(&product_id))
    }
}

/// A claimed coupon in a buyer's wallet, as the checkout sees it. The caller passes only claims
/// valid now (the domain has no clock); `valid_until_ms` only breaks ties between equal savings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCoupon {
    pub claim_id: i64,
    pub coupon_id: i64,
    pub class: CouponClass,
    pub kind: CouponKind,
    pub scope: CouponScope,
    pub combines_with: ClassSet,
    /// The merchant id (shop coupons) or creator user id (fan coupons); `None` for the platform.
    pub funder_id: Option<i64>,
    /// What is left of the coupon's budget: its discount never exceeds it. `None`: no budget cap.
    pub budget_left_fen: Option<i64>,
    pub valid_until_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(threshold_fen: i64, off_fen: i64, percent_bps: i64, cap_fen: i64, price_fen: i64) -> KindFields {
        KindFields { threshold_fen, off_fen, percent_bps, cap_fen, price_fen }
    }

    #[test]
    fn classes_and_sets_round_trip() {
        for class in CouponClass::ALL {
            assert_eq!(CouponClass::parse(class.as_str()), Ok(class));
        }
        assert_eq!(CouponClass::RedPacket.lane(), Lane::Platform);
        assert_eq!(CouponClass::Fan.funder(), Funder::Creator);
        let set = ClassSet::parse(" fan, shop,,").expect("set");
        assert_eq!(set.to_string(), "shop,fan");
        assert!(set.contains(CouponClass::Fan) && !set.contains(CouponClass::Platform));
        assert_eq!(ClassSet::parse(&ClassSet::all().to_string()), Ok(ClassSet::all()));
        assert_eq!(ClassSet::parse(""), Ok(ClassSet::none()));
        assert_eq!(ClassSet::parse("shop,vip").map_err(|e| (e.field, e.code)), Err(("combines_with", "unknown_class")));
    }

    #[test]
    fn kinds_parse_with_their_fields_only() {
        let parse = |kind: &str, f: KindFields| CouponKind::parse(kind, f).map_err(|e| (e.field, e.code));
        let threshold = CouponKind::Threshold { threshold_fen: 10_000, off_fen: 1_500 };
        assert_eq!(parse("threshold", fields(10_000, 1_500, 0, 0, 0)), Ok(threshold));
        assert_eq!(parse("threshold", threshold.fields()), Ok(threshold));
        assert_eq!(parse("threshold", fields(1_500, 1_500, 0, 0, 0)), Err(("off_fen", "out_of_range")));
        assert_eq!(parse("threshold", fields(0, 1_500, 0, 0, 0)), Err(("threshold_fen", "missing_field")));
        assert_eq!(parse("money_off", fields(0, 500, 0, 0, 0)), Ok(CouponKind::MoneyOff { off_fen: 500 }));
        assert_eq!(parse("money_off", fields(0, -5, 0, 0, 0)), Err(("off_fen", "out_of_range")));
        assert_eq!(parse("money_off", fields(0, COUPON_FEN_MAX + 1, 0, 0, 0)), Err(("off_fen", "out_of_range")));
        assert_eq!(parse("money_off", fields(0, 500, 0, 300, 0)), Err(("cap_fen", "unexpected_field")));
        assert_eq!(
            parse("percent_off", fields(0, 0, 1_000, 2_000, 0)),
            Ok(CouponKind::PercentOff { percent_bps: 1_000, cap_fen: 2_000 })
        );
        assert_eq!(parse("percent_off", fields(0, 0, 10_000, 2_000, 0)), Err(("percent_bps", "out_of_range")));
        assert_eq!(parse("percent_off", fields(0, 0, 1_000, 0, 0)), Err(("cap_fen", "missing_field")));
        assert_eq!(parse("fixed_price", fields(0, 0, 0, 0, 990)), Ok(CouponKind::FixedPrice { price_fen: 990 }));
        assert_eq!(parse("free", KindFields::default()), Err(("kind", "unknown_kind")));
    }

    #[test]
    fn each_kind_at_its_boundaries() {
        let threshold = CouponKind::Threshold { threshold_fen: 10_000, off_fen: 1_500 };
        let percent = CouponKind::PercentOff { percent_bps: 1_000, cap_fen: 2_000 };
        let fixed = CouponKind::FixedPrice { price_fen: 990 };
        let money = CouponKind::MoneyOff { off_fen: 500 };
        // (kind, base, units, off)
        let table = [
            (threshold, 9_999, 1, 0),
            (threshold, 10_000, 1, 1_500),
            (threshold, 50_000, 3, 1_500),
            (percent, 19_999, 1, 1_999),
            (percent, 20_000, 1, 2_000),
            (percent, 90_000, 1, 2_000),
            (percent, 9, 1, 0),
            (fixed, 2_000, 2, 20),
            (fixed, 1_980, 2, 0),
            (fixed, 1_500, 2, 0),
            (money, 499, 1, 499),
            (money, 500, 1, 500),
            (money, 0, 1, 0),
            (money, -10, 1, 0),
        ];
        for (kind, base, units, off) in table {
            assert_eq!(kind.off_fen(base, units), off, "{kind:?} on {base} for {units} units");
        }
    }

    fn any_kind() -> impl Strategy<Value = CouponKind> {
        prop_oneof![
            (2i64..=COUPON_FEN_MAX)
                .prop_flat_map(|t| (Just(t), 1..t))
                .prop_map(|(threshold_fen, off_fen)| CouponKind::Threshold { threshold_fen, off_fen }),
            (1i64..=COUPON_FEN_MAX).prop_map(|off_fen| CouponKind::MoneyOff { off_fen }),
            (1i64..=9_999, 1i64..=COUPON_FEN_MAX)
                .prop_map(|(percent_bps, cap_fen)| CouponKind::PercentOff { percent_bps, cap_fen }),
            (1i64..=COUPON_FEN_MAX).prop_map(|price_fen| CouponKind::FixedPrice { price_fen }),
        ]
    }

    proptest! {
        // The properties the best-set search's bound stands on (see `off_fen`).
        #[test]
        fn off_is_within_the_base_and_rises_with_it_by_at_most_the_base(
            kind in any_kind(), a in 0i64..=2 * COUPON_FEN_MAX, b in 0i64..=2 * COUPON_FEN_MAX, units in 1i64..=99,
        ) {
            let (low, high) = (a.min(b), a.max(b));
            let (off_low, off_high) = (kind.off_fen(low, units), kind.off_fen(high, units));
            prop_assert!((0..=low).contains(&off_low));
            prop_assert!(off_low <= off_high);
            let across_threshold = matches!(kind, CouponKind::Threshold { threshold_fen, .. } if low < threshold_fen && threshold_fen <= high);
            prop_assert!(across_threshold || off_high - off_low <= high - low);
            prop_assert_eq!(CouponKind::parse(kind.as_str(), kind.fields()), Ok(kind));
        }
    }
}
