//! The resolver: a credential reference in, a secret out, through the chain and the cache.
//!
//! `secret:NAME` asks each source of the chain in order (plugins first); a source that lacks the
//! name or fails passes to the next, and the final error lists every source tried and why.
//! `vault:`, `aws-sm:`, `azure-kv:` and `exec:` go to the first source of their kind; `env:` and
//! `file:` are read directly. Every reference but a literal has its own cache [`Slot`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate_plugin_api::{Lookup, SecretQuery, SecretSource, SourceError};
use secrecy::SecretString;

use super::cache::{CachePolicy, Fetched, Resolved, Slot};
use super::{local, CredentialRef};
use crate::config::{CacheConfig, Env};

/// Longest one source may take to answer before the chain moves on.
const SOURCE_DEADLINE: Duration = Duration::from_secs(15);

/// Why a reference did not resolve. Never contains a secret value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// No source has it.
    #[error("{reference} was not found ({tried})")]
    NotFound {
        /// The reference, described.
        reference: String,
        /// Each source tried and its answer.
        tried: String,
    },
    /// No source has it and at least one failed while being asked.
    #[error("{reference} could not be resolved ({tried})")]
    Failed {
        /// The reference, described.
        reference: String,
        /// Each source tried and its answer.
        tried: String,
    },
    /// The reference needs a kind of source the chain does not have.
    #[error("{reference} needs a `{kind}` entry in secrets.sources")]
    NoSource {
        /// The reference, described.
        reference: String,
        /// The source type it needs.
        kind: &'static str,
    },
}

/// The chain of sources and the cache in front of it; one per config load.
pub struct Secrets {
    chain: Vec<Arc<dyn SecretSource>>,
    env: Arc<dyn Env + Send + Sync>,
    policy: Arc<CachePolicy>,
    ttl: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain: Vec<String> = self.chain.iter().map(|s| s.describe()).collect();
        f.debug_struct("Secrets").field("chain", &chain).finish()
    }
}

