//! Products and SKUs: creation, edits, the review life cycle, price changes into the price
//! history, and the public listing with filters, sorting and cursor pagination.

use crate::{App, AppError, AppResult, catalog::Decision};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::catalog::{
    DESCRIPTION_CHARS_MAX, ImageUrls, ListingTag, OriginTags, ProductEvent, ProductSort, ProductStatus, Qualification,
    REASON_CHARS_MAX, RegionCode, RegionPrefix, SKUS_PER_PRODUCT_MAX, SkuSpec, TITLE_CHARS_MAX,
};
use xingqu_domain::money::{PRICE_FEN_MAX, PriceFen, Stock, WeightG};
use xingqu_domain::{Invalid, text};
use xingqu_store::products::{
    Change, PriceChangeRow, ProductContent, ProductQuery, ProductRow, SkuRow, SkuValues, StatusChangeRow,
};

/// Product content as it arrives; on edits, `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProductInput {
    pub category_id: Option<i64>,
    /// `Some(None)` removes the brand.
    pub brand_id: Option<Option<i64>>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub image_urls: Option<Vec<String>>,
    pub farm_specialty: Option<bool>,
    pub geographic_indication: Option<bool>,
    pub intangible_heritage: Option<bool>,
    pub origin_region_code: Option<String>,
}

/// A SKU as it arrives; on edits, `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct SkuInput {
    pub spec: Option<Vec<(String, String)>>,
    pub price_fen: Option<i64>,
    pub stock: Option<i64>,
    pub weight_g: Option<i64>,
    /// Why the price changed (recorded in the price history).
    pub reason: Option<String>,
    /// Units one buyer may hold across live orders; 0 for no limit.
    pub per_user_limit: Option<i64>,
}

/// A product with its SKUs.
#[derive(Debug, Clone)]
pub struct ProductDetail {
    pub product: ProductRow,
    pub skus: Vec<SkuRow>,
}

/// A listing request as it arrives (query parameters).
#[derive(Debug, Clone, Default)]
pub struct ListingInput {
    pub category_id: Option<i64>,
    pub tag: Option<String>,
    pub region: Option<String>,
    pub merchant_id: Option<i64>,
    pub min_price_fen: Option<i64>,
    pub max_price_fen: Option<i64>,
    pub q: Option<String>,
    pub status: Option<String>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// One page of a listing; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Search text longer than this is refused rather than scanned.
const QUERY_CHARS_MAX: usize = 60;

/// Cursors are opaque to clients: `v1:{sort}:{min_price_fen}:{id}`, base64url-encoded.
fn encode_cursor(sort: ProductSort, row: &ProductRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{}:{}", sort.as_str(), row.min_price_fen, row.id))
}

fn decode_cursor(sort: ProductSort, raw: &str) -> Result<(i64, i64), Invalid> {
    let invalid =
        || Invalid::new("cursor", "invalid_cursor", "not a cursor from this listing; start again without one");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(s), Some(price), Some(id), None) if s == sort.as_str() => {
            Ok((price.parse().map_err(|_| invalid())?, id.parse().map_err(|_| invalid())?))
        }
        _ => Err(invalid()),
    }
}

fn price_bound(field: &'static str, raw: Option<i64>) -> Result<Option<i64>, Invalid> {
    match raw {
        Some(v) if !(0..=PRICE_FEN_MAX).contains(&v) => {
            Err(Invalid::new(field, "out_of_range", format!("must be between 0 and {PRICE_FEN_MAX}")))
        }
        other => Ok(other),
    }
}

fn parse_reason(raw: Option<&str>, default: &str) -> Result<String, Invalid> {
    match raw {
        Some(r) => text::bounded_or_empty("reason", r, REASON_CHARS_MAX)
            .map(|r| if r.is_empty() { default.to_owned() } else { r }),
        None => Ok(default.to_owned()),
    }
}

fn status_of(row: &ProductRow) -> AppResult<ProductStatus> {
    ProductStatus::from_name(&row.status)
        .ok_or_else(|| AppError::internal(format!("product {} has unknown status {}", row.id, row.status)))
}

