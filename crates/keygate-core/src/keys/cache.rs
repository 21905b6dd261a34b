//! The key lookup cache: token id -> key record (or "no such key"), so an inference request
//! authenticates without touching the database once warm. Updates, deletes and regenerations
//! invalidate the entry at once; entries also expire after a short TTL so a change made by
//! another instance is seen within it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::store::{KeyRecord, Store, StoreError};

/// How long a looked-up key is trusted without asking the store again.
const TTL: Duration = Duration::from_secs(30);
/// How long "no such key" is remembered (short: a key may be created meanwhile).
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Most keys kept.
const CAPACITY: u64 = 100_000;

#[derive(Clone)]
enum Entry {
    Found(Arc<KeyRecord>),
    Missing(std::time::Instant),
}

/// Cached key lookups.
#[derive(Clone)]
pub struct KeyCache {
    entries: Cache<String, Entry>,
    /// Bumped by every invalidation, so a lookup that raced with a change does not cache the
    /// record it read before the change.
    generation: Arc<AtomicU64>,
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
        Self {
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl KeyCache {
    /// The key with `token_id`, from the cache or the store.
    pub async fn get(
        &self,
        store: &Store,
        token_id: &str,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        match self.entries.get(token_id) {
            Some(Entry::Found(key)) => return Ok(Some(key)),
            Some(Entry::Missing(at)) if at.elapsed() < NEGATIVE_TTL => return Ok(None),
            _ => {}
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = store.get_key(token_id).await?.map(Arc::new);
        let entry = match &found {
            Some(key) => Entry::Found(key.clone()),
            None => Entry::Missing(std::time::Instant::now()),
        };
        if self.generation.load(Ordering::Acquire) == generation {
            self.entries.insert(token_id.to_owned(), entry);
        }
        Ok(found)
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