impl Secrets {
    /// A resolver over `chain` (plugins first, then the configured sources).
    pub fn new(
        chain: Vec<Arc<dyn SecretSource>>,
        env: Arc<dyn Env + Send + Sync>,
        cache: &CacheConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            chain,
            env,
            ttl: cache.ttl,
            policy: Arc::new(CachePolicy::new(cache.clone())),
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Every value currently cached (for scrubbing captures); never logged.
    pub fn known_values(&self) -> Vec<Arc<SecretString>> {
        let Ok(slots) = self.slots.lock() else {
            return Vec::new();
        };
        slots
            .values()
            .filter_map(|slot| match slot.peek() {
                Some(Ok(resolved)) => Some(resolved.value),
                _ => None,
            })
            .collect()
    }

    /// The sources, in the order `secret:NAME` asks them.
    pub fn chain(&self) -> &[Arc<dyn SecretSource>] {
        &self.chain
    }

    /// A handle that resolves `reference`; handles for the same reference share a cache slot.
    pub fn handle(self: &Arc<Self>, reference: CredentialRef) -> SecretHandle {
        let slot = match &reference {
            CredentialRef::Literal(_) => None,
            other => {
                let key = other.cache_key();
                let mut slots = match self.slots.lock() {
                    Ok(slots) => slots,
                    Err(poisoned) => poisoned.into_inner(),
                };
                Some(slots.entry(key).or_default().clone())
            }
        };
        SecretHandle {
            secrets: self.clone(),
            name: reference.describe().into(),
            reference: Arc::new(reference),
            slot,
        }
    }

    /// After a reload: each reference this resolver shares with `old` keeps `old`'s last good
    /// value as its stale-if-error fallback (see [`Slot::inherit`]), when both ask the same
    /// sources in the same order. A changed chain starts from nothing.
    pub fn inherit(&self, old: &Secrets) {
        let describe = |chain: &[Arc<dyn SecretSource>]| -> Vec<String> {
            chain.iter().map(|source| source.describe()).collect()
        };
        if describe(&self.chain) != describe(&old.chain) {
            return;
        }
        let (Ok(new_slots), Ok(old_slots)) = (self.slots.lock(), old.slots.lock()) else {
            return;
        };
        for (key, slot) in new_slots.iter() {
            if let Some(previous) = old_slots.get(key) {
                slot.inherit(previous);
            }
        }
    }

    /// Stops background refreshes.
    pub async fn shutdown(&self) {
        self.policy.shutdown().await;
    }

    /// Asks the sources, without the cache.
    async fn fetch(&self, reference: &CredentialRef) -> Fetched {
        let described = reference.describe();
        let (sources, query): (Vec<&Arc<dyn SecretSource>>, SecretQuery<'_>) = match reference {
            CredentialRef::Literal(value) => return Ok(self.literal(value)),
            CredentialRef::Env(name) => {
                let value = self.env.var(name).filter(|v| !v.is_empty());
                return match value {
                    Some(value) => Ok(self.found(SecretString::from(value), "env", None, None)),
                    None => Err(ResolveError::NotFound {
                        reference: described,
                        tried: "the environment variable is unset or empty".to_owned(),
                    }),
                };
            }
            CredentialRef::File(path) => {
                return match local::read_secret_file(path).await {
                    Ok(Lookup::Found(v)) => Ok(self.found(v.value, "file", None, v.expires_at)),
                    Ok(Lookup::NotFound) => Err(ResolveError::NotFound {
                        reference: described,
                        tried: "the file is missing or empty".to_owned(),
                    }),
                    Err(err) => Err(ResolveError::Failed {
                        reference: described,
                        tried: err.to_string(),
                    }),
                };
            }
            CredentialRef::Secret(name) => (self.chain.iter().collect(), query(name, None)),
            CredentialRef::Vault { path, field } => (
                self.first("vault", &described)?,
                query(path, field.as_deref()),
            ),
            CredentialRef::AwsSm { id, field } => (
                self.first("aws_secrets_manager", &described)?,
                query(id, field.as_deref()),
            ),
            CredentialRef::AzureKv(name) => (
                self.first("azure_key_vault", &described)?,
                query(name, None),
            ),
            CredentialRef::Exec(name) => (self.first("exec", &described)?, query(name, None)),
        };
        let mut tried = Vec::new();
        let mut failed = false;
        for source in sources {
            let answer = tokio::time::timeout(SOURCE_DEADLINE, source.fetch(query)).await;
            let answer = answer.unwrap_or_else(|_| {
                Err(SourceError::new(format!(
                    "no answer within {}s",
                    SOURCE_DEADLINE.as_secs()
                )))
            });
            let outcome = match &answer {
                Ok(Lookup::Found(_)) => "found",
                Ok(Lookup::NotFound) => "not_found",
                Err(_) => "error",
            };
            metrics::counter!("keygate_secret_fetches_total", "source" => source.kind().to_owned(), "outcome" => outcome)
                .increment(1);
            match answer {
                Ok(Lookup::Found(v)) => {
                    let description = source.describe();
                    tracing::debug!(reference = %described, source = %description, "secret fetched");
                    return Ok(self.found(v.value, &description, source.ttl(), v.expires_at));
                }
                Ok(Lookup::NotFound) => tried.push(format!("{}: not found", source.describe())),
                Err(err) => {
                    failed = true;
                    tried.push(format!("{}: {err}", source.describe()));
                }
            }
        }
        let tried = tried.join("; ");
        Err(if failed {
            ResolveError::Failed {
                reference: described,
                tried,
            }
        } else {
            ResolveError::NotFound {
                reference: described,
                tried,
            }
        })
    }

    fn first(
        &self,
        kind: &'static str,
        described: &str,
    ) -> Result<Vec<&Arc<dyn SecretSource>>, ResolveError> {
        let source = self.chain.iter().find(|s| s.kind() == kind);
        source.map(|s| vec![s]).ok_or(ResolveError::NoSource {
            reference: described.to_owned(),
            kind,
        })
    }

    fn found(
        &self,
        value: SecretString,
        source: &str,
        ttl: Option<Duration>,
        expires_at: Option<std::time::SystemTime>,
    ) -> Resolved {
        Resolved {
            value: Arc::new(value),
            source: Arc::from(source),
            fresh_until: std::time::Instant::now(),
            ttl: ttl.unwrap_or(self.ttl),
            expires_at,
        }
    }

    fn literal(&self, value: &SecretString) -> Resolved {
        let mut resolved = self.found(value.clone(), "literal", None, None);
        resolved.fresh_until += Duration::from_secs(86_400 * 365);
        resolved
    }
}

fn query<'a>(name: &'a str, field: Option<&'a str>) -> SecretQuery<'a> {
    SecretQuery { name, field }
}

/// Resolves one credential reference, through its cache slot.
#[derive(Clone)]
pub struct SecretHandle {
    secrets: Arc<Secrets>,
    /// The reference, described (written once: every request that uses the key names it).
    name: Arc<str>,
    reference: Arc<CredentialRef>,
    slot: Option<Arc<Slot>>,
}

impl std::fmt::Debug for SecretHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl SecretHandle {
    /// The secret, from the cache when fresh.
    pub async fn get(&self) -> Result<Resolved, ResolveError> {
        let Some(slot) = &self.slot else {
            return match self.reference.as_ref() {
                CredentialRef::Literal(value) => Ok(self.secrets.literal(value)),
                _ => self.secrets.fetch(&self.reference).await,
            };
        };
        let secrets = self.secrets.clone();
        let reference = self.reference.clone();
        let fetch = move || {
            let secrets = secrets.clone();
            let reference = reference.clone();
            async move { secrets.fetch(&reference).await }
        };
        slot.get(&self.secrets.policy, fetch).await
    }

    /// The reference, described (never the key).
    pub fn describe(&self) -> &str {
        &self.name
    }

    /// The cached answer, if any, without asking a source.
    pub fn peek(&self) -> Option<Result<Resolved, ResolveError>> {
        match &self.slot {
            Some(slot) => slot.peek(),
            None => None,
        }
    }
}