impl App {
    /// Checks a product's content against the rules and the catalog: leaf category served by
    /// the shop, an existing brand, valid text, images and region.
    async fn parse_content(
        &self,
        merchant_id: i64,
        input: &ProductInput,
        current: Option<&ProductRow>,
    ) -> AppResult<ParsedContent> {
        let missing = |field: &'static str| AppError::invalid(field, "missing", "is required");
        let category_id = input.category_id.or(current.map(|c| c.category_id)).ok_or_else(|| missing("category_id"))?;
        let category = self.store().category(category_id).await?.ok_or_else(|| {
            AppError::invalid("category_id", "unknown_category", format!("no category {category_id}"))
        })?;
        if self.store().category_has_children(category_id).await? {
            return Err(AppError::invalid("category_id", "not_a_leaf", "products belong to leaf categories"));
        }
        let merchant = self.store().merchant(merchant_id).await?.ok_or(AppError::not_found("merchant"))?;
        let mut served = false;
        for &served_id in &merchant.category_ids {
            let Some(served_category) = self.store().category(served_id).await? else { continue };
            served |= category.path.starts_with(&served_category.path);
        }
        if !served {
            return Err(AppError::invalid(
                "category_id",
                "category_not_served",
                "the shop is not approved for this category",
            ));
        }
        let brand_id = match &input.brand_id {
            Some(b) => *b,
            None => current.and_then(|c| c.brand_id),
        };
        if let Some(id) = brand_id
            && self.store().brand(id).await?.is_none()
        {
            return Err(AppError::invalid("brand_id", "unknown_brand", format!("no brand {id}")));
        }
        let title = match (&input.title, current) {
            (Some(t), _) => text::bounded("title", t, TITLE_CHARS_MAX)?,
            (None, Some(c)) => c.title.clone(),
            (None, None) => return Err(missing("title")),
        };
        let description = match (&input.description, current) {
            (Some(d), _) => text::bounded_or_empty("description", d, DESCRIPTION_CHARS_MAX)?,
            (None, Some(c)) => c.description.clone(),
            (None, None) => String::new(),
        };
        let image_urls = match (&input.image_urls, current) {
            (Some(urls), _) => ImageUrls::parse(urls.clone())?.urls().to_vec(),
            (None, Some(c)) => c.image_urls.clone(),
            (None, None) => Vec::new(),
        };
        let base = current.map(|c| c.tags).unwrap_or_default();
        let tags = OriginTags {
            farm_specialty: input.farm_specialty.unwrap_or(base.farm_specialty),
            geographic_indication: input.geographic_indication.unwrap_or(base.geographic_indication),
            intangible_heritage: input.intangible_heritage.unwrap_or(base.intangible_heritage),
        };
        let origin_region_code = match (&input.origin_region_code, current) {
            (Some(r), _) => RegionCode::parse("origin_region_code", r)?.as_str().to_owned(),
            (None, Some(c)) => c.origin_region_code.clone(),
            (None, None) => merchant.region_code.clone(),
        };
        Ok(ParsedContent { category_id, brand_id, title, description, image_urls, tags, origin_region_code })
    }

    /// Merchant staff create a product in their shop, as a draft, optionally with its SKUs.
    pub async fn create_product(
        &self,
        actor: &Actor,
        input: &ProductInput,
        skus: &[SkuInput],
    ) -> AppResult<ProductDetail> {
        let merchant_id = match (actor.role, actor.merchant_id) {
            (Role::MerchantStaff, Some(id)) => id,
            _ => return Err(AppError::Forbidden("only merchant staff create products, in their own shop")),
        };
        if skus.len() > SKUS_PER_PRODUCT_MAX {
            return Err(AppError::invalid("skus", "too_many", format!("at most {SKUS_PER_PRODUCT_MAX} SKUs")));
        }
        let content = self.parse_content(merchant_id, input, None).await?;
        let parsed_skus = skus.iter().map(|s| parse_sku(s, None)).collect::<Result<Vec<_>, _>>()?;
        let now_ms = self.now_ms();
        let mut tx = self.store().begin().await?;
        let id = tx.insert_product(merchant_id, &content.as_store(), now_ms).await?;
        for (sku, _) in &parsed_skus {
            let change = Change { actor_user_id: Some(actor.user_id), reason: "initial price", now_ms };
            tx.insert_sku(id, &sku.as_store(), change).await?;
        }
        tx.commit().await?;
        self.product_detail(&Some(*actor), id).await
    }

