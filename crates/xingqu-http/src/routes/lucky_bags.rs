//! Live sessions, the viewer events lucky bags check, lucky bags, entries and the draw's proof.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth, Id};
use crate::routes::orders::Address;
use crate::time_format::{rfc3339, time_field};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::lucky_bags::{DrawProof, LuckyBagInput};
use xingqu_store::lucky_bags::{LiveSessionRow, LuckyBagRow};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_session))
        .routes(routes!(get_session))
        .routes(routes!(end_session))
        .routes(routes!(go_live))
        .routes(routes!(session_event))
        .routes(routes!(create_bag))
        .routes(routes!(get_bag))
        .routes(routes!(join_bag))
        .routes(routes!(bag_proof))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveSessionRequest {
    title: String,
    /// Announce it for later (RFC 3339, within 30 days) instead of going live now.
    scheduled_for: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LiveSessionResponse {
    id: i64,
    creator_user_id: i64,
    title: String,
    /// scheduled, live or ended.
    status: String,
    /// When it went live (absent while scheduled).
    started_at: Option<String>,
    ended_at: Option<String>,
    /// When it was announced for.
    scheduled_for: Option<String>,
}

impl From<LiveSessionRow> for LiveSessionResponse {
    fn from(s: LiveSessionRow) -> Self {
        Self {
            id: s.id,
            creator_user_id: s.creator_user_id,
            started_at: s.went_live_at_ms().map(rfc3339),
            title: s.title,
            status: s.status,
            ended_at: s.ended_at_ms.map(rfc3339),
            scheduled_for: s.scheduled_for_ms.map(rfc3339),
        }
    }
}

/// Goes live (creators).
#[utoipa::path(post, path = "/v1/live-sessions", tag = "promotions", security(("bearer" = [])), request_body = LiveSessionRequest,
    responses((status = 201, body = LiveSessionResponse), (status = 403, body = ErrorBody)))]
async fn start_session(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<LiveSessionRequest>,
) -> ApiResult<(StatusCode, Json<LiveSessionResponse>)> {
    let scheduled_for_ms = body.scheduled_for.as_deref().map(|t| time_field("scheduled_for", t)).transpose()?;
    let session = state.app.start_live_session(&auth.user.actor(), &body.title, scheduled_for_ms).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// One live session.
#[utoipa::path(get, path = "/v1/live-sessions/{id}", tag = "promotions", params(("id" = i64, Path)),
    responses((status = 200, body = LiveSessionResponse), (status = 404, body = ErrorBody)))]
