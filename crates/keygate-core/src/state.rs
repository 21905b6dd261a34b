//! Shared state. [`LiveState`] is everything a config load produces (models, admin key,
//! limits); it sits behind an `ArcSwap` so a reload swaps it whole while requests in flight keep
//! the snapshot they started with. [`AppState`] adds what lives as long as the process.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::capture::{self, FileSink};
use crate::config::{CaptureConfig, Config, Limits, ModelCapture, ModelConfig};
use crate::keys::cache::KeyCache;
use crate::keys::limiter::{self, Limiter};
use crate::keys::limits::Ledgers;
use crate::keys::spend::SpendWriter;
use crate::plugins::Plugins;
use crate::providers::{ModelRoute, RouteError, Routing, RoutingError};
use crate::secrets::{self, SecretSource, Secrets, SourceBuildError, SourceContext};
use crate::store::Store;

/// Mount names that would shadow inference or system routes.
const RESERVED_MOUNTS: &[&str] = &[
    "chat",
    "completions",
    "embeddings",
    "models",
    "messages",
    "sys",
    "health",
    "metrics",
    "key",
    "auth",
    "identity",
    "cubbyhole",
];

/// Why a config cannot become the live state.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A model entry is invalid.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The model groups cannot be formed (unknown fallback, ...).
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// `engine.mount` collides with another route.
    #[error(
        "engine.mount `{0}` is reserved (it collides with keygate's own routes); choose another"
    )]
    ReservedMount(String),
    /// The engine's audit log cannot be opened.
    #[error("engine.audit_log `{path}`: {source}")]
    Audit {
        /// The configured path.
        path: String,
        /// Why it cannot be opened.
        source: std::io::Error,
    },
    /// A secret source is misconfigured.
    #[error(transparent)]
    Source(#[from] SourceBuildError),
    /// The capture directory cannot be used.
    #[error("capture.path `{path}`: {source}")]
    Capture {
        /// The configured path.
        path: String,
        /// Why it cannot be used.
        source: std::io::Error,
    },
    /// A sampling rate is outside 0.0 to 1.0.
    #[error("{0}: sample must be between 0.0 and 1.0")]
    BadSample(String),
    /// `engine.mount` is not a plain path segment.
    #[error("engine.mount `{0}` must be letters, digits, `-` or `_`")]
    BadMount(String),
    /// `limits.instance_timeout` would take live instances for dead.
    #[error("limits.instance_timeout must be at least 3s (instances beat once a second)")]
    InstanceTimeout,
    /// `redis_url` is not a Redis URL.
    #[error("redis_url: {0}")]
    RedisUrl(String),
}

/// What one config load produces; swapped whole on reload.
#[derive(Debug)]
pub struct LiveState {
    /// Every entry of `models:` in config order (several per name when a model has several
    /// deployments).
    pub model_list: Vec<Arc<ModelRoute>>,
    /// Model groups: deployments, weights, health and fallbacks; what requests are routed by.
    pub routing: Routing,
    /// Request limits.
    pub limits: Limits,
    /// The config this state was built from.
    pub config: Arc<Config>,
    /// Upstream credentials: the source chain and its cache.
    pub secrets: Arc<Secrets>,
    /// The engine's audit log, when configured.
    pub audit: Option<Arc<crate::engine::audit::Audit>>,
    /// Where captured upstream exchanges go, when `capture:` is configured.
    pub capture: Option<Arc<FileSink>>,
    admin_key_hash: Option<[u8; 32]>,
}

impl LiveState {
    /// Builds the state from `config` (the prepare step of a reload: may fail, touches nothing).
    pub fn build(config: Config, ctx: &SourceContext<'_>) -> Result<Self, BuildError> {
        Self::build_with(config, ctx, crate::plugins::global())
    }

