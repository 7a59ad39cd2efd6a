-- How far the flash-sale order journal (a file beside an embedded SQLite database) has been
-- applied to the tables: every journal frame up to `applied_seq` is in orders, order_lines,
-- checkouts, flash_sales and flash_purchases. Moved in the same transaction as the rows, so a
-- frame is applied exactly once, also across a crash. Unused on PostgreSQL, which has no journal.
CREATE TABLE flash_journal (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    applied_seq BIGINT NOT NULL CHECK (applied_seq >= 0)
);
INSERT INTO flash_journal (id, applied_seq) VALUES (1, 0);
