//! The HTTP surface: routes, request-body reading, and the logging middleware.

pub mod body;
mod chat;
mod embeddings;
mod keys;
mod messages;
mod models;
mod ops;

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use http::Method;

use crate::engine;
use crate::error::{Dialect, ErrorReport, GatewayError};
use crate::state::AppState;

/// The whole router, ready to serve.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(models::list_models))
        .route("/models", get(models::list_models))
        .route("/v1/messages", post(messages::messages))
        .route("/key/generate", post(keys::generate))
        .route("/key/update", post(keys::update))
        .route("/key/delete", post(keys::delete))
        .route("/key/info", get(keys::info))
        .route("/key/list", get(keys::list))
        .route("/key/regenerate", post(keys::regenerate))
        .route("/key/{key}/regenerate", post(keys::regenerate_key))
        .route("/v1/{mount}/roles", any(engine::http::roles))
        .route("/v1/{mount}/roles/{name}", any(engine::http::role))
        .route("/v1/{mount}/creds/{role}", any(engine::http::creds))
        .route("/v1/sys/leases/renew", any(engine::http::renew))
        .route("/v1/sys/leases/renew/{*lease_id}", any(engine::http::renew))
        .route("/v1/sys/leases/revoke", any(engine::http::revoke))
        .route(
            "/v1/sys/leases/revoke/{*lease_id}",
            any(engine::http::revoke),
        )
        .route(
            "/v1/sys/leases/revoke-prefix/{*prefix}",
            any(engine::http::revoke_prefix),
        )
        .route("/v1/sys/leases/lookup", any(engine::http::lookup))
        .route(
            "/v1/sys/leases/lookup/{*prefix}",
            any(engine::http::lookup_list),
        )
        .route("/health/live", get(ops::live))
        .route("/health/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_errors))
        .with_state(state)
}

/// Most of an unrouted request's body read before answering (see [`body::drain`]).
const DRAIN_LIMIT: usize = 1024 * 1024;

async fn not_found(method: Method, uri: http::Uri, body: axum::body::Body) -> Response {
    body::drain(body, DRAIN_LIMIT).await;
    let error = GatewayError::NotFound {
        method: method.to_string(),
        path: redact_path(uri.path()),
    };
    error.in_dialect(path_dialect(&uri)).into_response()
}

async fn method_not_allowed(method: Method, uri: http::Uri, body: axum::body::Body) -> Response {
    body::drain(body, DRAIN_LIMIT).await;
    let error = GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: redact_path(uri.path()),
    };
    error.in_dialect(path_dialect(&uri)).into_response()
}

/// `path` with every segment that may be a key (`sk-...`, or a 64-hex token id) written as
/// `*****`: `/key/{key}/regenerate` carries a key in its path, and paths are logged.
pub(crate) fn redact_path(path: &str) -> String {
    if !path.contains("sk-") && path.len() < 64 {
        return path.to_owned();
    }
    path.split('/')
        .map(|segment| {
            let hash = segment.len() == 64 && segment.bytes().all(|b| b.is_ascii_hexdigit());
            if segment.starts_with("sk-") || hash {
                "*****"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The dialect an unrouted request is answered in, by its path.
fn path_dialect(uri: &http::Uri) -> Dialect {
    if uri.path().starts_with("/v1/messages") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

/// Logs failed requests (with the message the client read) and, at debug, every request.
async fn log_errors(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Redacted only when a line is written (a copy of the URI is a reference count).
    let uri = request.uri().clone();
    let path = || redact_path(uri.path());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match response.extensions().get::<ErrorReport>() {
        Some(report) if status >= 500 => {
            tracing::warn!(%method, path = %path(), status, elapsed_ms, error = %report.message, "request failed")
        }
        Some(report) => {
            tracing::info!(%method, path = %path(), status, elapsed_ms, error = %report.message, "request refused")
        }
        None => tracing::debug!(%method, path = %path(), status, elapsed_ms, "request"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::redact_path;

    #[test]
    fn keys_in_paths_are_redacted() {
        assert_eq!(redact_path("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(
            redact_path("/key/sk-abc123/regenerate"),
            "/key/*****/regenerate"
        );
        let hash = "a".repeat(64);
        assert_eq!(
            redact_path(&format!("/key/{hash}/regenerate")),
            "/key/*****/regenerate"
        );
    }
}
