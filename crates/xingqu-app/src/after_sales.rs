//! After-sale requests: buyers ask (refund, return, exchange, re-ship, repair, fresh damage,
//! cosmetics allergy), merchants answer, operators arbitrate, timers keep every deadline, and
//! refunds are computed on what the line still holds (`after_sale::money`) and posted with
//! what each funder gets back.

use crate::assurance::PickupCollected;
use crate::coupons::redeem::funder_account;
use crate::{App, AppError, AppResult};
use std::collections::BTreeMap;
use xingqu_domain::account::Actor;
use xingqu_domain::after_sale::money::LineMoney;
use xingqu_domain::after_sale::status::{AfterSaleEvent, AfterSaleKind, AfterSaleStatus, Deadlines};
use xingqu_domain::after_sale::window::{
    fresh_damage_window, in_window, seven_day_return_exclusion, seven_day_return_window,
};
use xingqu_domain::ledger::{Account, Posting};
use xingqu_domain::promo::refund::prorate_refund;
use xingqu_domain::text;
use xingqu_store::after_sales::{AfterSaleChanges, AfterSaleEventRow, AfterSaleRow, LineForAfterSale, NewAfterSale};
use xingqu_store::campaigns::OrderSubsidy;
use xingqu_store::price_protection::ProtectionRow;
use xingqu_store::{StoreError, Tx};

/// Photos a request may carry.
const EVIDENCE_MAX: usize = 9;
/// Requests the timers act on per run.
const DUE_BATCH: i64 = 500;
/// How long a due request the timer could not move waits before the next try.
const TIMER_RETRY_MS: i64 = 3_600_000;

/// What a refund decided in a transaction leaves to do after commit.
pub(crate) struct PaidBack {
    pub fen: i64,
    pub reference: String,
    /// The SKU and units paid back (the hot lists take them off after commit).
    pub sku_id: i64,
    pub units: i64,
    /// Coupons whose budgets came back (the claim gates learn it after commit).
    pub released_coupons: Vec<i64>,
}

/// A buyer's request as it arrives.
#[derive(Debug, Clone, Default)]
pub struct AfterSaleInput {
    pub line_id: i64,
    pub kind: String,
    pub units: i64,
    pub reason: String,
    /// Photo URLs (required for fresh damage and allergy returns, and for returns that are not
    /// seven-day no-reason returns).
    pub evidence: Vec<String>,
    /// A seven-day no-reason return (七天无理由): checked against the window and the exclusions.
    pub no_reason: bool,
}

fn kind_of(row: &AfterSaleRow) -> AppResult<(AfterSaleKind, AfterSaleStatus)> {
    let kind = AfterSaleKind::parse(&row.kind).map_err(|_| AppError::internal("stored after-sale kind"))?;
    let status =
        AfterSaleStatus::from_name(&row.status).ok_or_else(|| AppError::internal("stored after-sale status"))?;
    Ok((kind, status))
}

fn line_money(line: &LineForAfterSale) -> AppResult<LineMoney> {
    let l = &line.line;
    LineMoney::restore(l.quantity, l.paid_fen, l.refunded_fen, l.returned_units, l.protection_fen, l.compensation_fen)
        .map_err(|e| AppError::internal(format!("stored line money: {e:?}")))
}

/// A return's shipping cost as the buyer states it: 0 to 200 元.
pub(crate) fn freight(freight_fen: i64) -> AppResult<i64> {
    if (0..=20_000).contains(&freight_fen) {
        Ok(freight_fen)
    } else {
        Err(AppError::invalid("freight_fen", "out_of_range", "0 to 20000 fen"))
    }
}

fn evidence_json(evidence: &[String]) -> AppResult<String> {
    if evidence.len() > EVIDENCE_MAX {
        return Err(AppError::invalid("evidence", "too_many", format!("at most {EVIDENCE_MAX} photos")));
    }
    for url in evidence {
        if !(url.starts_with("https://") && url.len() <= 500) {
            return Err(AppError::invalid(
                "evidence",
                "invalid_url",
                "photos are https URLs of at most 500 characters",
            ));
        }
    }
    Ok(xingqu_store::after_sales::encode_evidence(evidence))
}

