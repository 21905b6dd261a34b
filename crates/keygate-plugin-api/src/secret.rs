//! Secret sources: where upstream provider keys come from.
//!
//! A source answers one [`SecretQuery`] at a time. It never logs or returns a secret in an error:
//! [`SourceError`] texts end up in logs and in the 503 a caller reads.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

/// A boxed, sendable future: what [`SecretSource::fetch`] returns (object-safe async).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What is asked of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretQuery<'a> {
    /// The secret's name: `NAME` of `secret:NAME`, or the path/id of a source-specific reference
    /// (`vault:PATH#FIELD` asks a vault source for `PATH`).
    pub name: &'a str,
    /// A field inside the secret (`#FIELD`), when the reference names one.
    pub field: Option<&'a str>,
}

/// A secret value and how long it is good for.
pub struct SecretValue {
    /// The secret itself; never printed.
    pub value: SecretString,
    /// When the source says it stops being valid (an exec helper's `expires_at`, a lease end).
    /// The cache never serves it past this instant, whatever its TTL.
    pub expires_at: Option<SystemTime>,
}

impl SecretValue {
    /// A value with no expiry of its own.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: SecretString::from(value.into()),
            expires_at: None,
        }
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("value", &"*****")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A source's answer.
#[derive(Debug)]
pub enum Lookup {
    /// The source has it.
    Found(SecretValue),
    /// The source does not have it (or does not answer this kind of query): ask the next one.
    NotFound,
}

/// A source failed (unreachable, denied, malformed answer). The chain moves on to the next
/// source, and a cached value may be served stale. The message never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// One link of the credential chain.
pub trait SecretSource: Send + Sync + 'static {
    /// The source's kind, as in the config's `type` (`vault`, `env`, ...) or a plugin's name.
    fn kind(&self) -> &str;

    /// A one-line description for `keygate secrets check` and error messages, e.g.
    /// `vault http://127.0.0.1:8200 mount=secret`. No credentials.
    fn describe(&self) -> String;

    /// How long values from this source are cached; `None` uses the global `secrets.cache.ttl`.
    fn ttl(&self) -> Option<Duration> {
        None
    }

    /// Looks the secret up. Must not block the thread: do I/O asynchronously.
    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>>;
}
