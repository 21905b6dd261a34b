//! Who is calling: the key presented on `Authorization: Bearer` or `x-api-key`, checked against
//! the admin key (virtual keys come with the key store). Comparison is on SHA-256 digests in
//! constant time, so neither the key's content nor its length leaks through timing.

mod byok;

pub use byok::{byok_key, ByokKey};

use http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::error::GatewayError;
use crate::keys::token;
use crate::state::{AppState, LiveState};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The holder of the admin key.
    Admin,
    /// A virtual key, as stored.
    Virtual(std::sync::Arc<crate::store::KeyRecord>),
}

/// The key the caller presents: `Authorization: Bearer KEY` first, then `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, key) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim())
            .filter(|key| !key.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// Whether `headers` carry the admin key.
pub fn authenticate_admin(headers: &HeaderMap, live: &LiveState) -> Result<Caller, GatewayError> {
    let key = presented_key(headers).ok_or(GatewayError::Unauthorized)?;
    if is_admin(key, live) {
        Ok(Caller::Admin)
    } else {
        Err(GatewayError::Unauthorized)
    }
}

/// Whether `key` is the admin key (constant time).
pub fn is_admin(key: &str, live: &LiveState) -> bool {
    is_admin_digest(&token::digest(key), live)
}

/// Whether the key hashed to `digest` ([`token::digest`]) is the admin key (constant time).
fn is_admin_digest(digest: &[u8; 32], live: &LiveState) -> bool {
    live.admin_key_hash()
        .is_some_and(|admin| bool::from(admin.ct_eq(digest)))
}

/// Authenticates an inference caller: the admin key, else a virtual key that may be used now.
pub async fn authenticate(
    headers: &HeaderMap,
    live: &LiveState,
    state: &AppState,
) -> Result<Caller, GatewayError> {
    let key = presented_key(headers).ok_or(GatewayError::Unauthorized)?;
    // One hash serves both lookups.
    let digest = token::digest(key);
    if is_admin_digest(&digest, live) {
        return Ok(Caller::Admin);
    }
    crate::keys::meter::authenticate_digest(state, &digest)
        .await
        .map(Caller::Virtual)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::HeaderValue;

    use super::*;
    use crate::config::Config;

    fn live(admin: Option<&str>) -> LiveState {
        let config = Config {
            admin_key: admin.map(str::to_owned),
            ..Config::default()
        };
        let client = reqwest::Client::new();
        let ctx = crate::secrets::SourceContext {
            client: &client,
            env: std::sync::Arc::new(HashMap::<String, String>::new()),
        };
        LiveState::build(config, &ctx).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_and_x_api_key_are_accepted() {
        let live = live(Some("admin-secret"));
        let ok = [
            headers(&[("authorization", "Bearer admin-secret")]),
            headers(&[("authorization", "bearer  admin-secret ")]),
            headers(&[("x-api-key", "admin-secret")]),
        ];
        for h in ok {
            assert_eq!(authenticate_admin(&h, &live).unwrap(), Caller::Admin);
        }
    }

    #[test]
    fn wrong_missing_or_malformed_keys_are_refused() {
        let live = live(Some("admin-secret"));
        let bad = [
            headers(&[]),
            headers(&[("authorization", "Bearer nope")]),
            headers(&[("authorization", "Basic admin-secret")]),
            headers(&[("authorization", "admin-secret")]),
            headers(&[("authorization", "Bearer ")]),
            headers(&[("x-api-key", "admin-secret-")]),
        ];
        for h in bad {
            assert!(authenticate_admin(&h, &live).is_err(), "{h:?}");
        }
    }

    #[test]
    fn no_admin_key_configured_refuses_everyone() {
        let live = live(None);
        let h = headers(&[("authorization", "Bearer anything")]);
        assert!(authenticate_admin(&h, &live).is_err());
        assert!(authenticate_admin(&h, &self::live(Some(""))).is_err());
    }
}
