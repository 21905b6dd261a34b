//! keygate as a program and as a library: [`Gateway::builder`] runs the `keygate` command line
//! (serve, secrets check, key, role, creds, lease) with extra backend plugins and secret sources,
//! so an application can ship its own keygate:
//!
//! ```no_run
//! # fn my_backend() -> keygate::plugin_api::BackendPluginDefinition { unimplemented!() }
//! fn main() -> std::process::ExitCode {
//!     keygate::Gateway::builder().plugin(my_backend()).run()
//! }
//! ```
//!
//! Plugins in crates linked into the build register themselves
//! (`keygate_plugin_api::register_backend!`); the builder adds more.

#![forbid(unsafe_code)]

mod cli;
mod dev;
mod engine_cli;
mod key_cli;
mod secrets_check;
mod serve;

use std::sync::Arc;

use clap::Parser;
use keygate_core::plugins::Plugins;
use keygate_plugin_api::{BackendPluginDefinition, SecretSource};

/// The plugin API, as this keygate was built with it.
pub use keygate_plugin_api as plugin_api;

/// keygate, ready to run with the plugins linked into the build and those added here.
#[derive(Default)]
pub struct Gateway {
    plugins: Vec<BackendPluginDefinition>,
    sources: Vec<Arc<dyn SecretSource>>,
}

impl Gateway {
    /// A gateway with only the plugins linked into the build.
    pub fn builder() -> Self {
        Self::default()
    }

    /// Adds a backend plugin (checked like any other: fail-open).
    pub fn plugin(mut self, definition: BackendPluginDefinition) -> Self {
        self.plugins.push(definition);
        self
    }

    /// Adds a secret source at the front of the credential chain (after those added before).
    pub fn secret_source(mut self, source: Arc<dyn SecretSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Parses the command line and runs it; returns the process's exit code.
    pub fn run(self) -> std::process::ExitCode {
        let cli = cli::Cli::parse();
        init_tracing();
        if keygate_core::plugins::install(Plugins::discover(self.plugins, self.sources)).is_err() {
            tracing::warn!(
                "a plugin registry was already installed; the builder's plugins are ignored"
            );
        }
        run_cli(cli)
    }
}

fn run_cli(cli: cli::Cli) -> std::process::ExitCode {
    // Requests are served on their own worker threads (`serve::workers`); this runtime runs the
    // command, start-up and background work (spend writer, lease reaper, signals).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1);
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
