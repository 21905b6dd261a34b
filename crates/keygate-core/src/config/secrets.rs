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
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The process environment.
    Env {
        /// Only names starting with this prefix are looked up (the prefix is prepended).
        #[serde(default)]
        prefix: Option<String>,
    },
    /// A `.env` file of `NAME=value` lines.
    Dotenv {
        /// Path of the file.
        path: PathBuf,
    },
    /// OpenBao / HashiCorp Vault KV.
    Vault {
        /// e.g. `http://127.0.0.1:8200`.
        address: String,
        /// KV mount, e.g. `secret`.
        #[serde(default = "default_kv_mount")]
        mount: String,
        /// KV engine version, 1 or 2.
        #[serde(default = "default_kv_version")]
        kv_version: u8,
        /// Vault Enterprise / OpenBao namespace.
        #[serde(default)]
        namespace: Option<String>,
        /// PEM file of the CA that signed the server's certificate.
        #[serde(default)]
        ca_cert: Option<PathBuf>,
        /// How keygate logs in.
        auth: VaultAuth,
        /// Path prefix under the mount that `secret:NAME` reads (`{prefix}/{NAME}`).
        #[serde(default)]
        path_prefix: Option<String>,
        /// Field read when a reference names none.
        #[serde(default = "default_field")]
        field: String,
    },
    /// AWS Secrets Manager.
    AwsSecretsManager {
        /// e.g. `us-east-1`.
        region: String,
        /// A custom endpoint (moto, LocalStack, VPC endpoints).
        #[serde(default)]
        endpoint: Option<String>,
        /// Named profile in the shared credentials file.
        #[serde(default)]
        profile: Option<String>,
    },
    /// Azure Key Vault.
    AzureKeyVault {
        /// e.g. `https://NAME.vault.azure.net`.
        vault_url: String,
        /// Entra ID tenant; defaults to `AZURE_TENANT_ID`.
        #[serde(default)]
        tenant_id: Option<String>,
        /// App registration id; defaults to `AZURE_CLIENT_ID`.
        #[serde(default)]
        client_id: Option<String>,
        /// Credential reference for the client secret; defaults to `env:AZURE_CLIENT_SECRET`.
        #[serde(default)]
        client_secret: Option<String>,
        /// Token endpoint authority, for sovereign clouds and tests.
        #[serde(default)]
        authority: Option<String>,
    },
    /// A helper command printing `{"api_key": "...", "expires_at": "..."}`.
    Exec {
        /// argv; the secret name is appended as the last argument.
        command: Vec<String>,
        /// How long the helper may run.
        #[serde(default, deserialize_with = "duration::deserialize_opt")]
        timeout: Option<Duration>,
    },
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
    /// AppRole login.
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
            Self::Env { .. } => "env",
            Self::Dotenv { .. } => "dotenv",
            Self::Vault { .. } => "vault",
            Self::AwsSecretsManager { .. } => "aws_secrets_manager",
            Self::AzureKeyVault { .. } => "azure_key_vault",
            Self::Exec { .. } => "exec",
        }
    }
}
