//! Campaigns: zones and their rules, theme days, the official live room's schedule, subsidy
//! pools, and merchants' zone entries with their review.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id};
use crate::time_format::{rfc3339, time_field};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::campaigns::{CampaignView, PoolInput};
use xingqu_domain::campaign::RawZoneRule;
use xingqu_store::campaigns::{CampaignRow, SubsidyPoolRow, ZoneEntryRow, ZoneRow, decode_rule};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(get_campaign))
        .routes(routes!(add_zone))
        .routes(routes!(edit_zone))
        .routes(routes!(add_theme_day))
        .routes(routes!(add_live_slot))
        .routes(routes!(add_pool))
        .routes(routes!(apply_entry, list_entries))
        .routes(routes!(review_entry))
        .routes(routes!(withdraw_entry))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    name: String,
    /// RFC 3339.
    starts_at: String,
    /// RFC 3339; at most 92 days after the start.
    ends_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignSummary {
    id: i64,
    name: String,
    starts_at: String,
    ends_at: String,
}

impl From<CampaignRow> for CampaignSummary {
    fn from(c: CampaignRow) -> Self {
        Self { id: c.id, name: c.name, starts_at: rfc3339(c.starts_at_ms), ends_at: rfc3339(c.ends_at_ms) }
    }
}

/// Which products a zone admits: every criterion given must hold; within a list any entry will do.
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ZoneRuleBody {
    /// farm_specialty, geographic_indication, intangible_heritage, domestic_brand.
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    category_ids: Vec<i64>,
    /// Origin region prefixes: 22 (province), 2224 (prefecture), 222401 (county).
    #[serde(default)]
    region_prefixes: Vec<String>,
    #[serde(default)]
    merchant_ids: Vec<i64>,
    min_price_fen: Option<i64>,
    max_price_fen: Option<i64>,
}

impl From<ZoneRuleBody> for RawZoneRule {
    fn from(r: ZoneRuleBody) -> Self {
        Self {
            tags: r.tags,
            category_ids: r.category_ids,
            region_prefixes: r.region_prefixes,
            merchant_ids: r.merchant_ids,
            min_price_fen: r.min_price_fen,
            max_price_fen: r.max_price_fen,
        }
    }
}

