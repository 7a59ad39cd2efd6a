-- The outgoing shipment of an after-sale that pays in goods: a re-ship's replacement, an
-- exchange's new item, repaired goods going back. Recorded when the merchant fulfils it.
ALTER TABLE after_sales ADD COLUMN replacement_carrier TEXT;
ALTER TABLE after_sales ADD COLUMN replacement_tracking TEXT;

-- Today's price net of merchant-funded discounts counts the best shop coupon anyone may claim
-- now: a payment records it, and a line is paid once per (drop, flash sale, coupon). SQLite
-- cannot change a table's UNIQUE in place; nothing references this table, so it is rebuilt here.
CREATE TABLE price_protections_v2 (
    id INTEGER PRIMARY KEY,
    line_id BIGINT NOT NULL,
    drop_id BIGINT NOT NULL,
    flash_sale_id BIGINT NOT NULL DEFAULT 0,
    -- The shop coupon whose discount made today's price (0: none), and what it took off a unit.
    coupon_id BIGINT NOT NULL DEFAULT 0,
    coupon_off_fen BIGINT NOT NULL DEFAULT 0,
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
    UNIQUE (line_id, drop_id, flash_sale_id, coupon_id)
);
INSERT INTO price_protections_v2 (id, line_id, drop_id, flash_sale_id, order_id, buyer_user_id, merchant_id, units,
    amount_fen, platform_fen, sweep_batch, merchant_settled, payout_status, payout_ref, created_by, created_at_ms)
SELECT id, line_id, drop_id, flash_sale_id, order_id, buyer_user_id, merchant_id, units,
    amount_fen, platform_fen, sweep_batch, merchant_settled, payout_status, payout_ref, created_by, created_at_ms
FROM price_protections;
DROP TABLE price_protections;
ALTER TABLE price_protections_v2 RENAME TO price_protections;
CREATE INDEX price_protections_payout ON price_protections (id) WHERE payout_status = 'pending';
