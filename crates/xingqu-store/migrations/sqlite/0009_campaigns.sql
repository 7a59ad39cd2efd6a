-- Campaigns (好物节): a window, zones (专区) whose rules select products, theme days, the official
-- live room's schedule, subsidy pools (货品补贴) spent atomically by orders, and the SKUs merchants
-- enter into zones at a campaign price.

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    starts_at_ms BIGINT NOT NULL,
    ends_at_ms BIGINT NOT NULL,
    created_by_user_id BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    CHECK (ends_at_ms > starts_at_ms)
);
CREATE INDEX campaigns_window ON campaigns (ends_at_ms, starts_at_ms);

CREATE TABLE campaign_zones (
    id INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    name TEXT NOT NULL,
    -- The eligibility rule as JSON: tags, category ids, origin region prefixes, merchant ids and a
    -- price range; every criterion given must hold.
    rule TEXT NOT NULL,
    -- Traffic support for the zone's items: their target share of feed exposure, in basis points.
    traffic_target_bp BIGINT NOT NULL DEFAULT 0 CHECK (traffic_target_bp BETWEEN 0 AND 5000),
    created_at_ms BIGINT NOT NULL,
    UNIQUE (campaign_id, name)
);

CREATE TABLE campaign_theme_days (
    id INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    -- The day's start (midnight, China time) as unix milliseconds.
    day_starts_at_ms BIGINT NOT NULL,
    title TEXT NOT NULL,
    zone_id BIGINT REFERENCES campaign_zones (id),
    UNIQUE (campaign_id, day_starts_at_ms)
);

-- The official live room's schedule: sessions that string several brands on one broadcast.
CREATE TABLE campaign_live_slots (
    id INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    live_session_id BIGINT NOT NULL REFERENCES live_sessions (id),
    title TEXT NOT NULL,
    starts_at_ms BIGINT NOT NULL,
    ends_at_ms BIGINT NOT NULL,
    CHECK (ends_at_ms > starts_at_ms),
    UNIQUE (campaign_id, live_session_id)
);

CREATE TABLE zone_entries (
    id INTEGER PRIMARY KEY,
    zone_id BIGINT NOT NULL REFERENCES campaign_zones (id),
    sku_id BIGINT NOT NULL REFERENCES skus (id),
    product_id BIGINT NOT NULL REFERENCES products (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    campaign_price_fen BIGINT NOT NULL CHECK (campaign_price_fen > 0),
    -- The lowest list price of the 30 days before the application: the campaign price is below it.
    reference_price_fen BIGINT NOT NULL CHECK (reference_price_fen > campaign_price_fen),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    review_reason TEXT NOT NULL DEFAULT '',
    applied_by_user_id BIGINT NOT NULL REFERENCES users (id),
    applied_at_ms BIGINT NOT NULL,
    reviewed_by_user_id BIGINT REFERENCES users (id),
    reviewed_at_ms BIGINT,
    UNIQUE (zone_id, sku_id)
);
CREATE INDEX zone_entries_sku ON zone_entries (sku_id, status);
CREATE INDEX zone_entries_merchant ON zone_entries (merchant_id, id);

CREATE TABLE subsidy_pools (
    id INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    -- NULL: the pool subsidises every approved entry of the campaign.
    zone_id BIGINT REFERENCES campaign_zones (id),
    name TEXT NOT NULL,
    budget_fen BIGINT NOT NULL CHECK (budget_fen > 0),
    -- Spent by live orders; a guarded update keeps it within the budget under any concurrency.
    spent_fen BIGINT NOT NULL DEFAULT 0 CHECK (spent_fen >= 0 AND spent_fen <= budget_fen),
    -- Exactly one of: a fixed amount per unit, or a share of the unit price (capped per unit).
    per_unit_fen BIGINT CHECK (per_unit_fen > 0),
    percent_bp BIGINT CHECK (percent_bp BETWEEN 1 AND 9000),
    cap_per_unit_fen BIGINT CHECK (cap_per_unit_fen > 0),
    created_at_ms BIGINT NOT NULL,
    CHECK ((per_unit_fen IS NULL) <> (percent_bp IS NULL))
);
CREATE INDEX subsidy_pools_campaign ON subsidy_pools (campaign_id);

-- Each order line's subsidy, by pool: the platform funds it; a closed order gives it back.
CREATE TABLE order_subsidies (
    order_id BIGINT NOT NULL REFERENCES orders (id),
    line_id BIGINT NOT NULL,
    pool_id BIGINT NOT NULL REFERENCES subsidy_pools (id),
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (order_id, line_id, pool_id)
);
CREATE INDEX order_subsidies_pool ON order_subsidies (pool_id);

-- The device a checkout was placed from, when the client says (the brushing rules look for many
-- accounts buying from one device).
ALTER TABLE checkouts ADD COLUMN device_id TEXT;

-- Price protection also compares with a campaign price (an approved zone entry): payments are
-- once per (line, drop, flash sale, coupon, zone entry). Nothing references this table, so SQLite
-- rebuilds it here, ids kept.
CREATE TABLE price_protections_v3 (
    id INTEGER PRIMARY KEY,
    line_id BIGINT NOT NULL,
    drop_id BIGINT NOT NULL,
    flash_sale_id BIGINT NOT NULL DEFAULT 0,
    coupon_id BIGINT NOT NULL DEFAULT 0,
    coupon_off_fen BIGINT NOT NULL DEFAULT 0,
    -- The campaign entry whose price made today's price (0: none).
    zone_entry_id BIGINT NOT NULL DEFAULT 0,
    order_id BIGINT NOT NULL,
    buyer_user_id BIGINT NOT NULL,
    merchant_id BIGINT NOT NULL,
    units BIGINT NOT NULL,
    amount_fen BIGINT NOT NULL,
    platform_fen BIGINT NOT NULL,
    sweep_batch BIGINT,
    merchant_settled BIGINT NOT NULL,
    payout_status TEXT NOT NULL,
    payout_ref TEXT,
    created_by BIGINT,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (line_id, drop_id, flash_sale_id, coupon_id, zone_entry_id)
);
INSERT INTO price_protections_v3 (id, line_id, drop_id, flash_sale_id, coupon_id, coupon_off_fen, order_id,
    buyer_user_id, merchant_id, units, amount_fen, platform_fen, sweep_batch, merchant_settled, payout_status,
    payout_ref, created_by, created_at_ms)
SELECT id, line_id, drop_id, flash_sale_id, coupon_id, coupon_off_fen, order_id,
    buyer_user_id, merchant_id, units, amount_fen, platform_fen, sweep_batch, merchant_settled, payout_status,
    payout_ref, created_by, created_at_ms
FROM price_protections;
DROP TABLE price_protections;
ALTER TABLE price_protections_v3 RENAME TO price_protections;
CREATE INDEX price_protections_payout ON price_protections (id) WHERE payout_status = 'pending';
