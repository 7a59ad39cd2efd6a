//! The catalog's rules: product life cycle, merchant qualification, origin tags, category rule
//! flags, region codes, SKU specs, image lists and listing limits.

use crate::Invalid;

pub const TITLE_CHARS_MAX: usize = 120;
pub const DESCRIPTION_CHARS_MAX: usize = 5_000;
pub const NAME_CHARS_MAX: usize = 60;
pub const REASON_CHARS_MAX: usize = 500;
pub const IMAGES_MAX: usize = 9;
pub const IMAGE_URL_CHARS_MAX: usize = 512;
pub const SKUS_PER_PRODUCT_MAX: usize = 50;
pub const SPEC_ATTRIBUTES_MAX: usize = 10;
pub const SPEC_TEXT_CHARS_MAX: usize = 40;
pub const CATEGORIES_SERVED_MAX: usize = 20;
pub const PAGE_LIMIT_DEFAULT: u32 = 20;
pub const PAGE_LIMIT_MAX: u32 = 100;

/// Where a product is in its life cycle.
///
/// ```text
/// draft ──submit──▶ pending_review ──approve──▶ listed ──delist──▶ delisted
///   ▲                  │ reject                   │ edit content      │ submit
///   └──────────────────┘                          ▼                   ▼
///                                           pending_review      pending_review
/// any state except banned ──ban (operator)──▶ banned (final)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductStatus {
    Draft,
    PendingReview,
    Listed,
    Delisted,
    Banned,
}

/// Something that moves a product between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductEvent {
    Submit,
    Approve,
    Reject,
    Delist,
    /// The merchant changed what buyers see (title, description, images, category, tags): the
    /// product must be reviewed again before it is sold.
    EditContent,
    Ban,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a product that is {from}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub event: &'static str,
}

impl ProductStatus {
    pub const ALL: [ProductStatus; 5] = [
        ProductStatus::Draft,
        ProductStatus::PendingReview,
        ProductStatus::Listed,
        ProductStatus::Delisted,
        ProductStatus::Banned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Draft => "draft",
            ProductStatus::PendingReview => "pending_review",
            ProductStatus::Listed => "listed",
            ProductStatus::Delisted => "delisted",
            ProductStatus::Banned => "banned",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The state after `event`, or why the event does not apply.
    pub fn apply(self, event: ProductEvent) -> Result<ProductStatus, InvalidTransition> {
        use ProductEvent as E;
        use ProductStatus as S;
        let next = match (self, event) {
            (S::Banned, _) => None,
            (_, E::Ban) => Some(S::Banned),
            (S::Draft | S::Delisted, E::Submit) => Some(S::PendingReview),
            (S::PendingReview, E::Approve) => Some(S::Listed),
            (S::PendingReview, E::Reject) => Some(S::Draft),
            (S::Listed, E::Delist) => Some(S::Delisted),
            (S::Listed, E::EditContent) => Some(S::PendingReview),
            (s @ (S::Draft | S::PendingReview | S::Delisted), E::EditContent) => Some(s),
            _ => None,
        };
        next.ok_or(InvalidTransition { from: self.as_str(), event: event.as_str() })
    }
}

impl ProductEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductEvent::Submit => "submit",
            ProductEvent::Approve => "approve",
            ProductEvent::Reject => "reject",
            ProductEvent::Delist => "delist",
            ProductEvent::EditContent => "edit",
            ProductEvent::Ban => "ban",
        }
    }
}

/// A merchant's qualification review: only approved shops may list products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualification {
    Pending,
    Approved,
    Rejected,
}

impl Qualification {
    pub fn as_str(self) -> &'static str {
        match self {
            Qualification::Pending => "pending",
            Qualification::Approved => "approved",
            Qualification::Rejected => "rejected",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Qualification::Pending, Qualification::Approved, Qualification::Rejected]
            .into_iter()
            .find(|q| q.as_str() == name)
    }
}

/// Where a product comes from, as buyers and campaigns see it. `domestic_brand` is not here: it
/// belongs to the brand, and a product carries it through its brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginTags {
    pub farm_specialty: bool,
    pub geographic_indication: bool,
    pub intangible_heritage: bool,
}

/// A tag a listing may filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingTag {
    FarmSpecialty,
    GeographicIndication,
    IntangibleHeritage,
    DomesticBrand,
}

