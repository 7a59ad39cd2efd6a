//! Coupons, red-packet pools, claims, the buyer's wallet, and following creators (fan coupons).

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id, IdempotencyKey};
use crate::time_format::{rfc3339, time_field as time};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::coupons::claims::ClaimView;
use xingqu_app::coupons::{CouponInput, PoolInput};
use xingqu_domain::Invalid;
use xingqu_domain::catalog::page_limit;
use xingqu_domain::promo::coupon::KindFields;
use xingqu_store::coupons::{CouponRow, WalletRow};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_coupons, create_coupon))
        .routes(routes!(get_coupon))
        .routes(routes!(claim_coupon))
        .routes(routes!(stop_coupon))
        .routes(routes!(resume_coupon))
        .routes(routes!(create_pool))
        .routes(routes!(wallet))
        .routes(routes!(claims))
        .routes(routes!(follow, unfollow))
}

fn optional_time(field: &'static str, raw: Option<&str>) -> Result<Option<i64>, Invalid> {
    raw.map(|r| time(field, r)).transpose()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRequest {
    /// shop (the shop's staff), fan (creators) or platform (operators).
    class: String,
    /// The issuing shop, for shop coupons.
    merchant_id: Option<i64>,
    title: String,
    /// threshold (满X减Y: threshold_fen, off_fen), money_off (off_fen), percent_off (percent_bps,
    /// cap_fen) or fixed_price (price_fen per unit).
    kind: String,
    #[serde(default)]
    threshold_fen: i64,
    #[serde(default)]
    off_fen: i64,
    /// 1 to 9,999 (0.01 % each).
    #[serde(default)]
    percent_bps: i64,
    #[serde(default)]
    cap_fen: i64,
    #[serde(default)]
    price_fen: i64,
    /// Limits the coupon to these products; required for fan coupons (what the creator sells).
    #[serde(default)]
    product_ids: Vec<i64>,
    /// Classes it may be used together with: shop, fan, platform, red_packet.
    #[serde(default)]
    combines_with: Vec<String>,
    /// Claiming window, RFC 3339.
    claim_starts_at: String,
    claim_ends_at: String,
    /// Validity: valid_from and valid_until, or valid_days from the claim.
    valid_from: Option<String>,
    valid_until: Option<String>,
    valid_days: Option<i64>,
    /// How many may be claimed in all.
    quantity: i64,
    #[serde(default = "one")]
    per_user_limit: i64,
    /// The funder's money for this coupon, in 分: discounts on live orders never exceed it.
    budget_fen: Option<i64>,
}

fn one() -> i64 {
    1
}

#[derive(Serialize, ToSchema)]
pub struct CouponResponse {
    id: i64,
    class: String,
    merchant_id: Option<i64>,
    creator_user_id: Option<i64>,
    title: String,
    kind: String,
    threshold_fen: i64,
    off_fen: i64,
    percent_bps: i64,
    cap_fen: i64,
    price_fen: i64,
    product_ids: Vec<i64>,
    combines_with: Vec<String>,
    claim_starts_at: String,
    claim_ends_at: String,
    valid_from: Option<String>,
    valid_until: Option<String>,
    valid_days: Option<i64>,
    quantity: i64,
    claimed: i64,
    per_user_limit: i64,
    budget_fen: Option<i64>,
    budget_used_fen: i64,
    /// Red-packet pools: fixed or random.
    pool_split: Option<String>,
    /// active or stopped.
    status: String,
}

impl From<CouponRow> for CouponResponse {
    fn from(c: CouponRow) -> Self {
        let list = |raw: &str| raw.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        Self {
            id: c.id,
            class: c.class,
            merchant_id: c.merchant_id,
            creator_user_id: c.creator_user_id,
            title: c.title,
            kind: c.kind,
            threshold_fen: c.threshold_fen,
            off_fen: c.off_fen,
            percent_bps: c.percent_bps,
            cap_fen: c.cap_fen,
            price_fen: c.price_fen,
            product_ids: list(&c.product_ids).iter().filter_map(|id| id.parse().ok()).collect(),
            combines_with: list(&c.combines_with),
            claim_starts_at: rfc3339(c.claim_starts_at_ms),
            claim_ends_at: rfc3339(c.claim_ends_at_ms),
            valid_from: c.valid_from_ms.map(rfc3339),
            valid_until: c.valid_until_ms.map(rfc3339),
            valid_days: c.valid_days,
            quantity: c.quantity,
            claimed: c.claimed,
            per_user_limit: c.per_user_limit,
            budget_fen: c.budget_fen,
            budget_used_fen: c.budget_used_fen,
            // The seed of a random split stays private: it would tell who gets the big packets.
            pool_split: c.pool_split.map(|s| s.split(';').next().unwrap_or_default().to_owned()),
            status: c.status,
        }
    }
}

/// Issues a coupon: shop coupons by the shop's staff, fan coupons by creators (claimable by their
/// followers), platform coupons by operators.
#[utoipa::path(post, path = "/v1/coupons", tag = "promotions", security(("bearer" = [])), request_body = CouponRequest,
    responses((status = 201, body = CouponResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_coupon(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CouponRequest>,
) -> ApiResult<(StatusCode, Json<CouponResponse>)> {
    let input = CouponInput {
        class: body.class,
        merchant_id: body.merchant_id,
        title: body.title,
        kind: body.kind,
        fields: KindFields {
            threshold_fen: body.threshold_fen,
            off_fen: body.off_fen,
            percent_bps: body.percent_bps,
            cap_fen: body.cap_fen,
            price_fen: body.price_fen,
        },
        product_ids: body.product_ids,
        combines_with: body.combines_with,
        claim_starts_at_ms: time("claim_starts_at", &body.claim_starts_at)?,
        claim_ends_at_ms: time("claim_ends_at", &body.claim_ends_at)?,
        valid_from_ms: optional_time("valid_from", body.valid_from.as_deref())?,
        valid_until_ms: optional_time("valid_until", body.valid_until.as_deref())?,
        valid_days: body.valid_days,
        quantity: body.quantity,
        per_user_limit: body.per_user_limit,
        budget_fen: body.budget_fen,
    };
    Ok((StatusCode::CREATED, Json(state.app.create_coupon(&auth.user.actor(), input).await?.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CouponListQuery {
    /// A shop's coupons (its staff, operators).
    merchant_id: Option<i64>,
    /// true: the coupons you issued (creators, shop staff; operators: all). Default: the coupons
    /// open for claiming now.
    mine: Option<bool>,
    before_id: Option<i64>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

/// Coupons open for claiming now, or the ones you issued.
#[utoipa::path(get, path = "/v1/coupons", tag = "promotions", security(("bearer" = [])), params(CouponListQuery),
    responses((status = 200, body = Vec<CouponResponse>), (status = 403, body = ErrorBody)))]
async fn list_coupons(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<CouponListQuery>,
) -> ApiResult<Json<Vec<CouponResponse>>> {
    let limit = page_limit(query.limit)?;
    let rows = state
        .app
        .list_coupons(&auth.user.actor(), query.merchant_id, query.mine.unwrap_or(false), query.before_id, limit)
        .await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// One coupon.
#[utoipa::path(get, path = "/v1/coupons/{id}", tag = "promotions", params(("id" = i64, Path)),
    responses((status = 200, body = CouponResponse), (status = 404, body = ErrorBody)))]
async fn get_coupon(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<CouponResponse>> {
    Ok(Json(state.app.coupon(id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct ClaimResponse {
    claim_id: i64,
    coupon_id: i64,
    valid_from: String,
    valid_until: String,
    /// A red packet's own amount.
    off_fen: Option<i64>,
}

impl From<ClaimView> for ClaimResponse {
    fn from(c: ClaimView) -> Self {
        Self {
            claim_id: c.claim_id,
            coupon_id: c.coupon_id,
            valid_from: rfc3339(c.valid_from_ms),
            valid_until: rfc3339(c.valid_until_ms),
            off_fen: c.off_fen,
        }
    }
}

/// Claims a coupon (or grabs a red packet) into your wallet. With an `Idempotency-Key`, a retry
/// returns the first claim (200). Answered once the claim is durable.
#[utoipa::path(post, path = "/v1/coupons/{id}/claims", tag = "promotions", security(("bearer" = [])),
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses((status = 201, body = ClaimResponse), (status = 200, body = ClaimResponse, description = "a retry"),
              (status = 403, body = ErrorBody, description = "fan coupons: follow the creator first"),
              (status = 409, body = ErrorBody, description = "coupon_exhausted, claim_limit_reached, claim_not_open, claim_closed, coupon_stopped, budget_spent")))]
async fn claim_coupon(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
) -> ApiResult<(StatusCode, Json<ClaimResponse>)> {
    let claim = state.app.claim_coupon(&auth.user.actor(), id, key.as_deref()).await?;
    let status = if claim.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(claim.into())))
}

/// Stops claiming a coupon (its issuer or an operator); claims already made stay usable.
#[utoipa::path(post, path = "/v1/coupons/{id}/stop", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = CouponResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stop_coupon(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<CouponResponse>> {
    Ok(Json(state.app.set_coupon_active(&auth.user.actor(), id, false).await?.into()))
}

/// Opens claiming again.
#[utoipa::path(post, path = "/v1/coupons/{id}/resume", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = CouponResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn resume_coupon(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<CouponResponse>> {
    Ok(Json(state.app.set_coupon_active(&auth.user.actor(), id, true).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolRequest {
    title: String,
    /// The pool's budget in 分; the packets sum to it exactly.
    pool_fen: i64,
    /// fixed (every packet amount_fen) or random (recipients packets, each at least min_fen).
    mode: String,
    #[serde(default)]
    amount_fen: i64,
    #[serde(default)]
    recipients: i64,
    #[serde(default)]
    min_fen: i64,
    /// Packets apply to orders of at least this much (0: any).
    #[serde(default)]
    threshold_fen: i64,
    claim_starts_at: String,
    claim_ends_at: String,
    /// Days a grabbed packet stays usable.
    valid_days: i64,
}

/// Funds a red-packet pool (operators): platform-funded packets buyers grab, usable across shops.
#[utoipa::path(post, path = "/v1/red-packet-pools", tag = "promotions", security(("bearer" = [])), request_body = PoolRequest,
    responses((status = 201, body = CouponResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_pool(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<PoolRequest>,
) -> ApiResult<(StatusCode, Json<CouponResponse>)> {
    let input = PoolInput {
        title: body.title,
        pool_fen: body.pool_fen,
        mode: body.mode,
        amount_fen: body.amount_fen,
        recipients: body.recipients,
        min_fen: body.min_fen,
        threshold_fen: body.threshold_fen,
        claim_starts_at_ms: time("claim_starts_at", &body.claim_starts_at)?,
        claim_ends_at_ms: time("claim_ends_at", &body.claim_ends_at)?,
        valid_days: body.valid_days,
    };
    Ok((StatusCode::CREATED, Json(state.app.create_red_packet_pool(&auth.user.actor(), input).await?.into())))
}

#[derive(Serialize, ToSchema)]
pub struct WalletEntryResponse {
    claim_id: i64,
    /// available or used.
    status: String,
    valid_from: String,
    valid_until: String,
    /// A red packet's own amount (otherwise the coupon's).
    off_fen: Option<i64>,
    /// The checkout using it.
    checkout_id: Option<i64>,
    coupon: CouponResponse,
}

impl From<WalletRow> for WalletEntryResponse {
    fn from(w: WalletRow) -> Self {
        Self {
            claim_id: w.claim.id,
            status: w.claim.status,
            valid_from: rfc3339(w.claim.valid_from_ms),
            valid_until: rfc3339(w.claim.valid_until_ms),
            off_fen: w.claim.off_fen,
            checkout_id: w.claim.checkout_id,
            coupon: w.coupon.into(),
        }
    }
}

/// Your usable coupons: valid now and not used, soonest to expire first (at most 50).
#[utoipa::path(get, path = "/v1/wallet", tag = "promotions", security(("bearer" = [])),
    responses((status = 200, body = Vec<WalletEntryResponse>), (status = 401, body = ErrorBody)))]
async fn wallet(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<WalletEntryResponse>>> {
    Ok(Json(state.app.wallet(&auth.user.actor()).await?.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClaimListQuery {
    before_id: Option<i64>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

/// Every claim you made, newest first, used and expired ones too.
#[utoipa::path(get, path = "/v1/wallet/claims", tag = "promotions", security(("bearer" = [])), params(ClaimListQuery),
    responses((status = 200, body = Vec<WalletEntryResponse>), (status = 401, body = ErrorBody)))]
async fn claims(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<ClaimListQuery>,
) -> ApiResult<Json<Vec<WalletEntryResponse>>> {
    let limit = page_limit(query.limit)?;
    let rows = state.app.claims_of(&auth.user.actor(), query.before_id, limit).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// Follows a creator (fan coupons are for followers). Following twice changes nothing.
#[utoipa::path(put, path = "/v1/creators/{id}/follow", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn follow(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<StatusCode> {
    state.app.follow(&auth.user.actor(), id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops following a creator.
#[utoipa::path(delete, path = "/v1/creators/{id}/follow", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn unfollow(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<StatusCode> {
    state.app.follow(&auth.user.actor(), id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
