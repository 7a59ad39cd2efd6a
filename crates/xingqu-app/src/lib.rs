//! Xingqu use cases: each loads what it needs, lets the domain decide, and writes the outcome in
//! one store transaction. Nothing here knows HTTP or JSON.

pub mod accounts;
pub mod catalog;
pub mod clock;
pub mod demo;
mod error;
pub mod products;

pub use error::{AppError, AppResult};

use clock::Clock;
use std::sync::Arc;
use xingqu_store::Store;

/// Settings the use cases read; parsed once in `main`.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// How long a bearer token lives after sign-in.
    pub session_ttl_s: i64,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self { session_ttl_s: 7 * 24 * 3600 }
    }
}

/// The application: the store, the clock and the configuration. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    clock: Arc<dyn Clock>,
    config: Arc<AppConfig>,
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: AppConfig) -> Self {
        Self { store, clock, config: Arc::new(config) }
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
