//! The secrets engine's state: roles (their settings as a JSON document) and leases (which key
//! each one issued, when, until when). Times here are Unix seconds, as Vault counts leases.

use sqlx::Row;

use super::{pg, KeyRecord, Store, StoreError};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `{mount}/creds/{role}/{id}`.
    pub lease_id: String,
    /// The engine mount.
    pub mount: String,
    /// The role it was issued under.
    pub role: String,
    /// The virtual key it governs.
    pub token_id: String,
    /// Issue time.
    pub issued_at: i64,
    /// Current expiry.
    pub expires_at: i64,
    /// Last renewal, if any.
    pub last_renewal: Option<i64>,
}

/// Leases per revocation statement (one bound id each, far under both databases' limits).
const REVOKE_CHUNK: usize = 500;

const LEASE_COLUMNS: &str = "lease_id, mount, role, token_id, issued_at, expires_at, last_renewal";

macro_rules! read_lease {
    ($row:expr) => {{
        let row = $row;
        LeaseRecord {
            lease_id: row.try_get("lease_id")?,
            mount: row.try_get("mount")?,
            role: row.try_get("role")?,
            token_id: row.try_get("token_id")?,
            issued_at: row.try_get("issued_at")?,
            expires_at: row.try_get("expires_at")?,
            last_renewal: row.try_get("last_renewal")?,
        }
    }};
}

