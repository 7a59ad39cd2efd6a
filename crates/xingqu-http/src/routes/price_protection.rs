//! Price protection: SKUs' policies, buyers' claims, and the payments.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth, Id};
use crate::routes::after_sales::AfterSaleResponse;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::price_protection::ProtectionInput;
use xingqu_store::price_protection::ProtectionPolicy;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_price_protection))
        .routes(routes!(claim_price_protection))
        .routes(routes!(get_price_protection))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectionRequest {
    /// 0 (no protection), 7, 15, 30 or 90 days.
    window_days: i64,
    /// Where the window starts: `placement` (default) or `sign_off`.
    from: Option<String>,
    /// A price cut pays every eligible line by itself, without a claim.
    #[serde(default)]
    auto: bool,
    /// The platform's share of protection, in basis points (operators only).
    platform_bps: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ProtectionResponse {
    window_days: i64,
    from: String,
    auto: bool,
    platform_bps: i64,
}

impl From<ProtectionPolicy> for ProtectionResponse {
    fn from(p: ProtectionPolicy) -> Self {
        Self { window_days: p.window_days, from: p.from, auto: p.auto, platform_bps: p.platform_bps }
    }
}

/// Sets a SKU's price protection (the shop's staff; the platform's share: operators). Orders
/// placed from now on carry it; orders placed before keep what they were promised.
#[utoipa::path(put, path = "/v1/skus/{id}/price-protection", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ProtectionRequest,
    responses((status = 200, body = ProtectionResponse), (status = 400, body = ErrorBody, description = "invalid_protection_window"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_price_protection(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ProtectionRequest>,
) -> ApiResult<Json<ProtectionResponse>> {
    let input = ProtectionInput {
        window_days: body.window_days,
        from: body.from,
        auto: body.auto,
        platform_bps: body.platform_bps,
    };
    Ok(Json(state.app.set_price_protection(&auth.user.actor(), id, &input).await?.into()))
}

/// Claims price protection on a line of your shipped order against today's price. Idempotent: a
/// drop already paid (by a claim or the automatic sweep) answers 200 with that payment.
#[utoipa::path(post, path = "/v1/order-lines/{id}/price-protection", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 201, body = AfterSaleResponse), (status = 200, body = AfterSaleResponse, description = "already paid"),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not_protected, not_yet_shipped, order_closed, protection_window_closed, no_price_drop")))]
async fn claim_price_protection(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<AfterSaleResponse>)> {
    let (row, created) = state.app.claim_price_protection(&auth.user.actor(), id).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(row.into())))
}

/// One price-protection payment (its buyer, the shop's staff, operators).
#[utoipa::path(get, path = "/v1/price-protections/{id}", tag = "after-sales", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = AfterSaleResponse), (status = 404, body = ErrorBody)))]
async fn get_price_protection(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
) -> ApiResult<Json<AfterSaleResponse>> {
    Ok(Json(state.app.price_protection_view(&auth.user.actor(), id).await?.into()))
}
