//! Money in 分 (fen, 1/100 yuan) as `i64`, never floating point; prices and quantities with caps.

use crate::Invalid;

/// The largest unit price the platform accepts: 1,000,000 yuan.
pub const PRICE_FEN_MAX: i64 = 100_000_000;
/// The largest stock a single SKU may hold.
pub const STOCK_MAX: i64 = 10_000_000;
/// The heaviest parcel a SKU may weigh: 1 tonne.
pub const WEIGHT_G_MAX: i64 = 1_000_000;

/// A positive unit price in 分, at most [`PRICE_FEN_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PriceFen(i64);

impl PriceFen {
    pub fn parse(field: &'static str, raw: i64) -> Result<Self, Invalid> {
        if raw <= 0 {
            return Err(Invalid::new(field, "not_positive", "price must be at least 1 分"));
        }
        if raw > PRICE_FEN_MAX {
            return Err(Invalid::new(field, "too_large", format!("price must be at most {PRICE_FEN_MAX} 分")));
        }
        Ok(Self(raw))
    }

    pub fn fen(self) -> i64 {
        self.0
    }
}

/// A count of units on hand: zero or more, at most [`STOCK_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stock(i64);

impl Stock {
    pub fn parse(field: &'static str, raw: i64) -> Result<Self, Invalid> {
        if raw < 0 {
            return Err(Invalid::new(field, "negative", "stock must not be negative"));
        }
        if raw > STOCK_MAX {
            return Err(Invalid::new(field, "too_large", format!("stock must be at most {STOCK_MAX}")));
        }
        Ok(Self(raw))
    }

    pub fn units(self) -> i64 {
        self.0
    }
}

/// A parcel weight in grams: positive, at most [`WEIGHT_G_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightG(i64);

impl WeightG {
    pub fn parse(field: &'static str, raw: i64) -> Result<Self, Invalid> {
        if raw <= 0 {
            return Err(Invalid::new(field, "not_positive", "weight must be at least 1 g"));
        }
        if raw > WEIGHT_G_MAX {
            return Err(Invalid::new(field, "too_large", format!("weight must be at most {WEIGHT_G_MAX} g")));
        }
        Ok(Self(raw))
    }

    pub fn grams(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn price_bounds() {
        assert_eq!(PriceFen::parse("p", 0).map_err(|e| e.code), Err("not_positive"));
        assert_eq!(PriceFen::parse("p", -5).map_err(|e| e.code), Err("not_positive"));
        assert_eq!(PriceFen::parse("p", PRICE_FEN_MAX + 1).map_err(|e| e.code), Err("too_large"));
        assert_eq!(PriceFen::parse("p", 4990).map(PriceFen::fen), Ok(4990));
        assert_eq!(Stock::parse("s", 0).map(Stock::units), Ok(0));
        assert_eq!(Stock::parse("s", -1).map_err(|e| e.code), Err("negative"));
        assert_eq!(WeightG::parse("w", 0).map_err(|e| e.code), Err("not_positive"));
    }

    proptest! {
        #[test]
        fn accepted_prices_are_exactly_the_valid_range(raw in any::<i64>()) {
            let ok = PriceFen::parse("p", raw).is_ok();
            prop_assert_eq!(ok, (1..=PRICE_FEN_MAX).contains(&raw));
        }
    }
}
