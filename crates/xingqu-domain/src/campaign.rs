//! Campaigns (好物节): their window, the rules that decide which products a zone (专区) admits,
//! theme days, the campaign price a merchant may offer, and how much a subsidy pool (货品补贴)
//! takes off a unit.

use crate::Invalid;
use crate::catalog::{ListingTag, RegionPrefix};

/// The longest campaign: Double 11 runs 16 days; a quarter is plenty of room.
pub const CAMPAIGN_DAYS_MAX: i64 = 92;
/// How far back the campaign price is compared with list prices (the "original price" rule).
pub const REFERENCE_WINDOW_DAYS: i64 = 30;
pub const ZONE_RULE_ITEMS_MAX: usize = 50;
/// Traffic support a zone may ask for, as a share of all feed exposure.
pub const TRAFFIC_TARGET_BP_MAX: i64 = 5_000;
const DAY_MS: i64 = 86_400_000;
/// China Standard Time: theme days start at local midnight.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;

/// A campaign's window, `[starts_at_ms, ends_at_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignWindow {
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

impl CampaignWindow {
    pub fn parse(starts_at_ms: i64, ends_at_ms: i64) -> Result<Self, Invalid> {
        if starts_at_ms <= 0 || ends_at_ms <= starts_at_ms {
            return Err(Invalid::new("ends_at", "invalid_window", "a campaign ends after it starts"));
        }
        if ends_at_ms - starts_at_ms > CAMPAIGN_DAYS_MAX * DAY_MS {
            return Err(Invalid::new(
                "ends_at",
                "window_too_long",
                format!("a campaign lasts at most {CAMPAIGN_DAYS_MAX} days"),
            ));
        }
        Ok(Self { starts_at_ms, ends_at_ms })
    }

    pub fn contains(&self, at_ms: i64) -> bool {
        self.starts_at_ms <= at_ms && at_ms < self.ends_at_ms
    }

    /// A theme day must be a whole local day (from midnight, China time) that overlaps the window.
    pub fn theme_day(&self, day_starts_at_ms: i64) -> Result<i64, Invalid> {
        // The window is checked first: past it, the arithmetic below could overflow.
        if day_starts_at_ms <= self.starts_at_ms - DAY_MS || day_starts_at_ms >= self.ends_at_ms {
            return Err(Invalid::new("day", "outside_campaign", "the day is outside the campaign"));
        }
        if (day_starts_at_ms + CHINA_OFFSET_MS).rem_euclid(DAY_MS) != 0 {
            return Err(Invalid::new("day", "not_a_day_start", "a theme day starts at midnight, China time"));
        }
        Ok(day_starts_at_ms)
    }

    /// A slot of the official live room lies inside the window.
    pub fn slot(&self, starts_at_ms: i64, ends_at_ms: i64) -> Result<(i64, i64), Invalid> {
        if ends_at_ms <= starts_at_ms {
            return Err(Invalid::new("ends_at", "invalid_window", "a slot ends after it starts"));
        }
        if starts_at_ms < self.starts_at_ms || ends_at_ms > self.ends_at_ms {
            return Err(Invalid::new("starts_at", "outside_campaign", "the slot is outside the campaign"));
        }
        Ok((starts_at_ms, ends_at_ms))
    }
}

/// What a zone's rule looks at in a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFacts<'a> {
    pub merchant_id: i64,
    pub category_id: i64,
    pub origin_region_code: &'a str,
    pub tags: &'a [ListingTag],
    /// The SKU's list price.
    pub price_fen: i64,
}

/// Which products a zone admits. Every criterion given must hold; within a list, any entry will
/// do (a product with any of the tags, in any of the categories…). An empty rule admits all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneRule {
    pub tags: Vec<ListingTag>,
    pub category_ids: Vec<i64>,
    pub region_prefixes: Vec<RegionPrefix>,
    pub merchant_ids: Vec<i64>,
    pub min_price_fen: Option<i64>,
    pub max_price_fen: Option<i64>,
}

/// A zone rule as it arrives, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawZoneRule {
    pub tags: Vec<String>,
    pub category_ids: Vec<i64>,
    pub region_prefixes: Vec<String>,
    pub merchant_ids: Vec<i64>,
    pub min_price_fen: Option<i64>,
    pub max_price_fen: Option<i64>,
}

