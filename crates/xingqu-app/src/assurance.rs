//! 安心购 (assured purchase): enrolment and the operator's decision, the services snapshotted onto
//! each order line, express refunds, return-shipping insurance, door pickup, and compensation for
//! missed dispatch promises.

use crate::{App, AppError, AppResult};
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::after_sale::status::AfterSaleEvent;
use xingqu_domain::assurance::{Services, in_good_standing};
use xingqu_domain::catalog::CategoryFlags;
use xingqu_domain::ledger::{Account, Posting, PostingKind};
use xingqu_domain::text;
use xingqu_store::after_sales::{AfterSaleChanges, AfterSaleRow, LineForAfterSale};
use xingqu_store::assurance::{EnrolmentRow, PayoutRow, PickupRow, decode_services, encode_services};
use xingqu_store::orders::SkuForOrder;
use xingqu_store::{StoreError, Tx};

/// A premium or cap larger than this (1,000 元) is surely a typo.
const INSURANCE_FEN_MAX: i64 = 100_000;
const EXPRESS_REFUND_LOOK_BACK_MS: i64 = 90 * 86_400_000;
/// Orders the dispatch-compensation timer handles per run.
const DISPATCH_BATCH: i64 = 500;
/// Rows of the operator's 安心购 queue by default, and at most.
const ENROLMENT_PAGE_DEFAULT: i64 = 50;
const ENROLMENT_PAGE_MAX: i64 = 200;

/// What a line is promised under 安心购 at purchase.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineAssurance {
    pub services: String,
    pub insurance_premium_fen: i64,
    pub insurance_cap_fen: i64,
}

/// The services in force for a line of `sku` now: the merchant's approved 安心购 services for the
/// product's category, with the insurance policy when return-shipping insurance is one of them.
pub(crate) fn line_assurance(sku: &SkuForOrder) -> LineAssurance {
    let Some(Ok(services)) = sku.assurance_services.as_ref().map(|names| Services::parse(names)) else {
        return LineAssurance { services: "[]".to_owned(), ..LineAssurance::default() };
    };
    let flags =
        CategoryFlags { fresh: sku.category_fresh, cosmetics: sku.category_cosmetics, ..CategoryFlags::default() };
    let names = services.for_line(&flags);
    let insured = names.iter().any(|n| n == "return_shipping_insurance");
    LineAssurance {
        services: encode_services(&names),
        insurance_premium_fen: if insured { sku.insurance_premium_fen } else { 0 },
        insurance_cap_fen: if insured { sku.insurance_cap_fen } else { 0 },
    }
}

pub(crate) fn line_has(line: &LineForAfterSale, service: &str) -> bool {
    decode_services(&line.line.services).iter().any(|s| s == service)
}

impl App {
    /// A shop's staff apply for 安心购 with the services the shop offers and its
    /// return-shipping insurance terms; an operator decides.
    pub async fn request_enrolment(
        &self,
        actor: &Actor,
        merchant_id: i64,
        services: &[String],
        insurance_premium_fen: i64,
        insurance_cap_fen: i64,
    ) -> AppResult<EnrolmentRow> {
        if !(actor.role == Role::MerchantStaff && actor.merchant_id == Some(merchant_id)) {
            return Err(AppError::Forbidden("only the shop's staff apply for 安心购"));
        }
        let services = Services::parse(services)?;
        for (field, fen) in [("insurance_premium_fen", insurance_premium_fen), ("insurance_cap_fen", insurance_cap_fen)]
        {
            if !(0..=INSURANCE_FEN_MAX).contains(&fen) {
                return Err(AppError::invalid(field, "out_of_range", format!("0 to {INSURANCE_FEN_MAX} fen")));
            }
        }
        if insurance_cap_fen == 0 {
            return Err(AppError::invalid(
                "insurance_cap_fen",
                "out_of_range",
                "return-shipping insurance needs a cap",
            ));
        }
        let mut tx = self.store().begin().await?;
        tx.request_enrolment(
            merchant_id,
            services.names(),
            insurance_premium_fen,
            insurance_cap_fen,
            actor.user_id,
            self.now_ms(),
        )
        .await?;
        tx.commit().await?;
        self.store().enrolment(merchant_id).await?.ok_or_else(|| AppError::internal("enrolment vanished"))
    }

