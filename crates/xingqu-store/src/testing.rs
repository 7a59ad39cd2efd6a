//! Test databases: a fresh SQLite file, or a fresh PostgreSQL schema, per test, so tests run in
//! parallel without seeing each other. PostgreSQL is used when `XINGQU_TEST_POSTGRES_URL` is set.

use crate::{Backend, Store, StoreError};
use rand::Rng;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

/// The environment variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "XINGQU_TEST_POSTGRES_URL";

/// A migrated, empty database that lives as long as the value (call [`TestDb::finish`] to drop a
/// PostgreSQL schema; a SQLite file goes with its temporary directory).
pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { base_url: String, schema: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite().await),
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("xingqu.db").display());
        let store = crate::connect(&url).await.expect("open SQLite");
        store.migrate().await.expect("migrate SQLite");
        TestDb { store, url, cleanup: Cleanup::Sqlite(dir) }
    }

    /// A fresh schema on the server named by `XINGQU_TEST_POSTGRES_URL`, or `None` when unset.
    pub async fn postgres() -> Option<TestDb> {
        let base_url = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty())?;
        let schema = format!("xq_test_{:016x}", rand::rng().random::<u64>());
        sqlx::any::install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&base_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL does not answer: {e}"));
        admin.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create test schema");
        admin.close().await;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
        let store = crate::connect(&url).await.expect("open PostgreSQL");
        store.migrate().await.expect("migrate PostgreSQL");
        Some(TestDb { store, url, cleanup: Cleanup::Postgres { base_url, schema } })
    }

    /// Closes the store and drops what the test created.
    pub async fn finish(self) {
        self.store.close().await;
        if let Cleanup::Postgres { base_url, schema } = &self.cleanup
            && let Ok(admin) = AnyPoolOptions::new().max_connections(1).connect(base_url).await
        {
            let _ = admin.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await;
            admin.close().await;
        }
    }
}

/// Whether a store error is a unique-key conflict (for tests asserting on duplicates).
pub fn is_conflict(error: &StoreError) -> bool {
    matches!(error, StoreError::Conflict { .. })
}
