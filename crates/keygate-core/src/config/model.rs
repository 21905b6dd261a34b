//! One entry of `models:`: the name clients use and the upstream it routes to.
//!
//! Several entries with the same `name` are the deployments of one model group (LiteLLM's
//! `model_list` convention): each request picks one by `weight`, and fails over to the others
//! and then to the group's `fallbacks` (see [`super::RouterConfig`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, router};

/// A model clients can call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// What clients send as `"model"`. Entries sharing a name are deployments of one group.
    pub name: String,
    /// Which backend serves it: `openai`, `openai_compatible`, `azure_openai`, `anthropic`.
    pub provider: String,
    /// The upstream's model id (Azure: the deployment name). Defaults to `name`.
    #[serde(default)]
    pub model: Option<String>,
    /// Base URL in the provider SDK's own convention (OpenAI's includes `/v1`).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Credential reference(s) for the upstream key, e.g. `secret:OPENAI_API_KEY`.
    #[serde(default)]
    pub api_key: Option<CredentialSpec>,
    /// Azure's `api-version` query parameter; Anthropic's `anthropic-version` header.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Whether callers may bring their own upstream key in `X-{Model}-Authorization`.
    #[serde(default)]
    pub byok: Byok,
    /// Price per million tokens, for budgets.
    #[serde(default)]
    pub price: Option<Price>,
    /// Longest an upstream call to this deployment may wait: for the response headers, then
    /// for each body chunk (a stream may last longer as long as it keeps sending). Past it
    /// before the headers, the call counts as failed and may be retried elsewhere.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    /// Extra headers sent upstream with every request of this model.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Settings for a plugin backend, passed to its factory as they are.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Share of the group's traffic this deployment gets, relative to the other deployments of
    /// the same `name` (default 1; must be greater than 0).
    #[serde(
        default = "default_weight",
        deserialize_with = "router::positive_weight"
    )]
    pub weight: f64,
    /// Models tried in order once every deployment of this group has failed (retryable
    /// failures only). Each must name a configured model; they are the operator's routing
    /// choice, so a virtual key scoped to this model may be served by them. Given on several
    /// deployments of a group, the lists are joined in config order.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Traffic capture for this model (when `capture:` is configured): on/off and sampling.
    #[serde(default)]
    pub capture: Option<ModelCapture>,
}

/// Per-model capture settings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCapture {
    /// Whether this model's exchanges are captured at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Share of requests captured, 0.0 to 1.0; defaults to `capture.sample`.
    #[serde(default)]
    pub sample: Option<f64>,
}

fn default_true() -> bool {
    true
}

fn default_weight() -> f64 {
    1.0
}

/// One credential reference or several (several keys rotate).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CredentialSpec {
    /// A single reference.
    One(String),
    /// Several references, used in turn.
    Many(Vec<String>),
}

impl CredentialSpec {
    /// The references in order.
    pub fn refs(&self) -> Vec<&str> {
        match self {
            Self::One(one) => vec![one.as_str()],
            Self::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// Bring-your-own-key policy for `X-{Model}-Authorization` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Byok {
    /// The header is refused with 400.
    #[default]
    Deny,
    /// The header, when present and non-empty, replaces the configured key.
    Allow,
    /// The header is mandatory; a request without it gets 401.
    Require,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Price of a million input (prompt) tokens.
    pub input_per_mtok: f64,
    /// Price of a million output (completion) tokens.
    pub output_per_mtok: f64,
    /// Price of a million cached input tokens; defaults to the input price.
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
}