impl App {
    fn deadlines(&self) -> Deadlines {
        self.config().after_sale_deadlines
    }

    /// A buyer asks for an after-sale on a line of their order. With an idempotency key, a retry
    /// returns the first request. Returns the request and whether this call created it.
    pub async fn request_after_sale(
        &self,
        actor: &Actor,
        order_id: i64,
        idempotency_key: Option<&str>,
        input: &AfterSaleInput,
    ) -> AppResult<(AfterSaleRow, bool)> {
        let key = idempotency_key.map(|k| crate::orders::parse_idempotency_key(Some(k))).transpose()?;
        let kind = AfterSaleKind::parse(&input.kind)?;
        if kind == AfterSaleKind::PriceProtection {
            return Err(AppError::invalid("kind", "use_price_protection", "claim price protection on the order line"));
        }
        let reason = text::bounded("reason", &input.reason, 200)?;
        let evidence = evidence_json(&input.evidence)?;
        let now_ms = self.now_ms();
        let mut tx = self.store().begin().await?;
        if let Some(key) = &key
            && let Some(first) = tx.after_sale_by_key(actor.user_id, key).await?
        {
            return Ok((first, false));
        }
        let line = tx.line_for_after_sale(input.line_id).await?.ok_or(AppError::not_found("order_line"))?;
        if line.buyer_user_id != actor.user_id || line.line.order_id != order_id {
            return Err(AppError::not_found("order_line"));
        }
        let money = line_money(&line)?;
        let open = money.open_units() - tx.units_in_open_after_sales(line.line.id).await?;
        if !(1..=open).contains(&input.units) {
            return Err(AppError::invalid(
                "units",
                "out_of_range",
                format!("1 to {open}: the units not yet refunded or in another open request"),
            ));
        }
        self.check_request(kind, &line, input, now_ms).await?;
        // Shipment checks for these requests after taking the order: holding it here means one
        // of the two sees the other.
        if kind == AfterSaleKind::RefundBeforeShipment && !tx.hold_unshipped_order(order_id).await? {
            return Err(AppError::conflict(
                "not_before_shipment",
                "the order has shipped (or is not paid): ask for a refund after shipment",
            ));
        }
        let status = kind.initial_status();
        // What the refund would be now (the merchant bears it); fixed when the money moves.
        let amount_fen = if kind.pays_money() { money.refund_for_units(input.units).unwrap_or(0) } else { 0 };
        let record = NewAfterSale {
            order_id,
            line_id: line.line.id,
            buyer_user_id: actor.user_id,
            merchant_id: line.merchant_id,
            kind: kind.as_str(),
            status: status.as_str(),
            units: input.units,
            amount_fen,
            merchant_fen: amount_fen,
            platform_fen: 0,
            reason,
            evidence,
            idempotency_key: key.clone(),
            due_at_ms: self.deadlines().due_at_ms(kind, status, now_ms),
            created_by: Some(actor.user_id),
            now_ms,
        };
        let id = match tx.insert_after_sale(&record).await {
            Ok(id) => id,
            Err(StoreError::Conflict { .. }) if key.is_some() => {
                // A concurrent retry with the same key committed first.
                drop(tx);
                let mut tx = self.store().begin().await?;
                let first = tx.after_sale_by_key(actor.user_id, key.as_deref().unwrap_or_default()).await?;
                return first.map(|f| (f, false)).ok_or_else(|| AppError::internal("after-sale vanished"));
            }
            Err(error) => return Err(error.into()),
        };
        tx.commit().await?;
        let row = self.store().after_sale(id).await?.ok_or_else(|| AppError::internal("after-sale vanished"))?;
        Ok((row, true))
    }

