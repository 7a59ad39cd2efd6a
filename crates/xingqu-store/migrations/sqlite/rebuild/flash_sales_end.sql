-- Rebuilds `flash_sales` with the wider window CHECK of migration 12 (an empty window: a sale
-- ended before its start), the way `orders_trade_types.sql` rebuilds `orders`: foreign keys off
-- (set by the caller), fill, drop, rename. Run by `Store::migrate`.
CREATE TABLE flash_sales_rebuilt (
    id INTEGER PRIMARY KEY,
    sku_id BIGINT NOT NULL REFERENCES skus (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    price_fen BIGINT NOT NULL CHECK (price_fen > 0),
    starts_at_ms BIGINT NOT NULL,
    ends_at_ms BIGINT NOT NULL,
    pool_units BIGINT NOT NULL CHECK (pool_units > 0),
    -- Units not held by live orders; never below zero: the pool cannot oversell.
    remaining_units BIGINT NOT NULL CHECK (remaining_units >= 0),
    per_user_limit BIGINT NOT NULL CHECK (per_user_limit > 0),
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    -- Set when the sale was ended before its time.
    ended_by BIGINT REFERENCES users (id),
    ended_at_ms BIGINT,
    end_reason TEXT,
    CONSTRAINT flash_sales_window CHECK (ends_at_ms >= starts_at_ms)
);
INSERT INTO flash_sales_rebuilt (id, sku_id, merchant_id, price_fen, starts_at_ms, ends_at_ms, pool_units,
    remaining_units, per_user_limit, created_by, created_at_ms, ended_by, ended_at_ms, end_reason)
SELECT id, sku_id, merchant_id, price_fen, starts_at_ms, ends_at_ms, pool_units, remaining_units, per_user_limit,
    created_by, created_at_ms, ended_by, ended_at_ms, end_reason FROM flash_sales;
DROP TABLE flash_sales;
ALTER TABLE flash_sales_rebuilt RENAME TO flash_sales;
CREATE INDEX flash_sales_sku ON flash_sales (sku_id);