impl ZoneRule {
    pub fn parse(raw: &RawZoneRule) -> Result<Self, Invalid> {
        let too_many = |field: &'static str, n: usize| {
            (n > ZONE_RULE_ITEMS_MAX)
                .then(|| Invalid::new(field, "too_many", format!("at most {ZONE_RULE_ITEMS_MAX} entries")))
        };
        for (field, n) in [
            ("rule.tags", raw.tags.len()),
            ("rule.category_ids", raw.category_ids.len()),
            ("rule.region_prefixes", raw.region_prefixes.len()),
            ("rule.merchant_ids", raw.merchant_ids.len()),
        ] {
            if let Some(invalid) = too_many(field, n) {
                return Err(invalid);
            }
        }
        let tags = raw
            .tags
            .iter()
            .map(|t| ListingTag::parse(t).map_err(|e| Invalid { field: "rule.tags", ..e }))
            .collect::<Result<Vec<_>, _>>()?;
        let region_prefixes = raw
            .region_prefixes
            .iter()
            .map(|r| RegionPrefix::parse(r).map_err(|e| Invalid { field: "rule.region_prefixes", ..e }))
            .collect::<Result<Vec<_>, _>>()?;
        if raw.category_ids.iter().chain(&raw.merchant_ids).any(|&id| id <= 0) {
            return Err(Invalid::new("rule", "invalid_id", "ids are positive"));
        }
        for (field, price) in [("rule.min_price_fen", raw.min_price_fen), ("rule.max_price_fen", raw.max_price_fen)] {
            if price.is_some_and(|p| p < 0) {
                return Err(Invalid::new(field, "out_of_range", "a price is not negative"));
            }
        }
        if let (Some(min), Some(max)) = (raw.min_price_fen, raw.max_price_fen)
            && min > max
        {
            return Err(Invalid::new("rule.max_price_fen", "out_of_range", "the range's top is below its bottom"));
        }
        Ok(Self {
            tags,
            category_ids: raw.category_ids.clone(),
            region_prefixes,
            merchant_ids: raw.merchant_ids.clone(),
            min_price_fen: raw.min_price_fen,
            max_price_fen: raw.max_price_fen,
        })
    }

    /// Whether the zone admits the product; `Err` names the first criterion it fails.
    pub fn admits(&self, product: &ProductFacts<'_>) -> Result<(), &'static str> {
        if !self.tags.is_empty() && !self.tags.iter().any(|t| product.tags.contains(t)) {
            return Err("tag");
        }
        if !self.category_ids.is_empty() && !self.category_ids.contains(&product.category_id) {
            return Err("category");
        }
        if !self.region_prefixes.is_empty()
            && !self.region_prefixes.iter().any(|p| product.origin_region_code.starts_with(p.as_str()))
        {
            return Err("origin_region");
        }
        if !self.merchant_ids.is_empty() && !self.merchant_ids.contains(&product.merchant_id) {
            return Err("merchant");
        }
        if self.min_price_fen.is_some_and(|min| product.price_fen < min)
            || self.max_price_fen.is_some_and(|max| product.price_fen > max)
        {
            return Err("price_range");
        }
        Ok(())
    }
}

/// Checks a merchant's campaign price: positive, and strictly below `reference_price_fen`, the
/// lowest list price of the [`REFERENCE_WINDOW_DAYS`] before (so a price raised just before the
/// campaign and then "cut" is not a discount).
pub fn check_campaign_price(campaign_price_fen: i64, reference_price_fen: i64) -> Result<i64, Invalid> {
    if campaign_price_fen <= 0 {
        return Err(Invalid::new("campaign_price_fen", "out_of_range", "a campaign price is positive"));
    }
    if campaign_price_fen >= reference_price_fen {
        return Err(Invalid::new(
            "campaign_price_fen",
            "not_below_reference_price",
            format!(
                "the campaign price must be below {reference_price_fen} 分, the lowest list price of the last \
                 {REFERENCE_WINDOW_DAYS} days"
            ),
        ));
    }
    Ok(campaign_price_fen)
}

/// How a subsidy pool takes money off each unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubsidyRate {
    PerUnit {
        fen: i64,
    },
    /// `bp` basis points of the unit price, at most `cap_fen` a unit.
    Percent {
        bp: i64,
        cap_fen: Option<i64>,
    },
}

