//! Reading a client's JSON body: content type, size limit, and the first look at `model` and
//! `stream` without building a JSON tree (the fast path forwards the bytes untouched).

use std::borrow::Cow;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use crate::error::GatewayError;

/// Reads the whole body, refusing a non-JSON content type (415) and anything over `limit` (413).
pub async fn read_json(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or("");
        let mime = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(mime == "application/json" || mime.ends_with("+json")) {
            // Read it anyway, so the client's keep-alive connection is not closed under its
            // next request.
            drain(body, limit).await;
            return Err(GatewayError::UnsupportedMediaType(
                text.chars().take(100).collect(),
            ));
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    read_limited(body, limit).await
}

/// The whole body, or [`GatewayError::BodyTooLarge`] past `limit` bytes. A body that arrives in
/// one piece (a request's usual body) is kept as it came, with no copy.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    use http_body_util::BodyExt;
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            GatewayError::InvalidRequest("the request body could not be read".to_owned())
        })?;
        // Trailers, if any, are not part of the JSON.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        read = read.saturating_add(data.len());
        if read > limit {
            return Err(GatewayError::BodyTooLarge { limit });
        }
        if first.is_empty() && joined.is_none() {
            first = data;
        } else {
            joined
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&data);
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

/// The fields every inference route needs first.
#[derive(Debug, Deserialize)]
pub struct Peek<'a> {
    /// The model asked for.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// Whether a stream is asked for.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `max_tokens`, when a whole number (anything else is the upstream's to refuse).
    #[serde(default, deserialize_with = "lenient_count")]
    pub max_tokens: Option<u64>,
    /// `max_completion_tokens` (OpenAI's newer name), likewise.
    #[serde(default, deserialize_with = "lenient_count")]
    pub max_completion_tokens: Option<u64>,
    /// Whether the body has a `stream_options` member (of any value, `null` included).
    #[serde(default, deserialize_with = "present")]
    pub stream_options: bool,
}

/// True for any JSON value: the member is there.
fn present<'de, D: serde::Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(de).map(|_| true)
}

/// A whole number, or `None` for any other JSON value.
fn lenient_count<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    let value = <serde_json::Value as serde::Deserialize>::deserialize(de)?;
    Ok(value.as_u64())
}

/// Parses `model` and `stream` from the body; the body must be a JSON object.
pub fn peek(bytes: &[u8]) -> Result<Peek<'_>, GatewayError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(match first {
            None => GatewayError::InvalidRequest(
                "The request body is empty: send a JSON object.".into(),
            ),
            Some(_) => match serde_json::from_slice::<Value>(bytes) {
                Ok(_) => {
                    GatewayError::InvalidRequest("The request body must be a JSON object.".into())
                }
                Err(err) => GatewayError::InvalidJson(err.to_string()),
            },
        });
    }
    serde_json::from_slice::<Peek>(bytes).map_err(|err| {
        if err.is_data() {
            GatewayError::InvalidRequest(format!("Invalid request: {err}"))
        } else {
            GatewayError::InvalidJson(err.to_string())
        }
    })
}

/// The model name, required.
pub fn required_model<'a>(peek: &'a Peek<'_>) -> Result<&'a str, GatewayError> {
    match peek.model.as_deref() {
        Some(model) if !model.is_empty() => Ok(model),
        _ => Err(missing_model()),
    }
}

/// The refusal of a body without a model (LiteLLM's words).
pub fn missing_model() -> GatewayError {
    GatewayError::InvalidRequest("you must provide a model parameter".to_owned())
}

/// The body as a JSON tree (after [`peek`] succeeded, this cannot fail on syntax).
pub fn parse_tree(bytes: &[u8]) -> Result<Value, GatewayError> {
    serde_json::from_slice(bytes).map_err(|err| GatewayError::InvalidJson(err.to_string()))
}

/// Reads and discards a request body, at most `limit` bytes.
pub async fn drain(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let _ = http_body_util::Limited::new(body, limit).collect().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_model_and_stream() {
        let p = peek(br#"{"messages":[],"model":"m","stream":true}"#).unwrap();
        assert_eq!(p.model.as_deref(), Some("m"));
        assert_eq!(p.stream, Some(true));
    }

    #[test]
    fn peek_refuses_non_objects_and_bad_types() {
        assert!(matches!(peek(b"[1]"), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(peek(b"   "), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(
            peek(b"{\"model\":"),
            Err(GatewayError::InvalidJson(_))
        ));
        assert!(matches!(
            peek(b"nonsense"),
            Err(GatewayError::InvalidJson(_))
        ));
        assert!(matches!(
            peek(br#"{"model":5}"#),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            peek(br#"{"model":"m","stream":"yes"}"#),
            Err(GatewayError::InvalidRequest(_))
        ));
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let p = peek(br#"{"model":"a\u0062c"}"#).unwrap();
        assert_eq!(required_model(&p).unwrap(), "abc");
        assert!(required_model(&peek(b"{}").unwrap()).is_err());
    }
}
