//! The secret cache: one slot per credential reference, so the request path never waits on a
//! secret manager once warm.
//!
//! - **TTL**: a value is fresh for its source's TTL (or the global one), never past the
//!   `expires_at` its source gave.
//! - **Single-flight**: while a slot is empty or expired, one caller fetches and the others wait
//!   for its answer; 1,000 concurrent first requests cause one fetch.
//! - **Refresh ahead**: past 80% of the TTL, the first reader starts a background refresh and
//!   is served the current value at once.
//! - **Stale-if-error**: when a refresh fails, the last good value keeps being served (counted
//!   in `keygate_secret_stale_served_total`) until `stale_if_error` after it expired; retries
//!   run in the background, at most one per second.
//! - **Negative cache**: "not found everywhere" is remembered for `negative_ttl`.
//!
//! The slot does no I/O itself: [`Slot::get`] is handed the fetch to run.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ResolveError;
use crate::config::CacheConfig;

/// Fraction of the TTL after which a read triggers a background refresh.
const REFRESH_AHEAD: f64 = 0.8;
/// Smallest pause between two background attempts while a source is failing.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// A value found by the chain.
#[derive(Clone)]
pub struct Resolved {
    /// The secret.
    pub value: Arc<SecretString>,
    /// The source that answered (its description).
    pub source: Arc<str>,
    /// Until when it is served without asking the source again.
    pub fresh_until: Instant,
    /// The TTL that applies to it.
    pub ttl: Duration,
    /// The source's own expiry, if it gave one.
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("value", &"*****")
            .field("source", &self.source)
            .field("fresh_until", &self.fresh_until)
            .finish()
    }
}

/// What a fetch produced.
pub type Fetched = Result<Resolved, ResolveError>;

#[derive(Clone)]
enum State {
    Empty,
    Good {
        resolved: Resolved,
        /// A background refresh is due from here on.
        refresh_at: Instant,
        /// Served (stale) until here when the source fails.
        stale_until: Instant,
    },
    Missing {
        until: Instant,
        error: Arc<ResolveError>,
    },
}

/// Timings and the owner of background refreshes, shared by every slot of one chain.
pub struct CachePolicy {
    config: CacheConfig,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl CachePolicy {
    /// A policy with `config`'s timings.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Stops background refreshes (those running are cancelled) and waits for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for CachePolicy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The cache entry for one credential reference.
pub struct Slot {
    state: RwLock<State>,
    fetching: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            state: RwLock::new(State::Empty),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        }
    }
}

impl Slot {
    /// The cached value, or the result of `fetch` (run by one caller at a time).
    pub async fn get<F, Fut>(self: &Arc<Self>, policy: &Arc<CachePolicy>, fetch: F) -> Fetched
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Fetched> + Send + 'static,
    {
        if let Some(answer) = self.cached(policy, &fetch) {
            return answer;
        }
        let _turn = self.fetching.lock().await;
        // Whoever held the lock before us may have fetched already.
        if let Some(answer) = self.cached(policy, &fetch) {
            return answer;
        }
        let fetched = fetch().await;
        self.store(policy, fetched, Instant::now())
    }

    /// The current state's answer, without I/O; `None` when a fetch is needed.
    fn cached<F, Fut>(self: &Arc<Self>, policy: &Arc<CachePolicy>, fetch: &F) -> Option<Fetched>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Fetched> + Send + 'static,
    {
        let now = Instant::now();
        let state = self.read();
        match state {
            State::Good {
                resolved,
                refresh_at,
                ..
            } if now < resolved.fresh_until => {
                if now >= refresh_at {
                    self.refresh_in_background(policy, fetch);
                }
                Some(Ok(resolved))
            }
            State::Missing { until, error } if now < until => Some(Err(error.as_ref().clone())),
            _ => None,
        }
    }

