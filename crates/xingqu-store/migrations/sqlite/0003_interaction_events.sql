-- Interaction events: what users do with products (and, when content lands, videos, live
-- sessions, creators). Append-only; the id is the arrival order, so consumers replay by id.
CREATE TABLE interaction_events (
    id INTEGER PRIMARY KEY,
    -- The signed-in user, or NULL with a device id for anonymous visitors.
    user_id BIGINT,
    device_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('impression', 'view', 'like', 'comment', 'share', 'follow', 'product_click', 'add_to_cart', 'purchase')),
    item_type TEXT NOT NULL CHECK (item_type IN ('product', 'creator')),
    item_id BIGINT NOT NULL,
    watch_ms BIGINT NOT NULL DEFAULT 0 CHECK (watch_ms >= 0),
    occurred_at_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    CHECK (user_id IS NOT NULL OR device_id IS NOT NULL)
);
CREATE INDEX interaction_events_user ON interaction_events (user_id, id);
