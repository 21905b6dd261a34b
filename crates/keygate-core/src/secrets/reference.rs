//! Parsing of credential references as written in the config.

use std::path::PathBuf;
use std::str::FromStr;

use secrecy::SecretString;

/// Where one upstream key comes from.
#[derive(Debug, Clone)]
pub enum CredentialRef {
    /// `secret:NAME`: walk the configured source chain.
    Secret(String),
    /// `env:NAME` or LiteLLM's `os.environ/NAME`.
    Env(String),
    /// `file:PATH`: a Docker/Kubernetes secret file, trailing newline trimmed.
    File(PathBuf),
    /// `vault:PATH#FIELD`: KV under the vault source's mount.
    Vault {
        /// Path under the mount.
        path: String,
        /// Field of the secret's data; the source's default when absent.
        field: Option<String>,
    },
    /// `aws-sm:SECRET_ID#FIELD`.
    AwsSm {
        /// Secret id or ARN.
        id: String,
        /// JSON field of the secret string; the whole string when absent.
        field: Option<String>,
    },
    /// `azure-kv:SECRET_NAME`.
    AzureKv(String),
    /// `exec:NAME`: ask the exec helper for NAME.
    Exec(String),
    /// A key written into the config itself (accepted with a warning).
    Literal(SecretString),
}

/// A reference that names a known scheme but is malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("credential reference `{scheme}:...` needs a {what}")]
pub struct ParseRefError {
    scheme: &'static str,
    what: &'static str,
}

fn non_empty(
    value: &str,
    scheme: &'static str,
    what: &'static str,
) -> Result<String, ParseRefError> {
    if value.trim().is_empty() {
        Err(ParseRefError { scheme, what })
    } else {
        Ok(value.trim().to_owned())
    }
}

fn split_field(value: &str) -> (&str, Option<String>) {
    match value.split_once('#') {
        Some((path, field)) if !field.is_empty() => (path, Some(field.to_owned())),
        Some((path, _)) => (path, None),
        None => (value, None),
    }
}

impl FromStr for CredentialRef {
    type Err = ParseRefError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix("os.environ/") {
            return Ok(Self::Env(non_empty(name, "os.environ/", "variable name")?));
        }
        let Some((scheme, rest)) = text.split_once(':') else {
            return Ok(Self::Literal(SecretString::from(text.to_owned())));
        };
        Ok(match scheme {
            "secret" => Self::Secret(non_empty(rest, "secret", "name")?),
            "env" => Self::Env(non_empty(rest, "env", "variable name")?),
            "file" => Self::File(PathBuf::from(non_empty(rest, "file", "path")?)),
            "vault" => {
                let (path, field) = split_field(rest);
                Self::Vault {
                    path: non_empty(path, "vault", "path")?,
                    field,
                }
            }
            "aws-sm" => {
                let (id, field) = split_field(rest);
                Self::AwsSm {
                    id: non_empty(id, "aws-sm", "secret id")?,
                    field,
                }
            }
            "azure-kv" => Self::AzureKv(non_empty(rest, "azure-kv", "secret name")?),
            "exec" => Self::Exec(non_empty(rest, "exec", "name")?),
            _ => Self::Literal(SecretString::from(text.to_owned())),
        })
    }
}

impl CredentialRef {
    /// True for a key written into the config.
    pub fn is_literal(&self) -> bool {
        matches!(self, Self::Literal(_))
    }

    /// A description that never contains the key itself.
    pub fn describe(&self) -> String {
        match self {
            Self::Secret(name) => format!("secret:{name}"),
            Self::Env(name) => format!("env:{name}"),
            Self::File(path) => format!("file:{}", path.display()),
            Self::Vault { path, .. } => format!("vault:{path}"),
            Self::AwsSm { id, .. } => format!("aws-sm:{id}"),
            Self::AzureKv(name) => format!("azure-kv:{name}"),
            Self::Exec(name) => format!("exec:{name}"),
            Self::Literal(_) => "literal key".to_owned(),
        }
    }

    /// What identifies the reference in the cache: its description plus any `#FIELD`.
    pub(super) fn cache_key(&self) -> String {
        let field = match self {
            Self::Vault { field, .. } | Self::AwsSm { field, .. } => field.as_deref(),
            _ => None,
        };
        match field {
            Some(field) => format!("{}#{field}", self.describe()),
            None => self.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn parses_every_scheme() {
        let parse = |s: &str| s.parse::<CredentialRef>().unwrap().describe();
        assert_eq!(parse("secret:OPENAI_API_KEY"), "secret:OPENAI_API_KEY");
        assert_eq!(parse("env:A"), "env:A");
        assert_eq!(parse("os.environ/A"), "env:A");
        assert_eq!(parse("file:/run/secrets/k"), "file:/run/secrets/k");
        assert_eq!(parse("vault:llm/openai#key"), "vault:llm/openai");
        assert_eq!(parse("aws-sm:prod/openai#api_key"), "aws-sm:prod/openai");
        assert_eq!(parse("azure-kv:openai-key"), "azure-kv:openai-key");
        assert_eq!(parse("exec:openai"), "exec:openai");
    }

    #[test]
    fn literal_keys_never_describe_themselves() {
        let reference: CredentialRef = "sk-live-123".parse().unwrap();
        assert!(reference.is_literal());
        assert_eq!(reference.describe(), "literal key");
        assert!(!format!("{reference:?}").contains("sk-live-123"));
        let CredentialRef::Literal(secret) = reference else {
            panic!("not literal")
        };
        assert_eq!(secret.expose_secret(), "sk-live-123");
    }

    #[test]
    fn fields_split_on_hash() {
        let CredentialRef::Vault { path, field } = "vault:a/b#f".parse().unwrap() else {
            panic!("not vault")
        };
        assert_eq!((path.as_str(), field.as_deref()), ("a/b", Some("f")));
    }

    #[test]
    fn empty_names_are_errors() {
        for bad in ["secret:", "env: ", "os.environ/", "vault:#f", "exec:"] {
            assert!(bad.parse::<CredentialRef>().is_err(), "{bad}");
        }
    }
}