    fn read(&self) -> State {
        match self.state.read() {
            Ok(state) => state.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn write(&self, state: State) {
        match self.state.write() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    /// Records a fetch's outcome and says what the caller gets.
    fn store(&self, policy: &CachePolicy, fetched: Fetched, now: Instant) -> Fetched {
        let config = &policy.config;
        match fetched {
            Ok(mut resolved) => {
                let mut fresh_until = now + resolved.ttl;
                let mut hard_until = None;
                if let Some(expires_at) = resolved.expires_at {
                    let left = expires_at
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    fresh_until = fresh_until.min(now + left);
                    hard_until = Some(now + left);
                }
                let lifetime = fresh_until.saturating_duration_since(now);
                let refresh_at = now + lifetime.mul_f64(REFRESH_AHEAD);
                let mut stale_until = fresh_until + config.stale_if_error;
                if let Some(hard) = hard_until {
                    stale_until = stale_until.min(hard);
                }
                resolved.fresh_until = fresh_until;
                self.write(State::Good {
                    resolved: resolved.clone(),
                    refresh_at,
                    stale_until,
                });
                Ok(resolved)
            }
            Err(error @ ResolveError::NotFound { .. }) => {
                self.write(State::Missing {
                    until: now + config.negative_ttl,
                    error: Arc::new(error.clone()),
                });
                Err(error)
            }
            Err(error) => match self.read() {
                State::Good {
                    mut resolved,
                    stale_until,
                    ..
                } if now < stale_until => {
                    metrics::counter!("keygate_secret_stale_served_total", "source" => source_label(&resolved.source))
                        .increment(1);
                    tracing::warn!(source = %resolved.source, error = %error, "secret source failed; serving the last good value");
                    // Serve stale until the window ends; try again in the background meanwhile.
                    resolved.fresh_until = stale_until;
                    self.write(State::Good {
                        resolved: resolved.clone(),
                        refresh_at: now + RETRY_BACKOFF,
                        stale_until,
                    });
                    Ok(resolved)
                }
                _ => Err(error),
            },
        }
    }

    fn refresh_in_background<F, Fut>(self: &Arc<Self>, policy: &Arc<CachePolicy>, fetch: &F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Fetched> + Send + 'static,
    {
        if self.refreshing.swap(true, Ordering::AcqRel) || policy.cancel.is_cancelled() {
            return;
        }
        let slot = self.clone();
        let owner = policy.clone();
        let refresh = fetch();
        policy.tasks.spawn(async move {
            tokio::select! {
                () = owner.cancel.cancelled() => {}
                () = async {
                    let _turn = slot.fetching.lock().await;
                    let fetched = refresh.await;
                    let now = Instant::now();
                    match fetched {
                        Err(error @ ResolveError::Failed { .. }) => slot.keep_after_failure(&error, now),
                        other => {
                            let _ = slot.store(&owner, other, now);
                        }
                    }
                } => {}
            }
            slot.refreshing.store(false, Ordering::Release);
        });
    }

    /// A background refresh failed while the value is still fresh: keep it, retry later.
    fn keep_after_failure(&self, error: &ResolveError, now: Instant) {
        if let State::Good {
            resolved,
            stale_until,
            ..
        } = self.read()
        {
            tracing::warn!(source = %resolved.source, error = %error, "background secret refresh failed; keeping the cached value");
            let refresh_at = now + RETRY_BACKOFF;
            let fresh_until = if now >= resolved.fresh_until {
                stale_until
            } else {
                resolved.fresh_until
            };
            let resolved = Resolved {
                fresh_until,
                ..resolved
            };
            self.write(State::Good {
                resolved,
                refresh_at,
                stale_until,
            });
        }
    }

    /// Takes over `old`'s last good value as a stale fallback only: this slot still fetches on
    /// first use (a reload reads every source again), but if that fetch fails, `old`'s value
    /// is served until the end of its stale-if-error window, as `old` itself would have. So a
    /// reload during a source outage does not turn working models into 503s.
    pub fn inherit(&self, old: &Slot) {
        let State::Good {
            resolved,
            stale_until,
            ..
        } = old.read()
        else {
            return;
        };
        if !matches!(self.read(), State::Empty) {
            return;
        }
        let now = Instant::now();
        self.write(State::Good {
            resolved: Resolved {
                fresh_until: now,
                ..resolved
            },
            refresh_at: now,
            stale_until,
        });
    }

    /// What `keygate secrets check` shows: the cached answer, if any, without fetching.
    pub fn peek(&self) -> Option<Result<Resolved, ResolveError>> {
        match self.read() {
            State::Empty => None,
            State::Good { resolved, .. } => Some(Ok(resolved)),
            State::Missing { error, .. } => Some(Err(error.as_ref().clone())),
        }
    }
}

/// The metric label for a source description: its first word (`vault`, `env`, ...).
fn source_label(description: &str) -> String {
    description
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_owned()
}
