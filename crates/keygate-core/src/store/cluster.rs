//! Cluster-wide limits and instance bookkeeping, PostgreSQL only (one SQLite file serves one
//! instance, whose limits stay in memory; on SQLite these calls do nothing).
//!
//! Every check-and-take is one statement: a budget reservation is an `UPDATE ... WHERE spend +
//! reserved + :reserve <= max_budget` (PostgreSQL re-checks the condition on the latest row
//! version when two instances race for the row), and a request of the minute is an upsert whose
//! update only happens under the limits. Each instance's share of the reservations is kept in
//! `keygate_reservations`, so the reservations of an instance that stopped without giving them
//! back can be charged to their keys by whoever reaps it.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::{Store, StoreError};

/// Gives back `$3` micro-USD `$1` holds on key `$2`. The key's row first, then the
/// reservation, as admissions lock them (the other order could deadlock); nothing when the
/// reservation is gone (charged by a reaper).
pub(super) const RELEASE: &str = "WITH k AS ( \
       UPDATE keygate_keys SET reserved = reserved - $3 \
       WHERE token_id = $2 AND EXISTS (SELECT 1 FROM keygate_reservations \
         WHERE instance_id = $1 AND token_id = $2) \
       RETURNING token_id) \
     UPDATE keygate_reservations SET micros = micros - $3 \
     WHERE instance_id = $1 AND token_id IN (SELECT token_id FROM k)";

/// Adds `$3` tokens to key `$1`'s window of minute `$2`.
pub(super) const ADD_TOKENS: &str =
    "INSERT INTO keygate_rate_windows AS w (token_id, minute, tokens) VALUES ($1, $2, $3) \
     ON CONFLICT (token_id, minute) DO UPDATE SET tokens = w.tokens + excluded.tokens";

/// Budget figures of a key, micro-USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetState {
    /// Settled spend.
    pub spend_micros: f64,
    /// Held by requests in flight on every instance.
    pub reserved_micros: i64,
}

/// A key's counts in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowState {
    /// Requests admitted.
    pub requests: i64,
    /// Tokens settled.
    pub tokens: i64,
}

impl Store {
    fn pg(&self) -> Option<&PgPool> {
        match self {
            Store::Postgres(pool) => Some(pool),
            Store::Sqlite(_) => None,
        }
    }

