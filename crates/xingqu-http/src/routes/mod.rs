//! Handlers, grouped by resource; each file owns its request and response types.

pub mod accounts;
pub mod after_sales;
pub mod analytics;
pub mod assurance;
pub mod campaigns;
pub mod catalog;
pub mod content;
pub mod coupons;
pub mod events;
pub mod hot;
pub mod lucky_bags;
pub mod orders;
pub mod price_protection;
pub mod products;
pub mod system;

use serde::Deserialize;
use utoipa::IntoParams;

/// Cursor pagination over ids, for the simpler listings.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdPage {
    /// Return items after this id.
    pub after_id: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<i64>,
}
