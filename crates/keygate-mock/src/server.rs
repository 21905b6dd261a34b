//! The router and what every API route shares: recording, the credential check, body parsing,
//! the `error` / `timeout` / `garbage` directives; plus the small routes (models, health, the
//! `/mock/requests` control endpoint and the 404/405 fallbacks).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::directives::Directives;
use crate::errors::{azure_not_found, error, openai_error, request_id, Dialect};
use crate::record::{credential, query_param, Record};
use crate::state::MockState;
use crate::{anthropic, embeddings, openai, sse};

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 << 20;

/// How long the `timeout` directive waits before answering.
const TIMEOUT_SLEEP: Duration = Duration::from_secs(3600);

/// Models listed by `GET /v1/models`: id and display name.
const MODELS: [(&str, &str); 6] = [
    ("mock", "Mock"),
    ("mock-claude", "Mock Claude"),
    ("gpt-4o", "GPT-4o"),
    ("gpt-4o-mini", "GPT-4o mini"),
    ("text-embedding-3-small", "Text Embedding 3 Small"),
    ("claude-3-5-haiku-latest", "Claude Haiku 3.5"),
];

/// The mock's routes over `state`.
pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(embeddings::openai))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(anthropic::messages))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai::azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(embeddings::azure),
        )
        .route("/mock/requests", get(list_records).delete(clear_records))
        .route("/mock/stats", get(stats))
        .route("/health", get(|| async { "ok" }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// `GET /mock/stats`: `{"open_streams": N}`.
async fn stats(State(state): State<MockState>) -> Response {
    let body = serde_json::json!({"open_streams": state.open_streams()});
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Records a request, then checks Azure's `api-version`, the credential and the JSON body (an
/// object, when `body` is given). Returns the sequence number and the body (`null` if none).
#[allow(
    clippy::result_large_err,
    reason = "the rejection is sent as is; boxing it would only add an allocation"
)]
pub(crate) fn admit(
    state: &MockState,
    dialect: Dialect,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    model_override: Option<&str>,
) -> Result<(u64, Value), Response> {
    let parsed = body.map(serde_json::from_slice::<Value>);
    let seq = state.next_seq();
    if state.config().record {
        let json = parsed.as_ref().and_then(|p| p.as_ref().ok());
        state.push(Record::build(
            seq,
            method,
            uri,
            headers,
            json,
            model_override,
        ));
    }
    if dialect == Dialect::Azure && query_param(uri.query(), "api-version").is_none() {
        return Err(azure_not_found());
    }
    let unauthorized = |message: &str| error(dialect, StatusCode::UNAUTHORIZED, message, seq);
    match credential(headers) {
        None => return Err(unauthorized("No API key provided (mock)")),
        Some((key, _)) => {
            if let Some(required) = &state.config().require_key {
                if key != required {
                    return Err(unauthorized("Incorrect API key provided (mock)"));
                }
            }
        }
    }
    let bad = |message: &str| error(dialect, StatusCode::BAD_REQUEST, message, seq);
    match parsed {
        None => Ok((seq, Value::Null)),
        Some(Ok(value @ Value::Object(_))) => Ok((seq, value)),
        Some(Ok(_)) => Err(bad("The request body must be a JSON object")),
        Some(Err(err)) => Err(bad(&format!("Invalid JSON body: {err}"))),
    }
}

/// Applies the `timeout`, `error` and `garbage` directives: the response to send instead of a
/// normal reply, if any.
pub(crate) async fn preempt(
    state: &MockState,
    dialect: Dialect,
    directives: &Directives,
    seq: u64,
    stream: bool,
) -> Option<Response> {
    if directives.timeout && !state.sleep(TIMEOUT_SLEEP).await {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        return Some(error(dialect, status, "The mock is shutting down", seq));
    }
    if let Some(status) = directives.error.and_then(|s| StatusCode::from_u16(s).ok()) {
        let message = format!("Mock error {} requested by the model", status.as_u16());
        return Some(error(dialect, status, &message, seq));
    }
    if directives.garbage {
        return Some(match (stream, dialect) {
            (true, Dialect::Anthropic) => sse::fixed("event: message_start\ndata: {not json\n\n"),
            (true, _) => sse::fixed("data: {\"id\": not json\n\n"),
            (false, _) => json_response(StatusCode::OK, b"{\"id\": this is not json".to_vec()),
        });
    }
    None
}

/// The number of pieces and the streaming delay for a request.
pub(crate) fn shape(state: &MockState, directives: &Directives) -> (usize, Duration) {
    let config = state.config();
    let pieces = directives.chunks.unwrap_or(config.chunks);
    let delay = directives.delay_ms.unwrap_or(config.chunk_delay_ms);
    (pieces, Duration::from_millis(delay))
}

/// `GET /v1/models`: OpenAI's list, or Anthropic's when an `anthropic-version` header is present.
async fn models(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let anthropic = headers.contains_key("anthropic-version");
    let dialect = if anthropic {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let seq = match admit(&state, dialect, &method, &uri, &headers, None, None) {
        Ok((seq, _)) => seq,
        Err(response) => return response,
    };
    let body = if anthropic {
        let data: Vec<Value> = MODELS
            .iter()
            .map(|(id, name)| {
                json!({"type": "model", "id": id, "display_name": name,
                       "created_at": "2024-10-22T00:00:00Z"})
            })
            .collect();
        let first = MODELS.first().map(|m| m.0);
        let last = MODELS.last().map(|m| m.0);
        json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
    } else {
        let data: Vec<Value> = MODELS
            .iter()
            .map(|(id, _)| {
                json!({"id": id, "object": "model", "created": 1_700_000_000u64,
                       "owned_by": "keygate-mock"})
            })
            .collect();
        json!({"object": "list", "data": data})
    };
    let mut response = json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    if anthropic {
        response.headers_mut().insert("request-id", request_id(seq));
    }
    response
}

async fn list_records(State(state): State<MockState>) -> Json<Vec<Record>> {
    Json(state.records())
}

async fn clear_records(State(state): State<MockState>) -> StatusCode {
    state.clear();
    StatusCode::NO_CONTENT
}

/// Unknown route: recorded, then a 404 in OpenAI's envelope.
async fn not_found(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let seq = state.next_seq();
    if state.config().record {
        state.push(Record::build(seq, &method, &uri, &headers, None, None));
    }
    let message = format!("Invalid URL ({method} {})", uri.path());
    openai_error(StatusCode::NOT_FOUND, &message, None)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let message = format!("Method {method} not allowed on {}", uri.path());
    openai_error(StatusCode::METHOD_NOT_ALLOWED, &message, None)
}
