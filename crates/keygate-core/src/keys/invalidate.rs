//! Key changes seen by every instance on one PostgreSQL database: a change to a key (update,
//! delete, block, regenerate, lease revoked or expired) is announced with `NOTIFY` on channel
//! [`CHANNEL`] (payload: token ids, hashes, never keys, comma-separated), and each instance `LISTEN`s and
//! drops that key from its cache, so the very next request re-reads the row. While the listening
//! connection is down, changes may be missed: the whole cache is dropped when it comes back, and
//! the cache's own TTL bounds staleness meanwhile. With SQLite (one process) there is nothing to
//! announce.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cache::KeyCache;
use crate::store::Store;

/// The NOTIFY channel.
pub const CHANNEL: &str = "keygate_key_changed";
/// Wait before listening again after the connection was lost.
const RETRY: Duration = Duration::from_millis(500);

/// Token ids per notification (64 hex characters each; PostgreSQL caps a payload at 8000 bytes).
const IDS_PER_NOTIFY: usize = 100;

/// Tells the other instances that `token_ids` changed (best effort: a failure is logged and the
/// cache TTL bounds how long they may serve the old rows).
pub async fn announce<S: AsRef<str>>(store: &Store, token_ids: &[S]) {
    let Store::Postgres(pool) = store else {
        return;
    };
    for chunk in token_ids.chunks(IDS_PER_NOTIFY) {
        let payload: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload.join(","))
            .execute(pool)
            .await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, "cannot announce a key change to other instances");
        }
    }
}

/// Listens for changes announced by any instance (this one included) until `stop`; `None` for
/// SQLite.
pub fn spawn_listener(
    store: &Store,
    cache: KeyCache,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let Store::Postgres(pool) = store else {
        return None;
    };
    let pool = pool.clone();
    Some(tokio::spawn(async move {
        tokio::select! {
            () = listen(pool, &cache) => {}
            () = stop.cancelled() => {}
        }
    }))
}

async fn listen(pool: PgPool, cache: &KeyCache) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for key changes; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %err, "cannot listen for key changes; retrying");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Whatever changed while nobody listened is unknown: start from an empty cache.
        cache.clear();
        tracing::debug!("listening for key changes; cached keys dropped");
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    for token_id in notification.payload().split(',') {
                        cache.invalidate(token_id);
                    }
                }
                // The connection was lost: notifications from now on are missed, so the cache
                // is emptied once listening again (above), not now. Emptying it now would make
                // every cached key ask a store that is likely down too: an outage of the
                // database would stop inference with keys that were working. Meanwhile the
                // cache's TTL bounds how long a change made elsewhere goes unseen.
                Ok(None) => {
                    tracing::warn!("key-change listener lost its connection; reconnecting");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "key-change listener failed; reconnecting");
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
    }
}
