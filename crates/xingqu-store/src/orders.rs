//! Checkouts, orders and their lines, stock reservations and purchase limits, payments, refunds,
//! flash sales, and the queries the timers use to find due orders.

use crate::journal::Pending;
use crate::{Backend, Store, StoreError, Tx};
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

/// One of a few fixed words. Named, not written `&'static str` in the fields: serde borrows
/// fields spelled `&str` from its input, which a word read back with [`known_str`] is not.
pub type Word = &'static str;

/// A new order as written, also into the flash-sale journal (hence serde).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewOrder {
    pub id: i64,
    pub checkout_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    #[serde(deserialize_with = "known_str")]
    pub trade_type: Word,
    pub flash_sale_id: Option<i64>,
    pub goods_list_fen: i64,
    pub discount_fen: i64,
    pub shipping_fen: i64,
    pub total_fen: i64,
    pub address: String,
    #[serde(deserialize_with = "known_str")]
    pub dispatch_promise: Word,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewLine {
    pub id: i64,
    pub order_id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    pub product_version: i64,
    pub title: String,
    pub spec: String,
    pub unit_price_fen: i64,
    pub quantity: i64,
    pub list_total_fen: i64,
    pub discount_fen: i64,
    pub paid_fen: i64,
    pub discounts: String,
    pub commission_bps: i64,
    #[serde(deserialize_with = "known_str")]
    pub dispatch_promise: Word,
    pub flash_sale_id: Option<i64>,
    /// List total less merchant-funded discounts: what price protection compares with.
    pub merchant_net_fen: i64,
    /// The SKU's price-protection promise at purchase (0: none) and where its window starts.
    pub protect_window_days: i64,
    pub protect_from: String,
    /// The services in force at purchase, as a JSON array of names.
    pub services: String,
    /// The line's return-shipping insurance (0: none): the premium the merchant pays, the cap.
    pub insurance_premium_fen: i64,
    pub insurance_cap_fen: i64,
    /// The product declared its quality changes once unsealed and the buyer confirmed it.
    pub unsealed_no_return_confirmed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewCheckout {
    pub id: i64,
    pub buyer_user_id: i64,
    pub idempotency_key: String,
    pub request_sha256: String,
    pub total_fen: i64,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub checkout_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub trade_type: String,
    pub flash_sale_id: Option<i64>,
    pub status: String,
    pub goods_list_fen: i64,
    pub discount_fen: i64,
    pub shipping_fen: i64,
    pub total_fen: i64,
    pub paid_fen: i64,
    pub refunded_fen: i64,
    pub address: String,
    pub dispatch_promise: String,
    pub dispatch_deadline_ms: Option<i64>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub paid_at_ms: Option<i64>,
    pub shipped_at_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub settled_at_ms: Option<i64>,
    pub commission_fen: i64,
}

const ORDER_COLUMNS: &str = "id, checkout_id, buyer_user_id, merchant_id, trade_type, flash_sale_id, status, \
    goods_list_fen, discount_fen, shipping_fen, total_fen, paid_fen, refunded_fen, address, dispatch_promise, \
    dispatch_deadline_ms, carrier, tracking_number, created_at_ms, expires_at_ms, paid_at_ms, shipped_at_ms, \
    delivered_at_ms, completed_at_ms, closed_at_ms, settled_at_ms, commission_fen";

impl OrderRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            checkout_id: row.try_get("checkout_id")?,
            buyer_user_id: row.try_get("buyer_user_id")?,
            merchant_id: row.try_get("merchant_id")?,
            trade_type: row.try_get("trade_type")?,
            flash_sale_id: row.try_get("flash_sale_id")?,
            status: row.try_get("status")?,
            goods_list_fen: row.try_get("goods_list_fen")?,
            discount_fen: row.try_get("discount_fen")?,
            shipping_fen: row.try_get("shipping_fen")?,
            total_fen: row.try_get("total_fen")?,
            paid_fen: row.try_get("paid_fen")?,
            refunded_fen: row.try_get("refunded_fen")?,
            address: row.try_get("address")?,
            dispatch_promise: row.try_get("dispatch_promise")?,
            dispatch_deadline_ms: row.try_get("dispatch_deadline_ms")?,
            carrier: row.try_get("carrier")?,
            tracking_number: row.try_get("tracking_number")?,
            created_at_ms: row.try_get("created_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            paid_at_ms: row.try_get("paid_at_ms")?,
            shipped_at_ms: row.try_get("shipped_at_ms")?,
            delivered_at_ms: row.try_get("delivered_at_ms")?,
            completed_at_ms: row.try_get("completed_at_ms")?,
            closed_at_ms: row.try_get("closed_at_ms")?,
            settled_at_ms: row.try_get("settled_at_ms")?,
            commission_fen: row.try_get("commission_fen")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    pub id: i64,
    pub order_id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    pub product_version: i64,
    pub title: String,
    pub spec: String,
    pub unit_price_fen: i64,
    pub quantity: i64,
    pub list_total_fen: i64,
    pub discount_fen: i64,
    pub paid_fen: i64,
    pub discounts: String,
    pub commission_bps: i64,
    pub dispatch_promise: String,
    pub flash_sale_id: Option<i64>,
    pub merchant_net_fen: i64,
    pub protect_window_days: i64,
    pub protect_from: String,
    pub services: String,
    /// Paid back since purchase: refunds of goods (and the units returned), price protection,
    /// other compensation.
    pub refunded_fen: i64,
    pub returned_units: i64,
    pub protection_fen: i64,
    pub compensation_fen: i64,
    pub insurance_premium_fen: i64,
    pub insurance_cap_fen: i64,
    pub unsealed_no_return_confirmed: bool,
}

/// The columns of [`LineRow`] from `order_lines` known in the query as `t`; price protection is
/// the sum of the line's protection after-sales.
pub(crate) fn line_columns(t: &str) -> String {
    format!(
        "{t}.id, {t}.order_id, {t}.sku_id, {t}.product_id, {t}.product_version, {t}.title, {t}.spec, {t}.unit_price_fen, \
         {t}.quantity, {t}.list_total_fen, {t}.discount_fen, {t}.paid_fen, {t}.discounts, {t}.commission_bps, \
         {t}.dispatch_promise, {t}.flash_sale_id, {t}.merchant_net_fen, {t}.protect_window_days, {t}.protect_from, \
         {t}.services, {t}.refunded_fen, {t}.returned_units, {t}.compensation_fen, {t}.insurance_premium_fen, \
         {t}.insurance_cap_fen, {t}.unsealed_no_return_confirmed, {}",
        crate::price_protection::protection_paid_sql(&format!("{t}.id"))
    )
}

impl LineRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            sku_id: row.try_get("sku_id")?,
            product_id: row.try_get("product_id")?,
            product_version: row.try_get("product_version")?,
            title: row.try_get("title")?,
            spec: row.try_get("spec")?,
            unit_price_fen: row.try_get("unit_price_fen")?,
            quantity: row.try_get("quantity")?,
            list_total_fen: row.try_get("list_total_fen")?,
            discount_fen: row.try_get("discount_fen")?,
            paid_fen: row.try_get("paid_fen")?,
            discounts: row.try_get("discounts")?,
            commission_bps: row.try_get("commission_bps")?,
            dispatch_promise: row.try_get("dispatch_promise")?,
            flash_sale_id: row.try_get("flash_sale_id")?,
            merchant_net_fen: row.try_get("merchant_net_fen")?,
            protect_window_days: row.try_get("protect_window_days")?,
            protect_from: row.try_get("protect_from")?,
            services: row.try_get("services")?,
            refunded_fen: row.try_get("refunded_fen")?,
            returned_units: row.try_get("returned_units")?,
            protection_fen: row.try_get("protection_fen")?,
            compensation_fen: row.try_get("compensation_fen")?,
            insurance_premium_fen: row.try_get("insurance_premium_fen")?,
            insurance_cap_fen: row.try_get("insurance_cap_fen")?,
            unsealed_no_return_confirmed: row.try_get::<i64, _>("unsealed_no_return_confirmed")? != 0,
        })
    }
}