    /// Edits content. A listed product goes back to review; a stale `expected_version` is a
    /// conflict, so two editors never overwrite each other silently.
    pub async fn update_product(
        &self,
        actor: &Actor,
        product_id: i64,
        input: &ProductInput,
        expected_version: Option<i64>,
    ) -> AppResult<ProductDetail> {
        let current = self.owned_product(actor, product_id).await?;
        if let Some(v) = expected_version
            && v != current.version
        {
            return Err(AppError::conflict(
                "version_conflict",
                format!("the product is at version {}, not {v}", current.version),
            ));
        }
        let status = status_of(&current)?.apply(ProductEvent::EditContent)?;
        let content = self.parse_content(current.merchant_id, input, Some(&current)).await?;
        let mut tx = self.store().begin().await?;
        tx.update_product_content(product_id, current.version, &content.as_store(), status.as_str(), self.now_ms())
            .await?;
        tx.commit().await?;
        if status != xingqu_domain::catalog::ProductStatus::Listed {
            // Back in review: out of the feed until it is listed again.
            self.feed().block("product", product_id);
        }
        self.product_detail(&Some(*actor), product_id).await
    }

    /// Staff submit a draft or delisted product for review; it needs a SKU and an approved shop.
    pub async fn submit_product(&self, actor: &Actor, product_id: i64) -> AppResult<ProductDetail> {
        let product = self.owned_product(actor, product_id).await?;
        if self.store().skus(product_id).await?.is_empty() {
            return Err(AppError::conflict("no_skus", "add at least one SKU before submitting"));
        }
        let merchant = self.store().merchant(product.merchant_id).await?.ok_or(AppError::not_found("merchant"))?;
        if merchant.qualification != Qualification::Approved.as_str() {
            return Err(AppError::conflict("merchant_not_approved", "the shop's qualification is not approved yet"));
        }
        self.transition(actor, &product, ProductEvent::Submit, "submitted for review").await
    }

