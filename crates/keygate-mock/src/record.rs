//! What the mock remembers of each request: the credential it carried (and in which header), the
//! model, whether it streamed, a correlation marker from the body and the API version.

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request received by the mock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number, from 1, in order of arrival.
    pub seq: u64,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The full model string (directives included); for Azure, the deployment from the URL.
    pub model: Option<String>,
    /// The credential: the token of `Authorization: Bearer X`, else `x-api-key`, else `api-key`.
    pub credential: Option<String>,
    /// Where the credential came from: `authorization`, `x-api-key` or `api-key`.
    pub credential_header: Option<String>,
    /// Whether the body asked for a stream.
    pub stream: bool,
    /// Body `user`, else `metadata.user_id`, else the last message's text, else a string `input`.
    pub marker: Option<String>,
    /// Azure's `api-version` query parameter, else the `anthropic-version` header.
    pub api_version: Option<String>,
}

impl Record {
    /// The record of a request; `body` is its JSON body when it had a valid one.
    pub(crate) fn build(
        seq: u64,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Option<&Value>,
        model_override: Option<&str>,
    ) -> Record {
        let credential = credential(headers);
        let model = model_override.or_else(|| body.and_then(|b| b.get("model")?.as_str()));
        Record {
            seq,
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            model: model.map(str::to_owned),
            credential: credential.map(|(value, _)| value.to_owned()),
            credential_header: credential.map(|(_, header)| header.to_owned()),
            stream: body.is_some_and(wants_stream),
            marker: body.and_then(marker).map(str::to_owned),
            api_version: api_version(uri, headers).map(str::to_owned),
        }
    }
}

/// Whether a request body asks for a stream.
pub(crate) fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// The credential of a request and the (lowercase) header it came from.
pub(crate) fn credential(headers: &HeaderMap) -> Option<(&str, &'static str)> {
    if let Some(value) = header(headers, AUTHORIZATION.as_str()) {
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            // `Bearer` alone (the header value is trimmed): no token.
            None if value.eq_ignore_ascii_case("bearer") => "",
            _ => value,
        };
        if !token.is_empty() {
            return Some((token, "authorization"));
        }
    }
    ["x-api-key", "api-key"]
        .into_iter()
        .find_map(|name| header(headers, name).map(|value| (value, name)))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}

/// The correlation marker of a request body (see [`Record::marker`]).
pub(crate) fn marker(body: &Value) -> Option<&str> {
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        return Some(user);
    }
    if let Some(user) = body.pointer("/metadata/user_id").and_then(Value::as_str) {
        return Some(user);
    }
    let last_text = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
        .and_then(|last| last.get("content"))
        .and_then(first_text);
    if last_text.is_some() {
        return last_text;
    }
    body.get("input").and_then(Value::as_str)
}

/// String content, or the text of the first text block of array content.
pub(crate) fn first_text(content: &Value) -> Option<&str> {
    match content {
        Value::String(text) => Some(text),
        Value::Array(blocks) => blocks.iter().find_map(|block| {
            let kind = block.get("type").and_then(Value::as_str);
            if kind.is_some_and(|k| k != "text") {
                return None;
            }
            block.get("text").and_then(Value::as_str)
        }),
        _ => None,
    }
}

/// Azure's `api-version` query parameter, else the `anthropic-version` header.
pub(crate) fn api_version<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    query_param(uri.query(), "api-version").or_else(|| header(headers, "anthropic-version"))
}

/// A (non-empty, not percent-decoded) query parameter.
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn credential_precedence() {
        let h = headers(&[("authorization", "Bearer sk-1"), ("x-api-key", "ak-2")]);
        assert_eq!(credential(&h), Some(("sk-1", "authorization")));
        let h = headers(&[("x-api-key", "ak-2"), ("api-key", "az-3")]);
        assert_eq!(credential(&h), Some(("ak-2", "x-api-key")));
        let h = headers(&[("api-key", "az-3")]);
        assert_eq!(credential(&h), Some(("az-3", "api-key")));
        let h = headers(&[("authorization", "Bearer "), ("api-key", "az-3")]);
        assert_eq!(credential(&h), Some(("az-3", "api-key")));
        assert_eq!(credential(&HeaderMap::new()), None);
    }

    #[test]
    fn marker_sources_in_order() {
        let msgs = json!([{"role":"user","content":"first"},{"role":"user","content":"last"}]);
        assert_eq!(marker(&json!({"user":"u1","messages":msgs})), Some("u1"));
        let body = json!({"metadata":{"user_id":"a1"},"messages":msgs});
        assert_eq!(marker(&body), Some("a1"));
        assert_eq!(marker(&json!({"messages":msgs})), Some("last"));
        let blocks = json!([{"role":"user","content":[
            {"type":"image","source":{}},{"type":"text","text":"t1"},{"type":"text","text":"t2"}]}]);
        assert_eq!(marker(&json!({"messages":blocks})), Some("t1"));
        assert_eq!(marker(&json!({"input":"embed me"})), Some("embed me"));
        assert_eq!(marker(&json!({"input":["a","b"]})), None);
    }

    #[test]
    fn api_version_from_query_or_header() {
        let uri: Uri = "/openai/deployments/d/chat/completions?x=1&api-version=2024-10-21"
            .parse()
            .unwrap();
        assert_eq!(api_version(&uri, &HeaderMap::new()), Some("2024-10-21"));
        let uri: Uri = "/v1/messages".parse().unwrap();
        let h = headers(&[("anthropic-version", "2023-06-01")]);
        assert_eq!(api_version(&uri, &h), Some("2023-06-01"));
        assert_eq!(query_param(Some("api-version="), "api-version"), None);
    }
}