/// What a transition writes besides the status; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderChanges {
    pub paid_fen: Option<i64>,
    pub paid_at_ms: Option<i64>,
    pub dispatch_deadline_ms: Option<i64>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub shipped_at_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashSaleRow {
    pub id: i64,
    pub sku_id: i64,
    pub merchant_id: i64,
    pub price_fen: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub pool_units: i64,
    pub remaining_units: i64,
    pub per_user_limit: i64,
    /// Set when the sale was ended before its time (`ends_at_ms` is then when it ended, or its
    /// start when it never ran).
    pub ended_early: Option<FlashSaleEnd>,
}

/// Where a flash sale stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashSalePhase {
    Upcoming,
    Running,
    /// Past its end, or ended early after its start.
    Ended,
    /// Ended before its start: it never ran.
    Withdrawn,
}

impl FlashSalePhase {
    /// Where `sale` stands at `at_ms` (the Rust side of [`Store::flash_sales`]' phase filter).
    pub fn of(sale: &FlashSaleRow, at_ms: i64) -> Self {
        if sale.ends_at_ms <= sale.starts_at_ms {
            Self::Withdrawn
        } else if sale.ended_early.is_some() || at_ms >= sale.ends_at_ms {
            // Ended early, it is over as of the answer that ended it (its window closes at the
            // end of that millisecond).
            Self::Ended
        } else if at_ms < sale.starts_at_ms {
            Self::Upcoming
        } else {
            Self::Running
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upcoming => "upcoming",
            Self::Running => "running",
            Self::Ended => "ended",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Upcoming, Self::Running, Self::Ended, Self::Withdrawn].into_iter().find(|p| p.as_str() == name)
    }
}

/// Which flash sales a listing holds.
#[derive(Debug, Clone, Default)]
pub struct FlashSaleFilter {
    /// The time phases are judged at.
    pub at_ms: i64,
    pub phase: Option<FlashSalePhase>,
    pub merchant_id: Option<i64>,
    pub sku_id: Option<i64>,
    /// Operators see every sale; others the sales of listed products of approved shops, and
    /// shop staff their own shop's too.
    pub everything: bool,
    pub viewer_merchant_id: Option<i64>,
}

/// A new order's take from a flash pool: the pool must hold the units, and the sale must not have
/// been ended early.
const TAKE_NEW_ORDER: &str = "UPDATE flash_sales SET remaining_units = remaining_units - $1 \
     WHERE id = $2 AND remaining_units >= $1 AND ended_at_ms IS NULL";
/// A journalled order's take, applied to the tables: the pool's guard only.
const TAKE_JOURNALLED: &str =
    "UPDATE flash_sales SET remaining_units = remaining_units - $1 WHERE id = $2 AND remaining_units >= $1";

/// Who ended a flash sale before its time, when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashSaleEnd {
    pub by_user_id: i64,
    pub at_ms: i64,
    pub reason: String,
}

const FLASH_COLUMNS: &str = "id, sku_id, merchant_id, price_fen, starts_at_ms, ends_at_ms, pool_units, remaining_units, \
     per_user_limit, ended_by, ended_at_ms, end_reason";

