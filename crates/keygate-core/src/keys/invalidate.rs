//! Key changes seen by every instance on one PostgreSQL database: a change to a key (update,
//! delete, block, regenerate, lease revoked or expired) is announced with `NOTIFY` on channel
//! [`CHANNEL`], and each other instance `LISTEN`s and drops that key from its cache, so the very
//! next request re-reads the row. The payload is the token ids (hashes, never keys),
//! comma-separated, then `,@` and the sending instance's id: an instance has dropped its own
//! changes from its cache before announcing them, and skips its own announcements when they come
//! back (dropping the key again then would throw away a fresh read of it made meanwhile). A
//! payload without the `@` part is read as another instance's. While the listening
//! connection is down, changes may be missed: the whole cache is dropped when it comes back, and
//! the cache's own TTL bounds staleness meanwhile. With SQLite (one process) there is nothing to
//! announce.

use std::sync::Arc;
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
/// cache TTL bounds how long they may serve the old rows). `instance` is this instance's id.
pub async fn announce<S: AsRef<str>>(store: &Store, instance: &str, token_ids: &[S]) {
    let Store::Postgres(pool) = store else {
        return;
    };
    let origin = format!("@{instance}");
    for chunk in token_ids.chunks(IDS_PER_NOTIFY) {
        let mut payload: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
        payload.push(&origin);
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

/// Listens for changes announced by the other instances until `stop`; `None` for SQLite.
/// `instance` is this instance's id.
pub fn spawn_listener(
    store: &Store,
    cache: KeyCache,
    instance: Arc<str>,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let Store::Postgres(pool) = store else {
        return None;
    };
    let pool = pool.clone();
    Some(tokio::spawn(async move {
        tokio::select! {
            () = listen(pool, &cache, &instance) => {}
            () = stop.cancelled() => {}
        }
    }))
}

/// The token ids a notification names, or none when `instance` (this one) sent it.
fn changed_by_others<'a>(payload: &'a str, instance: &str) -> impl Iterator<Item = &'a str> {
    let (ids, origin) = match payload.rsplit_once(",@") {
        Some((ids, origin)) => (ids, Some(origin)),
        None => (payload, None),
    };
    let ours = origin == Some(instance);
    ids.split(',').filter(move |id| !ours && !id.is_empty())
}

async fn listen(pool: PgPool, cache: &KeyCache, instance: &str) {
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
                    for token_id in changed_by_others(notification.payload(), instance) {
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

#[cfg(test)]
mod tests {
    use super::changed_by_others;

    fn ids<'a>(payload: &'a str, instance: &str) -> Vec<&'a str> {
        changed_by_others(payload, instance).collect()
    }

    #[test]
    fn an_instance_skips_its_own_announcements() {
        assert_eq!(ids("aa,bb,@1-f0", "2-0e"), ["aa", "bb"]);
        assert_eq!(ids("aa,@2-0e", "2-0e"), Vec::<&str>::new());
        // From a sender that names no instance: another instance's.
        assert_eq!(ids("aa,bb", "2-0e"), ["aa", "bb"]);
        assert_eq!(ids("aa", "2-0e"), ["aa"]);
        assert_eq!(ids("", "2-0e"), Vec::<&str>::new());
    }
}
