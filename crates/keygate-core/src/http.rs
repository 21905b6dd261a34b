//! The HTTP surface: routes, request-body reading, and the logging of failed requests.

pub mod body;
mod chat;
mod keys;
mod models;
mod ops;

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::future::BoxFuture;
use http::{Method, Uri};
use tower::{Service, ServiceExt};

use crate::engine;
use crate::error::{Dialect, ErrorReport, GatewayError};
use crate::state::AppState;
use chat::Endpoint;

/// The inference routes (all `POST`), served by [`chat::serve_inference`]:
/// - `/v1/chat/completions` (and `/chat/completions`): OpenAI's Chat Completions API;
/// - `/v1/embeddings` (and `/embeddings`): OpenAI-dialect upstreams only (Anthropic has no
///   embeddings API);
/// - `/v1/messages`: Anthropic's Messages API, served natively by Anthropic upstreams and
///   translated for OpenAI-dialect upstreams.
const INFERENCE: [(&str, Endpoint); 5] = [
    ("/v1/chat/completions", Endpoint::Chat),
    ("/chat/completions", Endpoint::Chat),
    ("/v1/embeddings", Endpoint::Embeddings),
    ("/embeddings", Endpoint::Embeddings),
    ("/v1/messages", Endpoint::Messages),
];

/// Everything keygate serves, ready to serve: a [`Gateway`].
pub fn router(state: AppState) -> Gateway {
    Gateway {
        router: routes(state.clone()),
        state,
    }
}

/// The service keygate serves. A `POST` to an inference route goes straight to its handler:
/// those are the requests whose cost counts, and the router's matching, extractors and boxed
/// layers cost more per request than everything between the socket and the handler. Every
/// other request goes through the router, which also has the inference routes, so that their
/// other methods are answered 405. Failed requests are logged either way.
#[derive(Clone)]
pub struct Gateway {
    state: AppState,
    router: Router,
}

impl Gateway {
    /// The inference endpoint `request` is for, if it is one.
    fn inference(request: &Request) -> Option<Endpoint> {
        if request.method() != Method::POST {
            return None;
        }
        let path = request.uri().path();
        INFERENCE
            .iter()
            .find(|(route, _)| *route == path)
            .map(|(_, endpoint)| *endpoint)
    }
}

impl Service<Request> for Gateway {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let endpoint = Self::inference(&request);
        let (state, router) = (self.state.clone(), self.router.clone());
        Box::pin(async move {
            let (method, uri) = (request.method().clone(), request.uri().clone());
            let response = match endpoint {
                Some(endpoint) => chat::serve_inference(&state, request, endpoint, started).await,
                None => {
                    let Ok(response) = router.oneshot(request).await;
                    response
                }
            };
            log_outcome(&method, &uri, started, &response);
            Ok(response)
        })
    }
}

impl<L: axum::serve::Listener> Service<axum::serve::IncomingStream<'_, L>> for Gateway {
    type Response = Self;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(
        &mut self,
        _connection: axum::serve::IncomingStream<'_, L>,
    ) -> std::future::Ready<Result<Self, Infallible>> {
        std::future::ready(Ok(self.clone()))
    }
}

/// The router of every route.
fn routes(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, endpoint) in INFERENCE {
        router = router.route(
            path,
            post(
                move |State(state): State<AppState>, request: Request| async move {
                    chat::serve_inference(&state, request, endpoint, Instant::now()).await
                },
            ),
        );
    }
    router
        .route("/v1/models", get(models::list_models))
        .route("/models", get(models::list_models))
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

/// Logs a failed request (with the message the client read) and, at debug, every request.
fn log_outcome(method: &Method, uri: &Uri, started: Instant, response: &Response) {
    // Redacted only when a line is written.
    let path = || redact_path(uri.path());
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
