//! Categories, brands and merchants: who may create and change them, and the qualification review.

use crate::{App, AppError, AppResult};
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::catalog::{
    CATEGORIES_SERVED_MAX, CategoryFlags, NAME_CHARS_MAX, Qualification, REASON_CHARS_MAX, RegionCode,
};
use xingqu_domain::{Invalid, text};
use xingqu_store::StoreError;
use xingqu_store::catalog::{BrandRow, CategoryRow, MerchantFilter, MerchantRow, NewMerchant};

/// Slugs are short, lower-case ASCII words joined by dashes: `fresh-produce`.
fn parse_slug(raw: &str) -> Result<String, Invalid> {
    let ok = !raw.is_empty()
        && raw.len() <= 40
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Invalid::new("slug", "invalid_slug", "must be 1-40 of a-z, 0-9 and inner dashes"))
    }
}

/// A merchant application or profile change as it arrives.
#[derive(Debug, Clone)]
pub struct MerchantInput<'a> {
    pub shop_name: &'a str,
    pub region_code: &'a str,
    pub category_ids: &'a [i64],
}

/// A qualification or review decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "approve" => Ok(Decision::Approve),
            "reject" => Ok(Decision::Reject),
            _ => Err(Invalid::new("decision", "invalid_decision", "must be approve or reject")),
        }
    }
}

