//! Xingqu persistence: one [`Store`] over SQLite (the embedded default) and PostgreSQL.
//!
//! Both backends go through sqlx's `Any` driver with SQL both dialects accept (`$N` placeholders,
//! BIGINT and TEXT columns only); what differs — connection set-up and the migration folders — is
//! in [`connect`]. The conformance suite in `tests/conformance.rs` runs every behaviour on both.

pub mod accounts;
pub mod after_sales;
pub mod assurance;
pub mod catalog;
pub mod content;
pub mod coupons;
mod error;
pub mod events;
pub mod ledger;
pub mod lucky_bags;
pub mod orders;
pub mod price_protection;
pub mod products;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row};
use std::borrow::Cow;
use std::time::Duration;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// SQLite is opened in WAL mode so readers never wait for the writer, with `synchronous=FULL` so a
/// commit is on disk before it is acknowledged (money and orders survive a power cut too; group
/// commit on the hot path amortises the fsync).
///
/// The rest is for speed: a 64 MiB page cache and memory-mapped reads keep hot pages out of
/// `pread`, and statement journals (multi-row inserts inside a transaction) stay in memory.
const SQLITE_PRAGMAS: [&str; 7] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA cache_size = -65536",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA temp_store = MEMORY",
];

/// Handle to the database: cheap to clone, safe to share.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Reads. On SQLite a pool of readers; on PostgreSQL the same pool as `write`.
    read: AnyPool,
    /// Writes. On SQLite exactly one connection, because SQLite admits one writer at a time and a
    /// queue in the pool is fairer and faster than writers retrying on `SQLITE_BUSY`.
    write: AnyPool,
}

/// Opens the database at `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file if
/// needed. Does not migrate: call [`Store::migrate`].
pub async fn connect(url: &str) -> Result<Store, StoreError> {
    install_default_drivers();
    let backend = Backend::from_url(url)?;
    match backend {
        Backend::Sqlite => {
            let url = sqlite_url_creating(url);
            let write = sqlite_pool(1).connect(&url).await?;
            let read = sqlite_pool(8).connect(&url).await?;
            Ok(Store { backend, read, write })
        }
        Backend::Postgres => {
            let pool =
                AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            Ok(Store { backend, read: pool.clone(), write: pool })
        }
    }
}

fn sqlite_pool(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10)).after_connect(
        |conn, _meta| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS {
                    conn.execute(pragma).await?;
                }
                Ok(())
            })
        },
    )
}

/// `sqlite://PATH` opens read-write and creates the file unless the URL says otherwise.
fn sqlite_url_creating(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Migrations, oldest first: version, description, SQLite text, PostgreSQL text. Released entries
/// are never edited (their checksums are recorded); changes are new entries.
const MIGRATIONS: [(i64, &str, &str, &str); 8] = [
    (
        1,
        "accounts catalog",
        include_str!("../migrations/sqlite/0001_accounts_catalog.sql"),
        include_str!("../migrations/postgres/0001_accounts_catalog.sql"),
    ),
    (
        2,
        "orders ledger",
        include_str!("../migrations/sqlite/0002_orders_ledger.sql"),
        include_str!("../migrations/postgres/0002_orders_ledger.sql"),
    ),
    (
        3,
        "interaction events",
        include_str!("../migrations/sqlite/0003_interaction_events.sql"),
        include_str!("../migrations/postgres/0003_interaction_events.sql"),
    ),
    (
        4,
        "promotions",
        include_str!("../migrations/sqlite/0004_promotions.sql"),
        include_str!("../migrations/postgres/0004_promotions.sql"),
    ),
    (
        5,
        "lucky bags",
        include_str!("../migrations/sqlite/0005_lucky_bags.sql"),
        include_str!("../migrations/postgres/0005_lucky_bags.sql"),
    ),
    (
        6,
        "after-sales and price protection",
        include_str!("../migrations/sqlite/0006_after_sales.sql"),
        include_str!("../migrations/postgres/0006_after_sales.sql"),
    ),
    (
        7,
        "replacement shipments; coupon-priced protection",
        include_str!("../migrations/sqlite/0007_replacements_and_coupons.sql"),
        include_str!("../migrations/postgres/0007_replacements_and_coupons.sql"),
    ),
    (
        8,
        "content: videos, live-session products",
        include_str!("../migrations/sqlite/0008_content.sql"),
        include_str!("../migrations/postgres/0008_content.sql"),
    ),
];

/// The migration after which SQLite's `orders` is rebuilt (see [`Store::migrate`]).
const SQLITE_REBUILD_AFTER: i64 = 5;

/// Builds the migrator from the embedded SQL (the migrations up to `up_to_version`). Built by hand rather than with `sqlx::migrate!` so
/// the workspace needs no sqlx proc-macros (which would compile both drivers a second time).
fn migrator(backend: Backend, up_to_version: i64) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .filter(|&&(version, ..)| version <= up_to_version)
        .map(|&(version, description, sqlite_sql, postgres_sql)| {
            let sql = match backend {
                Backend::Sqlite => sqlite_sql,
                Backend::Postgres => postgres_sql,
            };
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
        })
        .collect::<Vec<_>>();
    // The partial migrator meets databases that already have later migrations: not an error.
    Migrator { migrations: Cow::Owned(migrations), ignore_missing: up_to_version != i64::MAX, ..Migrator::DEFAULT }
}

