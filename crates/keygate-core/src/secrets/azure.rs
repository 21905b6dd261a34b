//! Azure Key Vault: a client-credentials token (cached until it expires) and `GET {vault}/secrets/{name}`.
//!
//! (Placeholder until the source lands: every lookup fails with a clear error.)

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SourceError};

use super::SourceContext;
use crate::config::AzureSourceConfig;

/// The `azure` secret source.
#[derive(Debug)]
pub struct AzureKeyVault {
    description: String,
}

impl AzureKeyVault {
    /// Builds the source from its config. No network I/O.
    pub fn new(_config: &AzureSourceConfig, _ctx: &SourceContext<'_>) -> Result<Self, String> {
        Ok(Self {
            description: "azure".to_owned(),
        })
    }
}

impl SecretSource for AzureKeyVault {
    fn kind(&self) -> &str {
        "azure"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn fetch<'a>(&'a self, _query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async { Err(SourceError::new("not implemented in this build")) })
    }
}
