//! Writes for the key management API that touch only what the caller changed.
//!
//! A management update must not write back columns it did not change: the spend flusher adds
//! settled spend and the budget reset moves `budget_reset_at` concurrently, and a full-row write
//! of a record read a moment earlier would undo them. [`Store::patch_key`] writes the listed
//! columns only, in one statement.

use super::{conflict, models_json, pg, KeyRecord, Store, StoreError};

/// A column of a key that [`Store::patch_key`] may write (`created_at` never changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyColumn {
    /// The stored hash; a new one renames the key (regeneration).
    TokenId,
    /// `sk-...abcd`.
    KeyName,
    /// The unique alias.
    KeyAlias,
    /// Allowed models.
    Models,
    /// Settled spend (only when the caller sets it explicitly).
    Spend,
    /// USD cap.
    MaxBudget,
    /// USD warning level.
    SoftBudget,
    /// Budget period.
    BudgetDuration,
    /// Next budget reset.
    BudgetResetAt,
    /// Requests per minute.
    RpmLimit,
    /// Tokens per minute.
    TpmLimit,
    /// Concurrent requests.
    MaxParallelRequests,
    /// Free-form JSON.
    Metadata,
    /// Owning team.
    TeamId,
    /// Owning user.
    UserId,
    /// Refused when true.
    Blocked,
    /// Expiry.
    Expires,
    /// Last change.
    UpdatedAt,
}

impl KeyColumn {
    /// The column's SQL name.
    fn name(self) -> &'static str {
        match self {
            Self::TokenId => "token_id",
            Self::KeyName => "key_name",
            Self::KeyAlias => "key_alias",
            Self::Models => "models",
            Self::Spend => "spend",
            Self::MaxBudget => "max_budget",
            Self::SoftBudget => "soft_budget",
            Self::BudgetDuration => "budget_duration",
            Self::BudgetResetAt => "budget_reset_at",
            Self::RpmLimit => "rpm_limit",
            Self::TpmLimit => "tpm_limit",
            Self::MaxParallelRequests => "max_parallel_requests",
            Self::Metadata => "metadata",
            Self::TeamId => "team_id",
            Self::UserId => "user_id",
            Self::Blocked => "blocked",
            Self::Expires => "expires",
            Self::UpdatedAt => "updated_at",
        }
    }
}

/// Binds the value of `$column` taken from `$key`.
macro_rules! bind_column {
    ($query:expr, $key:expr, $column:expr) => {
        match $column {
            KeyColumn::TokenId => $query.bind(&$key.token_id),
            KeyColumn::KeyName => $query.bind(&$key.key_name),
            KeyColumn::KeyAlias => $query.bind(&$key.key_alias),
            KeyColumn::Models => $query.bind(models_json(&$key.models)),
            KeyColumn::Spend => $query.bind($key.spend),
            KeyColumn::MaxBudget => $query.bind($key.max_budget),
            KeyColumn::SoftBudget => $query.bind($key.soft_budget),
            KeyColumn::BudgetDuration => $query.bind(&$key.budget_duration),
            KeyColumn::BudgetResetAt => $query.bind($key.budget_reset_at),
            KeyColumn::RpmLimit => $query.bind($key.rpm_limit),
            KeyColumn::TpmLimit => $query.bind($key.tpm_limit),
            KeyColumn::MaxParallelRequests => $query.bind($key.max_parallel_requests),
            KeyColumn::Metadata => $query.bind($key.metadata.to_string()),
            KeyColumn::TeamId => $query.bind(&$key.team_id),
            KeyColumn::UserId => $query.bind(&$key.user_id),
            KeyColumn::Blocked => $query.bind($key.blocked),
            KeyColumn::Expires => $query.bind($key.expires),
            KeyColumn::UpdatedAt => $query.bind($key.updated_at),
        }
    };
}

impl Store {
    /// Writes `columns` of `key` to the key stored as `token_id` (a changed `key.token_id` with
    /// [`KeyColumn::TokenId`] renames it: regeneration); false if there is no such key.
    /// [`StoreError::Conflict`] if the new alias or token is taken.
    pub async fn patch_key(
        &self,
        token_id: &str,
        key: &KeyRecord,
        columns: &[KeyColumn],
    ) -> Result<bool, StoreError> {
        if columns.is_empty() {
            return Ok(self.get_key(token_id).await?.is_some());
        }
        let sets = columns
            .iter()
            .map(|c| format!("{} = ?", c.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("UPDATE keygate_keys SET {sets} WHERE token_id = ?");
        let rows = on_store!(self, text, |pool, sql| {
            let mut query = sqlx::query(&sql);
            for column in columns {
                query = bind_column!(query, key, *column);
            }
            query
                .bind(token_id)
                .execute(pool)
                .await
                .map_err(conflict)?
                .rows_affected()
        });
        Ok(rows > 0)
    }

    /// Deletes the keys carrying these aliases; returns the token ids deleted.
    pub async fn delete_keys_by_alias(
        &self,
        aliases: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for alias in aliases {
            let text = "DELETE FROM keygate_keys WHERE key_alias = ? RETURNING token_id";
            let ids: Vec<(String,)> = on_store!(self, text, |pool, sql| {
                sqlx::query_as(&sql).bind(alias).fetch_all(pool).await?
            });
            deleted.extend(ids.into_iter().map(|(id,)| id));
        }
        Ok(deleted)
    }
}
