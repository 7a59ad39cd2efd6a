//! Real-time hot-sales lists.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::hotlist::{HotEntry, Measure, Window};
use xingqu_domain::Invalid;
use xingqu_domain::catalog::page_limit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(hot_list)).routes(routes!(suspects)).routes(routes!(for_me))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HotListQuery {
    /// 1h (default), 24h or campaign (campaign to date: since the start of the earliest campaign
    /// running when the lists were rebuilt at start-up, or the day before it).
    window: Option<String>,
    /// units (default, net of refunds) or gmv (net, in 分).
    measure: Option<String>,
    /// Only this category.
    category_id: Option<i64>,
    /// Only this campaign zone's approved SKUs.
    zone_id: Option<i64>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HotEntryResponse {
    rank: usize,
    sku_id: i64,
    product_id: i64,
    title: String,
    /// Net units or net GMV (分) in the window.
    value: i64,
}

fn ranked(entries: Vec<HotEntry>) -> Vec<HotEntryResponse> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| HotEntryResponse {
            rank: i + 1,
            sku_id: e.sku_id,
            product_id: e.product_id,
            title: e.title,
            value: e.value,
        })
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct HotListResponse {
    window: String,
    measure: String,
    items: Vec<HotEntryResponse>,
}

/// The top SKUs by net units or net GMV over a sliding window, overall, in one category or in one
/// campaign zone.
/// Paid orders count within a second; refunds subtract; suspected brushing is excluded.
#[utoipa::path(get, path = "/v1/hot-lists", tag = "orders", params(HotListQuery),
    responses((status = 200, body = HotListResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn hot_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HotListQuery>,
) -> ApiResult<Json<HotListResponse>> {
    let window_name = q.window.unwrap_or_else(|| "1h".into());
    let window = match window_name.as_str() {
        "1h" => Window::Hour,
        "24h" => Window::Day,
        "campaign" => Window::CampaignToDate,
        _ => return Err(Invalid::new("window", "unknown_window", "must be 1h, 24h or campaign").into()),
    };
    let measure_name = q.measure.unwrap_or_else(|| "units".into());
    let measure = match measure_name.as_str() {
        "units" => Measure::Units,
        "gmv" => Measure::GmvFen,
        _ => return Err(Invalid::new("measure", "unknown_measure", "must be units or gmv").into()),
    };
    let limit = page_limit(q.limit)? as usize;
    let entries = state.app.hot_list_in(window, measure, q.category_id, q.zone_id, limit).await?;
    let items = ranked(entries);
    Ok(Json(HotListResponse { window: window_name, measure: measure_name, items }))
}

#[derive(Serialize, ToSchema)]
pub struct SuspectResponse {
    order_id: i64,
    buyer_user_id: i64,
    sku_id: i64,
    units: i64,
    /// velocity or address_cluster.
    rule: &'static str,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct SuspectList {
    items: Vec<SuspectResponse>,
}

/// Sales kept out of the hot lists as suspected brushing, most recent last (operators only).
#[utoipa::path(get, path = "/v1/hot-lists/suspects", tag = "orders", security(("bearer" = [])),
    responses((status = 200, body = SuspectList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn suspects(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<SuspectList>> {
    let items = state
        .app
        .brushing_suspects(&auth.user.actor())?
        .into_iter()
        .map(|s| SuspectResponse {
            order_id: s.order_id,
            buyer_user_id: s.buyer_user_id,
            sku_id: s.sku_id,
            units: s.units,
            rule: s.rule,
            at: crate::time_format::rfc3339(s.at_ms),
        })
        .collect();
    Ok(Json(SuspectList { items }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForMeQuery {
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

/// The signed-in consumer's hot list: the last day's top sellers in the categories they buy in.
#[utoipa::path(get, path = "/v1/hot-lists/for-me", tag = "orders", security(("bearer" = [])), params(ForMeQuery),
    responses((status = 200, body = HotListResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn for_me(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ForMeQuery>,
) -> ApiResult<Json<HotListResponse>> {
    let limit = page_limit(q.limit)? as usize;
    let entries = state.app.hot_list_for(&auth.user.actor(), limit).await?;
    let items = ranked(entries);
    Ok(Json(HotListResponse { window: "24h".into(), measure: "units".into(), items }))
}
