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
