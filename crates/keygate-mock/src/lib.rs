//! keygate-mock: a fast mock upstream speaking the OpenAI API, Azure OpenAI's deployment URLs and
//! the Anthropic Messages API, for keygate's tests and load benchmark.
//!
//! Every API request is recorded (unless [`MockConfig::record`] is off) with the credential it
//! carried, so tests can prove which upstream key the gateway sent, and with a `marker` taken from
//! the body so each upstream call can be tied to the client request that caused it.
//!
//! Behaviour is steered per request by directives after a colon in the model name, e.g.
//! `gpt-4o:error=429`, `mock:chunks=50,delay_ms=10`, `mock:timeout`, `mock:cut_after=2`
//! (the full list is in the crate's `directives` module).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use keygate_mock::{MockConfig, MockServer};
//! let mock = MockServer::start("127.0.0.1:0", MockConfig::default()).await?;
//! println!("chat at {}/v1/chat/completions", mock.url());
//! let seen = mock.records();
//! # drop(seen);
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod anthropic;
mod directives;
mod embeddings;
mod errors;
mod openai;
mod record;
mod reply;
mod server;
mod sse;
mod state;

pub use record::Record;
pub use server::router;
pub use state::MockState;

/// How long [`MockServer::shutdown`] waits for open connections before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of a mock server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockConfig {
    /// Content pieces per reply (streamed as one chunk each), unless a `chunks=N` directive says
    /// otherwise. Default 5.
    pub chunks: usize,
    /// Pause between streamed pieces, unless a `delay_ms=N` directive says otherwise. Default 0.
    pub chunk_delay_ms: u64,
    /// When set, any other credential is answered with 401.
    pub require_key: Option<String>,
    /// Whether to record the requests received. Default true.
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            chunks: 5,
            chunk_delay_ms: 0,
            require_key: None,
            record: true,
        }
    }
}

/// A mock server running on the current tokio runtime.
///
/// Dropping the handle leaves the server running until the runtime stops; call
/// [`MockServer::shutdown`] to stop it.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: MockState,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Binds `addr` (e.g. `"127.0.0.1:0"`), spawns the server on the current tokio runtime and
    /// returns at once.
    pub async fn start(addr: &str, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = MockState::new(config);
        let app = router(state.clone());
        let signal = state.shutdown_signal();
        let listener = listener.tap_io(|tcp| {
            // Best effort: latency matters more than packet count for a benchmark target.
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(%err, "keygate-mock server failed");
            }
        });
        Ok(MockServer { addr, state, task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (records, configuration).
    pub fn state(&self) -> &MockState {
        &self.state
    }

    /// The requests received so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.state.records()
    }

    /// Streamed responses being sent right now (0 once every stream ended or was abandoned).
    pub fn open_streams(&self) -> u64 {
        self.state.open_streams()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.state.clear();
    }

    /// Stops accepting, ends hanging responses (`timeout`, `stall_after`) and waits up to a few
    /// seconds for open connections to finish.
    pub async fn shutdown(self) {
        self.state.shutdown();
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