impl App {
    pub async fn create_category(
        &self,
        actor: &Actor,
        parent_id: Option<i64>,
        slug: &str,
        name: &str,
        flags: CategoryFlags,
    ) -> AppResult<CategoryRow> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators may change the category tree"));
        }
        let slug = parse_slug(slug)?;
        let name = text::bounded("name", name, NAME_CHARS_MAX)?;
        match self.store().insert_category(parent_id, &slug, &name, flags, self.now_ms()).await {
            Ok(row) => Ok(row),
            Err(StoreError::NotFound) => {
                Err(AppError::invalid("parent_id", "unknown_category", "no such parent category"))
            }
            Err(StoreError::Conflict { .. }) => {
                Err(AppError::conflict("slug_taken", "a category with this slug exists"))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn categories(&self) -> AppResult<Vec<CategoryRow>> {
        Ok(self.store().categories().await?)
    }

    pub async fn category(&self, id: i64) -> AppResult<CategoryRow> {
        self.store().category(id).await?.ok_or(AppError::not_found("category"))
    }

    /// Operators create any brand; merchant staff create brands they sell, but only an operator
    /// may certify a brand as domestic (it earns traffic support).
    pub async fn create_brand(&self, actor: &Actor, name: &str, domestic_brand: bool) -> AppResult<BrandRow> {
        match actor.role {
            Role::Operator => {}
            Role::MerchantStaff if !domestic_brand => {}
            Role::MerchantStaff => return Err(AppError::Forbidden("only operators may certify a domestic brand")),
            _ => return Err(AppError::Forbidden("only merchant staff and operators may create brands")),
        }
        let name = text::bounded("name", name, NAME_CHARS_MAX)?;
        match self.store().insert_brand(&name, domestic_brand, self.now_ms()).await {
            Ok(row) => Ok(row),
            Err(StoreError::Conflict { .. }) => Err(AppError::conflict("brand_taken", "a brand with this name exists")),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn brand(&self, id: i64) -> AppResult<BrandRow> {
        self.store().brand(id).await?.ok_or(AppError::not_found("brand"))
    }

    pub async fn brands(&self, after_id: Option<i64>, limit: u32) -> AppResult<Vec<BrandRow>> {
        Ok(self.store().brands(after_id, limit).await?)
    }

    async fn parse_merchant_input(&self, input: &MerchantInput<'_>) -> AppResult<(String, RegionCode, Vec<i64>)> {
        let shop_name = text::bounded("shop_name", input.shop_name, NAME_CHARS_MAX)?;
        let region = RegionCode::parse("region_code", input.region_code)?;
        if input.category_ids.is_empty() || input.category_ids.len() > CATEGORIES_SERVED_MAX {
            return Err(AppError::invalid(
                "category_ids",
                "out_of_range",
                format!("a shop serves 1 to {CATEGORIES_SERVED_MAX} categories"),
            ));
        }
        for &id in input.category_ids {
            if self.store().category(id).await?.is_none() {
                return Err(AppError::invalid("category_ids", "unknown_category", format!("no category {id}")));
            }
        }
        Ok((shop_name, region, input.category_ids.to_vec()))
    }

    /// A consumer applies to open a shop: the merchant starts pending qualification and the
    /// applicant becomes its staff.
    pub async fn apply_merchant(&self, actor: &Actor, input: &MerchantInput<'_>) -> AppResult<MerchantRow> {
        if actor.role != Role::Consumer {
            return Err(AppError::Forbidden("only a consumer account may apply to open a shop"));
        }
        let (shop_name, region, category_ids) = self.parse_merchant_input(input).await?;
        let mut tx = self.store().begin().await?;
        let new = NewMerchant {
            shop_name: &shop_name,
            region_code: region.as_str(),
            qualification: Qualification::Pending.as_str(),
            owner_user_id: actor.user_id,
            category_ids: &category_ids,
            now_ms: self.now_ms(),
        };
        let merchant = match tx.insert_merchant(&new).await {
            Ok(row) => row,
            Err(StoreError::Conflict { .. }) => {
                return Err(AppError::conflict("shop_name_taken", "a shop with this name exists"));
            }
            Err(e) => return Err(e.into()),
        };
        tx.make_merchant_staff(actor.user_id, merchant.id).await?;
        tx.commit().await?;
        self.sessions().forget_user(actor.user_id);
        Ok(merchant)
    }

    /// Staff (or an operator) change a shop's profile. A rejected shop that changes its profile
    /// applies again: it goes back to pending.
    pub async fn update_merchant(
        &self,
        actor: &Actor,
        merchant_id: i64,
        input: &MerchantInput<'_>,
    ) -> AppResult<MerchantRow> {
        let merchant = self.visible_merchant(&Some(*actor), merchant_id).await?;
        if !actor.manages_merchant(merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff or an operator may change it"));
        }
        let (shop_name, region, category_ids) = self.parse_merchant_input(input).await?;
        let now_ms = self.now_ms();
        let mut tx = self.store().begin().await?;
        match tx.update_merchant_profile(merchant_id, &shop_name, region.as_str(), now_ms).await {
            Err(StoreError::Conflict { .. }) => {
                return Err(AppError::conflict("shop_name_taken", "a shop with this name exists"));
            }
            other => other?,
        }
        tx.set_merchant_categories(merchant_id, &category_ids).await?;
        if merchant.qualification == Qualification::Rejected.as_str() {
            tx.set_qualification(
                merchant_id,
                Qualification::Rejected.as_str(),
                Qualification::Pending.as_str(),
                "re-applied",
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        self.store().merchant(merchant_id).await?.ok_or(AppError::not_found("merchant"))
    }

    /// Staff (or an operator) set a shop's shipping terms and dispatch promise; orders placed
    /// afterwards use them (orders placed before keep what they were sold with).
    pub async fn set_fulfilment(
        &self,
        actor: &Actor,
        merchant_id: i64,
        shipping_fee_fen: i64,
        free_shipping_over_fen: Option<i64>,
        dispatch_promise: &str,
    ) -> AppResult<MerchantRow> {
        self.visible_merchant(&Some(*actor), merchant_id).await?;
        if !actor.manages_merchant(merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff or an operator may change it"));
        }
        if !(0..=100_000).contains(&shipping_fee_fen) {
            return Err(AppError::invalid("shipping_fee_fen", "out_of_range", "must be 0 to 100000 分"));
        }
        if free_shipping_over_fen.is_some_and(|v| !(0..=xingqu_domain::money::PRICE_FEN_MAX).contains(&v)) {
            return Err(AppError::invalid("free_shipping_over_fen", "out_of_range", "must be 0 to 100000000 分"));
        }
        let promise = xingqu_domain::order::DispatchPromise::parse(dispatch_promise)?;
        self.store()
            .set_merchant_fulfilment(merchant_id, shipping_fee_fen, free_shipping_over_fen, promise.as_str())
            .await?;
        self.store().merchant(merchant_id).await?.ok_or(AppError::not_found("merchant"))
    }

    /// An operator decides a pending qualification.
    pub async fn decide_qualification(
        &self,
        actor: &Actor,
        merchant_id: i64,
        decision: Decision,
        reason: &str,
    ) -> AppResult<MerchantRow> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators review qualifications"));
        }
        let merchant = self.visible_merchant(&Some(*actor), merchant_id).await?;
        let reason = text::bounded_or_empty("reason", reason, REASON_CHARS_MAX)?;
        if decision == Decision::Reject && reason.is_empty() {
            return Err(AppError::invalid("reason", "empty", "a rejection must say why"));
        }
        if merchant.qualification != Qualification::Pending.as_str() {
            return Err(AppError::conflict(
                "invalid_transition",
                format!("the qualification is already {}", merchant.qualification),
            ));
        }
        let to = match decision {
            Decision::Approve => Qualification::Approved,
            Decision::Reject => Qualification::Rejected,
        };
        let mut tx = self.store().begin().await?;
        tx.set_qualification(merchant_id, Qualification::Pending.as_str(), to.as_str(), &reason, self.now_ms()).await?;
        tx.commit().await?;
        self.store().merchant(merchant_id).await?.ok_or(AppError::not_found("merchant"))
    }

    /// A merchant as `actor` may see it: approved shops are public; others only to their staff
    /// and operators (to anyone else they do not exist).
    pub async fn visible_merchant(&self, actor: &Option<Actor>, merchant_id: i64) -> AppResult<MerchantRow> {
        let merchant = self.store().merchant(merchant_id).await?.ok_or(AppError::not_found("merchant"))?;
        let public = merchant.qualification == Qualification::Approved.as_str();
        if public || actor.is_some_and(|a| a.manages_merchant(merchant_id)) {
            Ok(merchant)
        } else {
            Err(AppError::not_found("merchant"))
        }
    }

    /// Approved merchants for everyone; operators may list any qualification.
    pub async fn merchants(
        &self,
        actor: &Option<Actor>,
        qualification: Option<&str>,
        after_id: Option<i64>,
        limit: u32,
    ) -> AppResult<Vec<MerchantRow>> {
        let qualification = match qualification {
            None => Qualification::Approved,
            Some(raw) => Qualification::from_name(raw).ok_or_else(|| {
                AppError::invalid("qualification", "invalid_qualification", "must be pending, approved or rejected")
            })?,
        };
        if qualification != Qualification::Approved && !actor.is_some_and(|a| a.is_operator()) {
            return Err(AppError::Forbidden("only operators may list shops that are not approved"));
        }
        let filter = MerchantFilter { qualification: Some(qualification.as_str().to_owned()), after_id, limit };
        Ok(self.store().merchants(&filter).await?)
    }
}
