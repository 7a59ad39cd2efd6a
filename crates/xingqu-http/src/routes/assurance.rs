//! 安心购: merchants' enrolments and the operator's decision, and products' return policy.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id};
use crate::time_format::rfc3339;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_store::assurance::EnrolmentRow;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_enrolment, request_enrolment))
        .routes(routes!(decide_enrolment))
        .routes(routes!(enrolment_requests))
        .routes(routes!(set_return_policy))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    /// authenticity_guarantee, seven_day_return, express_refund, return_shipping_insurance and
    /// door_pickup (all required); optionally dispatch_same_day or dispatch_within_24h, and
    /// fresh_damage_compensation / cosmetics_allergy_return for those categories.
    services: Vec<String>,
    /// The return-shipping insurance premium per insured line, deducted at settlement.
    insurance_premium_fen: i64,
    /// The most the insurance pays back for one return's freight.
    insurance_cap_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentResponse {
    merchant_id: i64,
    /// pending, approved or rejected.
    status: String,
    services: Vec<String>,
    insurance_premium_fen: i64,
    insurance_cap_fen: i64,
    requested_at: String,
    decided_at: Option<String>,
    decision_reason: Option<String>,
}

impl From<EnrolmentRow> for EnrolmentResponse {
    fn from(e: EnrolmentRow) -> Self {
        Self {
            merchant_id: e.merchant_id,
            status: e.status,
            services: e.services,
            insurance_premium_fen: e.insurance_premium_fen,
            insurance_cap_fen: e.insurance_cap_fen,
            requested_at: rfc3339(e.requested_at_ms),
            decided_at: e.decided_at_ms.map(rfc3339),
            decision_reason: e.decision_reason,
        }
    }
}

/// A shop applies for 安心购 (its staff); an operator decides.
#[utoipa::path(put, path = "/v1/merchants/{id}/assurance", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = EnrolmentRequest,
    responses((status = 200, body = EnrolmentResponse), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "mandatory_service_missing, unknown_service, one_dispatch_promise, out_of_range")))]
async fn request_enrolment(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<EnrolmentRequest>,
) -> ApiResult<Json<EnrolmentResponse>> {
    let actor = auth.user.actor();
    let row = state
        .app
        .request_enrolment(&actor, id, &body.services, body.insurance_premium_fen, body.insurance_cap_fen)
        .await?;
    Ok(Json(row.into()))
}

/// A shop's 安心购 enrolment (its staff, operators).
#[utoipa::path(get, path = "/v1/merchants/{id}/assurance", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = EnrolmentResponse), (status = 404, body = ErrorBody)))]
async fn get_enrolment(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<EnrolmentResponse>> {
    Ok(Json(state.app.enrolment(&auth.user.actor(), id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentDecision {
    /// approve or reject.
    decision: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// pending (default: waiting for a decision), approved or rejected.
    status: Option<String>,
    /// 1 to 200; default 50.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentRequestItem {
    shop_name: String,
    #[serde(flatten)]
    enrolment: EnrolmentResponse,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentRequestList {
    items: Vec<EnrolmentRequestItem>,
}

/// The 安心购 queue (operators): shops' enrolments in a status, oldest request first.
#[utoipa::path(get, path = "/v1/assurance/requests", tag = "after-sales", security(("bearer" = [])), params(RequestsQuery),
    responses((status = 200, body = EnrolmentRequestList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "unknown_status, out_of_range")))]
async fn enrolment_requests(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<RequestsQuery>,
) -> ApiResult<Json<EnrolmentRequestList>> {
    let rows = state.app.enrolment_requests(&auth.user.actor(), q.status.as_deref(), q.limit).await?;
    let items =
        rows.into_iter().map(|(row, shop_name)| EnrolmentRequestItem { shop_name, enrolment: row.into() }).collect();
    Ok(Json(EnrolmentRequestList { items }))
}

/// An operator approves or rejects a pending 安心购 enrolment.
#[utoipa::path(post, path = "/v1/merchants/{id}/assurance/decision", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = EnrolmentDecision,
    responses((status = 200, body = EnrolmentResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not_pending"),
              (status = 422, body = ErrorBody, description = "invalid_decision")))]
async fn decide_enrolment(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<EnrolmentDecision>,
) -> ApiResult<Json<EnrolmentResponse>> {
    let approve = match body.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(xingqu_app::AppError::invalid("decision", "invalid_decision", "approve or reject").into()),
    };
    Ok(Json(state.app.decide_enrolment(&auth.user.actor(), id, approve, &body.reason).await?.into()))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnPolicy {
    /// The product's quality changes once unsealed: buyers who confirm it at checkout have no
    /// seven-day no-reason return on it.
    unsealed_no_return: bool,
}

/// Declares (or withdraws) that a product's quality changes once unsealed (its shop's staff).
/// Orders placed before keep what they were promised.
#[utoipa::path(put, path = "/v1/products/{id}/return-policy", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReturnPolicy,
    responses((status = 200, body = ReturnPolicy), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_return_policy(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReturnPolicy>,
) -> ApiResult<Json<ReturnPolicy>> {
    let unsealed_no_return = state.app.set_unsealed_no_return(&auth.user.actor(), id, body.unsealed_no_return).await?;
    Ok(Json(ReturnPolicy { unsealed_no_return }))
}
