//! The KV engine's read API, v1 and v2: which URL holds a secret and what an answer means.
//!
//! - v2: `GET /v1/{mount}/data/{path}` answers `{"data": {"data": {...}, "metadata": {...}}}`.
//!   A latest version that is deleted or destroyed answers `data.data: null` (404 on current
//!   servers, 200 on some older ones): both mean *not found*.
//! - v1: `GET /v1/{mount}/{path}` answers `{"data": {...}}`.
//!
//! A secret without the requested field, or whose field is an empty string, is *not found*, so
//! the chain moves on; a field holding anything but a string is an error.

use keygate_plugin_api::{Lookup, SecretValue};
use reqwest::StatusCode;
use serde_json::Value;

use super::client::{encode_path, Reply};
use super::error::{format_errors, VaultError};

/// The KV secrets engine version of the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KvVersion {
    /// KV v1: unversioned.
    V1,
    /// KV v2: versioned, data under `data/`.
    V2,
}

impl KvVersion {
    /// From the config's `kv_version`.
    pub fn from_number(n: u8) -> Result<Self, String> {
        match n {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            other => Err(format!("kv_version must be 1 or 2, not {other}")),
        }
    }

    /// `v1` / `v2`, for descriptions.
    pub fn label(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    /// The API path (after `/v1/`) that reads `path` under `mount`. `path` must have been
    /// checked with [`secret_path`].
    pub fn read_path(self, mount: &str, path: &[&str]) -> String {
        let mount = mount.split('/').filter(|s| !s.is_empty());
        match self {
            Self::V1 => encode_path(mount.chain(path.iter().copied())),
            Self::V2 => encode_path(mount.chain(["data"]).chain(path.iter().copied())),
        }
    }
}

/// The segments of `{prefix}/{name}`, empty segments dropped; `.` and `..` are refused so a
/// name cannot leave the mount.
pub(crate) fn secret_path<'a>(
    prefix: Option<&'a str>,
    name: &'a str,
) -> Result<Vec<&'a str>, VaultError> {
    let segments: Vec<&str> = prefix
        .into_iter()
        .chain([name])
        .flat_map(|part| part.split('/'))
        .filter(|s| !s.is_empty())
        .collect();
    let has_name = name.split('/').any(|s| !s.is_empty());
    if !has_name || segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(VaultError::InvalidPath {
            name: name.to_owned(),
        });
    }
    Ok(segments)
}

/// What a read answered: the field's value, not found, or an error naming `api_path`.
pub(crate) fn interpret(
    version: KvVersion,
    reply: &Reply,
    api_path: &str,
    field: &str,
) -> Result<Lookup, VaultError> {
    match reply.status {
        StatusCode::OK => parse_read(version, &reply.body, api_path, field),
        StatusCode::NOT_FOUND => Ok(Lookup::NotFound),
        StatusCode::FORBIDDEN => Err(VaultError::PermissionDenied {
            path: api_path.to_owned(),
            errors: format_errors(&reply.body),
        }),
        status => Err(VaultError::Status {
            path: api_path.to_owned(),
            status: status.as_u16(),
            errors: format_errors(&reply.body),
        }),
    }
}

