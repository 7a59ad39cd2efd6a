//! Categories (a tree with rule flags), brands, and merchants with their qualification.

use crate::{Store, StoreError, Tx, flag};
use sqlx::Row;
use sqlx::any::AnyRow;
use xingqu_domain::catalog::CategoryFlags;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRow {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub slug: String,
    pub name: String,
    /// `/1/5/`: ids from the root down to this category.
    pub path: String,
    pub flags: CategoryFlags,
}

const CATEGORY_COLUMNS: &str = "id, parent_id, slug, name, path, fresh, cosmetics, digital, custom_made, periodical";

impl CategoryRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let is = |col: &str| -> Result<bool, sqlx::Error> { Ok(row.try_get::<i64, _>(col)? != 0) };
        Ok(Self {
            id: row.try_get("id")?,
            parent_id: row.try_get("parent_id")?,
            slug: row.try_get("slug")?,
            name: row.try_get("name")?,
            path: row.try_get("path")?,
            flags: CategoryFlags {
                fresh: is("fresh")?,
                cosmetics: is("cosmetics")?,
                digital: is("digital")?,
                custom_made: is("custom_made")?,
                periodical: is("periodical")?,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandRow {
    pub id: i64,
    pub name: String,
    pub domestic_brand: bool,
}

impl BrandRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            domestic_brand: row.try_get::<i64, _>("domestic_brand")? != 0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantRow {
    pub id: i64,
    pub shop_name: String,
    pub region_code: String,
    pub qualification: String,
    pub qualification_reason: String,
    pub owner_user_id: i64,
    pub category_ids: Vec<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const MERCHANT_COLUMNS: &str =
    "id, shop_name, region_code, qualification, qualification_reason, owner_user_id, created_at_ms, updated_at_ms";

impl MerchantRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            shop_name: row.try_get("shop_name")?,
            region_code: row.try_get("region_code")?,
            qualification: row.try_get("qualification")?,
            qualification_reason: row.try_get("qualification_reason")?,
            owner_user_id: row.try_get("owner_user_id")?,
            category_ids: Vec::new(),
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewMerchant<'a> {
    pub shop_name: &'a str,
    pub region_code: &'a str,
    pub qualification: &'a str,
    pub owner_user_id: i64,
    pub category_ids: &'a [i64],
    pub now_ms: i64,
}

impl Tx {
    /// Inserts a category under `parent_id` (or as a root). A slug in use is a conflict; an
    /// unknown parent is [`StoreError::NotFound`].
    pub async fn insert_category(
        &mut self,
        parent_id: Option<i64>,
        slug: &str,
        name: &str,
        flags: CategoryFlags,
        now_ms: i64,
    ) -> Result<CategoryRow, StoreError> {
        let parent_path = match parent_id {
            None => "/".to_owned(),
            Some(parent_id) => {
                let row = sqlx::query("SELECT path FROM categories WHERE id = $1")
                    .bind(parent_id)
                    .fetch_optional(self.conn())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                row.try_get("path")?
            }
        };
        let id: i64 = sqlx::query(
            "INSERT INTO categories (parent_id, slug, name, path, fresh, cosmetics, digital, custom_made, periodical, created_at_ms) \
             VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(parent_id)
        .bind(slug)
        .bind(name)
        .bind(flag(flags.fresh))
        .bind(flag(flags.cosmetics))
        .bind(flag(flags.digital))
        .bind(flag(flags.custom_made))
        .bind(flag(flags.periodical))
        .bind(now_ms)
        .fetch_one(self.conn())
        .await?
        .try_get("id")?;
        let path = format!("{parent_path}{id}/");
        sqlx::query("UPDATE categories SET path = $1 WHERE id = $2").bind(&path).bind(id).execute(self.conn()).await?;
        Ok(CategoryRow { id, parent_id, slug: slug.to_owned(), name: name.to_owned(), path, flags })
    }

    pub async fn insert_brand(
        &mut self,
        name: &str,
        domestic_brand: bool,
        now_ms: i64,
    ) -> Result<BrandRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO brands (name, domestic_brand, created_at_ms) VALUES ($1, $2, $3) \
             RETURNING id, name, domestic_brand",
        )
        .bind(name)
        .bind(flag(domestic_brand))
        .bind(now_ms)
        .fetch_one(self.conn())
        .await?;
        Ok(BrandRow::from_row(&row)?)
    }

    /// Inserts a merchant with the categories it serves. A shop name in use is a conflict.
    pub async fn insert_merchant(&mut self, merchant: &NewMerchant<'_>) -> Result<MerchantRow, StoreError> {
        let sql = format!(
            "INSERT INTO merchants (shop_name, region_code, qualification, owner_user_id, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {MERCHANT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(merchant.shop_name)
            .bind(merchant.region_code)
            .bind(merchant.qualification)
            .bind(merchant.owner_user_id)
            .bind(merchant.now_ms)
            .fetch_one(self.conn())
            .await?;
        let mut merchant_row = MerchantRow::from_row(&row)?;
        self.set_merchant_categories(merchant_row.id, merchant.category_ids).await?;
        merchant_row.category_ids = merchant.category_ids.to_vec();
        merchant_row.category_ids.sort_unstable();
        merchant_row.category_ids.dedup();
        Ok(merchant_row)
    }

    pub async fn set_merchant_categories(&mut self, merchant_id: i64, category_ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM merchant_categories WHERE merchant_id = $1")
            .bind(merchant_id)
            .execute(self.conn())
            .await?;
        let mut ids = category_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for category_id in ids {
            sqlx::query("INSERT INTO merchant_categories (merchant_id, category_id) VALUES ($1, $2)")
                .bind(merchant_id)
                .bind(category_id)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    pub async fn update_merchant_profile(
        &mut self,
        merchant_id: i64,
        shop_name: &str,
        region_code: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE merchants SET shop_name = $1, region_code = $2, updated_at_ms = $3 WHERE id = $4")
                .bind(shop_name)
                .bind(region_code)
                .bind(now_ms)
                .bind(merchant_id)
                .execute(self.conn())
                .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound) }
    }

    /// Records a qualification decision, but only if the merchant is still in `from` (a decision
    /// made concurrently by another operator wins; this one is [`StoreError::Concurrent`]).
    pub async fn set_qualification(
        &mut self,
        merchant_id: i64,
        from: &str,
        to: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE merchants SET qualification = $1, qualification_reason = $2, updated_at_ms = $3 \
             WHERE id = $4 AND qualification = $5",
        )
        .bind(to)
        .bind(reason)
        .bind(now_ms)
        .bind(merchant_id)
        .bind(from)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Concurrent) }
    }
}

