-- A flash sale can be ended before its time by the shop's staff or an operator (a wrong price, a
-- recall): who ended it, when and why are kept. Ended before its start, it never runs: its window
-- becomes empty (ends_at_ms = starts_at_ms), which the old CHECK refuses; `Store::migrate`
-- rebuilds the table for the wider CHECK afterwards (`rebuild/flash_sales_end.sql`).
ALTER TABLE flash_sales ADD COLUMN ended_by BIGINT REFERENCES users (id);
ALTER TABLE flash_sales ADD COLUMN ended_at_ms BIGINT;
ALTER TABLE flash_sales ADD COLUMN end_reason TEXT;