impl SubsidyRate {
    pub fn parse(
        per_unit_fen: Option<i64>,
        percent_bp: Option<i64>,
        cap_per_unit_fen: Option<i64>,
    ) -> Result<Self, Invalid> {
        match (per_unit_fen, percent_bp) {
            (Some(fen), None) if fen > 0 && cap_per_unit_fen.is_none() => Ok(Self::PerUnit { fen }),
            (Some(_), None) if cap_per_unit_fen.is_some() => {
                Err(Invalid::new("cap_per_unit_fen", "not_applicable", "a cap goes with a percentage"))
            }
            (None, Some(bp)) if (1..=9_000).contains(&bp) && cap_per_unit_fen.is_none_or(|c| c > 0) => {
                Ok(Self::Percent { bp, cap_fen: cap_per_unit_fen })
            }
            (Some(_), Some(_)) | (None, None) => {
                Err(Invalid::new("per_unit_fen", "one_rate", "give exactly one of per_unit_fen and percent_bp"))
            }
            _ => Err(Invalid::new("percent_bp", "out_of_range", "per_unit_fen > 0, percent_bp 1..=9000, cap > 0")),
        }
    }

    /// The subsidy on one unit priced `unit_price_fen`: never the whole price (a unit still costs
    /// at least 1 分, so an order always goes through payment).
    pub fn per_unit_fen(self, unit_price_fen: i64) -> i64 {
        let raw = match self {
            Self::PerUnit { fen } => fen,
            Self::Percent { bp, cap_fen } => {
                let share = unit_price_fen * bp / 10_000;
                cap_fen.map_or(share, |cap| share.min(cap))
            }
        };
        raw.clamp(0, (unit_price_fen - 1).max(0))
    }
}

/// The subsidy a line takes from a pool with `left_fen` unspent: all of it or none, so a pool
/// that cannot cover a line stops applying to it at once.
pub fn line_subsidy_fen(rate: SubsidyRate, unit_price_fen: i64, units: i64, left_fen: i64) -> Option<i64> {
    let fen = rate.per_unit_fen(unit_price_fen) * units;
    (fen > 0 && fen <= left_fen).then_some(fen)
}

