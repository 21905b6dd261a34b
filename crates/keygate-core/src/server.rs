//! Serving: settings resolved from flags, environment and config; the listener; graceful
//! shutdown that lets in-flight requests (streams included) finish within a grace period; and
//! the two-step reload (prepare, then swap) used on SIGHUP.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Env, DEFAULT_DATABASE, DEFAULT_LISTEN};
use crate::http;
use crate::secrets::SourceContext;
use crate::state::{AppState, BuildError, LiveState};

/// Applies `KEYGATE_ADMIN_KEY`, `KEYGATE_DATABASE_URL` and `KEYGATE_LISTEN` over the file.
pub fn apply_env_overrides(config: &mut Config, env: &dyn Env) {
    if let Some(key) = env.var("KEYGATE_ADMIN_KEY").filter(|v| !v.is_empty()) {
        config.admin_key = Some(key);
    }
    if let Some(url) = env.var("KEYGATE_DATABASE_URL").filter(|v| !v.is_empty()) {
        config.database = Some(url);
    }
    if let Some(listen) = env.var("KEYGATE_LISTEN").filter(|v| !v.is_empty()) {
        config.listen = Some(listen);
    }
}

/// The listen address after overrides.
pub fn listen_addr(config: &Config) -> &str {
    config.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
}

/// The database URL after overrides.
pub fn database_url(config: &Config) -> &str {
    config.database.as_deref().unwrap_or(DEFAULT_DATABASE)
}

/// Builds a new live state from `config` and swaps it in. On error the old state stays.
pub async fn reload(
    state: &AppState,
    config: Config,
    env: Arc<dyn Env + Send + Sync>,
) -> Result<(), BuildError> {
    let old = state.live();
    if listen_addr(&config) != listen_addr(&old.config)
        || database_url(&config) != database_url(&old.config)
    {
        tracing::warn!("listen and database changes take effect only after a restart");
    }
    let ctx = SourceContext {
        client: state.client(),
        env,
    };
    let live = LiveState::build(config, &ctx)?;
    live.warm_secrets().await;
    let models = live.model_list.len();
    state.swap(live);
    tracing::info!(models, "configuration reloaded");
    Ok(())
}

/// Serves until `shutdown` is cancelled, then stops accepting and waits up to `grace` for
/// in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let app = http::router(state);
    let signal = shutdown.clone();
    // Without TCP_NODELAY small writes (SSE chunks, short responses) wait on Nagle's algorithm
    // and the peer's delayed ACK: ~40 ms per stream event.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let server =
        axum::serve(listener, app).with_graceful_shutdown(async move { signal.cancelled().await });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "shutdown grace period over; closing remaining connections");
            Ok(())
        }
    }
}