impl FlashSaleRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            sku_id: row.try_get("sku_id")?,
            merchant_id: row.try_get("merchant_id")?,
            price_fen: row.try_get("price_fen")?,
            starts_at_ms: row.try_get("starts_at_ms")?,
            ends_at_ms: row.try_get("ends_at_ms")?,
            pool_units: row.try_get("pool_units")?,
            remaining_units: row.try_get("remaining_units")?,
            per_user_limit: row.try_get("per_user_limit")?,
            ended_early: match (row.try_get("ended_by")?, row.try_get("ended_at_ms")?) {
                (Some(by_user_id), Some(at_ms)) => Some(FlashSaleEnd {
                    by_user_id,
                    at_ms,
                    reason: row.try_get::<Option<String>, _>("end_reason")?.unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFlashSale {
    pub sku_id: i64,
    pub merchant_id: i64,
    pub price_fen: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub pool_units: i64,
    pub per_user_limit: i64,
    pub created_by: i64,
    pub now_ms: i64,
}

/// The fixed words a new order's `&'static str` fields hold (trade types, dispatch promises),
/// read back from the flash-sale journal as the same static strings.
const KNOWN_WORDS: [&str; 7] = ["normal", "flash_sale", "lucky_bag", "none", "within_48h", "within_24h", "same_day"];

fn known_str<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Word, D::Error> {
    let word = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    KNOWN_WORDS
        .iter()
        .copied()
        .find(|known| *known == word)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown word {word:?}")))
}

/// A multi-row `INSERT … VALUES (…), (…)` for `rows` rows of `columns`. SQLite gets anonymous
/// `?` placeholders: it resolves each numbered `$N` by a linear scan of the statement's parameter
/// names, which makes binding a statement of thousands of parameters quadratic.
pub(crate) fn multi_insert(backend: Backend, table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", row * columns.len() + column + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Rows per multi-row statement, largest first. A group is cut into pieces of these sizes only,
/// so a handful of statement texts serve every group size and stay in the prepared-statement
/// cache (preparing a statement of a thousand placeholders costs more than running it).
const STATEMENT_ROWS: [usize; 4] = [64, 16, 4, 1];

/// Cuts `items` into consecutive pieces whose lengths are in [`STATEMENT_ROWS`].
pub(crate) fn pieces<T>(items: &[T]) -> Vec<&[T]> {
    let mut pieces = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = STATEMENT_ROWS.iter().copied().find(|&n| n <= rest.len()).unwrap_or(1);
        let (piece, tail) = rest.split_at(size);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

const CHECKOUT_INSERT: [&str; 6] =
    ["id", "buyer_user_id", "idempotency_key", "request_sha256", "total_fen", "created_at_ms"];
const ORDER_INSERT: [&str; 15] = [
    "id",
    "checkout_id",
    "buyer_user_id",
    "merchant_id",
    "trade_type",
    "flash_sale_id",
    "status",
    "goods_list_fen",
    "discount_fen",
    "shipping_fen",
    "total_fen",
    "address",
    "dispatch_promise",
    "created_at_ms",
    "expires_at_ms",
];
const LINE_INSERT: [&str; 23] = [
    "id",
    "order_id",
    "sku_id",
    "product_id",
    "product_version",
    "title",
    "spec",
    "unit_price_fen",
    "quantity",
    "list_total_fen",
    "discount_fen",
    "paid_fen",
    "discounts",
    "commission_bps",
    "dispatch_promise",
    "flash_sale_id",
    "merchant_net_fen",
    "protect_window_days",
    "protect_from",
    "services",
    "insurance_premium_fen",
    "insurance_cap_fen",
    "unsealed_no_return_confirmed",
];

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_checkout<'q>(query: AnyQuery<'q>, c: &NewCheckout) -> AnyQuery<'q> {
    query
        .bind(c.id)
        .bind(c.buyer_user_id)
        .bind(c.idempotency_key.clone())
        .bind(c.request_sha256.clone())
        .bind(c.total_fen)
        .bind(c.created_at_ms)
}

fn bind_order<'q>(query: AnyQuery<'q>, o: &NewOrder) -> AnyQuery<'q> {
    query
        .bind(o.id)
        .bind(o.checkout_id)
        .bind(o.buyer_user_id)
        .bind(o.merchant_id)
        .bind(o.trade_type)
        .bind(o.flash_sale_id)
        .bind("created")
        .bind(o.goods_list_fen)
        .bind(o.discount_fen)
        .bind(o.shipping_fen)
        .bind(o.total_fen)
        .bind(o.address.clone())
        .bind(o.dispatch_promise)
        .bind(o.created_at_ms)
        .bind(o.expires_at_ms)
}

fn bind_line<'q>(query: AnyQuery<'q>, l: &NewLine) -> AnyQuery<'q> {
    query
        .bind(l.id)
        .bind(l.order_id)
        .bind(l.sku_id)
        .bind(l.product_id)
        .bind(l.product_version)
        .bind(l.title.clone())
        .bind(l.spec.clone())
        .bind(l.unit_price_fen)
        .bind(l.quantity)
        .bind(l.list_total_fen)
        .bind(l.discount_fen)
        .bind(l.paid_fen)
        .bind(l.discounts.clone())
        .bind(l.commission_bps)
        .bind(l.dispatch_promise)
        .bind(l.flash_sale_id)
        .bind(l.merchant_net_fen)
        .bind(l.protect_window_days)
        .bind(l.protect_from.clone())
        .bind(l.services.clone())
        .bind(l.insurance_premium_fen)
        .bind(l.insurance_cap_fen)
        .bind(i64::from(l.unsealed_no_return_confirmed))
}

