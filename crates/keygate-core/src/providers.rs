//! Upstream providers: how a configured model is reached, how requests and responses are sent
//! and relayed, and the translation between the OpenAI and Anthropic dialects.

pub mod builtin;
mod coalesce;
mod failover;
mod idle;
mod relay;
mod route;
pub mod routing;
pub mod sse;
pub mod translate;
mod upstream;
mod usage_tap;

pub use failover::{send_with_keys, Call};
pub use keygate_plugin_api::Wire;
pub use relay::{
    answer_usage, json_response, relay_json, relay_sse, relay_translated, NotJson, StreamTranslator,
};
pub use route::{byok_header_name, ModelRoute, Op, RouteError, UpstreamKey, DEFAULT_TIMEOUT};
pub use routing::{Attempts, Deployment, ModelGroup, Routing, RoutingError};
pub use upstream::{backend_error, send, upstream_error, UpstreamRequest};
pub use usage_tap::UsageTap;
