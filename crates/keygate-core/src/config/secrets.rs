//! `secrets:` — the cache settings and the chain of sources that `secret:NAME` walks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// Cache and source chain for upstream credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// How resolved secrets are cached.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The chain `secret:NAME` walks, in order. Empty means `[{type: env}]`.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// Secret cache timings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a resolved value is served before it is fetched again.
    #[serde(default = "default_ttl", deserialize_with = "duration::deserialize")]
    pub ttl: Duration,
    /// How long the last good value keeps being served while its source fails.
    #[serde(default = "default_stale", deserialize_with = "duration::deserialize")]
    pub stale_if_error: Duration,
    /// How long a "not found" answer is remembered.
    #[serde(
        default = "default_negative",
        deserialize_with = "duration::deserialize"
    )]
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            stale_if_error: default_stale(),
            negative_ttl: default_negative(),
        }
    }
}

fn default_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_stale() -> Duration {
    Duration::from_secs(3600)
}
fn default_negative() -> Duration {
    Duration::from_secs(10)
}

/// One source of the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// The process environment.
    Env(EnvSourceConfig),
    /// A `.env` file of `NAME=value` lines.
    Dotenv(DotenvSourceConfig),
    /// OpenBao / HashiCorp Vault KV (v2 by default, v1 too).
    Vault(VaultSourceConfig),
    /// AWS Secrets Manager.
    AwsSecretsManager(AwsSourceConfig),
    /// Azure Key Vault.
    AzureKeyVault(AzureSourceConfig),
    /// A helper command printing `{"api_key": "...", "expires_at": "..."}`.
    Exec(ExecSourceConfig),
}

/// `type: env`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSourceConfig {
    /// Prepended to the name looked up (`secret:OPENAI_API_KEY` with prefix `PROD_` reads
    /// `PROD_OPENAI_API_KEY`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Cache TTL for this source; the global `cache.ttl` when absent.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub ttl: Option<Duration>,
}

/// `type: dotenv`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotenvSourceConfig {
    /// Path of the file, read again whenever a cached value expires.
    pub path: PathBuf,
    /// Cache TTL for this source.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub ttl: Option<Duration>,
}

/// `type: vault`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSourceConfig {
    /// e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// KV mount, e.g. `secret`.
    #[serde(default = "default_kv_mount")]
    pub mount: String,
    /// KV engine version, 1 or 2.
    #[serde(default = "default_kv_version")]
    pub kv_version: u8,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM file of the CA that signed the server's certificate.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// How keygate logs in; a token from `VAULT_TOKEN` (or `BAO_TOKEN`) when absent.
    #[serde(default)]
    pub auth: Option<VaultAuth>,
    /// Path prefix under the mount that `secret:NAME` reads (`{prefix}/{NAME}`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Field read when a reference names none.
    #[serde(default = "default_field")]
    pub field: String,
    /// Cache TTL for this source.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub ttl: Option<Duration>,
}

/// How the vault source authenticates.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultAuth {
    /// A token, usually `${VAULT_TOKEN}`.
    Token {
        /// The token.
        token: String,
    },
    /// AppRole login (`POST /v1/auth/{mount}/login`), the token renewed while it lives.
    Approle {
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: String,
        /// Auth mount, default `approle`.
        #[serde(default)]
        mount: Option<String>,
    },
}

/// `type: aws_secrets_manager`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSourceConfig {
    /// e.g. `us-east-1`; `AWS_REGION`/`AWS_DEFAULT_REGION` when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// A custom endpoint (moto, LocalStack, VPC endpoints); `AWS_ENDPOINT_URL_SECRETS_MANAGER`
    /// or `AWS_ENDPOINT_URL` when absent, else `https://secretsmanager.{region}.amazonaws.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Named profile in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
    /// `~/.aws/credentials`). When set, it is used even if `AWS_ACCESS_KEY_ID` is; when absent,
    /// the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` variables, else the
    /// file's `AWS_PROFILE` or `default` profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// Cache TTL for this source.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub ttl: Option<Duration>,
}

/// `type: azure_key_vault`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSourceConfig {
    /// e.g. `https://NAME.vault.azure.net`.
    pub vault_url: String,
    /// Entra ID tenant; `AZURE_TENANT_ID` when absent.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// App registration id; `AZURE_CLIENT_ID` when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Credential reference for the client secret: `env:NAME`, `file:PATH` (read at each token
    /// request) or the secret itself; `env:AZURE_CLIENT_SECRET` when absent.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Token authority (sovereign clouds, tests); `AZURE_AUTHORITY_HOST` when absent, else
    /// `https://login.microsoftonline.com`.
    #[serde(default)]
    pub authority: Option<String>,
    /// Cache TTL for this source.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub ttl: Option<Duration>,
}

/// `type: exec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSourceConfig {
    /// argv; the secret name is appended as the last argument.
    pub command: Vec<String>,
    /// How long the helper may run (default 10s).
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    /// Cache TTL for this source (an `expires_at` from the helper shortens it).
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub ttl: Option<Duration>,
}

fn default_kv_mount() -> String {
    "secret".to_owned()
}
fn default_kv_version() -> u8 {
    2
}
fn default_field() -> String {
    "api_key".to_owned()
}

impl SourceConfig {
    /// The `type` tag, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Env(_) => "env",
            Self::Dotenv(_) => "dotenv",
            Self::Vault(_) => "vault",
            Self::AwsSecretsManager(_) => "aws_secrets_manager",
            Self::AzureKeyVault(_) => "azure_key_vault",
            Self::Exec(_) => "exec",
        }
    }
}
