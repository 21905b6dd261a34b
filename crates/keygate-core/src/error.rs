//! The inference boundary's error type and its two envelopes.
//!
//! Every failure of an inference request is a [`GatewayError`]; [`ApiError`] pairs it with the
//! caller's [`Dialect`] and writes OpenAI's `{"error":{message,type,param,code}}` or Anthropic's
//! `{"type":"error","error":{type,message}}`. Nothing is logged here: the response carries an
//! [`ErrorReport`] extension that the logging middleware reads.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::providers::translate::{self, TranslateError};

/// Which API the caller speaks, and so which error envelope it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI (and everything OpenAI-compatible).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

/// What went wrong with an inference request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No key, or a key keygate does not know.
    #[error("Invalid API key. Send the admin key or a virtual key as `Authorization: Bearer <key>` or `x-api-key`.")]
    Unauthorized,
    /// The body is not valid JSON.
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    /// A required field is missing or has the wrong type.
    #[error("{0}")]
    InvalidRequest(String),
    /// The `model` names no configured model.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    UnknownModel(String),
    /// The body exceeds `limits.max_body_bytes`.
    #[error("Request body too large: the limit is {limit} bytes.")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body is not JSON by its content type.
    #[error("Unsupported Content-Type `{0}`: send `Content-Type: application/json`.")]
    UnsupportedMediaType(String),
    /// The model's provider cannot do what was asked (e.g. embeddings on Anthropic).
    #[error("The model `{model}` does not support {operation}.")]
    UnsupportedOperation {
        /// The model asked for.
        model: String,
        /// What it cannot do.
        operation: &'static str,
    },
    /// The request cannot be expressed in the upstream's API.
    #[error("{0}")]
    Translate(#[from] TranslateError),
    /// No route for this path.
    #[error("Unknown request URL: {method} {path}.")]
    NotFound {
        /// The HTTP method.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The route exists but not for this method.
    #[error("Method {method} is not allowed on {path}.")]
    MethodNotAllowed {
        /// The HTTP method.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The upstream did not answer in time.
    #[error("The upstream provider for `{0}` did not respond in time.")]
    UpstreamTimeout(String),
    /// The upstream could not be reached or broke the connection.
    #[error("The upstream provider for `{model}` could not be reached: {reason}")]
    UpstreamUnavailable {
        /// The model asked for.
        model: String,
        /// Connection-level reason, without URLs' credentials.
        reason: String,
    },
    /// The upstream answered with an error; its status is kept.
    #[error("{message}")]
    Upstream {
        /// The upstream's status.
        status: StatusCode,
        /// Its error message (secrets scrubbed).
        message: String,
        /// Its body, when already in the caller's dialect: passed through as is.
        passthrough: Option<Bytes>,
        /// Its `retry-after` header, kept for 429 and 503.
        retry_after: Option<HeaderValue>,
    },
    /// The model's upstream key could not be resolved.
    #[error("No upstream credential is available for model `{model}`: {reason}")]
    NoCredential {
        /// The model asked for.
        model: String,
        /// Why it did not resolve (never the key).
        reason: String,
    },
    /// The virtual key has expired.
    #[error("Authentication Error - Expired Key: this key has expired; ask for a new one or extend it with /key/update.")]
    KeyExpired,
    /// The virtual key is blocked.
    #[error("Authentication Error - this key is blocked.")]
    KeyBlocked,
    /// The virtual key may not call this model.
    #[error("This key is not allowed to access model `{0}`.")]
    ModelNotAllowed(String),
    /// The key's budget is spent.
    #[error("Budget has been exceeded! Current cost: {spend}, Max budget: {max_budget}")]
    BudgetExceeded {
        /// USD spent and reserved.
        spend: f64,
        /// The key's cap.
        max_budget: f64,
    },
    /// A per-key rate limit is reached.
    #[error("Rate limit reached for this key: {what}. Try again in {retry_after}s.")]
    RateLimited {
        /// Which limit.
        what: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The key store cannot be reached.
    #[error("The key store is unavailable: {0}")]
    StoreUnavailable(String),
    /// The cluster-wide budget and rate counters cannot be reached: a key with limits is
    /// refused rather than let past them.
    #[error("This key's budget and rate limits cannot be checked now ({0}); the request was not sent. Retry shortly.")]
    LimiterUnavailable(String),
    /// The model does not take keys from callers (`byok: deny`).
    #[error("The model `{model}` does not accept a caller's own key: remove the `{header}` header (byok: deny).")]
    ByokDenied {
        /// The model asked for.
        model: String,
        /// The header that was sent.
        header: String,
    },
    /// The model needs the caller's own key (`byok: require`) and none was sent.
    #[error("The model `{model}` requires your own upstream key in the `{header}` header (byok: require).")]
    ByokRequired {
        /// The model asked for.
        model: String,
        /// The header to send.
        header: String,
    },
    /// The key in an `X-{Model}-Authorization` header cannot be sent upstream.
    #[error("The `{header}` header does not hold a usable key: send `Bearer <key>` or the bare key, printable ASCII only.")]
    ByokInvalid {
        /// The header that was sent.
        header: String,
    },
    /// A bug or an unexpected state inside keygate.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::InvalidJson(_)
            | Self::InvalidRequest(_)
            | Self::UnsupportedOperation { .. }
            | Self::Translate(_)
            | Self::ByokDenied { .. }
            | Self::ByokInvalid { .. } => StatusCode::BAD_REQUEST,
            Self::ByokRequired { .. } | Self::KeyExpired | Self::KeyBlocked => {
                StatusCode::UNAUTHORIZED
            }
            Self::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::BudgetExceeded { .. } => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreUnavailable(_) | Self::LimiterUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UnknownModel(_) | Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            Self::Upstream { status, .. } => *status,
            Self::NoCredential { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `code` field for this error.
    fn openai_code(&self) -> Option<&'static str> {
        match self {
            Self::Unauthorized | Self::KeyExpired | Self::KeyBlocked => Some("invalid_api_key"),
            Self::BudgetExceeded { .. } => Some("budget_exceeded"),
            Self::RateLimited { .. } => Some("rate_limit_exceeded"),
            Self::LimiterUnavailable(_) => Some("limiter_unavailable"),
            Self::ModelNotAllowed(_) => Some("model_not_allowed"),
            Self::UnknownModel(_) => Some("model_not_found"),
            Self::BodyTooLarge { .. } => Some("request_too_large"),
            Self::UpstreamTimeout(_) => Some("upstream_timeout"),
            Self::Upstream { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                Some("rate_limit_exceeded")
            }
            _ => None,
        }
    }

    /// OpenAI's `param` field for this error.
    fn openai_param(&self) -> Option<&'static str> {
        match self {
            Self::UnknownModel(_) => Some("model"),
            _ => None,
        }
    }

    /// Pairs the error with the caller's dialect.
    pub fn in_dialect(self, dialect: Dialect) -> ApiError {
        ApiError {
            dialect,
            error: self,
        }
    }
}

/// A [`GatewayError`] ready to be written in the caller's dialect.
#[derive(Debug)]
pub struct ApiError {
    /// The caller's dialect.
    pub dialect: Dialect,
    /// What went wrong.
    pub error: GatewayError,
}

/// Attached to error responses so the logging middleware can report them.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// The message the client read.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.error.status_code();
        let message = self.error.to_string();
        let body = match (&self.error, self.dialect) {
            (
                GatewayError::Upstream {
                    passthrough: Some(raw),
                    ..
                },
                _,
            ) => raw.clone(),
            (_, Dialect::OpenAi) => {
                let mut body = translate::openai_error_body(
                    status.as_u16(),
                    &message,
                    self.error.openai_code(),
                );
                if let Some(param) = self.error.openai_param() {
                    body["error"]["param"] = json!(param);
                }
                Bytes::from(body.to_string())
            }
            (_, Dialect::Anthropic) => {
                Bytes::from(translate::anthropic_error_body(status.as_u16(), &message).to_string())
            }
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let GatewayError::Upstream {
            retry_after: Some(value),
            ..
        } = &self.error
        {
            headers.insert(header::RETRY_AFTER, value.clone());
        } else if let GatewayError::RateLimited { retry_after, .. } = &self.error {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(ErrorReport { message });
        response
    }
}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
