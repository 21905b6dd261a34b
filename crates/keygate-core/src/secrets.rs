//! Upstream credentials: references (`secret:NAME`, `env:NAME`, ...), the chain of sources
//! that resolves them (env, dotenv, OpenBao/Vault, AWS Secrets Manager, Azure Key Vault, exec
//! helpers, plugins), and the cache in front of it. Values are held in types that never print.

mod aws;
mod azure;
mod build;
mod cache;
mod dotenv;
pub(crate) mod exec;
mod local;
mod reference;
mod resolve;
#[cfg(test)]
mod tests;
mod vault;

use std::sync::Arc;

pub use build::{build_chain, SourceBuildError};
pub use cache::Resolved;
pub use keygate_plugin_api::{Lookup, SecretQuery, SecretSource, SecretValue, SourceError};
pub use reference::{CredentialRef, ParseRefError};
pub use resolve::{ResolveError, SecretHandle, Secrets};
pub use secrecy::{ExposeSecret, SecretString};

use crate::config::Env;

/// What building a source may use: the shared HTTP client and the environment (for defaults
/// such as `VAULT_TOKEN` and credential references inside a source's own config).
#[derive(Clone)]
pub struct SourceContext<'a> {
    /// The shared outbound HTTP client (a source needing its own TLS roots builds another).
    pub client: &'a reqwest::Client,
    /// Where variables are read.
    pub env: Arc<dyn Env + Send + Sync>,
}
