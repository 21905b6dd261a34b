//! A configured model made ready to serve: its provider, upstream URLs, headers and keys.
//!
//! Built once per config load (start-up and SIGHUP), so the request path only reads it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderName;
use keygate_plugin_api::{Backend, Wire};

use crate::config::{Byok, ModelConfig, Price};
use crate::secrets::{self, CredentialRef, SecretHandle, Secrets};

/// Default time an upstream call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// An upstream operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Chat in the backend's dialect (`/chat/completions` or `/v1/messages`).
    Chat,
    /// `/embeddings`.
    Embeddings,
}

/// Why a model entry cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// `provider` names no built-in backend and no registered plugin.
    #[error("model `{model}`: unknown provider `{provider}`: {guidance}")]
    UnknownProvider {
        model: String,
        provider: String,
        guidance: String,
    },
    /// A built-in backend refused the entry (missing or bad `api_base`, bad header, ...).
    #[error("model `{model}`: {message}")]
    Invalid { model: String, message: String },
    /// A credential reference is malformed.
    #[error("model `{model}`: {source}")]
    BadReference {
        model: String,
        source: secrets::ParseRefError,
    },
}

/// A model ready to serve.
pub struct ModelRoute {
    /// What clients call it.
    pub name: String,
    /// The backend's name (`provider` in the config), also a metrics label.
    pub provider: String,
    /// What serves it.
    pub backend: Arc<dyn Backend>,
    /// The dialect the backend speaks.
    pub wire: Wire,
    /// The upstream's model id (Azure: deployment).
    pub upstream_model: String,
    /// Bring-your-own-key policy.
    pub byok: Byok,
    /// Price per million tokens, when configured.
    pub price: Option<Price>,
    /// The configured price, else the embedded table's for the upstream model.
    pub effective_price: Option<Price>,
    /// Longest an upstream call may take.
    pub timeout: Duration,
    /// `x-{model}-authorization`: where a caller may bring its own key for this model.
    pub byok_header: Option<HeaderName>,
    /// This model's metric series.
    pub metrics: crate::telemetry::RouteMetrics,
    /// Share of this model's requests whose upstream exchanges are captured (0 = none).
    pub capture_sample: f64,
    keys: Vec<UpstreamKey>,
    next_key: AtomicUsize,
}

impl std::fmt::Debug for ModelRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRoute")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("upstream_model", &self.upstream_model)
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

/// One configured upstream key of a model, and its cooldown after a 401/429.
#[derive(Debug)]
pub struct UpstreamKey {
    /// Resolves the key (cached).
    pub handle: SecretHandle,
    /// Milliseconds since [`epoch`] before which the key is skipped when another is usable.
    cooldown_until: AtomicU64,
}

/// The instant cooldowns count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since [`epoch`]: the clock of key and deployment cooldowns.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl UpstreamKey {
    /// Skips this key for `period` while another key can serve.
    pub fn cool_down(&self, period: Duration) {
        let until = now_ms().saturating_add(u64::try_from(period.as_millis()).unwrap_or(u64::MAX));
        self.cooldown_until.fetch_max(until, Ordering::Relaxed);
    }

    fn cooling(&self, now: u64) -> bool {
        self.cooldown_until.load(Ordering::Relaxed) > now
    }
}

/// The header name a caller uses to bring its own key for `model`: `x-{model}-authorization`,
/// lowercased, every character that HTTP does not allow in a header name (RFC 9110 `tchar`)
/// written as `-`. `gpt-4o` -> `x-gpt-4o-authorization`, `openai/gpt-4o` -> `x-openai-gpt-4o-authorization`.
pub fn byok_header_name(model: &str) -> Option<HeaderName> {
    let slug: String = model
        .chars()
        .map(|c| {
            let allowed = c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if allowed {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    HeaderName::from_bytes(format!("x-{slug}-authorization").as_bytes()).ok()
}

impl ModelRoute {
    /// Prepares `config` to be served by `backend` (already built by its factory): keys are
    /// resolved on use, through the cache. A key that does not resolve does not stop the build:
    /// requests for the model get a 503 naming the reason.
    pub fn build(
        config: &ModelConfig,
        secrets: &Arc<Secrets>,
        backend: Arc<dyn Backend>,
        capture_sample: f64,
    ) -> Result<Self, RouteError> {
        let model = config.name.clone();
        let upstream_model = config.model.clone().unwrap_or_else(|| model.clone());
        let mut keys = Vec::new();
        if let Some(spec) = &config.api_key {
            for text in spec.refs() {
                let reference: CredentialRef =
                    text.parse().map_err(|source| RouteError::BadReference {
                        model: model.clone(),
                        source,
                    })?;
                if reference.is_literal() {
                    tracing::warn!(model = %model, "api_key is a literal key in the config; prefer a reference such as secret:NAME");
                }
                keys.push(UpstreamKey {
                    handle: secrets.handle(reference),
                    cooldown_until: AtomicU64::new(0),
                });
            }
        }
        Ok(Self {
            metrics: crate::telemetry::RouteMetrics::new(&model, &config.provider),
            effective_price: crate::keys::price::price_of(config.price, &upstream_model),
            byok_header: byok_header_name(&model),
            wire: backend.wire(),
            backend,
            name: model,
            provider: config.provider.clone(),
            upstream_model,
            byok: config.byok,
            price: config.price,
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            capture_sample,
            keys,
            next_key: AtomicUsize::new(0),
        })
    }

    /// The configured keys (none for a keyless upstream such as a local vLLM).
    pub fn keys(&self) -> &[UpstreamKey] {
        &self.keys
    }

    /// The configured keys in the order this request tries them: round-robin, keys cooling
    /// down after a 401/429 moved to the end (they are still tried when nothing else is left).
    pub fn keys_in_turn(&self) -> Vec<&UpstreamKey> {
        let count = self.keys.len();
        if count == 0 {
            return Vec::new();
        }
        let start = self.next_key.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let mut order: Vec<&UpstreamKey> = (0..count)
            .map(|offset| &self.keys[(start + offset) % count])
            .collect();
        order.sort_by_key(|key| key.cooling(now));
        order
    }
}
