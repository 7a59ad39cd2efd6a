//! Checkout and orders: quotes, idempotent order creation with stock reservation and purchase
//! limits, payment and its callback, shipping, delivery, completion, cancellation with refunds,
//! and what the timers do (expiry, auto-completion, settlement).

use crate::campaigns::with_subsidies;
use crate::coupons::redeem::{CouponChoice, CouponUse, funded_entries};
use crate::payments::PaymentCallback;
use crate::{App, AppError, AppResult};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::catalog::{NAME_CHARS_MAX, ProductStatus, Qualification, RegionCode};
use xingqu_domain::checkout::{self, Funder, PricedLine, Quantity, Quote, ShippingRule};
use xingqu_domain::ledger::{Account, Posting, PostingError, commission_fen};
use xingqu_domain::order::{DispatchPromise, OrderEvent, OrderStatus};
use xingqu_domain::{Invalid, text};
use xingqu_store::StoreError;
use xingqu_store::campaigns::OrderSubsidy;
use xingqu_store::events::NewEvent;
use xingqu_store::orders::{LineRow, NewCheckout, NewLine, NewOrder, OrderChanges, OrderRow, OrderScope, SkuForOrder};
use xingqu_store::products::Change;

/// A cart line as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLineInput {
    pub sku_id: i64,
    pub quantity: i64,
}

/// A delivery address as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInput {
    pub name: String,
    pub phone: String,
    pub region_code: String,
    pub detail: String,
}

/// A checkout: the orders one request created, one per merchant.
#[derive(Debug, Clone)]
pub struct CheckoutView {
    pub checkout_id: i64,
    pub total_fen: i64,
    pub orders: Vec<OrderView>,
    /// False when this answers a retry with the same idempotency key.
    pub created: bool,
}

#[derive(Debug, Clone)]
pub struct OrderView {
    pub order: OrderRow,
    pub lines: Vec<LineRow>,
}

/// A payment the buyer is asked to make.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub payment_id: i64,
    pub order_id: i64,
    pub amount_fen: i64,
    pub gateway: &'static str,
    /// For the simulated gateway: the signed callback it sends when the buyer pays.
    pub simulated_callback: Option<PaymentCallback>,
}

/// What a payment callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Paid,
    /// The same callback again: nothing changed.
    AlreadyPaid,
    /// The order had expired or been cancelled: the money went straight back.
    RefundedLate,
    /// A second, different payment for an order already paid: refunded.
    RefundedDuplicate,
}

/// What one timer run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerReport {
    pub expired: usize,
    pub completed: usize,
    pub settled: usize,
    /// Pending refunds the gateway confirmed on retry.
    pub refunds_sent: usize,
    /// Lucky bags drawn.
    pub lucky_bags_drawn: usize,
    /// Price-protection payments recorded by automatic sweeps.
    pub protection_refunds: i64,
    /// After-sale payouts the gateway accepted.
    pub payouts_sent: usize,
    /// After-sale requests a deadline moved (approved, closed or refunded).
    pub after_sales_moved: usize,
    /// Paid orders compensated for a missed dispatch promise.
    pub dispatch_compensated: usize,
}

const IDEMPOTENCY_KEY_CHARS_MAX: usize = 64;
const TIMER_BATCH: u32 = 500;

pub(crate) fn parse_idempotency_key(raw: Option<&str>) -> Result<String, Invalid> {
    let raw = raw.map(str::trim).unwrap_or_default();
    let ok = !raw.is_empty()
        && raw.len() <= IDEMPOTENCY_KEY_CHARS_MAX
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Invalid::new(
            "Idempotency-Key",
            "invalid_idempotency_key",
            "send an Idempotency-Key header of 1-64 characters from A-Z a-z 0-9 - _ : .",
        ))
    }
}

pub(crate) fn parse_address(address: &AddressInput) -> Result<String, Invalid> {
    let name = text::bounded_str("address.name", &address.name, NAME_CHARS_MAX)?;
    let phone = address.phone.trim();
    let phone_ok =
        (5..=20).contains(&phone.len()) && phone.bytes().all(|b| b.is_ascii_digit() || b == b'+' || b == b'-');
    if !phone_ok {
        return Err(Invalid::new("address.phone", "invalid_phone", "must be 5-20 digits, + or -"));
    }
    let region = RegionCode::parse("address.region_code", &address.region_code)?;
    let detail = text::bounded_str("address.detail", &address.detail, 200)?;
    Ok(xingqu_store::orders::encode_address(name, phone, region.as_str(), detail))
}

