//! 安心购 (assured purchase): the services an enrolled merchant offers, which of them an order
//! line is promised, and the buyer standing that earns an express refund.

use crate::Invalid;
use crate::catalog::CategoryFlags;

/// Every enrolled merchant offers all five.
pub const MANDATORY: [&str; 5] =
    ["authenticity_guarantee", "seven_day_return", "express_refund", "return_shipping_insurance", "door_pickup"];
/// A merchant may promise one of these dispatch times on top.
pub const DISPATCH: [&str; 2] = ["dispatch_same_day", "dispatch_within_24h"];
/// Promised only on lines of the matching category.
pub const FRESH_DAMAGE: &str = "fresh_damage_compensation";
pub const COSMETICS_ALLERGY: &str = "cosmetics_allergy_return";

/// A validated set of services: the five mandatory ones, at most one dispatch promise, and the
/// category extras, sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services(Vec<String>);

impl Services {
    pub fn parse(names: &[String]) -> Result<Self, Invalid> {
        let mut set: Vec<String> = names.iter().map(|n| n.trim().to_owned()).collect();
        set.sort();
        set.dedup();
        for name in &set {
            let known = MANDATORY.contains(&name.as_str())
                || DISPATCH.contains(&name.as_str())
                || name == FRESH_DAMAGE
                || name == COSMETICS_ALLERGY;
            if !known {
                return Err(Invalid::new("services", "unknown_service", format!("{name} is not a 安心购 service")));
            }
        }
        if let Some(missing) = MANDATORY.iter().find(|m| !set.iter().any(|s| s == *m)) {
            return Err(Invalid::new(
                "services",
                "mandatory_service_missing",
                format!("安心购 requires all five services; {missing} is missing"),
            ));
        }
        if set.iter().filter(|s| DISPATCH.contains(&s.as_str())).count() > 1 {
            return Err(Invalid::new("services", "one_dispatch_promise", "promise one dispatch time at most"));
        }
        Ok(Self(set))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// What a line of a category with `flags` is promised: everything but the extras of other
    /// categories.
    pub fn for_line(&self, flags: &CategoryFlags) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| match s.as_str() {
                FRESH_DAMAGE => flags.fresh,
                COSMETICS_ALLERGY => flags.cosmetics,
                _ => true,
            })
            .cloned()
            .collect()
    }
}

/// The stated rule for express refunds (极速退款): a buyer is in good standing unless they lost
/// more than `max_lost` after-sale disputes (requests closed after a rejection or an
/// arbitration for the merchant) in the look-back period.
pub fn in_good_standing(lost_recently: i64, max_lost: i64) -> bool {
    lost_recently <= max_lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn all_five_are_required() {
        let mut five = names(&MANDATORY);
        assert!(Services::parse(&five).is_ok());
        five.pop();
        assert_eq!(Services::parse(&five).map_err(|e| e.code), Err("mandatory_service_missing"));
        assert_eq!(Services::parse(&names(&["teleport"])).map_err(|e| e.code), Err("unknown_service"));
        let mut both = names(&MANDATORY);
        both.extend(names(&DISPATCH));
        assert_eq!(Services::parse(&both).map_err(|e| e.code), Err("one_dispatch_promise"));
    }

    #[test]
    fn extras_only_for_their_category() {
        let mut all = names(&MANDATORY);
        all.extend(names(&[FRESH_DAMAGE, COSMETICS_ALLERGY, "dispatch_within_24h"]));
        let services = Services::parse(&all).expect("valid");
        let fresh = CategoryFlags { fresh: true, ..CategoryFlags::default() };
        let line = services.for_line(&fresh);
        assert!(line.iter().any(|s| s == FRESH_DAMAGE) && !line.iter().any(|s| s == COSMETICS_ALLERGY));
        assert_eq!(services.for_line(&CategoryFlags::default()).len(), 6);
        assert!(in_good_standing(2, 2) && !in_good_standing(3, 2));
    }
}
