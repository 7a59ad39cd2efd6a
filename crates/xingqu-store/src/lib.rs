//! Xingqu persistence: one [`Store`] over SQLite (the embedded default) and PostgreSQL.
//!
//! Both backends go through sqlx's `Any` driver with SQL both dialects accept (`$N` placeholders,
//! BIGINT and TEXT columns only); what differs — connection set-up and the migration folders — is
//! in [`connect`]. The conformance suite in `tests/conformance.rs` runs every behaviour on both.

pub mod accounts;
pub mod after_sales;
pub mod analytics;
pub mod assurance;
pub mod campaigns;
pub mod catalog;
pub mod content;
pub mod coupons;
mod error;
pub mod events;
pub mod journal;
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
use std::sync::Arc;
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
    /// Where a SQLite file's flash-sale journal lives (see [`journal`]); none otherwise.
    journal_path: Option<std::path::PathBuf>,
    /// The journal, once [`Store::migrate`] has opened it.
    journal: Arc<std::sync::OnceLock<journal::JournalMode>>,
    journal_opening: Arc<tokio::sync::Mutex<()>>,
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
            Ok(Store::new(backend, read, write, journal::journal_path(&url)))
        }
        Backend::Postgres => {
            let pool =
                AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            Ok(Store::new(backend, pool.clone(), pool, None))
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
const MIGRATIONS: [(i64, &str, &str, &str); 12] = [
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
    (
        9,
        "campaigns: zones, theme days, live slots, subsidy pools",
        include_str!("../migrations/sqlite/0009_campaigns.sql"),
        include_str!("../migrations/postgres/0009_campaigns.sql"),
    ),
    (
        10,
        "brushing flags; analytics indexes",
        include_str!("../migrations/sqlite/0010_brushing_flags.sql"),
        include_str!("../migrations/postgres/0010_brushing_flags.sql"),
    ),
    (
        11,
        "flash-sale order journal",
        include_str!("../migrations/sqlite/0011_flash_journal.sql"),
        include_str!("../migrations/postgres/0011_flash_journal.sql"),
    ),
    (
        12,
        "flash sales ended early",
        include_str!("../migrations/sqlite/0012_flash_sale_end.sql"),
        include_str!("../migrations/postgres/0012_flash_sale_end.sql"),
    ),
];

/// SQLite table rebuilds (see [`Store::migrate`]): after which migration each runs, the query
/// that says whether it is still needed, and its SQL.
const SQLITE_REBUILDS: [(i64, &str, &str); 3] = [
    (
        5,
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'orders' \
         AND sql NOT LIKE '%''lucky_bag''%'",
        include_str!("../migrations/sqlite/rebuild/orders_trade_types.sql"),
    ),
    (
        8,
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'live_sessions' \
         AND sql NOT LIKE '%''scheduled''%'",
        include_str!("../migrations/sqlite/rebuild/live_sessions_scheduled.sql"),
    ),
    (
        12,
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'flash_sales' \
         AND sql NOT LIKE '%flash_sales_window%'",
        include_str!("../migrations/sqlite/rebuild/flash_sales_end.sql"),
    ),
];

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
    fn new(backend: Backend, read: AnyPool, write: AnyPool, journal_path: Option<std::path::PathBuf>) -> Store {
        Store { backend, read, write, journal_path, journal: Arc::default(), journal_opening: Arc::default() }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn journal(&self) -> Option<&Arc<journal::Journal>> {
        match self.journal.get() {
            Some(journal::JournalMode::Local(journal)) => Some(journal),
            _ => None,
        }
    }

    /// True when flash-sale orders go through this database's journal (see [`journal`]).
    pub fn journalled(&self) -> bool {
        self.journal().is_some()
    }

    /// True when another process owns this database's flash-sale journal: this one cannot sell
    /// from flash-sale pools.
    pub fn flash_pools_elsewhere(&self) -> bool {
        matches!(self.journal.get(), Some(journal::JournalMode::Elsewhere))
    }

    /// Waits until the flash-sale orders `pending` names are in the tables (at once on PostgreSQL,
    /// or when the journal holds none of them).
    pub async fn settle(&self, pending: journal::Pending) {
        if let Some(journal) = self.journal() {
            journal.settle(pending).await;
        }
    }

    /// Waits until every journalled flash-sale order that expires by `due_ms` is in the tables.
    pub async fn settle_due(&self, due_ms: i64) {
        if let Some(journal) = self.journal() {
            journal.settle_due(due_ms).await;
        }
    }

    /// Waits until every journalled flash-sale order is in the tables.
    pub async fn settle_all(&self) {
        if let Some(journal) = self.journal() {
            journal.settle_all().await;
        }
    }

    /// Opens a SQLite file's flash-sale journal, applying what it holds (once per store).
    async fn open_journal(&self) -> Result<(), StoreError> {
        let Some(path) = &self.journal_path else { return Ok(()) };
        let _opening = self.journal_opening.lock().await;
        if self.journal.get().is_none() {
            let mode = journal::Journal::open(self, path).await?;
            let _ = self.journal.set(mode);
        }
        Ok(())
    }

    pub(crate) async fn journal_applied_seq(&self) -> Result<u64, StoreError> {
        let seq: i64 = sqlx::query("SELECT applied_seq FROM flash_journal WHERE id = 1")
            .fetch_one(&self.write)
            .await?
            .try_get("applied_seq")?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    /// Applies every migration not yet applied. Safe to run concurrently and repeatedly.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            // Each rebuild belongs right after its migration (it re-creates the table as that
            // migration left it); later migrations then change the rebuilt table.
            for (after, needed, sql) in SQLITE_REBUILDS {
                migrator(self.backend, after).run(&self.write).await?;
                self.sqlite_rebuild(needed, sql).await?;
            }
        }
        migrator(self.backend, i64::MAX).run(&self.write).await?;
        self.open_journal().await
    }

    /// Table rebuilds SQLite needs for changes ALTER TABLE cannot make (a wider CHECK), done
    /// once: foreign keys must be off, which SQLite allows only outside a transaction, so this
    /// cannot be a migration (sqlx runs each in one). Idempotent: it looks at the schema first,
    /// again under the write lock, and checks every foreign key before committing.
    async fn sqlite_rebuild(&self, needed: &str, sql: &str) -> Result<(), StoreError> {
        let mut conn = self.write.acquire().await?;
        let pending: i64 = sqlx::query(needed).fetch_one(&mut *conn).await?.try_get("n")?;
        if pending == 0 {
            return Ok(());
        }
        conn.execute("PRAGMA foreign_keys = OFF").await?;
        let rebuilt = async {
            conn.execute("BEGIN IMMEDIATE").await?;
            let pending: i64 = sqlx::query(needed).fetch_one(&mut *conn).await?.try_get("n")?;
            if pending > 0 {
                conn.execute(sql).await?;
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

    /// Applies what the flash-sale journal holds, then closes the connections.
    pub async fn close(&self) {
        if let Some(journal) = self.journal() {
            journal.close().await;
        }
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
        let effects = journal::Effects::new(self.journal().cloned());
        let flash_elsewhere = self.flash_pools_elsewhere();
        Ok(Tx { inner: self.write.begin().await?, backend: self.backend, effects, flash_elsewhere })
    }

    /// A transaction outside the journal's bookkeeping: the journal's own applier.
    pub(crate) async fn begin_unjournalled(&self) -> Result<Tx, StoreError> {
        let effects = journal::Effects::new(None);
        Ok(Tx { inner: self.write.begin().await?, backend: self.backend, effects, flash_elsewhere: false })
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }
}

/// A write transaction: use cases make all the changes of one command through it, then commit.
pub struct Tx {
    pub(crate) inner: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) backend: Backend,
    /// What this transaction reserved from, or gave back to, the flash-sale journal's pools.
    pub(crate) effects: journal::Effects,
    pub(crate) flash_elsewhere: bool,
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let _loading = self.effects.before_commit().await;
        self.inner.commit().await?;
        self.effects.committed();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that landed at migration 6 with live sessions, viewers' events and a lucky bag
    /// comes through migration 8 and the `live_sessions` rebuild with every row and reference
    /// intact, and takes scheduled sessions afterwards.
    #[tokio::test]
    async fn sqlite_upgrade_keeps_live_sessions_and_their_references() {
        let dir = tempfile::tempdir().expect("dir");
        let store = connect(&format!("sqlite://{}", dir.path().join("old.db").display())).await.expect("connect");
        migrator(Backend::Sqlite, 5).run(&store.write).await.expect("up to 5");
        let (needed, sql) = (SQLITE_REBUILDS[0].1, SQLITE_REBUILDS[0].2);
        store.sqlite_rebuild(needed, sql).await.expect("orders rebuild");
        migrator(Backend::Sqlite, 6).run(&store.write).await.expect("up to 6");
        for statement in [
            "INSERT INTO users (id, email, password_hash, display_name, role, created_at_ms) \
             VALUES (1, 'c@x.test', 'h', 'c', 'creator', 1), (2, 'v@x.test', 'h', 'v', 'consumer', 1)",
            "INSERT INTO live_sessions (id, creator_user_id, title, status, started_at_ms) VALUES (7, 1, '直播', 'live', 10)",
            "INSERT INTO live_events (live_session_id, user_id, kind, watch_ms, at_ms) VALUES (7, 2, 'join', 0, 11)",
        ] {
            sqlx::query(statement).execute(&store.write).await.expect(statement);
        }
        store.migrate().await.expect("migrate");
        store.migrate().await.expect("migrate again changes nothing");
        let session = store.live_session(7).await.expect("read").expect("kept");
        assert_eq!((session.status.as_str(), session.started_at_ms, session.scheduled_for_ms), ("live", 10, None));
        assert_eq!(store.live_viewers(7).await.expect("viewers"), 1, "events still point at it");
        let broken = sqlx::query("PRAGMA foreign_key_check").fetch_all(&store.write).await.expect("check");
        assert!(broken.is_empty());
        let mut tx = store.begin().await.expect("tx");
        let scheduled = tx.insert_live_session(1, "双11", 20, Some(1_000)).await.expect("scheduled");
        assert_eq!(scheduled.status, "scheduled");
        tx.commit().await.expect("commit");
    }
}
