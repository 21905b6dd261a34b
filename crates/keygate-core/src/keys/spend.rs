//! The spend writer: settled requests are queued in memory and written in batches (spend added
//! to each key, one spend-log row per request) off the request path, at least every
//! [`FLUSH_EVERY`]; shutdown flushes what is queued. A crash loses at most that much spend
//! bookkeeping, never a key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{SpendEntry, Store};

/// Longest a settled request waits before its spend is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Most requests written in one transaction.
const BATCH: usize = 1_000;
/// Most requests queued; beyond it entries are dropped and counted (memory stays bounded).
const QUEUE: usize = 100_000;

/// Queues settled requests for the store.
#[derive(Clone)]
pub struct SpendWriter {
    tx: mpsc::Sender<SpendEntry>,
    stop: CancellationToken,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
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
    /// Starts the writer task on `store` (needs a Tokio runtime).
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(store, rx, stop.clone()));
        Self {
            tx,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues one settled request (never waits).
    pub fn record(&self, entry: SpendEntry) {
        if self.tx.try_send(entry).is_err() {
            metrics::counter!("keygate_spend_dropped_total").increment(1);
            tracing::error!("spend queue full or closed; a spend log entry was dropped");
        }
    }

    /// Writes everything queued so far and stops the writer.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().await.take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<SpendEntry>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
                // Let a burst gather into one transaction; a full batch (a backlog) is written
                // at once, or under sustained load the writer would fall behind by design
                // (BATCH per FLUSH_EVERY) until the queue overflows.
                if batch.len() < BATCH {
                    tokio::select! {
                        () = tokio::time::sleep(FLUSH_EVERY) => {}
                        () = stop.cancelled() => {}
                    }
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(entry) => batch.push(entry),
                            Err(_) => break,
                        }
                    }
                }
                write(&store, &batch).await;
                batch.clear();
            }
            () = stop.cancelled() => break,
        }
    }
    // Shutdown: what is still queued.
    rx.close();
    while let Some(entry) = rx.recv().await {
        batch.push(entry);
        if batch.len() == BATCH {
            write(&store, &batch).await;
            batch.clear();
        }
    }
    write(&store, &batch).await;
}

async fn write(store: &Store, batch: &[SpendEntry]) {
    if batch.is_empty() {
        return;
    }
    let mut deltas: HashMap<&str, f64> = HashMap::new();
    for e in batch {
        *deltas.entry(e.token_id.as_str()).or_default() += e.cost;
    }
    let deltas: Vec<(String, f64)> = deltas.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for attempt in 0..3 {
        match store.record_spend(&deltas, batch, now_ms()).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, attempt, entries = batch.len(), "cannot write spend; retrying");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    metrics::counter!("keygate_spend_dropped_total").increment(batch.len() as u64);
    tracing::error!(entries = batch.len(), "spend could not be written; dropped");
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
        let writer = SpendWriter::start(store.clone());
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