    /// Whether this kind of request fits the order's state, the windows and the goods.
    async fn check_request(
        &self,
        kind: AfterSaleKind,
        line: &LineForAfterSale,
        input: &AfterSaleInput,
        now_ms: i64,
    ) -> AppResult<()> {
        use AfterSaleKind as K;
        let status = line.order_status.as_str();
        let (shipped, delivered) =
            (matches!(status, "shipped" | "delivered" | "completed"), matches!(status, "delivered" | "completed"));
        let refuse = |code: &'static str, message: &str| Err(AppError::conflict(code, message.to_owned()));
        let needs_evidence = |what: &str| {
            if input.evidence.is_empty() {
                Err(AppError::invalid("evidence", "evidence_required", format!("{what} needs photos")))
            } else {
                Ok(())
            }
        };
        if line.line.paid_fen == 0 && kind.pays_money() && kind != K::Counterfeit {
            return refuse("nothing_paid", "nothing was paid for this line");
        }
        let flags = self.line_category_flags(line.line.product_id).await?;
        match kind {
            K::RefundBeforeShipment if status != "paid" => {
                refuse("not_before_shipment", "the order has shipped (or is not paid): ask for a refund after shipment")
            }
            K::RefundWithoutReturn | K::Reship if !shipped => refuse("not_shipped", "the order has not shipped"),
            K::ReturnRefund | K::Exchange | K::Repair | K::AllergyReturn | K::FreshDamage if !delivered => {
                refuse("not_delivered", "the goods have not been signed for")
            }
            K::ReturnRefund if input.no_reason => {
                // Seven days counted from the day after sign-off; the sign-off day itself counts too.
                let delivered_at_ms = line.delivered_at_ms.unwrap_or(now_ms);
                let (_, end_ms) = seven_day_return_window(delivered_at_ms);
                if !in_window(now_ms, (delivered_at_ms, end_ms)) {
                    return refuse(
                        "return_window_closed",
                        "seven-day no-reason returns run for 7 days from the day after sign-off",
                    );
                }
                let confirmed = line.line.unsealed_no_return_confirmed;
                match seven_day_return_exclusion(&flags, confirmed, confirmed) {
                    Some(exclusion) => Err(AppError::conflict(
                        "no_reason_return_excluded",
                        format!("{} goods are not returnable without a reason", exclusion.as_str()),
                    )),
                    None => Ok(()),
                }
            }
            K::ReturnRefund | K::Exchange | K::Repair => needs_evidence("a return for a defect"),
            K::FreshDamage => {
                if !flags.fresh {
                    return refuse("not_fresh", "fresh-damage compensation is for fresh goods");
                }
                if !in_window(now_ms, fresh_damage_window(line.delivered_at_ms.unwrap_or(now_ms))) {
                    return refuse("claim_window_closed", "fresh damage is claimed within 48 hours of sign-off");
                }
                needs_evidence("a fresh-damage claim")
            }
            K::AllergyReturn => {
                if !flags.cosmetics {
                    return refuse("not_cosmetics", "allergy returns are for cosmetics");
                }
                let signed = line.delivered_at_ms.unwrap_or(now_ms);
                let days = self.config().allergy_return_days;
                if now_ms >= signed + days * 86_400_000 {
                    return Err(AppError::conflict(
                        "claim_window_closed",
                        format!("allergy returns are claimed within {days} days of sign-off"),
                    ));
                }
                needs_evidence("an allergy return")
            }
            K::Counterfeit if !shipped => refuse("not_shipped", "the order has not shipped"),
            K::Counterfeit => needs_evidence("a counterfeit claim"),
            _ => Ok(()),
        }
    }

    async fn line_category_flags(&self, product_id: i64) -> AppResult<xingqu_domain::catalog::CategoryFlags> {
        let product = self.store().product(product_id).await?.ok_or_else(|| AppError::internal("line's product"))?;
        let category = self
            .store()
            .category(product.category_id)
            .await?
            .ok_or_else(|| AppError::internal("product's category"))?;
        Ok(category.flags)
    }

