//! After-sale requests and their actions (answers, disputes, arbitration, returns, door pickup),
//! an order's after-sales, and the after-sale queue of operators and shop staff.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id, IdempotencyKey};
use crate::routes::orders::Address;
use crate::time_format::rfc3339;
use crate::time_format::time_field as time;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::after_sales::AfterSaleInput;
use xingqu_store::after_sales::{AfterSaleEventRow, AfterSaleRow, decode_evidence};
use xingqu_store::assurance::PickupRow;
use xingqu_store::price_protection::ProtectionRow;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(order_after_sales, request_after_sale))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(dispute))
        .routes(routes!(arbitrate))
        .routes(routes!(ship_return))
        .routes(routes!(receive))
        .routes(routes!(refund))
        .routes(routes!(fulfil))
        .routes(routes!(withdraw))
        .routes(routes!(book_pickup))
        .routes(routes!(pickup_collected))
        .routes(routes!(get_after_sale))
        .routes(routes!(after_sale_queue))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// Operators: one shop's queue. Staff: their own shop (another shop's id is 403).
    merchant_id: Option<i64>,
    /// open (default: not refunded, resolved or closed) or all.
    status: Option<String>,
    /// Return requests older than this id.
    before_id: Option<i64>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AfterSaleQueue {
    items: Vec<AfterSaleResponse>,
}

