-- The outgoing shipment of an after-sale that pays in goods: a re-ship's replacement, an
-- exchange's new item, repaired goods going back. Recorded when the merchant fulfils it.
ALTER TABLE after_sales ADD COLUMN replacement_carrier TEXT;
ALTER TABLE after_sales ADD COLUMN replacement_tracking TEXT;
