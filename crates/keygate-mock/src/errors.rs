//! Error envelopes in each dialect: OpenAI's `{"error":{...}}`, Azure's variant of it, and
//! Anthropic's `{"type":"error","error":{...}}` with its `request-id` header.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::server::json_response;

/// Which API a route speaks, for its error envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`).
    OpenAi,
    /// Azure OpenAI deployment URLs (OpenAI envelopes, `api-version` required).
    Azure,
    /// Anthropic (`/v1/messages`).
    Anthropic,
}

/// An error in `dialect`'s envelope with the default type and code for `status`.
pub(crate) fn error(dialect: Dialect, status: StatusCode, message: &str, seq: u64) -> Response {
    match dialect {
        Dialect::OpenAi | Dialect::Azure => openai_error(status, message, openai_code(status)),
        Dialect::Anthropic => anthropic_error(status, message, seq),
    }
}

/// `{"error":{"message","type","param":null,"code"}}`; 429 gets `retry-after: 1`.
pub(crate) fn openai_error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let kind = match status.as_u16() {
        400 | 401 | 404 => "invalid_request_error",
        429 => "requests",
        500 => "server_error",
        _ => "api_error",
    };
    let body = json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    with_retry_after(json_response(status, to_vec(&body)))
}

/// The default OpenAI `code` for a status.
fn openai_code(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        401 => Some("invalid_api_key"),
        404 => Some("model_not_found"),
        429 => Some("rate_limit_exceeded"),
        _ => None,
    }
}

/// Azure's answer to a deployment URL without `api-version`.
pub(crate) fn azure_not_found() -> Response {
    let body = json!({ "error": { "code": "404", "message": "Resource not found" } });
    json_response(StatusCode::NOT_FOUND, to_vec(&body))
}

/// `{"type":"error","error":{"type","message"}}` with a `request-id` header; 429 gets
/// `retry-after: 1`.
pub(crate) fn anthropic_error(status: StatusCode, message: &str, seq: u64) -> Response {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    let mut response = with_retry_after(json_response(status, to_vec(&body)));
    response.headers_mut().insert("request-id", request_id(seq));
    response
}

/// Anthropic's `request-id` header value for request `seq`.
pub(crate) fn request_id(seq: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("req_mock{seq:016}"))
        .unwrap_or_else(|_| HeaderValue::from_static("req_mock"))
}

fn with_retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn to_vec(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn openai_429_has_retry_after_and_code() {
        let response = error(Dialect::OpenAi, status(429), "slow down", 1);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let response = error(Dialect::OpenAi, status(500), "boom", 1);
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn anthropic_carries_request_id() {
        let response = error(Dialect::Anthropic, status(529), "busy", 7);
        assert_eq!(response.status(), 529);
        assert_eq!(response.headers()["request-id"], "req_mock0000000000000007");
    }
}