    /// Operators approve (list) or reject (back to draft, with a reason) a pending product.
    pub async fn review_product(
        &self,
        actor: &Actor,
        product_id: i64,
        decision: Decision,
        reason: &str,
    ) -> AppResult<ProductDetail> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators review products"));
        }
        let product = self.store().product(product_id).await?.ok_or(AppError::not_found("product"))?;
        let (event, default_reason) = match decision {
            Decision::Approve => (ProductEvent::Approve, "approved"),
            Decision::Reject => (ProductEvent::Reject, ""),
        };
        let reason = parse_reason(Some(reason), default_reason)?;
        if reason.is_empty() {
            return Err(AppError::invalid("reason", "empty", "a rejection must say why"));
        }
        self.transition(actor, &product, event, &reason).await
    }

    /// Staff or an operator take a listed product off sale.
    pub async fn delist_product(
        &self,
        actor: &Actor,
        product_id: i64,
        reason: Option<&str>,
    ) -> AppResult<ProductDetail> {
        let product = self.owned_product(actor, product_id).await?;
        let reason = parse_reason(reason, "delisted")?;
        self.transition(actor, &product, ProductEvent::Delist, &reason).await
    }

    /// Operators ban a product for good (counterfeit, prohibited goods…); a reason is required.
    pub async fn ban_product(&self, actor: &Actor, product_id: i64, reason: &str) -> AppResult<ProductDetail> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators ban products"));
        }
        let product = self.store().product(product_id).await?.ok_or(AppError::not_found("product"))?;
        let reason = text::bounded("reason", reason, REASON_CHARS_MAX)?;
        self.transition(actor, &product, ProductEvent::Ban, &reason).await
    }

    async fn transition(
        &self,
        actor: &Actor,
        product: &ProductRow,
        event: ProductEvent,
        reason: &str,
    ) -> AppResult<ProductDetail> {
        let from = status_of(product)?;
        let to = from.apply(event)?;
        let mut tx = self.store().begin().await?;
        let change = Change { actor_user_id: Some(actor.user_id), reason, now_ms: self.now_ms() };
        tx.transition_product(product.id, from.as_str(), to.as_str(), change).await?;
        tx.commit().await?;
        if to != xingqu_domain::catalog::ProductStatus::Listed {
            // Off sale: out of the feed now, not at its next rebuild.
            self.feed().block("product", product.id);
        }
        self.product_detail(&Some(*actor), product.id).await
    }

    /// Adds a SKU to a product of the actor's shop.
    pub async fn add_sku(&self, actor: &Actor, product_id: i64, input: &SkuInput) -> AppResult<SkuRow> {
        let product = self.owned_product(actor, product_id).await?;
        if status_of(&product)? == ProductStatus::Banned {
            return Err(AppError::conflict("product_banned", "a banned product cannot change"));
        }
        if self.store().skus(product_id).await?.len() >= SKUS_PER_PRODUCT_MAX {
            return Err(AppError::conflict(
                "too_many_skus",
                format!("a product has at most {SKUS_PER_PRODUCT_MAX} SKUs"),
            ));
        }
        let (sku, _) = parse_sku(input, None)?;
        let mut tx = self.store().begin().await?;
        let change = Change { actor_user_id: Some(actor.user_id), reason: "initial price", now_ms: self.now_ms() };
        let row = tx.insert_sku(product_id, &sku.as_store(), change).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Changes a SKU's price, stock, weight or spec; a price change goes into the price history
    /// with its reason, in the same transaction.
    pub async fn update_sku(&self, actor: &Actor, sku_id: i64, input: &SkuInput) -> AppResult<SkuRow> {
        let current = self.store().sku(sku_id).await?.ok_or(AppError::not_found("sku"))?;
        let product = self.owned_product(actor, current.product_id).await.map_err(|e| match e {
            AppError::NotFound { .. } => AppError::not_found("sku"),
            other => other,
        })?;
        if status_of(&product)? == ProductStatus::Banned {
            return Err(AppError::conflict("product_banned", "a banned product cannot change"));
        }
        let (sku, reason) = parse_sku(input, Some(&current))?;
        if input.per_user_limit.is_some_and(|l| !(0..=99).contains(&l)) {
            return Err(AppError::invalid("per_user_limit", "out_of_range", "must be 0 (no limit) to 99"));
        }
        let mut tx = self.store().begin().await?;
        let change = Change { actor_user_id: Some(actor.user_id), reason: &reason, now_ms: self.now_ms() };
        let row = tx.update_sku(sku_id, &sku.as_store(), change).await?;
        if let Some(limit) = input.per_user_limit {
            tx.set_sku_limit(sku_id, limit).await?;
        }
        if row.price_fen < current.price_fen {
            // A cut on a SKU in automatic price protection queues its sweep with the change;
            // the timers run it (within a second in `serve`).
            self.queue_protection_sweep(&mut tx, sku_id, change.now_ms).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Declares (or withdraws) that the product's quality changes once unsealed: buyers who
    /// confirm it at checkout have no seven-day no-reason return on it. Orders placed before
    /// keep what they were promised.
    pub async fn set_unsealed_no_return(&self, actor: &Actor, product_id: i64, declared: bool) -> AppResult<bool> {
        self.owned_product(actor, product_id).await?;
        let mut tx = self.store().begin().await?;
        tx.set_unsealed_no_return(product_id, declared).await?;
        tx.commit().await?;
        Ok(declared)
    }

    /// A SKU's price history, oldest first: public for public products.
    pub async fn price_history(
        &self,
        actor: &Option<Actor>,
        sku_id: i64,
        after_id: Option<i64>,
        limit: u32,
    ) -> AppResult<Vec<PriceChangeRow>> {
        let sku = self.store().sku(sku_id).await?.ok_or(AppError::not_found("sku"))?;
        self.visible_product(actor, sku.product_id).await.map_err(|_| AppError::not_found("sku"))?;
        Ok(self.store().price_history(sku_id, after_id, limit).await?)
    }

    /// One SKU of a product the actor may see.
    pub async fn sku(&self, actor: &Option<Actor>, sku_id: i64) -> AppResult<SkuRow> {
        let sku = self.store().sku(sku_id).await?.ok_or(AppError::not_found("sku"))?;
        self.visible_product(actor, sku.product_id).await.map_err(|_| AppError::not_found("sku"))?;
        Ok(sku)
    }

    /// Who moved the product between states, when and why (its staff and operators only).
    pub async fn product_status_log(&self, actor: &Actor, product_id: i64) -> AppResult<Vec<StatusChangeRow>> {
        self.owned_product(actor, product_id).await?;
        Ok(self.store().product_status_log(product_id).await?)
    }

    pub async fn product_detail(&self, actor: &Option<Actor>, product_id: i64) -> AppResult<ProductDetail> {
        let product = self.visible_product(actor, product_id).await?;
        let skus = self.store().skus(product_id).await?;
        Ok(ProductDetail { product, skus })
    }

    /// Listed products of approved shops are public; anything else only to the shop's staff and
    /// operators. To anyone else it does not exist (404, not 403, so ids reveal nothing).
    async fn visible_product(&self, actor: &Option<Actor>, product_id: i64) -> AppResult<ProductRow> {
        let product = self.store().product(product_id).await?.ok_or(AppError::not_found("product"))?;
        if actor.is_some_and(|a| a.manages_merchant(product.merchant_id)) {
            return Ok(product);
        }
        let listed = product.status == ProductStatus::Listed.as_str();
        let shop_approved = self
            .store()
            .merchant(product.merchant_id)
            .await?
            .is_some_and(|m| m.qualification == Qualification::Approved.as_str());
        if listed && shop_approved { Ok(product) } else { Err(AppError::not_found("product")) }
    }

    /// A product the actor may change: their own shop's, or any for an operator.
    async fn owned_product(&self, actor: &Actor, product_id: i64) -> AppResult<ProductRow> {
        let product = self.visible_product(&Some(*actor), product_id).await?;
        if actor.manages_merchant(product.merchant_id) {
            Ok(product)
        } else {
            Err(AppError::Forbidden("only the shop's staff or an operator may change this product"))
        }
    }

    /// The catalog listing. Anonymous users and buyers see listed products of approved shops;
    /// `status` needs an operator, or merchant staff filtering their own shop.
    pub async fn list_products(&self, actor: &Option<Actor>, input: &ListingInput) -> AppResult<Page<ProductRow>> {
        let sort = ProductSort::parse(input.sort.as_deref().unwrap_or("newest"))?;
        let limit = xingqu_domain::catalog::page_limit(input.limit)?;
        let after = input.cursor.as_deref().map(|c| decode_cursor(sort, c)).transpose()?;
        let tag = input.tag.as_deref().map(ListingTag::parse).transpose()?;
        let region_prefix =
            input.region.as_deref().map(|r| RegionPrefix::parse(r).map(|p| p.as_str().to_owned())).transpose()?;
        let min_price_fen = price_bound("min_price_fen", input.min_price_fen)?;
        let max_price_fen = price_bound("max_price_fen", input.max_price_fen)?;
        let text = match input.q.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(q) => Some(text::bounded("q", q, QUERY_CHARS_MAX)?),
        };
        let category_path = match input.category_id {
            None => None,
            Some(id) => Some(
                self.store()
                    .category(id)
                    .await?
                    .ok_or_else(|| AppError::invalid("category_id", "unknown_category", format!("no category {id}")))?
                    .path,
            ),
        };
        let statuses = match input.status.as_deref() {
            None => vec![ProductStatus::Listed],
            Some("any") => ProductStatus::ALL.to_vec(),
            Some(raw) => vec![ProductStatus::from_name(raw).ok_or_else(|| {
                AppError::invalid(
                    "status",
                    "invalid_status",
                    "must be draft, pending_review, listed, delisted, banned or any",
                )
            })?],
        };
        let privileged = match (actor, input.merchant_id) {
            (Some(a), _) if a.is_operator() => true,
            (Some(a), Some(m)) => a.manages_merchant(m),
            _ => false,
        };
        if input.status.is_some() && !privileged {
            return Err(AppError::Forbidden(
                "filtering by status needs an operator, or merchant staff listing their own shop (merchant_id)",
            ));
        }
        let query = ProductQuery {
            statuses: statuses.iter().map(|s| s.as_str().to_owned()).collect(),
            approved_merchants_only: !privileged,
            merchant_id: input.merchant_id,
            category_path,
            tag,
            region_prefix,
            min_price_fen,
            max_price_fen,
            text,
            sort,
            after,
            limit: limit + 1,
        };
        let mut items = self.store().list_products(&query).await?;
        // One row more than the page tells whether another page follows.
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|row| encode_cursor(sort, row))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

struct ParsedContent {
    category_id: i64,
    brand_id: Option<i64>,
    title: String,
    description: String,
    image_urls: Vec<String>,
    tags: OriginTags,
    origin_region_code: String,
}

impl ParsedContent {
    fn as_store(&self) -> ProductContent<'_> {
        ProductContent {
            category_id: self.category_id,
            brand_id: self.brand_id,
            title: &self.title,
            description: &self.description,
            image_urls: &self.image_urls,
            tags: self.tags,
            origin_region_code: &self.origin_region_code,
        }
    }
}

struct ParsedSku {
    spec: SkuSpec,
    price: PriceFen,
    /// `None` on an update that does not set the stock (it stays what reservations made it).
    stock: Option<Stock>,
    weight: WeightG,
}

impl ParsedSku {
    fn as_store(&self) -> SkuValues<'_> {
        SkuValues {
            spec: self.spec.attributes(),
            price_fen: self.price.fen(),
            stock: self.stock.map(Stock::units),
            weight_g: self.weight.grams(),
        }
    }
}

