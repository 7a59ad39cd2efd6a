//! Price protection: SKUs' promises, buyers' claims, the automatic sweep a price cut starts, the
//! catch-up at shipment, and paying it all out through the gateway.

use crate::coupons::{coupon_kind, coupon_scope};
use crate::{App, AppError, AppResult};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xingqu_domain::account::Actor;
use xingqu_domain::after_sale::window::{ProtectionWindowDays, ProtectionWindowFrom};
use xingqu_domain::ledger::{Account, Posting, PostingKind};
use xingqu_domain::price_protection::{OpenCoupon, ProtectedLine, best_coupon_off, covers, platform_share_fen};
use xingqu_store::after_sales::LineForAfterSale;
use xingqu_store::price_protection::{NewProtection, PriceChange, ProtectionPolicy, ProtectionRow};
use xingqu_store::{StoreError, Tx};

/// Protected lines one sweep transaction covers while buyers are placing orders: a batch holds
/// SQLite's single writer for about a millisecond, so an order waits for one batch at most.
pub const SWEEP_BATCH_LINES_BUSY: i64 = 128;
/// ... and while nobody is: few, large transactions, the set-based statements dominate.
pub const SWEEP_BATCH_LINES_QUIET: i64 = 65_536;
/// Orders placed this recently make the store "busy" for the sweep.
const BUSY_FOR: Duration = Duration::from_millis(250);
/// How long a batch waits for orders in flight to finish before it runs anyway (so a
/// flash sale cannot starve a sweep).
const YIELD_AT_MOST: Duration = Duration::from_millis(5);
/// Payouts the timers send per run.
const PAYOUT_BATCH: i64 = 2_000;

/// Today's net price of a unit and what made it: the list price, a flash sale (its id), or the
/// list price less a shop coupon (its id and what it takes off).
#[derive(Debug, Clone, Copy, Default)]
struct TodayPrice {
    unit_fen: i64,
    flash_sale_id: i64,
    coupon_id: i64,
    coupon_off_fen: i64,
    /// The campaign entry whose price it is (0: none).
    zone_entry_id: i64,
}

/// A merchant's (or operator's) protection settings for a SKU.
#[derive(Debug, Clone, Default)]
pub struct ProtectionInput {
    /// 0 (no protection), 7, 15, 30 or 90.
    pub window_days: i64,
    /// `placement` (default) or `sign_off`.
    pub from: Option<String>,
    pub auto: bool,
    /// The platform's share in basis points: operators only.
    pub platform_bps: Option<i64>,
}

/// What price protection needs of a stored line.
pub(crate) fn protected_line(l: &LineForAfterSale) -> ProtectedLine {
    ProtectedLine {
        quantity: l.line.quantity,
        returned_units: l.line.returned_units,
        merchant_net_fen: l.line.merchant_net_fen,
        paid_fen: l.line.paid_fen,
        refunded_fen: l.line.refunded_fen,
        protection_fen: l.line.protection_fen,
        compensation_fen: l.line.compensation_fen,
    }
}

/// The merchant's account that bears a payment on an order: its receivable, or its settlement
/// account once the order is settled.
pub(crate) fn merchant_account(line: &LineForAfterSale) -> Account {
    if line.settled {
        Account::MerchantSettlement(line.merchant_id)
    } else {
        Account::MerchantReceivable(line.merchant_id)
    }
}

fn window_from(raw: &str) -> ProtectionWindowFrom {
    ProtectionWindowFrom::parse(raw).unwrap_or(ProtectionWindowFrom::Placement)
}

/// Order placements in flight and the latest one's start: the sweep gives way to buyers.
#[derive(Debug)]
pub(crate) struct OrderTraffic {
    started: Instant,
    in_flight: AtomicUsize,
    last_us: AtomicU64,
}

impl Default for OrderTraffic {
    fn default() -> Self {
        Self { started: Instant::now(), in_flight: AtomicUsize::new(0), last_us: AtomicU64::new(0) }
    }
}

