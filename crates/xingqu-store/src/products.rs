//! Products, their SKUs, the append-only price history, and the product status log.

use crate::{Store, StoreError, Tx, flag};
use sqlx::Row;
use sqlx::any::AnyRow;
use xingqu_domain::catalog::{ListingTag, OriginTags, ProductSort};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRow {
    pub id: i64,
    pub merchant_id: i64,
    pub category_id: i64,
    pub brand_id: Option<i64>,
    /// From the brand: whether the product sells under a domestic brand.
    pub domestic_brand: bool,
    pub title: String,
    pub description: String,
    pub image_urls: Vec<String>,
    pub tags: OriginTags,
    pub origin_region_code: String,
    pub status: String,
    pub status_reason: String,
    pub version: i64,
    pub min_price_fen: i64,
    /// Declared: quality changes once unsealed (no no-reason return for buyers who confirm it).
    pub unsealed_no_return: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const PRODUCT_COLUMNS: &str = "p.id, p.merchant_id, p.category_id, p.brand_id, \
     COALESCE(b.domestic_brand, 0) AS domestic_brand, p.title, p.description, p.image_urls, \
     p.farm_specialty, p.geographic_indication, p.intangible_heritage, p.origin_region_code, \
     p.status, p.status_reason, p.version, p.min_price_fen, p.unsealed_no_return, p.created_at_ms, p.updated_at_ms";
const PRODUCT_FROM: &str = "products p LEFT JOIN brands b ON b.id = p.brand_id";

impl ProductRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let is = |col: &str| -> Result<bool, sqlx::Error> { Ok(row.try_get::<i64, _>(col)? != 0) };
        let image_urls: String = row.try_get("image_urls")?;
        Ok(Self {
            id: row.try_get("id")?,
            merchant_id: row.try_get("merchant_id")?,
            category_id: row.try_get("category_id")?,
            brand_id: row.try_get("brand_id")?,
            domestic_brand: is("domestic_brand")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            image_urls: serde_json::from_str(&image_urls).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            tags: OriginTags {
                farm_specialty: is("farm_specialty")?,
                geographic_indication: is("geographic_indication")?,
                intangible_heritage: is("intangible_heritage")?,
            },
            origin_region_code: row.try_get("origin_region_code")?,
            status: row.try_get("status")?,
            status_reason: row.try_get("status_reason")?,
            version: row.try_get("version")?,
            min_price_fen: row.try_get("min_price_fen")?,
            unsealed_no_return: is("unsealed_no_return")?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        })
    }
}

/// What buyers see of a product: everything an edit may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductContent<'a> {
    pub category_id: i64,
    pub brand_id: Option<i64>,
    pub title: &'a str,
    pub description: &'a str,
    pub image_urls: &'a [String],
    pub tags: OriginTags,
    pub origin_region_code: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuRow {
    pub id: i64,
    pub product_id: i64,
    pub spec: Vec<(String, String)>,
    pub price_fen: i64,
    pub stock: i64,
    pub weight_g: i64,
}

const SKU_COLUMNS: &str = "id, product_id, spec, price_fen, stock, weight_g";

impl SkuRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let spec: String = row.try_get("spec")?;
        let spec: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&spec).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Self {
            id: row.try_get("id")?,
            product_id: row.try_get("product_id")?,
            spec: spec.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned())).collect(),
            price_fen: row.try_get("price_fen")?,
            stock: row.try_get("stock")?,
            weight_g: row.try_get("weight_g")?,
        })
    }
}

fn spec_json(spec: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        spec.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::Value::Object(map).to_string()
}

/// A SKU's variable part: what a merchant sets and may later change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuValues<'a> {
    pub spec: &'a [(String, String)],
    pub price_fen: i64,
    /// `None` on an update leaves the stock as it is (orders reserve from it concurrently).
    pub stock: Option<i64>,
    pub weight_g: i64,
}

/// One entry of the price history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChangeRow {
    pub id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    /// `None` for the SKU's first price.
    pub old_price_fen: Option<i64>,
    pub new_price_fen: i64,
    pub changed_at_ms: i64,
    pub actor_user_id: Option<i64>,
    pub reason: String,
}

/// One entry of a status log (products' and orders').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChangeRow {
    pub from_status: String,
    pub to_status: String,
    pub actor_user_id: Option<i64>,
    pub reason: String,
    pub at_ms: i64,
}

impl StatusChangeRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            actor_user_id: row.try_get("actor_user_id")?,
            reason: row.try_get("reason")?,
            at_ms: row.try_get("at_ms")?,
        })
    }
}

