//! The key API's error type and LiteLLM's two error bodies.
//!
//! LiteLLM answers a failed management call with its `ProxyException` envelope
//! `{"error":{"message","type","param","code"}}`, `code` being the HTTP status as a string and
//! `param` the string `"None"` when no field is to blame. Where LiteLLM raised a FastAPI
//! `HTTPException` with a `{"error": ...}` detail, the message it shows is that dict's Python
//! text (`{'error': 'No keys found'}`), and the type it reports depends on the route
//! (`internal_server_error`, or `auth_error` on `/key/update`); both are kept. Request
//! validation failures are FastAPI's own 422 `{"detail":[...]}`. Nothing is logged here: the
//! response carries an [`ErrorReport`] for the logging middleware.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::error::ErrorReport;
use crate::store::StoreError;

/// What went wrong with a key management request.
#[derive(Debug, thiserror::Error)]
pub enum KeyApiError {
    /// No key on the request.
    #[error("Authentication Error, No api key passed in.")]
    NoKey,
    /// An `Authorization` header without the `Bearer` scheme.
    #[error("Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.")]
    MalformedKey,
    /// The key is not the admin key (nor, on `/key/info`, a live virtual key).
    #[error("Authentication Error, Invalid proxy server token passed. Unable to find token in cache or `LiteLLM_VerificationTokenTable`")]
    InvalidKey,
    /// A virtual key called a route only the admin key may call.
    #[error("Authentication Error, only the admin key may call {0}; a virtual key may only read its own /key/info.")]
    AdminOnly(&'static str),
    /// A virtual key asked for another key's info.
    #[error("You are not allowed to access this key's info. Your role=None")]
    NotYourKey,
    /// The request does not validate (FastAPI's 422; each entry is one `detail` item).
    #[error("Request validation failed: {}", summarize(.0))]
    Validation(Vec<Value>),
    /// `max_budget` or `soft_budget` below zero.
    #[error("{field} cannot be negative. Received: {value:?}")]
    NegativeBudget {
        /// The field.
        field: &'static str,
        /// The value sent.
        value: f64,
        /// Raised by `/key/update` (whose errors LiteLLM types `auth_error`).
        update: bool,
    },
    /// `duration` or `budget_duration` outside LiteLLM's grammar (a bare number included).
    #[error("{}", duration_message(.text, .update))]
    BadDuration {
        /// What was sent.
        text: String,
        /// Raised by `/key/update`.
        update: bool,
    },
    /// A caller-chosen `key` that does not start with `sk-`.
    #[error("Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: {0}")]
    KeyFormat(String),
    /// A `new_key` (regeneration) that does not start with `sk-`.
    #[error("New key must start with 'sk-'. This is to distinguish a key hash (used by litellm for logging / internal logic) from the actual key.")]
    NewKeyFormat,
    /// `new_master_key`: the admin key comes from keygate's config and is not rotated here.
    #[error("Regenerating the admin key is not supported: change `admin_key` (or KEYGATE_ADMIN_KEY) and reload keygate.")]
    MasterKeyRotation,
    /// Another key already has this alias.
    #[error(
        "Key with alias '{0}' already exists. Unique key aliases across all keys are required."
    )]
    DuplicateAlias(String),
    /// A caller-chosen key that already exists.
    #[error("Key already exists: a key with the same hash is stored. Choose another `key`.")]
    DuplicateKey,
    /// `/key/info` of a key that does not exist.
    #[error("Key not found in database")]
    InfoNotFound,
    /// `/key/update` of a key that does not exist.
    #[error("Key not found: {0}")]
    UpdateNotFound(String),
    /// `/key/delete` matched nothing.
    #[error("No keys found")]
    NoKeysFound,
    /// `/key/regenerate` of a key that does not exist.
    #[error("Key {0} not found.")]
    RegenerateNotFound(String),
    /// `/key/regenerate` without a key in the path or the body.
    #[error("No key passed in.")]
    RegenerateNoKey,
    /// The store failed.
    #[error("Internal Server Error, {0}")]
    Store(StoreError),
}

impl From<StoreError> for KeyApiError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

