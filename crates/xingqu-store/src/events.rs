//! Interaction events: appended in batches, read back in arrival order for replay.

use crate::{Backend, Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub user_id: Option<i64>,
    pub device_id: Option<String>,
    pub kind: &'static str,
    pub item_type: &'static str,
    pub item_id: i64,
    pub watch_ms: i64,
    pub occurred_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub device_id: Option<String>,
    pub kind: String,
    pub item_type: String,
    pub item_id: i64,
    pub watch_ms: i64,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
}

const COLUMNS: [&str; 8] =
    ["user_id", "device_id", "kind", "item_type", "item_id", "watch_ms", "occurred_at_ms", "received_at_ms"];
/// Events per INSERT statement.
const ROWS_PER_STATEMENT: usize = 250;

/// The INSERT of `rows` events: positional `?` on SQLite (and no RETURNING: ids are consecutive
/// there), numbered `$n` with RETURNING on PostgreSQL. Full chunks reuse one statement text, so the
/// driver's statement cache prepares it once.
fn insert_sql(backend: Backend, rows: usize) -> String {
    let mut sql = format!("INSERT INTO interaction_events ({}) VALUES ", COLUMNS.join(", "));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let placeholders: Vec<String> = (0..COLUMNS.len())
            .map(|column| match backend {
                Backend::Sqlite => "?".to_owned(),
                Backend::Postgres => format!("${}", row * COLUMNS.len() + column + 1),
            })
            .collect();
        sql.push_str(&format!("({})", placeholders.join(", ")));
    }
    if backend == Backend::Postgres {
        sql.push_str(" RETURNING id");
    }
    sql
}

impl Store {
    /// Appends a batch in one transaction (all or nothing), in the given order; returns the ids
    /// (arrival order) of the first and last event.
    pub async fn append_events(&self, events: &[NewEvent], received_at_ms: i64) -> Result<(i64, i64), StoreError> {
        let mut tx = self.begin().await?;
        if self.backend() == Backend::Postgres {
            // Identity values are taken at insert, not at commit: without this lock a batch could
            // commit ids below another's that committed first, and a replay cursor past them would
            // skip it. (SQLite has one writer, so arrival order is commit order already.)
            sqlx::query("SELECT pg_advisory_xact_lock(7001)").execute(tx.conn()).await?;
        }
        let mut first_id = None;
        let mut last_id = 0;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let sqlite = self.backend() == Backend::Sqlite;
            let sql = insert_sql(self.backend(), chunk.len());
            let mut query = sqlx::query(&sql);
            for event in chunk {
                query = query
                    .bind(event.user_id)
                    .bind(event.device_id.as_deref())
                    .bind(event.kind)
                    .bind(event.item_type)
                    .bind(event.item_id)
                    .bind(event.watch_ms)
                    .bind(event.occurred_at_ms)
                    .bind(received_at_ms);
            }
            if sqlite {
                // One writer: the rows of a statement take consecutive rowids, ending at the last
                // one inserted, so no row needs to come back.
                query.execute(tx.conn()).await?;
                let last: i64 = sqlx::query("SELECT MAX(id) AS id FROM interaction_events")
                    .fetch_one(tx.conn())
                    .await?
                    .try_get("id")?;
                first_id.get_or_insert(last - chunk.len() as i64 + 1);
                last_id = last;
            } else {
                for row in query.fetch_all(tx.conn()).await? {
                    let id: i64 = row.try_get("id")?;
                    first_id.get_or_insert(id);
                    last_id = last_id.max(id);
                }
            }
        }
        tx.commit().await?;
        Ok((first_id.unwrap_or(0), last_id))
    }

    /// Events after `after_id` in arrival order, at most `limit`: the replay feed.
    pub async fn events_after(&self, after_id: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, device_id, kind, item_type, item_id, watch_ms, occurred_at_ms, received_at_ms \
             FROM interaction_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    device_id: r.try_get("device_id")?,
                    kind: r.try_get("kind")?,
                    item_type: r.try_get("item_type")?,
                    item_id: r.try_get("item_id")?,
                    watch_ms: r.try_get("watch_ms")?,
                    occurred_at_ms: r.try_get("occurred_at_ms")?,
                    received_at_ms: r.try_get("received_at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Which of `ids` are products that exist.
    pub async fn existing_products(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.existing_ids("SELECT id FROM products WHERE id IN", ids).await
    }

    /// Which of `ids` are creators.
    pub async fn existing_creators(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.existing_ids("SELECT id FROM users WHERE role = 'creator' AND id IN", ids).await
    }

    /// Which of `ids` are published videos.
    pub async fn existing_videos(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.existing_ids("SELECT id FROM videos WHERE status = 'published' AND id IN", ids).await
    }

    /// Which of `ids` are live sessions (on air or ended).
    pub async fn existing_live_sessions(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.existing_ids("SELECT id FROM live_sessions WHERE id IN", ids).await
    }

    /// The ids of `ids` that `select_in` (a query ending in `id IN`) finds, asked in chunks.
    async fn existing_ids(&self, select_in: &str, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("{select_in} ({})", placeholders.join(", "));
            let rows = chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(*id)).fetch_all(self.reader()).await?;
            for row in rows {
                found.push(row.try_get("id")?);
            }
        }
        Ok(found)
    }
}
