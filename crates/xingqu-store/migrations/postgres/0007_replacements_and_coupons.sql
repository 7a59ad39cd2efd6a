-- The outgoing shipment of an after-sale that pays in goods: a re-ship's replacement, an
-- exchange's new item, repaired goods going back. Recorded when the merchant fulfils it.
ALTER TABLE after_sales ADD COLUMN replacement_carrier TEXT;
ALTER TABLE after_sales ADD COLUMN replacement_tracking TEXT;

-- Today's price net of merchant-funded discounts counts the best shop coupon anyone may claim
-- now: a payment records it, and a line is paid once per (drop, flash sale, coupon).
ALTER TABLE price_protections ADD COLUMN coupon_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE price_protections ADD COLUMN coupon_off_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE price_protections DROP CONSTRAINT price_protections_line_id_drop_id_flash_sale_id_key;
ALTER TABLE price_protections ADD CONSTRAINT price_protections_once UNIQUE (line_id, drop_id, flash_sale_id, coupon_id);