async fn get_session(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<LiveSessionResponse>> {
    Ok(Json(state.app.live_session(id).await?.into()))
}

/// A scheduled live session goes on air (its creator).
#[utoipa::path(post, path = "/v1/live-sessions/{id}/start", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = LiveSessionResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not_scheduled")))]
async fn go_live(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<LiveSessionResponse>> {
    Ok(Json(state.app.go_live(&auth.user.actor(), id).await?.into()))
}

/// Ends a live session, or calls off a scheduled one (its creator).
#[utoipa::path(post, path = "/v1/live-sessions/{id}/end", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = LiveSessionResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end_session(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<LiveSessionResponse>> {
    Ok(Json(state.app.end_live_session(&auth.user.actor(), id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveEventRequest {
    /// join, watch (a heartbeat with `watch_ms` since the last) or comment (with `comment`).
    kind: String,
    watch_ms: Option<i64>,
    comment: Option<String>,
}

/// Records what you do in a live session; lucky bags check it.
#[utoipa::path(post, path = "/v1/live-sessions/{id}/events", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = LiveEventRequest,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn session_event(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<LiveEventRequest>,
) -> ApiResult<StatusCode> {
    state.app.record_live_event(&auth.user.actor(), id, &body.kind, body.watch_ms, body.comment.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LuckyBagRequest {
    live_session_id: i64,
    /// sku (one unit per winner, a 0-yuan order) or coupon (one claim per winner).
    prize: String,
    sku_id: Option<i64>,
    coupon_id: Option<i64>,
    /// How many winners: 1 to 1,000.
    winners: i64,
    /// Seconds watched at least.
    #[serde(default)]
    watch_s_min: i64,
    /// A word to have commented.
    comment_keyword: Option<String>,
    /// Must follow the creator.
    #[serde(default)]
    must_follow: bool,
    /// RFC 3339, within 24 hours.
    deadline: String,
}

#[derive(Serialize, ToSchema)]
pub struct LuckyBagResponse {
    id: i64,
    live_session_id: i64,
    creator_user_id: i64,
    prize: String,
    sku_id: Option<i64>,
    coupon_id: Option<i64>,
    /// creator or merchant: who pays for the prizes.
    funder: String,
    winners: i64,
    watch_s_min: i64,
    comment_keyword: Option<String>,
    must_follow: bool,
    deadline: String,
    /// sha256 of the draw's secret seed, published before the draw.
    seed_sha256: String,
    /// open or drawn.
    status: String,
    drawn_at: Option<String>,
}

impl From<LuckyBagRow> for LuckyBagResponse {
    fn from(b: LuckyBagRow) -> Self {
        Self {
            id: b.id,
            live_session_id: b.live_session_id,
            creator_user_id: b.creator_user_id,
            prize: b.prize,
            sku_id: b.sku_id,
            coupon_id: b.coupon_id,
            funder: b.funder,
            winners: b.winners,
            watch_s_min: b.watch_s_min,
            comment_keyword: b.comment_keyword,
            must_follow: b.must_follow,
            deadline: rfc3339(b.deadline_ms),
            seed_sha256: b.seed_sha256,
            status: b.status,
            drawn_at: b.drawn_at_ms.map(rfc3339),
        }
    }
}

/// Opens a lucky bag in a live session (its creator, or the staff of the shop whose SKU is the
/// prize). The prizes are set aside at once; the draw happens at the deadline.
#[utoipa::path(post, path = "/v1/lucky-bags", tag = "promotions", security(("bearer" = [])), request_body = LuckyBagRequest,
    responses((status = 201, body = LuckyBagResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_bag(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<LuckyBagRequest>,
) -> ApiResult<(StatusCode, Json<LuckyBagResponse>)> {
    let deadline_ms = time_field("deadline", &body.deadline)?;
    let input = LuckyBagInput {
        live_session_id: body.live_session_id,
        prize: body.prize,
        sku_id: body.sku_id,
        coupon_id: body.coupon_id,
        winners: body.winners,
        watch_s_min: body.watch_s_min,
        comment_keyword: body.comment_keyword,
        must_follow: body.must_follow,
        deadline_ms,
    };
    Ok((StatusCode::CREATED, Json(state.app.create_lucky_bag(&auth.user.actor(), input).await?.into())))
}

/// One lucky bag.
#[utoipa::path(get, path = "/v1/lucky-bags/{id}", tag = "promotions", params(("id" = i64, Path)),
    responses((status = 200, body = LuckyBagResponse), (status = 404, body = ErrorBody)))]
async fn get_bag(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<LuckyBagResponse>> {
    Ok(Json(state.app.lucky_bag(id).await?.into()))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Where the prize goes (bags of goods).
    address: Option<Address>,
}

#[derive(Serialize, ToSchema)]
pub struct JoinResponse {
    lucky_bag_id: i64,
    /// False when you had entered already.
    joined: bool,
}

/// Enters a lucky bag before its deadline. The conditions are checked at the draw.
#[utoipa::path(post, path = "/v1/lucky-bags/{id}/entries", tag = "promotions", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = JoinRequest,
    responses((status = 201, body = JoinResponse), (status = 200, body = JoinResponse, description = "entered already"),
              (status = 409, body = ErrorBody, description = "lucky_bag_closed"), (status = 422, body = ErrorBody)))]
async fn join_bag(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<JoinRequest>,
) -> ApiResult<(StatusCode, Json<JoinResponse>)> {
    let address: Option<xingqu_app::orders::AddressInput> = body.address.map(Into::into);
    let joined = state.app.join_lucky_bag(&auth.user.actor(), id, address.as_ref()).await?;
    let status = if joined { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(JoinResponse { lucky_bag_id: id, joined })))
}

#[derive(Serialize, ToSchema)]
pub struct WinnerResponse {
    rank: i64,
    user_id: i64,
    order_id: Option<i64>,
    claim_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ProofResponse {
    lucky_bag_id: i64,
    /// open or drawn.
    status: String,
    seed_sha256: String,
    /// Hex of the 32-byte seed, revealed by the draw.
    seed: Option<String>,
    /// The eligible participants, ascending: the list the draw shuffled.
    participants: Vec<i64>,
    /// In draw order.
    winners: Vec<WinnerResponse>,
    /// How to recompute the winners.
    algorithm: &'static str,
}

impl From<DrawProof> for ProofResponse {
    fn from(p: DrawProof) -> Self {
        Self {
            lucky_bag_id: p.bag.id,
            status: p.bag.status,
            seed_sha256: p.bag.seed_sha256,
            seed: p.seed_hex,
            participants: p.participants,
            winners: p
                .winners
                .into_iter()
                .map(|w| WinnerResponse {
                    rank: w.rank,
                    user_id: w.user_id,
                    order_id: w.order_id,
                    claim_id: w.claim_id,
                })
                .collect(),
            algorithm: "partial Fisher-Yates over the sorted participants; the j-th random number is the first 8 bytes \
                        (big-endian) of sha256(seed || j as 8 big-endian bytes), rejected when at or above the largest \
                        multiple of m not over 2^64 (m = participants left)",
        }
    }
}

/// The draw's proof: the commitment before the draw; after it the seed, the eligible participants
/// and the winners, so anyone can recompute the winners.
#[utoipa::path(get, path = "/v1/lucky-bags/{id}/proof", tag = "promotions", params(("id" = i64, Path)),
    responses((status = 200, body = ProofResponse), (status = 404, body = ErrorBody)))]
async fn bag_proof(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<ProofResponse>> {
    Ok(Json(state.app.lucky_bag_proof(id).await?.into()))
}