    /// Like [`LiveState::build`], with the backends and secret sources of `plugins` (instead of
    /// the process's registry).
    pub fn build_with(
        config: Config,
        ctx: &SourceContext<'_>,
        plugins: &Plugins,
    ) -> Result<Self, BuildError> {
        let mount = &config.engine.mount;
        if mount.is_empty()
            || !mount
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BuildError::BadMount(mount.clone()));
        }
        if RESERVED_MOUNTS.contains(&mount.as_str()) {
            return Err(BuildError::ReservedMount(mount.clone()));
        }
        if config.limits.instance_timeout < std::time::Duration::from_secs(3) {
            return Err(BuildError::InstanceTimeout);
        }
        if let Some(url) = &config.redis_url {
            // The error names what is wrong, never the URL (it may hold a password).
            redis::Client::open(url.as_str()).map_err(|err| {
                BuildError::RedisUrl(format!("not a valid Redis URL ({:?})", err.kind()))
            })?;
        }
        let audit = match &config.engine.audit_log {
            Some(path) => Some(Arc::new(crate::engine::audit::Audit::open(path).map_err(
                |source| BuildError::Audit {
                    path: path.display().to_string(),
                    source,
                },
            )?)),
            None => None,
        };
        let mut chain: Vec<Arc<dyn SecretSource>> = plugins.secret_sources().to_vec();
        if let Some(dir) = &config.plugin_dir {
            chain.extend(crate::plugins::load_manifests(dir, ctx).0);
        }
        chain.extend(secrets::build_chain(&config.secrets.sources, ctx)?);
        let secrets = Secrets::new(chain, ctx.env.clone(), &config.secrets.cache);
        let capture = match &config.capture {
            Some(capture) => {
                Some(
                    capture::sink_for(capture).map_err(|source| BuildError::Capture {
                        path: capture.path.display().to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let client = keygate_plugin_api::CaptureClient::new(
            capture
                .clone()
                .map(|sink| sink as Arc<dyn keygate_plugin_api::CaptureSink>),
        );
        let mut model_list = Vec::new();
        for model in &config.models {
            let sample = capture_sample(config.capture.as_ref(), model)?;
            let backend = plugins.build_backend(model, &client)?;
            let route = Arc::new(ModelRoute::build(model, &secrets, backend, sample)?);
            model_list.push(route);
        }
        let routing = Routing::build(&config.models, &model_list, &config.router)?;
        if let Some(sink) = &capture {
            sink.know(&secrets, config.admin_key.as_deref());
        }
        plugins.run_post_build_hooks(&config.models);
        let admin_key_hash = config
            .admin_key
            .as_deref()
            .filter(|key| !key.is_empty())
            .map(crate::keys::token::digest);
        Ok(Self {
            model_list,
            routing,
            limits: config.limits.clone(),
            config: Arc::new(config),
            secrets,
            audit,
            capture,
            admin_key_hash,
        })
    }

    /// Resolves every model's keys once, concurrently, so the first requests find them cached;
    /// logs each key that does not resolve. Never fails: such a model answers 503 until fixed.
    pub async fn warm_secrets(&self) {
        let lookups = self.model_list.iter().flat_map(|route| {
            route.keys().iter().map(move |key| async move {
                if let Err(err) = key.handle.get().await {
                    tracing::warn!(model = %route.name, error = %err, "upstream key does not resolve");
                }
            })
        });
        futures_util::future::join_all(lookups).await;
    }

    /// SHA-256 of the admin key, if one is configured.
    pub fn admin_key_hash(&self) -> Option<&[u8; 32]> {
        self.admin_key_hash.as_ref()
    }
}

/// The share of `model`'s requests to capture: 0 when capture is off or the model opts out.
fn capture_sample(capture: Option<&CaptureConfig>, model: &ModelConfig) -> Result<f64, BuildError> {
    let Some(capture) = capture else {
        return Ok(0.0);
    };
    if !(0.0..=1.0).contains(&capture.sample) {
        return Err(BuildError::BadSample("capture".into()));
    }
    match model.capture {
        Some(ModelCapture { enabled: false, .. }) => Ok(0.0),
        Some(ModelCapture {
            sample: Some(sample),
            ..
        }) => {
            if (0.0..=1.0).contains(&sample) {
                Ok(sample)
            } else {
                Err(BuildError::BadSample(format!(
                    "models.{}.capture",
                    model.name
                )))
            }
        }
        _ => Ok(capture.sample),
    }
}

/// Process-wide state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    live: ArcSwap<LiveState>,
    client: reqwest::Client,
    store: Store,
    keys: KeyCache,
    /// This process's id among the instances on one database.
    instance: Arc<str>,
    ledgers: Ledgers,
    limiter: Limiter,
    spend: SpendWriter,
    metrics: Option<PrometheusHandle>,
    started: Instant,
    /// Stops the background tasks (lease reaper, key-change listener).
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        live: LiveState,
        client: reqwest::Client,
        store: Store,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let config = live.config.clone();
        let instance = limiter::instance_id();
        let in_postgres =
            Limiter::counts_in_postgres(config.limits.scope, &store, config.redis_url.as_deref());
        // Spend, reservations and rate windows are written without waiting for the database's
        // WAL flush: only a crash of the database server itself could lose its last commits
        // of them (keys and leases are always written durably).
        let relaxed = store.relaxed();
        let spend = SpendWriter::start(relaxed.clone(), in_postgres.then(|| instance.clone()));
        let limiter = Limiter::new(
            config.limits.scope,
            &relaxed,
            config.redis_url.as_deref(),
            instance.clone(),
            spend.clone(),
        )
        .unwrap_or_else(|err| {
            // LiveState::build checked the URL; this cannot happen.
            tracing::error!(error = ?err.kind(), "redis_url refused; limits are counted per instance");
            Limiter::Local
        });
        tracing::info!(limits = limiter.kind(), "virtual key limits counted");
        let state = Self {
            inner: Arc::new(Inner {
                live: ArcSwap::from_pointee(live),
                client,
                store,
                keys: KeyCache::default(),
                instance,
                ledgers: Ledgers::default(),
                limiter,
                spend,
                metrics,
                started: Instant::now(),
                stop: CancellationToken::new(),
                tasks: std::sync::Mutex::new(Vec::new()),
            }),
        };
        let stop = &state.inner.stop;
        let mut tasks = vec![tokio::spawn(crate::engine::reaper::run(
            state.clone(),
            stop.clone(),
        ))];
        tasks.extend(crate::keys::invalidate::spawn_listener(
            &state.inner.store,
            state.inner.keys.clone(),
            state.inner.instance.clone(),
            stop.clone(),
        ));
        if let Some(handle) = &state.inner.metrics {
            tasks.push(tokio::spawn(crate::telemetry::upkeep(
                handle.clone(),
                stop.clone(),
            )));
        }
        if let Ok(mut slot) = state.inner.tasks.lock() {
            *slot = tasks;
        }
        state
    }

    /// A snapshot of the live state; hold it for the whole request.
    pub fn live(&self) -> Arc<LiveState> {
        self.inner.live.load_full()
    }

    /// Swaps in a new live state (the commit step of a reload: cannot fail).
    pub fn swap(&self, live: LiveState) {
        self.inner.live.store(Arc::new(live));
    }

    /// The shared upstream HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// The key store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Cached virtual-key lookups; after a change to keys, call [`AppState::keys_changed`].
    pub fn keys(&self) -> &KeyCache {
        &self.inner.keys
    }

    /// This process's id among the instances on one database.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Drops `token_ids` from this instance's cache and announces the change to the other
    /// instances on the same PostgreSQL database (see [`crate::keys::invalidate`]).
    pub async fn keys_changed<S: AsRef<str>>(&self, token_ids: &[S]) {
        for token_id in token_ids {
            self.inner.keys.invalidate(token_id.as_ref());
        }
        crate::keys::invalidate::announce(&self.inner.store, &self.inner.instance, token_ids).await;
    }

    /// In-memory budget, rate and concurrency counters of virtual keys.
    pub fn ledgers(&self) -> &Ledgers {
        &self.inner.ledgers
    }

    /// Where budgets and rpm/tpm limits are counted (this process, PostgreSQL or Redis).
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// Where settled requests are queued for the store.
    pub fn spend_writer(&self) -> &SpendWriter {
        &self.inner.spend
    }

    /// Flushes what is queued for the store and stops background work. Call once, after the
    /// server has stopped.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let tasks = self
            .inner
            .tasks
            .lock()
            .map(|mut tasks| std::mem::take(&mut *tasks))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.inner.keys.shutdown().await;
        // Redis settles and reaps through the spend writer; PostgreSQL gives reservations back
        // through it: each needs the other still running.
        let redis = matches!(self.inner.limiter, Limiter::Redis(_));
        if redis {
            self.inner.limiter.shutdown().await;
        }
        self.inner.spend.shutdown().await;
        if !redis {
            self.inner.limiter.shutdown().await;
        }
        let live = self.live();
        live.secrets.shutdown().await;
        if let Some(capture) = &live.capture {
            capture.flush(std::time::Duration::from_secs(5));
        }
    }

    /// The Prometheus renderer, when metrics are on.
    pub fn metrics(&self) -> Option<&PrometheusHandle> {
        self.inner.metrics.as_ref()
    }

    /// When the process started serving.
    pub fn started(&self) -> Instant {
        self.inner.started
    }
}

/// The upstream HTTP client every provider shares.
pub fn build_http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
        .build()
}
