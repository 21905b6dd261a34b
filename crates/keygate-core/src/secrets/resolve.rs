//! Resolution of a [`CredentialRef`] to its value, for the sources that need no network.

use secrecy::SecretString;

use super::{dotenv, CredentialRef};
use crate::config::{Env, SourceConfig};

/// Why a reference did not resolve. Never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The variable, file or name exists nowhere that was tried.
    #[error("{reference}: not found ({tried})")]
    NotFound { reference: String, tried: String },
    /// A source failed while being asked.
    #[error("{reference}: {source_kind} failed: {reason}")]
    Failed {
        reference: String,
        source_kind: &'static str,
        reason: String,
    },
    /// The reference needs a source this build cannot reach yet.
    #[error("{reference}: the `{source_kind}` secret source is not supported yet")]
    Unsupported {
        reference: String,
        source_kind: &'static str,
    },
}

/// Resolves `reference`, walking `chain` for `secret:NAME` (an empty chain means `[env]`).
pub fn resolve(
    reference: &CredentialRef,
    chain: &[SourceConfig],
    env: &dyn Env,
) -> Result<SecretString, ResolveError> {
    let described = reference.describe();
    match reference {
        CredentialRef::Literal(secret) => Ok(secret.clone()),
        CredentialRef::Env(name) => non_empty(env.var(name)).ok_or(ResolveError::NotFound {
            reference: described,
            tried: "environment variable is unset or empty".to_owned(),
        }),
        CredentialRef::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|err| ResolveError::Failed {
                reference: described.clone(),
                source_kind: "file",
                reason: err.kind().to_string(),
            })?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            let value = value.strip_suffix('\r').unwrap_or(value);
            non_empty(Some(value.to_owned())).ok_or(ResolveError::NotFound {
                reference: described,
                tried: "file is empty".to_owned(),
            })
        }
        CredentialRef::Secret(name) => walk_chain(name, &described, chain, env),
        CredentialRef::Vault { .. } => unsupported(described, "vault"),
        CredentialRef::AwsSm { .. } => unsupported(described, "aws_secrets_manager"),
        CredentialRef::AzureKv(_) => unsupported(described, "azure_key_vault"),
        CredentialRef::Exec(_) => unsupported(described, "exec"),
    }
}

fn walk_chain(
    name: &str,
    described: &str,
    chain: &[SourceConfig],
    env: &dyn Env,
) -> Result<SecretString, ResolveError> {
    let default_chain = [SourceConfig::Env(Default::default())];
    let chain = if chain.is_empty() {
        &default_chain[..]
    } else {
        chain
    };
    let mut tried = Vec::new();
    for source in chain {
        match source {
            SourceConfig::Env(crate::config::EnvSourceConfig { prefix, .. }) => {
                let var = format!("{}{name}", prefix.as_deref().unwrap_or(""));
                if let Some(value) = non_empty(env.var(&var)) {
                    return Ok(value);
                }
                tried.push(format!("env: {var} unset"));
            }
            SourceConfig::Dotenv(crate::config::DotenvSourceConfig { path, .. }) => {
                match std::fs::read_to_string(path) {
                    Ok(text) => match non_empty(dotenv::lookup(&text, name)) {
                        Some(value) => return Ok(value),
                        None => tried.push(format!("dotenv {}: no {name}", path.display())),
                    },
                    Err(err) => tried.push(format!("dotenv {}: {}", path.display(), err.kind())),
                }
            }
            other => {
                return Err(ResolveError::Unsupported {
                    reference: described.to_owned(),
                    source_kind: other.kind(),
                })
            }
        }
    }
    Err(ResolveError::NotFound {
        reference: described.to_owned(),
        tried: tried.join("; "),
    })
}

fn non_empty(value: Option<String>) -> Option<SecretString> {
    value.filter(|v| !v.is_empty()).map(SecretString::from)
}

fn unsupported(reference: String, source_kind: &'static str) -> Result<SecretString, ResolveError> {
    Err(ResolveError::Unsupported {
        reference,
        source_kind,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn env() -> HashMap<String, String> {
        [("K".to_owned(), "from-env".to_owned())]
            .into_iter()
            .collect()
    }

    #[test]
    fn env_and_chain_resolve() {
        let got = resolve(&"env:K".parse().unwrap(), &[], &env()).unwrap();
        assert_eq!(got.expose_secret(), "from-env");
        let got = resolve(&"secret:K".parse().unwrap(), &[], &env()).unwrap();
        assert_eq!(got.expose_secret(), "from-env");
    }

    #[test]
    fn chain_falls_through_to_dotenv_and_reports_what_it_tried() {
        let dir = std::env::temp_dir().join(format!("kg-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(&path, "OTHER=x\nD=from-dotenv\n").unwrap();
        let chain = [
            SourceConfig::Env(Default::default()),
            SourceConfig::Dotenv(crate::config::DotenvSourceConfig { path, ttl: None }),
        ];
        let got = resolve(&"secret:D".parse().unwrap(), &chain, &env()).unwrap();
        assert_eq!(got.expose_secret(), "from-dotenv");
        let err = resolve(&"secret:NONE".parse().unwrap(), &chain, &env()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("env: NONE unset") && text.contains("no NONE"),
            "{text}"
        );
    }

    #[test]
    fn file_trims_one_trailing_newline() {
        let path = std::env::temp_dir().join(format!("kg-secret-{}", std::process::id()));
        std::fs::write(&path, "file-key\n").unwrap();
        let reference = CredentialRef::File(path);
        let got = resolve(&reference, &[], &env()).unwrap();
        assert_eq!(got.expose_secret(), "file-key");
    }

    #[test]
    fn missing_env_is_not_found() {
        let err = resolve(&"env:MISSING".parse().unwrap(), &[], &env()).unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }));
    }
}
