//! Storage errors: the few outcomes callers act on, apart from everything else.

/// What went wrong in the store. Callers branch on `NotFound` and `Conflict`; the rest is
/// internal and logged, never shown to users.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique key already holds this value (`constraint` names it when the database says).
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// A CHECK constraint refused the change (a pool or a balance would go below zero).
    #[error("a constraint refused the change")]
    Constraint,
    /// A row changed between read and write (compare-and-set lost).
    #[error("concurrent modification")]
    Concurrent,
    #[error("database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another process owns this SQLite database's flash-sale journal, so this one cannot sell
    /// from flash-sale pools.
    #[error("flash-sale pools of this database are sold by another process")]
    FlashPoolsElsewhere,
    /// The flash-sale journal could not be read or written.
    #[error("flash-sale journal: {0}")]
    Journal(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            let constraint = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
            return StoreError::Conflict { constraint };
        }
        if let sqlx::Error::Database(db) = &error
            && matches!(db.kind(), sqlx::error::ErrorKind::CheckViolation)
        {
            return StoreError::Constraint;
        }
        if let sqlx::Error::RowNotFound = error {
            return StoreError::NotFound;
        }
        StoreError::Database(error)
    }
}
