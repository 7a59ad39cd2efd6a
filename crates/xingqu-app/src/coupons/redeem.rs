//! Using coupons at checkout: the buyer's best combination (or their explicit choice) in the
//! quote, locking claims and budgets to the orders, releasing them when orders close, and what
//! each funder bears in the ledger.
//!
//! Rules for closing: a claim is locked to the checkout (a platform coupon spans its orders) and
//! goes back to the wallet when the checkout's last live order is cancelled or expires — before
//! payment or by a full refund — if it is still within its validity (an expired claim stays
//! unusable however it returns). Each order returns its own share of the coupon budgets.

use super::wallet_coupon;
use crate::{App, AppError, AppResult};
use std::collections::BTreeMap;
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::checkout::{Discount, PricedLine};
use xingqu_domain::ledger::Account;
use xingqu_domain::promo::coupon::{CouponClass, WalletCoupon};
use xingqu_domain::promo::stacking::{self, Applied, COUPONS_MAX, CartLine};
use xingqu_store::Tx;
use xingqu_store::coupons::OrderDiscount;
use xingqu_store::orders::OrderRow;

/// How the buyer picks coupons for a quote or an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponChoice {
    /// The combination from the wallet that saves the most.
    Best,
    /// Exactly these claims (none for an empty list).
    Chosen(Vec<i64>),
}

impl CouponChoice {
    pub fn from_request(claim_ids: Option<Vec<i64>>) -> Self {
        claim_ids.map_or(CouponChoice::Best, CouponChoice::Chosen)
    }

    /// Part of the request digest: a retry must choose the same way.
    pub(crate) fn digest_part(&self) -> String {
        match self {
            CouponChoice::Best => "coupons:best".to_owned(),
            CouponChoice::Chosen(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("coupons:{}", ids.join(","))
            }
        }
    }
}

/// The coupons a checkout uses, and why.
#[derive(Debug, Clone, Default)]
pub struct CouponUse {
    pub applied: Vec<(Applied, WalletCoupon)>,
    /// Why this combination: how many were considered and what it saves (best choice only).
    pub reason: Option<String>,
}

fn source(class: CouponClass) -> &'static str {
    match class {
        CouponClass::Shop => "shop_coupon",
        CouponClass::Fan => "fan_coupon",
        CouponClass::Platform => "platform_coupon",
        CouponClass::RedPacket => "red_packet",
    }
}

/// The ledger account that bears a discount others than the merchant fund.
pub(crate) fn funder_account(discount: &OrderDiscount) -> Option<Account> {
    match (discount.funder.as_str(), discount.funder_id) {
        ("platform", _) => Some(Account::PlatformSubsidyBudget),
        ("creator", Some(creator)) => Some(Account::CreatorCommission(creator)),
        _ => None,
    }
}

/// What each funder other than the merchant covers of an order, per account.
pub(crate) fn funded_entries(discounts: &[OrderDiscount]) -> Vec<(Account, i64)> {
    let mut by_account: BTreeMap<Account, i64> = BTreeMap::new();
    for discount in discounts {
        if let Some(account) = funder_account(discount) {
            *by_account.entry(account).or_default() += discount.amount_fen;
        }
    }
    by_account.into_iter().collect()
}

impl App {
    /// Picks the checkout's coupons and writes each line's parts into `priced[i].coupons`.
    /// Anonymous quotes and non-buyers use none; an explicit choice is checked claim by claim.
    pub(crate) async fn choose_coupons(
        &self,
        buyer: Option<&Actor>,
        priced: &mut [PricedLine],
        choice: &CouponChoice,
    ) -> AppResult<CouponUse> {
        let buyer = buyer.filter(|a| a.role == Role::Consumer || a.role == Role::Creator);
        let Some(buyer) = buyer else {
            return match choice {
                CouponChoice::Chosen(ids) if !ids.is_empty() => Err(AppError::Unauthenticated),
                _ => Ok(CouponUse::default()),
            };
        };
        let now_ms = self.now_ms();
        let lines: Vec<CartLine> = priced
            .iter()
            .enumerate()
            .map(|(index, line)| {
                let units = line.quantity.units();
                CartLine {
                    index,
                    merchant_id: line.merchant_id,
                    product_id: line.product_id,
                    units,
                    base_fen: line.after_item_lane_fen(),
                }
            })
            .collect();
        let (stacked, reason, wallet) = match choice {
            CouponChoice::Best => {
                let rows = self.store().wallet(buyer.user_id, now_ms, super::WALLET_LIMIT).await?;
                let wallet: Vec<WalletCoupon> = rows
                    .iter()
                    .filter(|row| row.claim.valid_from_ms <= now_ms)
                    .filter_map(|row| wallet_coupon(row).ok())
                    .collect();
                let best = stacking::best(&lines, &wallet);
                (best.stacked, Some(best.reason), wallet)
            }
            CouponChoice::Chosen(ids) => {
                if ids.len() > COUPONS_MAX {
                    return Err(AppError::invalid(
                        "coupons",
                        "too_many_coupons",
                        format!("at most {COUPONS_MAX} coupons per checkout"),
                    ));
                }
                let mut wallet = Vec::with_capacity(ids.len());
                for &claim_id in ids {
                    wallet.push(self.usable_claim(buyer, claim_id, now_ms).await?);
                }
                let chosen: Vec<&WalletCoupon> = wallet.iter().collect();
                let stacked = stacking::apply(&lines, &chosen)?;
                (stacked, None, wallet)
            }
        };
        let mut applied = Vec::with_capacity(stacked.applied.len());
        for coupon in stacked.applied {
            let Some(wallet_coupon) = wallet.iter().find(|w| w.claim_id == coupon.claim_id) else { continue };
            for &(index, part_fen) in &coupon.per_line_fen {
                if part_fen > 0
                    && let Some(line) = priced.get_mut(index)
                {
                    line.coupons.push(Discount {
                        lane: coupon.class.lane(),
                        funder: coupon.class.funder(),
                        source: source(coupon.class),
                        amount_fen: part_fen,
                    });
                }
            }
            applied.push((coupon, wallet_coupon.clone()));
        }
        Ok(CouponUse { applied, reason })
    }

