//! Interaction events from clients: validated as a batch (all or nothing), stored in arrival
//! order, replayable by operators and by the projections that learn from them.

use crate::{App, AppError, AppResult};
use xingqu_domain::account::Actor;
use xingqu_store::events::{EventRow, NewEvent};

/// Events in one request at most.
pub const BATCH_MAX: usize = 1_000;
/// How far ahead of the server's clock an event may claim to be (client clocks drift).
const FUTURE_SKEW_MS: i64 = 60_000;
/// How old an event may be when it arrives (offline clients upload late, but not forever).
const AGE_MAX_MS: i64 = 30 * 86_400_000;
const WATCH_MS_MAX: i64 = 86_400_000;

const KINDS: [&str; 9] =
    ["impression", "view", "like", "comment", "share", "follow", "product_click", "add_to_cart", "purchase"];
const ITEM_TYPES: [&str; 4] = ["product", "creator", "video", "live_session"];

/// Which kinds of event an item type takes: a follow is of a creator, shopping is of a product,
/// and content is watched and talked about.
fn kind_fits(kind: &str, item_type: &str) -> bool {
    match item_type {
        "creator" => kind == "follow",
        "product" => kind != "follow",
        _ => matches!(kind, "impression" | "view" | "like" | "comment" | "share"),
    }
}

/// One event as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInput {
    pub kind: String,
    pub item_type: String,
    pub item_id: i64,
    pub watch_ms: Option<i64>,
    pub occurred_at_ms: i64,
}

/// An anonymous viewer's device id, as events carry it and the feed is asked for it.
pub fn parse_device_id(raw: &str) -> AppResult<String> {
    let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(AppError::invalid("device_id", "invalid_device_id", "1-64 characters from A-Z a-z 0-9 - _"));
    }
    Ok(raw.to_owned())
}

fn refuse(index: usize, code: &'static str, message: impl std::fmt::Display) -> AppError {
    AppError::invalid("events", code, format!("event {index}: {message}"))
}

impl App {
    /// Validates and stores a batch of events from one user (or one anonymous device).
    /// Returns how many were stored and the ids of the first and last.
    pub async fn ingest_events(
        &self,
        actor: Option<&Actor>,
        device_id: Option<&str>,
        events: &[EventInput],
    ) -> AppResult<(usize, i64, i64)> {
        if events.is_empty() {
            return Err(AppError::invalid("events", "empty", "send at least one event"));
        }
        if events.len() > BATCH_MAX {
            return Err(AppError::invalid("events", "too_many", format!("at most {BATCH_MAX} events per request")));
        }
        let device_id = match device_id.map(str::trim) {
            Some(d) if !d.is_empty() => Some(parse_device_id(d)?),
            _ if actor.is_none() => {
                return Err(AppError::invalid("device_id", "missing", "anonymous events need a device_id"));
            }
            _ => None,
        };
        let now_ms = self.now_ms();
        let mut stored = Vec::with_capacity(events.len());
        let (mut products, mut creators, mut videos, mut live_sessions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (index, event) in events.iter().enumerate() {
            let Some(kind) = KINDS.iter().copied().find(|k| *k == event.kind) else {
                return Err(refuse(index, "unknown_kind", format!("kind must be one of {}", KINDS.join(", "))));
            };
            let Some(item_type) = ITEM_TYPES.iter().copied().find(|t| *t == event.item_type) else {
                return Err(refuse(
                    index,
                    "unknown_item_type",
                    format!("item_type must be one of {}", ITEM_TYPES.join(", ")),
                ));
            };
            if !kind_fits(kind, item_type) {
                return Err(refuse(
                    index,
                    "kind_item_mismatch",
                    "follow targets a creator; product_click, add_to_cart and purchase a product; \
                     videos and live sessions take impression, view, like, comment and share",
                ));
            }
            if event.item_id <= 0 {
                return Err(refuse(index, "unknown_item", format!("no {item_type} {}", event.item_id)));
            }
            let watch_ms = event.watch_ms.unwrap_or(0);
            if watch_ms < 0 {
                return Err(refuse(index, "negative", "watch_ms must not be negative"));
            }
            if watch_ms > WATCH_MS_MAX {
                return Err(refuse(index, "too_large", "watch_ms is at most a day"));
            }
            if event.occurred_at_ms > now_ms + FUTURE_SKEW_MS {
                return Err(refuse(index, "in_future", "occurred_at is in the future"));
            }
            if event.occurred_at_ms < now_ms - AGE_MAX_MS {
                return Err(refuse(index, "too_old", "occurred_at is more than 30 days ago"));
            }
            match item_type {
                "product" => products.push(event.item_id),
                "video" => videos.push(event.item_id),
                "live_session" => live_sessions.push(event.item_id),
                _ => creators.push(event.item_id),
            }
            stored.push(NewEvent {
                user_id: actor.map(|a| a.user_id),
                device_id: device_id.clone(),
                kind,
                item_type,
                item_id: event.item_id,
                watch_ms,
                occurred_at_ms: event.occurred_at_ms,
            });
        }
        let existing_products = self.store().existing_products(&dedup(&products)).await?;
        let existing_creators = self.store().existing_creators(&dedup(&creators)).await?;
        let existing_videos = self.store().existing_videos(&dedup(&videos)).await?;
        let existing_live = self.store().existing_live_sessions(&dedup(&live_sessions)).await?;
        for (ids, existing, item_type) in [
            (&products, existing_products, "product"),
            (&creators, existing_creators, "creator"),
            (&videos, existing_videos, "video"),
            (&live_sessions, existing_live, "live_session"),
        ] {
            if let Some(missing) = ids.iter().find(|id| !existing.contains(id)) {
                let index = events.iter().position(|e| e.item_id == *missing && e.item_type == item_type).unwrap_or(0);
                return Err(refuse(index, "unknown_item", format!("no {item_type} {missing}")));
            }
        }
        let (first_id, last_id) = self.store().append_events(&stored, now_ms).await?;
        // The feed learns from them at once: the viewer's next page reflects these actions.
        self.feed().observe_new(&stored, first_id).await;
        Ok((stored.len(), first_id, last_id))
    }

    /// Events after `after_id` in arrival order (operators: replay and audit).
    pub async fn replay_events(&self, actor: &Actor, after_id: i64, limit: u32) -> AppResult<Vec<EventRow>> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators replay the event log"));
        }
        Ok(self.store().events_after(after_id, limit).await?)
    }
}

fn dedup(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}
