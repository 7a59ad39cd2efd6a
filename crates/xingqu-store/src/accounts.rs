//! Users and their sessions (bearer tokens stored as SHA-256 hashes).

use crate::{Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: String,
    pub merchant_id: Option<i64>,
    pub created_at_ms: i64,
}

const USER_COLUMNS: &str = "id, email, password_hash, display_name, role, merchant_id, created_at_ms";

impl UserRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            display_name: row.try_get("display_name")?,
            role: row.try_get("role")?,
            merchant_id: row.try_get("merchant_id")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
    pub merchant_id: Option<i64>,
    pub now_ms: i64,
}

impl Tx {
    /// Inserts a user; an e-mail already registered is a [`StoreError::Conflict`].
    pub async fn insert_user(&mut self, user: &NewUser<'_>) -> Result<UserRow, StoreError> {
        let sql = format!(
            "INSERT INTO users (email, password_hash, display_name, role, merchant_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(user.email)
            .bind(user.password_hash)
            .bind(user.display_name)
            .bind(user.role)
            .bind(user.merchant_id)
            .bind(user.now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(UserRow::from_row(&row)?)
    }

    /// Makes a consumer the staff of `merchant_id`. Fails with [`StoreError::Concurrent`] unless
    /// the user is still a consumer.
    pub async fn make_merchant_staff(&mut self, user_id: i64, merchant_id: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET role = 'merchant_staff', merchant_id = $1 WHERE id = $2 AND role = 'consumer'",
        )
        .bind(merchant_id)
        .bind(user_id)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Concurrent) }
    }

    pub async fn insert_session(
        &mut self,
        user_id: i64,
        token_sha256: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (user_id, token_sha256, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(user_id)
        .bind(token_sha256)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Store {
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<UserRow, StoreError> {
        let mut tx = self.begin().await?;
        let row = tx.insert_user(user).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(UserRow::from_row).transpose()?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let row = sqlx::query(&sql).bind(email).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(UserRow::from_row).transpose()?)
    }

    pub async fn insert_session(
        &self,
        user_id: i64,
        token_sha256: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.insert_session(user_id, token_sha256, now_ms, expires_at_ms).await?;
        tx.commit().await
    }

    /// The user behind a live session: the token hash exists, is not revoked, and has not expired
    /// at `now_ms`.
    pub async fn session_user(&self, token_sha256: &str, now_ms: i64) -> Result<Option<(UserRow, i64)>, StoreError> {
        let sql = format!(
            "SELECT {}, s.expires_at_ms FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_sha256 = $1 AND s.revoked_at_ms IS NULL AND s.expires_at_ms > $2",
            USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        );
        let row = sqlx::query(&sql).bind(token_sha256).bind(now_ms).fetch_optional(self.reader()).await?;
        Ok(row
            .as_ref()
            .map(|r| Ok::<_, sqlx::Error>((UserRow::from_row(r)?, r.try_get("expires_at_ms")?)))
            .transpose()?)
    }

    /// Live sessions created since `since_ms`, newest first, at most `limit`: (token hash, user,
    /// expiry). What a starting node warms its session cache with.
    pub async fn recent_sessions(
        &self,
        since_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, UserRow, i64)>, StoreError> {
        let sql = format!(
            "SELECT s.token_sha256, s.expires_at_ms, {} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.created_at_ms >= $1 AND s.revoked_at_ms IS NULL AND s.expires_at_ms > $2 ORDER BY s.id DESC LIMIT $3",
            USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        );
        let rows =
            sqlx::query(&sql).bind(since_ms).bind(now_ms).bind(i64::from(limit)).fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("token_sha256")?, UserRow::from_row(r)?, r.try_get("expires_at_ms")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Revokes a session; returns whether a live session was revoked (revoking twice is harmless).
    pub async fn revoke_session(&self, token_sha256: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE sessions SET revoked_at_ms = $1 WHERE token_sha256 = $2 AND revoked_at_ms IS NULL")
                .bind(now_ms)
                .bind(token_sha256)
                .execute(tx.conn())
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every session of a user (logout everywhere); returns how many were live.
    pub async fn revoke_user_sessions(&self, user_id: i64, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE sessions SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms)
            .bind(user_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
