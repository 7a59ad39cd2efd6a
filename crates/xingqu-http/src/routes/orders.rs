//! Quotes, orders, payments and their callback, fulfilment, and flash sales.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, AuthActor, Id, IdempotencyKey, MaybeAuth};
use crate::time_format::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::coupons::redeem::{CouponChoice, CouponUse};
use xingqu_app::flash::{FlashOrder, FlashSaleInput};
use xingqu_app::orders::{AddressInput, CallbackOutcome, CartLineInput, CheckoutView, OrderView, PaymentRequest};
use xingqu_app::payments::PaymentCallback;
use xingqu_domain::catalog::page_limit;
use xingqu_domain::checkout::Quote;
use xingqu_store::orders::{FlashSalePhase, FlashSaleRow, LineRow, OrderRow, decode_address, decode_discounts};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_quote))
        .routes(routes!(list_orders, create_orders))
        .routes(routes!(get_order))
        .routes(routes!(order_events))
        .routes(routes!(pay_order))
        .routes(routes!(payment_callback))
        .routes(routes!(ship_order))
        .routes(routes!(deliver_order))
        .routes(routes!(confirm_receipt))
        .routes(routes!(cancel_order))
        .routes(routes!(create_flash_sale, list_flash_sales))
        .routes(routes!(get_flash_sale))
        .routes(routes!(end_flash_sale))
        .routes(routes!(flash_purchase))
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct CartLine {
    sku_id: i64,
    /// 1 to 99.
    quantity: i64,
}

