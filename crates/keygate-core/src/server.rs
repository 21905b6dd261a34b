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

/// Applies `KEYGATE_ADMIN_KEY`, `KEYGATE_DATABASE_URL`, `KEYGATE_REDIS_URL` and `KEYGATE_LISTEN`
/// over the file.
pub fn apply_env_overrides(config: &mut Config, env: &dyn Env) {
    if let Some(key) = env.var("KEYGATE_ADMIN_KEY").filter(|v| !v.is_empty()) {
        config.admin_key = Some(key);
    }
    if let Some(url) = env.var("KEYGATE_DATABASE_URL").filter(|v| !v.is_empty()) {
        config.database = Some(url);
    }
    if let Some(url) = env.var("KEYGATE_REDIS_URL").filter(|v| !v.is_empty()) {
        config.redis_url = Some(url);
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
    live.secrets.inherit(&old.secrets);
    live.warm_secrets().await;
    let models = live.routing.groups().len();
    state.swap(live);
    tracing::info!(models, "configuration reloaded");
    Ok(())
}

/// Serves until `shutdown` is cancelled, then stops accepting and waits up to `grace` for
/// in-flight requests to finish.
///
/// With `workers` > 1, each worker is a thread with its own single-threaded runtime, like
/// nginx's worker processes, and this task accepts connections and hands them out in turn: a
/// connection, the upstream call made for it (each thread has its own upstream connection pool)
/// and the relaying of its stream stay on one thread, so a streamed response does not hop
/// between threads once per upstream event. Worker runtimes live until the process exits (the
/// database connections they opened stay usable from elsewhere).
pub async fn serve_workers(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
    workers: usize,
) -> io::Result<()> {
    if workers <= 1 {
        return serve(listener, state, shutdown, grace).await;
    }
    let addr = listener.local_addr()?;
    let mut handoff = Vec::with_capacity(workers);
    let mut results = Vec::with_capacity(workers);
    for index in 0..workers {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let (state, shutdown) = (state.clone(), shutdown.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("keygate-worker-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = done.send(Err(err));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let served = tokio::select! {
                        served = serve(Handed { rx, addr }, state, shutdown, grace) => served,
                        never = tick() => match never {},
                    };
                    let _ = done.send(served);
                    std::future::pending::<()>().await;
                });
            })?;
        handoff.push(tx);
        results.push(result);
    }
    let mut turn = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(stream) = stream.into_std() else { continue };
                    let worker = &handoff[turn % workers];
                    turn = turn.wrapping_add(1);
                    if worker.send(stream).await.is_err() {
                        break;
                    }
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
    // New connections are refused from now on, while the workers drain theirs.
    drop(listener);
    drop(handoff);
    let mut outcome = Ok(());
    for result in results {
        let served = result
            .await
            .unwrap_or_else(|_| Err(io::Error::other("a worker thread stopped")));
        if outcome.is_ok() {
            outcome = served;
        }
    }
    outcome
}

/// Keeps a timer due within a second on a worker, at the cost of one wake-up a second.
///
/// Tokio's time driver wakes its thread (a write to an eventfd, then one more pass through
/// `epoll_wait`) whenever a timer is set to fire before the earliest one it knows of. With no
/// timer pending, every request's upstream timeout is the earliest: two system calls per request
/// for nothing. With this one pending, a timeout seconds away never is.
async fn tick() -> std::convert::Infallible {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The connections the acceptor hands to one worker.
struct Handed {
    rx: tokio::sync::mpsc::Receiver<std::net::TcpStream>,
    addr: std::net::SocketAddr,
}

impl axum::serve::Listener for Handed {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(stream) = self.rx.recv().await else {
                // The acceptor stopped: shutdown is under way and ends this server.
                return std::future::pending().await;
            };
            let Ok(peer) = stream.peer_addr() else {
                continue;
            };
            match tokio::net::TcpStream::from_std(stream) {
                Ok(io) => return (io, peer),
                Err(err) => tracing::debug!(error = %err, "cannot take over a connection"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Serves connections from `listener` on the current runtime until `shutdown` is cancelled,
/// then stops accepting and waits up to `grace` for in-flight requests to finish.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()>
where
    L: axum::serve::Listener<Io = tokio::net::TcpStream>,
    L::Addr: std::fmt::Debug,
{
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