/// Validates a SKU against the rules, filling unspecified fields from `current`.
fn parse_sku(input: &SkuInput, current: Option<&SkuRow>) -> Result<(ParsedSku, String), Invalid> {
    let missing = |field: &'static str| Invalid::new(field, "missing", "is required");
    let spec = match (&input.spec, current) {
        (Some(spec), _) => SkuSpec::parse(spec.iter().cloned())?,
        (None, Some(c)) => SkuSpec::parse(c.spec.iter().cloned())?,
        (None, None) => SkuSpec::default(),
    };
    let price = PriceFen::parse(
        "price_fen",
        input.price_fen.or(current.map(|c| c.price_fen)).ok_or_else(|| missing("price_fen"))?,
    )?;
    let stock = match (input.stock, current) {
        (Some(raw), _) => Some(Stock::parse("stock", raw)?),
        (None, Some(_)) => None,
        (None, None) => Some(Stock::parse("stock", 0)?),
    };
    let weight =
        WeightG::parse("weight_g", input.weight_g.or(current.map(|c| c.weight_g)).ok_or_else(|| missing("weight_g"))?)?;
    let reason = parse_reason(input.reason.as_deref(), "price change")?;
    Ok((ParsedSku { spec, price, stock, weight }, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, min_price_fen: i64) -> ProductRow {
        ProductRow {
            id,
            merchant_id: 1,
            category_id: 1,
            brand_id: None,
            domestic_brand: false,
            title: String::new(),
            description: String::new(),
            image_urls: vec![],
            tags: OriginTags::default(),
            origin_region_code: "222400".into(),
            status: "listed".into(),
            status_reason: String::new(),
            version: 1,
            min_price_fen,
            unsealed_no_return: false,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_sorts() {
        let cursor = encode_cursor(ProductSort::PriceAsc, &row(42, 5990));
        assert_eq!(decode_cursor(ProductSort::PriceAsc, &cursor), Ok((5990, 42)));
        assert!(decode_cursor(ProductSort::Newest, &cursor).is_err());
        for bad in ["", "!!!", "djE6bmV3ZXN0", &URL_SAFE_NO_PAD.encode("v1:newest:x:1")] {
            assert!(decode_cursor(ProductSort::Newest, bad).is_err(), "{bad}");
        }
    }
}
