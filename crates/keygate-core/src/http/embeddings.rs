//! `POST /v1/embeddings`: OpenAI-dialect upstreams only (Anthropic has no embeddings API).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;

use super::chat::{serve_inference, Endpoint};
use crate::state::AppState;

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    serve_inference(&state, &headers, body, Endpoint::Embeddings).await
}
