-- Accounts, sessions and the marketplace catalog.
-- Times are unix milliseconds (BIGINT); flags are 0/1 BIGINT; money is BIGINT 分; lists are JSON TEXT.
-- Both dialects share every column type, so one set of queries serves SQLite and PostgreSQL.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('consumer', 'merchant_staff', 'creator', 'operator')),
    merchant_id BIGINT,
    created_at_ms BIGINT NOT NULL,
    CHECK ((role = 'merchant_staff') = (merchant_id IS NOT NULL))
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE categories (
    id INTEGER PRIMARY KEY,
    parent_id BIGINT REFERENCES categories (id),
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- '/1/5/': the ids from the root down to this category, for subtree filters with LIKE.
    path TEXT NOT NULL,
    fresh BIGINT NOT NULL DEFAULT 0,
    cosmetics BIGINT NOT NULL DEFAULT 0,
    digital BIGINT NOT NULL DEFAULT 0,
    custom_made BIGINT NOT NULL DEFAULT 0,
    periodical BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX categories_path ON categories (path);

CREATE TABLE brands (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    domestic_brand BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE merchants (
    id INTEGER PRIMARY KEY,
    shop_name TEXT NOT NULL UNIQUE,
    region_code TEXT NOT NULL,
    qualification TEXT NOT NULL CHECK (qualification IN ('pending', 'approved', 'rejected')),
    qualification_reason TEXT NOT NULL DEFAULT '',
    owner_user_id BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE merchant_categories (
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    category_id BIGINT NOT NULL REFERENCES categories (id),
    PRIMARY KEY (merchant_id, category_id)
);

CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    category_id BIGINT NOT NULL REFERENCES categories (id),
    brand_id BIGINT REFERENCES brands (id),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    image_urls TEXT NOT NULL,
    farm_specialty BIGINT NOT NULL DEFAULT 0,
    geographic_indication BIGINT NOT NULL DEFAULT 0,
    intangible_heritage BIGINT NOT NULL DEFAULT 0,
    origin_region_code TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'pending_review', 'listed', 'delisted', 'banned')),
    status_reason TEXT NOT NULL DEFAULT '',
    -- Bumped on every change buyers can see (content, SKUs, prices); orders snapshot it.
    version BIGINT NOT NULL DEFAULT 1,
    -- The lowest SKU price, kept by every SKU write, so listings sort and filter without a join.
    min_price_fen BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX products_status_id ON products (status, id);
CREATE INDEX products_status_price ON products (status, min_price_fen, id);
CREATE INDEX products_merchant ON products (merchant_id, id);
CREATE INDEX products_category ON products (category_id);
CREATE INDEX products_region ON products (origin_region_code);

CREATE TABLE product_status_log (
    id INTEGER PRIMARY KEY,
    product_id BIGINT NOT NULL REFERENCES products (id),
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    actor_user_id BIGINT REFERENCES users (id),
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX product_status_log_product ON product_status_log (product_id, id);

CREATE TABLE skus (
    id INTEGER PRIMARY KEY,
    product_id BIGINT NOT NULL REFERENCES products (id),
    spec TEXT NOT NULL,
    price_fen BIGINT NOT NULL CHECK (price_fen > 0),
    stock BIGINT NOT NULL CHECK (stock >= 0),
    weight_g BIGINT NOT NULL CHECK (weight_g > 0),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX skus_product ON skus (product_id, id);

-- Append-only: every price a SKU has had, who set it and why. Price protection and
-- price-manipulation checks read it; nothing updates or deletes a row.
CREATE TABLE price_history (
    id INTEGER PRIMARY KEY,
    sku_id BIGINT NOT NULL REFERENCES skus (id),
    product_id BIGINT NOT NULL REFERENCES products (id),
    old_price_fen BIGINT,
    new_price_fen BIGINT NOT NULL,
    changed_at_ms BIGINT NOT NULL,
    actor_user_id BIGINT REFERENCES users (id),
    reason TEXT NOT NULL
);
CREATE INDEX price_history_sku ON price_history (sku_id, id);
