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
    /// Virtual keys, managed through a running keygate's LiteLLM key API.
    Key(Box<KeyArgs>),
    /// Roles of the secrets engine (Vault API): write, read, list, delete.
    Role(RoleArgs),
    /// Issue a key with a lease under a role.
    Creds(CredsArgs),
    /// Leases: renew, revoke, lookup, revoke-prefix.
    Lease(LeaseArgs),
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

/// `keygate key ...`: talks HTTP to a running keygate with the admin key from
/// `KEYGATE_ADMIN_KEY`, prints the JSON answer; exits 1 when keygate refuses.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Where keygate listens.
    #[arg(long, env = "KEYGATE_ADDR", default_value = "http://127.0.0.1:4000")]
    pub addr: String,
    /// What to do.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// The key subcommands (LiteLLM's `/key/*` routes).
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; its plaintext is printed this once.
    Generate(KeyGenerateArgs),
    /// List keys (token ids, or full rows with --full).
    List(KeyListArgs),
    /// Show one key, spend included.
    Info {
        /// The key, or its token id (hash).
        key: String,
    },
    /// Change a key's settings.
    Update {
        /// The key, or its token id (hash).
        key: String,
        /// The settings to change.
        #[command(flatten)]
        settings: KeySettings,
    },
    /// Delete keys by key or token id, or by alias.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["keys", "aliases"])))]
    Delete {
        /// Keys or token ids.
        keys: Vec<String>,
        /// Delete the keys with this alias instead (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Give a key a new plaintext; the old one stops working at once.
    Regenerate {
        /// The key, or its token id (hash).
        key: String,
    },
}

/// `keygate key generate`.
#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// Use this key (must start with `sk-`) instead of a random one.
    #[arg(long)]
    pub key: Option<String>,
    /// The key's settings.
    #[command(flatten)]
    pub settings: KeySettings,
}

/// The settable fields of a key.
#[derive(Debug, Args)]
pub struct KeySettings {
    /// Models the key may call, comma-separated (none: all).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// A unique name for the key.
    #[arg(long)]
    pub alias: Option<String>,
    /// Validity from now: a number and s, m, h, d, w or mo (`-1` on update: never expires).
    #[arg(long, allow_hyphen_values = true)]
    pub duration: Option<String>,
    /// Spending cap, USD.
    #[arg(long)]
    pub max_budget: Option<f64>,
    /// Spending level that logs a warning, USD.
    #[arg(long)]
    pub soft_budget: Option<f64>,
    /// Period after which spend resets (same units as --duration).
    #[arg(long)]
    pub budget_duration: Option<String>,
    /// Requests per minute.
    #[arg(long)]
    pub rpm: Option<i64>,
    /// Tokens per minute.
    #[arg(long)]
    pub tpm: Option<i64>,
    /// Concurrent requests.
    #[arg(long)]
    pub max_parallel: Option<i64>,
    /// A JSON object stored with the key.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Owning team.
    #[arg(long)]
    pub team_id: Option<String>,
    /// Owning user.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Block (true) or unblock (false) the key.
    #[arg(long)]
    pub blocked: Option<bool>,
}

/// `keygate key list`.
#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// Page, from 1.
    #[arg(long)]
    pub page: Option<u32>,
    /// Keys per page, up to 100.
    #[arg(long)]
    pub size: Option<u32>,
    /// Only the key with this alias.
    #[arg(long)]
    pub alias: Option<String>,
    /// Only keys of this user.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Only keys of this team.
    #[arg(long)]
    pub team_id: Option<String>,
    /// Full rows instead of token ids.
    #[arg(long)]
    pub full: bool,
}

/// Where the engine is: keygate's address and the engine's mount.
#[derive(Debug, Args)]
pub struct EngineAddr {
    /// Where keygate listens.
    #[arg(long, env = "KEYGATE_ADDR", default_value = "http://127.0.0.1:4000")]
    pub addr: String,
    /// The engine's mount (`engine.mount` in the config).
    #[arg(long, env = "KEYGATE_MOUNT", default_value = "keygate")]
    pub mount: String,
}

/// `keygate role ...`.
#[derive(Debug, Args)]
pub struct RoleArgs {
    #[command(flatten)]
    pub engine: EngineAddr,
    /// What to do.
    #[command(subcommand)]
    pub command: RoleCommand,
}

/// The role subcommands.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or change a role: `keygate role write dev models=gpt-4o-mini ttl=1h max_budget=5`.
    Write {
        /// The role's name.
        name: String,
        /// `key=value` fields (sent as strings, as `bao write` does).
        fields: Vec<String>,
    },
    /// Show a role.
    Read {
        /// The role's name.
        name: String,
    },
    /// List roles.
    List,
    /// Delete a role.
    Delete {
        /// The role's name.
        name: String,
    },
}

/// `keygate creds ROLE`.
#[derive(Debug, Args)]
pub struct CredsArgs {
    #[command(flatten)]
    pub engine: EngineAddr,
    /// The role to issue a key under.
    pub role: String,
}

/// `keygate lease ...`.
#[derive(Debug, Args)]
pub struct LeaseArgs {
    #[command(flatten)]
    pub engine: EngineAddr,
    /// What to do.
    #[command(subcommand)]
    pub command: LeaseCommand,
}

/// The lease subcommands.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Extend a lease (never past its max TTL).
    Renew {
        /// The lease id (`keygate/creds/ROLE/ID`).
        lease_id: String,
        /// Seconds or a duration such as 1h; the role's TTL when absent.
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a lease: its key stops working at once.
    Revoke {
        /// The lease id.
        lease_id: String,
    },
    /// Show a lease's times.
    Lookup {
        /// The lease id.
        lease_id: String,
    },
    /// Revoke every lease under a prefix (e.g. `keygate/creds/dev`).
    RevokePrefix {
        /// The prefix.
        prefix: String,
    },
}