/// Who changes something, when, and why (for the price history and the status log).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub actor_user_id: Option<i64>,
    pub reason: &'a str,
    pub now_ms: i64,
}

impl Tx {
    pub async fn insert_product(
        &mut self,
        merchant_id: i64,
        content: &ProductContent<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO products (merchant_id, category_id, brand_id, title, description, image_urls, \
             farm_specialty, geographic_indication, intangible_heritage, origin_region_code, status, \
             created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'draft', $11, $11) RETURNING id",
        )
        .bind(merchant_id)
        .bind(content.category_id)
        .bind(content.brand_id)
        .bind(content.title)
        .bind(content.description)
        .bind(serde_json::Value::from(content.image_urls.to_vec()).to_string())
        .bind(flag(content.tags.farm_specialty))
        .bind(flag(content.tags.geographic_indication))
        .bind(flag(content.tags.intangible_heritage))
        .bind(content.origin_region_code)
        .bind(now_ms)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Replaces a product's content and moves it to `status`, if it is still at `version` (an edit
    /// based on a stale read is [`StoreError::Concurrent`]). Bumps the version.
    pub async fn update_product_content(
        &mut self,
        product_id: i64,
        version: i64,
        content: &ProductContent<'_>,
        status: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE products SET category_id = $1, brand_id = $2, title = $3, description = $4, \
             image_urls = $5, farm_specialty = $6, geographic_indication = $7, intangible_heritage = $8, \
             origin_region_code = $9, status = $10, version = version + 1, updated_at_ms = $11 \
             WHERE id = $12 AND version = $13",
        )
        .bind(content.category_id)
        .bind(content.brand_id)
        .bind(content.title)
        .bind(content.description)
        .bind(serde_json::Value::from(content.image_urls.to_vec()).to_string())
        .bind(flag(content.tags.farm_specialty))
        .bind(flag(content.tags.geographic_indication))
        .bind(flag(content.tags.intangible_heritage))
        .bind(content.origin_region_code)
        .bind(status)
        .bind(now_ms)
        .bind(product_id)
        .bind(version)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Concurrent) }
    }

    /// Moves a product from `from` to `to` and logs who did it and why; a product no longer in
    /// `from` is [`StoreError::Concurrent`].
    pub async fn transition_product(
        &mut self,
        product_id: i64,
        from: &str,
        to: &str,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE products SET status = $1, status_reason = $2, updated_at_ms = $3 WHERE id = $4 AND status = $5",
        )
        .bind(to)
        .bind(change.reason)
        .bind(change.now_ms)
        .bind(product_id)
        .bind(from)
        .execute(self.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Concurrent);
        }
        self.log_status(product_id, from, to, change).await
    }

    async fn log_status(
        &mut self,
        product_id: i64,
        from: &str,
        to: &str,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO product_status_log (product_id, from_status, to_status, actor_user_id, reason, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(product_id)
        .bind(from)
        .bind(to)
        .bind(change.actor_user_id)
        .bind(change.reason)
        .bind(change.now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Adds a SKU and records its first price in the price history.
    pub async fn insert_sku(
        &mut self,
        product_id: i64,
        sku: &SkuValues<'_>,
        change: Change<'_>,
    ) -> Result<SkuRow, StoreError> {
        let sql = format!(
            "INSERT INTO skus (product_id, spec, price_fen, stock, weight_g, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {SKU_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(product_id)
            .bind(spec_json(sku.spec))
            .bind(sku.price_fen)
            .bind(sku.stock.unwrap_or(0))
            .bind(sku.weight_g)
            .bind(change.now_ms)
            .fetch_one(self.conn())
            .await?;
        let sku_row = SkuRow::from_row(&row)?;
        self.append_price(sku_row.id, product_id, None, sku.price_fen, change).await?;
        self.refresh_product_after_sku_change(product_id, change.now_ms).await?;
        Ok(sku_row)
    }

    /// Updates a SKU. A price change is appended to the price history in the same transaction; a
    /// price or spec change bumps the product version (orders snapshot it).
    pub async fn update_sku(
        &mut self,
        sku_id: i64,
        sku: &SkuValues<'_>,
        change: Change<'_>,
    ) -> Result<SkuRow, StoreError> {
        let sql = format!("SELECT {SKU_COLUMNS} FROM skus WHERE id = $1");
        let row = sqlx::query(&sql).bind(sku_id).fetch_optional(self.conn()).await?.ok_or(StoreError::NotFound)?;
        let before = SkuRow::from_row(&row)?;
        let sql = format!(
            "UPDATE skus SET spec = $1, price_fen = $2, stock = COALESCE($3, stock), weight_g = $4, updated_at_ms = $5 \
             WHERE id = $6 RETURNING {SKU_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(spec_json(sku.spec))
            .bind(sku.price_fen)
            .bind(sku.stock)
            .bind(sku.weight_g)
            .bind(change.now_ms)
            .bind(sku_id)
            .fetch_one(self.conn())
            .await?;
        let after = SkuRow::from_row(&row)?;
        if before.price_fen != after.price_fen {
            self.append_price(sku_id, after.product_id, Some(before.price_fen), after.price_fen, change).await?;
        }
        if before.price_fen != after.price_fen || before.spec != after.spec {
            self.refresh_product_after_sku_change(after.product_id, change.now_ms).await?;
        }
        Ok(after)
    }

    async fn append_price(
        &mut self,
        sku_id: i64,
        product_id: i64,
        old_price_fen: Option<i64>,
        new_price_fen: i64,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO price_history (sku_id, product_id, old_price_fen, new_price_fen, changed_at_ms, actor_user_id, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(sku_id)
        .bind(product_id)
        .bind(old_price_fen)
        .bind(new_price_fen)
        .bind(change.now_ms)
        .bind(change.actor_user_id)
        .bind(change.reason)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Keeps the denormalised lowest price current and bumps the version.
    async fn refresh_product_after_sku_change(&mut self, product_id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE products SET min_price_fen = COALESCE((SELECT MIN(price_fen) FROM skus WHERE product_id = $1), 0), \
             version = version + 1, updated_at_ms = $2 WHERE id = $1",
        )
        .bind(product_id)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

/// A product listing request, already validated and scoped by the caller.
#[derive(Debug, Clone)]
pub struct ProductQuery {
    /// Statuses to include; empty means any.
    pub statuses: Vec<String>,
    /// Only products of merchants whose qualification is approved (the public catalog).
    pub approved_merchants_only: bool,
    pub merchant_id: Option<i64>,
    /// A category path such as `/1/5/`: the category and everything below it.
    pub category_path: Option<String>,
    pub tag: Option<ListingTag>,
    /// A region-code prefix such as `2224`.
    pub region_prefix: Option<String>,
    pub min_price_fen: Option<i64>,
    pub max_price_fen: Option<i64>,
    /// Case-insensitive substring of the title.
    pub text: Option<String>,
    pub sort: ProductSort,
    /// The last row of the previous page: `(min_price_fen, id)`.
    pub after: Option<(i64, i64)>,
    pub limit: u32,
}

enum Bind {
    I64(i64),
    Text(String),
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE … ESCAPE '\'`.
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Store {
    pub async fn insert_product(
        &self,
        merchant_id: i64,
        content: &ProductContent<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let id = tx.insert_product(merchant_id, content, now_ms).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn product(&self, id: i64) -> Result<Option<ProductRow>, StoreError> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM {PRODUCT_FROM} WHERE p.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(ProductRow::from_row).transpose()?)
    }

    pub async fn skus(&self, product_id: i64) -> Result<Vec<SkuRow>, StoreError> {
        let sql = format!("SELECT {SKU_COLUMNS} FROM skus WHERE product_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(product_id).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(SkuRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn sku(&self, id: i64) -> Result<Option<SkuRow>, StoreError> {
        let sql = format!("SELECT {SKU_COLUMNS} FROM skus WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(SkuRow::from_row).transpose()?)
    }

    /// A SKU's price history, oldest first, after entry `after_id`, at most `limit` entries.
    pub async fn price_history(
        &self,
        sku_id: i64,
        after_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PriceChangeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sku_id, product_id, old_price_fen, new_price_fen, changed_at_ms, actor_user_id, reason \
             FROM price_history WHERE sku_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(sku_id)
        .bind(after_id.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PriceChangeRow {
                    id: row.try_get("id")?,
                    sku_id: row.try_get("sku_id")?,
                    product_id: row.try_get("product_id")?,
                    old_price_fen: row.try_get("old_price_fen")?,
                    new_price_fen: row.try_get("new_price_fen")?,
                    changed_at_ms: row.try_get("changed_at_ms")?,
                    actor_user_id: row.try_get("actor_user_id")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// A product's status changes, oldest first (at most 200: the most a review history needs).
    pub async fn product_status_log(&self, product_id: i64) -> Result<Vec<StatusChangeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, actor_user_id, reason, at_ms FROM product_status_log \
             WHERE product_id = $1 ORDER BY id LIMIT 200",
        )
        .bind(product_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(StatusChangeRow::from_row).collect::<Result<_, _>>()?)
    }

    /// One page of products matching `query`, in its sort order.
    pub async fn list_products(&self, query: &ProductQuery) -> Result<Vec<ProductRow>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let param = |bind: Bind, binds: &mut Vec<Bind>| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        if !query.statuses.is_empty() {
            let placeholders: Vec<String> =
                query.statuses.iter().map(|s| param(Bind::Text(s.clone()), &mut binds)).collect();
            conditions.push(format!("p.status IN ({})", placeholders.join(", ")));
        }
        if query.approved_merchants_only {
            conditions.push("p.merchant_id IN (SELECT id FROM merchants WHERE qualification = 'approved')".into());
        }
        if let Some(merchant_id) = query.merchant_id {
            conditions.push(format!("p.merchant_id = {}", param(Bind::I64(merchant_id), &mut binds)));
        }
        if let Some(path) = &query.category_path {
            let pattern = format!("{}%", like_literal(path));
            conditions.push(format!(
                "p.category_id IN (SELECT id FROM categories WHERE path LIKE {} ESCAPE '\\')",
                param(Bind::Text(pattern), &mut binds)
            ));
        }
        match query.tag {
            None => {}
            Some(ListingTag::FarmSpecialty) => conditions.push("p.farm_specialty = 1".into()),
            Some(ListingTag::GeographicIndication) => conditions.push("p.geographic_indication = 1".into()),
            Some(ListingTag::IntangibleHeritage) => conditions.push("p.intangible_heritage = 1".into()),
            Some(ListingTag::DomesticBrand) => conditions.push("b.domestic_brand = 1".into()),
        }
        if let Some(prefix) = &query.region_prefix {
            let pattern = format!("{}%", like_literal(prefix));
            conditions
                .push(format!("p.origin_region_code LIKE {} ESCAPE '\\'", param(Bind::Text(pattern), &mut binds)));
        }
        if let Some(min) = query.min_price_fen {
            conditions.push(format!("p.min_price_fen >= {}", param(Bind::I64(min), &mut binds)));
        }
        if let Some(max) = query.max_price_fen {
            conditions.push(format!("p.min_price_fen <= {}", param(Bind::I64(max), &mut binds)));
        }
        if let Some(text) = &query.text {
            let pattern = format!("%{}%", like_literal(&text.to_lowercase()));
            conditions.push(format!("LOWER(p.title) LIKE {} ESCAPE '\\'", param(Bind::Text(pattern), &mut binds)));
        }
        if let Some((price, id)) = query.after {
            let condition = match query.sort {
                ProductSort::Newest => format!("p.id < {}", param(Bind::I64(id), &mut binds)),
                ProductSort::PriceAsc => {
                    let (p1, p2, i) = (
                        param(Bind::I64(price), &mut binds),
                        param(Bind::I64(price), &mut binds),
                        param(Bind::I64(id), &mut binds),
                    );
                    format!("(p.min_price_fen > {p1} OR (p.min_price_fen = {p2} AND p.id > {i}))")
                }
                ProductSort::PriceDesc => {
                    let (p1, p2, i) = (
                        param(Bind::I64(price), &mut binds),
                        param(Bind::I64(price), &mut binds),
                        param(Bind::I64(id), &mut binds),
                    );
                    format!("(p.min_price_fen < {p1} OR (p.min_price_fen = {p2} AND p.id < {i}))")
                }
            };
            conditions.push(condition);
        }
        let order = match query.sort {
            ProductSort::Newest => "p.id DESC",
            ProductSort::PriceAsc => "p.min_price_fen ASC, p.id ASC",
            ProductSort::PriceDesc => "p.min_price_fen DESC, p.id DESC",
        };
        let limit = param(Bind::I64(i64::from(query.limit)), &mut binds);
        let where_clause =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM {PRODUCT_FROM} {where_clause} ORDER BY {order} LIMIT {limit}");
        let mut statement = sqlx::query(&sql);
        for bind in binds {
            statement = match bind {
                Bind::I64(v) => statement.bind(v),
                Bind::Text(v) => statement.bind(v),
            };
        }
        let rows = statement.fetch_all(self.reader()).await?;
        Ok(rows.iter().map(ProductRow::from_row).collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_literal_escapes_wildcards() {
        assert_eq!(super::like_literal("100%_a\\b"), "100\\%\\_a\\\\b");
    }
}
