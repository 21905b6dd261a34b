//! `keygate serve`: load the config, open the store, bind, serve; SIGTERM/SIGINT drain and stop,
//! SIGHUP reloads the config (prepare, then swap; a bad file leaves the running state as is).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use keygate_core::config::{Config, Env, ProcessEnv};
use keygate_core::secrets::SourceContext;
use keygate_core::server;
use keygate_core::state::{build_http_client, AppState, LiveState};
use keygate_core::store::{redact_url, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::dev::{merge_models, random_hex, Dev};

/// Where config interpolation and credential references read variables.
type SharedEnv = Arc<dyn Env + Send + Sync>;

/// Loads the config file (or the default one) and applies the environment over it.
pub fn load_config(path: Option<&PathBuf>, env: &dyn Env) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path, env)?,
        None => Config::default(),
    };
    server::apply_env_overrides(&mut config, env);
    Ok(config)
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let dev = if args.dev {
        Some(
            Dev::start()
                .await
                .context("cannot start the dev mock provider")?,
        )
    } else {
        None
    };
    let env: SharedEnv = match &dev {
        Some(dev) => Arc::new(dev.env.clone()),
        None => Arc::new(ProcessEnv),
    };
    let mut config = load_config(args.config.as_ref(), env.as_ref())?;
    if let Some(listen) = &args.listen {
        config.listen = Some(listen.clone());
    }
    let dev_models = dev.as_ref().map(Dev::models).unwrap_or_default();
    merge_models(&mut config.models, &dev_models);
    if dev.is_some() && config.admin_key.is_none() {
        let key = format!("sk-keygate-admin-{}", random_hex(16));
        println!("keygate --dev admin key (shown once): {key}");
        config.admin_key = Some(key);
    }
    if config.admin_key.as_deref().unwrap_or("").is_empty() {
        tracing::warn!("no admin key configured (KEYGATE_ADMIN_KEY or admin_key): every inference request will be refused");
    }
    let listen = server::listen_addr(&config).to_owned();
    let database = server::database_url(&config).to_owned();
    let grace = config.shutdown_grace;
    let client = build_http_client().context("cannot build the HTTP client")?;
    let ctx = SourceContext {
        client: &client,
        env: env.clone(),
    };
    // The recorder first: building the models registers their metric series with it.
    let metrics = keygate_core::telemetry::install_recorder();
    let live = LiveState::build(config.clone(), &ctx)?;
    live.warm_secrets().await;
    let store = Store::connect(&database)
        .await
        .with_context(|| format!("cannot open the store at {}", redact_url(&database)))?;
    let state = AppState::new(live, client, store.clone(), metrics);
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let reloader = Reloader {
        state: state.clone(),
        path: args.config.clone(),
        env,
        dev_models,
    };
    // Handlers are in place before the "listening" line, so a supervisor that signals as soon as
    // it sees the line is never met by the default action (death without draining).
    let signals = Signals::install().context("cannot install signal handlers")?;
    let signals = tokio::spawn(signals.watch(reloader, shutdown.clone()));
    tracing::info!(addr = %local, store = store.kind(), models = config.models.len(), "keygate started");
    println!("keygate listening on http://{local}");
    if let Some(dev) = &dev {
        println!(
            "mock provider on {} (models: mock, mock-claude)",
            dev.mock.url()
        );
        println!(
            "try: curl -s http://{local}/v1/chat/completions -H \"Authorization: Bearer $ADMIN_KEY\" \
             -H 'Content-Type: application/json' -d '{{\"model\":\"mock\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'"
        );
    }
    let served =
        server::serve_workers(listener, state.clone(), shutdown.clone(), grace, workers()).await;
    shutdown.cancel();
    signals.abort();
    state.shutdown().await;
    store.close().await;
    if let Some(dev) = dev {
        dev.mock.shutdown().await;
    }
    tracing::info!("keygate stopped");
    Ok(served?)
}

/// Request-serving threads: `KEYGATE_WORKER_THREADS`, else one per CPU.
fn workers() -> usize {
    std::env::var("KEYGATE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The signals keygate acts on, installed up front.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// SIGTERM and SIGINT cancel `shutdown`; SIGHUP reloads the config file.
    async fn watch(mut self, reloader: Reloader, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
                _ = self.hup.recv() => reloader.reload().await,
                () = shutdown.cancelled() => return,
            }
        }
        tracing::info!("shutdown requested; draining in-flight requests");
        shutdown.cancel();
    }
}

/// What a SIGHUP reload needs besides the file.
struct Reloader {
    state: AppState,
    path: Option<PathBuf>,
    env: SharedEnv,
    dev_models: Vec<keygate_core::config::ModelConfig>,
}

impl Reloader {
    async fn reload(&self) {
        let Some(path) = &self.path else {
            tracing::info!("SIGHUP ignored: keygate was started without a config file");
            return;
        };
        let result = match load_config(Some(path), self.env.as_ref()) {
            Ok(mut config) => {
                merge_models(&mut config.models, &self.dev_models);
                if config.admin_key.is_none() && !self.dev_models.is_empty() {
                    // A --dev admin key lives outside the file; keep it.
                    config.admin_key = self.state.live().config.admin_key.clone();
                }
                server::reload(&self.state, config, self.env.clone())
                    .await
                    .map_err(anyhow::Error::from)
            }
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::error!(error = %format!("{err:#}"), "reload failed; the running configuration is kept");
        }
    }
}
