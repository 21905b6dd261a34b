//! Cluster-wide limits in the shared PostgreSQL store: a request of the minute and a budget
//! reservation are each one statement (see `store::cluster`); the spend writer gives the
//! reservation back in its next batch, after the request's spend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{now_minute, retry_after, AdmitError};
use crate::keys::limits::{Refusal, MICROS};
use crate::keys::spend::{now_ms, SpendWriter};
use crate::store::{KeyRecord, Store, StoreError};

/// Longest the checks of one request may take before it is refused.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Limits counted in PostgreSQL.
#[derive(Debug)]
pub struct PgLimiter {
    store: Store,
    instance: Arc<str>,
    writer: SpendWriter,
    /// Whether this instance's row exists (a reservation must never exist without it, or no
    /// reaper would find it after a crash).
    joined: AtomicBool,
}

fn unavailable(err: &StoreError) -> AdmitError {
    tracing::warn!(error = %err, "cannot reach the database to check a key's limits");
    AdmitError::Unavailable("the database does not answer".into())
}

impl PgLimiter {
    /// Limits of `instance` in `store`, given back through `writer`.
    pub fn new(store: Store, instance: Arc<str>, writer: SpendWriter) -> Self {
        Self {
            store,
            instance,
            writer,
            joined: AtomicBool::new(false),
        }
    }

    /// The writer that gives reservations back.
    pub fn writer(&self) -> &SpendWriter {
        &self.writer
    }

    /// Counts the request in the key's minute (if it has rpm/tpm limits), then reserves
    /// `reserve` micro-USD of its budget (if it has one); unavailable after [`TIMEOUT`].
    pub(super) async fn admit(&self, key: &KeyRecord, reserve: i64) -> Result<(), AdmitError> {
        match tokio::time::timeout(TIMEOUT, self.admit_now(key, reserve)).await {
            Ok(admitted) => admitted,
            Err(_) => {
                tracing::warn!("the database took too long to check a key's limits");
                Err(AdmitError::Unavailable(
                    "the database does not answer".into(),
                ))
            }
        }
    }

    async fn admit_now(&self, key: &KeyRecord, reserve: i64) -> Result<(), AdmitError> {
        let store = &self.store;
        if key.rpm_limit.is_some() || key.tpm_limit.is_some() {
            let minute = now_minute();
            let taken = store
                .take_request(&key.token_id, minute, key.rpm_limit, key.tpm_limit)
                .await
                .map_err(|err| unavailable(&err))?;
            if !taken {
                let window = store
                    .window(&key.token_id, minute)
                    .await
                    .map_err(|err| unavailable(&err))?;
                let retry_after = retry_after();
                return Err(AdmitError::Refused(match key.tpm_limit {
                    Some(limit) if window.tokens >= limit => Refusal::Tpm { limit, retry_after },
                    _ => Refusal::Rpm {
                        limit: key.rpm_limit.unwrap_or(0),
                        retry_after,
                    },
                }));
            }
        }
        let Some(max_budget) = key.max_budget else {
            return Ok(());
        };
        if !self.joined.load(Ordering::Acquire) {
            store
                .heartbeat(&self.instance, now_ms())
                .await
                .map_err(|err| unavailable(&err))?;
            self.joined.store(true, Ordering::Release);
        }
        let reserved = store
            .reserve_budget(&self.instance, &key.token_id, reserve)
            .await
            .map_err(|err| unavailable(&err))?;
        if reserved {
            return Ok(());
        }
        match store.budget(&key.token_id).await {
            Ok(Some(budget)) => Err(AdmitError::Refused(Refusal::Budget {
                spend: (budget.spend_micros + budget.reserved_micros as f64) / MICROS,
                max_budget,
            })),
            Ok(None) => Err(AdmitError::Gone),
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// Heartbeat; as leader, charges silent instances' reservations and prunes old windows.
    pub(super) async fn tend(&self, leader: bool, silent_ms: i64) {
        let store = &self.store;
        let now = now_ms();
        match store.heartbeat(&self.instance, now).await {
            Ok(true) => {}
            Ok(false) => {
                self.joined.store(true, Ordering::Release);
                tracing::info!(instance = %self.instance, "joined the cluster");
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot record this instance's heartbeat");
                return;
            }
        }
        if !leader {
            return;
        }
        let silent = match store.silent_instances(now - silent_ms).await {
            Ok(silent) => silent,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list the cluster's instances");
                return;
            }
        };
        for instance in silent {
            match store.reap_instance(&instance).await {
                Ok((keys, micros)) => {
                    metrics::counter!("keygate_instances_reaped_total").increment(1);
                    tracing::warn!(%instance, keys, charged_usd = micros as f64 / MICROS, "instance went silent; its reservations were charged to their keys");
                }
                Err(err) => {
                    tracing::warn!(error = %err, %instance, "cannot reap a silent instance")
                }
            }
        }
        if let Err(err) = store.prune_windows(now_minute() - 2).await {
            tracing::warn!(error = %err, "cannot prune rate windows");
        }
    }

    /// Drops the reservations held on `old`, a key regenerated into `new` (same row).
    pub(super) async fn renamed(&self, old: &str, new: &str) {
        if let Err(err) = self.store.drop_reservations(old, new).await {
            tracing::warn!(error = %err, "cannot drop the old key's reservations");
        }
    }

    /// Leaves the cluster: whatever is still reserved (requests cut by the shutdown) is
    /// charged, as for a crash.
    pub(super) async fn leave(&self) {
        if let Err(err) = self.store.reap_instance(&self.instance).await {
            tracing::warn!(error = %err, "cannot leave the cluster cleanly; the leader will reap this instance");
        }
    }
}
