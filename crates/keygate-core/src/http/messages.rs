//! `POST /v1/messages`: Anthropic's Messages API, served natively by Anthropic upstreams and
//! translated for OpenAI-dialect upstreams (see [`super::chat`] for the shared path).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;

use super::chat::{serve_inference, Endpoint};
use crate::state::AppState;

/// `POST /v1/messages`.
pub async fn messages(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    serve_inference(&state, &headers, body, Endpoint::Messages).await
}
