//! The spend writer: settled requests are queued in memory and written in batches (spend added
//! to each key, one spend-log row per request) off the request path, at least every
//! [`FLUSH_EVERY`]; shutdown flushes what is queued. A crash loses at most that much spend
//! bookkeeping, never a key.
//!
//! With cluster-wide limits on PostgreSQL, the writer also gives back the budget reservations
//! of settled requests and adds their tokens to the per-minute windows, in the same batch and
//! after their spend (so the cluster never sees a reservation gone before its cost). A batch the
//! database refuses is kept and retried with the next one: spend and reservations are never
//! dropped (spend-log rows are, beyond [`MAX_CARRIED_ROWS`], and counted).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{Releases, SpendEntry, Store};

/// Longest a settled request waits before its spend is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// With cluster-wide limits on PostgreSQL: how long a batch gathers before it is written.
const RELEASE_GATHER: Duration = Duration::from_millis(2);
/// Most requests written in one transaction.
const BATCH: usize = 1_000;
/// Most requests queued; beyond it entries are dropped and counted (memory stays bounded).
const QUEUE: usize = 100_000;
/// Most spend-log rows kept while the database refuses writes.
pub const MAX_CARRIED_ROWS: usize = 10 * BATCH;

/// What the writer is told.
#[derive(Debug)]
enum Settled {
    /// A settled request: its spend and its spend-log row.
    Entry(SpendEntry),
    /// A cluster-wide reservation given back, and tokens for the per-minute window.
    Release {
        token_id: String,
        micros: i64,
        window: Option<(i64, i64)>,
    },
}

/// Queues settled requests for the store.
///
/// Every metered request holds a clone until it settles, on whichever worker thread serves
/// it: one shared count to change. Cloning the parts themselves would change the channel's
/// sender count and the cancellation token's (under a mutex the workers share) as well.
#[derive(Clone)]
pub struct SpendWriter(Arc<Parts>);

struct Parts {
    tx: mpsc::Sender<Settled>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SpendWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpendWriter")
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SpendWriter {
    /// Starts the writer task on `store` (needs a Tokio runtime). `instance` names this
    /// instance's reservations when limits are cluster-wide on PostgreSQL.
    pub fn start(store: Store, instance: Option<Arc<str>>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(store, instance, rx, stop.clone()));
        Self(Arc::new(Parts {
            tx,
            stop,
            task: Mutex::new(Some(task)),
        }))
    }

    /// Queues one settled request (never waits).
    pub fn record(&self, entry: SpendEntry) {
        if self.0.tx.try_send(Settled::Entry(entry)).is_err() {
            metrics::counter!("keygate_spend_dropped_total").increment(1);
            tracing::error!("spend queue full or closed; a spend log entry was dropped");
        }
    }

    /// Gives back `micros` of a key's cluster-wide reservation and counts `window` (minute,
    /// tokens) in its per-minute window. Queued behind the request's spend entry.
    pub fn release(&self, token_id: String, micros: i64, window: Option<(i64, i64)>) {
        let release = Settled::Release {
            token_id,
            micros,
            window,
        };
        if self.0.tx.try_send(release).is_err() {
            // The reservation stays held until this instance is reaped: the cluster errs on
            // the side of refusing.
            metrics::counter!("keygate_spend_dropped_total").increment(1);
            tracing::error!("spend queue full or closed; a reservation stays held");
        }
    }

