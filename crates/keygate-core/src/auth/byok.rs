//! Bring your own key: `X-{Model}-Authorization: Bearer KEY` (or the bare key) carries the
//! caller's upstream key for one model, for this request only.
//!
//! The header name is the model's name lowercased with every character HTTP does not allow in a
//! header name written as `-` (see [`crate::providers::byok_header_name`]). The model's `byok`
//! policy decides: `deny` refuses the header (400), `allow` uses it when present, `require`
//! refuses a request without it (401). An empty value counts as absent. The key lives in the
//! request's own stack frame; nothing shared is touched, so it cannot reach another request.

use http::HeaderMap;
use secrecy::SecretString;

use crate::config::Byok;
use crate::error::GatewayError;
use crate::providers::ModelRoute;

/// A caller's own upstream key.
pub struct ByokKey(pub SecretString);

/// The caller's own key for `route`, if it sent one and the model's policy allows it.
pub fn byok_key(headers: &HeaderMap, route: &ModelRoute) -> Result<Option<ByokKey>, GatewayError> {
    let Some(name) = &route.byok_header else {
        return Ok(None);
    };
    let header = || name.as_str().to_owned();
    let key = match headers.get(name) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| GatewayError::ByokInvalid { header: header() })?;
            parse_value(text)
        }
    };
    match (route.byok, key) {
        (Byok::Deny, Some(_)) => Err(GatewayError::ByokDenied {
            model: route.name.clone(),
            header: header(),
        }),
        (Byok::Require, None) => Err(GatewayError::ByokRequired {
            model: route.name.clone(),
            header: header(),
        }),
        (Byok::Deny, None) | (Byok::Allow, None) => Ok(None),
        (Byok::Allow | Byok::Require, Some(key)) => {
            if key.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                return Err(GatewayError::ByokInvalid { header: header() });
            }
            Ok(Some(ByokKey(SecretString::from(key.to_owned()))))
        }
    }
}

/// `Bearer KEY` or `KEY`, trimmed; `None` when empty.
fn parse_value(text: &str) -> Option<&str> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let key = match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => text,
    };
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::HeaderValue;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::ModelConfig;
    use crate::secrets::Secrets;

    fn route(name: &str, byok: Byok) -> ModelRoute {
        let yaml = format!("name: {name}\nprovider: openai\n");
        let mut config: ModelConfig = serde_yaml_ng::from_str(&yaml).unwrap();
        config.byok = byok;
        let env: Arc<dyn crate::config::Env + Send + Sync> =
            Arc::new(std::collections::HashMap::<String, String>::new());
        let secrets = Secrets::new(Vec::new(), env, &Default::default());
        let client = keygate_plugin_api::CaptureClient::new(None);
        let backend = crate::plugins::Plugins::builtin()
            .build_backend(&config, &client)
            .unwrap();
        ModelRoute::build(&config, &secrets, backend, 0.0).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn key(headers: &HeaderMap, route: &ModelRoute) -> Option<String> {
        byok_key(headers, route)
            .unwrap()
            .map(|k| k.0.expose_secret().to_owned())
    }

    #[test]
    fn header_name_rule() {
        let name = |m: &str| crate::providers::byok_header_name(m).unwrap().to_string();
        assert_eq!(name("gpt-4o"), "x-gpt-4o-authorization");
        assert_eq!(name("GPT-4o"), "x-gpt-4o-authorization");
        assert_eq!(name("openai/gpt-4o"), "x-openai-gpt-4o-authorization");
        assert_eq!(
            name("claude 3.5:sonnet"),
            "x-claude-3.5-sonnet-authorization"
        );
        assert_eq!(name("mock_é"), "x-mock_--authorization");
    }

    #[test]
    fn bearer_bare_case_insensitive_and_empty() {
        let r = route("GPT-4o", Byok::Allow);
        let h = headers(&[("x-gpt-4o-authorization", "Bearer sk-a")]);
        assert_eq!(key(&h, &r).as_deref(), Some("sk-a"));
        let h = headers(&[("X-GPT-4O-AUTHORIZATION", "  sk-b ")]);
        assert_eq!(key(&h, &r).as_deref(), Some("sk-b"));
        let h = headers(&[("x-gpt-4o-authorization", "bearer   sk-c")]);
        assert_eq!(key(&h, &r).as_deref(), Some("sk-c"));
        for empty in ["", "  ", "Bearer ", "Bearer"] {
            let h = headers(&[("x-gpt-4o-authorization", empty)]);
            assert_eq!(key(&h, &r), None, "{empty:?}");
        }
        // Another model's header is not this model's key.
        let h = headers(&[("x-gpt-4o-mini-authorization", "sk-other")]);
        assert_eq!(key(&h, &r), None);
    }

    #[test]
    fn policies() {
        let h = headers(&[("x-m-authorization", "sk-a")]);
        let none = HeaderMap::new();
        let denied = byok_key(&h, &route("m", Byok::Deny)).err().unwrap();
        assert_eq!(denied.status_code(), http::StatusCode::BAD_REQUEST);
        assert!(!denied.to_string().contains("sk-a"));
        assert!(byok_key(&none, &route("m", Byok::Deny)).unwrap().is_none());
        let empty = headers(&[("x-m-authorization", "")]);
        assert!(byok_key(&empty, &route("m", Byok::Deny)).unwrap().is_none());
        let required = byok_key(&none, &route("m", Byok::Require)).err().unwrap();
        assert_eq!(required.status_code(), http::StatusCode::UNAUTHORIZED);
        assert!(required.to_string().contains("x-m-authorization"));
        let required = byok_key(&empty, &route("m", Byok::Require)).err().unwrap();
        assert_eq!(required.status_code(), http::StatusCode::UNAUTHORIZED);
        assert_eq!(key(&h, &route("m", Byok::Require)).as_deref(), Some("sk-a"));
    }

    #[test]
    fn unusable_keys_are_refused_without_echoing_them() {
        let r = route("m", Byok::Allow);
        let h = headers(&[("x-m-authorization", "Bearer sk-a b")]);
        let err = byok_key(&h, &r).err().unwrap();
        assert_eq!(err.status_code(), http::StatusCode::BAD_REQUEST);
        assert!(!err.to_string().contains("sk-a"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-m-authorization",
            HeaderValue::from_bytes(b"sk-\xff").unwrap(),
        );
        assert!(byok_key(&h, &r).is_err());
    }
}
