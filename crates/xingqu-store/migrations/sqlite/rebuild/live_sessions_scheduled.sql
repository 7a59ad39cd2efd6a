-- Rebuilds `live_sessions` with the `scheduled` status and its `scheduled_for_ms` (migration 8's
-- PostgreSQL half does the same with ALTER TABLE), the way `orders_trade_types.sql` rebuilds
-- `orders`: foreign keys off (set by the caller), fill, drop, rename. Run by `Store::migrate`.
CREATE TABLE live_sessions_rebuilt (
    id INTEGER PRIMARY KEY,
    creator_user_id BIGINT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'ended')),
    -- When it went live; while scheduled, when it is due to.
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    -- Set when it was announced ahead of time.
    scheduled_for_ms BIGINT
);
INSERT INTO live_sessions_rebuilt (id, creator_user_id, title, status, started_at_ms, ended_at_ms)
SELECT id, creator_user_id, title, status, started_at_ms, ended_at_ms FROM live_sessions;
DROP TABLE live_sessions;
ALTER TABLE live_sessions_rebuilt RENAME TO live_sessions;
CREATE INDEX live_sessions_creator ON live_sessions (creator_user_id, id);