    /// Writes everything queued so far and stops the writer.
    pub async fn shutdown(&self) {
        self.0.stop.cancel();
        let task = self.0.task.lock().await.take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(
    store: Store,
    instance: Option<Arc<str>>,
    mut rx: mpsc::Receiver<Settled>,
    stop: CancellationToken,
) {
    let mut received = Vec::with_capacity(BATCH);
    let mut pending = Pending::default();
    loop {
        tokio::select! {
            count = rx.recv_many(&mut received, BATCH) => {
                if count == 0 {
                    break;
                }
                // Let a burst gather into one transaction; a full batch (a backlog) is written
                // at once, or under sustained load the writer would fall behind by design
                // (BATCH per FLUSH_EVERY) until the queue overflows. With cluster-wide limits
                // on PostgreSQL, reservations are given back at once (the cluster refuses
                // while they are held): only a moment is left for a request's release to
                // follow its spend entry; what arrives during a write forms the next batch.
                if received.len() < BATCH {
                    let gather = if instance.is_some() { RELEASE_GATHER } else { FLUSH_EVERY };
                    tokio::select! {
                        () = tokio::time::sleep(gather) => {}
                        () = stop.cancelled() => {}
                    }
                    while received.len() < BATCH {
                        match rx.try_recv() {
                            Ok(settled) => received.push(settled),
                            Err(_) => break,
                        }
                    }
                }
                pending.add(received.drain(..));
                pending.write(&store, instance.as_deref()).await;
            }
            () = stop.cancelled() => break,
        }
    }
    // Shutdown: what is still queued.
    rx.close();
    while let Some(settled) = rx.recv().await {
        pending.add(std::iter::once(settled));
        if pending.entries.len() >= BATCH {
            pending.write(&store, instance.as_deref()).await;
        }
    }
    pending.write(&store, instance.as_deref()).await;
}

/// What is waiting to be written: kept across a failed write.
#[derive(Default)]
struct Pending {
    deltas: HashMap<String, f64>,
    entries: Vec<SpendEntry>,
    releases: HashMap<String, i64>,
    windows: HashMap<(String, i64), i64>,
}

impl Pending {
    fn add(&mut self, settled: impl Iterator<Item = Settled>) {
        for settled in settled {
            match settled {
                Settled::Entry(entry) => {
                    // A key's id is copied once per batch, not once per request.
                    match self.deltas.get_mut(&entry.token_id) {
                        Some(delta) => *delta += entry.cost,
                        None => {
                            self.deltas.insert(entry.token_id.clone(), entry.cost);
                        }
                    }
                    self.entries.push(entry);
                }
                Settled::Release {
                    token_id,
                    micros,
                    window,
                } => {
                    if let Some((minute, tokens)) = window.filter(|(_, tokens)| *tokens > 0) {
                        *self.windows.entry((token_id.clone(), minute)).or_default() += tokens;
                    }
                    *self.releases.entry(token_id).or_default() += micros;
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.deltas.is_empty() && self.releases.is_empty() && self.windows.is_empty()
    }

    /// Writes everything pending (spend first, then reservations); on failure keeps it for
    /// the next batch.
    async fn write(&mut self, store: &Store, instance: Option<&str>) {
        if self.is_empty() {
            return;
        }
        for attempt in 0..3 {
            match self.try_write(store, instance).await {
                Ok(()) => {
                    *self = Self::default();
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, attempt, entries = self.entries.len(), "cannot write spend; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        if self.entries.len() > MAX_CARRIED_ROWS {
            let dropped = self.entries.len() - MAX_CARRIED_ROWS;
            self.entries.drain(..dropped);
            metrics::counter!("keygate_spend_dropped_total").increment(dropped as u64);
            tracing::error!(
                dropped,
                "spend log rows could not be written; dropped (the spend itself is kept)"
            );
        }
        tracing::error!(
            keys = self.deltas.len(),
            "spend could not be written; kept for the next batch"
        );
    }

    async fn try_write(
        &mut self,
        store: &Store,
        instance: Option<&str>,
    ) -> Result<(), crate::store::StoreError> {
        // Sorted: concurrent writers (other instances) lock key rows in the same order.
        let mut deltas: Vec<(String, f64)> =
            self.deltas.iter().map(|(k, v)| (k.clone(), *v)).collect();
        deltas.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut releases: Vec<(String, i64)> = self
            .releases
            .iter()
            .filter(|(_, micros)| **micros != 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        releases.sort_unstable();
        let mut windows: Vec<(String, i64, i64)> = self
            .windows
            .iter()
            .map(|((token_id, minute), tokens)| (token_id.clone(), *minute, *tokens))
            .collect();
        windows.sort_unstable();
        let cluster = instance.map(|instance| Releases {
            instance,
            releases: &releases,
            windows: &windows,
        });
        store
            .record_spend_and_release(&deltas, &self.entries, now_ms(), cluster)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backlog_is_written_without_waiting_a_flush_interval_per_batch() {
        let dir = std::env::temp_dir().join(format!("kg-spend-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}/k.db", dir.display()))
            .await
            .unwrap();
        let writer = SpendWriter::start(store.clone(), None);
        let entries = 8 * BATCH;
        for i in 0..entries {
            writer.record(SpendEntry {
                token_id: "t".into(),
                model: "m".into(),
                prompt_tokens: 1,
                completion_tokens: 1,
                cost: 0.0,
                status: 200,
                latency_ms: 1.0,
                created_at: i as i64,
            });
        }
        // One flush interval to gather the burst, then every full batch at once: well under the
        // eight intervals a wait per batch would take.
        let deadline = std::time::Instant::now() + FLUSH_EVERY * 5;
        let mut written = 0;
        while std::time::Instant::now() < deadline {
            written = store.spend_log("t", entries as i64).await.unwrap().len();
            if written == entries {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(written, entries);
        writer.shutdown().await;
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
