//! Where the budgets and per-minute limits of virtual keys are counted.
//!
//! - [`Limiter::Local`]: this process's memory ([`super::limits`]); exact for one instance, and
//!   the only choice with SQLite (one file, one instance) or `limits.scope: instance`.
//! - [`Limiter::Postgres`]: the shared database, one statement per check (see
//!   [`crate::store::Store::reserve_budget`]); reservations are given back by the spend writer.
//! - [`Limiter::Redis`]: one Lua script per check when `redis_url` is set; faster than the
//!   database, equally exact.
//!
//! With a shared limiter every instance sees every reservation, so N instances never admit
//! more than the limit together. `max_parallel_requests` stays per instance. When the shared
//! counters cannot be reached, a key that has a budget or an rpm/tpm limit is refused with 503
//! (`limiter_unavailable`) rather than let past its limits; keys without such limits are not
//! affected. Reservations of an instance that stopped without giving them back (a crash) are
//! charged to their keys by the cluster's leader (see [`Limiter::tend`]): spend errs high by at
//! most those requests, never low.

mod postgres;
mod redis;

use std::sync::Arc;

use super::limits::{now_secs, Admission, KeyLedger, Refusal};
use super::spend::SpendWriter;
use crate::config::LimitScope;
use crate::store::{KeyRecord, Store};

pub use self::postgres::PgLimiter;
pub use self::redis::RedisLimiter;

/// Where limits are counted.
#[derive(Debug, Clone)]
pub enum Limiter {
    /// This process's memory.
    Local,
    /// The shared PostgreSQL store.
    Postgres(Arc<PgLimiter>),
    /// A Redis shared by the instances.
    Redis(Arc<RedisLimiter>),
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum AdmitError {
    /// A limit is reached.
    Refused(Refusal),
    /// The shared counters cannot be reached (a description without secrets).
    Unavailable(String),
    /// The key is gone from the store.
    Gone,
}

/// A cluster-wide reservation to give back when the request settles.
pub(crate) enum Hold {
    Postgres {
        writer: SpendWriter,
        token_id: String,
        tpm: bool,
    },
    Redis {
        limiter: Arc<RedisLimiter>,
        token_id: String,
        tpm: bool,
    },
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgres { .. } => "Hold::Postgres",
            Self::Redis { .. } => "Hold::Redis",
        })
    }
}

impl Hold {
    /// Gives back `reserved` micro-USD, charging `cost` micro-USD and `tokens` to the window.
    pub(crate) fn release(self, reserved: i64, cost: i64, tokens: i64) {
        let minute = now_minute();
        match self {
            Self::Postgres {
                writer,
                token_id,
                tpm,
            } => writer.release(token_id, reserved, tpm.then_some((minute, tokens))),
            Self::Redis {
                limiter,
                token_id,
                tpm,
            } => limiter.settle(
                token_id,
                reserved,
                cost,
                if tpm { tokens } else { 0 },
                minute,
            ),
        }
    }
}

/// The current minute since the epoch.
pub(crate) fn now_minute() -> i64 {
    i64::try_from(now_secs() / 60).unwrap_or(i64::MAX)
}

/// Seconds until the next minute starts.
pub(crate) fn retry_after() -> u64 {
    60 - now_secs() % 60
}

impl Limiter {
    /// The limiter for `scope` on `store`, with `redis_url` if one is configured; `instance`
    /// names this process in the shared counters.
    pub fn new(
        scope: LimitScope,
        store: &Store,
        redis_url: Option<&str>,
        instance: Arc<str>,
        writer: SpendWriter,
    ) -> Result<Self, ::redis::RedisError> {
        if Self::counts_in_postgres(scope, store, redis_url) {
            return Ok(Self::Postgres(Arc::new(PgLimiter::new(
                store.clone(),
                instance,
                writer,
            ))));
        }
        match redis_url {
            Some(url) if scope == LimitScope::Auto => Ok(Self::Redis(Arc::new(RedisLimiter::new(
                url, instance, writer,
            )?))),
            _ => Ok(Self::Local),
        }
    }

