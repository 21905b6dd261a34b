//! Why a Vault lookup failed. Every message is safe to log and to show a caller: it holds
//! addresses, paths, status codes and Vault's own `errors` texts, never a token, a secret id
//! or a secret value (nor a raw response body or a JSON parser message, which can quote one).

use keygate_plugin_api::SourceError;

/// A failed request to Vault / OpenBao.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VaultError {
    /// The server could not be reached (refused, reset, DNS, TLS).
    #[error("connection failed to {address}")]
    Connect {
        /// The configured address.
        address: String,
    },
    /// The server did not answer in time.
    #[error("request to {address} timed out after {secs}s")]
    Timeout {
        /// The configured address.
        address: String,
        /// The per-request timeout.
        secs: u64,
    },
    /// The token may not read this path (HTTP 403).
    #[error("permission denied reading `{path}`{errors}")]
    PermissionDenied {
        /// The API path, e.g. `secret/data/openai`.
        path: String,
        /// Vault's `errors`, preformatted as `: a; b` (or empty).
        errors: String,
    },
    /// Any other unexpected status: sealed (503), standby, rate limited, server errors.
    #[error("`{path}`: HTTP {status}{errors}")]
    Status {
        /// The API path.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// Vault's `errors`, preformatted as `: a; b` (or empty).
        errors: String,
    },
    /// The AppRole login was refused.
    #[error("approle login at `auth/{mount}` failed: HTTP {status}{errors}")]
    Login {
        /// The auth mount.
        mount: String,
        /// The HTTP status code.
        status: u16,
        /// Vault's `errors`, preformatted as `: a; b` (or empty).
        errors: String,
    },
    /// A 200 whose body is not the documented shape.
    #[error("unexpected response from `{path}`: {what}")]
    InvalidResponse {
        /// The API path.
        path: String,
        /// What was wrong, in fixed words (never the body).
        what: &'static str,
    },
    /// The requested field exists but holds a number, object, list or boolean.
    #[error("field `{field}` of `{path}` is not a string")]
    NotAString {
        /// The API path.
        path: String,
        /// The field asked for.
        field: String,
    },
    /// The secret name cannot be a KV path (empty, `.` or `..` segments).
    #[error("`{name}` is not a valid secret path")]
    InvalidPath {
        /// The name as asked.
        name: String,
    },
    /// The token holds characters an HTTP header cannot carry.
    #[error("the vault token is not a valid HTTP header value")]
    InvalidToken,
}

impl From<VaultError> for SourceError {
    fn from(err: VaultError) -> Self {
        SourceError::new(err.to_string())
    }
}

/// Vault's `{"errors": [...]}` as `: a; b`, or an empty string when there are none or the body
/// is not that shape. Long texts are cut: they are for humans, not for parsing.
pub(crate) fn format_errors(body: &[u8]) -> String {
    const MAX: usize = 300;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let texts: Vec<&str> = value
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|list| list.iter().filter_map(|e| e.as_str()).collect())
        .unwrap_or_default();
    let joined = texts
        .iter()
        .flat_map(|t| unwrap_multierror(t))
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        return joined;
    }
    let cut: String = joined.chars().take(MAX).collect();
    if cut.len() < joined.len() {
        format!(": {cut}...")
    } else {
        format!(": {cut}")
    }
}

/// One error text as single-line items: Vault's `"1 error occurred:\n\t* permission denied\n\n"`
/// becomes `["permission denied"]`; other texts have their whitespace runs collapsed.
fn unwrap_multierror(text: &str) -> Vec<String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let items: Vec<String> = if first.ends_with("occurred:") {
        lines
            .map(|l| l.trim_start_matches('*').trim().to_owned())
            .collect()
    } else {
        vec![text.split_whitespace().collect::<Vec<_>>().join(" ")]
    };
    items.into_iter().filter(|i| !i.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_joined_and_absent_ones_are_empty() {
        assert_eq!(
            format_errors(br#"{"errors":["permission denied"]}"#),
            ": permission denied"
        );
        assert_eq!(format_errors(br#"{"errors":["a","b"]}"#), ": a; b");
        assert_eq!(format_errors(br#"{"errors":[]}"#), "");
        let multi = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert_eq!(format_errors(multi), ": permission denied");
        let two = br#"{"errors":["2 errors occurred:\n\t* a\n\t* b\n\n", "c\n d"]}"#;
        assert_eq!(format_errors(two), ": a; b; c d");
        assert_eq!(format_errors(b"not json"), "");
        let long = format!(r#"{{"errors":["{}"]}}"#, "x".repeat(1000));
        assert!(format_errors(long.as_bytes()).len() < 310);
    }
}
