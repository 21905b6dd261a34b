//! AWS credentials: the standard environment variables, or a profile of the shared credentials
//! file (`~/.aws/credentials`).
//!
//! Order: a `profile` named in the source's config reads the file; otherwise
//! `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) win when set; otherwise
//! the file's `AWS_PROFILE` (or `default`) profile. The file is read at the first fetch and read
//! again whenever its modification time changes. Not supported: `~/.aws/config`
//! (`credential_process`, SSO, `role_arn`), IMDS/ECS container credentials, web identity.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use keygate_plugin_api::SourceError;
use secrecy::SecretString;
use tokio::sync::Mutex;

use crate::config::Env;

/// One set of AWS credentials. Debug prints only the key id.
pub struct Credentials {
    /// `AKIA...` / `ASIA...`; not secret, appears in the `Authorization` header.
    pub access_key_id: String,
    /// The signing secret.
    pub secret_access_key: SecretString,
    /// The STS session token of temporary credentials.
    pub session_token: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"*****")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "*****"),
            )
            .finish()
    }
}

/// Where credentials come from, decided when the source is built.
#[derive(Debug)]
pub enum CredentialSource {
    /// The environment variables, read once at build.
    Static(Arc<Credentials>),
    /// A profile of the shared credentials file, read lazily.
    File {
        /// The file.
        path: PathBuf,
        /// The `[section]` read.
        profile: String,
        /// The last parse and the file's modification time then.
        cache: Mutex<Option<(Option<SystemTime>, Arc<Credentials>)>>,
    },
}

impl CredentialSource {
    /// Picks the credentials for a source whose config names `profile` (or not). No file I/O.
    pub fn from_env(profile: Option<&str>, env: &dyn Env) -> Result<Self, String> {
        let var = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
        if profile.is_none() {
            if let Some(access_key_id) = var("AWS_ACCESS_KEY_ID") {
                let secret = var("AWS_SECRET_ACCESS_KEY").ok_or(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_owned(),
                )?;
                return Ok(Self::Static(Arc::new(Credentials {
                    access_key_id: access_key_id.trim().to_owned(),
                    secret_access_key: SecretString::from(secret.trim().to_owned()),
                    session_token: var("AWS_SESSION_TOKEN")
                        .map(|t| SecretString::from(t.trim().to_owned())),
                })));
            }
        }
        let home = var("HOME");
        let path = match var("AWS_SHARED_CREDENTIALS_FILE") {
            Some(file) => match (file.strip_prefix("~/"), &home) {
                (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => PathBuf::from(file),
            },
            None => match home {
                Some(home) => PathBuf::from(home).join(".aws").join("credentials"),
                None => {
                    return Err("no AWS credentials: set AWS_ACCESS_KEY_ID and \
                                AWS_SECRET_ACCESS_KEY, or HOME or AWS_SHARED_CREDENTIALS_FILE \
                                for the shared credentials file"
                        .to_owned())
                }
            },
        };
        let profile = profile
            .map(str::to_owned)
            .or_else(|| var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        Ok(Self::File {
            path,
            profile,
            cache: Mutex::new(None),
        })
    }

    /// For `describe()`: `credentials=env` or `profile=NAME`.
    pub fn describe(&self) -> String {
        match self {
            Self::Static(_) => "credentials=env".to_owned(),
            Self::File { profile, .. } => format!("profile={profile}"),
        }
    }

    /// The credentials to sign with now.
    pub async fn get(&self) -> Result<Arc<Credentials>, SourceError> {
        let (path, profile, cache) = match self {
            Self::Static(credentials) => return Ok(credentials.clone()),
            Self::File {
                path,
                profile,
                cache,
            } => (path, profile, cache),
        };
        let shown = path.display();
        let metadata = tokio::fs::metadata(path).await.map_err(|err| {
            SourceError::new(format!(
                "no AWS credentials: cannot read {shown} ({}) and AWS_ACCESS_KEY_ID is unset",
                err.kind()
            ))
        })?;
        let modified = metadata.modified().ok();
        let mut cache = cache.lock().await;
        if let Some((at, credentials)) = cache.as_ref() {
            if modified.is_some() && *at == modified {
                return Ok(credentials.clone());
            }
        }
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|err| SourceError::new(format!("cannot read {shown}: {}", err.kind())))?;
        let credentials = Arc::new(
            parse_profile(&text, profile)
                .map_err(|reason| SourceError::new(format!("{shown}: {reason}")))?,
        );
        *cache = Some((modified, credentials.clone()));
        Ok(credentials)
    }
}

/// The `[profile]` section of a credentials file. Errors never quote the file's lines.
pub fn parse_profile(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut in_section = false;
    let mut seen = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let section = section.strip_prefix("profile ").unwrap_or(section).trim();
            in_section = section == profile;
            seen |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => key_id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            "aws_security_token" if token.is_none() => token = Some(value),
            _ => {}
        }
    }
    if !seen {
        return Err(format!("no [{profile}] profile"));
    }
    let missing = |what: &str| format!("profile [{profile}] has no {what}");
    Ok(Credentials {
        access_key_id: key_id
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("aws_access_key_id"))?,
        secret_access_key: SecretString::from(
            secret
                .filter(|v| !v.is_empty())
                .ok_or_else(|| missing("aws_secret_access_key"))?,
        ),
        session_token: token.filter(|v| !v.is_empty()).map(SecretString::from),
    })
}

#[cfg(test)]
mod tests;
