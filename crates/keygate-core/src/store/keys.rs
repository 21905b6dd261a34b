//! Virtual keys and the spend log, on either database.
//!
//! A key is stored only as its `token_id` (hex SHA-256 of the plaintext) plus a display name
//! (`sk-...abcd`). Times are Unix milliseconds. Every write is committed before it returns, so a
//! key acknowledged to a client survives a crash.

use serde_json::Value;
use sqlx::Row;

use super::{pg, Store, StoreError};

/// A virtual key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// Hex SHA-256 of the plaintext key.
    pub token_id: String,
    /// The key abbreviated for display (`sk-...abcd`).
    pub key_name: String,
    /// A unique, caller-chosen name.
    pub key_alias: Option<String>,
    /// Models the key may call; empty means all.
    pub models: Vec<String>,
    /// USD spent (settled).
    pub spend: f64,
    /// USD cap; `None` means none.
    pub max_budget: Option<f64>,
    /// USD level past which a warning is logged.
    pub soft_budget: Option<f64>,
    /// Period after which spend resets (`30d`, ...).
    pub budget_duration: Option<String>,
    /// When spend next resets (ms).
    pub budget_reset_at: Option<i64>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Option<i64>,
    /// Free-form JSON object.
    pub metadata: Value,
    /// Owning team.
    pub team_id: Option<String>,
    /// Owning user.
    pub user_id: Option<String>,
    /// Refused at once when true.
    pub blocked: bool,
    /// Expiry (ms); `None` never expires.
    pub expires: Option<i64>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

impl KeyRecord {
    /// A key with no scope, limits, owner or expiry, created at `now_ms`; set what it needs
    /// with struct update syntax.
    pub fn new(token_id: impl Into<String>, key_name: impl Into<String>, now_ms: i64) -> Self {
        Self {
            token_id: token_id.into(),
            key_name: key_name.into(),
            key_alias: None,
            models: Vec::new(),
            spend: 0.0,
            max_budget: None,
            soft_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            metadata: Value::Object(serde_json::Map::new()),
            team_id: None,
            user_id: None,
            blocked: false,
            expires: None,
            created_at: now_ms,
            updated_at: now_ms,
        }
    }
}

/// Filters of [`Store::list_keys`].
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Exact alias.
    pub key_alias: Option<String>,
    /// Exact user.
    pub user_id: Option<String>,
    /// Exact team.
    pub team_id: Option<String>,
}

const COLUMNS: &str = "token_id, key_name, key_alias, models, spend, max_budget, soft_budget, \
    budget_duration, budget_reset_at, rpm_limit, tpm_limit, max_parallel_requests, metadata, \
    team_id, user_id, blocked, expires, created_at, updated_at";

macro_rules! bind_key {
    ($query:expr, $k:expr) => {
        $query
            .bind(&$k.token_id)
            .bind(&$k.key_name)
            .bind(&$k.key_alias)
            .bind(models_json(&$k.models))
            .bind($k.spend)
            .bind($k.max_budget)
            .bind($k.soft_budget)
            .bind(&$k.budget_duration)
            .bind($k.budget_reset_at)
            .bind($k.rpm_limit)
            .bind($k.tpm_limit)
            .bind($k.max_parallel_requests)
            .bind($k.metadata.to_string())
            .bind(&$k.team_id)
            .bind(&$k.user_id)
            .bind($k.blocked)
            .bind($k.expires)
            .bind($k.created_at)
            .bind($k.updated_at)
    };
}

