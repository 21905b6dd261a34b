//! `GET /v1/models`: the configured models, in OpenAI's list shape, or in Anthropic's when the
//! caller sends `anthropic-version` (as the Anthropic SDK does).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::auth::{self, Caller};
use crate::error::Dialect;
use crate::keys::meter::allows_model;
use crate::providers::json_response;
use crate::state::AppState;

/// `GET /v1/models`.
pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let dialect = if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let live = state.live();
    let caller = match auth::authenticate(&headers, &live, &state).await {
        Ok(caller) => caller,
        Err(error) => return error.in_dialect(dialect).into_response(),
    };
    let created = started_at();
    // One entry per model name, however many deployments it has.
    let data: Vec<Value> = live
        .routing
        .groups()
        .iter()
        .map(|group| group.primary())
        .filter(|route| match &caller {
            Caller::Admin => true,
            Caller::Virtual(key) => allows_model(key, &route.name),
        })
        .map(|route| match dialect {
            Dialect::OpenAi => json!({
                "id": route.name,
                "object": "model",
                "created": created,
                "owned_by": route.provider.as_str(),
            }),
            Dialect::Anthropic => json!({
                "type": "model",
                "id": route.name,
                "display_name": route.name,
                "created_at": "1970-01-01T00:00:00Z",
            }),
        })
        .collect();
    let body = match dialect {
        Dialect::OpenAi => json!({ "object": "list", "data": data }),
        Dialect::Anthropic => {
            let first = data.first().and_then(|m| m.get("id")).cloned();
            let last = data.last().and_then(|m| m.get("id")).cloned();
            json!({ "data": data, "has_more": false, "first_id": first, "last_id": last })
        }
    };
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// The Unix time keygate started, reported as every model's `created`.
fn started_at() -> u64 {
    static AT: OnceLock<u64> = OnceLock::new();
    *AT.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}
