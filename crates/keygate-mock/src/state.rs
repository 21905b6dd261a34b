//! Shared state of a mock server: configuration, request counter, recorded requests and the
//! shutdown signal that also ends hanging responses.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::record::Record;
use crate::MockConfig;

/// Cheaply clonable handle on a mock server's state; give it to [`crate::router`].
#[derive(Clone, Debug)]
pub struct MockState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MockConfig,
    seq: AtomicU64,
    records: Mutex<Vec<Record>>,
    shutdown: watch::Sender<bool>,
    open_streams: AtomicU64,
}

/// Counts one streamed response while it is being sent; dropped when the stream ends or the
/// client goes away (which is how tests see that a disconnect reached the upstream).
#[derive(Debug)]
pub(crate) struct OpenStream(MockState);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.inner.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MockState {
    /// Fresh state with no records.
    pub fn new(config: MockConfig) -> Self {
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                config,
                seq: AtomicU64::new(0),
                records: Mutex::new(Vec::new()),
                shutdown,
                open_streams: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MockConfig {
        &self.inner.config
    }

    /// The requests received so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }

    /// Streamed responses being sent right now.
    pub fn open_streams(&self) -> u64 {
        self.inner.open_streams.load(Ordering::SeqCst)
    }

    /// Marks a streamed response as open until the returned guard drops.
    pub(crate) fn stream_opened(&self) -> OpenStream {
        self.inner.open_streams.fetch_add(1, Ordering::SeqCst);
        OpenStream(self.clone())
    }

    /// Forgets the recorded requests (the sequence numbers keep counting).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Signals shutdown: the server stops accepting and hanging responses end.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Whether [`MockState::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Resolves once [`MockState::shutdown`] is called.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            // An error means the sender is gone, i.e. the state itself: stop as well.
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    /// Sleeps for `duration`; returns false if shutdown cut the sleep short.
    pub(crate) async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.shutdown_signal() => false,
        }
    }

    /// The next request sequence number (the first is 1).
    pub(crate) fn next_seq(&self) -> u64 {
        self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Appends a record.
    pub(crate) fn push(&self, record: Record) {
        self.lock().push(record);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        self.inner
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> Record {
        Record {
            seq,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: None,
            credential: None,
            credential_header: None,
            stream: false,
            marker: None,
            api_version: None,
        }
    }

    #[test]
    fn records_in_order_and_clears() {
        let state = MockState::new(MockConfig::default());
        assert_eq!(state.next_seq(), 1);
        assert_eq!(state.next_seq(), 2);
        state.push(record(1));
        state.push(record(2));
        let seqs: Vec<u64> = state.records().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2]);
        state.clear();
        assert!(state.records().is_empty());
        assert_eq!(state.next_seq(), 3);
    }

    #[tokio::test]
    async fn shutdown_cuts_sleeps() {
        let state = MockState::new(MockConfig::default());
        assert!(state.sleep(Duration::from_millis(1)).await);
        let sleeper = state.clone();
        let task = tokio::spawn(async move { sleeper.sleep(Duration::from_secs(3600)).await });
        state.shutdown();
        assert!(state.is_shut_down());
        assert!(!task.await.unwrap());
    }
}