/// Filters for [`Store::merchants`].
#[derive(Debug, Clone, Default)]
pub struct MerchantFilter {
    pub qualification: Option<String>,
    pub after_id: Option<i64>,
    pub limit: u32,
}

impl Store {
    pub async fn insert_category(
        &self,
        parent_id: Option<i64>,
        slug: &str,
        name: &str,
        flags: CategoryFlags,
        now_ms: i64,
    ) -> Result<CategoryRow, StoreError> {
        let mut tx = self.begin().await?;
        let row = tx.insert_category(parent_id, slug, name, flags, now_ms).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Every category, parents before children.
    pub async fn categories(&self) -> Result<Vec<CategoryRow>, StoreError> {
        let sql = format!("SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY path, id");
        let rows = sqlx::query(&sql).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(CategoryRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn category(&self, id: i64) -> Result<Option<CategoryRow>, StoreError> {
        let sql = format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(CategoryRow::from_row).transpose()?)
    }

    /// Whether the category has children (products belong to leaves only).
    pub async fn category_has_children(&self, id: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM categories WHERE parent_id = $1")
            .bind(id)
            .fetch_one(self.reader())
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    pub async fn insert_brand(&self, name: &str, domestic_brand: bool, now_ms: i64) -> Result<BrandRow, StoreError> {
        let mut tx = self.begin().await?;
        let row = tx.insert_brand(name, domestic_brand, now_ms).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn brand(&self, id: i64) -> Result<Option<BrandRow>, StoreError> {
        let row = sqlx::query("SELECT id, name, domestic_brand FROM brands WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.as_ref().map(BrandRow::from_row).transpose()?)
    }

    /// Brands by id, after `after_id`, at most `limit`.
    pub async fn brands(&self, after_id: Option<i64>, limit: u32) -> Result<Vec<BrandRow>, StoreError> {
        let rows = sqlx::query("SELECT id, name, domestic_brand FROM brands WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after_id.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(BrandRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn merchant(&self, id: i64) -> Result<Option<MerchantRow>, StoreError> {
        let sql = format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1");
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await? else {
            return Ok(None);
        };
        let mut merchant = MerchantRow::from_row(&row)?;
        merchant.category_ids = self.merchant_category_ids(id).await?;
        Ok(Some(merchant))
    }

    async fn merchant_category_ids(&self, merchant_id: i64) -> Result<Vec<i64>, StoreError> {
        let rows =
            sqlx::query("SELECT category_id FROM merchant_categories WHERE merchant_id = $1 ORDER BY category_id")
                .bind(merchant_id)
                .fetch_all(self.reader())
                .await?;
        Ok(rows.iter().map(|r| r.try_get("category_id")).collect::<Result<_, _>>()?)
    }

    pub async fn merchants(&self, filter: &MerchantFilter) -> Result<Vec<MerchantRow>, StoreError> {
        let sql = format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id > $1 AND ($2 = '' OR qualification = $2) \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.after_id.unwrap_or(0))
            .bind(filter.qualification.as_deref().unwrap_or(""))
            .bind(i64::from(filter.limit))
            .fetch_all(self.reader())
            .await?;
        let mut merchants = rows.iter().map(MerchantRow::from_row).collect::<Result<Vec<_>, _>>()?;
        for merchant in &mut merchants {
            merchant.category_ids = self.merchant_category_ids(merchant.id).await?;
        }
        Ok(merchants)
    }
}