impl Store {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every migration not yet applied. Safe to run concurrently and repeatedly.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            // The `orders` rebuild belongs right after migration 5 (it re-creates the table as
            // migration 5 left it); later migrations then change the rebuilt table.
            migrator(self.backend, SQLITE_REBUILD_AFTER).run(&self.write).await?;
            self.sqlite_rebuild().await?;
        }
        migrator(self.backend, i64::MAX).run(&self.write).await?;
        Ok(())
    }

    /// Table rebuilds SQLite needs for changes ALTER TABLE cannot make (a wider CHECK), done
    /// once: foreign keys must be off, which SQLite allows only outside a transaction, so this
    /// cannot be a migration (sqlx runs each in one). Idempotent: it looks at the schema first,
    /// again under the write lock, and checks every foreign key before committing.
    async fn sqlite_rebuild(&self) -> Result<(), StoreError> {
        const NEEDED: &str = "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'orders' \
             AND sql NOT LIKE '%''lucky_bag''%'";
        let mut conn = self.write.acquire().await?;
        let pending: i64 = sqlx::query(NEEDED).fetch_one(&mut *conn).await?.try_get("n")?;
        if pending == 0 {
            return Ok(());
        }
        conn.execute("PRAGMA foreign_keys = OFF").await?;
        let rebuilt = async {
            conn.execute("BEGIN IMMEDIATE").await?;
            let pending: i64 = sqlx::query(NEEDED).fetch_one(&mut *conn).await?.try_get("n")?;
            if pending > 0 {
                conn.execute(include_str!("../migrations/sqlite/rebuild/orders_trade_types.sql")).await?;
            }
            let broken = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *conn).await?;
            if broken.is_empty() {
                conn.execute("COMMIT").await?;
                Ok(())
            } else {
                conn.execute("ROLLBACK").await?;
                Err(StoreError::Constraint)
            }
        }
        .await;
        if rebuilt.is_err() {
            // A failure left the transaction open on this pooled connection: close it.
            let _ = conn.execute("ROLLBACK").await;
        }
        conn.execute("PRAGMA foreign_keys = ON").await?;
        rebuilt
    }

    /// Answers whether the database serves queries (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value: Option<(String,)> =
            sqlx::query_as("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.read).await?;
        Ok(value.map(|(v,)| v))
    }

    /// Starts a write transaction; on SQLite it holds the single writer until commit or drop.
    /// Dropping a [`Tx`] without [`Tx::commit`] rolls it back.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx { inner: self.write.begin().await?, backend: self.backend })
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }
}

/// A write transaction: use cases make all the changes of one command through it, then commit.
pub struct Tx {
    pub(crate) inner: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) backend: Backend,
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await?;
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }

    pub async fn setting(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let value: Option<(String,)> =
            sqlx::query_as("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(self.conn()).await?;
        Ok(value.map(|(v,)| v))
    }

    /// Sets `key`; a key already set is a [`StoreError::Conflict`], which makes settings usable as
    /// once-only markers (the demo seed).
    pub async fn insert_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

/// Booleans are stored as 0/1 BIGINT so both dialects share one schema.
pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}
