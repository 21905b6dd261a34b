//! An exec helper: a command printing `{"api_key": "...", "expires_at": RFC3339?}`, like AWS `credential_process`.
//!
//! (Placeholder until the source lands: every lookup fails with a clear error.)

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SourceError};

use super::SourceContext;
use crate::config::ExecSourceConfig;

/// The `exec` secret source.
#[derive(Debug)]
pub struct ExecSource {
    description: String,
}

impl ExecSource {
    /// Builds the source from its config. No network I/O.
    pub fn new(_config: &ExecSourceConfig, _ctx: &SourceContext<'_>) -> Result<Self, String> {
        Ok(Self {
            description: "exec".to_owned(),
        })
    }
}

impl SecretSource for ExecSource {
    fn kind(&self) -> &str {
        "exec"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn fetch<'a>(&'a self, _query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async { Err(SourceError::new("not implemented in this build")) })
    }
}
