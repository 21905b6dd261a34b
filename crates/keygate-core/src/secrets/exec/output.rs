//! What an exec helper printed on stdout, read as the answer to one query.
//!
//! The protocol (exit status 0 in every case; any other status is a failure):
//!
//! - `{"api_key": "sk-...", "expires_at": "2030-01-01T00:00:00Z"}`: found, good until
//!   `expires_at` (RFC 3339, optional, `null` = no expiry of its own);
//! - `{"found": false}`: the helper does not know this secret, so the chain moves on;
//! - anything else (not a JSON object, `api_key` missing, empty or not a string, an
//!   `expires_at` that is not RFC 3339): a failure whose message never quotes the output.
//!
//! Other keys are ignored, so helpers may add their own.

use keygate_plugin_api::{Lookup, SecretValue};
use secrecy::SecretString;
use serde_json::Value;

use super::rfc3339;

/// Why the output is not an answer; the text follows "exec helper `NAME` ".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutputProblem {
    /// Not UTF-8 JSON, or not an object.
    #[error("printed invalid JSON")]
    InvalidJson,
    /// No usable `api_key` and no `"found": false`.
    #[error("printed no api_key (a non-empty string)")]
    NoApiKey,
    /// `expires_at` is not an RFC 3339 timestamp.
    #[error("printed an invalid expires_at (expected RFC 3339, e.g. 2030-01-01T00:00:00Z)")]
    BadExpiry,
}

/// Reads a helper's stdout.
pub(crate) fn parse(stdout: &[u8]) -> Result<Lookup, OutputProblem> {
    let document: Value = serde_json::from_slice(stdout).map_err(|_| OutputProblem::InvalidJson)?;
    let Value::Object(mut fields) = document else {
        return Err(OutputProblem::InvalidJson);
    };
    if fields.get("found") == Some(&Value::Bool(false)) {
        return Ok(Lookup::NotFound);
    }
    let expires_at = match fields.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(rfc3339::parse(text).ok_or(OutputProblem::BadExpiry)?),
        Some(_) => return Err(OutputProblem::BadExpiry),
    };
    match fields.remove("api_key") {
        Some(Value::String(key)) if !key.is_empty() => Ok(Lookup::Found(SecretValue {
            value: SecretString::from(key),
            expires_at,
        })),
        _ => Err(OutputProblem::NoApiKey),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn api_key_with_and_without_expiry() {
        let Ok(Lookup::Found(v)) = parse(br#"{"api_key":"sk-1","extra":1}"#) else {
            panic!("expected a value");
        };
        assert_eq!((v.value.expose_secret(), v.expires_at), ("sk-1", None));
        let out = br#"{"api_key":"sk-2","expires_at":"1970-01-01T00:01:00Z"}"#;
        let Ok(Lookup::Found(v)) = parse(out) else {
            panic!("expected a value");
        };
        assert_eq!(v.expires_at, Some(UNIX_EPOCH + Duration::from_secs(60)));
        let Ok(Lookup::Found(v)) = parse(br#"{"api_key":"sk-3","expires_at":null}"#) else {
            panic!("expected a value");
        };
        assert_eq!(v.expires_at, None);
    }

    #[test]
    fn found_false_is_not_found() {
        assert!(matches!(parse(br#"{"found":false}"#), Ok(Lookup::NotFound)));
        assert!(matches!(
            parse(br#"{"found":false,"api_key":"x"}"#),
            Ok(Lookup::NotFound)
        ));
    }

    #[test]
    fn problems_never_quote_the_output() {
        let cases: [(&[u8], OutputProblem); 8] = [
            (b"sk-leak", OutputProblem::InvalidJson),
            (br#"{"api_key":"sk-leak""#, OutputProblem::InvalidJson),
            (br#"["sk-leak"]"#, OutputProblem::InvalidJson),
            (b"\xff\xfe", OutputProblem::InvalidJson),
            (br#"{"api_key":""}"#, OutputProblem::NoApiKey),
            (br#"{"api_key":null}"#, OutputProblem::NoApiKey),
            (br#"{"api_key":42,"found":true}"#, OutputProblem::NoApiKey),
            (
                br#"{"api_key":"sk-leak","expires_at":"soon"}"#,
                OutputProblem::BadExpiry,
            ),
        ];
        for (out, problem) in cases {
            let err = parse(out).unwrap_err();
            assert_eq!(err, problem, "{}", String::from_utf8_lossy(out));
            assert!(!err.to_string().contains("sk-leak"));
        }
    }
}
