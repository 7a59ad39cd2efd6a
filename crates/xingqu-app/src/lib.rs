//! Xingqu use cases: each loads what it needs, lets the domain decide, and writes the outcome in
//! one store transaction. Nothing here knows HTTP or JSON.

pub mod accounts;
pub mod after_sales;
pub mod analytics;
pub mod assurance;
pub mod campaigns;
pub mod catalog;
pub mod clock;
pub mod content;
pub mod coupons;
pub mod demo;
mod error;
pub mod events;
pub mod feed;
pub mod flash;
pub mod hotlist;
mod ids;
pub mod lucky_bags;
pub mod orders;
pub mod payments;
pub mod price_protection;
pub mod products;
pub mod scenario;

pub use error::{AppError, AppResult};

use clock::Clock;
use std::sync::Arc;
use xingqu_store::Store;

/// Settings the use cases read; parsed once in `main`.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// How long a bearer token lives after sign-in.
    pub session_ttl_s: i64,
    /// How long an unpaid order holds its stock.
    pub order_expiry_s: i64,
    /// How long after delivery receipt is confirmed automatically.
    pub auto_complete_s: i64,
    /// How long after delivery returns are possible; settlement waits for it.
    pub return_window_s: i64,
    /// The secret the simulated payment gateway signs callbacks with.
    pub payment_secret: Vec<u8>,
    /// This process's number among those writing to one database (0-255), for order ids.
    pub node_id: u16,
    /// How long merchants and buyers have in after-sales before a timer acts for them.
    pub after_sale_deadlines: xingqu_domain::after_sale::status::Deadlines,
    /// What a missed dispatch promise pays the buyer: basis points of each line's payment.
    pub dispatch_compensation_bps: i64,
    /// A confirmed counterfeit pays back the price and this many times it on top (假一赔三).
    pub counterfeit_multiple: i64,
    /// How long after sign-off an opened cosmetic may be returned after a reaction.
    pub allergy_return_days: i64,
    /// The express-refund standing rule: disputes a buyer may have lost in the last 90 days.
    pub express_refund_max_lost: i64,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            session_ttl_s: 7 * 24 * 3600,
            order_expiry_s: 15 * 60,
            auto_complete_s: 7 * 24 * 3600,
            return_window_s: 7 * 24 * 3600,
            payment_secret: b"xingqu-simulated-gateway-secret".to_vec(),
            node_id: 0,
            after_sale_deadlines: xingqu_domain::after_sale::status::Deadlines::default(),
            dispatch_compensation_bps: 500,
            counterfeit_multiple: 3,
            allergy_return_days: 30,
            express_refund_max_lost: 2,
        }
    }
}

/// The application: the store, the clock, the configuration, and the process-wide state of the
/// hot paths (flash-sale gates, the session cache). Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    clock: Arc<dyn Clock>,
    config: Arc<AppConfig>,
    ids: Arc<ids::IdGenerator>,
    gateway: Arc<dyn payments::PaymentGateway>,
    flash: Arc<flash::FlashEngine>,
    claims: Arc<coupons::claims::ClaimEngine>,
    sessions: Arc<accounts::SessionCache>,
    hot: Arc<std::sync::Mutex<hotlist::HotState>>,
    feed: Arc<feed::FeedService>,
    /// Set while this process runs price-protection sweeps.
    sweeping: Arc<std::sync::atomic::AtomicBool>,
    /// Orders being placed: background writers (sweeps) give way to them.
    traffic: Arc<price_protection::OrderTraffic>,
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: AppConfig) -> Self {
        let gateway = Arc::new(payments::SimulatedGateway::new(&config.payment_secret));
        Self {
            store,
            clock,
            ids: Arc::new(ids::IdGenerator::new(config.node_id)),
            config: Arc::new(config),
            gateway,
            flash: Arc::default(),
            claims: Arc::default(),
            sessions: Arc::default(),
            hot: Arc::default(),
            feed: Arc::default(),
            sweeping: Arc::default(),
            traffic: Arc::default(),
        }
    }

    pub(crate) fn traffic(&self) -> &price_protection::OrderTraffic {
        &self.traffic
    }

    pub(crate) fn sweeping(&self) -> &std::sync::atomic::AtomicBool {
        &self.sweeping
    }

    pub(crate) fn ids(&self) -> &ids::IdGenerator {
        &self.ids
    }

    /// Makes new ids continue after those already stored (call once at start-up).
    pub async fn resume_ids(&self) -> AppResult<()> {
        let max_id = self.store.max_generated_id().await?;
        self.ids.resume_after(max_id);
        Ok(())
    }

    pub fn gateway(&self) -> &dyn payments::PaymentGateway {
        self.gateway.as_ref()
    }

    pub(crate) fn flash(&self) -> &flash::FlashEngine {
        &self.flash
    }

    pub fn feed(&self) -> &feed::FeedService {
        &self.feed
    }

    pub(crate) fn claims(&self) -> &coupons::claims::ClaimEngine {
        &self.claims
    }

    pub(crate) fn sessions(&self) -> &accounts::SessionCache {
        &self.sessions
    }

    pub(crate) fn hot(&self) -> std::sync::MutexGuard<'_, hotlist::HotState> {
        self.hot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }
}
