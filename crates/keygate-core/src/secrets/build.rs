//! Turning `secrets.sources` into the chain of [`SecretSource`]s.

use std::sync::Arc;

use keygate_plugin_api::SecretSource;

use super::local::{DotenvSource, EnvSource};
use super::{aws, azure, exec, vault, SourceContext};
use crate::config::{EnvSourceConfig, SourceConfig};

/// A source that cannot be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("secrets.sources[{index}] ({kind}): {reason}")]
pub struct SourceBuildError {
    /// Position in `secrets.sources`.
    pub index: usize,
    /// The source's `type`.
    pub kind: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// Builds every configured source, in order; an empty list means `[{type: env}]`. No network I/O.
pub fn build_chain(
    sources: &[SourceConfig],
    ctx: &SourceContext<'_>,
) -> Result<Vec<Arc<dyn SecretSource>>, SourceBuildError> {
    if sources.is_empty() {
        let env = EnvSource::new(&EnvSourceConfig::default(), ctx.env.clone());
        return Ok(vec![Arc::new(env)]);
    }
    sources
        .iter()
        .enumerate()
        .map(|(index, config)| {
            build_source(config, ctx).map_err(|reason| SourceBuildError {
                index,
                kind: config.kind(),
                reason,
            })
        })
        .collect()
}

fn build_source(
    config: &SourceConfig,
    ctx: &SourceContext<'_>,
) -> Result<Arc<dyn SecretSource>, String> {
    Ok(match config {
        SourceConfig::Env(c) => Arc::new(EnvSource::new(c, ctx.env.clone())),
        SourceConfig::Dotenv(c) => Arc::new(DotenvSource::new(c)),
        SourceConfig::Vault(c) => Arc::new(vault::VaultSource::new(c, ctx)?),
        SourceConfig::AwsSecretsManager(c) => Arc::new(aws::AwsSecretsManager::new(c, ctx)?),
        SourceConfig::AzureKeyVault(c) => Arc::new(azure::AzureKeyVault::new(c, ctx)?),
        SourceConfig::Exec(c) => Arc::new(exec::ExecSource::new(c, ctx)?),
    })
}
