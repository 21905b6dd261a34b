//! AWS Secrets Manager `GetSecretValue`, signed with SigV4 by hand; credentials from the standard environment variables or the shared credentials file.
//!
//! (Placeholder until the source lands: every lookup fails with a clear error.)

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SourceError};

use super::SourceContext;
use crate::config::AwsSourceConfig;

/// The `aws` secret source.
#[derive(Debug)]
pub struct AwsSecretsManager {
    description: String,
}

impl AwsSecretsManager {
    /// Builds the source from its config. No network I/O.
    pub fn new(_config: &AwsSourceConfig, _ctx: &SourceContext<'_>) -> Result<Self, String> {
        Ok(Self {
            description: "aws".to_owned(),
        })
    }
}

impl SecretSource for AwsSecretsManager {
    fn kind(&self) -> &str {
        "aws"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn fetch<'a>(&'a self, _query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async { Err(SourceError::new("not implemented in this build")) })
    }
}
