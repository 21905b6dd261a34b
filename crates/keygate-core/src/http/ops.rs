//! Operations endpoints: liveness, readiness (the store answers) and Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::json;

use crate::state::AppState;

/// `GET /health/live`: the process serves HTTP.
pub async fn live(State(state): State<AppState>) -> Response {
    let body = json!({ "status": "ok", "uptime_seconds": state.started().elapsed().as_secs() });
    axum::Json(body).into_response()
}

/// `GET /health/ready`: the store answers within two seconds and models are loaded.
pub async fn ready(State(state): State<AppState>) -> Response {
    let live = state.live();
    let store = tokio::time::timeout(Duration::from_secs(2), state.store().ping()).await;
    let (status, store_status) = match store {
        Ok(Ok(())) => (StatusCode::OK, "ok".to_owned()),
        Ok(Err(err)) => (StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed out".to_owned()),
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
        "store": { "kind": state.store().kind(), "status": store_status },
        "models": live.routing.groups().len(),
    });
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}
