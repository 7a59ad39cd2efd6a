//! Interaction events: batch ingestion, and the replay feed for operators.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, MaybeAuth};
use crate::routes::IdPage;
use crate::time_format::{parse_rfc3339, rfc3339};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::events::EventInput;
use xingqu_domain::Invalid;
use xingqu_domain::catalog::page_limit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest, replay))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// impression, view, like, comment, share, follow, product_click, add_to_cart or purchase.
    kind: String,
    /// product, or creator (for follow).
    item_type: String,
    item_id: i64,
    /// For views: how long, in milliseconds.
    watch_ms: Option<i64>,
    /// RFC 3339; at most a minute ahead of the server, at most 30 days old.
    occurred_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// Required without a bearer token.
    device_id: Option<String>,
    /// 1 to 1,000 events; all are stored or none.
    events: Vec<EventBody>,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    accepted: usize,
    /// Arrival-order ids of the first and last event stored (for replay).
    first_id: i64,
    last_id: i64,
}

/// Records interaction events (signed in, or anonymous with a device id). All or nothing.
#[utoipa::path(post, path = "/v1/events", tag = "feed", request_body = EventBatch,
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "too_many, in_future, negative, unknown_item, …")))]
async fn ingest(
    State(state): State<AppState>,
    auth: MaybeAuth,
    ApiJson(body): ApiJson<EventBatch>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let mut events = Vec::with_capacity(body.events.len());
    for (index, event) in body.events.into_iter().enumerate() {
        let occurred_at_ms = parse_rfc3339(&event.occurred_at).ok_or_else(|| {
            Invalid::new("events", "invalid_time", format!("event {index}: occurred_at must be an RFC 3339 time"))
        })?;
        events.push(EventInput {
            kind: event.kind,
            item_type: event.item_type,
            item_id: event.item_id,
            watch_ms: event.watch_ms,
            occurred_at_ms,
        });
    }
    let actor = auth.actor();
    let (accepted, first_id, last_id) =
        state.app.ingest_events(actor.as_ref(), body.device_id.as_deref(), &events).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted, first_id, last_id })))
}

#[derive(Serialize, ToSchema)]
pub struct EventResponse {
    id: i64,
    user_id: Option<i64>,
    device_id: Option<String>,
    kind: String,
    item_type: String,
    item_id: i64,
    watch_ms: i64,
    occurred_at: String,
    received_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    items: Vec<EventResponse>,
    next_after_id: Option<i64>,
}

/// The event log in arrival order, after `after_id` (operators: replay and audit).
#[utoipa::path(get, path = "/v1/events", tag = "feed", security(("bearer" = [])), params(IdPage),
    responses((status = 200, body = EventPage), (status = 403, body = ErrorBody)))]
async fn replay(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(page): ApiQuery<IdPage>,
) -> ApiResult<Json<EventPage>> {
    let limit = page_limit(page.limit)?;
    let rows = state.app.replay_events(&auth.user.actor(), page.after_id.unwrap_or(0), limit).await?;
    let next_after_id = if rows.len() == limit as usize { rows.last().map(|r| r.id) } else { None };
    let items = rows
        .into_iter()
        .map(|r| EventResponse {
            id: r.id,
            user_id: r.user_id,
            device_id: r.device_id,
            kind: r.kind,
            item_type: r.item_type,
            item_id: r.item_id,
            watch_ms: r.watch_ms,
            occurred_at: rfc3339(r.occurred_at_ms),
            received_at: rfc3339(r.received_at_ms),
        })
        .collect();
    Ok(Json(EventPage { items, next_after_id }))
}
