//! A configured model made ready to serve: its provider, upstream URLs, headers and keys.
//!
//! Built once per config load (start-up and SIGHUP), so the request path only reads it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{Byok, ModelConfig, Price};
use crate::secrets::{self, CredentialRef, SecretHandle, Secrets};

/// Default time an upstream call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// `api-version` used for Azure OpenAI when the model sets none.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// `anthropic-version` sent when neither the caller nor the model sets one.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The built-in providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// api.openai.com.
    OpenAi,
    /// Anything speaking OpenAI's API with a bearer key (vLLM, Ollama, Groq, ...).
    OpenAiCompatible,
    /// Azure OpenAI deployments.
    AzureOpenAi,
    /// api.anthropic.com Messages API.
    Anthropic,
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
}

/// An upstream operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `/chat/completions`.
    Chat,
    /// `/embeddings`.
    Embeddings,
    /// `/v1/messages`.
    Messages,
}

impl ProviderKind {
    /// The config spelling of each built-in provider.
    pub const NAMES: &'static [&'static str] =
        &["openai", "openai_compatible", "azure_openai", "anthropic"];

    /// Parses the config spelling.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(Self::OpenAi),
            "openai_compatible" => Some(Self::OpenAiCompatible),
            "azure_openai" => Some(Self::AzureOpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    /// The config spelling, also used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenAiCompatible => "openai_compatible",
            Self::AzureOpenAi => "azure_openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The dialect the upstream speaks.
    pub fn wire(self) -> Wire {
        match self {
            Self::Anthropic => Wire::Anthropic,
            _ => Wire::OpenAi,
        }
    }

    fn default_api_base(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::OpenAiCompatible | Self::AzureOpenAi => None,
        }
    }
}

/// Why a model entry cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// `provider` names nothing keygate knows.
    #[error("model `{model}`: unknown provider `{provider}` (built-in providers: {known})")]
    UnknownProvider {
        model: String,
        provider: String,
        known: String,
    },
    /// The provider has no default base URL.
    #[error("model `{model}`: provider `{provider}` needs `api_base`")]
    MissingApiBase {
        model: String,
        provider: &'static str,
    },
    /// `api_base` is not an http(s) URL.
    #[error("model `{model}`: api_base `{api_base}` must start with http:// or https://")]
    BadApiBase { model: String, api_base: String },
    /// A credential reference is malformed.
    #[error("model `{model}`: {source}")]
    BadReference {
        model: String,
        source: secrets::ParseRefError,
    },
    /// An extra header is not a valid HTTP header.
    #[error("model `{model}`: header `{name}` is not a valid HTTP header name/value")]
    BadHeader { model: String, name: String },
}

/// A model ready to serve.
#[derive(Debug)]
pub struct ModelRoute {
    /// What clients call it.
    pub name: String,
    /// Who serves it.
    pub provider: ProviderKind,
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
    /// `anthropic-version` to send (Anthropic only).
    pub anthropic_version: String,
    /// Extra headers for every upstream call.
    pub headers: HeaderMap,
    /// `x-{model}-authorization`: where a caller may bring its own key for this model.
    pub byok_header: Option<HeaderName>,
    /// This model's metric series.
    pub metrics: crate::telemetry::RouteMetrics,
    /// Parsed once here, not per request; `None` where the provider lacks the operation.
    chat_url: Option<reqwest::Url>,
    embeddings_url: Option<reqwest::Url>,
    messages_url: Option<reqwest::Url>,
    keys: Vec<UpstreamKey>,
    next_key: AtomicUsize,
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

fn now_ms() -> u64 {
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
    /// Validates `config` and prepares its keys (resolved on use, through the cache). A key
    /// that does not resolve does not stop the build: requests for the model get a 503 naming
    /// the reason.
    pub fn build(config: &ModelConfig, secrets: &Arc<Secrets>) -> Result<Self, RouteError> {
        let model = config.name.clone();
        let provider =
            ProviderKind::parse(&config.provider).ok_or_else(|| RouteError::UnknownProvider {
                model: model.clone(),
                provider: config.provider.clone(),
                known: ProviderKind::NAMES.join(", "),
            })?;
        let base = match config.api_base.as_deref().or(provider.default_api_base()) {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => {
                return Err(RouteError::MissingApiBase {
                    model,
                    provider: provider.as_str(),
                })
            }
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RouteError::BadApiBase {
                model,
                api_base: base,
            });
        }
        let upstream_model = config.model.clone().unwrap_or_else(|| model.clone());
        let (chat_url, embeddings_url, messages_url) = match provider {
            ProviderKind::AzureOpenAi => {
                let version = config
                    .api_version
                    .as_deref()
                    .unwrap_or(DEFAULT_AZURE_API_VERSION);
                let deployment = format!("{base}/openai/deployments/{upstream_model}");
                (
                    format!("{deployment}/chat/completions?api-version={version}"),
                    format!("{deployment}/embeddings?api-version={version}"),
                    String::new(),
                )
            }
            ProviderKind::Anthropic => {
                (String::new(), String::new(), format!("{base}/v1/messages"))
            }
            _ => (
                format!("{base}/chat/completions"),
                format!("{base}/embeddings"),
                String::new(),
            ),
        };
        let parse = |url: String| -> Result<Option<reqwest::Url>, RouteError> {
            if url.is_empty() {
                return Ok(None);
            }
            reqwest::Url::parse(&url)
                .map(Some)
                .map_err(|_| RouteError::BadApiBase {
                    model: model.clone(),
                    api_base: base.clone(),
                })
        };
        let (chat_url, embeddings_url, messages_url) = (
            parse(chat_url)?,
            parse(embeddings_url)?,
            parse(messages_url)?,
        );
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let bad = || RouteError::BadHeader {
                model: model.clone(),
                name: name.clone(),
            };
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let header_value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.insert(header_name, header_value);
        }
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
            metrics: crate::telemetry::RouteMetrics::new(&model, provider.as_str()),
            effective_price: crate::keys::price::price_of(config.price, &upstream_model),
            byok_header: byok_header_name(&model),
            name: model,
            provider,
            upstream_model,
            byok: config.byok,
            price: config.price,
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            anthropic_version: match provider {
                ProviderKind::Anthropic => config.api_version.clone(),
                _ => None,
            }
            .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned()),
            headers,
            chat_url,
            embeddings_url,
            messages_url,
            keys,
            next_key: AtomicUsize::new(0),
        })
    }

    /// The upstream URL of `op`, or `None` when this provider does not offer it.
    pub fn url(&self, op: Op) -> Option<&reqwest::Url> {
        match op {
            Op::Chat => self.chat_url.as_ref(),
            Op::Embeddings => self.embeddings_url.as_ref(),
            Op::Messages => self.messages_url.as_ref(),
        }
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
