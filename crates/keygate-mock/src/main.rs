//! The `keygate-mock` binary: runs the mock upstream until SIGTERM or ctrl-c.
//!
//! On start it prints exactly one line, `keygate-mock listening on http://HOST:PORT`, so callers
//! can use `--listen 127.0.0.1:0` and read the port back.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use keygate_mock::{MockConfig, MockServer};

/// Mock OpenAI + Anthropic upstream for keygate's tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "keygate-mock", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Content pieces per reply.
    #[arg(long, default_value_t = 5)]
    chunks: usize,
    /// Pause between streamed pieces, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Answer 401 to any other credential.
    #[arg(long)]
    require_key: Option<String>,
    /// Do not record requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = MockConfig {
        chunks: args.chunks,
        chunk_delay_ms: args.chunk_delay_ms,
        require_key: args.require_key,
        record: !args.no_record,
    };
    let server = match MockServer::start(&args.listen, config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("keygate-mock: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let printed = writeln!(stdout, "keygate-mock listening on {}", server.url())
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(err) = printed {
        eprintln!("keygate-mock: cannot write to stdout: {err}");
    }
    stop_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on ctrl-c or (on Unix) SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
