//! OpenBao / HashiCorp Vault KV v1 and v2: token or AppRole auth (the token renewed while it lives), namespaces, custom CA.
//!
//! (Placeholder until the source lands: every lookup fails with a clear error.)

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SourceError};

use super::SourceContext;
use crate::config::VaultSourceConfig;

/// The `vault` secret source.
#[derive(Debug)]
pub struct VaultSource {
    description: String,
}

impl VaultSource {
    /// Builds the source from its config. No network I/O.
    pub fn new(_config: &VaultSourceConfig, _ctx: &SourceContext<'_>) -> Result<Self, String> {
        Ok(Self {
            description: "vault".to_owned(),
        })
    }
}

impl SecretSource for VaultSource {
    fn kind(&self) -> &str {
        "vault"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn fetch<'a>(&'a self, _query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async { Err(SourceError::new("not implemented in this build")) })
    }
}
