-- After-sales and price protection: what each line promised at purchase, what it has paid back
-- since, and the after-sale records that pay it.

-- A SKU's price-protection promise; 0 days: not opted in. `protect_auto` = 1: a price cut pays
-- every eligible line by itself (a sweep), without a claim. `protect_platform_bps`: the
-- platform's share of what protection costs (a subsidised campaign), in basis points.
ALTER TABLE skus ADD COLUMN protect_window_days BIGINT NOT NULL DEFAULT 0 CHECK (protect_window_days IN (0, 7, 15, 30, 90));
ALTER TABLE skus ADD COLUMN protect_from TEXT NOT NULL DEFAULT 'placement' CHECK (protect_from IN ('placement', 'sign_off'));
ALTER TABLE skus ADD COLUMN protect_auto BIGINT NOT NULL DEFAULT 0;
ALTER TABLE skus ADD COLUMN protect_platform_bps BIGINT NOT NULL DEFAULT 0 CHECK (protect_platform_bps BETWEEN 0 AND 10000);
-- The first price drop that paid protection on the SKU, and 1 once another has too: a sweep
-- deducts earlier payments per line only where there can be any.
ALTER TABLE skus ADD COLUMN protect_first_drop_id BIGINT;
ALTER TABLE skus ADD COLUMN protect_multi BIGINT NOT NULL DEFAULT 0;

-- The line's promise at purchase: its price net of merchant-funded discounts (what price
-- protection compares with), the protection window, and the services in force (JSON names).
ALTER TABLE order_lines ADD COLUMN merchant_net_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN protect_window_days BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN protect_from TEXT NOT NULL DEFAULT 'placement';
ALTER TABLE order_lines ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
-- What the line has paid back: refunds of goods (and the units they covered) and other
-- compensation; the store itself refuses more than was paid. Price protection paid on a line is
-- the sum of its `price_protection` after-sales, not a running total here: a sweep over hundreds
-- of thousands of lines would otherwise rewrite every one of those wide rows, where appending the
-- after-sale rows is the whole write.
ALTER TABLE order_lines ADD COLUMN refunded_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN returned_units BIGINT NOT NULL DEFAULT 0 CHECK (returned_units BETWEEN 0 AND quantity);
ALTER TABLE order_lines ADD COLUMN compensation_fen BIGINT NOT NULL DEFAULT 0
    CHECK (refunded_fen >= 0 AND compensation_fen >= 0 AND refunded_fen + compensation_fen <= paid_fen);
-- Price-protection sweeps find a SKU's protected lines; unprotected lines pay nothing for it.
CREATE INDEX order_lines_protected ON order_lines (sku_id, id) WHERE protect_window_days > 0;

-- Every after-sale: a buyer's request or the system's own (price protection, compensation).
-- `amount_fen` goes back to the buyer and `merchant_fen + platform_fen` say who bears it. The
-- record is also the payout instruction: `pending` rows are sent to the gateway after commit,
-- under `after_sale:{id}`, and retried by the timers.
CREATE TABLE after_sales (
    id INTEGER PRIMARY KEY,
    -- No foreign keys: rows are only ever written from the lines they name (a sweep inserts them
    -- from a join over order_lines), and checking two parents per row would double a sweep's cost.
    order_id BIGINT NOT NULL,
    line_id BIGINT NOT NULL,
    buyer_user_id BIGINT NOT NULL,
    merchant_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    units BIGINT NOT NULL DEFAULT 0 CHECK (units >= 0),
    amount_fen BIGINT NOT NULL DEFAULT 0 CHECK (amount_fen >= 0),
    merchant_fen BIGINT NOT NULL DEFAULT 0 CHECK (merchant_fen >= 0),
    platform_fen BIGINT NOT NULL DEFAULT 0 CHECK (platform_fen >= 0),
    -- Price protection: the price change (price_history row) this record pays for.
    drop_id BIGINT,
    -- A sweep's batch (the highest line id it covered). A batch is posted to the ledger as one
    -- posting, merchant by merchant (not order by order); these rows attribute it to orders, and
    -- settlement deducts them from what it pays for an order.
    sweep_batch BIGINT,
    -- 1: the order was already settled, so the merchant's settlement account bore its part.
    merchant_settled BIGINT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '[]',
    idempotency_key TEXT,
    -- When a deadline acts on the record (merchant answer, buyer shipping, merchant refund).
    due_at_ms BIGINT,
    return_carrier TEXT,
    return_tracking TEXT,
    payout_status TEXT NOT NULL DEFAULT 'none' CHECK (payout_status IN ('none', 'pending', 'sent')),
    payout_ref TEXT,
    created_by BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CHECK (merchant_fen + platform_fen = amount_fen),
    -- One payment per line per price drop, however many sweeps or claims race.
    UNIQUE (line_id, drop_id)
);
-- Buyers' retries; system records (sweeps) carry no key and stay out of this index.
CREATE UNIQUE INDEX after_sales_idempotency ON after_sales (buyer_user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX after_sales_due ON after_sales (due_at_ms) WHERE due_at_ms IS NOT NULL;
CREATE INDEX after_sales_payout ON after_sales (id) WHERE payout_status = 'pending';
CREATE INDEX after_sales_merchant ON after_sales (merchant_id, id) WHERE drop_id IS NULL;

-- Every after-sale transition: who, when, why.
CREATE TABLE after_sale_events (
    id INTEGER PRIMARY KEY,
    after_sale_id BIGINT NOT NULL REFERENCES after_sales (id),
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    actor_user_id BIGINT,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX after_sale_events_after_sale ON after_sale_events (after_sale_id, id);

-- Price drops waiting for their automatic sweep (durable: a crash mid-sweep resumes from
-- `after_line_id`).
CREATE TABLE protection_sweeps (
    drop_id BIGINT PRIMARY KEY,
    sku_id BIGINT NOT NULL,
    after_line_id BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done')),
    refunds BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX protection_sweeps_pending ON protection_sweeps (drop_id) WHERE status = 'pending';
