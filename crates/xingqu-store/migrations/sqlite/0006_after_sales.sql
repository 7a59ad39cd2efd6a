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

-- Every after-sale request (refunds, returns, exchanges, compensation claims): `amount_fen` goes
-- back to the buyer and `merchant_fen + platform_fen` say who bears it. Money goes out as a
-- `refunds` row (reference `after_sale:{id}`) written in the transaction that decides it.
CREATE TABLE after_sales (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    line_id BIGINT NOT NULL REFERENCES order_lines (id),
    buyer_user_id BIGINT NOT NULL,
    merchant_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    units BIGINT NOT NULL DEFAULT 0 CHECK (units >= 0),
    amount_fen BIGINT NOT NULL DEFAULT 0 CHECK (amount_fen >= 0),
    merchant_fen BIGINT NOT NULL DEFAULT 0 CHECK (merchant_fen >= 0),
    platform_fen BIGINT NOT NULL DEFAULT 0 CHECK (platform_fen >= 0),
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '[]',
    idempotency_key TEXT,
    -- When a deadline acts on the record (merchant answer, buyer shipping, merchant refund).
    due_at_ms BIGINT,
    return_carrier TEXT,
    return_tracking TEXT,
    created_by BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CHECK (merchant_fen + platform_fen = amount_fen),
    UNIQUE (buyer_user_id, idempotency_key)
);
CREATE INDEX after_sales_due ON after_sales (due_at_ms) WHERE due_at_ms IS NOT NULL;
CREATE INDEX after_sales_line ON after_sales (line_id);
CREATE INDEX after_sales_order ON after_sales (order_id);
CREATE INDEX after_sales_merchant ON after_sales (merchant_id, id);

-- Price protection paid (after-sales of kind `price_protection`, kept apart: a sweep writes
-- hundreds of thousands at once, so the rows are narrow and carry no foreign keys; they are only
-- ever written from the lines they name). One per line per price drop, however many sweeps or
-- claims race. The platform bears `platform_fen`, the merchant the rest. Rows are also the payout
-- instruction: `pending` ones go to the gateway under `price_protection:{id}` after commit and
-- are retried by the timers.
CREATE TABLE price_protections (
    id INTEGER PRIMARY KEY,
    line_id BIGINT NOT NULL,
    -- The price change (price_history row) paid for, and the flash sale whose price was lower
    -- still when the buyer claimed (0: none): today's price net of merchant-funded discounts.
    drop_id BIGINT NOT NULL,
    flash_sale_id BIGINT NOT NULL DEFAULT 0,
    order_id BIGINT NOT NULL,
    buyer_user_id BIGINT NOT NULL,
    merchant_id BIGINT NOT NULL,
    units BIGINT NOT NULL,
    amount_fen BIGINT NOT NULL,
    platform_fen BIGINT NOT NULL,
    -- A sweep's batch (the highest line id it covered), NULL for a claim or a payment at
    -- shipment. A batch is posted to the ledger as one posting, merchant by merchant; its rows
    -- attribute it to orders, and settlement deducts them from what it pays for an order.
    sweep_batch BIGINT,
    -- 1: the order was already settled, so the merchant's settlement account bore its part.
    merchant_settled BIGINT NOT NULL,
    payout_status TEXT NOT NULL,
    payout_ref TEXT,
    -- The buyer who claimed it; NULL when the platform paid it by itself.
    created_by BIGINT,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (line_id, drop_id, flash_sale_id)
);
CREATE INDEX price_protections_payout ON price_protections (id) WHERE payout_status = 'pending';

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
-- `after_line_id`): a list-price cut, or a flash sale below the list price (swept when it
-- starts, `due_at_ms`).
CREATE TABLE protection_sweeps (
    drop_id BIGINT NOT NULL,
    flash_sale_id BIGINT NOT NULL DEFAULT 0,
    due_at_ms BIGINT NOT NULL DEFAULT 0,
    sku_id BIGINT NOT NULL,
    after_line_id BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done')),
    refunds BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    PRIMARY KEY (drop_id, flash_sale_id)
);
CREATE INDEX protection_sweeps_pending ON protection_sweeps (due_at_ms) WHERE status = 'pending';

-- 安心购: a merchant's enrolment (the services it offers, operator-approved) and its
-- return-shipping insurance terms. Orders snapshot the services in force onto each line.
CREATE TABLE assurance_enrolments (
    merchant_id BIGINT PRIMARY KEY REFERENCES merchants (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    -- JSON array of service names (the five mandatory ones, optional dispatch promises,
    -- category extras).
    services TEXT NOT NULL,
    insurance_premium_fen BIGINT NOT NULL CHECK (insurance_premium_fen >= 0),
    insurance_cap_fen BIGINT NOT NULL CHECK (insurance_cap_fen >= 0),
    requested_by BIGINT NOT NULL,
    requested_at_ms BIGINT NOT NULL,
    decided_by BIGINT,
    decided_at_ms BIGINT,
    decision_reason TEXT
);

-- A line's return-shipping insurance policy (0: none): the merchant pays the premium out of its
-- settlement; the insurance pool pays the buyer's return freight up to the cap, once.
ALTER TABLE order_lines ADD COLUMN insurance_premium_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN insurance_cap_fen BIGINT NOT NULL DEFAULT 0;

-- What a return cost the buyer to ship, and when an express refund paid before the goods arrived.
ALTER TABLE after_sales ADD COLUMN return_freight_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE after_sales ADD COLUMN express_refunded_at_ms BIGINT;

-- Money an after-sale pays beyond the line's refund, once per kind whatever retries:
-- return-shipping insurance (from the insurance pool) and counterfeit compensation (假一赔N, by
-- the merchant). Sent through the gateway after commit; pending rows are retried by the timers.
CREATE TABLE after_sale_payouts (
    after_sale_id BIGINT NOT NULL REFERENCES after_sales (id),
    kind TEXT NOT NULL CHECK (kind IN ('return_shipping_insurance', 'counterfeit_compensation')),
    order_id BIGINT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    payout_status TEXT NOT NULL CHECK (payout_status IN ('pending', 'sent')),
    payout_ref TEXT,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (after_sale_id, kind)
);
CREATE INDEX after_sale_payouts_pending ON after_sale_payouts (after_sale_id) WHERE payout_status = 'pending';

-- Door pickup: the carrier collects a return at the buyer's door in a time slot.
CREATE TABLE pickup_tasks (
    after_sale_id BIGINT PRIMARY KEY REFERENCES after_sales (id),
    address TEXT NOT NULL,
    slot_starts_at_ms BIGINT NOT NULL,
    slot_ends_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('requested', 'collected')),
    carrier TEXT,
    tracking_number TEXT,
    created_at_ms BIGINT NOT NULL,
    collected_at_ms BIGINT
);

-- A missed dispatch promise is compensated once: the timer marks the order when it pays.
ALTER TABLE orders ADD COLUMN dispatch_compensated_at_ms BIGINT;
CREATE INDEX orders_due_dispatch ON orders (dispatch_deadline_ms)
    WHERE status = 'paid' AND dispatch_deadline_ms IS NOT NULL AND dispatch_compensated_at_ms IS NULL;

-- Goods whose quality changes once unsealed: excluded from seven-day no-reason returns only if
-- the product declares it and the buyer confirmed it at checkout (the line records both).
ALTER TABLE products ADD COLUMN unsealed_no_return BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN unsealed_no_return_confirmed BIGINT NOT NULL DEFAULT 0;