/// Held while an order is being placed.
pub(crate) struct InFlight<'a>(&'a OrderTraffic);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl OrderTraffic {
    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.last_us.store(self.now_us().max(1), Ordering::Release);
        InFlight(self)
    }

    fn busy(&self) -> bool {
        let last_us = self.last_us.load(Ordering::Acquire);
        self.in_flight.load(Ordering::Acquire) > 0
            || (last_us > 0 && self.now_us().saturating_sub(last_us) < BUSY_FOR.as_micros() as u64)
    }

    /// Waits (briefly) for orders in flight to get through first.
    async fn give_way(&self) {
        let deadline = Instant::now() + YIELD_AT_MOST;
        while self.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

impl App {
    /// Sets a SKU's price protection. The shop's staff set the window and mode; the platform's
    /// share (a subsidised campaign) is an operator's decision.
    pub async fn set_price_protection(
        &self,
        actor: &Actor,
        sku_id: i64,
        input: &ProtectionInput,
    ) -> AppResult<ProtectionPolicy> {
        let sku = self.store().sku(sku_id).await?.ok_or(AppError::not_found("sku"))?;
        let product = self.store().product(sku.product_id).await?.ok_or(AppError::not_found("sku"))?;
        if !actor.manages_merchant(product.merchant_id) {
            return if actor.is_operator() || actor.merchant_id.is_some() {
                Err(AppError::not_found("sku"))
            } else {
                Err(AppError::Forbidden("only the shop's staff or an operator set price protection"))
            };
        }
        let window_days =
            if input.window_days == 0 { 0 } else { ProtectionWindowDays::parse(input.window_days)?.days() };
        let from = input
            .from
            .as_deref()
            .map(ProtectionWindowFrom::parse)
            .transpose()?
            .unwrap_or(ProtectionWindowFrom::Placement);
        let current = self.store().protection_policy(sku_id).await?.ok_or(AppError::not_found("sku"))?;
        let platform_bps = match input.platform_bps {
            Some(bps) if bps != current.platform_bps => {
                if !actor.is_operator() {
                    return Err(AppError::Forbidden("only an operator decides what the platform funds"));
                }
                if !(0..=10_000).contains(&bps) {
                    return Err(AppError::invalid("platform_bps", "out_of_range", "must be 0 to 10000 basis points"));
                }
                bps
            }
            _ => current.platform_bps,
        };
        let policy = ProtectionPolicy { window_days, from: from.as_str().to_owned(), auto: input.auto, platform_bps };
        let mut tx = self.store().begin().await?;
        tx.set_protection_policy(sku_id, &policy).await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// Called in the transaction that changes a SKU's price: a cut on a SKU in automatic mode
    /// queues its sweep, durably, with the price change it pays for.
    pub(crate) async fn queue_protection_sweep(&self, tx: &mut Tx, sku_id: i64, now_ms: i64) -> AppResult<()> {
        let Some(policy) = self.store().protection_policy(sku_id).await? else { return Ok(()) };
        if !policy.auto {
            return Ok(());
        }
        if let Some(change) = tx.latest_price_change(sku_id).await?
            && change.old_price_fen.is_some_and(|old| change.new_price_fen < old)
        {
            tx.queue_protection_sweep(&change, now_ms).await?;
        }
        Ok(())
    }

    /// Runs every queued sweep to its end, batch by batch; returns the protection payments
    /// recorded. One runner per process at a time (the timers and a bench may both call it);
    /// across processes the sweep's cursor is a compare-and-set, so batches never run twice.
    pub async fn run_protection_sweeps(&self) -> AppResult<i64> {
        if self.sweeping().swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let result = self.run_protection_sweeps_inner().await;
        self.sweeping().store(false, Ordering::Release);
        result
    }

    async fn run_protection_sweeps_inner(&self) -> AppResult<i64> {
        let mut refunds = 0;
        loop {
            let pending = self.store().pending_protection_sweeps(self.now_ms(), 16).await?;
            if pending.is_empty() {
                return Ok(refunds);
            }
            for mut sweep in pending {
                loop {
                    // Buyers first: while orders are being placed, batches are small and wait
                    // for the orders in flight; a quiet store gets large batches.
                    let batch_lines = if self.traffic().busy() {
                        self.traffic().give_way().await;
                        SWEEP_BATCH_LINES_BUSY
                    } else {
                        SWEEP_BATCH_LINES_QUIET
                    };
                    let mut tx = self.store().begin().await?;
                    match tx.sweep_protection_batch(&sweep, batch_lines, self.now_ms()).await {
                        Ok(batch) => {
                            tx.commit().await?;
                            refunds += batch.refunds;
                            if !batch.more {
                                break;
                            }
                            sweep.after_line_id = batch.after_line_id;
                        }
                        // Another node moved this sweep on: pick it up again from the queue.
                        Err(StoreError::Concurrent) => break,
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
    }

    /// A buyer claims price protection on a line of their shipped order, against today's price.
    /// Idempotent: a claim for a drop already paid (by an earlier claim or the sweep) returns that
    /// payment. Returns the record and whether this call created it.
    pub async fn claim_price_protection(&self, actor: &Actor, line_id: i64) -> AppResult<(ProtectionRow, bool)> {
        let now_ms = self.now_ms();
        let mut tx = self.store().begin().await?;
        let line = tx.line_for_after_sale(line_id).await?.ok_or(AppError::not_found("order_line"))?;
        if line.buyer_user_id != actor.user_id {
            return Err(AppError::not_found("order_line"));
        }
        match line.order_status.as_str() {
            "shipped" | "delivered" | "completed" => {}
            "created" | "paid" => {
                return Err(AppError::conflict(
                    "not_yet_shipped",
                    "price protection on an unshipped order is paid by itself when it ships",
                ));
            }
            _ => return Err(AppError::conflict("order_closed", "a cancelled order has no price protection")),
        }
        if line.line.protect_window_days == 0 {
            return Err(AppError::conflict("not_protected", "this product was not sold with price protection"));
        }
        let from = window_from(&line.line.protect_from);
        if !covers(from, line.line.protect_window_days, line.placed_at_ms, line.delivered_at_ms, now_ms) {
            return Err(AppError::conflict("protection_window_closed", "the price-protection window has ended"));
        }
        let today = tx.latest_price_change(line.line.sku_id).await?.ok_or(AppError::not_found("order_line"))?;
        let price = self.today_net_price(&mut tx, &line, today.new_price_fen, now_ms).await?;
        let due_fen = protected_line(&line).due_fen(price.unit_fen);
        let key = (today.id, price.flash_sale_id, price.coupon_id, price.zone_entry_id);
        if let Some(paid) = tx.protection_for_drop(line_id, key).await? {
            return Ok((paid, false));
        }
        if due_fen == 0 {
            return Err(AppError::conflict(
                "no_price_drop",
                "today's price is not below what you paid, or the difference was already paid",
            ));
        }
        let policy = self.store().protection_policy(line.line.sku_id).await?.unwrap_or(ProtectionPolicy {
            window_days: 0,
            from: String::new(),
            auto: false,
            platform_bps: 0,
        });
        match self
            .pay_protection(&mut tx, &line, (&today, price), due_fen, policy.platform_bps, Some(actor.user_id), now_ms)
            .await
        {
            Ok(id) => {
                tx.commit().await?;
                let row = self
                    .store()
                    .price_protection(id)
                    .await?
                    .ok_or_else(|| AppError::internal("price protection vanished"))?;
                if self.send_protection_payout(&row).await {
                    let sent = self.store().price_protection(id).await?;
                    return Ok((sent.unwrap_or(row), true));
                }
                Ok((row, true))
            }
            Err(error) => Err(error),
        }
    }

    /// Today's price of one unit of the line's SKU net of merchant-funded discounts: the list
    /// price; a flash sale running now with units left (the merchant funds its price); the list
    /// price or a running campaign's price (an approved zone entry, merchant-funded) less the
    /// shop coupon anyone may claim now that takes the most off one unit; whichever is lowest (a
    /// flash price takes no coupon). Platform subsidies are left out, as the rule says.
    async fn today_net_price(
        &self,
        tx: &mut Tx,
        line: &LineForAfterSale,
        list_fen: i64,
        now_ms: i64,
    ) -> AppResult<TodayPrice> {
        let mut price = TodayPrice { unit_fen: list_fen, ..TodayPrice::default() };
        if let Some(flash) = self.store().active_flash_sale(line.line.sku_id, now_ms).await?
            && flash.remaining_units > 0
            && flash.price_fen < price.unit_fen
        {
            price = TodayPrice { unit_fen: flash.price_fen, flash_sale_id: flash.id, ..TodayPrice::default() };
        }
        let mut open = Vec::new();
        for coupon in tx.claimable_shop_coupons(line.merchant_id, now_ms).await? {
            let usable_now = coupon.valid_from_ms.is_none_or(|from| from <= now_ms)
                && coupon.valid_until_ms.is_none_or(|until| until > now_ms);
            if usable_now && coupon_scope(&coupon).covers(line.merchant_id, line.line.product_id) {
                let budget_left_fen = coupon.budget_fen.map(|budget| budget - coupon.budget_used_fen);
                open.push(OpenCoupon { id: coupon.id, kind: coupon_kind(&coupon)?, budget_left_fen });
            }
        }
        let mut bases = vec![(list_fen, 0)];
        // A running flash sale prices carts instead of the campaign (as the cart does), so the
        // campaign price counts only while no flash sale does.
        if price.flash_sale_id == 0 {
            let offers = self.store().campaign_offers(&[line.line.sku_id], now_ms).await?;
            if let Some(offer) = offers.first().filter(|o| o.campaign_price_fen < list_fen) {
                bases.push((offer.campaign_price_fen, offer.entry_id));
            }
        }
        for (base_fen, zone_entry_id) in bases {
            if base_fen < price.unit_fen {
                price = TodayPrice { unit_fen: base_fen, zone_entry_id, ..TodayPrice::default() };
            }
            if let Some((coupon_id, off_fen)) = best_coupon_off(base_fen, &open)
                && base_fen - off_fen < price.unit_fen
            {
                price = TodayPrice {
                    unit_fen: base_fen - off_fen,
                    flash_sale_id: 0,
                    coupon_id,
                    coupon_off_fen: off_fen,
                    zone_entry_id,
                };
            }
        }
        Ok(price)
    }

    /// Records one protection payment with its posting.
    #[allow(clippy::too_many_arguments)]
    async fn pay_protection(
        &self,
        tx: &mut Tx,
        line: &LineForAfterSale,
        (drop, price): (&PriceChange, TodayPrice),
        amount_fen: i64,
        platform_bps: i64,
        actor_user_id: Option<i64>,
        now_ms: i64,
    ) -> AppResult<i64> {
        let platform_fen = platform_share_fen(amount_fen, platform_bps);
        let merchant_fen = amount_fen - platform_fen;
        let flash_sale_id = price.flash_sale_id;
        let record = NewProtection {
            line_id: line.line.id,
            drop_id: drop.id,
            flash_sale_id,
            coupon_id: price.coupon_id,
            zone_entry_id: price.zone_entry_id,
            coupon_off_fen: price.coupon_off_fen,
            order_id: line.line.order_id,
            buyer_user_id: line.buyer_user_id,
            merchant_id: line.merchant_id,
            units: protected_line(line).kept_units(),
            amount_fen,
            platform_fen,
            merchant_settled: line.settled,
            created_by: actor_user_id,
            now_ms,
        };
        let id = match tx.insert_price_protection(&record).await {
            Ok(id) => id,
            Err(StoreError::Conflict { .. }) => {
                return Err(AppError::conflict("already_paid", "this price drop was already paid"));
            }
            Err(error) => return Err(error.into()),
        };
        let posting =
            Posting::paid_back(PostingKind::PriceProtection, merchant_account(line), merchant_fen, platform_fen)
                .map_err(|e| AppError::internal(e.to_string()))?;
        tx.post(&posting, &format!("price_protection:{id}"), Some(line.line.order_id), now_ms).await?;
        // A payment under a flash price shares its drop id with the list cut's sweep: mark the
        // SKU so every later sweep deducts what was paid.
        tx.note_protection_paid(line.line.sku_id, drop.id, flash_sale_id != 0).await?;
        Ok(id)
    }

    /// At shipment, inside the shipping transaction: each protected line is paid for the lowest
    /// price its SKU had inside the line's window so far (drops while the order waited to ship).
    pub(crate) async fn protect_on_shipment(&self, tx: &mut Tx, order_id: i64, now_ms: i64) -> AppResult<()> {
        for line in tx.lines_for_after_sale(order_id).await? {
            let days = line.line.protect_window_days;
            if days == 0 {
                continue;
            }
            let from = window_from(&line.line.protect_from);
            // Not delivered yet: a window counted from sign-off is still open.
            let until_ms = match from {
                ProtectionWindowFrom::Placement => line.placed_at_ms + days * 86_400_000,
                ProtectionWindowFrom::SignOff => i64::MAX,
            };
            let until_ms = until_ms.min(now_ms + 1);
            let sku_id = line.line.sku_id;
            let list = tx.lowest_price_between(sku_id, line.placed_at_ms, until_ms).await?;
            // A flash sale that started in the window below the lowest list price counts too: the
            // list price in force at its start, at the flash price.
            let mut flash_sale_id = 0;
            let mut lowest = list.clone();
            if let Some((flash_id, flash_price_fen, starts_at_ms)) =
                tx.lowest_flash_between(sku_id, line.placed_at_ms, until_ms).await?
                && list.as_ref().is_none_or(|l| flash_price_fen < l.new_price_fen)
                && let Some(in_force) = tx.price_change_at(sku_id, starts_at_ms).await?
            {
                lowest = Some(PriceChange { new_price_fen: flash_price_fen, changed_at_ms: starts_at_ms, ..in_force });
                flash_sale_id = flash_id;
            }
            let Some(lowest) = lowest else { continue };
            let due_fen = protected_line(&line).due_fen(lowest.new_price_fen);
            if due_fen > 0 && tx.protection_for_drop(line.line.id, (lowest.id, flash_sale_id, 0, 0)).await?.is_none() {
                let bps = self.store().protection_policy(sku_id).await?.map_or(0, |p| p.platform_bps);
                let price = TodayPrice { unit_fen: lowest.new_price_fen, flash_sale_id, ..TodayPrice::default() };
                match self.pay_protection(tx, &line, (&lowest, price), due_fen, bps, None, now_ms).await {
                    Ok(_) | Err(AppError::Conflict { code: "already_paid", .. }) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// One price-protection payment: the buyer, the shop's staff, operators.
    pub async fn price_protection_view(&self, actor: &Actor, id: i64) -> AppResult<ProtectionRow> {
        let row = self.store().price_protection(id).await?.ok_or(AppError::not_found("price_protection"))?;
        if row.buyer_user_id != actor.user_id && !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::not_found("price_protection"));
        }
        Ok(row)
    }

    /// Sends one protection payment through the gateway (idempotent by `price_protection:{id}`)
    /// and marks it sent; a failure leaves it pending for the timers.
    pub(crate) async fn send_protection_payout(&self, row: &ProtectionRow) -> bool {
        let reference = format!("price_protection:{}", row.id);
        match self.gateway().refund(row.order_id, row.amount_fen, &reference) {
            Ok(gateway_ref) => {
                let marked = async {
                    let mut tx = self.store().begin().await?;
                    tx.mark_protection_paid_out(row.id, &gateway_ref).await?;
                    tx.commit().await
                };
                match marked.await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, reference, "payout sent but not marked; it will be re-sent (idempotent)");
                        false
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, reference, "gateway refused a payout; retrying later");
                false
            }
        }
    }

    /// Sends pending protection payouts (sweeps record thousands at once; they go out here).
    pub(crate) async fn send_pending_payouts(&self) -> AppResult<usize> {
        let mut sent = 0;
        for row in self.store().pending_protection_payouts(PAYOUT_BATCH).await? {
            sent += usize::from(self.send_protection_payout(&row).await);
        }
        Ok(sent)
    }
}