/// A stable digest of what a request asked for, to tell a retry from a different request.
fn request_digest(lines: &[CartLineInput], address: &str, salt: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    for line in lines {
        hasher.update(format!("{}x{};", line.sku_id, line.quantity).as_bytes());
    }
    hasher.update(address.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn order_status(order: &OrderRow) -> AppResult<OrderStatus> {
    OrderStatus::from_name(&order.status)
        .ok_or_else(|| AppError::internal(format!("order {} has status {}", order.id, order.status)))
}

fn dispatch_promise(raw: &str) -> DispatchPromise {
    DispatchPromise::parse(raw).unwrap_or(DispatchPromise::None)
}

impl App {
    /// Loads and checks the cart's SKUs: each must exist and be for sale.
    async fn priced_lines(&self, lines: &[CartLineInput]) -> AppResult<(Vec<PricedLine>, BTreeMap<i64, SkuForOrder>)> {
        if lines.is_empty() || lines.len() > checkout::CART_LINES_MAX {
            return Err(AppError::invalid(
                "lines",
                "out_of_range",
                format!("a cart holds 1 to {} lines", checkout::CART_LINES_MAX),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut priced = Vec::new();
        let mut skus = BTreeMap::new();
        for line in lines {
            let quantity = Quantity::parse(line.quantity)?;
            if !seen.insert(line.sku_id) {
                return Err(AppError::invalid(
                    "lines",
                    "duplicate_sku",
                    format!("SKU {} appears twice; add up the quantity", line.sku_id),
                ));
            }
            let sku =
                self.store().sku_for_order(line.sku_id).await?.ok_or_else(|| {
                    AppError::invalid("lines.sku_id", "unknown_sku", format!("no SKU {}", line.sku_id))
                })?;
            if sku.product_status != ProductStatus::Listed.as_str()
                || sku.merchant_qualification != Qualification::Approved.as_str()
            {
                return Err(AppError::invalid(
                    "lines.sku_id",
                    "not_for_sale",
                    format!("SKU {} is not for sale", line.sku_id),
                ));
            }
            // A flash sale running with units left prices the line (the item-price lane).
            let flash =
                self.store().active_flash_sale(sku.sku_id, self.now_ms()).await?.filter(|f| f.remaining_units > 0).map(
                    |f| checkout::FlashOffer {
                        flash_sale_id: f.id,
                        price_fen: f.price_fen,
                        per_user_limit: f.per_user_limit,
                    },
                );
            priced.push(PricedLine {
                sku_id: sku.sku_id,
                product_id: sku.product_id,
                merchant_id: sku.merchant_id,
                unit_price_fen: sku.price_fen,
                quantity,
                flash,
                campaign: None,
                subsidy: None,
                coupons: Vec::new(),
            });
            skus.insert(sku.sku_id, sku);
        }
        Ok((priced, skus))
    }

    fn shipping_rules(skus: &BTreeMap<i64, SkuForOrder>) -> BTreeMap<i64, ShippingRule> {
        skus.values()
            .map(|s| {
                (s.merchant_id, ShippingRule { fee_fen: s.shipping_fee_fen, free_over_fen: s.free_shipping_over_fen })
            })
            .collect()
    }

    /// Prices a cart without reserving anything. A SKU on a running flash sale with units left is
    /// priced at the flash price (item-price lane, merchant-funded); the order takes from the pool.
    /// A signed-in buyer's coupons apply: the best combination from their wallet, or the claims
    /// they choose.
    pub async fn quote(
        &self,
        buyer: Option<&Actor>,
        lines: &[CartLineInput],
        choice: &CouponChoice,
    ) -> AppResult<(Quote, CouponUse)> {
        let (quote, coupons, _) = self.price_cart(buyer, lines, choice).await?;
        Ok((quote, coupons))
    }

    async fn price_cart(
        &self,
        buyer: Option<&Actor>,
        lines: &[CartLineInput],
        choice: &CouponChoice,
    ) -> AppResult<(Quote, CouponUse, BTreeMap<i64, SkuForOrder>)> {
        let (mut priced, skus) = self.priced_lines(lines).await?;
        self.apply_campaigns(&mut priced).await?;
        let coupons = self.choose_coupons(buyer, &mut priced, choice).await?;
        Ok((checkout::quote(priced, &Self::shipping_rules(&skus))?, coupons, skus))
    }

    /// Creates one order per merchant for a cart, reserving stock, under an idempotency key: the
    /// same key and body return the same checkout; the same key with another body is refused.
    /// `confirm_unsealed_no_return`: the buyer confirmed that goods whose quality changes once
    /// unsealed (as their products declare) have no seven-day no-reason return. `device_id`:
    /// the device the buyer orders from, if the client says (the brushing rules use it).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_orders(
        &self,
        actor: &Actor,
        idempotency_key: Option<&str>,
        lines: &[CartLineInput],
        address: &AddressInput,
        choice: &CouponChoice,
        confirm_unsealed_no_return: bool,
        device_id: Option<&str>,
    ) -> AppResult<CheckoutView> {
        if actor.role != Role::Consumer && actor.role != Role::Creator {
            return Err(AppError::Forbidden("only buyer accounts (consumers and creators) place orders"));
        }
        let _in_flight = self.traffic().enter();
        let key = parse_idempotency_key(idempotency_key)?;
        let address = parse_address(address)?;
        let device_id = device_id.map(crate::events::parse_device_id).transpose()?;
        let digest = request_digest(
            lines,
            &address,
            &format!("cart|{}|{}", choice.digest_part(), u8::from(confirm_unsealed_no_return)),
        );
        if let Some(existing) = self.replay(actor.user_id, &key, &digest).await? {
            return Ok(existing);
        }
        let (quote, coupons, skus) = self.price_cart(Some(actor), lines, choice).await?;
        let cart_index: BTreeMap<i64, usize> = lines.iter().enumerate().map(|(i, l)| (l.sku_id, i)).collect();
        let mut line_orders: BTreeMap<usize, (i64, i64)> = BTreeMap::new();
        let now_ms = self.now_ms();
        let checkout_id = self.ids().next(now_ms);
        let expires_at_ms = now_ms + self.config().order_expiry_s * 1000;
        let mut orders = Vec::new();
        let mut new_lines = Vec::new();
        let mut subsidies = Vec::new();
        for merchant in &quote.merchants {
            let order_id = self.ids().next(now_ms);
            let promise = merchant
                .lines
                .first()
                .and_then(|l| skus.get(&l.line.sku_id))
                .map_or(DispatchPromise::None, |s| dispatch_promise(&s.dispatch_promise));
            orders.push(NewOrder {
                id: order_id,
                checkout_id,
                buyer_user_id: actor.user_id,
                merchant_id: merchant.merchant_id,
                trade_type: "normal",
                flash_sale_id: None,
                goods_list_fen: merchant.lines.iter().map(|l| l.list_total_fen).sum(),
                discount_fen: merchant.lines.iter().flat_map(|l| &l.discounts).map(|d| d.amount_fen).sum(),
                shipping_fen: merchant.shipping_fen,
                total_fen: merchant.total_fen,
                address: address.clone(),
                dispatch_promise: promise.as_str(),
                created_at_ms: now_ms,
                expires_at_ms,
            });
            for line in &merchant.lines {
                let Some(sku) = skus.get(&line.line.sku_id) else { continue };
                let line_id = self.ids().next(now_ms);
                // The 安心购 services in force now are the buyer's entitlements on this line.
                let assurance = crate::assurance::line_assurance(sku);
                if let Some(&index) = cart_index.get(&sku.sku_id) {
                    line_orders.insert(index, (order_id, line_id));
                }
                if let Some(subsidy) = line.line.subsidy {
                    subsidies.push(OrderSubsidy {
                        order_id,
                        line_id,
                        pool_id: subsidy.pool_id,
                        amount_fen: subsidy.amount_fen,
                    });
                }
                new_lines.push(NewLine {
                    id: line_id,
                    order_id,
                    sku_id: sku.sku_id,
                    product_id: sku.product_id,
                    product_version: sku.product_version,
                    title: sku.title.clone(),
                    spec: sku.spec.clone(),
                    unit_price_fen: sku.price_fen,
                    quantity: line.line.quantity.units(),
                    list_total_fen: line.list_total_fen,
                    discount_fen: line.list_total_fen - line.paid_fen,
                    paid_fen: line.paid_fen,
                    discounts: xingqu_store::orders::encode_discounts(
                        &line
                            .discounts
                            .iter()
                            .map(|d| (d.lane.as_str(), d.funder.as_str(), d.source, d.amount_fen))
                            .collect::<Vec<_>>(),
                    ),
                    commission_bps: sku.commission_bps,
                    dispatch_promise: promise.as_str(),
                    flash_sale_id: line.line.flash.map(|f| f.flash_sale_id),
                    // Price protection compares like with like: net of what the merchant funded.
                    merchant_net_fen: line.list_total_fen
                        - line
                            .discounts
                            .iter()
                            .filter(|d| d.funder == Funder::Merchant)
                            .map(|d| d.amount_fen)
                            .sum::<i64>(),
                    protect_window_days: sku.protect_window_days,
                    protect_from: sku.protect_from.clone(),
                    services: assurance.services,
                    insurance_premium_fen: assurance.insurance_premium_fen,
                    insurance_cap_fen: assurance.insurance_cap_fen,
                    unsealed_no_return_confirmed: sku.unsealed_no_return && confirm_unsealed_no_return,
                });
            }
        }
        let mut tx = self.store().begin().await?;
        let checkout = NewCheckout {
            id: checkout_id,
            buyer_user_id: actor.user_id,
            idempotency_key: key.clone(),
            request_sha256: digest.clone(),
            total_fen: quote.total_fen,
            created_at_ms: now_ms,
        };
        match tx.insert_checkouts(std::slice::from_ref(&checkout)).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                // A concurrent request with the same key committed first: answer as it did.
                drop(tx);
                return self
                    .replay(actor.user_id, &key, &digest)
                    .await?
                    .ok_or_else(|| AppError::internal("checkout vanished"));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(device_id) = &device_id {
            tx.set_checkout_device(checkout_id, device_id).await?;
        }
        let flash_limits: BTreeMap<i64, i64> = quote
            .merchants
            .iter()
            .flat_map(|m| &m.lines)
            .filter_map(|l| l.line.flash.map(|f| (f.flash_sale_id, f.per_user_limit)))
            .collect();
        // Rows are locked in SKU order everywhere, so two carts (or a cart and an expiry) cannot
        // wait on each other in opposite orders on PostgreSQL.
        let mut in_lock_order: Vec<(usize, &NewLine)> = new_lines.iter().enumerate().collect();
        in_lock_order.sort_by_key(|(_, line)| line.sku_id);
        for (index, line) in in_lock_order {
            let Some(sku) = skus.get(&line.sku_id) else { continue };
            if let Some(flash_sale_id) = line.flash_sale_id {
                if !tx.take_flash_units(flash_sale_id, line.quantity).await? {
                    return Err(AppError::conflict(
                        "sold_out",
                        format!("line {index}: the flash sale has fewer than {} left", line.quantity),
                    ));
                }
                let limit = flash_limits.get(&flash_sale_id).copied().unwrap_or(0);
                match tx.add_flash_purchase(flash_sale_id, actor.user_id, line.quantity, limit).await {
                    Err(StoreError::Constraint) => {
                        return Err(AppError::conflict(
                            "purchase_limit_exceeded",
                            format!("line {index}: at most {limit} per buyer in this flash sale"),
                        ));
                    }
                    other => other?,
                };
                continue;
            }
            if !tx.reserve_stock(line.sku_id, line.quantity).await? {
                return Err(AppError::conflict(
                    "out_of_stock",
                    format!("line {index}: SKU {} has fewer than {} left", line.sku_id, line.quantity),
                ));
            }
            // Holdings are kept for every SKU (a limit may be set later); checked where there is one.
            let held = tx.add_purchase(actor.user_id, line.sku_id, line.quantity).await?;
            if sku.per_user_limit > 0 && held > sku.per_user_limit {
                return Err(AppError::conflict(
                    "purchase_limit_exceeded",
                    format!("line {index}: at most {} of SKU {} per buyer", sku.per_user_limit, line.sku_id),
                ));
            }
        }
        tx.insert_orders(&orders).await?;
        tx.insert_lines(&new_lines).await?;
        let spent = self.lock_coupons(&mut tx, actor, checkout_id, &coupons, &line_orders).await?;
        self.spend_subsidies(&mut tx, &subsidies).await?;
        tx.commit().await?;
        for coupon_id in spent {
            self.claim_gate_budget(coupon_id, true);
        }
        for line in &new_lines {
            if let Some(flash_sale_id) = line.flash_sale_id {
                self.flash_taken(actor.user_id, flash_sale_id, line.quantity);
            }
        }
        let mut view = self.checkout_view(checkout_id, quote.total_fen).await?;
        view.created = true;
        Ok(view)
    }

    /// The checkout made earlier under this key, if any; a different request under it is refused.
    async fn replay(&self, buyer_user_id: i64, key: &str, digest: &str) -> AppResult<Option<CheckoutView>> {
        let Some((checkout_id, stored_digest)) = self.store().checkout_by_key(buyer_user_id, key).await? else {
            return Ok(None);
        };
        if stored_digest != digest {
            return Err(AppError::invalid(
                "Idempotency-Key",
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ));
        }
        let orders = self.store().orders(OrderScope::Checkout(checkout_id), None, 100).await?;
        let total_fen = orders.iter().map(|o| o.total_fen).sum();
        Ok(Some(self.checkout_view(checkout_id, total_fen).await?))
    }

    async fn checkout_view(&self, checkout_id: i64, total_fen: i64) -> AppResult<CheckoutView> {
        let mut orders = Vec::new();
        let mut rows = self.store().orders(OrderScope::Checkout(checkout_id), None, 100).await?;
        rows.sort_by_key(|o| o.merchant_id);
        for order in rows {
            let lines = self.store().lines(order.id).await?;
            orders.push(OrderView { order, lines });
        }
        Ok(CheckoutView { checkout_id, total_fen, orders, created: false })
    }

    /// An order its buyer, its shop's staff or an operator may see; to others it does not exist.
    pub async fn order_view(&self, actor: &Actor, order_id: i64) -> AppResult<OrderView> {
        let order = self.store().order(order_id).await?.ok_or(AppError::not_found("order"))?;
        if order.buyer_user_id != actor.user_id && !actor.manages_merchant(order.merchant_id) {
            return Err(AppError::not_found("order"));
        }
        let lines = self.store().lines(order_id).await?;
        Ok(OrderView { order, lines })
    }

    /// Who moved an order between states, when and why (those who may see the order).
    pub async fn order_events(
        &self,
        actor: &Actor,
        order_id: i64,
    ) -> AppResult<Vec<xingqu_store::products::StatusChangeRow>> {
        self.order_view(actor, order_id).await?;
        Ok(self.store().order_events(order_id).await?)
    }

    /// The actor's orders: a buyer's own, or a shop's for its staff (operators pass a merchant).
    pub async fn list_orders(
        &self,
        actor: &Actor,
        merchant_id: Option<i64>,
        before_id: Option<i64>,
        limit: u32,
    ) -> AppResult<Vec<OrderRow>> {
        let scope = match (merchant_id, actor.role) {
            (Some(m), _) if actor.manages_merchant(m) => OrderScope::Merchant(m),
            (Some(_), _) => {
                return Err(AppError::Forbidden("only the shop's staff or an operator may list its orders"));
            }
            (None, Role::MerchantStaff) => OrderScope::Merchant(actor.merchant_id.unwrap_or_default()),
            (None, _) => OrderScope::Buyer(actor.user_id),
        };
        Ok(self.store().orders(scope, before_id, limit).await?)
    }

    /// Starts paying an order: the buyer gets a payment request for the gateway.
    pub async fn start_payment(&self, actor: &Actor, order_id: i64) -> AppResult<PaymentRequest> {
        let view = self.order_view(actor, order_id).await?;
        if view.order.buyer_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the buyer pays an order"));
        }
        let order = view.order;
        let status = order_status(&order)?;
        if status != OrderStatus::Created {
            return Err(AppError::conflict("invalid_transition", format!("the order is {}", status.as_str())));
        }
        if self.now_ms() >= order.expires_at_ms {
            return Err(AppError::conflict("order_expired", "the order's reservation has expired"));
        }
        let gateway = self.gateway();
        let mut tx = self.store().begin().await?;
        let payment_id = tx.upsert_payment(order.id, gateway.name(), order.total_fen, self.now_ms()).await?;
        tx.commit().await?;
        Ok(PaymentRequest {
            payment_id,
            order_id: order.id,
            amount_fen: order.total_fen,
            gateway: gateway.name(),
            simulated_callback: gateway.simulate_success(order.id, order.total_fen),
        })
    }

    /// Handles a gateway's payment callback: verified, amount-checked, idempotent. A payment for
    /// an order that expired or was cancelled meanwhile is refunded at once.
    pub async fn payment_callback(&self, callback: &PaymentCallback) -> AppResult<CallbackOutcome> {
        // A timer or a cancellation may change the order between our read and our write; the
        // guarded write then loses, and the callback is decided again on the fresh state.
        let mut attempt = 0;
        loop {
            match self.payment_callback_once(callback).await {
                Err(AppError::Conflict { code: "concurrent_modification", .. }) if attempt < 3 => attempt += 1,
                other => return other,
            }
        }
    }

    async fn payment_callback_once(&self, callback: &PaymentCallback) -> AppResult<CallbackOutcome> {
        if !self.gateway().verify(callback) {
            return Err(AppError::Unauthorized("invalid_signature", "the callback signature does not verify"));
        }
        let order = self.store().order(callback.order_id).await?.ok_or(AppError::not_found("order"))?;
        if callback.amount_fen != order.total_fen {
            return Err(AppError::invalid(
                "amount_fen",
                "amount_mismatch",
                format!("the order costs {} 分", order.total_fen),
            ));
        }
        let now_ms = self.now_ms();
        let mut tx = self.store().begin().await?;
        let order = tx.order(order.id).await?.ok_or(AppError::not_found("order"))?;
        let status = order_status(&order)?;
        if order.paid_fen > 0 {
            let recorded = tx.payment_gateway_ref(order.id).await?;
            if recorded.as_deref() == Some(callback.gateway_ref.as_str()) {
                return Ok(CallbackOutcome::AlreadyPaid);
            }
            // A second, different payment for an order already paid (the buyer paid twice):
            // the money came in and goes straight back; the order is not touched.
            let reference = format!("duplicate-payment:{}:{}", order.id, callback.gateway_ref);
            let posting = Posting::new(
                xingqu_domain::ledger::PostingKind::Refund,
                vec![(Account::BuyerPayments, order.total_fen), (Account::Refunds, -order.total_fen)],
            )
            .map_err(|e| AppError::internal(e.to_string()))?;
            let first_time = match tx.post(&posting, &reference, None, now_ms).await {
                Err(StoreError::Conflict { .. }) => false,
                other => {
                    other?;
                    tx.commit().await?;
                    true
                }
            };
            // Asked again on every delivery of this callback until it goes through: the gateway
            // refunds once per reference.
            if let Err(error) = self.gateway().refund(order.id, order.total_fen, &reference) {
                tracing::error!(%error, reference, "refunding a duplicate payment failed; the gateway's retry of the callback retries it");
            }
            return Ok(if first_time { CallbackOutcome::RefundedDuplicate } else { CallbackOutcome::AlreadyPaid });
        }
        tx.upsert_payment(order.id, self.gateway().name(), order.total_fen, now_ms).await?;
        if !tx.succeed_payment(order.id, &callback.gateway_ref, now_ms).await? {
            // Another callback recorded a payment meanwhile: decide again on the fresh state (the
            // same payment is then "already paid", a different one a duplicate to refund).
            return Err(AppError::conflict("concurrent_modification", "a payment was recorded meanwhile"));
        }
        let subsidies = tx.order_subsidies(order.id).await?;
        let funded = with_subsidies(funded_entries(&tx.order_discounts(order.id).await?), &subsidies);
        match Posting::funded_payment(order.merchant_id, order.total_fen, &funded) {
            Ok(payment) => tx.post(&payment, &format!("payment:order:{}", order.id), Some(order.id), now_ms).await?,
            // A 0-yuan order moves no money.
            Err(PostingError::Empty) => {}
            Err(e) => return Err(AppError::internal(e.to_string())),
        }
        if status == OrderStatus::Created {
            let promise = dispatch_promise(&order.dispatch_promise);
            let changes = OrderChanges {
                paid_fen: Some(order.total_fen),
                paid_at_ms: Some(now_ms),
                dispatch_deadline_ms: promise.deadline_ms(now_ms),
                ..OrderChanges::default()
            };
            tx.transition_order(
                order.id,
                status.as_str(),
                OrderStatus::Paid.as_str(),
                &changes,
                Change { actor_user_id: None, reason: "payment received", now_ms },
            )
            .await?;
            // The purchase is an interaction too, logged once the payment is durable (inside the
            // payment's transaction it would take the log's ordering lock on PostgreSQL and
            // serialise every payment behind it).
            let purchases: Vec<NewEvent> = tx
                .lines(order.id)
                .await?
                .iter()
                .map(|line| NewEvent {
                    user_id: Some(order.buyer_user_id),
                    device_id: None,
                    kind: "purchase",
                    item_type: "product",
                    item_id: line.product_id,
                    watch_ms: 0,
                    occurred_at_ms: now_ms,
                })
                .collect();
            tx.commit().await?;
            self.record_sale(&order, 1).await;
            match self.store().append_events(&purchases, now_ms).await {
                Ok((first_event_id, _)) => self.feed().observe_new(&purchases, first_event_id).await,
                Err(error) => tracing::warn!(order_id = order.id, %error, "the purchase could not be logged"),
            }
            return Ok(CallbackOutcome::Paid);
        }
        // Expired or cancelled before the money arrived: keep the record, send the money back.
        tx.record_late_payment(order.id, order.total_fen).await?;
        let reference = format!("late-payment:order:{}", order.id);
        tx.insert_refund(order.id, order.total_fen, &reference, "payment arrived after the order closed", now_ms)
            .await?;
        // The payment posting above counted the funders' parts (coupons, subsidies) too; the
        // closed order gave them back to their budgets, so the ledger gives them back as well.
        let refund = Posting::funded_refund(Account::MerchantReceivable(order.merchant_id), order.total_fen, &funded)
            .map_err(|e| AppError::internal(e.to_string()))?;
        tx.post(&refund, &reference, Some(order.id), now_ms).await?;
        tx.commit().await?;
        self.send_refund(&reference, order.id, order.total_fen).await;
        Ok(CallbackOutcome::RefundedLate)
    }

    /// The shop ships a paid order. Price drops while it waited are paid in the same transaction
    /// (an unshipped order's protection is paid at shipment).
    pub async fn ship(
        &self,
        actor: &Actor,
        order_id: i64,
        carrier: &str,
        tracking_number: &str,
    ) -> AppResult<OrderView> {
        let order = self.order_view(actor, order_id).await?.order;
        if !actor.manages_merchant(order.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff ship its orders"));
        }
        let carrier = text::bounded("carrier", carrier, 40)?;
        let tracking_number = text::bounded("tracking_number", tracking_number, 40)?;
        let now_ms = self.now_ms();
        let changes = OrderChanges {
            carrier: Some(carrier),
            tracking_number: Some(tracking_number),
            shipped_at_ms: Some(now_ms),
            ..OrderChanges::default()
        };
        let mut tx = self.store().begin().await?;
        self.write_transition(&mut tx, actor, &order, OrderEvent::Ship, changes, "shipped").await?;
        // After the transition holds the order, so a request made meanwhile is seen here.
        if tx.open_refunds_before_shipment(order.id).await? > 0 {
            return Err(AppError::conflict(
                "after_sale_in_progress",
                "the buyer asked for a refund before shipment: answer the request first",
            ));
        }
        self.protect_on_shipment(&mut tx, order.id, now_ms).await?;
        tx.commit().await?;
        self.send_pending_payouts().await?;
        self.order_view(actor, order.id).await
    }

    /// The carrier's delivery: recorded by the shop's staff or an operator, with the signing time.
    pub async fn deliver(&self, actor: &Actor, order_id: i64, signed_at_ms: Option<i64>) -> AppResult<OrderView> {
        let order = self.order_view(actor, order_id).await?.order;
        if !actor.manages_merchant(order.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff or an operator record deliveries"));
        }
        let now_ms = self.now_ms();
        let signed_at_ms = signed_at_ms.unwrap_or(now_ms);
        if signed_at_ms > now_ms || order.shipped_at_ms.is_some_and(|s| signed_at_ms < s) {
            return Err(AppError::invalid("signed_at", "out_of_range", "must be between shipment and now"));
        }
        let changes = OrderChanges { delivered_at_ms: Some(signed_at_ms), ..OrderChanges::default() };
        self.transition_order(actor, &order, OrderEvent::Deliver, changes, "delivered").await
    }

    /// The buyer confirms receipt (otherwise the timer does, some days after delivery).
    pub async fn confirm_receipt(&self, actor: &Actor, order_id: i64) -> AppResult<OrderView> {
        let order = self.order_view(actor, order_id).await?.order;
        if order.buyer_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the buyer confirms receipt"));
        }
        let changes = OrderChanges { completed_at_ms: Some(self.now_ms()), ..OrderChanges::default() };
        self.transition_order(actor, &order, OrderEvent::Complete, changes, "receipt confirmed").await
    }

    /// Cancels before shipment: the buyer, the shop's staff or an operator. A paid order is
    /// refunded in full through the gateway; the stock returns.
    pub async fn cancel(&self, actor: &Actor, order_id: i64, reason: &str) -> AppResult<OrderView> {
        let order = self.order_view(actor, order_id).await?.order;
        let reason = text::bounded_or_empty("reason", reason, 200)?;
        let reason = if reason.is_empty() { "cancelled".to_owned() } else { reason };
        let status = order_status(&order)?;
        let next = status.apply(OrderEvent::Cancel)?;
        let now_ms = self.now_ms();
        if order.trade_type == "lucky_bag" {
            return Err(AppError::conflict("prize_order", "a lucky-bag prize is not cancelled; refuse it at delivery"));
        }
        let refund_fen = order.paid_fen - order.refunded_fen;
        let reference = format!("cancel:order:{}", order.id);
        let mut tx = self.store().begin().await?;
        // After-sales own a partly refunded order: cancelling it would refund and restock twice.
        let partly_refunded = tx.lines(order.id).await?.iter().any(|l| l.returned_units > 0);
        if partly_refunded || tx.open_after_sales_in_order(order.id, false).await? > 0 {
            return Err(AppError::conflict(
                "after_sale_in_progress",
                "part of this order is refunded or in an after-sale; ask for a refund of the rest instead",
            ));
        }
        let changes = OrderChanges { closed_at_ms: Some(now_ms), ..OrderChanges::default() };
        tx.transition_order(
            order.id,
            status.as_str(),
            next.as_str(),
            &changes,
            Change { actor_user_id: Some(actor.user_id), reason: &reason, now_ms },
        )
        .await?;
        let released = self.release_stock(&mut tx, &order).await?;
        // What others funded goes back to them with a full refund (a cancel refunds everything).
        let discounts = tx.order_discounts(order.id).await?;
        let subsidies = tx.order_subsidies(order.id).await?;
        let funded =
            if order.paid_fen > 0 { with_subsidies(funded_entries(&discounts), &subsidies) } else { Vec::new() };
        let coupons = self.release_coupons(&mut tx, &order, &discounts).await?;
        tx.return_subsidies(&subsidies).await?;
        if refund_fen > 0 {
            tx.insert_refund(order.id, refund_fen, &reference, &reason, now_ms).await?;
            let refund = Posting::funded_refund(Account::MerchantReceivable(order.merchant_id), refund_fen, &funded)
                .map_err(|e| AppError::internal(e.to_string()))?;
            tx.post(&refund, &reference, Some(order.id), now_ms).await?;
        }
        tx.commit().await?;
        for coupon_id in coupons {
            self.claim_gate_budget(coupon_id, false);
        }
        // The money moves only after the decision is durable; a failure here is retried by the timers.
        if refund_fen > 0 {
            self.send_refund(&reference, order.id, refund_fen).await;
            self.record_sale(&order, -1).await;
        }
        self.flash_released_all(&order, &released);
        self.order_view(actor, order_id).await
    }

    /// Asks the gateway to pay a recorded refund back, and marks it sent. Idempotent by
    /// `reference`; a failure leaves the refund pending for the timers to retry.
    pub(crate) async fn send_refund(&self, reference: &str, order_id: i64, amount_fen: i64) -> bool {
        match self.gateway().refund(order_id, amount_fen, reference) {
            Ok(gateway_ref) => match self.store().mark_refund_sent(reference, &gateway_ref, self.now_ms()).await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, reference, "refund sent but not marked; it will be re-sent (idempotent)");
                    false
                }
            },
            Err(error) => {
                tracing::warn!(%error, reference, "gateway refused a refund; retrying later");
                false
            }
        }
    }

    async fn transition_order(
        &self,
        actor: &Actor,
        order: &OrderRow,
        event: OrderEvent,
        changes: OrderChanges,
        reason: &str,
    ) -> AppResult<OrderView> {
        let mut tx = self.store().begin().await?;
        self.write_transition(&mut tx, actor, order, event, changes, reason).await?;
        tx.commit().await?;
        self.order_view(actor, order.id).await
    }

    /// An order's transition by `event`, written into `tx` (compare-and-set on its status, with
    /// its audit event).
    async fn write_transition(
        &self,
        tx: &mut xingqu_store::Tx,
        actor: &Actor,
        order: &OrderRow,
        event: OrderEvent,
        changes: OrderChanges,
        reason: &str,
    ) -> AppResult<()> {
        let from = order_status(order)?;
        let to = from.apply(event)?;
        let change = Change { actor_user_id: Some(actor.user_id), reason, now_ms: self.now_ms() };
        tx.transition_order(order.id, from.as_str(), to.as_str(), &changes, change).await?;
        Ok(())
    }

    /// Returns an order's units to where they came from — the SKU's stock or the flash pool — and
    /// what the buyer holds against purchase limits. Returns the flash units released, per sale,
    /// for the in-memory gates (told after commit).
    async fn release_stock(&self, tx: &mut xingqu_store::Tx, order: &OrderRow) -> AppResult<Vec<(i64, i64)>> {
        let mut lines = tx.lines(order.id).await?;
        lines.sort_by_key(|l| l.sku_id);
        let mut flash = Vec::new();
        for line in &lines {
            match line.flash_sale_id {
                Some(flash_sale_id) => {
                    tx.return_flash_units(flash_sale_id, line.quantity).await?;
                    tx.release_flash_purchase(flash_sale_id, order.buyer_user_id, line.quantity).await?;
                    flash.push((flash_sale_id, line.quantity));
                }
                None => {
                    tx.return_stock(line.sku_id, line.quantity).await?;
                    tx.add_purchase(order.buyer_user_id, line.sku_id, -line.quantity).await?;
                }
            }
        }
        Ok(flash)
    }

    fn flash_released_all(&self, order: &OrderRow, released: &[(i64, i64)]) {
        for &(flash_sale_id, units) in released {
            self.flash_released(order.buyer_user_id, flash_sale_id, units);
        }
    }

    /// Runs every due timer once: expires unpaid orders past their reservation, completes
    /// delivered orders past the confirmation period, settles completed orders past the return
    /// window, and retries refunds the gateway has not confirmed. Each order's change is one
    /// transaction guarded by its status, so a timer that fires twice, or on two nodes, changes
    /// each order once; one order failing (a deadlock victim, say) does not stop the others.
    pub async fn run_due_timers(&self) -> AppResult<TimerReport> {
        use xingqu_store::orders::Due;
        let mut report = TimerReport::default();
        let now_ms = self.now_ms();
        for order_id in self.store().due_orders(Due::Expiry, now_ms, TIMER_BATCH).await? {
            match self.expire(order_id, now_ms).await {
                Ok(done) => report.expired += usize::from(done),
                Err(error) => tracing::warn!(order_id, %error, "expiring an order failed; retrying next run"),
            }
        }
        let confirm_before_ms = now_ms - self.config().auto_complete_s * 1000;
        for order_id in self.store().due_orders(Due::Completion, confirm_before_ms, TIMER_BATCH).await? {
            match self.auto_complete(order_id, now_ms).await {
                Ok(done) => report.completed += usize::from(done),
                Err(error) => tracing::warn!(order_id, %error, "completing an order failed; retrying next run"),
            }
        }
        let window_closed_ms = now_ms - self.config().return_window_s * 1000;
        for order_id in self.store().due_orders(Due::Settlement, window_closed_ms, TIMER_BATCH).await? {
            match self.settle(order_id, now_ms).await {
                Ok(done) => report.settled += usize::from(done),
                Err(error) => tracing::warn!(order_id, %error, "settling an order failed; retrying next run"),
            }
        }
        report.lucky_bags_drawn = self.draw_due_lucky_bags(now_ms, TIMER_BATCH).await?;
        if let Err(error) = self.retrain_feed_if_due().await {
            tracing::warn!(%error, "retraining the feed failed; retrying next run");
        }
        if let Err(error) = self.tail_feed().await {
            tracing::warn!(%error, "reading other nodes' events failed; retrying next run");
        }
        report.protection_refunds = self.run_protection_sweeps().await?;
        report.payouts_sent = self.send_pending_payouts().await?;
        report.after_sales_moved = self.run_due_after_sales(now_ms).await?;
        report.dispatch_compensated = self.compensate_missed_dispatch(now_ms).await?;
        report.payouts_sent += self.send_pending_after_sale_payouts().await?;
        // Refunds sent inline normally succeed at once; these are the ones that did not.
        for (reference, order_id, amount_fen) in
            self.store().pending_refunds(now_ms - REFUND_RETRY_AFTER_MS, TIMER_BATCH).await?
        {
            report.refunds_sent += usize::from(self.send_refund(&reference, order_id, amount_fen).await);
        }
        Ok(report)
    }

    async fn expire(&self, order_id: i64, now_ms: i64) -> AppResult<bool> {
        let Some(order) = self.store().order(order_id).await? else { return Ok(false) };
        let mut tx = self.store().begin().await?;
        let changes = OrderChanges { closed_at_ms: Some(now_ms), ..OrderChanges::default() };
        let change = Change { actor_user_id: None, reason: "reservation expired", now_ms };
        match tx.transition_order(order_id, "created", "expired", &changes, change).await {
            Err(StoreError::Concurrent) => return Ok(false),
            other => other?,
        }
        let released = self.release_stock(&mut tx, &order).await?;
        let discounts = tx.order_discounts(order.id).await?;
        let coupons = self.release_coupons(&mut tx, &order, &discounts).await?;
        let subsidies = tx.order_subsidies(order.id).await?;
        tx.return_subsidies(&subsidies).await?;
        tx.commit().await?;
        self.flash_released_all(&order, &released);
        for coupon_id in coupons {
            self.claim_gate_budget(coupon_id, false);
        }
        Ok(true)
    }

    async fn auto_complete(&self, order_id: i64, now_ms: i64) -> AppResult<bool> {
        let mut tx = self.store().begin().await?;
        let changes = OrderChanges { completed_at_ms: Some(now_ms), ..OrderChanges::default() };
        let change = Change { actor_user_id: None, reason: "receipt confirmed automatically", now_ms };
        match tx.transition_order(order_id, "delivered", "completed", &changes, change).await {
            Err(StoreError::Concurrent) => return Ok(false),
            other => other?,
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn settle(&self, order_id: i64, now_ms: i64) -> AppResult<bool> {
        let mut tx = self.store().begin().await?;
        let Some(order) = tx.order(order_id).await? else { return Ok(false) };
        if order.settled_at_ms.is_some() {
            return Ok(false);
        }
        // An open after-sale may still refund: the merchant is paid once it is decided.
        if tx.open_after_sales_in_order(order_id, true).await? > 0 {
            return Ok(false);
        }
        let lines = tx.lines(order_id).await?;
        // What the ledger says the platform owes the merchant for this order: the buyer's payment
        // plus what others funded (coupons, a lucky bag's creator), less refunds.
        let receivable_account = Account::MerchantReceivable(order.merchant_id).to_string();
        // Price protection paid by sweeps is posted merchant by merchant, not order by order.
        let receivable_fen = -tx.order_account_balance(order_id, &receivable_account).await?
            - tx.swept_protection_merchant_fen(order_id).await?;
        // Commission on what the merchant keeps: never more than the receivable (price protection
        // and compensation also went back to the buyer).
        let kept_fen = if receivable_fen > 0 { (order.paid_fen - order.refunded_fen).min(receivable_fen) } else { 0 };
        let commission = settlement_commission(&lines, order.paid_fen, kept_fen);
        match tx.mark_settled(order_id, commission, now_ms).await {
            Err(StoreError::Concurrent) => return Ok(false),
            other => other?,
        }
        // Return-shipping insurance premiums come out of the merchant's settlement: the cover was
        // in force whatever became of the order.
        let premium_fen: i64 = lines.iter().map(|l| l.insurance_premium_fen).sum();
        // A negative receivable (a counterfeit's compensation beyond what the order brought in) is
        // the merchant's debt: settling moves it onto the settlement account, collected from what
        // the merchant is owed for other orders.
        if receivable_fen != 0 || premium_fen > 0 {
            let posting = Posting::settlement(order.merchant_id, receivable_fen, commission, premium_fen)
                .map_err(|e| AppError::internal(e.to_string()))?;
            tx.post(&posting, &format!("settlement:order:{order_id}"), Some(order_id), now_ms).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Refunds still pending this long after they were recorded are re-sent by the timers.
const REFUND_RETRY_AFTER_MS: i64 = 30_000;

/// Commission on what the merchant keeps: each line's rate on its paid amount, scaled by the
/// share of the order not refunded, rounded down.
pub fn settlement_commission(lines: &[LineRow], paid_fen: i64, receivable_fen: i64) -> i64 {
    if paid_fen <= 0 || receivable_fen <= 0 {
        return 0;
    }
    let full: i64 = lines.iter().map(|l| commission_fen(l.paid_fen, l.commission_bps)).sum();
    let scaled = i128::from(full) * i128::from(receivable_fen) / i128::from(paid_fen);
    i64::try_from(scaled).unwrap_or(0).min(receivable_fen)
}