/// The after-sale queue, newest first: every shop's for operators (or one's with
/// `merchant_id`), the shop's own for its staff.
#[utoipa::path(get, path = "/v1/after-sales", tag = "after-sales", security(("bearer" = [])), params(QueueQuery),
    responses((status = 200, body = AfterSaleQueue), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn after_sale_queue(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Json<AfterSaleQueue>> {
    let open_only = match q.status.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => return Err(xingqu_domain::Invalid::new("status", "unknown_status", "must be open or all").into()),
    };
    let limit = i64::from(xingqu_domain::catalog::page_limit(q.limit)?);
    let rows = state.app.after_sale_queue(&auth.user.actor(), q.merchant_id, open_only, q.before_id, limit).await?;
    Ok(Json(AfterSaleQueue { items: rows.into_iter().map(Into::into).collect() }))
}

/// Who bears an after-sale's amount.
#[derive(Serialize, ToSchema)]
pub struct Bearer {
    /// merchant or platform.
    party: &'static str,
    amount_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AfterSaleResponse {
    id: i64,
    /// Where the record lives: `/v1/after-sales/{id}` for requests, `/v1/price-protections/{id}`
    /// for price protection paid.
    href: String,
    order_id: i64,
    line_id: i64,
    /// refund_before_shipment, refund_without_return, return_refund, exchange, reship, repair,
    /// price_protection, fresh_damage, allergy_return, counterfeit.
    kind: String,
    status: String,
    units: i64,
    /// What goes back to the buyer.
    amount_fen: i64,
    bearers: Vec<Bearer>,
    /// Price protection: the price change it pays for.
    price_change_id: Option<i64>,
    /// Price protection: whether the buyer claimed it (else the platform paid it by itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    claimed: Option<bool>,
    reason: String,
    /// Photo URLs the buyer sent.
    evidence: Vec<String>,
    /// When the next deadline acts on it, if any.
    due_at: Option<String>,
    return_carrier: Option<String>,
    return_tracking: Option<String>,
    /// What shipping the return cost the buyer.
    return_freight_fen: i64,
    /// When an express refund (极速退款) paid, before the goods arrived.
    express_refunded_at: Option<String>,
    /// The shop's shipment of the replacement or repaired goods (re-ship, exchange, repair).
    replacement_carrier: Option<String>,
    replacement_tracking: Option<String>,
    /// Price protection: pending (recorded, going out through the gateway) or sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    payout: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<AfterSaleRow> for AfterSaleResponse {
    fn from(a: AfterSaleRow) -> Self {
        let bearers = [("merchant", a.merchant_fen), ("platform", a.platform_fen)]
            .into_iter()
            .filter(|&(_, fen)| fen > 0)
            .map(|(party, amount_fen)| Bearer { party, amount_fen })
            .collect();
        Self {
            id: a.id,
            href: format!("/v1/after-sales/{}", a.id),
            order_id: a.order_id,
            line_id: a.line_id,
            kind: a.kind,
            status: a.status,
            units: a.units,
            amount_fen: a.amount_fen,
            bearers,
            price_change_id: None,
            claimed: None,
            evidence: decode_evidence(&a.evidence),
            reason: a.reason,
            due_at: a.due_at_ms.map(rfc3339),
            return_carrier: a.return_carrier,
            return_tracking: a.return_tracking,
            return_freight_fen: a.return_freight_fen,
            express_refunded_at: a.express_refunded_at_ms.map(rfc3339),
            replacement_carrier: a.replacement_carrier,
            replacement_tracking: a.replacement_tracking,
            payout: None,
            created_at: rfc3339(a.created_at_ms),
            updated_at: rfc3339(a.updated_at_ms),
        }
    }
}

impl From<ProtectionRow> for AfterSaleResponse {
    fn from(p: ProtectionRow) -> Self {
        let bearers = [("merchant", p.merchant_fen()), ("platform", p.platform_fen)]
            .into_iter()
            .filter(|&(_, fen)| fen > 0)
            .map(|(party, amount_fen)| Bearer { party, amount_fen })
            .collect();
        Self {
            id: p.id,
            href: format!("/v1/price-protections/{}", p.id),
            order_id: p.order_id,
            line_id: p.line_id,
            kind: "price_protection".to_owned(),
            status: "refunded".to_owned(),
            units: p.units,
            amount_fen: p.amount_fen,
            bearers,
            price_change_id: Some(p.drop_id),
            claimed: Some(p.created_by.is_some()),
            reason: if p.flash_sale_id != 0 {
                format!("flash sale {} sells it for less", p.flash_sale_id)
            } else if p.zone_entry_id != 0 && p.coupon_id != 0 {
                format!(
                    "the campaign price {} fen less shop coupon {} brings it to {} fen",
                    p.campaign_price_fen,
                    p.coupon_id,
                    p.campaign_price_fen - p.coupon_off_fen
                )
            } else if p.zone_entry_id != 0 {
                format!("campaign entry {} sells it for {} fen", p.zone_entry_id, p.campaign_price_fen)
            } else if p.coupon_id != 0 {
                format!("shop coupon {} brings it to {} fen", p.coupon_id, p.new_price_fen - p.coupon_off_fen)
            } else {
                format!("the price dropped to {} fen", p.new_price_fen)
            },
            evidence: Vec::new(),
            due_at: None,
            return_carrier: None,
            return_tracking: None,
            return_freight_fen: 0,
            express_refunded_at: None,
            replacement_carrier: None,
            replacement_tracking: None,
            payout: Some(p.payout_status),
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.created_at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AfterSaleEvent {
    from_status: String,
    to_status: String,
    actor_user_id: Option<i64>,
    reason: String,
    at: String,
}

impl From<AfterSaleEventRow> for AfterSaleEvent {
    fn from(e: AfterSaleEventRow) -> Self {
        Self {
            from_status: e.from_status,
            to_status: e.to_status,
            actor_user_id: e.actor_user_id,
            reason: e.reason,
            at: rfc3339(e.at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AfterSaleDetail {
    #[serde(flatten)]
    after_sale: AfterSaleResponse,
    events: Vec<AfterSaleEvent>,
    /// Paid beyond the refund: return_shipping_insurance, counterfeit_compensation.
    payouts: Vec<Payout>,
}

#[derive(Serialize, ToSchema)]
pub struct Payout {
    kind: String,
    amount_fen: i64,
    /// pending or sent.
    status: String,
}

/// The after-sales of an order, oldest first: requests, then price protection paid (its buyer,
/// the shop's staff, operators).
#[utoipa::path(get, path = "/v1/orders/{id}/after-sales", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = Vec<AfterSaleResponse>), (status = 404, body = ErrorBody)))]
async fn order_after_sales(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
) -> ApiResult<Json<Vec<AfterSaleResponse>>> {
    let (requests, protections) = state.app.order_after_sales(&auth.user.actor(), id).await?;
    Ok(Json(requests.into_iter().map(Into::into).chain(protections.into_iter().map(Into::into)).collect()))
}

/// One after-sale with its audit trail (who, when, why).
#[utoipa::path(get, path = "/v1/after-sales/{id}", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = AfterSaleDetail), (status = 404, body = ErrorBody)))]
async fn get_after_sale(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<AfterSaleDetail>> {
    let (row, events, payouts) = state.app.after_sale_view(&auth.user.actor(), id).await?;
    let payouts = payouts
        .into_iter()
        .map(|p| Payout { kind: p.kind, amount_fen: p.amount_fen, status: p.payout_status })
        .collect();
    Ok(Json(AfterSaleDetail { after_sale: row.into(), events: events.into_iter().map(Into::into).collect(), payouts }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterSaleRequest {
    line_id: i64,
    /// refund_before_shipment, refund_without_return, return_refund, exchange, reship, repair,
    /// fresh_damage, allergy_return or counterfeit.
    kind: String,
    /// Units of the line it is about.
    units: i64,
    reason: String,
    /// Photo URLs (https): required for returns of defective goods, fresh damage, allergy
    /// returns and counterfeit claims.
    #[serde(default)]
    evidence: Vec<String>,
    /// A seven-day no-reason return (七天无理由): no photos, but the window and the legal
    /// exclusions apply.
    #[serde(default)]
    no_reason: bool,
}

/// Asks for an after-sale on a line of your order. With an `Idempotency-Key`, a retry returns the
/// first request (200). The merchant answers within the deadline (48 hours by default) or the
/// request is approved by itself.
#[utoipa::path(post, path = "/v1/orders/{id}/after-sales", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    request_body = AfterSaleRequest,
    responses((status = 201, body = AfterSaleResponse), (status = 200, body = AfterSaleResponse, description = "a retry"),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not_before_shipment, not_shipped, not_delivered, return_window_closed, no_reason_return_excluded, claim_window_closed, not_fresh, not_cosmetics, nothing_paid"),
              (status = 422, body = ErrorBody, description = "invalid_after_sale_kind, out_of_range, evidence_required")))]
async fn request_after_sale(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<AfterSaleRequest>,
) -> ApiResult<(StatusCode, Json<AfterSaleResponse>)> {
    let input = AfterSaleInput {
        line_id: body.line_id,
        kind: body.kind,
        units: body.units,
        reason: body.reason,
        evidence: body.evidence,
        no_reason: body.no_reason,
    };
    let (row, created) = state.app.request_after_sale(&auth.user.actor(), id, key.as_deref(), &input).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(row.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArbitrationRequest {
    /// buyer or merchant: who the operator finds for.
    decision: String,
    reason: String,
}

/// The merchant's shipment of a replacement or repaired goods.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRequest {
    carrier: String,
    tracking_number: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnShipmentRequest {
    carrier: String,
    tracking_number: String,
    /// What shipping the return cost, in 分 (return-shipping insurance pays it back up to its cap).
    #[serde(default)]
    freight_fen: i64,
}

/// The shop approves a request: a refund without return is paid at once; a return waits for the
/// goods (the buyer has 7 days to ship them).
#[utoipa::path(post, path = "/v1/after-sales/{id}/approve", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn approve(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.answer_after_sale(&auth.user.actor(), id, true, "").await?.into()))
}

/// The shop rejects a request, saying why; the buyer may dispute it.
#[utoipa::path(post, path = "/v1/after-sales/{id}/reject", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn reject(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.answer_after_sale(&auth.user.actor(), id, false, &body.reason).await?.into()))
}

/// The buyer takes a rejection to operator arbitration.
#[utoipa::path(post, path = "/v1/after-sales/{id}/dispute", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn dispute(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.dispute_after_sale(&auth.user.actor(), id, &body.reason).await?.into()))
}

/// An operator settles a dispute or a counterfeit claim.
#[utoipa::path(post, path = "/v1/after-sales/{id}/arbitrate", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ArbitrationRequest,
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition"),
              (status = 422, body = ErrorBody, description = "invalid_decision")))]
async fn arbitrate(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ArbitrationRequest>,
) -> ApiResult<Json<AfterSaleResponse>> {
    let for_buyer = match body.decision.as_str() {
        "buyer" => true,
        "merchant" => false,
        _ => {
            return Err(xingqu_app::AppError::invalid("decision", "invalid_decision", "buyer or merchant").into());
        }
    };
    Ok(Json(state.app.arbitrate_after_sale(&auth.user.actor(), id, for_buyer, &body.reason).await?.into()))
}

/// The buyer ships the goods back.
#[utoipa::path(post, path = "/v1/after-sales/{id}/return-shipment", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReturnShipmentRequest,
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn ship_return(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReturnShipmentRequest>,
) -> ApiResult<Json<AfterSaleResponse>> {
    let actor = auth.user.actor();
    Ok(Json(state.app.ship_return(&actor, id, &body.carrier, &body.tracking_number, body.freight_fen).await?.into()))
}

/// The shop confirms the return arrived; it refunds within 7 days or the refund is made by itself.
#[utoipa::path(post, path = "/v1/after-sales/{id}/receive", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn receive(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.receive_return(&auth.user.actor(), id).await?.into()))
}

/// The shop refunds a received return.
#[utoipa::path(post, path = "/v1/after-sales/{id}/refund", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn refund(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.refund_after_sale(&auth.user.actor(), id).await?.into()))
}

/// The shop shipped the replacement (re-ship, exchange) or the repaired goods (repair).
#[utoipa::path(post, path = "/v1/after-sales/{id}/fulfil", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ShipmentRequest,
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn fulfil(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ShipmentRequest>,
) -> ApiResult<Json<AfterSaleResponse>> {
    let actor = auth.user.actor();
    Ok(Json(state.app.fulfil_after_sale(&actor, id, &body.carrier, &body.tracking_number).await?.into()))
}

/// The buyer withdraws a request.
#[utoipa::path(post, path = "/v1/after-sales/{id}/withdraw", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AfterSaleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_transition")))]
async fn withdraw(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.withdraw_after_sale(&auth.user.actor(), id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupRequest {
    /// Where the carrier collects the goods.
    address: Address,
    /// The time slot, RFC 3339: at most 4 hours, in the future.
    slot_starts_at: String,
    slot_ends_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct PickupResponse {
    after_sale_id: i64,
    /// requested or collected.
    status: String,
    slot_starts_at: String,
    slot_ends_at: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
}

impl From<PickupRow> for PickupResponse {
    fn from(p: PickupRow) -> Self {
        Self {
            after_sale_id: p.after_sale_id,
            status: p.status,
            slot_starts_at: rfc3339(p.slot_starts_at_ms),
            slot_ends_at: rfc3339(p.slot_ends_at_ms),
            carrier: p.carrier,
            tracking_number: p.tracking_number,
        }
    }
}

/// Books a door pickup (上门取件) for an approved return, when the purchase was promised it.
#[utoipa::path(post, path = "/v1/after-sales/{id}/pickup", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = PickupRequest,
    responses((status = 201, body = PickupResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not_awaiting_return, no_door_pickup, pickup_booked"),
              (status = 422, body = ErrorBody, description = "out_of_range, invalid_time")))]
async fn book_pickup(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<PickupRequest>,
) -> ApiResult<(StatusCode, Json<PickupResponse>)> {
    let slot = (time("slot_starts_at", &body.slot_starts_at)?, time("slot_ends_at", &body.slot_ends_at)?);
    let pickup = state.app.book_pickup(&auth.user.actor(), id, &body.address.into(), slot).await?;
    Ok((StatusCode::CREATED, Json(pickup.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectedRequest {
    carrier: String,
    tracking_number: String,
    /// What the carrier charged the buyer, in 分.
    #[serde(default)]
    freight_fen: i64,
}

/// The carrier collected a booked pickup (the shop's staff or an operator record it for the
/// carrier): the return counts as shipped.
#[utoipa::path(post, path = "/v1/after-sales/{id}/pickup/collected", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = CollectedRequest,
    responses((status = 200, body = AfterSaleResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "no_pickup_booked, invalid_transition")))]
async fn pickup_collected(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<CollectedRequest>,
) -> ApiResult<Json<AfterSaleResponse>> {
    let actor = auth.user.actor();
    let row = state.app.pickup_collected(&actor, id, &body.carrier, &body.tracking_number, body.freight_fen).await?;
    Ok(Json(row.into()))
}
