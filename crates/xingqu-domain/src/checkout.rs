//! Pricing a cart: per line the list price, each discount with its lane and funder, the paid
//! amount; per merchant the shipping fee; one order per merchant.

use crate::Invalid;
use std::collections::BTreeMap;

pub const CART_LINES_MAX: usize = 50;
pub const QUANTITY_MAX: i64 = 99;

/// Units of one SKU in a cart line: 1 to [`QUANTITY_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if (1..=QUANTITY_MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(Invalid::new("quantity", "out_of_range", format!("must be between 1 and {QUANTITY_MAX}")))
        }
    }

    pub fn units(self) -> i64 {
        self.0
    }
}

/// Where a discount applies, in the order lanes stack: each lane prices what the one before left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    ItemPrice,
    Shop,
    Platform,
    Payment,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::ItemPrice => "item_price",
            Lane::Shop => "shop",
            Lane::Platform => "platform",
            Lane::Payment => "payment",
        }
    }
}

/// Who pays for a discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funder {
    Merchant,
    Platform,
    Creator,
}

impl Funder {
    pub fn as_str(self) -> &'static str {
        match self {
            Funder::Merchant => "merchant",
            Funder::Platform => "platform",
            Funder::Creator => "creator",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    pub lane: Lane,
    pub funder: Funder,
    /// What kind of discount: `flash_sale`, later coupons and subsidies.
    pub source: &'static str,
    pub amount_fen: i64,
}

/// A flash-sale price in force for a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashOffer {
    pub flash_sale_id: i64,
    pub price_fen: i64,
    pub per_user_limit: i64,
}

/// A campaign price in force for a line: the merchant's approved zone entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignOffer {
    pub entry_id: i64,
    pub price_fen: i64,
}

/// A platform subsidy a line takes from a pool: `amount_fen` for the whole line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsidyOffer {
    pub pool_id: i64,
    pub amount_fen: i64,
}

/// A cart line with what the catalog says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku_id: i64,
    pub product_id: i64,
    pub merchant_id: i64,
    pub unit_price_fen: i64,
    pub quantity: Quantity,
    pub flash: Option<FlashOffer>,
    /// A campaign price; a running flash sale prices the line instead.
    pub campaign: Option<CampaignOffer>,
    /// A subsidy on top of the item price (item-price lane, platform-funded).
    pub subsidy: Option<SubsidyOffer>,
    /// This line's parts of the coupons the checkout uses (shop and platform lanes), worked out
    /// by `promo::stacking` on what the line costs after the item-price lane.
    pub coupons: Vec<Discount>,
}

impl PricedLine {
    /// The unit price the merchant sells at now: a flash sale's, else a campaign's, else the list
    /// price (never above it).
    pub fn sale_unit_fen(&self) -> i64 {
        let offer = match (self.flash, self.campaign) {
            (Some(flash), _) => flash.price_fen,
            (None, Some(campaign)) => campaign.price_fen,
            (None, None) => self.unit_price_fen,
        };
        offer.min(self.unit_price_fen)
    }

    /// What the line costs once the item-price lane (sale price, subsidy) has applied: the base
    /// coupons work on.
    pub fn after_item_lane_fen(&self) -> i64 {
        self.sale_unit_fen() * self.quantity.units() - self.subsidy.map_or(0, |s| s.amount_fen)
    }
}

