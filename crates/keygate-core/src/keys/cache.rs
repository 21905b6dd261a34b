//! The key lookup cache: token id -> key record (or "no such key"), so an inference request
//! authenticates without touching the database once warm. Updates, deletes and regenerations
//! invalidate the entry at once; entries also expire after a short TTL so a change made by
//! another instance is seen within it. A key in use is re-read in the background before its
//! entry expires, so a busy key never waits on the database.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Keys being read from the store, so that a read a change to the same key overtook is not
    /// cached (it may hold the key as it was before the change). Changes to other keys do not
    /// concern it.
    reads: Arc<Mutex<HashMap<String, Reads>>>,
    /// Token ids being re-read in the background (one refresh per key at a time).
    refreshing: Arc<Mutex<HashSet<String>>>,
    tasks: TaskTracker,
    refresh_after: Duration,
}

/// The reads of one key in flight.
struct Reads {
    in_flight: usize,
    /// Changes to the key since the first of them began.
    changes: u64,
}

/// A read of one key from the store, begun by [`KeyCache::begin_read`].
struct Read<'a> {
    cache: &'a KeyCache,
    token_id: &'a str,
    /// The changes to the key seen when the read began.
    changes: u64,
    ended: bool,
}

impl Read<'_> {
    /// Ends the read with its answer (`None`: nothing to cache).
    fn end(mut self, entry: Option<Entry>) {
        self.ended = true;
        self.cache.end_read(self.token_id, self.changes, entry);
    }
}

impl Drop for Read<'_> {
    /// A read dropped half-way (its request was cancelled) ends with nothing to cache.
    fn drop(&mut self) {
        if !self.ended {
            self.cache.end_read(self.token_id, self.changes, None);
        }
    }
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
            reads: Arc::new(Mutex::new(HashMap::new())),
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
        let read = self.begin_read(token_id);
        let found = store.get_key(token_id).await.map(|key| key.map(Arc::new));
        read.end(match &found {
            Ok(Some(key)) => Some(Entry::Found(key.clone(), Instant::now())),
            Ok(None) => Some(Entry::Missing(Instant::now())),
            Err(_) => None,
        });
        found
    }

    fn begin_read<'a>(&'a self, token_id: &'a str) -> Read<'a> {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        let key_reads = reads.entry(token_id.to_owned()).or_insert(Reads {
            in_flight: 0,
            changes: 0,
        });
        key_reads.in_flight += 1;
        Read {
            cache: self,
            token_id,
            changes: key_reads.changes,
            ended: false,
        }
    }

    /// Caches `entry` unless the key changed since the read began (when `changes` were seen).
    /// The check and the insert hold the lock that [`KeyCache::invalidate`] counts changes
    /// under, so no change can fall between them.
    fn end_read(&self, token_id: &str, changes: u64, entry: Option<Entry>) {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(key_reads) = reads.get_mut(token_id) else {
            return;
        };
        if let Some(entry) = entry.filter(|_| key_reads.changes == changes) {
            self.entries.insert(token_id.to_owned(), entry);
        }
        key_reads.in_flight -= 1;
        if key_reads.in_flight == 0 {
            reads.remove(token_id);
        }
    }

    fn refresh_in_background(&self, store: &Store, token_id: &str) {
        let mut refreshing = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !refreshing.insert(token_id.to_owned()) {
            return;
        }
        drop(refreshing);
        let (cache, store, token_id) = (self.clone(), store.clone(), token_id.to_owned());
        self.tasks.spawn(async move {
            if let Err(err) = cache.load(&store, &token_id).await {
                tracing::warn!(error = %err, "background key refresh failed; the cached entry expires as usual");
            }
            cache
                .refreshing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&token_id);
        });
    }

    /// Waits for background refreshes to end (they are short reads).
    pub async fn shutdown(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Whether the cache has an entry for `token_id`: the key's record, or that there is no such
    /// key (a lookup reads the store again once that is more than two seconds old).
    pub fn holds(&self, token_id: &str) -> bool {
        self.entries.contains_key(token_id)
    }

    /// Forgets `token_id`: the next lookup reads the store. Call after every change to a key.
    pub fn invalidate(&self, token_id: &str) {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key_reads) = reads.get_mut(token_id) {
            key_reads.changes += 1;
        }
        drop(reads);
        self.entries.invalidate(token_id);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        for key_reads in reads.values_mut() {
            key_reads.changes += 1;
        }
        drop(reads);
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

    fn found(token_id: &str, blocked: bool) -> Option<Entry> {
        let mut key = crate::keys::test_record(token_id);
        key.blocked = blocked;
        Some(Entry::Found(Arc::new(key), Instant::now()))
    }

    fn cached_blocked(cache: &KeyCache, token_id: &str) -> Option<bool> {
        match cache.entries.get(token_id)? {
            Entry::Found(key, _) => Some(key.blocked),
            Entry::Missing(_) => None,
        }
    }

    #[test]
    fn a_read_is_cached_unless_its_own_key_changed_meanwhile() {
        type Change = fn(&KeyCache);
        let changes: [(&str, Change, Option<bool>); 3] = [
            (
                "another key changed",
                |cache| cache.invalidate("b"),
                Some(false),
            ),
            ("its key changed", |cache| cache.invalidate("a"), None),
            ("everything dropped", KeyCache::clear, None),
        ];
        for (what, change, cached) in changes {
            let cache = KeyCache::default();
            let read = cache.begin_read("a");
            change(&cache);
            read.end(found("a", false));
            assert_eq!(cached_blocked(&cache, "a"), cached, "{what}");
            assert!(cache.reads.lock().unwrap().is_empty(), "{what}");
        }
    }

    #[test]
    fn a_read_begun_after_a_change_is_cached_though_one_begun_before_is_not() {
        let cache = KeyCache::default();
        let before = cache.begin_read("a");
        cache.invalidate("a");
        let after = cache.begin_read("a");
        before.end(found("a", false));
        assert_eq!(cached_blocked(&cache, "a"), None);
        after.end(found("a", true));
        assert_eq!(cached_blocked(&cache, "a"), Some(true));
        assert!(cache.reads.lock().unwrap().is_empty());
    }

    #[test]
    fn a_read_dropped_half_way_ends() {
        let cache = KeyCache::default();
        let kept = cache.begin_read("a");
        drop(cache.begin_read("a"));
        assert_eq!(cache.reads.lock().unwrap()["a"].in_flight, 1);
        kept.end(found("a", false));
        assert_eq!(cached_blocked(&cache, "a"), Some(false));
        assert!(cache.reads.lock().unwrap().is_empty());
    }
}