fn summarize(details: &[Value]) -> String {
    details
        .iter()
        .map(|d| {
            let loc = d["loc"].as_array().map_or(String::new(), |parts| {
                parts
                    .iter()
                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(".")
            });
            format!("{loc}: {}", d["msg"].as_str().unwrap_or(""))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn duration_message(text: &str, update: &bool) -> String {
    let grammar =
        "use a whole number and a unit, one of s, m, h, d, w, mo (e.g. 30s, 12h, 30d, 1mo)";
    let lead = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        format!("Unsupported duration unit, passed duration: {text}")
    } else {
        format!("Invalid duration format, passed duration: {text:?}")
    };
    let prefix = if *update {
        "Authentication Error, "
    } else {
        ""
    };
    format!("{prefix}{lead}: {grammar}")
}

impl KeyApiError {
    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NoKey | Self::MalformedKey | Self::InvalidKey | Self::AdminOnly(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::NotYourKey => StatusCode::FORBIDDEN,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NegativeBudget { .. }
            | Self::BadDuration { .. }
            | Self::KeyFormat(_)
            | Self::NewKeyFormat
            | Self::MasterKeyRotation
            | Self::DuplicateAlias(_)
            | Self::DuplicateKey
            | Self::RegenerateNoKey => StatusCode::BAD_REQUEST,
            Self::InfoNotFound
            | Self::UpdateNotFound(_)
            | Self::NoKeysFound
            | Self::RegenerateNotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// LiteLLM's `type` and `param` for this error.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::NoKey | Self::MalformedKey | Self::InvalidKey | Self::AdminOnly(_) => {
                ("auth_error", "None")
            }
            Self::NegativeBudget { update: true, .. }
            | Self::BadDuration { update: true, .. }
            | Self::UpdateNotFound(_) => ("auth_error", "None"),
            Self::DuplicateAlias(_) => ("bad_request_error", "key_alias"),
            Self::DuplicateKey => ("bad_request_error", "key"),
            Self::MasterKeyRotation => ("bad_request_error", "new_master_key"),
            Self::InfoNotFound => ("not_found_error", "key"),
            _ => ("internal_server_error", "None"),
        }
    }

    /// The message as LiteLLM shows it: the Python text of an `HTTPException`'s
    /// `{"error": ...}` detail where LiteLLM raised one, the plain message otherwise.
    pub fn litellm_message(&self) -> String {
        let text = self.to_string();
        match self {
            Self::NegativeBudget { .. }
            | Self::KeyFormat(_)
            | Self::NewKeyFormat
            | Self::UpdateNotFound(_)
            | Self::NoKeysFound
            | Self::RegenerateNotFound(_)
            | Self::RegenerateNoKey => format!("{{'error': {}}}", py_str(&text)),
            _ => text,
        }
    }
}

/// Python's `repr` of a string: single quotes unless the text holds one and no double quote.
pub fn py_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

impl IntoResponse for KeyApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = self.litellm_message();
        let body = match &self {
            Self::Validation(details) => json!({ "detail": details }),
            _ => {
                let (kind, param) = self.kind();
                json!({ "error": {
                    "message": message,
                    "type": kind,
                    "param": param,
                    "code": status.as_u16().to_string(),
                }})
            }
        };
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(ErrorReport {
            message: self.to_string(),
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_text_of_strings() {
        assert_eq!(py_str("No keys found"), "'No keys found'");
        assert_eq!(py_str("must start with 'sk-'"), "\"must start with 'sk-'\"");
        assert_eq!(py_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(
            KeyApiError::NoKeysFound.litellm_message(),
            "{'error': 'No keys found'}"
        );
        assert_eq!(
            KeyApiError::KeyFormat("abcd****wxyz".into()).litellm_message(),
            "{'error': \"Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: abcd****wxyz\"}"
        );
    }

    #[test]
    fn duration_messages_follow_litellm() {
        let bare = KeyApiError::BadDuration {
            text: "30".into(),
            update: false,
        };
        assert!(bare
            .to_string()
            .starts_with("Unsupported duration unit, passed duration: 30"));
        let update = KeyApiError::BadDuration {
            text: "1y".into(),
            update: true,
        };
        assert!(update
            .to_string()
            .starts_with("Authentication Error, Invalid duration format"));
        assert_eq!(update.kind(), ("auth_error", "None"));
        assert_eq!(update.status_code(), StatusCode::BAD_REQUEST);
    }
}