impl ListingTag {
    pub const ALL: [ListingTag; 4] = [
        ListingTag::FarmSpecialty,
        ListingTag::GeographicIndication,
        ListingTag::IntangibleHeritage,
        ListingTag::DomesticBrand,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListingTag::FarmSpecialty => "farm_specialty",
            ListingTag::GeographicIndication => "geographic_indication",
            ListingTag::IntangibleHeritage => "intangible_heritage",
            ListingTag::DomesticBrand => "domestic_brand",
        }
    }

    /// The tags a product carries: its origin tags, and `domestic_brand` when its brand is one.
    pub fn of(origin: OriginTags, domestic_brand: bool) -> Vec<ListingTag> {
        [
            (ListingTag::FarmSpecialty, origin.farm_specialty),
            (ListingTag::GeographicIndication, origin.geographic_indication),
            (ListingTag::IntangibleHeritage, origin.intangible_heritage),
            (ListingTag::DomesticBrand, domestic_brand),
        ]
        .into_iter()
        .filter_map(|(tag, has)| has.then_some(tag))
        .collect()
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw).ok_or_else(|| {
            Invalid::new(
                "tag",
                "unknown_tag",
                "must be one of farm_specialty, geographic_indication, intangible_heritage, domestic_brand",
            )
        })
    }
}

/// Rule flags a category carries; after-sale rules (seven-day return exclusions, fresh-damage
/// compensation, cosmetics allergy return) read them from the product's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CategoryFlags {
    pub fresh: bool,
    pub cosmetics: bool,
    pub digital: bool,
    pub custom_made: bool,
    pub periodical: bool,
}

/// A GB/T 2260 administrative division code: six digits, e.g. `222400` for Yanbian.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, Invalid> {
        if raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0') {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(field, "invalid_region_code", "must be a six-digit GB/T 2260 code such as 222400"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A region filter: a province (`22`), a prefecture (`2224`) or a county (`222401`) prefix of
/// region codes. `222400` means the prefecture as a whole, so its trailing zeros are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPrefix(String);

impl RegionPrefix {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = matches!(raw.len(), 2 | 4 | 6) && raw.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(Invalid::new(
                "region",
                "invalid_region_code",
                "must be a 2-, 4- or 6-digit GB/T 2260 code such as 22, 2224 or 222400",
            ));
        }
        let mut prefix = raw.to_owned();
        while prefix.len() > 2 && prefix.ends_with("00") {
            prefix.truncate(prefix.len() - 2);
        }
        Ok(Self(prefix))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A SKU's spec attributes (颜色, 尺码, 规格…), name → value, sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkuSpec(Vec<(String, String)>);

impl SkuSpec {
    pub fn parse(raw: impl IntoIterator<Item = (String, String)>) -> Result<Self, Invalid> {
        let mut attributes = Vec::new();
        for (name, value) in raw {
            let name = crate::text::bounded("spec", &name, SPEC_TEXT_CHARS_MAX)?;
            let value = crate::text::bounded("spec", &value, SPEC_TEXT_CHARS_MAX)?;
            attributes.push((name, value));
        }
        if attributes.len() > SPEC_ATTRIBUTES_MAX {
            return Err(Invalid::new("spec", "too_many", format!("at most {SPEC_ATTRIBUTES_MAX} spec attributes")));
        }
        attributes.sort();
        if attributes.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Invalid::new("spec", "duplicate", "spec attribute names must be unique"));
        }
        Ok(Self(attributes))
    }

    pub fn attributes(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Product image URLs: at most [`IMAGES_MAX`], each `http(s)://` and at most
/// [`IMAGE_URL_CHARS_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageUrls(Vec<String>);

impl ImageUrls {
    pub fn parse(raw: Vec<String>) -> Result<Self, Invalid> {
        if raw.len() > IMAGES_MAX {
            return Err(Invalid::new("image_urls", "too_many", format!("at most {IMAGES_MAX} images")));
        }
        for url in &raw {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            let chars_ok = !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !scheme_ok || !chars_ok || url.len() > IMAGE_URL_CHARS_MAX || url.ends_with("://") {
                return Err(Invalid::new(
                    "image_urls",
                    "invalid_url",
                    format!("each image must be an http(s) URL of at most {IMAGE_URL_CHARS_MAX} characters"),
                ));
            }
        }
        Ok(Self(raw))
    }

    pub fn urls(&self) -> &[String] {
        &self.0
    }
}

/// How a product listing is ordered. Every order ends with the product id, so pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductSort {
    Newest,
    PriceAsc,
    PriceDesc,
}

