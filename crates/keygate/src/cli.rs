//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// keygate: an LLM gateway whose core is the life of API keys.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Upstream credentials.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

/// `keygate secrets ...`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// For every model, which source supplies its key, whether it resolves, and until when it
    /// would be cached. Offline: reads the config and asks the sources, starts no server.
    Check(SecretsCheckArgs),
}

/// `keygate secrets check`.
#[derive(Debug, Args)]
pub struct SecretsCheckArgs {
    /// YAML config file.
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `keygate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// YAML config file (default: none, an embedded SQLite store and no models).
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:4000); overrides KEYGATE_LISTEN and the config.
    #[arg(long)]
    pub listen: Option<String>,
    /// Also start a built-in mock provider with a model `mock`, and print an admin key.
    #[arg(long)]
    pub dev: bool,
}
