//! The key lookup cache: token id -> key record (or "no such key"), so an inference request
//! authenticates without touching the database once warm. Updates, deletes and regenerations
//! invalidate the entry at once; entries also expire after a short TTL so a change made by
//! another instance is seen within it. A key in use is re-read in the background before its
//! entry expires, so a busy key never waits on the database.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;

use moka::sync::Cache;

use crate::store::{KeyRecord, Store, StoreError};

/// How long a looked-up key is trusted without asking the store again.
const TTL: Duration = Duration::from_secs(30);
/// Age after which a lookup refreshes the entry in the background (and is served at once).
const REFRESH_AFTER: Duration = Duration::from_secs(20);
/// How long "no such key" is remembered (short: a key may be created meanwhile).
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Most keys kept.
const CAPACITY: u64 = 100_000;

#[derive(Clone)]
enum Entry {
    Found(Arc<KeyRecord>, Instant),
    Missing(Instant),
}

/// Cached key lookups.
#[derive(Clone)]
pub struct KeyCache {
    entries: Cache<String, Entry, foldhash::fast::RandomState>,
    /// Bumped by every invalidation, so a lookup that raced with a change does not cache the
    /// record it read before the change.
    generation: Arc<AtomicU64>,
    /// Token ids being re-read in the background (one refresh per key at a time).
    refreshing: Arc<Mutex<HashSet<String>>>,
    tasks: TaskTracker,
    refresh_after: Duration,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::with_timings(TTL, REFRESH_AFTER)
    }
}

impl KeyCache {
    /// A cache whose entries expire after `ttl` and are refreshed in the background once older
    /// than `refresh_after`.
    pub fn with_timings(ttl: Duration, refresh_after: Duration) -> Self {
        Self {
            refresh_after,
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            generation: Arc::new(AtomicU64::new(0)),
            refreshing: Arc::new(Mutex::new(HashSet::new())),
            tasks: TaskTracker::new(),
        }
    }

    /// The key with `token_id`, from the cache or the store.
    pub async fn get(
        &self,
        store: &Store,
        token_id: &str,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        match self.entries.get(token_id) {
            Some(Entry::Found(key, loaded)) => {
                if loaded.elapsed() >= self.refresh_after {
                    self.refresh_in_background(store, token_id);
                }
                return Ok(Some(key));
            }
            Some(Entry::Missing(at)) if at.elapsed() < NEGATIVE_TTL => return Ok(None),
            _ => {}
        }
        self.load(store, token_id).await
    }

    /// Reads the store and caches the answer, unless the key changed meanwhile.
    async fn load(
        &self,
        store: &Store,
        token_id: &str,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let found = store.get_key(token_id).await?.map(Arc::new);
        let entry = match &found {
            Some(key) => Entry::Found(key.clone(), Instant::now()),
            None => Entry::Missing(Instant::now()),
        };
        if self.generation.load(Ordering::Acquire) == generation {
            self.entries.insert(token_id.to_owned(), entry);
        }
        Ok(found)
    }

    fn refresh_in_background(&self, store: &Store, token_id: &str) {
        let mut refreshing = match self.refreshing.lock() {
            Ok(set) => set,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !refreshing.insert(token_id.to_owned()) {
            return;
        }
        drop(refreshing);
        let (cache, store, token_id) = (self.clone(), store.clone(), token_id.to_owned());
        self.tasks.spawn(async move {
            if let Err(err) = cache.load(&store, &token_id).await {
                tracing::warn!(error = %err, "background key refresh failed; the cached entry expires as usual");
            }
            let mut refreshing = match cache.refreshing.lock() {
                Ok(set) => set,
                Err(poisoned) => poisoned.into_inner(),
            };
            refreshing.remove(&token_id);
        });
    }

    /// Waits for background refreshes to end (they are short reads).
    pub async fn shutdown(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Forgets `token_id`: the next lookup reads the store. Call after every change to a key.
    pub fn invalidate(&self, token_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(token_id);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_in_use_is_refreshed_in_the_background() {
        let dir = std::env::temp_dir().join(format!("kg-keycache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}/k.db", dir.display()))
            .await
            .unwrap();
        let mut key = crate::keys::test_record("t1");
        store.insert_key(&key).await.unwrap();
        let cache = KeyCache::with_timings(Duration::from_secs(60), Duration::from_millis(50));
        assert!(!cache.get(&store, "t1").await.unwrap().unwrap().blocked);
        key.blocked = true;
        store.update_key(&key).await.unwrap();
        // Fresh: served from the cache without asking the store.
        assert!(!cache.get(&store, "t1").await.unwrap().unwrap().blocked);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Old: still served at once, and re-read in the background.
        assert!(!cache.get(&store, "t1").await.unwrap().unwrap().blocked);
        cache.shutdown().await;
        assert!(cache.get(&store, "t1").await.unwrap().unwrap().blocked);
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
