//! Upstream providers: how a configured model is reached, how requests and responses are sent
//! and relayed, and the translation between the OpenAI and Anthropic dialects.

mod relay;
mod route;
pub mod sse;
pub mod translate;
mod upstream;

pub use relay::{json_response, relay_json, relay_sse, relay_translated, StreamTranslator};
pub use route::{ModelRoute, Op, ProviderKind, RouteError, Wire};
pub use upstream::{send, upstream_error, UpstreamRequest};