/// Reads `field` out of a 200 answer's body.
pub(crate) fn parse_read(
    version: KvVersion,
    body: &[u8],
    api_path: &str,
    field: &str,
) -> Result<Lookup, VaultError> {
    let invalid = |what| VaultError::InvalidResponse {
        path: api_path.to_owned(),
        what,
    };
    let document: Value = serde_json::from_slice(body).map_err(|_| invalid("not JSON"))?;
    let data = match document.get("data") {
        Some(Value::Object(data)) => data,
        _ => return Err(invalid("no `data` object")),
    };
    let secret = match version {
        KvVersion::V1 => data,
        KvVersion::V2 => match data.get("data") {
            Some(Value::Object(inner)) => inner,
            // The latest version is deleted or destroyed.
            Some(Value::Null) => return Ok(Lookup::NotFound),
            _ => return Err(invalid("no `data.data` object (is this a KV v1 mount?)")),
        },
    };
    match secret.get(field) {
        None | Some(Value::Null) => Ok(Lookup::NotFound),
        Some(Value::String(s)) if s.is_empty() => Ok(Lookup::NotFound),
        Some(Value::String(s)) => Ok(Lookup::Found(SecretValue::new(s.as_str()))),
        Some(_) => Err(VaultError::NotAString {
            path: api_path.to_owned(),
            field: field.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn found(lookup: Result<Lookup, VaultError>) -> String {
        match lookup {
            Ok(Lookup::Found(v)) => v.value.expose_secret().to_owned(),
            other => panic!("expected a value, got {other:?}"),
        }
    }

    fn not_found(lookup: Result<Lookup, VaultError>) -> bool {
        matches!(lookup, Ok(Lookup::NotFound))
    }

    const V2: &str = r#"{"request_id":"x","data":{"data":{"api_key":"sk-v2","org":"o-1","n":5},
        "metadata":{"deletion_time":"","destroyed":false,"version":3}}}"#;

    #[test]
    fn v2_reads_the_inner_data_and_selects_fields() {
        let p = "secret/data/openai";
        assert_eq!(
            found(parse_read(KvVersion::V2, V2.as_bytes(), p, "api_key")),
            "sk-v2"
        );
        assert_eq!(
            found(parse_read(KvVersion::V2, V2.as_bytes(), p, "org")),
            "o-1"
        );
        assert!(not_found(parse_read(
            KvVersion::V2,
            V2.as_bytes(),
            p,
            "missing"
        )));
    }

    #[test]
    fn v2_deleted_latest_version_is_not_found() {
        let body = r#"{"data":{"data":null,"metadata":{"deletion_time":"2026-01-01T00:00:00Z",
            "destroyed":false,"version":2}}}"#;
        assert!(not_found(parse_read(
            KvVersion::V2,
            body.as_bytes(),
            "p",
            "api_key"
        )));
        let reply = Reply {
            status: StatusCode::NOT_FOUND,
            body: body.as_bytes().to_vec().into(),
        };
        assert!(not_found(interpret(KvVersion::V2, &reply, "p", "api_key")));
    }

    #[test]
    fn v1_reads_data_directly() {
        let body = br#"{"data":{"api_key":"sk-v1","empty":""},"lease_duration":2764800}"#;
        assert_eq!(
            found(parse_read(KvVersion::V1, body, "kv/openai", "api_key")),
            "sk-v1"
        );
        assert!(not_found(parse_read(
            KvVersion::V1,
            body,
            "kv/openai",
            "empty"
        )));
        assert!(not_found(parse_read(
            KvVersion::V1,
            body,
            "kv/openai",
            "other"
        )));
    }

    #[test]
    fn non_string_fields_and_bad_shapes_are_errors_without_values() {
        let err = parse_read(KvVersion::V2, V2.as_bytes(), "secret/data/openai", "n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `n` of `secret/data/openai` is not a string"
        );
        let v1_as_v2 = br#"{"data":{"api_key":"sk-leak"}}"#;
        let err = parse_read(KvVersion::V2, v1_as_v2, "p", "api_key").unwrap_err();
        assert!(!err.to_string().contains("sk-leak"), "{err}");
        assert!(parse_read(KvVersion::V1, b"{oops sk-leak", "p", "api_key").is_err());
        assert!(parse_read(KvVersion::V1, br#"{"data":null}"#, "p", "api_key").is_err());
    }

    #[test]
    fn statuses_map_to_errors_with_vault_texts() {
        let reply = |status: u16, body: &str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec().into(),
        };
        let denied = interpret(
            KvVersion::V2,
            &reply(403, r#"{"errors":["permission denied"]}"#),
            "secret/data/x",
            "f",
        );
        assert_eq!(
            denied.unwrap_err().to_string(),
            "permission denied reading `secret/data/x`: permission denied"
        );
        let sealed = interpret(
            KvVersion::V2,
            &reply(503, r#"{"errors":["Vault is sealed"]}"#),
            "secret/data/x",
            "f",
        );
        assert_eq!(
            sealed.unwrap_err().to_string(),
            "`secret/data/x`: HTTP 503: Vault is sealed"
        );
        assert!(not_found(interpret(
            KvVersion::V1,
            &reply(404, r#"{"errors":[]}"#),
            "p",
            "f"
        )));
    }

    #[test]
    fn paths_are_built_per_version_and_checked() {
        let path = secret_path(Some("team/"), "openai/prod").unwrap();
        assert_eq!(path, ["team", "openai", "prod"]);
        assert_eq!(
            KvVersion::V2.read_path("secret", &path),
            "secret/data/team/openai/prod"
        );
        assert_eq!(
            KvVersion::V1.read_path("kv1/", &path),
            "kv1/team/openai/prod"
        );
        assert!(secret_path(None, "../sys/seal").is_err());
        assert!(secret_path(Some("team"), "").is_err());
        assert!(secret_path(None, "a/./b").is_err());
        assert!(KvVersion::from_number(3).is_err());
    }
}