/// An entry's life: pending until an operator decides; approved entries may be withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Withdrawn].into_iter().find(|s| s.as_str() == name)
    }

    /// An operator's review decides a pending entry; the merchant may withdraw a pending or
    /// approved one.
    pub fn review(self, approve: bool) -> Option<Self> {
        (self == Self::Pending).then_some(if approve { Self::Approved } else { Self::Rejected })
    }

    pub fn withdraw(self) -> Option<Self> {
        matches!(self, Self::Pending | Self::Approved).then_some(Self::Withdrawn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(tags: &[ListingTag]) -> ProductFacts<'_> {
        ProductFacts { merchant_id: 7, category_id: 3, origin_region_code: "222401", tags, price_fen: 5_000 }
    }

    #[test]
    fn an_empty_rule_admits_everything() {
        assert_eq!(ZoneRule::default().admits(&facts(&[])), Ok(()));
    }

    #[test]
    fn every_criterion_given_must_hold() {
        let rule = ZoneRule::parse(&RawZoneRule {
            tags: vec!["farm_specialty".into(), "geographic_indication".into()],
            region_prefixes: vec!["222400".into()],
            min_price_fen: Some(1_000),
            max_price_fen: Some(10_000),
            ..RawZoneRule::default()
        })
        .expect("valid");
        assert_eq!(rule.admits(&facts(&[ListingTag::GeographicIndication])), Ok(()));
        assert_eq!(rule.admits(&facts(&[ListingTag::DomesticBrand])), Err("tag"));
        let elsewhere = ProductFacts { origin_region_code: "110101", ..facts(&[ListingTag::FarmSpecialty]) };
        assert_eq!(rule.admits(&elsewhere), Err("origin_region"));
        let dear = ProductFacts { price_fen: 10_001, ..facts(&[ListingTag::FarmSpecialty]) };
        assert_eq!(rule.admits(&dear), Err("price_range"));
        let merchants = ZoneRule { merchant_ids: vec![8], ..ZoneRule::default() };
        assert_eq!(merchants.admits(&facts(&[])), Err("merchant"));
        let categories = ZoneRule { category_ids: vec![3, 4], ..ZoneRule::default() };
        assert_eq!(categories.admits(&facts(&[])), Ok(()));
    }

    #[test]
    fn bad_rules_are_refused() {
        let bad_tag = RawZoneRule { tags: vec!["cheap".into()], ..RawZoneRule::default() };
        assert_eq!(ZoneRule::parse(&bad_tag).map_err(|e| e.code), Err("unknown_tag"));
        let bad_range = RawZoneRule { min_price_fen: Some(5), max_price_fen: Some(4), ..RawZoneRule::default() };
        assert_eq!(ZoneRule::parse(&bad_range).map_err(|e| e.code), Err("out_of_range"));
        let bad_id = RawZoneRule { merchant_ids: vec![0], ..RawZoneRule::default() };
        assert_eq!(ZoneRule::parse(&bad_id).map_err(|e| e.code), Err("invalid_id"));
        let many = RawZoneRule { category_ids: (1..=51).collect(), ..RawZoneRule::default() };
        assert_eq!(ZoneRule::parse(&many).map_err(|e| e.code), Err("too_many"));
    }

    #[test]
    fn the_campaign_price_is_below_the_lowest_recent_price() {
        assert_eq!(check_campaign_price(8_999, 9_000), Ok(8_999));
        assert_eq!(check_campaign_price(9_000, 9_000).map_err(|e| e.code), Err("not_below_reference_price"));
        assert_eq!(check_campaign_price(0, 9_000).map_err(|e| e.code), Err("out_of_range"));
    }

    #[test]
    fn subsidies_leave_a_unit_at_least_one_fen_and_respect_caps() {
        let per_unit = SubsidyRate::parse(Some(500), None, None).expect("valid");
        assert_eq!(per_unit.per_unit_fen(2_000), 500);
        assert_eq!(per_unit.per_unit_fen(300), 299);
        let percent = SubsidyRate::parse(None, Some(1_000), Some(300)).expect("valid");
        assert_eq!(percent.per_unit_fen(2_000), 200);
        assert_eq!(percent.per_unit_fen(9_999), 300);
        assert_eq!(line_subsidy_fen(per_unit, 2_000, 3, 1_500), Some(1_500));
        assert_eq!(line_subsidy_fen(per_unit, 2_000, 3, 1_499), None);
        assert!(SubsidyRate::parse(Some(1), Some(1), None).is_err());
        assert!(SubsidyRate::parse(None, None, None).is_err());
        assert!(SubsidyRate::parse(None, Some(9_001), None).is_err());
        assert!(SubsidyRate::parse(Some(100), None, Some(5)).is_err());
        assert!(SubsidyRate::parse(Some(-1), None, None).is_err());
    }

    #[test]
    fn windows_days_and_slots() {
        let day = 86_400_000;
        // 2026-10-27 00:00 China time.
        let start = 1_792_944_000_000 + day;
        let window = CampaignWindow::parse(start, start + 16 * day).expect("valid");
        assert!(window.contains(start) && !window.contains(start + 16 * day));
        assert_eq!(window.theme_day(start + day), Ok(start + day));
        assert_eq!(window.theme_day(start + day + 1).map_err(|e| e.code), Err("not_a_day_start"));
        assert_eq!(window.theme_day(start + 16 * day).map_err(|e| e.code), Err("outside_campaign"));
        assert!(window.slot(start, start + 3_600_000).is_ok());
        assert_eq!(window.slot(start - 1, start + 1).map_err(|e| e.code), Err("outside_campaign"));
        assert_eq!(window.theme_day(i64::MAX).map_err(|e| e.code), Err("outside_campaign"));
        assert_eq!(window.theme_day(i64::MIN).map_err(|e| e.code), Err("outside_campaign"));
        assert!(CampaignWindow::parse(start, start).is_err());
        assert!(CampaignWindow::parse(start, start + 93 * day).is_err());
    }

    #[test]
    fn entries_are_reviewed_once_and_withdrawn_while_live() {
        assert_eq!(EntryStatus::Pending.review(true), Some(EntryStatus::Approved));
        assert_eq!(EntryStatus::Pending.review(false), Some(EntryStatus::Rejected));
        assert_eq!(EntryStatus::Approved.review(false), None);
        assert_eq!(EntryStatus::Approved.withdraw(), Some(EntryStatus::Withdrawn));
        assert_eq!(EntryStatus::Rejected.withdraw(), None);
    }
}