    /// Whether limits will be counted in PostgreSQL: scope `auto`, no Redis, a PostgreSQL store.
    pub fn counts_in_postgres(scope: LimitScope, store: &Store, redis_url: Option<&str>) -> bool {
        scope == LimitScope::Auto && redis_url.is_none() && matches!(store, Store::Postgres(_))
    }

    /// `local`, `postgres` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Postgres(_) => "postgres",
            Self::Redis(_) => "redis",
        }
    }

    /// Whether this limiter counts for the whole cluster.
    pub fn is_shared(&self) -> bool {
        !matches!(self, Self::Local)
    }

    /// Admits a request of `key` reserving `reserve` micro-USD: a concurrency slot here, and
    /// the request of the minute and the reservation wherever limits are counted.
    pub async fn admit(
        &self,
        ledger: &Arc<KeyLedger>,
        key: &KeyRecord,
        reserve: i64,
    ) -> Result<Admission, AdmitError> {
        if let Self::Local = self {
            return ledger.admit(key, reserve).map_err(AdmitError::Refused);
        }
        let admission = ledger.take_slot(key).map_err(AdmitError::Refused)?;
        let budget = key.max_budget.is_some();
        if !budget && key.rpm_limit.is_none() && key.tpm_limit.is_none() {
            return Ok(admission);
        }
        if let Some(limit) = key.rpm_limit.filter(|limit| *limit <= 0) {
            return Err(AdmitError::Refused(Refusal::Rpm {
                limit,
                retry_after: retry_after(),
            }));
        }
        if let Some(limit) = key.tpm_limit.filter(|limit| *limit <= 0) {
            return Err(AdmitError::Refused(Refusal::Tpm {
                limit,
                retry_after: retry_after(),
            }));
        }
        let reserve = if budget { reserve.max(0) } else { 0 };
        let tpm = key.tpm_limit.is_some();
        let hold = match self {
            Self::Postgres(pg) => {
                pg.admit(key, reserve).await?;
                Hold::Postgres {
                    writer: pg.writer().clone(),
                    token_id: key.token_id.clone(),
                    tpm,
                }
            }
            Self::Redis(redis) => {
                redis.admit(key, reserve).await?;
                Hold::Redis {
                    limiter: redis.clone(),
                    token_id: key.token_id.clone(),
                    tpm,
                }
            }
            // Taken above.
            Self::Local => return Ok(admission),
        };
        if budget || tpm {
            Ok(admission.held(reserve, hold))
        } else {
            Ok(admission)
        }
    }

    /// A key's spend was set (an admin update or a budget reset) to `usd`.
    pub async fn spend_set(&self, token_id: &str, usd: f64) {
        if let Self::Redis(redis) = self {
            redis.spend_set(token_id, usd).await;
        }
    }

    /// A key is gone (deleted, regenerated, revoked): drop its shared counters.
    pub async fn forget(&self, token_id: &str) {
        if let Self::Redis(redis) = self {
            redis.forget(token_id).await;
        }
    }

    /// A key was regenerated: its row now has token id `new`. Requests of the old key still
    /// in flight will give back nothing (their reservations are dropped now) and their cost
    /// is not charged to the new key, as with the spend they settle.
    pub async fn renamed(&self, old: &str, new: &str) {
        match self {
            Self::Local => {}
            Self::Postgres(pg) => pg.renamed(old, new).await,
            Self::Redis(redis) => redis.forget(old).await,
        }
    }

    /// Periodic work, about once a second: tells the cluster this instance is alive and, when
    /// `leader`, charges the reservations of instances silent for `silent_ms` and prunes old
    /// windows.
    pub async fn tend(&self, leader: bool, silent_ms: i64) {
        match self {
            Self::Local => {}
            Self::Postgres(pg) => pg.tend(leader, silent_ms).await,
            Self::Redis(redis) => redis.tend(leader, silent_ms).await,
        }
    }

    /// Gives back what this instance still holds (after the spend writer has flushed) and
    /// leaves the cluster.
    pub async fn shutdown(&self) {
        match self {
            Self::Local => {}
            Self::Postgres(pg) => pg.leave().await,
            Self::Redis(redis) => redis.leave().await,
        }
    }
}

/// A fresh name for this process in the shared counters.
pub fn instance_id() -> Arc<str> {
    Arc::from(format!(
        "{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}
