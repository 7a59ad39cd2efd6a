-- Rebuilds `orders` with the trade types of migration 5 ('lucky_bag'), the way SQLite documents
-- for schema changes ALTER TABLE cannot make: foreign keys are off (set by the caller, outside the
-- transaction), the new table is filled from the old, the old is dropped and the new renamed, so
-- the tables that reference `orders` keep naming it. Run by `Store::migrate` on SQLite.
CREATE TABLE orders_rebuilt (
    id BIGINT PRIMARY KEY,
    checkout_id BIGINT NOT NULL REFERENCES checkouts (id),
    buyer_user_id BIGINT NOT NULL REFERENCES users (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    trade_type TEXT NOT NULL CHECK (trade_type IN ('normal', 'flash_sale', 'lucky_bag')),
    flash_sale_id BIGINT,
    status TEXT NOT NULL CHECK (status IN ('created', 'paid', 'shipped', 'delivered', 'completed', 'cancelled', 'expired')),
    goods_list_fen BIGINT NOT NULL,
    discount_fen BIGINT NOT NULL,
    shipping_fen BIGINT NOT NULL,
    total_fen BIGINT NOT NULL CHECK (total_fen >= 0),
    paid_fen BIGINT NOT NULL DEFAULT 0,
    refunded_fen BIGINT NOT NULL DEFAULT 0 CHECK (refunded_fen <= paid_fen),
    address TEXT NOT NULL,
    dispatch_promise TEXT NOT NULL,
    dispatch_deadline_ms BIGINT,
    carrier TEXT,
    tracking_number TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    paid_at_ms BIGINT,
    shipped_at_ms BIGINT,
    delivered_at_ms BIGINT,
    completed_at_ms BIGINT,
    closed_at_ms BIGINT,
    settled_at_ms BIGINT,
    commission_fen BIGINT NOT NULL DEFAULT 0
);
INSERT INTO orders_rebuilt SELECT id, checkout_id, buyer_user_id, merchant_id, trade_type, flash_sale_id, status,
    goods_list_fen, discount_fen, shipping_fen, total_fen, paid_fen, refunded_fen, address, dispatch_promise,
    dispatch_deadline_ms, carrier, tracking_number, created_at_ms, expires_at_ms, paid_at_ms, shipped_at_ms,
    delivered_at_ms, completed_at_ms, closed_at_ms, settled_at_ms, commission_fen FROM orders;
DROP TABLE orders;
ALTER TABLE orders_rebuilt RENAME TO orders;
CREATE INDEX orders_due_expiry ON orders (expires_at_ms) WHERE status = 'created';
CREATE INDEX orders_due_completion ON orders (delivered_at_ms) WHERE status = 'delivered';
CREATE INDEX orders_due_settlement ON orders (delivered_at_ms) WHERE status = 'completed' AND settled_at_ms IS NULL;
CREATE INDEX orders_buyer ON orders (buyer_user_id, id);
CREATE INDEX orders_merchant ON orders (merchant_id, id);
CREATE INDEX orders_checkout ON orders (checkout_id);