    /// Counts one request in `token_id`'s window of `minute`, if it stays under `rpm` requests
    /// and the window's tokens are under `tpm`. `false`: refused (nothing counted).
    pub async fn take_request(
        &self,
        token_id: &str,
        minute: i64,
        rpm: Option<i64>,
        tpm: Option<i64>,
    ) -> Result<bool, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(true);
        };
        let row = sqlx::query(
            "INSERT INTO keygate_rate_windows AS w (token_id, minute, requests) VALUES ($1, $2, 1) \
             ON CONFLICT (token_id, minute) DO UPDATE SET requests = w.requests + 1 \
             WHERE ($3::BIGINT IS NULL OR w.requests < $3) AND ($4::BIGINT IS NULL OR w.tokens < $4) \
             RETURNING requests",
        )
        .bind(token_id)
        .bind(minute)
        .bind(rpm)
        .bind(tpm)
        .fetch_optional(pool)
        .await?;
        Ok(row.is_some())
    }

    /// `token_id`'s counts in `minute`.
    pub async fn window(&self, token_id: &str, minute: i64) -> Result<WindowState, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(WindowState::default());
        };
        let row = sqlx::query(
            "SELECT requests, tokens FROM keygate_rate_windows WHERE token_id = $1 AND minute = $2",
        )
        .bind(token_id)
        .bind(minute)
        .fetch_optional(pool)
        .await?;
        Ok(match row {
            Some(row) => WindowState {
                requests: row.try_get("requests")?,
                tokens: row.try_get("tokens")?,
            },
            None => WindowState::default(),
        })
    }

    /// Reserves `micros` of `token_id`'s budget for `instance`, if spend plus every
    /// reservation stays within `max_budget` (with nothing to reserve: if spend is under it).
    /// `false`: refused, or the key is gone.
    pub async fn reserve_budget(
        &self,
        instance: &str,
        token_id: &str,
        micros: i64,
    ) -> Result<bool, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(true);
        };
        // Half a micro-dollar of slack absorbs the rounding of the float `spend` column.
        let row = sqlx::query(
            "WITH k AS ( \
               UPDATE keygate_keys SET reserved = reserved + $3 \
               WHERE token_id = $2 AND max_budget IS NOT NULL \
                 AND spend * 1000000 + reserved + $3 <= max_budget * 1000000 + 0.5 \
                 AND ($3 > 0 OR spend * 1000000 < max_budget * 1000000 - 0.5) \
               RETURNING token_id) \
             INSERT INTO keygate_reservations AS r (instance_id, token_id, micros) \
             SELECT $1, token_id, $3 FROM k \
             ON CONFLICT (instance_id, token_id) DO UPDATE SET micros = r.micros + excluded.micros \
             RETURNING micros",
        )
        .bind(instance)
        .bind(token_id)
        .bind(micros)
        .fetch_optional(pool)
        .await?;
        Ok(row.is_some())
    }

    /// A key's spend and reservations; `None` when the key is gone.
    pub async fn budget(&self, token_id: &str) -> Result<Option<BudgetState>, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT spend * 1000000 AS spend, reserved FROM keygate_keys WHERE token_id = $1",
        )
        .bind(token_id)
        .fetch_optional(pool)
        .await?;
        row.map(|row| {
            Ok(BudgetState {
                spend_micros: row.try_get("spend")?,
                reserved_micros: row.try_get("reserved")?,
            })
        })
        .transpose()
    }

    /// Gives back reservations `instance` holds (token id, micros) and adds settled tokens to
    /// the per-minute windows (token id, minute, tokens), in one transaction. A reservation
    /// already charged by a reaper (the instance was taken for dead) is not given back twice.
    /// The spend writer does this with the spend, see [`Store::record_spend_and_release`].
    pub async fn release_reservations(
        &self,
        instance: &str,
        releases: &[(String, i64)],
        windows: &[(String, i64, i64)],
    ) -> Result<(), StoreError> {
        if self.pg().is_none() {
            return Ok(());
        }
        let releases = super::keys::Releases {
            instance,
            releases,
            windows,
        };
        self.record_spend_and_release(&[], &[], 0, Some(releases))
            .await
    }

    /// Drops the reservations held on `old` (a key regenerated into `new`, same row) and
    /// takes them off the row's total.
    pub async fn drop_reservations(&self, old: &str, new: &str) -> Result<(), StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(());
        };
        sqlx::query(
            "WITH r AS (DELETE FROM keygate_reservations WHERE token_id = $1 RETURNING micros) \
             UPDATE keygate_keys SET reserved = reserved - (SELECT COALESCE(SUM(micros), 0) FROM r) \
             WHERE token_id = $2",
        )
        .bind(old)
        .bind(new)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Records that `instance` is alive at `now_ms`. `false` when its row was gone (it was
    /// taken for dead and reaped; it is registered again).
    pub async fn heartbeat(&self, instance: &str, now_ms: i64) -> Result<bool, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(true);
        };
        let updated =
            sqlx::query("UPDATE keygate_instances SET heartbeat_at = $2 WHERE instance_id = $1")
                .bind(instance)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected();
        if updated > 0 {
            return Ok(true);
        }
        sqlx::query(
            "INSERT INTO keygate_instances (instance_id, started_at, heartbeat_at) \
             VALUES ($1, $2, $2) ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = $2",
        )
        .bind(instance)
        .bind(now_ms)
        .execute(pool)
        .await?;
        Ok(false)
    }

    /// Instances whose last heartbeat is older than `before_ms`.
    pub async fn silent_instances(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query("SELECT instance_id FROM keygate_instances WHERE heartbeat_at < $1")
            .bind(before_ms)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("instance_id").map_err(StoreError::from))
            .collect()
    }

    /// Charges the reservations `instance` still holds to their keys (their requests may have
    /// been served; their real cost is unknown and the reservation bounds it), and forgets the
    /// instance. Returns the keys charged and the micro-USD charged.
    pub async fn reap_instance(&self, instance: &str) -> Result<(u64, i64), StoreError> {
        let Some(pool) = self.pg() else {
            return Ok((0, 0));
        };
        let mut tx = pool.begin().await?;
        let charged = sqlx::query(
            "WITH r AS (DELETE FROM keygate_reservations WHERE instance_id = $1 \
                        RETURNING token_id, micros) \
             UPDATE keygate_keys k SET reserved = k.reserved - r.micros, \
                                       spend = k.spend + r.micros / 1000000.0 \
             FROM r WHERE k.token_id = r.token_id AND r.micros <> 0 RETURNING r.micros",
        )
        .bind(instance)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM keygate_instances WHERE instance_id = $1")
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut micros = 0i64;
        for row in &charged {
            micros += row.try_get::<i64, _>("micros")?;
        }
        Ok((charged.len() as u64, micros))
    }

    /// Deletes per-minute windows older than `before_minute`.
    pub async fn prune_windows(&self, before_minute: i64) -> Result<u64, StoreError> {
        let Some(pool) = self.pg() else {
            return Ok(0);
        };
        Ok(
            sqlx::query("DELETE FROM keygate_rate_windows WHERE minute < $1")
                .bind(before_minute)
                .execute(pool)
                .await?
                .rows_affected(),
        )
    }
}

/// The advisory lock whose holder does the cluster's periodic work (reaping leases and silent
/// instances): "kgreaper" in ASCII.
const LEADER_LOCK: i64 = 0x6b67_7265_6170_6572;

/// Whether this instance does the cluster's periodic work. On PostgreSQL: while it holds a
/// session advisory lock on a connection of its own (the lock goes with the connection, so the
/// lock of a crashed leader is free at once); on SQLite, always.
#[derive(Default)]
pub struct Leadership {
    conn: Option<sqlx::PgConnection>,
    held: bool,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("held", &self.held)
            .finish()
    }
}

impl Leadership {
    /// Whether this instance leads now: keeps the lock if its connection still answers, else
    /// tries to take it (never waits for it).
    pub async fn check(&mut self, store: &Store) -> bool {
        use sqlx::Connection;
        let Some(pool) = store.pg() else {
            return true;
        };
        if self.conn.is_none() {
            match sqlx::PgConnection::connect_with(&pool.connect_options()).await {
                Ok(conn) => self.conn = Some(conn),
                Err(err) => {
                    tracing::debug!(error = %err, "cannot contend for cluster leadership");
                    return false;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let answer = if self.held {
            conn.ping().await.map(|()| true)
        } else {
            sqlx::query_as::<_, (bool,)>("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut *conn)
                .await
                .map(|(taken,)| taken)
        };
        match answer {
            Ok(held) => {
                if held && !self.held {
                    tracing::info!("this instance now leads the cluster's periodic work");
                }
                self.held = held;
            }
            Err(err) => {
                if self.held {
                    tracing::warn!(error = %err, "lost the connection holding cluster leadership");
                }
                self.conn = None;
                self.held = false;
            }
        }
        self.held
    }
}