    /// A claim the buyer names: theirs, unused, valid now — or a 422 saying which it is not.
    async fn usable_claim(&self, buyer: &Actor, claim_id: i64, now_ms: i64) -> AppResult<WalletCoupon> {
        let row = self.store().wallet_claim(claim_id).await?.filter(|row| row.claim.user_id == buyer.user_id);
        let Some(row) = row else {
            return Err(AppError::invalid("coupons", "unknown_coupon", format!("no coupon {claim_id} in your wallet")));
        };
        if row.claim.status != "available" {
            return Err(AppError::invalid("coupons", "coupon_used", format!("coupon {claim_id} is already used")));
        }
        if row.claim.valid_until_ms <= now_ms {
            return Err(AppError::invalid("coupons", "coupon_expired", format!("coupon {claim_id} has expired")));
        }
        if row.claim.valid_from_ms > now_ms {
            return Err(AppError::invalid(
                "coupons",
                "coupon_not_yet_valid",
                format!("coupon {claim_id} is not valid yet"),
            ));
        }
        if row.coupon.budget_fen.is_some_and(|budget| row.coupon.budget_used_fen >= budget) {
            return Err(AppError::invalid("coupons", "budget_spent", format!("coupon {claim_id}'s budget is spent")));
        }
        wallet_coupon(&row)
    }

    /// Locks the checkout's claims and spends their budgets, and records each line's part with its
    /// funder. `line_orders` maps a cart line index to its (order id, line id). Returns the
    /// coupons whose budget is now spent (for the claim gates, told after commit).
    pub(crate) async fn lock_coupons(
        &self,
        tx: &mut Tx,
        buyer: &Actor,
        checkout_id: i64,
        used: &CouponUse,
        line_orders: &BTreeMap<usize, (i64, i64)>,
    ) -> AppResult<Vec<i64>> {
        let mut spent = Vec::new();
        let mut rows = Vec::new();
        for (applied, wallet) in &used.applied {
            if !tx.lock_claim(applied.claim_id, buyer.user_id, checkout_id).await? {
                return Err(AppError::conflict(
                    "coupon_unavailable",
                    format!("coupon {} was used meanwhile; quote again", applied.claim_id),
                ));
            }
            if !tx.use_budget(applied.coupon_id, applied.off_fen).await? {
                return Err(AppError::conflict(
                    "budget_spent",
                    format!("coupon {}'s budget ran out meanwhile; quote again", applied.claim_id),
                ));
            }
            if wallet.budget_left_fen.is_some_and(|left| left <= applied.off_fen) {
                spent.push(applied.coupon_id);
            }
            for &(index, amount_fen) in &applied.per_line_fen {
                let Some(&(order_id, line_id)) = line_orders.get(&index) else { continue };
                if amount_fen > 0 {
                    rows.push(OrderDiscount {
                        order_id,
                        line_id,
                        claim_id: applied.claim_id,
                        coupon_id: applied.coupon_id,
                        class: applied.class.as_str().to_owned(),
                        funder: applied.class.funder().as_str().to_owned(),
                        funder_id: if applied.class.funder() == xingqu_domain::checkout::Funder::Platform {
                            None
                        } else {
                            wallet.funder_id
                        },
                        amount_fen,
                    });
                }
            }
        }
        tx.insert_order_discounts(&rows).await?;
        Ok(spent)
    }

    /// An order closed (cancelled or expired, its status already changed in `tx`): its share of
    /// coupon budgets (`discounts`, its rows of `order_discounts`) goes back, and the claims return
    /// to the wallet if no order of the checkout still lives. Returns the coupons whose budget
    /// changed (for the claim gates).
    pub(crate) async fn release_coupons(
        &self,
        tx: &mut Tx,
        order: &OrderRow,
        discounts: &[OrderDiscount],
    ) -> AppResult<Vec<i64>> {
        if discounts.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_coupon: BTreeMap<i64, i64> = BTreeMap::new();
        for discount in discounts {
            *by_coupon.entry(discount.coupon_id).or_default() += discount.amount_fen;
        }
        for (&coupon_id, &amount_fen) in &by_coupon {
            tx.return_budget(coupon_id, amount_fen).await?;
        }
        if tx.live_orders_in_checkout(order.checkout_id).await? == 0 {
            tx.release_claims(order.checkout_id).await?;
        }
        Ok(by_coupon.into_keys().collect())
    }
}
