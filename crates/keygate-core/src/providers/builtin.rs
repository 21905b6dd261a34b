//! keygate's own backends (`openai`, `openai_compatible`, `azure_openai`, `anthropic`): plain
//! HTTP upstreams, registered through the same plugin registry as any other backend.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use keygate_plugin_api::{
    Backend, BackendConfig, BackendContext, BackendError, BackendPluginDefinition, BackendRequest,
    BackendResponse, BoxFuture, CaptureClient, ExposeSecret, PluginCompatibility, Wire,
};

/// `api-version` used for Azure OpenAI when the model sets none.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// `anthropic-version` sent when neither the caller nor the model sets one.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// The plugin name the built-in backends are registered under.
pub const BUILTIN_PLUGIN: &str = "keygate";

/// The built-in providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderKind {
    /// api.openai.com.
    OpenAi,
    /// Anything speaking OpenAI's API with a bearer key (vLLM, Ollama, Groq, ...).
    OpenAiCompatible,
    /// Azure OpenAI deployments.
    AzureOpenAi,
    /// api.anthropic.com Messages API.
    Anthropic,
}

impl ProviderKind {
    const ALL: [Self; 4] = [
        Self::OpenAi,
        Self::OpenAiCompatible,
        Self::AzureOpenAi,
        Self::Anthropic,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenAiCompatible => "openai_compatible",
            Self::AzureOpenAi => "azure_openai",
            Self::Anthropic => "anthropic",
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

/// The built-in backends' definitions, for the registry.
pub fn definitions() -> Vec<BackendPluginDefinition> {
    ProviderKind::ALL
        .into_iter()
        .map(|kind| {
            BackendPluginDefinition::new(
                kind.as_str(),
                BUILTIN_PLUGIN,
                PluginCompatibility::between(crate::VERSION, crate::VERSION),
                move |ctx: BackendContext<'_>| {
                    HttpBackend::new(kind, &ctx).map(|b| Arc::new(b) as Arc<dyn Backend>)
                },
            )
        })
        .collect()
}

/// An upstream reached over HTTP with URLs parsed once per config load.
struct HttpBackend {
    kind: ProviderKind,
    client: CaptureClient,
    /// Chat completions (OpenAI dialects) or messages (Anthropic).
    chat_url: Uri,
    embeddings_url: Option<Uri>,
    models_url: Uri,
    /// Extra configured headers plus `content-type`.
    headers: HeaderMap,
    anthropic_version: Option<HeaderValue>,
}

impl HttpBackend {
    fn new(kind: ProviderKind, ctx: &BackendContext<'_>) -> Result<Self, String> {
        let config: &BackendConfig = ctx.config;
        let base = match config.api_base.as_deref().or(kind.default_api_base()) {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => return Err(format!("provider `{}` needs `api_base`", kind.as_str())),
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "api_base `{base}` must start with http:// or https://"
            ));
        }
        let upstream = &config.upstream_model;
        let (chat, embeddings, models) = match kind {
            ProviderKind::AzureOpenAi => {
                let version = config
                    .api_version
                    .as_deref()
                    .unwrap_or(DEFAULT_AZURE_API_VERSION);
                let deployment = format!("{base}/openai/deployments/{upstream}");
                (
                    format!("{deployment}/chat/completions?api-version={version}"),
                    Some(format!("{deployment}/embeddings?api-version={version}")),
                    format!("{base}/openai/models?api-version={version}"),
                )
            }
            ProviderKind::Anthropic => (
                format!("{base}/v1/messages"),
                None,
                format!("{base}/v1/models"),
            ),
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => (
                format!("{base}/chat/completions"),
                Some(format!("{base}/embeddings")),
                format!("{base}/models"),
            ),
        };
        let parse = |url: &str| {
            url.parse::<Uri>()
                .map_err(|_| format!("api_base `{base}` does not make a valid URL"))
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("keygate/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &config.headers {
            let bad = || format!("header `{name}` is not a valid HTTP header name/value");
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let header_value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.insert(header_name, header_value);
        }
        let anthropic_version = match kind {
            ProviderKind::Anthropic => {
                let version = config
                    .api_version
                    .as_deref()
                    .unwrap_or(DEFAULT_ANTHROPIC_VERSION);
                Some(
                    HeaderValue::from_str(version)
                        .map_err(|_| format!("api_version `{version}` is not a valid header"))?,
                )
            }
            _ => None,
        };
        Ok(Self {
            kind,
            client: ctx.client.clone(),
            chat_url: parse(&chat)?,
            embeddings_url: embeddings.as_deref().map(parse).transpose()?,
            models_url: parse(&models)?,
            headers,
            anthropic_version,
        })
    }

    fn request(
        &self,
        method: Method,
        url: &Uri,
        request: &BackendRequest<'_>,
    ) -> Result<http::Request<Bytes>, BackendError> {
        let mut headers = self.headers.clone();
        for (name, value) in request.forward {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(key) = request.credential {
            let key = key.expose_secret().as_bytes();
            let (name, scheme) = match self.kind {
                ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                    (header::AUTHORIZATION, &b"Bearer "[..])
                }
                ProviderKind::AzureOpenAi => (HeaderName::from_static("api-key"), &b""[..]),
                ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), &b""[..]),
            };
            let value = [scheme, key].concat();
            let mut value = HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| {
                BackendError::InvalidRequest(
                    "the upstream key contains characters not allowed in a header".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(version) = &self.anthropic_version {
            if !headers.contains_key("anthropic-version") {
                headers.insert("anthropic-version", version.clone());
            }
        }
        let mut built = http::Request::new(request.body.clone());
        *built.method_mut() = method;
        *built.uri_mut() = url.clone();
        *built.headers_mut() = headers;
        Ok(built)
    }
}

impl Backend for HttpBackend {
    fn wire(&self) -> Wire {
        match self.kind {
            ProviderKind::Anthropic => Wire::Anthropic,
            _ => Wire::OpenAi,
        }
    }

    fn chat<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let built = self.request(Method::POST, &self.chat_url, &request)?;
            self.client.send(built, request.capture).await
        })
    }

    fn chat_stream<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let built = self.request(Method::POST, &self.chat_url, &request)?;
            self.client.send_streaming(built, request.capture).await
        })
    }

    fn embeddings<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let url = self
                .embeddings_url
                .as_ref()
                .ok_or(BackendError::Unsupported("embeddings"))?;
            let built = self.request(Method::POST, url, &request)?;
            self.client.send(built, request.capture).await
        })
    }

    fn models<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let built = self.request(Method::GET, &self.models_url, &request)?;
            self.client.send(built, request.capture).await
        })
    }
}