impl Store {
    /// Creates or replaces a role's settings.
    pub async fn put_role(
        &self,
        mount: &str,
        name: &str,
        config: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let text = "INSERT INTO keygate_roles (mount, name, config, created_at, updated_at) \
                    VALUES (?, ?, ?, ?, ?) ON CONFLICT (mount, name) \
                    DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at";
        on_store!(self, text, |pool, sql| {
            sqlx::query(&sql)
                .bind(mount)
                .bind(name)
                .bind(config)
                .bind(now)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A role's settings (JSON text).
    pub async fn get_role(&self, mount: &str, name: &str) -> Result<Option<String>, StoreError> {
        let text = "SELECT config FROM keygate_roles WHERE mount = ? AND name = ?";
        on_store!(self, text, |pool, sql| {
            let row = sqlx::query(&sql)
                .bind(mount)
                .bind(name)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(row.try_get("config")?)),
                None => Ok(None),
            }
        })
    }

    /// Role names of a mount, sorted.
    pub async fn list_roles(&self, mount: &str) -> Result<Vec<String>, StoreError> {
        let text = "SELECT name FROM keygate_roles WHERE mount = ? ORDER BY name";
        on_store!(self, text, |pool, sql| {
            let rows = sqlx::query(&sql).bind(mount).fetch_all(pool).await?;
            rows.iter()
                .map(|row| row.try_get("name").map_err(StoreError::from))
                .collect()
        })
    }

    /// Deletes a role; false if it did not exist.
    pub async fn delete_role(&self, mount: &str, name: &str) -> Result<bool, StoreError> {
        let text = "DELETE FROM keygate_roles WHERE mount = ? AND name = ?";
        let rows = on_store!(self, text, |pool, sql| {
            sqlx::query(&sql)
                .bind(mount)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(rows > 0)
    }

    /// Stores a new key, then the lease that governs it; if the lease cannot be stored the key
    /// is removed again (a crash in between leaves a key that still expires with its TTL).
    pub async fn insert_leased_key(
        &self,
        key: &KeyRecord,
        lease: &LeaseRecord,
    ) -> Result<(), StoreError> {
        self.insert_key(key).await?;
        let text =
            format!("INSERT INTO keygate_leases ({LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)");
        let inserted = on_store!(self, text, |pool, sql| {
            sqlx::query(&sql)
                .bind(&lease.lease_id)
                .bind(&lease.mount)
                .bind(&lease.role)
                .bind(&lease.token_id)
                .bind(lease.issued_at)
                .bind(lease.expires_at)
                .bind(lease.last_renewal)
                .execute(pool)
                .await
                .map(|_| ())
        });
        if let Err(err) = inserted {
            // Keep "both or neither": a key without its lease must not outlive this call.
            let _ = self.delete_keys(std::slice::from_ref(&key.token_id)).await;
            return Err(err.into());
        }
        Ok(())
    }

    /// A live (not revoked) lease.
    pub async fn get_lease(&self, lease_id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        let text = format!(
            "SELECT {LEASE_COLUMNS} FROM keygate_leases WHERE lease_id = ? AND revoked_at IS NULL"
        );
        on_store!(self, text, |pool, sql| {
            match sqlx::query(&sql)
                .bind(lease_id)
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Ok(Some(read_lease!(row))),
                None => Ok(None),
            }
        })
    }

    /// Live leases whose id starts with `prefix`, oldest first.
    pub async fn leases_with_prefix(&self, prefix: &str) -> Result<Vec<LeaseRecord>, StoreError> {
        // A range on the primary key instead of LIKE: no escaping of `%`/`_` in ids.
        let text = format!(
            "SELECT {LEASE_COLUMNS} FROM keygate_leases WHERE lease_id >= ? AND lease_id < ? \
             AND revoked_at IS NULL ORDER BY issued_at, lease_id"
        );
        let upper = format!("{prefix}\u{10FFFF}");
        on_store!(self, text, |pool, sql| {
            let rows = sqlx::query(&sql)
                .bind(prefix)
                .bind(&upper)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(read_lease!(row));
            }
            Ok(out)
        })
    }

    /// Moves a live lease's expiry; false if it is not live.
    pub async fn renew_lease(
        &self,
        lease_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let text = "UPDATE keygate_leases SET expires_at = ?, last_renewal = ? \
                    WHERE lease_id = ? AND revoked_at IS NULL";
        let rows = on_store!(self, text, |pool, sql| {
            sqlx::query(&sql)
                .bind(expires_at)
                .bind(now)
                .bind(lease_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(rows > 0)
    }

    /// Marks leases revoked and deletes their keys, in one transaction (a few statements per
    /// thousand leases); returns the token ids of the keys deleted (for cache invalidation).
    /// Leases already revoked are skipped, so concurrent revocations count each lease once.
    pub async fn revoke_leases(
        &self,
        leases: &[LeaseRecord],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut revoked = Vec::new();
        on_store!(self, "", |pool, _sql| {
            let mut tx = pool.begin().await?;
            for chunk in leases.chunks(REVOKE_CHUNK) {
                let mut mark = sqlx::QueryBuilder::new("UPDATE keygate_leases SET revoked_at = ");
                mark.push_bind(now);
                mark.push(" WHERE revoked_at IS NULL AND lease_id IN (");
                let mut ids = mark.separated(", ");
                for lease in chunk {
                    ids.push_bind(&lease.lease_id);
                }
                mark.push(") RETURNING token_id");
                let rows = mark.build().fetch_all(&mut *tx).await?;
                let mut tokens = Vec::with_capacity(rows.len());
                for row in rows {
                    tokens.push(row.try_get::<String, _>("token_id")?);
                }
                if tokens.is_empty() {
                    continue;
                }
                let mut delete =
                    sqlx::QueryBuilder::new("DELETE FROM keygate_keys WHERE token_id IN (");
                let mut ids = delete.separated(", ");
                for token in &tokens {
                    ids.push_bind(token);
                }
                delete.push(")");
                delete.build().execute(&mut *tx).await?;
                revoked.extend(tokens);
            }
            tx.commit().await?;
        });
        Ok(revoked)
    }

    /// Live leases expired at `now`, at most `limit`, soonest first.
    pub async fn expired_leases(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        let text = format!(
            "SELECT {LEASE_COLUMNS} FROM keygate_leases WHERE revoked_at IS NULL \
             AND expires_at <= ? ORDER BY expires_at LIMIT ?"
        );
        on_store!(self, text, |pool, sql| {
            let rows = sqlx::query(&sql)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(read_lease!(row));
            }
            Ok(out)
        })
    }
}