impl From<CartLine> for CartLineInput {
    fn from(l: CartLine) -> Self {
        CartLineInput { sku_id: l.sku_id, quantity: l.quantity }
    }
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Address {
    name: String,
    phone: String,
    /// GB/T 2260 code of the delivery region.
    region_code: String,
    detail: String,
}

impl From<Address> for AddressInput {
    fn from(a: Address) -> Self {
        AddressInput { name: a.name, phone: a.phone, region_code: a.region_code, detail: a.detail }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// 1 to 50 lines, each SKU once.
    lines: Vec<CartLine>,
    /// Claim ids from your wallet to use (at most 10); `[]` for none. Absent: the combination
    /// that saves the most (signed-in buyers).
    coupons: Option<Vec<i64>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    lines: Vec<CartLine>,
    address: Address,
    /// As in the quote: claim ids, `[]` for none, absent for the best combination.
    coupons: Option<Vec<i64>>,
    /// The buyer confirms that products declaring `unsealed_no_return` (quality changes once
    /// unsealed) have no seven-day no-reason return; recorded on those lines.
    #[serde(default)]
    confirm_unsealed_no_return: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AppliedCouponResponse {
    /// The claim in your wallet.
    claim_id: i64,
    coupon_id: i64,
    /// shop, fan, platform or red_packet.
    class: String,
    off_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DiscountResponse {
    /// item_price, shop, platform or payment.
    lane: String,
    /// merchant, platform or creator.
    funder: String,
    /// flash_sale, shop_coupon, fan_coupon, platform_coupon or red_packet.
    source: String,
    amount_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct QuoteLineResponse {
    sku_id: i64,
    product_id: i64,
    quantity: i64,
    unit_price_fen: i64,
    list_total_fen: i64,
    discounts: Vec<DiscountResponse>,
    paid_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MerchantQuoteResponse {
    merchant_id: i64,
    lines: Vec<QuoteLineResponse>,
    goods_paid_fen: i64,
    shipping_fen: i64,
    total_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct QuoteResponse {
    /// One order per merchant.
    merchants: Vec<MerchantQuoteResponse>,
    total_fen: i64,
    /// The coupons used, in the order they apply.
    coupons: Vec<AppliedCouponResponse>,
    /// Why these coupons, when the quote chose them: how many combinations were compared.
    coupon_reason: Option<String>,
}

impl From<(Quote, CouponUse)> for QuoteResponse {
    fn from((q, used): (Quote, CouponUse)) -> Self {
        let merchants = q
            .merchants
            .into_iter()
            .map(|m| MerchantQuoteResponse {
                merchant_id: m.merchant_id,
                goods_paid_fen: m.goods_paid_fen,
                shipping_fen: m.shipping_fen,
                total_fen: m.total_fen,
                lines: m
                    .lines
                    .into_iter()
                    .map(|l| QuoteLineResponse {
                        sku_id: l.line.sku_id,
                        product_id: l.line.product_id,
                        quantity: l.line.quantity.units(),
                        unit_price_fen: l.line.unit_price_fen,
                        list_total_fen: l.list_total_fen,
                        discounts: l
                            .discounts
                            .into_iter()
                            .map(|d| DiscountResponse {
                                lane: d.lane.as_str().into(),
                                funder: d.funder.as_str().into(),
                                source: d.source.into(),
                                amount_fen: d.amount_fen,
                            })
                            .collect(),
                        paid_fen: l.paid_fen,
                    })
                    .collect(),
            })
            .collect();
        let coupons = used
            .applied
            .iter()
            .map(|(a, _)| AppliedCouponResponse {
                claim_id: a.claim_id,
                coupon_id: a.coupon_id,
                class: a.class.as_str().to_owned(),
                off_fen: a.off_fen,
            })
            .collect();
        Self { merchants, total_fen: q.total_fen, coupons, coupon_reason: used.reason }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderLineResponse {
    id: i64,
    sku_id: i64,
    product_id: i64,
    /// The product version the buyer saw.
    product_version: i64,
    title: String,
    quantity: i64,
    unit_price_fen: i64,
    list_total_fen: i64,
    discounts: Vec<DiscountResponse>,
    paid_fen: i64,
    /// none, within_48h, within_24h or same_day.
    dispatch_promise: String,
    /// The 安心购 services promised at purchase: the buyer's entitlements on this line.
    services: Vec<String>,
    /// Price protection promised at purchase: days (0: none) and where the window starts.
    price_protection_days: i64,
    price_protection_from: String,
    /// Return-shipping insurance: the most it pays back for the return's freight (0: none).
    insurance_cap_fen: i64,
    /// The buyer confirmed at checkout that this product (quality changes once unsealed) has no
    /// seven-day no-reason return.
    unsealed_no_return_confirmed: bool,
    /// Paid back since: refunds, units refunded, price protection, compensation.
    refunded_fen: i64,
    refunded_units: i64,
    protection_fen: i64,
    compensation_fen: i64,
}

impl From<LineRow> for OrderLineResponse {
    fn from(l: LineRow) -> Self {
        Self {
            id: l.id,
            sku_id: l.sku_id,
            product_id: l.product_id,
            product_version: l.product_version,
            title: l.title,
            quantity: l.quantity,
            unit_price_fen: l.unit_price_fen,
            list_total_fen: l.list_total_fen,
            discounts: decode_discounts(&l.discounts)
                .into_iter()
                .map(|(lane, funder, source, amount_fen)| DiscountResponse { lane, funder, source, amount_fen })
                .collect(),
            paid_fen: l.paid_fen,
            dispatch_promise: l.dispatch_promise,
            services: xingqu_store::assurance::decode_services(&l.services),
            price_protection_days: l.protect_window_days,
            price_protection_from: l.protect_from,
            insurance_cap_fen: l.insurance_cap_fen,
            unsealed_no_return_confirmed: l.unsealed_no_return_confirmed,
            refunded_fen: l.refunded_fen,
            refunded_units: l.returned_units,
            protection_fen: l.protection_fen,
            compensation_fen: l.compensation_fen,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderResponse {
    /// At most 53 bits: exact in JavaScript numbers.
    id: i64,
    checkout_id: i64,
    buyer_user_id: i64,
    merchant_id: i64,
    /// normal or flash_sale.
    trade_type: String,
    flash_sale_id: Option<i64>,
    /// created, paid, shipped, delivered, completed, cancelled or expired.
    status: String,
    goods_list_fen: i64,
    discount_fen: i64,
    shipping_fen: i64,
    total_fen: i64,
    paid_fen: i64,
    refunded_fen: i64,
    address: Address,
    dispatch_promise: String,
    dispatch_deadline: Option<String>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    created_at: String,
    /// An unpaid order releases its stock at this time.
    expires_at: String,
    paid_at: Option<String>,
    shipped_at: Option<String>,
    delivered_at: Option<String>,
    completed_at: Option<String>,
    closed_at: Option<String>,
    settled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<Vec<OrderLineResponse>>,
}

impl From<OrderRow> for OrderResponse {
    fn from(o: OrderRow) -> Self {
        let (name, phone, region_code, detail) = decode_address(&o.address);
        let time = |ms: Option<i64>| ms.map(rfc3339);
        Self {
            id: o.id,
            checkout_id: o.checkout_id,
            buyer_user_id: o.buyer_user_id,
            merchant_id: o.merchant_id,
            trade_type: o.trade_type,
            flash_sale_id: o.flash_sale_id,
            status: o.status,
            goods_list_fen: o.goods_list_fen,
            discount_fen: o.discount_fen,
            shipping_fen: o.shipping_fen,
            total_fen: o.total_fen,
            paid_fen: o.paid_fen,
            refunded_fen: o.refunded_fen,
            address: Address { name, phone, region_code, detail },
            dispatch_promise: o.dispatch_promise,
            dispatch_deadline: time(o.dispatch_deadline_ms),
            carrier: o.carrier,
            tracking_number: o.tracking_number,
            created_at: rfc3339(o.created_at_ms),
            expires_at: rfc3339(o.expires_at_ms),
            paid_at: time(o.paid_at_ms),
            shipped_at: time(o.shipped_at_ms),
            delivered_at: time(o.delivered_at_ms),
            completed_at: time(o.completed_at_ms),
            closed_at: time(o.closed_at_ms),
            settled_at: time(o.settled_at_ms),
            lines: None,
        }
    }
}

impl From<OrderView> for OrderResponse {
    fn from(view: OrderView) -> Self {
        let mut response = OrderResponse::from(view.order);
        response.lines = Some(view.lines.into_iter().map(Into::into).collect());
        response
    }
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutResponse {
    checkout_id: i64,
    total_fen: i64,
    orders: Vec<OrderResponse>,
}

impl From<CheckoutView> for CheckoutResponse {
    fn from(c: CheckoutView) -> Self {
        Self {
            checkout_id: c.checkout_id,
            total_fen: c.total_fen,
            orders: c.orders.into_iter().map(Into::into).collect(),
        }
    }
}

/// Prices a cart: per line the list price, each discount with its lane and funder, the paid
/// amount; per merchant the shipping. Reserves nothing.
#[utoipa::path(post, path = "/v1/quotes", tag = "orders", request_body = QuoteRequest,
    responses((status = 200, body = QuoteResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_quote(
    State(state): State<AppState>,
    auth: MaybeAuth,
    ApiJson(body): ApiJson<QuoteRequest>,
) -> ApiResult<Json<QuoteResponse>> {
    let lines: Vec<CartLineInput> = body.lines.into_iter().map(Into::into).collect();
    let choice = CouponChoice::from_request(body.coupons);
    Ok(Json(state.app.quote(auth.actor().as_ref(), &lines, &choice).await?.into()))
}

/// Places a cart as one order per merchant, reserving stock. Needs an `Idempotency-Key` header:
/// the same key and body return the same orders (200); another body under it is a 422.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", security(("bearer" = [])), request_body = OrderRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters, unique per order request"),
           ("X-Device-Id" = Option<String>, Header, description = "the buyer's device (1-64 of A-Z a-z 0-9 - _); the brushing rules use it")),
    responses((status = 201, body = CheckoutResponse), (status = 200, body = CheckoutResponse, description = "a retry"),
              (status = 409, body = ErrorBody, description = "out_of_stock, purchase_limit_exceeded"),
              (status = 422, body = ErrorBody, description = "idempotency_key_reused and invalid input")))]
async fn create_orders(
    State(state): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    headers: HeaderMap,
    ApiJson(body): ApiJson<OrderRequest>,
) -> ApiResult<(StatusCode, Json<CheckoutResponse>)> {
    let lines: Vec<CartLineInput> = body.lines.into_iter().map(Into::into).collect();
    let device_id = headers.get("x-device-id").map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    let choice = CouponChoice::from_request(body.coupons);
    let address = body.address.into();
    let actor = auth.user.actor();
    let checkout = state
        .app
        .create_orders(
            &actor,
            key.as_deref(),
            &lines,
            &address,
            &choice,
            body.confirm_unsealed_no_return,
            device_id.as_deref(),
        )
        .await?;
    let status = if checkout.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(checkout.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// A shop's orders (its staff, operators); without it, your own orders as a buyer.
    merchant_id: Option<i64>,
    /// Orders older than this id.
    before_id: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    items: Vec<OrderResponse>,
    next_before_id: Option<i64>,
}

/// Your orders (buyers), or a shop's (its staff; operators with `merchant_id`), newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", security(("bearer" = [])), params(OrderListQuery),
    responses((status = 200, body = OrderList), (status = 403, body = ErrorBody)))]
async fn list_orders(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<OrderListQuery>,
) -> ApiResult<Json<OrderList>> {
    let limit = page_limit(q.limit)?;
    let rows = state.app.list_orders(&auth.user.actor(), q.merchant_id, q.before_id, limit).await?;
    let next_before_id = if rows.len() == limit as usize { rows.last().map(|o| o.id) } else { None };
    Ok(Json(OrderList { items: rows.into_iter().map(Into::into).collect(), next_before_id }))
}

/// One order with its lines (its buyer, its shop's staff, operators).
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderResponse), (status = 404, body = ErrorBody)))]
async fn get_order(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<OrderResponse>> {
    Ok(Json(state.app.order_view(&auth.user.actor(), id).await?.into()))
}

/// Who moved the order between states, when and why.
#[utoipa::path(get, path = "/v1/orders/{id}/events", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = crate::routes::products::StatusLog), (status = 404, body = ErrorBody)))]
async fn order_events(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
) -> ApiResult<Json<crate::routes::products::StatusLog>> {
    let items = state.app.order_events(&auth.user.actor(), id).await?.into_iter().map(Into::into).collect();
    Ok(Json(crate::routes::products::StatusLog { items }))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    order_id: i64,
    amount_fen: i64,
    gateway_ref: String,
    /// Hex HMAC-SHA256 of `{order_id}|{amount_fen}|{gateway_ref}` with the gateway secret.
    signature: String,
}

impl From<PaymentCallback> for CallbackBody {
    fn from(c: PaymentCallback) -> Self {
        Self { order_id: c.order_id, amount_fen: c.amount_fen, gateway_ref: c.gateway_ref, signature: c.signature }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PaymentResponse {
    payment_id: i64,
    order_id: i64,
    amount_fen: i64,
    gateway: &'static str,
    /// For the `simulated` gateway: the signed callback it sends to
    /// `POST /v1/payments/simulated/callback` when the buyer pays.
    simulated_callback: Option<CallbackBody>,
}

impl From<PaymentRequest> for PaymentResponse {
    fn from(p: PaymentRequest) -> Self {
        Self {
            payment_id: p.payment_id,
            order_id: p.order_id,
            amount_fen: p.amount_fen,
            gateway: p.gateway,
            simulated_callback: p.simulated_callback.map(Into::into),
        }
    }
}

/// Starts paying an unpaid order (its buyer).
#[utoipa::path(post, path = "/v1/orders/{id}/pay", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = PaymentResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pay_order(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<PaymentResponse>> {
    Ok(Json(state.app.start_payment(&auth.user.actor(), id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct CallbackResponse {
    /// paid, already_paid, refunded_late (the order had closed; the money went back) or
    /// refunded_duplicate (a second payment for a paid order; the money went back).
    outcome: &'static str,
}

/// The simulated gateway's payment callback: signature and amount verified, idempotent.
#[utoipa::path(post, path = "/v1/payments/simulated/callback", tag = "orders", request_body = CallbackBody,
    responses((status = 200, body = CallbackResponse), (status = 401, body = ErrorBody, description = "invalid_signature"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "amount_mismatch")))]
async fn payment_callback(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CallbackBody>,
) -> ApiResult<Json<CallbackResponse>> {
    let callback = PaymentCallback {
        order_id: body.order_id,
        amount_fen: body.amount_fen,
        gateway_ref: body.gateway_ref,
        signature: body.signature,
    };
    let outcome = match state.app.payment_callback(&callback).await? {
        CallbackOutcome::Paid => "paid",
        CallbackOutcome::AlreadyPaid => "already_paid",
        CallbackOutcome::RefundedLate => "refunded_late",
        CallbackOutcome::RefundedDuplicate => "refunded_duplicate",
    };
    Ok(Json(CallbackResponse { outcome }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    carrier: String,
    tracking_number: String,
}

/// Ships a paid order (the shop's staff).
#[utoipa::path(post, path = "/v1/orders/{id}/ship", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ShipRequest,
    responses((status = 200, body = OrderResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ship_order(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ShipRequest>,
) -> ApiResult<Json<OrderResponse>> {
    Ok(Json(state.app.ship(&auth.user.actor(), id, &body.carrier, &body.tracking_number).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverRequest {
    /// When the buyer signed, RFC 3339; now when absent.
    signed_at: Option<String>,
}

/// Records delivery (the shop's staff or an operator, from the carrier's sign-off).
#[utoipa::path(post, path = "/v1/orders/{id}/deliver", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = DeliverRequest,
    responses((status = 200, body = OrderResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn deliver_order(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<DeliverRequest>,
) -> ApiResult<Json<OrderResponse>> {
    let signed_at_ms = match body.signed_at {
        None => None,
        Some(raw) => Some(crate::time_format::parse_rfc3339(&raw).ok_or_else(|| {
            xingqu_domain::Invalid::new(
                "signed_at",
                "invalid_time",
                "must be an RFC 3339 time such as 2026-11-11T10:00:00+08:00",
            )
        })?),
    };
    Ok(Json(state.app.deliver(&auth.user.actor(), id, signed_at_ms).await?.into()))
}

/// The buyer confirms receipt; the order completes.
#[utoipa::path(post, path = "/v1/orders/{id}/confirm-receipt", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm_receipt(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<OrderResponse>> {
    Ok(Json(state.app.confirm_receipt(&auth.user.actor(), id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    reason: String,
}

/// Cancels before shipment (buyer, shop staff, operator); a paid order is refunded in full.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = CancelRequest,
    responses((status = 200, body = OrderResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_order(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<CancelRequest>,
) -> ApiResult<Json<OrderResponse>> {
    Ok(Json(state.app.cancel(&auth.user.actor(), id, &body.reason).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlashSaleRequest {
    sku_id: i64,
    /// Below the SKU's list price.
    price_fen: i64,
    /// RFC 3339.
    starts_at: String,
    ends_at: String,
    /// Units set aside for the flash sale, apart from normal stock.
    pool_units: i64,
    per_user_limit: i64,
}

#[derive(Serialize, ToSchema)]
pub struct FlashSaleResponse {
    id: i64,
    sku_id: i64,
    merchant_id: i64,
    price_fen: i64,
    starts_at: String,
    /// When it stops selling: as scheduled, or when it was ended early (its start, when it was
    /// ended before it began).
    ends_at: String,
    pool_units: i64,
    /// Units not held by live orders.
    remaining_units: i64,
    per_user_limit: i64,
    /// upcoming, running, ended, or withdrawn (ended before its start: it never ran).
    status: &'static str,
    /// Set when the shop's staff or an operator ended it before its time.
    ended_early: Option<FlashSaleEndResponse>,
}

/// Who ended it is kept for the audit, not shown.
#[derive(Serialize, ToSchema)]
pub struct FlashSaleEndResponse {
    at: String,
    reason: String,
}

impl FlashSaleResponse {
    fn new(f: FlashSaleRow, now_ms: i64) -> Self {
        let status = FlashSalePhase::of(&f, now_ms).as_str();
        Self {
            id: f.id,
            sku_id: f.sku_id,
            merchant_id: f.merchant_id,
            price_fen: f.price_fen,
            starts_at: rfc3339(f.starts_at_ms),
            ends_at: rfc3339(f.ends_at_ms),
            pool_units: f.pool_units,
            remaining_units: f.remaining_units,
            per_user_limit: f.per_user_limit,
            status,
            ended_early: f.ended_early.map(|end| FlashSaleEndResponse { at: rfc3339(end.at_ms), reason: end.reason }),
        }
    }
}

/// Puts a SKU on flash sale (the shop's staff or an operator).
#[utoipa::path(post, path = "/v1/flash-sales", tag = "orders", security(("bearer" = [])), request_body = FlashSaleRequest,
    responses((status = 201, body = FlashSaleResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_flash_sale(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<FlashSaleRequest>,
) -> ApiResult<(StatusCode, Json<FlashSaleResponse>)> {
    let time = crate::time_format::time_field;
    let input = FlashSaleInput {
        sku_id: body.sku_id,
        price_fen: body.price_fen,
        starts_at_ms: time("starts_at", &body.starts_at)?,
        ends_at_ms: time("ends_at", &body.ends_at)?,
        pool_units: body.pool_units,
        per_user_limit: body.per_user_limit,
    };
    let sale = state.app.create_flash_sale(&auth.user.actor(), input).await?;
    Ok((StatusCode::CREATED, Json(FlashSaleResponse::new(sale, state.app.now_ms()))))
}

/// One flash sale.
#[utoipa::path(get, path = "/v1/flash-sales/{id}", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = FlashSaleResponse), (status = 404, body = ErrorBody)))]
async fn get_flash_sale(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<FlashSaleResponse>> {
    Ok(Json(FlashSaleResponse::new(state.app.flash_sale(id).await?, state.app.now_ms())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlashSaleListQuery {
    /// upcoming, running, ended or withdrawn; all when absent.
    status: Option<String>,
    merchant_id: Option<i64>,
    sku_id: Option<i64>,
    /// Sales older than this id.
    before_id: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct FlashSaleList {
    items: Vec<FlashSaleResponse>,
    next_before_id: Option<i64>,
}

/// Flash sales, newest first: the sale channel (anyone: sales of listed products of approved
/// shops), and a shop's own (its staff see all of theirs; operators see every sale).
#[utoipa::path(get, path = "/v1/flash-sales", tag = "orders", params(FlashSaleListQuery),
    responses((status = 200, body = FlashSaleList), (status = 422, body = ErrorBody)))]
async fn list_flash_sales(
    State(state): State<AppState>,
    viewer: MaybeAuth,
    ApiQuery(q): ApiQuery<FlashSaleListQuery>,
) -> ApiResult<Json<FlashSaleList>> {
    let limit = page_limit(q.limit)?;
    let viewer = viewer.actor();
    let rows = state
        .app
        .list_flash_sales(viewer.as_ref(), q.status.as_deref(), q.merchant_id, q.sku_id, (q.before_id, limit))
        .await?;
    let next_before_id = if rows.len() == limit as usize { rows.last().map(|f| f.id) } else { None };
    let now_ms = state.app.now_ms();
    Ok(Json(FlashSaleList {
        items: rows.into_iter().map(|f| FlashSaleResponse::new(f, now_ms)).collect(),
        next_before_id,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndFlashSaleRequest {
    /// Why, 1-200 characters (kept with the sale).
    reason: String,
}

/// Ends a flash sale before its time (the shop's staff or an operator): nobody is admitted after
/// the answer; orders placed before stand. Before its start, the sale is withdrawn and never runs.
/// Ending a sale already ended early returns it unchanged.
#[utoipa::path(post, path = "/v1/flash-sales/{id}/end", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = EndFlashSaleRequest,
    responses((status = 200, body = FlashSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "flash_sale_over"), (status = 422, body = ErrorBody)))]
async fn end_flash_sale(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<EndFlashSaleRequest>,
) -> ApiResult<Json<FlashSaleResponse>> {
    let sale = state.app.end_flash_sale(&auth.user.actor(), id, &body.reason).await?;
    Ok(Json(FlashSaleResponse::new(sale, state.app.now_ms())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlashPurchaseRequest {
    /// 1 to the flash sale's per-user limit.
    #[serde(default = "one")]
    quantity: i64,
    address: Address,
}

fn one() -> i64 {
    1
}

#[derive(Serialize, ToSchema)]
pub struct FlashOrderResponse {
    order_id: i64,
    flash_sale_id: i64,
    quantity: i64,
    total_fen: i64,
    /// created: pay it before it expires (`POST /v1/orders/{id}/pay`).
    status: &'static str,
}

impl FlashOrderResponse {
    /// The answer's JSON, the same text as serde_json writes for it (tested), written directly:
    /// every purchase of a sale is answered with one, and the generic serializer cost several
    /// times as much for five fields whose text needs no escaping.
    fn json(&self) -> String {
        let mut digits = itoa::Buffer::new();
        let mut json = String::with_capacity(128);
        json.push_str("{\"order_id\":");
        json.push_str(digits.format(self.order_id));
        json.push_str(",\"flash_sale_id\":");
        json.push_str(digits.format(self.flash_sale_id));
        json.push_str(",\"quantity\":");
        json.push_str(digits.format(self.quantity));
        json.push_str(",\"total_fen\":");
        json.push_str(digits.format(self.total_fen));
        // A constant of this module: plain ASCII, nothing to escape.
        json.push_str(",\"status\":\"");
        json.push_str(self.status);
        json.push_str("\"}");
        json
    }
}

impl From<FlashOrder> for FlashOrderResponse {
    fn from(o: FlashOrder) -> Self {
        Self {
            order_id: o.order_id,
            flash_sale_id: o.flash_sale_id,
            quantity: o.quantity,
            total_fen: o.total_fen,
            status: "created",
        }
    }
}

/// Buys from a flash sale. Needs an `Idempotency-Key` header. Answered once the order is durable.
#[utoipa::path(post, path = "/v1/flash-sales/{id}/orders", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path),
    ("Idempotency-Key" = String, Header, description = "1-64 characters, unique per purchase")), request_body = FlashPurchaseRequest,
    responses((status = 201, body = FlashOrderResponse), (status = 200, body = FlashOrderResponse, description = "a retry"),
              (status = 409, body = ErrorBody, description = "sold_out, purchase_limit_exceeded, flash_sale_not_active"),
              (status = 422, body = ErrorBody)))]
async fn flash_purchase(
    State(state): State<AppState>,
    AuthActor(actor): AuthActor,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<FlashPurchaseRequest>,
) -> ApiResult<(StatusCode, [(header::HeaderName, &'static str); 1], String)> {
    let order = state.app.flash_purchase(&actor, id, key.as_deref(), body.quantity, &body.address.into()).await?;
    let status = if order.created { StatusCode::CREATED } else { StatusCode::OK };
    let json = FlashOrderResponse::from(order).json();
    Ok((status, [(header::CONTENT_TYPE, "application/json")], json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_answer_is_the_json_serde_writes() {
        let extremes = [0, 1, -1, 42, i64::MAX, i64::MIN];
        for (i, order_id) in extremes.into_iter().enumerate() {
            let answer = FlashOrderResponse {
                order_id,
                flash_sale_id: extremes[(i + 1) % extremes.len()],
                quantity: extremes[(i + 2) % extremes.len()],
                total_fen: extremes[(i + 3) % extremes.len()],
                status: "created",
            };
            let expected = serde_json::to_string(&answer).unwrap_or_default();
            assert_eq!(answer.json(), expected);
            let parsed: serde_json::Value = serde_json::from_str(&answer.json()).unwrap_or_default();
            assert_eq!(parsed["order_id"], order_id);
        }
    }
}
