//! The reaper: revokes leases as they expire (their keys already stop working at expiry; this
//! removes them), in batches, about once a second, off the request path.
//!
//! With several instances on one PostgreSQL database only the cluster's leader (see
//! [`Leadership`]) reaps, so each lease is reaped once; the same tick keeps the cluster-wide
//! limits tended (heartbeat; the leader charges silent instances' reservations).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::store::Leadership;

/// Leases revoked per statement batch.
const BATCH: i64 = 1_000;
/// Pause between sweeps.
const EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop` is cancelled.
pub async fn run(state: AppState, stop: CancellationToken) {
    let mut leadership = Leadership::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let leader = leadership.check(state.store()).await;
        let silent = state.live().config.limits.instance_timeout;
        let silent_ms = i64::try_from(silent.as_millis()).unwrap_or(i64::MAX);
        state.limiter().tend(leader, silent_ms).await;
        if !leader {
            continue;
        }
        loop {
            let now = crate::keys::spend::now_ms() / 1000;
            let expired = match state.store().expired_leases(now, BATCH).await {
                Ok(expired) => expired,
                Err(err) => {
                    tracing::warn!(error = %err, "lease reaper cannot read the store; retrying");
                    break;
                }
            };
            if expired.is_empty() {
                break;
            }
            let full = i64::try_from(expired.len()).unwrap_or(0) == BATCH;
            match super::lease::revoke_all(&state, &expired).await {
                Ok(revoked) => {
                    metrics::counter!("keygate_leases_reaped_total").increment(revoked as u64);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "lease reaper cannot revoke; retrying");
                    break;
                }
            }
            if !full || stop.is_cancelled() {
                break;
            }
        }
    }
}
