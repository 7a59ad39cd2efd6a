-- Content: creators' short videos and the products each links, the products a live session
-- sells at a live price, and interaction events on videos and live sessions.

CREATE TABLE videos (
    id INTEGER PRIMARY KEY,
    creator_user_id BIGINT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    -- Topic tags as a JSON array of strings.
    tags TEXT NOT NULL DEFAULT '[]',
    duration_s BIGINT NOT NULL CHECK (duration_s BETWEEN 1 AND 3600),
    -- `removed` by its creator or an operator: never shown again.
    status TEXT NOT NULL CHECK (status IN ('published', 'removed')),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX videos_creator ON videos (creator_user_id, id);

CREATE TABLE video_products (
    video_id BIGINT NOT NULL REFERENCES videos (id),
    product_id BIGINT NOT NULL REFERENCES products (id),
    PRIMARY KEY (video_id, product_id)
);

CREATE TABLE live_session_products (
    live_session_id BIGINT NOT NULL REFERENCES live_sessions (id),
    sku_id BIGINT NOT NULL REFERENCES skus (id),
    live_price_fen BIGINT NOT NULL CHECK (live_price_fen > 0),
    PRIMARY KEY (live_session_id, sku_id)
);

-- Events may now be about videos and live sessions. SQLite cannot widen a CHECK in place;
-- nothing references this table, so it is rebuilt here, ids (the arrival order) kept.
CREATE TABLE interaction_events_v2 (
    id INTEGER PRIMARY KEY,
    user_id BIGINT,
    device_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('impression', 'view', 'like', 'comment', 'share', 'follow', 'product_click', 'add_to_cart', 'purchase')),
    item_type TEXT NOT NULL CHECK (item_type IN ('product', 'creator', 'video', 'live_session')),
    item_id BIGINT NOT NULL,
    watch_ms BIGINT NOT NULL DEFAULT 0 CHECK (watch_ms >= 0),
    occurred_at_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    CHECK (user_id IS NOT NULL OR device_id IS NOT NULL)
);
INSERT INTO interaction_events_v2 (id, user_id, device_id, kind, item_type, item_id, watch_ms, occurred_at_ms, received_at_ms)
SELECT id, user_id, device_id, kind, item_type, item_id, watch_ms, occurred_at_ms, received_at_ms FROM interaction_events;
DROP TABLE interaction_events;
ALTER TABLE interaction_events_v2 RENAME TO interaction_events;
CREATE INDEX interaction_events_user ON interaction_events (user_id, id);
