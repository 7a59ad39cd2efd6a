//! Content and the interest feed: creators' videos, what a live session sells, and
//! `GET /v1/feed`.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id, MaybeAuth};
use crate::time_format::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::content::{LiveSessionView, VideoInput};
use xingqu_app::feed::{FeedPage, Viewer};
use xingqu_domain::Invalid;
use xingqu_store::content::{VideoRow, decode_tags};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_video))
        .routes(routes!(get_video))
        .routes(routes!(remove_video))
        .routes(routes!(creator_videos))
        .routes(routes!(creator_profile))
        .routes(routes!(set_live_products))
        .routes(routes!(live_session_detail))
        .routes(routes!(feed))
        .routes(routes!(feed_exposure))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoRequest {
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    duration_s: i64,
    /// Listed products the video links (at most 10).
    #[serde(default)]
    product_ids: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct VideoResponse {
    id: i64,
    creator_user_id: i64,
    title: String,
    tags: Vec<String>,
    duration_s: i64,
    /// published or removed.
    status: String,
    product_ids: Vec<i64>,
    created_at: String,
}

impl From<VideoRow> for VideoResponse {
    fn from(v: VideoRow) -> Self {
        Self {
            id: v.id,
            creator_user_id: v.creator_user_id,
            tags: decode_tags(&v.tags),
            title: v.title,
            duration_s: v.duration_s,
            status: v.status,
            product_ids: v.product_ids,
            created_at: rfc3339(v.created_at_ms),
        }
    }
}

/// Publishes a short video (creators).
#[utoipa::path(post, path = "/v1/videos", tag = "feed", security(("bearer" = [])), request_body = VideoRequest,
    responses((status = 201, body = VideoResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn publish_video(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<VideoRequest>,
) -> ApiResult<(StatusCode, Json<VideoResponse>)> {
    let input =
        VideoInput { title: body.title, tags: body.tags, duration_s: body.duration_s, product_ids: body.product_ids };
    Ok((StatusCode::CREATED, Json(state.app.publish_video(&auth.user.actor(), &input).await?.into())))
}

/// One video (a removed one only for its creator and operators).
#[utoipa::path(get, path = "/v1/videos/{id}", tag = "feed", params(("id" = i64, Path)),
    responses((status = 200, body = VideoResponse), (status = 404, body = ErrorBody)))]
async fn get_video(State(state): State<AppState>, auth: MaybeAuth, Id(id): Id) -> ApiResult<Json<VideoResponse>> {
    Ok(Json(state.app.video(auth.actor().as_ref(), id).await?.into()))
}

/// Takes a video down (its creator or an operator); the feed stops showing it at once.
#[utoipa::path(post, path = "/v1/videos/{id}/remove", tag = "feed", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = VideoResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn remove_video(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<VideoResponse>> {
    Ok(Json(state.app.remove_video(&auth.user.actor(), id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct CreatorResponse {
    id: i64,
    display_name: String,
    followers: i64,
    videos: i64,
    /// The live session on air, if any.
    live_session_id: Option<i64>,
    /// Whether you follow them (false when not signed in).
    followed: bool,
}

/// A creator's profile.
#[utoipa::path(get, path = "/v1/creators/{id}", tag = "feed", params(("id" = i64, Path)),
    responses((status = 200, body = CreatorResponse), (status = 404, body = ErrorBody)))]
async fn creator_profile(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Id(id): Id,
) -> ApiResult<Json<CreatorResponse>> {
    let p = state.app.creator_profile(auth.actor().as_ref(), id).await?;
    Ok(Json(CreatorResponse {
        id: p.user_id,
        display_name: p.display_name,
        followers: p.followers,
        videos: p.videos,
        live_session_id: p.live_session_id,
        followed: p.followed,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VideoListQuery {
    /// Videos with a smaller id (the last one of the previous page).
    before_id: Option<i64>,
    /// 1 to 100 (default 20).
    limit: Option<u32>,
}

/// A creator's published videos, newest first.
#[utoipa::path(get, path = "/v1/creators/{id}/videos", tag = "feed", params(("id" = i64, Path), VideoListQuery),
    responses((status = 200, body = [VideoResponse])))]
async fn creator_videos(
    State(state): State<AppState>,
    Id(id): Id,
    ApiQuery(query): ApiQuery<VideoListQuery>,
) -> ApiResult<Json<Vec<VideoResponse>>> {
    let videos = state.app.creator_videos(id, query.before_id, query.limit.unwrap_or(20)).await?;
    Ok(Json(videos.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveProduct {
    sku_id: i64,
    /// At most the SKU's list price.
    live_price_fen: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveProductsRequest {
    products: Vec<LiveProduct>,
}

#[derive(Serialize, ToSchema)]
pub struct LiveProductResponse {
    sku_id: i64,
    product_id: i64,
    title: String,
    list_price_fen: i64,
    live_price_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct LiveSessionDetail {
    id: i64,
    creator_user_id: i64,
    title: String,
    /// scheduled, live or ended.
    status: String,
    /// When it went live (absent while scheduled).
    started_at: Option<String>,
    ended_at: Option<String>,
    scheduled_for: Option<String>,
    products: Vec<LiveProductResponse>,
    /// Viewers who joined so far.
    viewers: i64,
}

impl From<LiveSessionView> for LiveSessionDetail {
    fn from(v: LiveSessionView) -> Self {
        let s = v.session;
        Self {
            id: s.id,
            creator_user_id: s.creator_user_id,
            started_at: s.went_live_at_ms().map(rfc3339),
            title: s.title,
            status: s.status,
            ended_at: s.ended_at_ms.map(rfc3339),
            scheduled_for: s.scheduled_for_ms.map(rfc3339),
            products: v
                .products
                .into_iter()
                .map(|p| LiveProductResponse {
                    sku_id: p.sku_id,
                    product_id: p.product_id,
                    title: p.title,
                    list_price_fen: p.list_price_fen,
                    live_price_fen: p.live_price_fen,
                })
                .collect(),
            viewers: v.viewers,
        }
    }
}

/// Sets what a live session sells, at live prices (its creator, while live).
#[utoipa::path(put, path = "/v1/live-sessions/{id}/products", tag = "feed", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = LiveProductsRequest,
    responses((status = 200, body = LiveSessionDetail), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_live_products(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<LiveProductsRequest>,
) -> ApiResult<Json<LiveSessionDetail>> {
    let products: Vec<(i64, i64)> = body.products.iter().map(|p| (p.sku_id, p.live_price_fen)).collect();
    Ok(Json(state.app.set_live_products(&auth.user.actor(), id, &products).await?.into()))
}

/// A live session with what it sells and how many joined.
#[utoipa::path(get, path = "/v1/live-sessions/{id}/detail", tag = "feed", params(("id" = i64, Path)),
    responses((status = 200, body = LiveSessionDetail), (status = 404, body = ErrorBody)))]
async fn live_session_detail(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<LiveSessionDetail>> {
    Ok(Json(state.app.live_session_view(id).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page: the session continues (nothing twice in it).
    cursor: Option<String>,
    /// 1 to 50 (default 10).
    limit: Option<usize>,
    /// Anonymous viewers: the device id their events carry.
    device_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FeedItemResponse {
    /// video, live_session or product.
    #[serde(rename = "type")]
    item_type: &'static str,
    id: i64,
    title: String,
    /// The creator (videos, live sessions) or the shop (products).
    author_id: i64,
    score: f32,
    /// Why it is here: followed_creator, similar, trending, buy_again, exploration,
    /// creator_grade:{multiplier}, traffic_support:{programme}.
    reasons: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FeedResponse {
    items: Vec<FeedItemResponse>,
    next_cursor: String,
}

impl From<FeedPage> for FeedResponse {
    fn from(page: FeedPage) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(|i| FeedItemResponse {
                    item_type: i.item_type.as_str(),
                    id: i.id,
                    title: i.title,
                    author_id: i.author_id,
                    score: i.score,
                    reasons: i.reasons,
                })
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// The interest feed for a signed-in viewer, or an anonymous one with `device_id`.
#[utoipa::path(get, path = "/v1/feed", tag = "feed", params(FeedQuery),
    responses((status = 200, body = FeedResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn feed(
    State(state): State<AppState>,
    auth: MaybeAuth,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> ApiResult<Json<FeedResponse>> {
    let viewer = match (auth.actor(), query.device_id) {
        (Some(actor), _) => Viewer::User(actor.user_id),
        (None, Some(device)) => Viewer::Device(xingqu_app::events::parse_device_id(&device)?),
        (None, None) => {
            return Err(Invalid::new("device_id", "missing", "sign in, or give the device_id your events carry").into());
        }
    };
    let page = state.app.feed_page(&viewer, query.cursor.as_deref(), query.limit.unwrap_or(10)).await?;
    Ok(Json(page.into()))
}

#[derive(Serialize, ToSchema)]
pub struct ProgrammeExposure {
    name: String,
    target_share: f64,
    delivered_share: f64,
}

#[derive(Serialize, ToSchema)]
pub struct ExposureResponse {
    /// Items shown by this node since it started.
    impressions: u64,
    programmes: Vec<ProgrammeExposure>,
}

/// Traffic support delivered against its targets (operators).
#[utoipa::path(get, path = "/v1/feed/exposure", tag = "feed", security(("bearer" = [])),
    responses((status = 200, body = ExposureResponse), (status = 403, body = ErrorBody)))]
async fn feed_exposure(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<ExposureResponse>> {
    if !auth.user.actor().is_operator() {
        return Err(xingqu_app::AppError::Forbidden("only operators see traffic support").into());
    }
    let (impressions, programmes) = state.app.feed().exposure();
    Ok(Json(ExposureResponse {
        impressions,
        programmes: programmes
            .into_iter()
            .map(|(name, target_share, delivered_share)| ProgrammeExposure { name, target_share, delivered_share })
            .collect(),
    }))
}