impl Tx {
    /// Records checkouts; an idempotency key already used by the buyer is a conflict.
    pub async fn insert_checkouts(&mut self, checkouts: &[NewCheckout]) -> Result<(), StoreError> {
        for chunk in pieces(checkouts) {
            let sql = multi_insert(self.backend, "checkouts", &CHECKOUT_INSERT, chunk.len());
            chunk.iter().fold(sqlx::query(&sql), bind_checkout).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Records the device a checkout was placed from (apart from the insert, which the flash
    /// sale's group commit shares and keeps narrow).
    pub async fn set_checkout_device(&mut self, checkout_id: i64, device_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE checkouts SET device_id = $1 WHERE id = $2")
            .bind(device_id)
            .bind(checkout_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_orders(&mut self, orders: &[NewOrder]) -> Result<(), StoreError> {
        for chunk in pieces(orders) {
            let sql = multi_insert(self.backend, "orders", &ORDER_INSERT, chunk.len());
            chunk.iter().fold(sqlx::query(&sql), bind_order).execute(self.conn()).await?;
        }
        Ok(())
    }

    pub async fn insert_lines(&mut self, lines: &[NewLine]) -> Result<(), StoreError> {
        for chunk in pieces(lines) {
            let sql = multi_insert(self.backend, "order_lines", &LINE_INSERT, chunk.len());
            chunk.iter().fold(sqlx::query(&sql), bind_line).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Writes a group of flash-sale orders inside this transaction (PostgreSQL, or a group that
    /// SQLite's one-shot path could not take): their checkouts, orders and lines, the units they
    /// take from each pool (`takes`: sale, units) and what each buyer now holds (`holdings`: sale,
    /// buyer, units, limit). A pool that would go below zero fails the whole group
    /// ([`StoreError::Constraint`]).
    pub async fn insert_flash_group(&mut self, group: &FlashGroup<'_>) -> Result<(), StoreError> {
        self.insert_checkouts(group.checkouts).await?;
        self.insert_orders(group.orders).await?;
        self.insert_lines(group.lines).await?;
        for &(flash_sale_id, units) in group.takes {
            if !self.take_flash_units(flash_sale_id, units).await? {
                return Err(StoreError::Constraint);
            }
        }
        for &(flash_sale_id, user_id, units, limit_units) in group.holdings {
            self.add_flash_purchase(flash_sale_id, user_id, units, limit_units).await?;
        }
        Ok(())
    }

    /// Takes `units` from a SKU's stock if that many remain; false (and nothing taken) otherwise.
    pub async fn reserve_stock(&mut self, sku_id: i64, units: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE skus SET stock = stock - $1 WHERE id = $2 AND stock >= $1")
            .bind(units)
            .bind(sku_id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn return_stock(&mut self, sku_id: i64, units: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE skus SET stock = stock + $1 WHERE id = $2")
            .bind(units)
            .bind(sku_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Adds `units` (negative to release) to what a buyer holds of a SKU; returns the new total.
    pub async fn add_purchase(&mut self, user_id: i64, sku_id: i64, units: i64) -> Result<i64, StoreError> {
        // A release is a plain update: SQLite checks constraints on an upsert's proposed row, and
        // a negative proposed row would be refused even though it never lands.
        let sql = if units < 0 {
            "UPDATE purchases SET units = units + $3 WHERE user_id = $1 AND sku_id = $2 RETURNING units"
        } else {
            "INSERT INTO purchases (user_id, sku_id, units) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, sku_id) DO UPDATE SET units = purchases.units + excluded.units RETURNING units"
        };
        let row = sqlx::query(sql).bind(user_id).bind(sku_id).bind(units).fetch_one(self.conn()).await?;
        Ok(row.try_get("units")?)
    }

    /// Takes `units` from a flash sale's pool for a new order if that many remain (reserved first
    /// in the flash-sale journal's pool, which decides on SQLite) and the sale was not ended
    /// early: once its end is committed no new order takes from it, also none that another node's
    /// gate admitted before hearing of the end.
    pub async fn take_flash_units(&mut self, flash_sale_id: i64, units: i64) -> Result<bool, StoreError> {
        if self.flash_elsewhere {
            return Err(StoreError::FlashPoolsElsewhere);
        }
        if !self.effects.reserve_units(&mut self.inner, flash_sale_id, units).await? {
            return Ok(false);
        }
        self.take_flash_units_row(TAKE_NEW_ORDER, flash_sale_id, units).await
    }

    /// `sql` is [`TAKE_NEW_ORDER`], or [`TAKE_JOURNALLED`] for orders the journal already took
    /// (they were admitted before any end, and must apply whatever happened since).
    async fn take_flash_units_row(&mut self, sql: &str, flash_sale_id: i64, units: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql).bind(units).bind(flash_sale_id).execute(self.conn()).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn return_flash_units(&mut self, flash_sale_id: i64, units: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE flash_sales SET remaining_units = remaining_units + $1 WHERE id = $2")
            .bind(units)
            .bind(flash_sale_id)
            .execute(self.conn())
            .await?;
        self.effects.returned_units(flash_sale_id, units);
        Ok(())
    }

    /// Adds units a buyer holds of a flash sale; returns what they hold now. Beyond
    /// `limit_units` the store refuses it ([`StoreError::Constraint`]).
    pub async fn add_flash_purchase(
        &mut self,
        flash_sale_id: i64,
        user_id: i64,
        units: i64,
        limit_units: i64,
    ) -> Result<i64, StoreError> {
        if self.flash_elsewhere {
            return Err(StoreError::FlashPoolsElsewhere);
        }
        self.effects.reserve_holding(&mut self.inner, flash_sale_id, user_id, units, limit_units).await?;
        let row = sqlx::query(
            "INSERT INTO flash_purchases (flash_sale_id, user_id, units, limit_units) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (flash_sale_id, user_id) DO UPDATE SET units = flash_purchases.units + excluded.units RETURNING units",
        )
        .bind(flash_sale_id)
        .bind(user_id)
        .bind(units)
        .bind(limit_units)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("units")?)
    }

    /// Releases units a buyer held of a flash sale.
    pub async fn release_flash_purchase(
        &mut self,
        flash_sale_id: i64,
        user_id: i64,
        units: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE flash_purchases SET units = units - $3 WHERE flash_sale_id = $1 AND user_id = $2")
            .bind(flash_sale_id)
            .bind(user_id)
            .bind(units)
            .execute(self.conn())
            .await?;
        self.effects.released_holding(flash_sale_id, user_id, units);
        Ok(())
    }

    /// Writes journalled flash-sale orders to the tables (the journal's applier; SQLite): rows,
    /// the units each pool gave (`takes`: sale, units) and what each buyer holds now (`holdings`:
    /// sale, buyer, units, limit; one per sale and buyer). The pools' guards still apply.
    pub(crate) async fn apply_flash_rows(
        &mut self,
        checkouts: &[NewCheckout],
        orders: &[NewOrder],
        lines: &[NewLine],
        takes: &[(i64, i64)],
        holdings: &[(i64, i64, i64, i64)],
    ) -> Result<(), StoreError> {
        self.insert_checkouts(checkouts).await?;
        self.insert_orders(orders).await?;
        self.insert_lines(lines).await?;
        for &(flash_sale_id, units) in takes {
            if !self.take_flash_units_row(TAKE_JOURNALLED, flash_sale_id, units).await? {
                return Err(StoreError::Constraint);
            }
        }
        for chunk in pieces(holdings) {
            let sql = multi_insert(
                self.backend,
                "flash_purchases",
                &["flash_sale_id", "user_id", "units", "limit_units"],
                chunk.len(),
            ) + " ON CONFLICT (flash_sale_id, user_id) DO UPDATE SET units = flash_purchases.units + excluded.units";
            chunk
                .iter()
                .fold(sqlx::query(&sql), |q, &(sale, user, units, limit)| {
                    q.bind(sale).bind(user).bind(units).bind(limit)
                })
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn set_journal_applied_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE flash_journal SET applied_seq = $1 WHERE id = 1")
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Moves an order from `from` to `to` with `changes`, and audits it; an order no longer in
    /// `from` is [`StoreError::Concurrent`] (someone else's transition won).
    pub async fn transition_order(
        &mut self,
        order_id: i64,
        from: &str,
        to: &str,
        changes: &OrderChanges,
        change: crate::products::Change<'_>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET status = $1, paid_fen = COALESCE($2, paid_fen), paid_at_ms = COALESCE($3, paid_at_ms), \
             dispatch_deadline_ms = COALESCE($4, dispatch_deadline_ms), carrier = COALESCE($5, carrier), \
             tracking_number = COALESCE($6, tracking_number), shipped_at_ms = COALESCE($7, shipped_at_ms), \
             delivered_at_ms = COALESCE($8, delivered_at_ms), completed_at_ms = COALESCE($9, completed_at_ms), \
             closed_at_ms = COALESCE($10, closed_at_ms) WHERE id = $11 AND status = $12",
        )
        .bind(to)
        .bind(changes.paid_fen)
        .bind(changes.paid_at_ms)
        .bind(changes.dispatch_deadline_ms)
        .bind(changes.carrier.clone())
        .bind(changes.tracking_number.clone())
        .bind(changes.shipped_at_ms)
        .bind(changes.delivered_at_ms)
        .bind(changes.completed_at_ms)
        .bind(changes.closed_at_ms)
        .bind(order_id)
        .bind(from)
        .execute(self.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Concurrent);
        }
        sqlx::query(
            "INSERT INTO order_events (order_id, from_status, to_status, actor_user_id, reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(order_id)
        .bind(from)
        .bind(to)
        .bind(change.actor_user_id)
        .bind(change.reason)
        .bind(change.now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records a payment request for an order, or returns the one already recorded.
    pub async fn upsert_payment(
        &mut self,
        order_id: i64,
        gateway: &str,
        amount_fen: i64,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO payments (order_id, gateway, amount_fen, status, created_at_ms) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(gateway)
        .bind(amount_fen)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        let row =
            sqlx::query("SELECT id FROM payments WHERE order_id = $1").bind(order_id).fetch_one(self.conn()).await?;
        Ok(row.try_get("id")?)
    }

    /// The gateway's reference of the payment that paid an order, if any.
    pub async fn payment_gateway_ref(&mut self, order_id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT gateway_ref FROM payments WHERE order_id = $1 AND status = 'succeeded'")
            .bind(order_id)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| r.try_get("gateway_ref")).transpose()?.flatten())
    }

    /// Marks the order's payment succeeded, once: false if it already was.
    pub async fn succeed_payment(&mut self, order_id: i64, gateway_ref: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE payments SET status = 'succeeded', gateway_ref = $1, succeeded_at_ms = $2 WHERE order_id = $3 AND status = 'pending'",
        )
        .bind(gateway_ref)
        .bind(now_ms)
        .bind(order_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a pending refund under `reference` and adds it to the order's refunded total; the
    /// database refuses a total above what was paid ([`StoreError::Concurrent`]).
    pub async fn insert_refund(
        &mut self,
        order_id: i64,
        amount_fen: i64,
        reference: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refunds (order_id, amount_fen, reference, status, reason, created_at_ms) \
             VALUES ($1, $2, $3, 'pending', $4, $5)",
        )
        .bind(order_id)
        .bind(amount_fen)
        .bind(reference)
        .bind(reason)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        let done = sqlx::query(
            "UPDATE orders SET refunded_fen = refunded_fen + $1 WHERE id = $2 AND refunded_fen + $1 <= paid_fen",
        )
        .bind(amount_fen)
        .bind(order_id)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Concurrent) }
    }

    /// Marks a completed order settled, once.
    pub async fn mark_settled(&mut self, order_id: i64, commission_fen: i64, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET settled_at_ms = $1, commission_fen = $2 WHERE id = $3 AND status = 'completed' AND settled_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(commission_fen)
        .bind(order_id)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Concurrent) }
    }

    pub async fn insert_flash_sale(&mut self, sale: &NewFlashSale) -> Result<FlashSaleRow, StoreError> {
        let sql = format!(
            "INSERT INTO flash_sales (sku_id, merchant_id, price_fen, starts_at_ms, ends_at_ms, pool_units, remaining_units, \
             per_user_limit, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) RETURNING {FLASH_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(sale.sku_id)
            .bind(sale.merchant_id)
            .bind(sale.price_fen)
            .bind(sale.starts_at_ms)
            .bind(sale.ends_at_ms)
            .bind(sale.pool_units)
            .bind(sale.per_user_limit)
            .bind(sale.created_by)
            .bind(sale.now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(FlashSaleRow::from_row(&row)?)
    }

    /// Ends a flash sale at `end.at_ms`, before its time: it sells through this millisecond (what
    /// a gate admitted in it stays inside the window), or, not yet started, never runs (its
    /// window becomes empty at its start). False when it is over already or was ended early (by
    /// another node, perhaps): a sale is ended once, and its window never shrinks below orders
    /// already admitted.
    pub async fn end_flash_sale(&mut self, flash_sale_id: i64, end: &FlashSaleEnd) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE flash_sales SET ends_at_ms = CASE WHEN starts_at_ms > $1 THEN starts_at_ms ELSE $1 + 1 END, \
             ended_by = $2, ended_at_ms = $1, end_reason = $3 WHERE id = $4 AND ends_at_ms > $1 AND ended_at_ms IS NULL",
        )
        .bind(end.at_ms)
        .bind(end.by_user_id)
        .bind(&end.reason)
        .bind(flash_sale_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes an order's row lock (PostgreSQL; SQLite's single writer already serialises) before
    /// its lines: every writer that touches both takes the order first, so none waits on another
    /// in a cycle.
    pub async fn lock_order(&mut self, id: i64) -> Result<(), StoreError> {
        if self.backend == crate::Backend::Postgres {
            sqlx::query("SELECT id FROM orders WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(self.conn()).await?;
        }
        Ok(())
    }

    pub async fn order(&mut self, id: i64) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(OrderRow::from_row).transpose()?)
    }

    pub async fn lines(&mut self, order_id: i64) -> Result<Vec<LineRow>, StoreError> {
        let sql = format!("SELECT {} FROM order_lines WHERE order_id = $1 ORDER BY id", line_columns("order_lines"));
        let rows = sqlx::query(&sql).bind(order_id).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(LineRow::from_row).collect::<Result<_, _>>()?)
    }
}

/// Which orders a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderScope {
    Buyer(i64),
    Merchant(i64),
    Checkout(i64),
}

/// A group of flash-sale orders to commit together (see [`Store::commit_flash_group`]).
#[derive(Debug, Clone, Copy)]
pub struct FlashGroup<'a> {
    pub checkouts: &'a [NewCheckout],
    pub orders: &'a [NewOrder],
    pub lines: &'a [NewLine],
    /// (flash sale, units taken from its pool).
    pub takes: &'a [(i64, i64)],
    /// (flash sale, buyer, units bought now, the sale's per-buyer limit).
    pub holdings: &'a [(i64, i64, i64, i64)],
    /// The orders encoded for the flash-sale journal instead of as rows (the three row slices are
    /// then empty), when [`Store::journalled`]. Given rows, the journal encodes them itself.
    pub encoded: &'a [crate::journal::EncodedOrder],
}

impl Store {
    /// Commits a group of flash-sale orders in one transaction: all of them or none. A pool that
    /// would go below zero, or a buyer past the limit, fails the group ([`StoreError::Constraint`]);
    /// an idempotency key taken fails it with [`StoreError::Conflict`].
    ///
    /// On SQLite the whole transaction (`BEGIN IMMEDIATE`, the multi-row inserts, the updates,
    /// `COMMIT`) is one multi-statement call: one hand-over to the database thread instead of four,
    /// each of which waited for that thread to be scheduled on a busy machine. A statement that
    /// fails stops the call before `COMMIT`, and the transaction is rolled back.
    pub async fn commit_flash_group(&self, group: &FlashGroup<'_>) -> Result<(), StoreError> {
        if self.flash_pools_elsewhere() {
            return Err(StoreError::FlashPoolsElsewhere);
        }
        if let Some(journal) = self.journal() {
            return journal.commit(self, group).await;
        }
        if self.backend == Backend::Postgres || group.checkouts.is_empty() {
            let mut tx = self.begin().await?;
            tx.insert_flash_group(group).await?;
            return tx.commit().await;
        }
        let mut sql = String::from("BEGIN IMMEDIATE;\n");
        sql.push_str(&multi_insert(Backend::Sqlite, "checkouts", &CHECKOUT_INSERT, group.checkouts.len()));
        sql.push_str(";\n");
        sql.push_str(&multi_insert(Backend::Sqlite, "orders", &ORDER_INSERT, group.orders.len()));
        sql.push_str(";\n");
        sql.push_str(&multi_insert(Backend::Sqlite, "order_lines", &LINE_INSERT, group.lines.len()));
        sql.push_str(";\n");
        for _ in group.takes {
            // The CHECK (remaining_units >= 0) refuses an oversell; the statement is unguarded.
            sql.push_str("UPDATE flash_sales SET remaining_units = remaining_units - ? WHERE id = ?;\n");
        }
        if !group.holdings.is_empty() {
            sql.push_str(&multi_insert(
                Backend::Sqlite,
                "flash_purchases",
                &["flash_sale_id", "user_id", "units", "limit_units"],
                group.holdings.len(),
            ));
            sql.push_str(
                " ON CONFLICT (flash_sale_id, user_id) DO UPDATE SET units = flash_purchases.units + excluded.units;\n",
            );
        }
        sql.push_str("COMMIT;");
        let mut query = sqlx::query(&sql).persistent(false);
        query = group.checkouts.iter().fold(query, bind_checkout);
        query = group.orders.iter().fold(query, bind_order);
        query = group.lines.iter().fold(query, bind_line);
        for &(flash_sale_id, units) in group.takes {
            query = query.bind(units).bind(flash_sale_id);
        }
        for &(flash_sale_id, user_id, units, limit_units) in group.holdings {
            query = query.bind(flash_sale_id).bind(user_id).bind(units).bind(limit_units);
        }
        let mut conn = self.write.acquire().await?;
        match query.execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(error) => {
                // Stopped before COMMIT: undo what ran. When BEGIN itself failed there is nothing to
                // roll back, and SQLite says so; that answer is not an error here.
                let _ = conn.execute("ROLLBACK").await;
                Err(error.into())
            }
        }
    }

    /// The device a checkout was placed from, if the client said.
    pub async fn checkout_device(&self, checkout_id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT device_id FROM checkouts WHERE id = $1")
            .bind(checkout_id)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>("device_id")).transpose()?.flatten())
    }

    pub async fn order(&self, id: i64) -> Result<Option<OrderRow>, StoreError> {
        self.settle(Pending::Order(id)).await;
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(OrderRow::from_row).transpose()?)
    }

    pub async fn lines(&self, order_id: i64) -> Result<Vec<LineRow>, StoreError> {
        self.settle(Pending::Order(order_id)).await;
        let sql = format!("SELECT {} FROM order_lines WHERE order_id = $1 ORDER BY id", line_columns("order_lines"));
        let rows = sqlx::query(&sql).bind(order_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(LineRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Orders in `scope`, newest first, before `before_id`, at most `limit`.
    pub async fn orders(
        &self,
        scope: OrderScope,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let (column, value, pending) = match scope {
            OrderScope::Buyer(id) => ("buyer_user_id", id, Pending::Buyer(id)),
            OrderScope::Merchant(id) => ("merchant_id", id, Pending::Merchant(id)),
            OrderScope::Checkout(id) => ("checkout_id", id, Pending::Checkout(id)),
        };
        self.settle(pending).await;
        let sql =
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE {column} = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(value)
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(OrderRow::from_row).collect::<Result<_, _>>()?)
    }

    /// An order's transitions, oldest first: from, to, actor, reason, when.
    pub async fn order_events(&self, order_id: i64) -> Result<Vec<crate::products::StatusChangeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, actor_user_id, reason, at_ms FROM order_events WHERE order_id = $1 ORDER BY id LIMIT 100",
        )
        .bind(order_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(crate::products::StatusChangeRow::from_row).collect::<Result<_, _>>()?)
    }

    /// What paid orders sold, per line: (sku, category, units, paid 分, paid at). One order's
    /// lines, or every order paid since `since_ms` and not cancelled (a cancelled order's sale
    /// and refund cancel out): what the hot lists are fed and rebuilt from.
    pub async fn sold_lines(
        &self,
        order_id: Option<i64>,
        since_ms: i64,
    ) -> Result<Vec<(i64, i64, i64, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.sku_id, p.category_id, l.quantity - l.returned_units AS quantity, \
             l.paid_fen - l.refunded_fen AS paid_fen, o.paid_at_ms FROM order_lines l \
             JOIN orders o ON o.id = l.order_id JOIN products p ON p.id = l.product_id \
             WHERE o.paid_at_ms IS NOT NULL AND ($1 = 0 OR o.id = $1) AND o.paid_at_ms >= $2 \
             AND ($1 <> 0 OR o.status <> 'cancelled')",
        )
        .bind(order_id.unwrap_or(0))
        .bind(since_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("sku_id")?,
                    r.try_get("category_id")?,
                    r.try_get("quantity")?,
                    r.try_get("paid_fen")?,
                    r.try_get("paid_at_ms")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The categories a buyer bought in most since `since_ms`, most first, at most `limit`.
    pub async fn buyer_categories(
        &self,
        buyer_user_id: i64,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.category_id, COUNT(*) AS n FROM order_lines l JOIN orders o ON o.id = l.order_id \
             JOIN products p ON p.id = l.product_id \
             WHERE o.buyer_user_id = $1 AND o.paid_at_ms IS NOT NULL AND o.paid_at_ms >= $2 \
             GROUP BY p.category_id ORDER BY n DESC, p.category_id LIMIT $3",
        )
        .bind(buyer_user_id)
        .bind(since_ms)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(|r| r.try_get("category_id")).collect::<Result<_, _>>()?)
    }