macro_rules! read_key {
    ($row:expr) => {{
        let row = $row;
        let models: String = row.try_get("models")?;
        let metadata: String = row.try_get("metadata")?;
        KeyRecord {
            token_id: row.try_get("token_id")?,
            key_name: row.try_get("key_name")?,
            key_alias: row.try_get("key_alias")?,
            models: serde_json::from_str(&models).unwrap_or_default(),
            spend: row.try_get("spend")?,
            max_budget: row.try_get("max_budget")?,
            soft_budget: row.try_get("soft_budget")?,
            budget_duration: row.try_get("budget_duration")?,
            budget_reset_at: row.try_get("budget_reset_at")?,
            rpm_limit: row.try_get("rpm_limit")?,
            tpm_limit: row.try_get("tpm_limit")?,
            max_parallel_requests: row.try_get("max_parallel_requests")?,
            metadata: serde_json::from_str(&metadata).unwrap_or(Value::Object(Default::default())),
            team_id: row.try_get("team_id")?,
            user_id: row.try_get("user_id")?,
            blocked: row.try_get("blocked")?,
            expires: row.try_get("expires")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

// Declared after the macros above so that its statements can use them.
mod manage;
mod spend;
pub use manage::KeyColumn;
pub use spend::{Releases, SpendEntry};

fn models_json(models: &[String]) -> String {
    serde_json::to_string(models).unwrap_or_else(|_| "[]".to_owned())
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let what = if db.message().contains("key_alias") {
                "key_alias"
            } else {
                "key"
            };
            return StoreError::Conflict(what);
        }
    }
    StoreError::Database(err)
}

impl Store {
    /// Inserts a new key; [`StoreError::Conflict`] if its token or alias exists.
    pub async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let text = format!(
            "INSERT INTO keygate_keys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        on_store!(self, text, |pool, sql| {
            bind_key!(sqlx::query(&sql), key)
                .execute(pool)
                .await
                .map_err(conflict)?;
        });
        Ok(())
    }

    /// Replaces every field of the key `key.token_id`; false if it does not exist.
    pub async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        self.replace_key(&key.token_id, key).await
    }

    /// Replaces the key `old_token_id` with `key` (whose token may be new: regeneration).
    pub async fn replace_key(
        &self,
        old_token_id: &str,
        key: &KeyRecord,
    ) -> Result<bool, StoreError> {
        let sets = COLUMNS
            .split(", ")
            .map(|c| format!("{} = ?", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("UPDATE keygate_keys SET {sets} WHERE token_id = ?");
        let rows = on_store!(self, text, |pool, sql| {
            bind_key!(sqlx::query(&sql), key)
                .bind(old_token_id)
                .execute(pool)
                .await
                .map_err(conflict)?
                .rows_affected()
        });
        Ok(rows > 0)
    }

    /// The key with this token id.
    pub async fn get_key(&self, token_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let text = format!("SELECT {COLUMNS} FROM keygate_keys WHERE token_id = ?");
        on_store!(self, text, |pool, sql| {
            match sqlx::query(&sql)
                .bind(token_id)
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Ok(Some(read_key!(row))),
                None => Ok(None),
            }
        })
    }

    /// The key with this alias.
    pub async fn get_key_by_alias(&self, alias: &str) -> Result<Option<KeyRecord>, StoreError> {
        let text = format!("SELECT {COLUMNS} FROM keygate_keys WHERE key_alias = ?");
        on_store!(self, text, |pool, sql| {
            match sqlx::query(&sql).bind(alias).fetch_optional(pool).await? {
                Some(row) => Ok(Some(read_key!(row))),
                None => Ok(None),
            }
        })
    }

    /// Deletes the keys with these token ids; returns the ids that existed.
    pub async fn delete_keys(&self, token_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for token_id in token_ids {
            let text = "DELETE FROM keygate_keys WHERE token_id = ?";
            let rows = on_store!(self, text, |pool, sql| {
                sqlx::query(&sql)
                    .bind(token_id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if rows > 0 {
                deleted.push(token_id.clone());
            }
        }
        Ok(deleted)
    }

    /// One page of keys, newest first (then by token id, descending, as LiteLLM orders them),
    /// and the total matching the filter.
    pub async fn list_keys(
        &self,
        filter: &KeyFilter,
        page: u32,
        size: u32,
    ) -> Result<(Vec<KeyRecord>, i64), StoreError> {
        let mut clauses = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        for (column, value) in [
            ("key_alias", &filter.key_alias),
            ("user_id", &filter.user_id),
            ("team_id", &filter.team_id),
        ] {
            if let Some(value) = value {
                clauses.push(format!("{column} = ?"));
                binds.push(value);
            }
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
        let count_text = format!("SELECT COUNT(*) AS n FROM keygate_keys{filter_sql}");
        let total: i64 = on_store!(self, count_text, |pool, sql| {
            let mut query = sqlx::query(&sql);
            for value in &binds {
                query = query.bind(*value);
            }
            query.fetch_one(pool).await?.try_get("n")?
        });
        let text = format!(
            "SELECT {COLUMNS} FROM keygate_keys{filter_sql} ORDER BY created_at DESC, token_id DESC LIMIT ? OFFSET ?"
        );
        let keys = on_store!(self, text, |pool, sql| {
            let mut query = sqlx::query(&sql);
            for value in &binds {
                query = query.bind(*value);
            }
            let rows = query
                .bind(i64::from(size))
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in rows {
                keys.push(read_key!(row));
            }
            keys
        });
        Ok((keys, total))
    }
}