    /// An operator approves or rejects a pending enrolment. Orders placed from then on carry the
    /// services; orders placed before keep what they were promised.
    pub async fn decide_enrolment(
        &self,
        actor: &Actor,
        merchant_id: i64,
        approve: bool,
        reason: &str,
    ) -> AppResult<EnrolmentRow> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators decide 安心购 enrolments"));
        }
        let reason = text::bounded_or_empty("reason", reason, 200)?;
        self.store().enrolment(merchant_id).await?.ok_or(AppError::not_found("enrolment"))?;
        let mut tx = self.store().begin().await?;
        if !tx.decide_enrolment(merchant_id, approve, actor.user_id, &reason, self.now_ms()).await? {
            return Err(AppError::conflict("not_pending", "the enrolment is not waiting for a decision"));
        }
        tx.commit().await?;
        self.store().enrolment(merchant_id).await?.ok_or_else(|| AppError::internal("enrolment vanished"))
    }

    /// The operator's 安心购 queue: enrolments in `status` (default `pending`: waiting for a
    /// decision), oldest request first, each with its shop's name.
    pub async fn enrolment_requests(
        &self,
        actor: &Actor,
        status: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<Vec<(EnrolmentRow, String)>> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators see the 安心购 queue"));
        }
        let status = status.unwrap_or("pending");
        if !["pending", "approved", "rejected"].contains(&status) {
            return Err(AppError::invalid("status", "unknown_status", "one of pending, approved, rejected"));
        }
        let limit = limit.unwrap_or(ENROLMENT_PAGE_DEFAULT);
        if !(1..=ENROLMENT_PAGE_MAX).contains(&limit) {
            return Err(AppError::invalid("limit", "out_of_range", format!("1 to {ENROLMENT_PAGE_MAX}")));
        }
        Ok(self.store().enrolments_by_status(status, limit).await?)
    }

    /// A shop's enrolment: its staff and operators.
    pub async fn enrolment(&self, actor: &Actor, merchant_id: i64) -> AppResult<EnrolmentRow> {
        if !actor.manages_merchant(merchant_id) {
            return Err(AppError::not_found("enrolment"));
        }
        self.store().enrolment(merchant_id).await?.ok_or(AppError::not_found("enrolment"))
    }

    /// Express refund (极速退款), inside the transaction that records the return's shipment: a
    /// line promised it, for a buyer in good standing, is refunded now, before the goods arrive.
    /// Returns the refund to send after commit.
    pub(crate) async fn express_refund(
        &self,
        tx: &mut Tx,
        row: &AfterSaleRow,
        now_ms: i64,
    ) -> AppResult<Option<crate::after_sales::PaidBack>> {
        let line = tx.line_for_after_sale(row.line_id).await?.ok_or_else(|| AppError::internal("after-sale's line"))?;
        if !line_has(&line, "express_refund") || row.express_refunded_at_ms.is_some() {
            return Ok(None);
        }
        let lost = tx.lost_after_sales_since(row.buyer_user_id, now_ms - EXPRESS_REFUND_LOOK_BACK_MS).await?;
        if !in_good_standing(lost, self.config().express_refund_max_lost) {
            return Ok(None);
        }
        let kind = xingqu_domain::after_sale::status::AfterSaleKind::parse(&row.kind)
            .map_err(|_| AppError::internal("stored after-sale kind"))?;
        let paid = self.pay_after_sale(tx, row, kind, now_ms).await?;
        tx.mark_express_refunded(row.id, paid.fen, now_ms).await?;
        Ok(Some(paid))
    }

    /// Return-shipping insurance (运费险), inside the transaction that completes a return-refund:
    /// the buyer's return freight up to the policy's cap, from the insurance pool, once.
    pub(crate) async fn insurance_payout(&self, tx: &mut Tx, row: &AfterSaleRow, now_ms: i64) -> AppResult<bool> {
        if row.return_tracking.is_none() || row.return_freight_fen <= 0 {
            return Ok(false);
        }
        let line = tx.line_for_after_sale(row.line_id).await?.ok_or_else(|| AppError::internal("after-sale's line"))?;
        let amount_fen = row.return_freight_fen.min(line.line.insurance_cap_fen);
        if amount_fen <= 0 {
            return Ok(false);
        }
        match tx.insert_payout(row.id, "return_shipping_insurance", row.order_id, amount_fen, now_ms).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        let posting = Posting::new(
            PostingKind::Compensation,
            vec![(Account::InsurancePool, amount_fen), (Account::Refunds, -amount_fen)],
        )
        .map_err(|e| AppError::internal(e.to_string()))?;
        tx.post(&posting, &format!("return_shipping_insurance:after_sale:{}", row.id), Some(row.order_id), now_ms)
            .await?;
        Ok(true)
    }

    /// Counterfeit compensation (假一赔N), inside the transaction that decides a counterfeit claim
    /// for the buyer: the configured multiple of the units' payment on top of the refund, borne by
    /// the merchant. It is a penalty beyond the price, so it is not part of the line's paid-back
    /// total (which never exceeds what was paid).
    pub(crate) async fn counterfeit_compensation(
        &self,
        tx: &mut Tx,
        row: &AfterSaleRow,
        now_ms: i64,
    ) -> AppResult<bool> {
        let line = tx.line_for_after_sale(row.line_id).await?.ok_or_else(|| AppError::internal("after-sale's line"))?;
        let units_paid_fen = i128::from(line.line.paid_fen) * i128::from(row.units) / i128::from(line.line.quantity);
        let amount_fen = i64::try_from(units_paid_fen * i128::from(self.config().counterfeit_multiple)).unwrap_or(0);
        if amount_fen <= 0 {
            return Ok(false);
        }
        match tx.insert_payout(row.id, "counterfeit_compensation", row.order_id, amount_fen, now_ms).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        let account = if line.settled {
            Account::MerchantSettlement(line.merchant_id)
        } else {
            Account::MerchantReceivable(line.merchant_id)
        };
        let posting = Posting::paid_back(PostingKind::Compensation, account, amount_fen, 0)
            .map_err(|e| AppError::internal(e.to_string()))?;
        tx.post(&posting, &format!("counterfeit_compensation:after_sale:{}", row.id), Some(row.order_id), now_ms)
            .await?;
        Ok(true)
    }

    pub(crate) async fn send_payout(&self, payout: &PayoutRow) -> bool {
        let reference = format!("{}:after_sale:{}", payout.kind, payout.after_sale_id);
        let Ok(gateway_ref) = self.gateway().refund(payout.order_id, payout.amount_fen, &reference) else {
            return false;
        };
        let marked = async {
            let mut tx = self.store().begin().await?;
            tx.mark_payout_sent(payout.after_sale_id, &payout.kind, &gateway_ref).await?;
            tx.commit().await
        };
        marked.await.is_ok()
    }

    /// The buyer books a door pickup (上门取件) for a return awaiting shipment, when the line was
    /// promised it: an address and a time slot.
    pub async fn book_pickup(
        &self,
        actor: &Actor,
        id: i64,
        address: &crate::orders::AddressInput,
        slot: (i64, i64),
    ) -> AppResult<PickupRow> {
        let row = self.store().after_sale(id).await?.ok_or(AppError::not_found("after_sale"))?;
        if row.buyer_user_id != actor.user_id {
            return Err(AppError::not_found("after_sale"));
        }
        if row.status != "awaiting_return" {
            return Err(AppError::conflict("not_awaiting_return", "a pickup is booked for an approved return"));
        }
        let now_ms = self.now_ms();
        if slot.0 < now_ms || slot.1 <= slot.0 || slot.1 - slot.0 > 4 * 3_600_000 {
            return Err(AppError::invalid("slot", "out_of_range", "a future slot of at most 4 hours"));
        }
        let address = crate::orders::parse_address(address)?;
        let mut tx = self.store().begin().await?;
        let line = tx.line_for_after_sale(row.line_id).await?.ok_or_else(|| AppError::internal("after-sale's line"))?;
        if !line_has(&line, "door_pickup") {
            return Err(AppError::conflict("no_door_pickup", "this purchase was not promised door pickup"));
        }
        match tx.insert_pickup(id, &address, slot, now_ms).await {
            Err(StoreError::Conflict { .. }) => {
                return Err(AppError::conflict("pickup_booked", "a pickup is already booked for this return"));
            }
            other => other?,
        }
        tx.commit().await?;
        self.store().pickup(id).await?.ok_or_else(|| AppError::internal("pickup vanished"))
    }

    /// The carrier collected a booked pickup (recorded by the shop's staff or an operator for
    /// the carrier): the return counts as shipped with the carrier's tracking number.
    pub async fn pickup_collected(
        &self,
        actor: &Actor,
        id: i64,
        carrier: &str,
        tracking_number: &str,
        freight_fen: i64,
    ) -> AppResult<AfterSaleRow> {
        let row = self.store().after_sale(id).await?.ok_or(AppError::not_found("after_sale"))?;
        if !actor.manages_merchant(row.merchant_id) {
            return Err(AppError::not_found("after_sale"));
        }
        let carrier = text::bounded("carrier", carrier, 40)?;
        let tracking = text::bounded("tracking_number", tracking_number, 40)?;
        let changes = AfterSaleChanges {
            return_carrier: Some(carrier.clone()),
            return_tracking: Some(tracking.clone()),
            return_freight_fen: Some(crate::after_sales::freight(freight_fen)?),
            ..AfterSaleChanges::default()
        };
        let pickup = PickupCollected { carrier, tracking };
        self.move_after_sale_with(
            id,
            AfterSaleEvent::BuyerShipReturn,
            Some(actor.user_id),
            "collected at the door",
            changes,
            Some(pickup),
        )
        .await
    }

    /// Compensates every paid order whose dispatch promise passed unshipped, once each, funded by
    /// the merchant: a share of each line's payment, within what the line has not paid back.
    pub(crate) async fn compensate_missed_dispatch(&self, now_ms: i64) -> AppResult<usize> {
        let mut done = 0;
        for order_id in self.store().due_dispatch_compensations(now_ms, DISPATCH_BATCH).await? {
            match self.compensate_order(order_id, now_ms).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(order_id, %error, "dispatch compensation failed; retrying next run"),
            }
        }
        Ok(done)
    }

    async fn compensate_order(&self, order_id: i64, now_ms: i64) -> AppResult<bool> {
        let mut tx = self.store().begin().await?;
        if !tx.mark_dispatch_compensated(order_id, now_ms).await? {
            return Ok(false);
        }
        let lines = tx.lines_for_after_sale(order_id).await?;
        let Some(first) = lines.first() else { return Ok(false) };
        let (merchant_id, settled) = (first.merchant_id, first.settled);
        let bps = self.config().dispatch_compensation_bps;
        let mut total_fen = 0;
        for line in &lines {
            let l = &line.line;
            let remaining = l.paid_fen - l.refunded_fen - l.protection_fen - l.compensation_fen;
            let fen = (i64::try_from(i128::from(l.paid_fen) * i128::from(bps) / 10_000).unwrap_or(0)).min(remaining);
            if fen > 0 {
                tx.add_line_paid_back(l.id, 0, 0, fen).await?;
                total_fen += fen;
            }
        }
        let reference = format!("dispatch:order:{order_id}");
        if total_fen > 0 {
            let account = if settled {
                Account::MerchantSettlement(merchant_id)
            } else {
                Account::MerchantReceivable(merchant_id)
            };
            let posting = Posting::paid_back(PostingKind::Compensation, account, total_fen, 0)
                .map_err(|e| AppError::internal(e.to_string()))?;
            tx.post(&posting, &reference, Some(order_id), now_ms).await?;
            tx.insert_refund(order_id, total_fen, &reference, "dispatch promise missed", now_ms).await?;
        }
        tx.commit().await?;
        if total_fen > 0 {
            self.send_refund(&reference, order_id, total_fen).await;
        }
        Ok(true)
    }

    /// After-sale payouts the gateway has not accepted yet.
    pub(crate) async fn send_pending_after_sale_payouts(&self) -> AppResult<usize> {
        let mut sent = 0;
        for payout in self.store().pending_payouts(DISPATCH_BATCH).await? {
            sent += usize::from(self.send_payout(&payout).await);
        }
        Ok(sent)
    }
}

/// A pickup's collection, applied with the return's shipment.
pub(crate) struct PickupCollected {
    pub carrier: String,
    pub tracking: String,
}
