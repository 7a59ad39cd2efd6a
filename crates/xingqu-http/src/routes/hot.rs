//! Real-time hot-sales lists.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::hotlist::{HotEntry, Measure, Window};
use xingqu_domain::Invalid;
use xingqu_domain::catalog::page_limit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hot_list))
        .routes(routes!(suspects))
        .routes(routes!(for_me))
        .routes(routes!(stream))
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
    let (window_name, window, measure_name, measure) = parse_list(q.window, q.measure)?;
    let limit = page_limit(q.limit)? as usize;
    let entries = state.app.hot_list_in(window, measure, q.category_id, q.zone_id, limit).await?;
    let items = ranked(entries);
    Ok(Json(HotListResponse { window: window_name, measure: measure_name, items }))
}

/// The window and measure of a list, by name (defaults 1h, units).
fn parse_list(window: Option<String>, measure: Option<String>) -> ApiResult<(String, Window, String, Measure)> {
    let window_name = window.unwrap_or_else(|| "1h".into());
    let window = match window_name.as_str() {
        "1h" => Window::Hour,
        "24h" => Window::Day,
        "campaign" => Window::CampaignToDate,
        _ => return Err(Invalid::new("window", "unknown_window", "must be 1h, 24h or campaign").into()),
    };
    let measure_name = measure.unwrap_or_else(|| "units".into());
    let measure = match measure_name.as_str() {
        "units" => Measure::Units,
        "gmv" => Measure::GmvFen,
        _ => return Err(Invalid::new("measure", "unknown_measure", "must be units or gmv").into()),
    };
    Ok((window_name, window, measure_name, measure))
}

/// How often a stream looks at its list.
const STREAM_CHECK_MS: u64 = 500;
/// A stream ends after this long; the browser's EventSource reconnects by itself (after the
/// `retry` it was sent), so a connection is never held forever.
const STREAM_LIFETIME_S: u64 = 10 * 60;
/// Streams open at once on this node, at most.
pub const STREAMS_MAX: usize = 256;

/// The top list as a server-sent-events stream: an `event: hot_list` with the list (the same JSON
/// as `GET /v1/hot-lists`) at once, then whenever the list changes (checked every 500 ms), and a
/// comment every 15 s to keep proxies from closing an idle connection. The stream ends after ten
/// minutes or when the server shuts down; clients reconnect. 503 `too_many_streams` past 256.
#[utoipa::path(get, path = "/v1/hot-lists/stream", tag = "orders", params(HotListQuery),
    responses((status = 200, content_type = "text/event-stream", body = HotListResponse,
               description = "events named hot_list whose data is a HotListResponse"),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn stream(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HotListQuery>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let (window_name, window, measure_name, measure) = parse_list(q.window, q.measure)?;
    let limit = page_limit(q.limit)? as usize;
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", "too many live streams; retry later")
    })?;
    let category_id = q.category_id;
    // A zone's SKUs are read once: a stream lasts minutes, entries approved meanwhile join at the
    // client's next reconnect.
    let zone_skus = match q.zone_id {
        Some(zone_id) => Some(state.app.zone_skus(zone_id).await?),
        None => None,
    };
    let app = state.app.clone();
    let ended = state.streams_end.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(STREAM_LIFETIME_S);
    let mut interval = tokio::time::interval(Duration::from_millis(STREAM_CHECK_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // (last list sent, first event?) — the first tick sends whatever the list is.
    let initial: (Option<Vec<(i64, i64)>>, bool) = (None, true);
    let events =
        futures_util::stream::unfold((initial, interval, permit), move |((mut last, first), mut interval, permit)| {
            let app = app.clone();
            let zone_skus = zone_skus.clone();
            let (window_name, measure_name) = (window_name.clone(), measure_name.clone());
            let mut ended = ended.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = interval.tick() => {}
                        () = tokio::time::sleep_until(deadline) => return None,
                        () = wait_for_end(&mut ended) => return None,
                    }
                    let top = app.hot_top(window, measure, category_id, zone_skus.as_deref(), limit);
                    if last.as_ref() == Some(&top) {
                        continue;
                    }
                    let entries = match app.hot_entries(top.clone()).await {
                        Ok(entries) => entries,
                        Err(error) => {
                            tracing::warn!(%error, "hot-list stream could not name its SKUs");
                            continue;
                        }
                    };
                    last = Some(top);
                    let list = HotListResponse {
                        window: window_name.clone(),
                        measure: measure_name.clone(),
                        items: ranked(entries),
                    };
                    let mut event = Event::default().event("hot_list").json_data(&list).unwrap_or_default();
                    if first {
                        event = event.retry(Duration::from_secs(1));
                    }
                    return Some((Ok(event), ((last, false), interval, permit)));
                }
            }
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Resolves when the server starts shutting down; never, when nobody can say so.
async fn wait_for_end(ended: &mut tokio::sync::watch::Receiver<bool>) {
    if ended.wait_for(|&end| end).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[derive(Serialize, ToSchema)]
pub struct SuspectResponse {
    order_id: i64,
    buyer_user_id: i64,
    sku_id: i64,
    units: i64,
    /// velocity, address_cluster or device_cluster.
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
