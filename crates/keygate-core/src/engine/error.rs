//! The engine's error type: Vault's `{"errors": [...]}` envelope and status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ErrorReport;
use crate::store::StoreError;

/// What went wrong with an engine request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No token, or not the admin key.
    #[error("permission denied")]
    PermissionDenied,
    /// Bad input.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing at this path (Vault answers an empty `errors` list).
    #[error("")]
    NotFound,
    /// The path does not exist on this engine.
    #[error("unsupported path")]
    UnsupportedPath,
    /// The method is not supported on this path.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// The store failed.
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl EngineError {
    /// The HTTP status Vault answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound | Self::UnsupportedPath => StatusCode::NOT_FOUND,
            Self::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for EngineError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = self.to_string();
        let errors: Vec<&str> = if message.is_empty() {
            vec![]
        } else {
            vec![message.as_str()]
        };
        let mut response = (status, Json(json!({ "errors": errors }))).into_response();
        let report = match &self {
            Self::Store(err) => err.to_string(),
            _ => message.clone(),
        };
        response
            .extensions_mut()
            .insert(ErrorReport { message: report });
        response
    }
}
