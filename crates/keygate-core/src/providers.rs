//! Upstream providers: how a configured model is reached, how requests and responses are sent
//! and relayed, and the translation between the OpenAI and Anthropic dialects.

mod coalesce;
mod failover;
mod relay;
mod route;
pub mod sse;
pub mod translate;
mod upstream;
mod usage_tap;

pub use failover::{send_with_keys, Call};
pub use relay::{json_response, relay_json, relay_sse, relay_translated, StreamTranslator};
pub use route::{byok_header_name, ModelRoute, Op, ProviderKind, RouteError, UpstreamKey, Wire};
pub use upstream::{send, upstream_error, UpstreamRequest};
pub use usage_tap::UsageTap;