impl ProductSort {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "newest" => Ok(Self::Newest),
            "price_asc" => Ok(Self::PriceAsc),
            "price_desc" => Ok(Self::PriceDesc),
            _ => Err(Invalid::new("sort", "unknown_sort", "must be one of newest, price_asc, price_desc")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::PriceAsc => "price_asc",
            Self::PriceDesc => "price_desc",
        }
    }
}

/// A page size: 1 to [`PAGE_LIMIT_MAX`], [`PAGE_LIMIT_DEFAULT`] when not given.
pub fn page_limit(raw: Option<i64>) -> Result<u32, Invalid> {
    match raw {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(n) if (1..=i64::from(PAGE_LIMIT_MAX)).contains(&n) => Ok(n as u32),
        Some(_) => Err(Invalid::new("limit", "out_of_range", format!("must be between 1 and {PAGE_LIMIT_MAX}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_carries_its_origin_tags_and_its_brand_tag() {
        let origin = OriginTags { farm_specialty: true, geographic_indication: false, intangible_heritage: true };
        assert_eq!(ListingTag::of(origin, false), vec![ListingTag::FarmSpecialty, ListingTag::IntangibleHeritage]);
        assert_eq!(ListingTag::of(OriginTags::default(), true), vec![ListingTag::DomesticBrand]);
    }
    use ProductEvent as E;
    use ProductStatus as S;

    fn check(from: ProductStatus, event: ProductEvent, expected: Option<ProductStatus>) {
        assert_eq!(from.apply(event).ok(), expected, "{} --{}-->", from.as_str(), event.as_str());
    }

    #[test]
    fn product_life_cycle() {
        check(S::Draft, E::Submit, Some(S::PendingReview));
        check(S::Draft, E::Approve, None);
        check(S::Draft, E::Delist, None);
        check(S::PendingReview, E::Approve, Some(S::Listed));
        check(S::PendingReview, E::Reject, Some(S::Draft));
        check(S::PendingReview, E::Submit, None);
        check(S::Listed, E::Delist, Some(S::Delisted));
        check(S::Listed, E::EditContent, Some(S::PendingReview));
        check(S::Listed, E::Approve, None);
        check(S::Delisted, E::Submit, Some(S::PendingReview));
        check(S::Delisted, E::EditContent, Some(S::Delisted));
        check(S::Draft, E::EditContent, Some(S::Draft));
        for s in [S::Draft, S::PendingReview, S::Listed, S::Delisted] {
            check(s, E::Ban, Some(S::Banned));
        }
        for e in [E::Submit, E::Approve, E::Reject, E::Delist, E::EditContent, E::Ban] {
            check(S::Banned, e, None);
        }
    }

    #[test]
    fn region_codes_and_prefixes() {
        assert!(RegionCode::parse("r", "222400").is_ok());
        for bad in ["22240", "2224000", "22a400", "012345", ""] {
            assert!(RegionCode::parse("r", bad).is_err(), "{bad}");
        }
        assert_eq!(RegionPrefix::parse("222400").map(|p| p.0), Ok("2224".into()));
        assert_eq!(RegionPrefix::parse("220000").map(|p| p.0), Ok("22".into()));
        assert_eq!(RegionPrefix::parse("222401").map(|p| p.0), Ok("222401".into()));
        assert!(RegionPrefix::parse("2").is_err());
    }

    #[test]
    fn specs_are_sorted_and_unique() {
        let spec = SkuSpec::parse([("规格".to_owned(), "5kg".to_owned()), ("等级".to_owned(), "一等".to_owned())]);
        assert_eq!(spec.map(|s| s.0.len()), Ok(2));
        let dup = SkuSpec::parse([("a".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())]);
        assert_eq!(dup.map_err(|e| e.code), Err("duplicate"));
    }

    #[test]
    fn images_and_limits() {
        assert!(ImageUrls::parse(vec!["https://img.example.com/a.jpg".into()]).is_ok());
        assert!(ImageUrls::parse(vec!["javascript:alert(1)".into()]).is_err());
        assert!(ImageUrls::parse(vec!["https://x/a.jpg".into(); 10]).is_err());
        assert_eq!(page_limit(None), Ok(PAGE_LIMIT_DEFAULT));
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
        assert_eq!(page_limit(Some(100)), Ok(100));
    }
}
