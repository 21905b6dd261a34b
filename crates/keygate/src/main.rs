//! The `keygate` command: parse the command line, set up logging, run the subcommand.

#![forbid(unsafe_code)]

mod cli;
mod dev;
mod engine_cli;
mod key_cli;
mod secrets_check;
mod serve;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // KEYGATE_WORKER_THREADS: request-serving threads (default: one per CPU).
    if let Some(threads) = std::env::var("KEYGATE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("keygate: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(args) => serve::run(args).await.map(|()| true),
            cli::Command::Secrets(cli::SecretsCommand::Check(args)) => {
                secrets_check::run(args).await
            }
            cli::Command::Key(args) => key_cli::run(*args).await,
            cli::Command::Role(args) => engine_cli::role(args).await,
            cli::Command::Creds(args) => engine_cli::creds(args).await,
            cli::Command::Lease(args) => engine_cli::lease(args).await,
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Logs go to stderr; `KEYGATE_LOG` (or `RUST_LOG`) sets the filter, `KEYGATE_LOG_FORMAT=json`
/// switches to JSON lines.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("KEYGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("KEYGATE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
