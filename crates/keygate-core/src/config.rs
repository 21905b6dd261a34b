//! The YAML configuration: types, loading, interpolation and validation of its shape.
//!
//! Loading is strict: unknown fields are rejected and every error names the path of the bad
//! field (`models[1].byok: unknown variant ...`). Semantic checks that need more than one field
//! (unknown provider, unknown fallback) happen when the live state is built from it.

pub mod duration;
pub mod interpolate;
mod model;
mod router;
mod secrets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use interpolate::{Env, ProcessEnv};
pub use model::{Byok, CredentialSpec, ModelCapture, ModelConfig, Price};
pub use router::{RouterConfig, MAX_RETRY_WAIT};
pub use secrets::{
    AwsSourceConfig, AzureSourceConfig, CacheConfig, DotenvSourceConfig, EnvSourceConfig,
    ExecSourceConfig, SecretsConfig, SourceConfig, VaultAuth, VaultSourceConfig,
};

/// Default listen address when neither config, flag nor `KEYGATE_LISTEN` gives one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
/// Default database: the embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://keygate.db";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:4000`. Overridden by `--listen` / `KEYGATE_LISTEN`.
    #[serde(default)]
    pub listen: Option<String>,
    /// The admin key: full access to inference and to the key-management APIs.
    /// Overridden by `KEYGATE_ADMIN_KEY`. Empty means "no admin key".
    #[serde(default)]
    pub admin_key: Option<String>,
    /// `sqlite://PATH` (the default, `sqlite://keygate.db`) or `postgres://...`.
    /// Overridden by `KEYGATE_DATABASE_URL`.
    #[serde(default)]
    pub database: Option<String>,
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]`: keep virtual keys' budgets and per-minute limits
    /// in Redis (one script per check), shared by every instance. Overridden by
    /// `KEYGATE_REDIS_URL`. Without it, instances on PostgreSQL share them in the database.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Limits on what clients may send, and where virtual keys' limits are counted.
    #[serde(default)]
    pub limits: Limits,
    /// How long a shutdown waits for in-flight requests (streams included) before closing them.
    #[serde(
        default = "default_shutdown_grace",
        deserialize_with = "duration::deserialize"
    )]
    pub shutdown_grace: Duration,
    /// Where upstream provider keys come from.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// The models clients may call; entries sharing a name are deployments of one group.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Retries, backoff and cooldown across deployments and fallbacks.
    #[serde(default)]
    pub router: RouterConfig,
    /// The Vault-compatible secrets engine that leases virtual keys.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Traffic capture of upstream exchanges; absent means off.
    #[serde(default)]
    pub capture: Option<CaptureConfig>,
    /// A directory of `*.toml` plugin manifests (out-of-process secret helpers).
    #[serde(default)]
    pub plugin_dir: Option<std::path::PathBuf>,
}

/// Where captured upstream exchanges are written, and how many.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Directory of the JSON lines files (`keygate-capture.jsonl`, rotated to `.1`, `.2`, ...).
    pub path: std::path::PathBuf,
    /// Share of requests captured, 0.0 to 1.0 (default 1.0); a model may set its own.
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// Size at which the current file is rotated (default 16 MiB).
    #[serde(default = "default_capture_file_bytes")]
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one (default 5).
    #[serde(default = "default_capture_files")]
    pub max_files: usize,
}

fn default_sample() -> f64 {
    1.0
}
fn default_capture_file_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_capture_files() -> usize {
    5
}

/// Limits on client requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Where budgets and rpm/tpm limits of virtual keys are counted: `auto` (Redis when
    /// `redis_url` is set, else PostgreSQL when the store is, else this process's memory) or
    /// `instance` (this process's memory only: exact for a single instance, N instances may
    /// together admit N times a limit).
    #[serde(default)]
    pub scope: LimitScope,
    /// With cluster-wide limits: an instance unheard of for this long (default 30s) is taken
    /// for dead, and the budget it still reserved is charged to the keys (its requests may
    /// have been served). Longer than any pause of a live instance's database connection.
    #[serde(
        default = "default_instance_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub instance_timeout: Duration,
}

fn default_instance_timeout() -> Duration {
    Duration::from_secs(30)
}

/// See [`Limits::scope`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// Shared by the cluster when a shared store exists.
    #[default]
    Auto,
    /// This process only.
    Instance,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            scope: LimitScope::Auto,
            instance_timeout: default_instance_timeout(),
        }
    }
}

/// The leased-keys engine (Vault dialect).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Mount path of the engine under `/v1/`, default `keygate`.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Lease TTL when neither the request nor the role sets one.
    #[serde(
        default = "default_lease_ttl",
        deserialize_with = "duration::deserialize"
    )]
    pub default_lease_ttl: Duration,
    /// Longest a lease may live, counted from issue, across renewals.
    #[serde(
        default = "default_lease_ttl",
        deserialize_with = "duration::deserialize"
    )]
    pub max_lease_ttl: Duration,
    /// JSON-lines audit log of role changes, issues, renewals and revocations (key material only
    /// as HMAC-SHA256); off when absent. The HMAC key is kept beside it in `{path}.hmac-key`.
    #[serde(default)]
    pub audit_log: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mount: default_mount(),
            default_lease_ttl: default_lease_ttl(),
            max_lease_ttl: default_lease_ttl(),
            audit_log: None,
        }
    }
}

fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_mount() -> String {
    "keygate".to_owned()
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(768 * 3600)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: None,
            admin_key: None,
            database: None,
            redis_url: None,
            limits: Limits::default(),
            shutdown_grace: default_shutdown_grace(),
            secrets: SecretsConfig::default(),
            models: Vec::new(),
            router: RouterConfig::default(),
            engine: EngineConfig::default(),
            capture: None,
            plugin_dir: None,
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `${VAR}` reference could not be resolved.
    #[error("config {origin}: {source}")]
    Interpolate {
        origin: String,
        source: interpolate::InterpolateError,
    },
    /// The YAML is malformed or a field is wrong; `path` names the field.
    #[error("config {origin}: {path}: {message}")]
    Invalid {
        origin: String,
        path: String,
        message: String,
    },
}

impl Config {
    /// Reads, interpolates and parses the file at `path`.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), env)
    }

    /// Interpolates and parses YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        let (text, values) = interpolate::interpolate_tracked(text, env).map_err(|source| {
            ConfigError::Interpolate {
                origin: origin.to_owned(),
                source,
            }
        })?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            ConfigError::Invalid {
                origin: origin.to_owned(),
                // `.` is the document itself; `` is a top-level key that is empty or null (`?`).
                path: if path == "." || path.is_empty() {
                    "(top level)".to_owned()
                } else {
                    path
                },
                // A value read from the environment may be a secret: never echo it.
                message: values
                    .iter()
                    .filter(|v| v.len() >= 3)
                    .fold(err.into_inner().to_string(), |m, v| {
                        m.replace(v.as_str(), "*****")
                    }),
            }
        })
    }
}

#[cfg(test)]
mod tests;