    /// The shop's staff (or an operator) approve or reject a request.
    pub async fn answer_after_sale(
        &self,
        actor: &Actor,
        id: i64,
        approve: bool,
        reason: &str,
    ) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff answer after-sale requests"));
        }
        let event = if approve { AfterSaleEvent::MerchantApprove } else { AfterSaleEvent::MerchantReject };
        let reason = if approve { "approved".to_owned() } else { text::bounded("reason", reason, 200)? };
        self.move_after_sale(id, event, Some(actor.user_id), &reason, AfterSaleChanges::default()).await
    }

    /// The buyer takes a rejected request to operator arbitration.
    pub async fn dispute_after_sale(&self, actor: &Actor, id: i64, reason: &str) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if row.buyer_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the buyer disputes a rejection"));
        }
        let reason = text::bounded("reason", reason, 200)?;
        self.move_after_sale(
            id,
            AfterSaleEvent::BuyerDispute,
            Some(actor.user_id),
            &reason,
            AfterSaleChanges::default(),
        )
        .await
    }

    /// An operator settles a dispute (or a counterfeit claim) for the buyer or the merchant.
    pub async fn arbitrate_after_sale(
        &self,
        actor: &Actor,
        id: i64,
        for_buyer: bool,
        reason: &str,
    ) -> AppResult<AfterSaleRow> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators arbitrate"));
        }
        self.visible_after_sale(actor, id).await?;
        let event = if for_buyer { AfterSaleEvent::ArbitrateForBuyer } else { AfterSaleEvent::ArbitrateForMerchant };
        let reason = text::bounded("reason", reason, 200)?;
        self.move_after_sale(id, event, Some(actor.user_id), &reason, AfterSaleChanges::default()).await
    }

    /// The buyer ships the goods back, saying what the shipping cost (return-shipping insurance
    /// pays it back when the return is refunded).
    pub async fn ship_return(
        &self,
        actor: &Actor,
        id: i64,
        carrier: &str,
        tracking: &str,
        freight_fen: i64,
    ) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if row.buyer_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the buyer ships a return"));
        }
        let changes = AfterSaleChanges {
            return_carrier: Some(text::bounded("carrier", carrier, 40)?),
            return_tracking: Some(text::bounded("tracking_number", tracking, 40)?),
            return_freight_fen: Some(freight(freight_fen)?),
            ..AfterSaleChanges::default()
        };
        self.move_after_sale(id, AfterSaleEvent::BuyerShipReturn, Some(actor.user_id), "return shipped", changes).await
    }

    /// The shop's staff confirm the return arrived.
    pub async fn receive_return(&self, actor: &Actor, id: i64) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff receive returns"));
        }
        self.move_after_sale(
            id,
            AfterSaleEvent::MerchantReceive,
            Some(actor.user_id),
            "return received",
            AfterSaleChanges::default(),
        )
        .await
    }

    /// The shop's staff refund a received return.
    pub async fn refund_after_sale(&self, actor: &Actor, id: i64) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff refund"));
        }
        self.move_after_sale(
            id,
            AfterSaleEvent::RefundPaid,
            Some(actor.user_id),
            "refunded",
            AfterSaleChanges::default(),
        )
        .await
    }

    /// The shop's staff shipped the replacement (re-ship, exchange) or the repaired goods, with
    /// the carrier and tracking number the buyer follows.
    pub async fn fulfil_after_sale(
        &self,
        actor: &Actor,
        id: i64,
        carrier: &str,
        tracking: &str,
    ) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff fulfil"));
        }
        let changes = AfterSaleChanges {
            replacement_carrier: Some(text::bounded("carrier", carrier, 40)?),
            replacement_tracking: Some(text::bounded("tracking_number", tracking, 40)?),
            ..AfterSaleChanges::default()
        };
        self.move_after_sale(id, AfterSaleEvent::Fulfilled, Some(actor.user_id), "replacement shipped", changes).await
    }

    /// The buyer withdraws a request.
    pub async fn withdraw_after_sale(&self, actor: &Actor, id: i64) -> AppResult<AfterSaleRow> {
        let row = self.visible_after_sale(actor, id).await?;
        if row.buyer_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the buyer withdraws a request"));
        }
        self.move_after_sale(
            id,
            AfterSaleEvent::BuyerWithdraw,
            Some(actor.user_id),
            "withdrawn",
            AfterSaleChanges::default(),
        )
        .await
    }

    async fn visible_after_sale(&self, actor: &Actor, id: i64) -> AppResult<AfterSaleRow> {
        let row = self.store().after_sale(id).await?.ok_or(AppError::not_found("after_sale"))?;
        if row.buyer_user_id != actor.user_id && !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::not_found("after_sale"));
        }
        Ok(row)
    }

    /// Moves a request by `event` in one transaction: the compare-and-set on its status, its
    /// audit event, its next deadline, and — when it becomes `refunded` — the refund with its
    /// posting. The money goes out through the gateway after commit (retried by the timers).
    async fn move_after_sale(
        &self,
        id: i64,
        event: AfterSaleEvent,
        actor_user_id: Option<i64>,
        reason: &str,
        changes: AfterSaleChanges,
    ) -> AppResult<AfterSaleRow> {
        self.move_after_sale_with(id, event, actor_user_id, reason, changes, None).await
    }

    /// [`App::move_after_sale`], and a door pickup's collection when that is how the return
    /// shipped. Shipping a return may pay an express refund; a refunded return may pay
    /// return-shipping insurance.
    pub(crate) async fn move_after_sale_with(
        &self,
        id: i64,
        event: AfterSaleEvent,
        actor_user_id: Option<i64>,
        reason: &str,
        mut changes: AfterSaleChanges,
        pickup: Option<PickupCollected>,
    ) -> AppResult<AfterSaleRow> {
        let now_ms = self.now_ms();
        let mut tx = self.store().begin().await?;
        let row = tx.after_sale_for_update(id).await?.ok_or(AppError::not_found("after_sale"))?;
        let (kind, from) = kind_of(&row)?;
        let to = from.apply(kind, event).map_err(|e| AppError::conflict("invalid_transition", e.to_string()))?;
        // The order before its lines (a refund updates both), as shipment and cancellation take
        // them, so no two writers wait on each other in a cycle.
        tx.lock_order(row.order_id).await?;
        changes.due_at_ms = self.deadlines().due_at_ms(kind, to, now_ms);
        let mut refund = None;
        if to == AfterSaleStatus::Refunded && kind.pays_money() && row.express_refunded_at_ms.is_none() {
            let paid = self.pay_after_sale(&mut tx, &row, kind, now_ms).await?;
            changes.amount_fen = Some(paid.fen);
            changes.merchant_fen = Some(paid.fen);
            changes.platform_fen = Some(0);
            refund = Some(paid);
        }
        if !tx.transition_after_sale(id, from.as_str(), to.as_str(), &changes, actor_user_id, reason, now_ms).await? {
            return Err(AppError::conflict("concurrent_change", "the request changed meanwhile; read it again"));
        }
        if let Some(pickup) = &pickup
            && !tx.mark_pickup_collected(id, &pickup.carrier, &pickup.tracking, now_ms).await?
        {
            return Err(AppError::conflict("no_pickup_booked", "no door pickup is waiting for this return"));
        }
        if event == AfterSaleEvent::BuyerShipReturn && kind.pays_money() {
            refund = self.express_refund(&mut tx, &row, now_ms).await?;
        }
        let mut extra = false;
        if to == AfterSaleStatus::Refunded && kind.needs_return() {
            extra = self.insurance_payout(&mut tx, &row, now_ms).await?;
        }
        if to == AfterSaleStatus::Refunded && kind == AfterSaleKind::Counterfeit {
            extra = self.counterfeit_compensation(&mut tx, &row, now_ms).await?;
        }
        tx.commit().await?;
        if let Some(paid) = refund {
            for coupon_id in &paid.released_coupons {
                self.claim_gate_budget(*coupon_id, false);
            }
            if paid.fen > 0 {
                self.send_refund(&paid.reference, row.order_id, paid.fen).await;
                self.record_units_refunded(row.order_id, paid.sku_id, paid.units, paid.fen).await;
            }
        }
        if extra {
            for payout in self.store().payouts_of(id).await? {
                self.send_payout(&payout).await;
            }
        }
        self.store().after_sale(id).await?.ok_or_else(|| AppError::internal("after-sale vanished"))
    }

    /// The refund of a request, inside its transaction: what the units still hold on the line
    /// (less protection and compensation already paid on them), recorded as a pending refund with
    /// its posting (funders get their parts of those units back); goods never shipped go back to
    /// stock. Once every unit of the order is refunded, its coupons are released as a
    /// cancellation releases them (budgets back; claims back to the wallet while still valid).
    pub(crate) async fn pay_after_sale(
        &self,
        tx: &mut Tx,
        row: &AfterSaleRow,
        kind: AfterSaleKind,
        now_ms: i64,
    ) -> AppResult<PaidBack> {
        let line = tx.line_for_after_sale(row.line_id).await?.ok_or_else(|| AppError::internal("after-sale's line"))?;
        let money = line_money(&line)?;
        let refund_fen = money
            .refund_for_units(row.units)
            .map_err(|_| AppError::conflict("units_already_refunded", "those units were refunded meanwhile"))?;
        let reference = format!("after_sale:{}", row.id);
        // What platform and creators funded of these units goes back to them.
        // The line's funded parts: coupons (by their funders) and the platform's subsidies (with
        // their pools).
        let mut line_funders: Vec<(Option<Account>, Option<i64>, i64)> = tx
            .order_discounts(row.order_id)
            .await?
            .iter()
            .filter(|d| d.line_id == row.line_id)
            .map(|d| (funder_account(d), None, d.amount_fen))
            .collect();
        line_funders.extend(
            tx.order_subsidies(row.order_id)
                .await?
                .iter()
                .filter(|s| s.line_id == row.line_id)
                .map(|s| (Some(Account::PlatformSubsidyBudget), Some(s.pool_id), s.amount_fen)),
        );
        let mut funded: BTreeMap<Account, i64> = BTreeMap::new();
        // What goes back to each subsidy pool: the parts prorated over the units refunded, so all
        // of a line's refunds together give back exactly what it took.
        let mut to_pools: Vec<OrderSubsidy> = Vec::new();
        let amounts: Vec<i64> = line_funders.iter().map(|&(_, _, fen)| fen).collect();
        if let Some(split) =
            prorate_refund(line.line.paid_fen, line.line.quantity, &amounts, line.line.returned_units, row.units)
        {
            for (&(account, pool_id, _), part) in line_funders.iter().zip(split.discount_returned_fen) {
                if let Some(account) = account {
                    *funded.entry(account).or_default() += part;
                }
                if let Some(pool_id) = pool_id
                    && part > 0
                {
                    to_pools.push(OrderSubsidy {
                        order_id: row.order_id,
                        line_id: row.line_id,
                        pool_id,
                        amount_fen: part,
                    });
                }
            }
        }
        tx.return_subsidies(&to_pools).await?;
        let funded: Vec<(Account, i64)> = funded.into_iter().filter(|&(_, fen)| fen > 0).collect();
        if refund_fen > 0 || !funded.is_empty() {
            // Once settled, the merchant was paid the funders' parts too: its settlement account
            // bears the refund and gives those parts back.
            let merchant_account = if line.settled {
                Account::MerchantSettlement(line.merchant_id)
            } else {
                Account::MerchantReceivable(line.merchant_id)
            };
            let posting = Posting::funded_refund(merchant_account, refund_fen, &funded)
                .map_err(|e| AppError::internal(e.to_string()))?;
            tx.post(&posting, &reference, Some(row.order_id), now_ms).await?;
        }
        if refund_fen > 0 {
            tx.insert_refund(row.order_id, refund_fen, &reference, kind.as_str(), now_ms).await?;
        }
        match tx.add_line_paid_back(row.line_id, refund_fen, row.units, 0).await {
            Err(StoreError::Constraint) => {
                return Err(AppError::conflict("units_already_refunded", "those units were refunded meanwhile"));
            }
            other => other?,
        }
        // Goods never shipped go back to stock (a refund before shipment decided by arbitration
        // after the order shipped leaves the stock alone: those goods are with the buyer).
        if kind == AfterSaleKind::RefundBeforeShipment && line.order_status == "paid" {
            match line.line.flash_sale_id {
                Some(flash_sale_id) => {
                    tx.return_flash_units(flash_sale_id, row.units).await?;
                    tx.release_flash_purchase(flash_sale_id, row.buyer_user_id, row.units).await?;
                }
                None => {
                    tx.return_stock(line.line.sku_id, row.units).await?;
                    tx.add_purchase(row.buyer_user_id, line.line.sku_id, -row.units).await?;
                }
            }
        }
        let mut released_coupons = Vec::new();
        let lines = tx.lines(row.order_id).await?;
        if lines.iter().all(|l| l.returned_units == l.quantity) {
            let order = tx.order(row.order_id).await?.ok_or_else(|| AppError::internal("after-sale's order"))?;
            let discounts = tx.order_discounts(row.order_id).await?;
            released_coupons = self.release_coupons(tx, &order, &discounts).await?;
        }
        Ok(PaidBack { fen: refund_fen, reference, sku_id: line.line.sku_id, units: row.units, released_coupons })
    }

    /// Acts on every request whose deadline has come: the merchant did not answer (approved),
    /// the buyer did not ship the return (closed), the merchant did not refund a received return
    /// (refunded). Each is its own compare-and-set, so a timer that fires twice acts once.
    pub(crate) async fn run_due_after_sales(&self, now_ms: i64) -> AppResult<usize> {
        let mut moved = 0;
        for row in self.store().due_after_sales(now_ms, DUE_BATCH).await? {
            let Ok((kind, status)) = kind_of(&row) else { continue };
            let Some(event) = Deadlines::timeout_event(kind, status) else { continue };
            let reason = match event {
                AfterSaleEvent::MerchantAnswerTimeout => "the merchant did not answer in time: approved",
                AfterSaleEvent::BuyerDisputeTimeout => "the rejection was not disputed in time: closed",
                AfterSaleEvent::BuyerShipTimeout => "the return was not shipped in time: closed",
                AfterSaleEvent::MerchantReceiveTimeout => "the merchant did not confirm the return in time: received",
                _ => "the merchant did not refund in time: refunded",
            };
            match self.move_after_sale(row.id, event, None, reason, AfterSaleChanges::default()).await {
                Ok(_) => moved += 1,
                Err(error) => {
                    // A record the timer cannot move (its units refunded meanwhile by another
                    // path, a store error) waits an hour before the next try, so it never
                    // crowds out the batch; its state and audit trail are untouched.
                    tracing::warn!(after_sale_id = row.id, %error, "an after-sale timer could not act; retrying later");
                    self.store().postpone_after_sale(row.id, row.due_at_ms, now_ms + TIMER_RETRY_MS).await?;
                }
            }
        }
        Ok(moved)
    }

    /// The after-sales of an order (requests, and price protection paid), for those who may see
    /// the order.
    pub async fn order_after_sales(
        &self,
        actor: &Actor,
        order_id: i64,
    ) -> AppResult<(Vec<AfterSaleRow>, Vec<ProtectionRow>)> {
        self.order_view(actor, order_id).await?;
        Ok((self.store().after_sales_of_order(order_id).await?, self.store().protections_of_order(order_id).await?))
    }

    /// The after-sale queue: operators see every shop's (or one's), a shop's staff their own
    /// shop's only (another shop's is 403); buyers use their orders' after-sales instead.
    pub async fn after_sale_queue(
        &self,
        actor: &Actor,
        merchant_id: Option<i64>,
        open_only: bool,
        before_id: Option<i64>,
        limit: i64,
    ) -> AppResult<Vec<AfterSaleRow>> {
        let scope = match (actor.is_operator(), actor.merchant_id, merchant_id) {
            (true, _, requested) => requested,
            (false, Some(own), None) => Some(own),
            (false, Some(own), Some(requested)) if requested == own => Some(own),
            (false, Some(_), Some(_)) => {
                return Err(AppError::Forbidden("staff see their own shop's after-sales only"));
            }
            (false, None, _) => {
                return Err(AppError::Forbidden("the after-sale queue is for operators and shop staff"));
            }
        };
        Ok(self.store().after_sale_queue(scope, open_only, before_id, limit).await?)
    }

    /// One after-sale with its audit trail and what it paid beyond the refund: the buyer, the
    /// shop's staff, operators.
    #[allow(clippy::type_complexity)]
    pub async fn after_sale_view(
        &self,
        actor: &Actor,
        id: i64,
    ) -> AppResult<(AfterSaleRow, Vec<AfterSaleEventRow>, Vec<xingqu_store::assurance::PayoutRow>)> {
        let row = self.store().after_sale(id).await?.ok_or(AppError::not_found("after_sale"))?;
        if row.buyer_user_id != actor.user_id && !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::not_found("after_sale"));
        }
        let events = self.store().after_sale_events(id).await?;
        let payouts = self.store().payouts_of(id).await?;
        Ok((row, events, payouts))
    }
}
