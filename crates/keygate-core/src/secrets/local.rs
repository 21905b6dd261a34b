//! The sources that need no network: the process environment and `.env` files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SecretValue, SourceError};

use super::dotenv;
use crate::config::{DotenvSourceConfig, Env, EnvSourceConfig};

/// `type: env`: `secret:NAME` reads the variable `{prefix}NAME`.
pub struct EnvSource {
    env: Arc<dyn Env + Send + Sync>,
    prefix: String,
    ttl: Option<Duration>,
}

impl EnvSource {
    /// The environment source over `env`.
    pub fn new(config: &EnvSourceConfig, env: Arc<dyn Env + Send + Sync>) -> Self {
        Self {
            env,
            prefix: config.prefix.clone().unwrap_or_default(),
            ttl: config.ttl,
        }
    }
}

impl SecretSource for EnvSource {
    fn kind(&self) -> &str {
        "env"
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            "env".to_owned()
        } else {
            format!("env prefix={}", self.prefix)
        }
    }

    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        let var = format!("{}{}", self.prefix, query.name);
        let found = self.env.var(&var).filter(|v| !v.is_empty());
        Box::pin(std::future::ready(Ok(match found {
            Some(value) => Lookup::Found(SecretValue::new(value)),
            None => Lookup::NotFound,
        })))
    }
}

/// `type: dotenv`: `NAME=value` lines of a file, read again on every cache miss.
pub struct DotenvSource {
    path: PathBuf,
    ttl: Option<Duration>,
}

impl DotenvSource {
    /// The source for the file at `config.path`.
    pub fn new(config: &DotenvSourceConfig) -> Self {
        Self {
            path: config.path.clone(),
            ttl: config.ttl,
        }
    }
}

impl SecretSource for DotenvSource {
    fn kind(&self) -> &str {
        "dotenv"
    }

    fn describe(&self) -> String {
        format!("dotenv {}", self.path.display())
    }

    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async move {
            let text = match tokio::fs::read_to_string(&self.path).await {
                Ok(text) => text,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Lookup::NotFound)
                }
                Err(err) => {
                    return Err(SourceError::new(format!(
                        "cannot read the file: {}",
                        err.kind()
                    )))
                }
            };
            Ok(
                match dotenv::lookup(&text, query.name).filter(|v| !v.is_empty()) {
                    Some(value) => Lookup::Found(SecretValue::new(value)),
                    None => Lookup::NotFound,
                },
            )
        })
    }
}

/// Reads a Docker/Kubernetes secret file, one trailing newline (`\n` or `\r\n`) trimmed.
pub async fn read_secret_file(path: &std::path::Path) -> Result<Lookup, SourceError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::NotFound),
        Err(err) => {
            return Err(SourceError::new(format!(
                "cannot read the file: {}",
                err.kind()
            )))
        }
    };
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    Ok(if value.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::Found(SecretValue::new(value))
    })
}