impl From<RawZoneRule> for ZoneRuleBody {
    fn from(r: RawZoneRule) -> Self {
        Self {
            tags: r.tags,
            category_ids: r.category_ids,
            region_prefixes: r.region_prefixes,
            merchant_ids: r.merchant_ids,
            min_price_fen: r.min_price_fen,
            max_price_fen: r.max_price_fen,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ZoneResponse {
    id: i64,
    campaign_id: i64,
    name: String,
    rule: ZoneRuleBody,
    /// Target share of feed exposure for the zone's products, in basis points (0: none).
    traffic_target_bp: i64,
}

impl From<ZoneRow> for ZoneResponse {
    fn from(z: ZoneRow) -> Self {
        Self {
            id: z.id,
            campaign_id: z.campaign_id,
            rule: decode_rule(&z.rule).into(),
            name: z.name,
            traffic_target_bp: z.traffic_target_bp,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ThemeDayResponse {
    id: i64,
    /// The day's start: midnight, China time.
    day: String,
    title: String,
    zone_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LiveSlotResponse {
    id: i64,
    live_session_id: i64,
    title: String,
    starts_at: String,
    ends_at: String,
    /// The session's status: scheduled, live or ended.
    session_status: String,
    /// Brands the session sells.
    brands: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PoolResponse {
    id: i64,
    campaign_id: i64,
    /// Absent: every zone of the campaign.
    zone_id: Option<i64>,
    name: String,
    budget_fen: i64,
    spent_fen: i64,
    left_fen: i64,
    per_unit_fen: Option<i64>,
    percent_bp: Option<i64>,
    cap_per_unit_fen: Option<i64>,
}

impl From<SubsidyPoolRow> for PoolResponse {
    fn from(p: SubsidyPoolRow) -> Self {
        Self {
            id: p.id,
            campaign_id: p.campaign_id,
            zone_id: p.zone_id,
            name: p.name,
            left_fen: p.budget_fen - p.spent_fen,
            budget_fen: p.budget_fen,
            spent_fen: p.spent_fen,
            per_unit_fen: p.per_unit_fen,
            percent_bp: p.percent_bp,
            cap_per_unit_fen: p.cap_per_unit_fen,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CampaignResponse {
    id: i64,
    name: String,
    starts_at: String,
    ends_at: String,
    zones: Vec<ZoneResponse>,
    theme_days: Vec<ThemeDayResponse>,
    live_slots: Vec<LiveSlotResponse>,
    subsidy_pools: Vec<PoolResponse>,
}

impl From<CampaignView> for CampaignResponse {
    fn from(v: CampaignView) -> Self {
        Self {
            id: v.campaign.id,
            name: v.campaign.name,
            starts_at: rfc3339(v.campaign.starts_at_ms),
            ends_at: rfc3339(v.campaign.ends_at_ms),
            zones: v.zones.into_iter().map(Into::into).collect(),
            theme_days: v
                .theme_days
                .into_iter()
                .map(|d| ThemeDayResponse {
                    id: d.id,
                    day: rfc3339(d.day_starts_at_ms),
                    title: d.title,
                    zone_id: d.zone_id,
                })
                .collect(),
            live_slots: v
                .live_slots
                .into_iter()
                .map(|s| LiveSlotResponse {
                    id: s.id,
                    live_session_id: s.live_session_id,
                    title: s.title,
                    starts_at: rfc3339(s.starts_at_ms),
                    ends_at: rfc3339(s.ends_at_ms),
                    session_status: s.session_status,
                    brands: s.brands,
                })
                .collect(),
            subsidy_pools: v.subsidy_pools.into_iter().map(Into::into).collect(),
        }
    }
}

/// Creates a campaign (operators).
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])), request_body = CampaignRequest,
    responses((status = 201, body = CampaignResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_campaign(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CampaignRequest>,
) -> ApiResult<(StatusCode, Json<CampaignResponse>)> {
    let starts_at_ms = time_field("starts_at", &body.starts_at)?;
    let ends_at_ms = time_field("ends_at", &body.ends_at)?;
    let view = state.app.create_campaign(&auth.user.actor(), &body.name, starts_at_ms, ends_at_ms).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    items: Vec<CampaignSummary>,
}

/// Campaigns: running and coming ones first (soonest ending first), then past ones.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", responses((status = 200, body = CampaignList)))]
async fn list_campaigns(State(state): State<AppState>) -> ApiResult<Json<CampaignList>> {
    let items = state.app.campaigns().await?.into_iter().map(Into::into).collect();
    Ok(Json(CampaignList { items }))
}

/// A campaign with its zones, theme days, official live room schedule and subsidy pools.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = CampaignResponse), (status = 404, body = ErrorBody)))]
async fn get_campaign(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<CampaignResponse>> {
    Ok(Json(state.app.campaign_view(id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneRequest {
    name: String,
    #[serde(default)]
    rule: ZoneRuleBody,
    /// 0 to 5000 basis points of feed exposure.
    #[serde(default)]
    traffic_target_bp: i64,
}

/// Adds a zone (专区) to a campaign (operators).
#[utoipa::path(post, path = "/v1/campaigns/{id}/zones", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ZoneRequest,
    responses((status = 201, body = ZoneResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "zone_exists, campaign_over"), (status = 422, body = ErrorBody)))]
async fn add_zone(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ZoneRequest>,
) -> ApiResult<(StatusCode, Json<ZoneResponse>)> {
    let rule = body.rule.into();
    let zone = state.app.add_zone(&auth.user.actor(), id, &body.name, &rule, body.traffic_target_bp).await?;
    Ok((StatusCode::CREATED, Json(zone.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneEdit {
    rule: ZoneRuleBody,
    traffic_target_bp: i64,
}

/// Changes a zone's rule and traffic target (operators). Approved entries stay.
#[utoipa::path(put, path = "/v1/zones/{id}", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ZoneEdit,
    responses((status = 200, body = ZoneResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn edit_zone(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ZoneEdit>,
) -> ApiResult<Json<ZoneResponse>> {
    let rule = body.rule.into();
    Ok(Json(state.app.edit_zone(&auth.user.actor(), id, &rule, body.traffic_target_bp).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThemeDayRequest {
    /// The day's start, midnight China time, e.g. 2026-11-01T00:00:00+08:00.
    day: String,
    title: String,
    zone_id: Option<i64>,
}

/// Gives a day of the campaign a theme (operators).
#[utoipa::path(post, path = "/v1/campaigns/{id}/theme-days", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ThemeDayRequest,
    responses((status = 201, body = CampaignResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_theme_day(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ThemeDayRequest>,
) -> ApiResult<(StatusCode, Json<CampaignResponse>)> {
    let day_ms = time_field("day", &body.day)?;
    let view = state.app.add_theme_day(&auth.user.actor(), id, day_ms, &body.title, body.zone_id).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveSlotRequest {
    live_session_id: i64,
    title: String,
    starts_at: String,
    ends_at: String,
}

/// Puts a live session on the official live room's schedule (operators).
#[utoipa::path(post, path = "/v1/campaigns/{id}/live-slots", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = LiveSlotRequest,
    responses((status = 201, body = CampaignResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_live_slot(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<LiveSlotRequest>,
) -> ApiResult<(StatusCode, Json<CampaignResponse>)> {
    let starts_at_ms = time_field("starts_at", &body.starts_at)?;
    let ends_at_ms = time_field("ends_at", &body.ends_at)?;
    let view = state
        .app
        .add_live_slot(&auth.user.actor(), id, body.live_session_id, &body.title, starts_at_ms, ends_at_ms)
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolRequest {
    name: String,
    /// Only this zone's entries (absent: every zone of the campaign).
    zone_id: Option<i64>,
    budget_fen: i64,
    /// A fixed amount off each unit…
    per_unit_fen: Option<i64>,
    /// …or a share of the unit price (1 to 9000 basis points), optionally capped per unit.
    percent_bp: Option<i64>,
    cap_per_unit_fen: Option<i64>,
}

/// Opens a subsidy pool (货品补贴) funded by the platform (operators). Orders spend it
/// atomically; once spent, quotes stop applying it.
#[utoipa::path(post, path = "/v1/campaigns/{id}/subsidy-pools", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = PoolRequest,
    responses((status = 201, body = PoolResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn add_pool(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<PoolRequest>,
) -> ApiResult<(StatusCode, Json<PoolResponse>)> {
    let input = PoolInput {
        name: body.name,
        zone_id: body.zone_id,
        budget_fen: body.budget_fen,
        per_unit_fen: body.per_unit_fen,
        percent_bp: body.percent_bp,
        cap_per_unit_fen: body.cap_per_unit_fen,
    };
    Ok((StatusCode::CREATED, Json(state.app.add_subsidy_pool(&auth.user.actor(), id, &input).await?.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    sku_id: i64,
    /// Below the lowest list price of the last 30 days.
    campaign_price_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EntryResponse {
    id: i64,
    zone_id: i64,
    campaign_id: i64,
    sku_id: i64,
    product_id: i64,
    merchant_id: i64,
    campaign_price_fen: i64,
    /// The lowest list price of the 30 days before: the campaign price is below it.
    reference_price_fen: i64,
    /// pending, approved, rejected or withdrawn.
    status: String,
    review_reason: String,
    applied_at: String,
    reviewed_at: Option<String>,
}

impl From<ZoneEntryRow> for EntryResponse {
    fn from(e: ZoneEntryRow) -> Self {
        Self {
            id: e.id,
            zone_id: e.zone_id,
            campaign_id: e.campaign_id,
            sku_id: e.sku_id,
            product_id: e.product_id,
            merchant_id: e.merchant_id,
            campaign_price_fen: e.campaign_price_fen,
            reference_price_fen: e.reference_price_fen,
            status: e.status,
            review_reason: e.review_reason,
            applied_at: rfc3339(e.applied_at_ms),
            reviewed_at: e.reviewed_at_ms.map(rfc3339),
        }
    }
}

/// Enters one of your shop's SKUs into a zone at a campaign price (merchant staff). The zone's
/// rule and the price history decide at once; an operator reviews the rest.
#[utoipa::path(post, path = "/v1/zones/{id}/entries", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = EntryRequest,
    responses((status = 201, body = EntryResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "already_entered, campaign_over, not_listed"),
              (status = 422, body = ErrorBody, description = "not_eligible, not_below_reference_price, unknown_sku")))]
async fn apply_entry(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<EntryRequest>,
) -> ApiResult<(StatusCode, Json<EntryResponse>)> {
    let entry = state.app.apply_to_zone(&auth.user.actor(), id, body.sku_id, body.campaign_price_fen).await?;
    Ok((StatusCode::CREATED, Json(entry.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryQuery {
    /// pending, approved, rejected or withdrawn.
    status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EntryList {
    items: Vec<EntryResponse>,
}

/// A zone's entries: operators see all (the review queue with `status=pending`), merchant staff
/// their own shop's.
#[utoipa::path(get, path = "/v1/zones/{id}/entries", tag = "campaigns", security(("bearer" = [])),
    params(("id" = i64, Path), EntryQuery),
    responses((status = 200, body = EntryList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_entries(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiQuery(q): ApiQuery<EntryQuery>,
) -> ApiResult<Json<EntryList>> {
    let items = state.app.zone_entries(&auth.user.actor(), id, q.status.as_deref()).await?;
    Ok(Json(EntryList { items: items.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    approve: bool,
    /// Required to reject.
    #[serde(default)]
    reason: String,
}

/// Approves or rejects a pending entry (operators). An approved entry prices carts at once.
#[utoipa::path(post, path = "/v1/zone-entries/{id}/review", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ReviewRequest,
    responses((status = 200, body = EntryResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn review_entry(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> ApiResult<Json<EntryResponse>> {
    Ok(Json(state.app.review_zone_entry(&auth.user.actor(), id, body.approve, &body.reason).await?.into()))
}

/// Takes an entry back (its shop's staff); an approved one stops pricing carts at once.
#[utoipa::path(post, path = "/v1/zone-entries/{id}/withdraw", tag = "campaigns", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = EntryResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn withdraw_entry(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<EntryResponse>> {
    Ok(Json(state.app.withdraw_zone_entry(&auth.user.actor(), id).await?.into()))
}
