-- Live sessions with the events lucky bags check (join, watch time, comment), lucky bags, their
-- entries and winners, and the `lucky_bag` trade type for the winners' 0-yuan orders.
--
-- SQLite cannot change a CHECK in place: the orders table is rebuilt with the wider trade types
-- by `Store::migrate` right after this migration, outside a transaction (see `sqlite_rebuild`).

-- A creator's live session; viewers' activity in it is recorded as live events.
CREATE TABLE live_sessions (
    id INTEGER PRIMARY KEY,
    creator_user_id BIGINT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('live', 'ended')),
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT
);
CREATE INDEX live_sessions_creator ON live_sessions (creator_user_id, id);

-- What viewers did in a live session: joined, watched (`watch_ms` per heartbeat), commented.
CREATE TABLE live_events (
    id INTEGER PRIMARY KEY,
    live_session_id BIGINT NOT NULL REFERENCES live_sessions (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL CHECK (kind IN ('join', 'watch', 'comment')),
    watch_ms BIGINT NOT NULL DEFAULT 0 CHECK (watch_ms >= 0),
    comment TEXT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX live_events_session ON live_events (live_session_id, user_id);

-- A lucky bag: the prize (one unit of a SKU, or one coupon, per winner), the conditions, the
-- deadline, and the commitment sha256(seed) published at creation; the seed is revealed by the
-- draw. The K prize units are taken from stock when the bag opens and returned if unneeded.
CREATE TABLE lucky_bags (
    id INTEGER PRIMARY KEY,
    live_session_id BIGINT NOT NULL REFERENCES live_sessions (id),
    creator_user_id BIGINT NOT NULL REFERENCES users (id),
    prize TEXT NOT NULL CHECK (prize IN ('sku', 'coupon')),
    sku_id BIGINT REFERENCES skus (id),
    coupon_id BIGINT REFERENCES coupons (id),
    -- Who pays for the prizes: the creator, or the SKU's merchant.
    funder TEXT NOT NULL CHECK (funder IN ('creator', 'merchant')),
    winners BIGINT NOT NULL CHECK (winners > 0),
    watch_s_min BIGINT NOT NULL DEFAULT 0,
    comment_keyword TEXT,
    must_follow BIGINT NOT NULL DEFAULT 0,
    deadline_ms BIGINT NOT NULL,
    seed_sha256 TEXT NOT NULL,
    seed_hex TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'drawn')),
    drawn_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX lucky_bags_due ON lucky_bags (deadline_ms) WHERE status = 'open';

CREATE TABLE lucky_bag_entries (
    lucky_bag_id BIGINT NOT NULL REFERENCES lucky_bags (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    -- Where a prize goes: entrants of a bag of goods give their address when they join.
    address TEXT,
    joined_at_ms BIGINT NOT NULL,
    PRIMARY KEY (lucky_bag_id, user_id)
);

-- At most `winners` rows per bag (rank 1..K unique), one per user; written in the draw's transaction.
CREATE TABLE lucky_bag_winners (
    lucky_bag_id BIGINT NOT NULL REFERENCES lucky_bags (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    rank BIGINT NOT NULL CHECK (rank >= 1),
    order_id BIGINT,
    claim_id BIGINT,
    PRIMARY KEY (lucky_bag_id, user_id),
    UNIQUE (lucky_bag_id, rank)
);