/// A merchant's shipping terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShippingRule {
    pub fee_fen: i64,
    /// Free shipping when the goods paid reach this; `None`: never free.
    pub free_over_fen: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteLine {
    pub line: PricedLine,
    pub list_total_fen: i64,
    pub discounts: Vec<Discount>,
    pub paid_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQuote {
    pub merchant_id: i64,
    pub lines: Vec<QuoteLine>,
    pub goods_paid_fen: i64,
    pub shipping_fen: i64,
    pub total_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub merchants: Vec<MerchantQuote>,
    pub total_fen: i64,
}

/// Prices a cart: lines grouped by merchant (one order each, in merchant-id order), discounts by
/// lane, shipping by the merchant's rule. `rules` must hold every merchant in `lines`.
pub fn quote(lines: Vec<PricedLine>, rules: &BTreeMap<i64, ShippingRule>) -> Result<Quote, Invalid> {
    if lines.is_empty() || lines.len() > CART_LINES_MAX {
        return Err(Invalid::new("lines", "out_of_range", format!("a cart holds 1 to {CART_LINES_MAX} lines")));
    }
    let mut by_merchant: BTreeMap<i64, Vec<QuoteLine>> = BTreeMap::new();
    for line in lines {
        let units = line.quantity.units();
        let list_total_fen = line.unit_price_fen * units;
        let mut discounts = Vec::new();
        let sale_unit_fen = line.sale_unit_fen();
        if sale_unit_fen < line.unit_price_fen {
            discounts.push(Discount {
                lane: Lane::ItemPrice,
                funder: Funder::Merchant,
                source: if line.flash.is_some() { "flash_sale" } else { "campaign_price" },
                amount_fen: (line.unit_price_fen - sale_unit_fen) * units,
            });
        }
        if let Some(subsidy) = line.subsidy {
            discounts.push(Discount {
                lane: Lane::ItemPrice,
                funder: Funder::Platform,
                source: "subsidy",
                amount_fen: subsidy.amount_fen,
            });
        }
        discounts.extend(line.coupons.iter().cloned());
        let paid_fen = list_total_fen - discounts.iter().map(|d| d.amount_fen).sum::<i64>();
        if paid_fen < 0 {
            return Err(Invalid::new("coupons", "over_discounted", "discounts exceed what the line costs"));
        }
        by_merchant.entry(line.merchant_id).or_default().push(QuoteLine { line, list_total_fen, discounts, paid_fen });
    }
    let mut merchants = Vec::new();
    for (merchant_id, lines) in by_merchant {
        let rule = rules
            .get(&merchant_id)
            .ok_or_else(|| Invalid::new("lines", "unknown_merchant", "a line's shop is unknown"))?;
        let goods_paid_fen: i64 = lines.iter().map(|l| l.paid_fen).sum();
        // Free shipping is the merchant's rule on what it receives for the goods: discounts the
        // platform or a creator funds do not take it away.
        let funded_by_others_fen: i64 = lines
            .iter()
            .flat_map(|l| &l.discounts)
            .filter(|d| d.funder != Funder::Merchant)
            .map(|d| d.amount_fen)
            .sum();
        let free = rule.free_over_fen.is_some_and(|threshold| goods_paid_fen + funded_by_others_fen >= threshold);
        let shipping_fen = if free { 0 } else { rule.fee_fen };
        merchants.push(MerchantQuote {
            merchant_id,
            lines,
            goods_paid_fen,
            shipping_fen,
            total_fen: goods_paid_fen + shipping_fen,
        });
    }
    let total_fen = merchants.iter().map(|m| m.total_fen).sum();
    Ok(Quote { merchants, total_fen })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku_id: i64, merchant_id: i64, unit_price_fen: i64, quantity: i64, flash: Option<i64>) -> PricedLine {
        PricedLine {
            sku_id,
            product_id: sku_id,
            merchant_id,
            unit_price_fen,
            quantity: Quantity::parse(quantity).expect("quantity"),
            flash: flash.map(|price_fen| FlashOffer { flash_sale_id: 1, price_fen, per_user_limit: 2 }),
            campaign: None,
            subsidy: None,
            coupons: Vec::new(),
        }
    }

    #[test]
    fn campaign_price_and_subsidy_price_the_item_lane_with_their_funders() {
        let rules = BTreeMap::from([(1, ShippingRule { fee_fen: 800, free_over_fen: Some(9_000) })]);
        let mut campaign = line(10, 1, 5_000, 2, None);
        campaign.campaign = Some(CampaignOffer { entry_id: 3, price_fen: 4_500 });
        campaign.subsidy = Some(SubsidyOffer { pool_id: 4, amount_fen: 600 });
        assert_eq!(campaign.after_item_lane_fen(), 8_400);
        let quote = quote(vec![campaign.clone()], &rules).expect("quote");
        let priced = &quote.merchants[0].lines[0];
        assert_eq!(
            priced.discounts,
            vec![
                Discount {
                    lane: Lane::ItemPrice,
                    funder: Funder::Merchant,
                    source: "campaign_price",
                    amount_fen: 1_000
                },
                Discount { lane: Lane::ItemPrice, funder: Funder::Platform, source: "subsidy", amount_fen: 600 },
            ]
        );
        assert_eq!(priced.paid_fen, 8_400);
        // The platform's subsidy does not cost the buyer free shipping (9,000 received by the shop).
        assert_eq!(quote.merchants[0].shipping_fen, 0);
        // A running flash sale is the item's price; the campaign price waits.
        let mut both = campaign;
        both.flash = Some(FlashOffer { flash_sale_id: 1, price_fen: 4_800, per_user_limit: 2 });
        assert_eq!(both.sale_unit_fen(), 4_800);
    }

    #[test]
    fn cart_splits_by_merchant_with_flash_discount_and_shipping() {
        let rules = BTreeMap::from([
            (1, ShippingRule { fee_fen: 800, free_over_fen: Some(9900) }),
            (2, ShippingRule { fee_fen: 1000, free_over_fen: None }),
        ]);
        let quote = quote(
            vec![line(10, 1, 5990, 2, Some(3990)), line(20, 2, 2990, 1, None), line(11, 1, 990, 1, None)],
            &rules,
        )
        .expect("quote");
        assert_eq!(quote.merchants.len(), 2);
        let first = &quote.merchants[0];
        assert_eq!(first.lines[0].discounts[0].amount_fen, 4000);
        assert_eq!(first.lines[0].paid_fen, 7980);
        assert_eq!((first.goods_paid_fen, first.shipping_fen), (8970, 800), "below the free-shipping threshold");
        assert_eq!(quote.merchants[1].total_fen, 3990);
        assert_eq!(quote.total_fen, 8970 + 800 + 3990);
    }

    #[test]
    fn limits() {
        assert!(Quantity::parse(0).is_err() && Quantity::parse(100).is_err() && Quantity::parse(-1).is_err());
        assert!(quote(vec![], &BTreeMap::new()).is_err());
        assert!(quote(vec![line(1, 9, 100, 1, None)], &BTreeMap::new()).is_err());
    }
}
