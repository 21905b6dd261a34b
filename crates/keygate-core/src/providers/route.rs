//! A configured model made ready to serve: its provider, upstream URLs, headers and keys.
//!
//! Built once per config load (start-up and SIGHUP), so the request path only reads it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;

use crate::config::{Byok, Env, ModelConfig, Price, SecretsConfig};
use crate::secrets::{self, CredentialRef};

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
    /// Longest an upstream call may take.
    pub timeout: Duration,
    /// `anthropic-version` to send (Anthropic only).
    pub anthropic_version: String,
    /// Extra headers for every upstream call.
    pub headers: HeaderMap,
    chat_url: String,
    embeddings_url: String,
    messages_url: String,
    keys: Vec<Result<SecretString, String>>,
    next_key: AtomicUsize,
}

impl ModelRoute {
    /// Validates `config` and resolves its keys. A key that does not resolve does not stop
    /// the build: requests for the model get a 503 naming the reason, and start-up warns.
    pub fn build(
        config: &ModelConfig,
        secrets_config: &SecretsConfig,
        env: &dyn Env,
    ) -> Result<Self, RouteError> {
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
                let resolved = secrets::resolve(&reference, &secrets_config.sources, env)
                    .map_err(|err| err.to_string());
                if let Err(reason) = &resolved {
                    tracing::warn!(model = %model, reason = %reason, "upstream key does not resolve");
                }
                keys.push(resolved);
            }
        }
        Ok(Self {
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
    pub fn url(&self, op: Op) -> Option<&str> {
        let url = match op {
            Op::Chat => &self.chat_url,
            Op::Embeddings => &self.embeddings_url,
            Op::Messages => &self.messages_url,
        };
        (!url.is_empty()).then_some(url.as_str())
    }

    /// The next configured key, in turn. `Ok(None)` when the model has no key configured
    /// (e.g. a local vLLM); `Err(reason)` when one is configured but did not resolve.
    pub fn next_key(&self) -> Result<Option<&SecretString>, &str> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let start = self.next_key.fetch_add(1, Ordering::Relaxed);
        let count = self.keys.len();
        let mut first_error = None;
        for offset in 0..count {
            match &self.keys[(start + offset) % count] {
                Ok(key) => return Ok(Some(key)),
                Err(reason) => {
                    first_error.get_or_insert(reason.as_str());
                }
            }
        }
        Err(first_error.unwrap_or("no key"))
    }
}