    /// The largest app-generated id in the store (checkouts, orders, lines, coupon claims), 0 when empty.
    pub async fn max_generated_id(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(MAX(m), 0) AS BIGINT) AS m FROM (SELECT MAX(id) AS m FROM checkouts \
             UNION ALL SELECT MAX(id) FROM orders UNION ALL SELECT MAX(id) FROM order_lines \
             UNION ALL SELECT MAX(id) FROM coupon_claims) x",
        )
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("m")?)
    }

    /// The checkout a buyer made under an idempotency key: (checkout id, request hash).
    pub async fn checkout_by_key(&self, buyer_user_id: i64, key: &str) -> Result<Option<(i64, String)>, StoreError> {
        self.settle(Pending::Buyer(buyer_user_id)).await;
        let row =
            sqlx::query("SELECT id, request_sha256 FROM checkouts WHERE buyer_user_id = $1 AND idempotency_key = $2")
                .bind(buyer_user_id)
                .bind(key)
                .fetch_optional(self.reader())
                .await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get("request_sha256")?))).transpose()
    }

    /// Marks a refund the gateway confirmed.
    pub async fn mark_refund_sent(&self, reference: &str, gateway_ref: &str, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE refunds SET status = 'sent', gateway_ref = $1, sent_at_ms = $2 WHERE reference = $3 AND status = 'pending'")
            .bind(gateway_ref)
            .bind(now_ms)
            .bind(reference)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Refunds the gateway has not confirmed, created at or before `before_ms`: (reference,
    /// order, amount).
    pub async fn pending_refunds(&self, before_ms: i64, limit: u32) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT reference, order_id, amount_fen FROM refunds WHERE status = 'pending' AND created_at_ms <= $1 \
             ORDER BY created_at_ms LIMIT $2",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("reference")?, r.try_get("order_id")?, r.try_get("amount_fen")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Ids of orders a timer must act on at `now`: `due_ms` is the expiry time for
    /// [`Due::Expiry`] and the latest delivery time that qualifies for the others.
    pub async fn due_orders(&self, due: Due, due_ms: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        // Journalled flash-sale orders are due too: the timers see them once they are applied.
        if due == Due::Expiry {
            self.settle_due(due_ms).await;
        }
        // Literal predicates, so the planners use the partial indexes of the migration.
        let sql = match due {
            Due::Expiry => {
                "SELECT id FROM orders WHERE status = 'created' AND expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2"
            }
            Due::Completion => {
                "SELECT id FROM orders WHERE status = 'delivered' AND delivered_at_ms <= $1 ORDER BY delivered_at_ms LIMIT $2"
            }
            Due::Settlement => {
                "SELECT id FROM orders WHERE status = 'completed' AND settled_at_ms IS NULL AND delivered_at_ms <= $1 \
                 ORDER BY delivered_at_ms LIMIT $2"
            }
        };
        let rows = sqlx::query(sql).bind(due_ms).bind(i64::from(limit)).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
    }

    pub async fn flash_sale(&self, id: i64) -> Result<Option<FlashSaleRow>, StoreError> {
        let sql = format!("SELECT {FLASH_COLUMNS} FROM flash_sales WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(FlashSaleRow::from_row).transpose()?.map(|sale| self.with_journal_pool(sale)))
    }

    /// Flash sales newest first, before `before_id`, at most `limit`, as `filter` asks.
    pub async fn flash_sales(
        &self,
        filter: &FlashSaleFilter,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FlashSaleRow>, StoreError> {
        // $1 is the time the phases are judged at; the rest are bound in the order pushed.
        let mut conditions = vec![
            match filter.phase {
                None => "TRUE",
                Some(FlashSalePhase::Upcoming) => "f.starts_at_ms > $1 AND f.ends_at_ms > f.starts_at_ms",
                Some(FlashSalePhase::Running) => "f.starts_at_ms <= $1 AND f.ends_at_ms > $1 AND f.ended_at_ms IS NULL",
                Some(FlashSalePhase::Ended) => {
                    "f.ends_at_ms > f.starts_at_ms AND (f.ends_at_ms <= $1 OR f.ended_at_ms IS NOT NULL)"
                }
                Some(FlashSalePhase::Withdrawn) => "f.ends_at_ms <= f.starts_at_ms",
            }
            .to_owned(),
        ];
        let mut binds = Vec::new();
        for (column, value) in [("f.merchant_id", filter.merchant_id), ("f.sku_id", filter.sku_id)] {
            if let Some(value) = value {
                binds.push(value);
                conditions.push(format!("{column} = ${}", binds.len() + 1));
            }
        }
        if let Some(before_id) = before_id {
            binds.push(before_id);
            conditions.push(format!("f.id < ${}", binds.len() + 1));
        }
        // A sale of a product not on sale, or of a shop not approved, is shown only to those who
        // run the shop.
        if !filter.everything {
            let shown = "(p.status = 'listed' AND m.qualification = 'approved')";
            conditions.push(match filter.viewer_merchant_id {
                Some(merchant_id) => {
                    binds.push(merchant_id);
                    format!("({shown} OR f.merchant_id = ${})", binds.len() + 1)
                }
                None => shown.to_owned(),
            });
        }
        let columns = FLASH_COLUMNS.split(", ").map(|c| format!("f.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns} FROM flash_sales f JOIN skus s ON s.id = f.sku_id JOIN products p ON p.id = s.product_id \
             JOIN merchants m ON m.id = f.merchant_id WHERE {} ORDER BY f.id DESC LIMIT {limit}",
            conditions.join(" AND ")
        );
        let query = binds.iter().fold(sqlx::query(&sql).bind(filter.at_ms), |query, value| query.bind(*value));
        let rows = query.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|row| Ok(self.with_journal_pool(FlashSaleRow::from_row(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A sale as the flash-sale journal sees it: its pool's figure there is the deciding one (the
    /// table's lags by the orders not yet applied).
    fn with_journal_pool(&self, mut sale: FlashSaleRow) -> FlashSaleRow {
        if let Some(remaining_units) = self.journal().and_then(|j| j.pool_remaining(sale.id)) {
            sale.remaining_units = remaining_units;
        }
        sale
    }

    /// Flash sales running at `now_ms` or starting by `until_ms`, soonest first (at most 100).
    pub async fn flash_sales_due(&self, now_ms: i64, until_ms: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM flash_sales WHERE ends_at_ms > $1 AND starts_at_ms <= $2 AND ends_at_ms > starts_at_ms \
             ORDER BY starts_at_ms, id LIMIT 100",
        )
        .bind(now_ms)
        .bind(until_ms)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
    }

    /// Loads a flash sale's pool into the journal before its first order needs it (nothing to do
    /// on a database without a journal).
    pub async fn preload_flash_pool(&self, flash_sale_id: i64) -> Result<(), StoreError> {
        if let Some(journal) = self.journal() {
            let mut conn = self.reader().acquire().await?;
            journal.ensure_pool(&mut conn, flash_sale_id).await?;
        }
        Ok(())
    }

    /// The flash sale of a SKU in force at `now_ms`, if any (one ended early is not, also in the
    /// millisecond it sells through).
    pub async fn active_flash_sale(&self, sku_id: i64, now_ms: i64) -> Result<Option<FlashSaleRow>, StoreError> {
        let sql = format!(
            "SELECT {FLASH_COLUMNS} FROM flash_sales WHERE sku_id = $1 AND starts_at_ms <= $2 AND ends_at_ms > $2 \
             AND ended_at_ms IS NULL ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(&sql).bind(sku_id).bind(now_ms).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(FlashSaleRow::from_row).transpose()?.map(|sale| self.with_journal_pool(sale)))
    }

    /// What each buyer holds of a flash sale, and the idempotency keys of its orders with their
    /// order ids: what the in-memory admission gate is rebuilt from at start-up.
    #[allow(clippy::type_complexity)]
    pub async fn flash_state(
        &self,
        flash_sale_id: i64,
    ) -> Result<(Vec<(i64, i64)>, Vec<(i64, String, String, i64)>), StoreError> {
        self.settle_all().await;
        let holdings = sqlx::query("SELECT user_id, units FROM flash_purchases WHERE flash_sale_id = $1")
            .bind(flash_sale_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("units")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let keys = sqlx::query(
            "SELECT c.buyer_user_id, c.idempotency_key, c.request_sha256, o.id FROM orders o \
             JOIN checkouts c ON c.id = o.checkout_id WHERE o.flash_sale_id = $1",
        )
        .bind(flash_sale_id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("buyer_user_id")?,
                r.try_get("idempotency_key")?,
                r.try_get("request_sha256")?,
                r.try_get("id")?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((holdings, keys))
    }

    /// Per-category commission rates of SKUs, and their product's merchant, version, title and spec.
    pub async fn sku_for_order(&self, sku_id: i64) -> Result<Option<SkuForOrder>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id AS sku_id, s.product_id, s.price_fen, s.spec, s.per_user_limit, p.merchant_id, p.version, p.title, \
             p.status, c.commission_bps, m.qualification, m.shipping_fee_fen, m.free_shipping_over_fen, m.dispatch_promise, \
             s.protect_window_days, s.protect_from, c.fresh, c.cosmetics, e.services AS assurance_services, \
             e.insurance_premium_fen, e.insurance_cap_fen, p.unsealed_no_return \
             FROM skus s JOIN products p ON p.id = s.product_id JOIN categories c ON c.id = p.category_id \
             JOIN merchants m ON m.id = p.merchant_id \
             LEFT JOIN assurance_enrolments e ON e.merchant_id = m.id AND e.status = 'approved' WHERE s.id = $1",
        )
        .bind(sku_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(SkuForOrder {
                sku_id: r.try_get("sku_id")?,
                product_id: r.try_get("product_id")?,
                price_fen: r.try_get("price_fen")?,
                spec: r.try_get("spec")?,
                per_user_limit: r.try_get("per_user_limit")?,
                merchant_id: r.try_get("merchant_id")?,
                product_version: r.try_get("version")?,
                title: r.try_get("title")?,
                product_status: r.try_get("status")?,
                commission_bps: r.try_get("commission_bps")?,
                merchant_qualification: r.try_get("qualification")?,
                shipping_fee_fen: r.try_get("shipping_fee_fen")?,
                free_shipping_over_fen: r.try_get("free_shipping_over_fen")?,
                dispatch_promise: r.try_get("dispatch_promise")?,
                protect_window_days: r.try_get("protect_window_days")?,
                protect_from: r.try_get("protect_from")?,
                category_fresh: r.try_get::<i64, _>("fresh")? != 0,
                category_cosmetics: r.try_get::<i64, _>("cosmetics")? != 0,
                assurance_services: r
                    .try_get::<Option<String>, _>("assurance_services")?
                    .map(|s| serde_json::from_str(&s).unwrap_or_default()),
                insurance_premium_fen: r.try_get::<Option<i64>, _>("insurance_premium_fen")?.unwrap_or(0),
                insurance_cap_fen: r.try_get::<Option<i64>, _>("insurance_cap_fen")?.unwrap_or(0),
                unsealed_no_return: r.try_get::<i64, _>("unsealed_no_return")? != 0,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    pub async fn set_merchant_fulfilment(
        &self,
        merchant_id: i64,
        shipping_fee_fen: i64,
        free_shipping_over_fen: Option<i64>,
        dispatch_promise: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE merchants SET shipping_fee_fen = $1, free_shipping_over_fen = $2, dispatch_promise = $3 WHERE id = $4")
            .bind(shipping_fee_fen)
            .bind(free_shipping_over_fen)
            .bind(dispatch_promise)
            .bind(merchant_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    pub async fn set_sku_limit(&self, sku_id: i64, per_user_limit: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE skus SET per_user_limit = $1 WHERE id = $2")
            .bind(per_user_limit)
            .bind(sku_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }
}

/// What a timer does to due orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Unpaid orders past their reservation.
    Expiry,
    /// Delivered orders past the confirmation period.
    Completion,
    /// Completed, unsettled orders past the return window.
    Settlement,
}

/// Everything an order line needs to know about its SKU at purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuForOrder {
    pub sku_id: i64,
    pub product_id: i64,
    pub price_fen: i64,
    pub spec: String,
    pub per_user_limit: i64,
    pub merchant_id: i64,
    pub product_version: i64,
    pub title: String,
    pub product_status: String,
    pub commission_bps: i64,
    pub merchant_qualification: String,
    pub shipping_fee_fen: i64,
    pub free_shipping_over_fen: Option<i64>,
    pub dispatch_promise: String,
    /// The SKU's price-protection promise now (0 days: none), snapshotted onto order lines.
    pub protect_window_days: i64,
    pub protect_from: String,
    /// The product's category flags that decide category services.
    pub category_fresh: bool,
    pub category_cosmetics: bool,
    /// The merchant's 安心购 services while its enrolment is approved.
    pub assurance_services: Option<Vec<String>>,
    pub insurance_premium_fen: i64,
    pub insurance_cap_fen: i64,
    /// The product declares its quality changes once unsealed (no seven-day no-reason return
    /// when the buyer confirms it at checkout).
    pub unsealed_no_return: bool,
}

impl Tx {
    pub async fn set_unsealed_no_return(&mut self, product_id: i64, declared: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE products SET unsealed_no_return = $1 WHERE id = $2")
            .bind(i64::from(declared))
            .bind(product_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn set_sku_limit(&mut self, sku_id: i64, per_user_limit: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE skus SET per_user_limit = $1 WHERE id = $2")
            .bind(per_user_limit)
            .bind(sku_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records the amount paid on an order that closed before the payment arrived (it is refunded
    /// in the same transaction).
    pub async fn record_late_payment(&mut self, order_id: i64, paid_fen: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET paid_fen = $1 WHERE id = $2 AND paid_fen = 0 AND status IN ('expired', 'cancelled')",
        )
        .bind(paid_fen)
        .bind(order_id)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Concurrent) }
    }
}

/// A delivery address as stored: a JSON object.
pub fn encode_address(name: &str, phone: &str, region_code: &str, detail: &str) -> String {
    /// The fields in the order stored addresses have always had them (a request's digest covers
    /// its encoded address, so a retry must encode it to the same bytes).
    #[derive(serde::Serialize)]
    struct Address<'a> {
        detail: &'a str,
        name: &'a str,
        phone: &'a str,
        region_code: &'a str,
    }
    // Serialising string fields cannot fail.
    serde_json::to_string(&Address { detail, name, phone, region_code }).unwrap_or_default()
}

/// The fields of a stored address: name, phone, region code, detail.
pub fn decode_address(stored: &str) -> (String, String, String, String) {
    let value: serde_json::Value = serde_json::from_str(stored).unwrap_or_default();
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    (field("name"), field("phone"), field("region_code"), field("detail"))
}

/// A line's discounts as stored: a JSON array of {lane, funder, source, amount_fen}.
pub fn encode_discounts(discounts: &[(&str, &str, &str, i64)]) -> String {
    let items: Vec<serde_json::Value> = discounts
        .iter()
        .map(|(lane, funder, source, amount_fen)| {
            serde_json::json!({"lane": lane, "funder": funder, "source": source, "amount_fen": amount_fen})
        })
        .collect();
    serde_json::Value::from(items).to_string()
}

/// The stored discounts of a line: (lane, funder, source, amount in 分).
pub fn decode_discounts(stored: &str) -> Vec<(String, String, String, i64)> {
    let value: serde_json::Value = serde_json::from_str(stored).unwrap_or_default();
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|d| {
                    let text = |name: &str| d[name].as_str().unwrap_or_default().to_owned();
                    (text("lane"), text("funder"), text("source"), d["amount_fen"].as_i64().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_encode_to_the_bytes_stored_addresses_have() {
        // Field order and escaping as `serde_json::json!` wrote them before: stored checkouts'
        // digests cover these bytes, so a retry of an older request must produce the same ones.
        let encoded = encode_address("金顺姬", "13800000000", "222401", "延吉市 \"光明街\" 1 号");
        let before = serde_json::json!({"name": "金顺姬", "phone": "13800000000", "region_code": "222401",
            "detail": "延吉市 \"光明街\" 1 号"})
        .to_string();
        assert_eq!(encoded, before);
        assert_eq!(
            decode_address(&encoded),
            ("金顺姬".into(), "13800000000".into(), "222401".into(), "延吉市 \"光明街\" 1 号".into())
        );
    }
}
