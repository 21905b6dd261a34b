//! Who may call the key API: the admin key, presented where LiteLLM looks for its master key
//! (`x-litellm-api-key` first, then `Authorization: Bearer`, then `x-api-key` and `API-Key`).
//! A live virtual key may read its own `/key/info` and nothing else. The admin key is compared
//! on SHA-256 digests in constant time.

use std::sync::Arc;

use http::{header, HeaderMap};

use super::error::KeyApiError;
use crate::auth;
use crate::keys::token;
use crate::state::AppState;
use crate::store::KeyRecord;

/// An authenticated caller of the key API.
#[derive(Debug)]
pub enum Manager {
    /// The admin key.
    Admin,
    /// A live virtual key (only for its own `/key/info`).
    Key(Arc<KeyRecord>),
}

/// The key the caller presents.
fn presented(headers: &HeaderMap) -> Result<&str, KeyApiError> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(value) = text("x-litellm-api-key") {
        return Ok(strip_bearer(value).unwrap_or(value));
    }
    if let Some(value) = text(header::AUTHORIZATION.as_str()) {
        return strip_bearer(value).ok_or(KeyApiError::MalformedKey);
    }
    text("x-api-key")
        .or_else(|| text("api-key"))
        .ok_or(KeyApiError::NoKey)
}

fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The virtual key `text` names, if it is live (exists, not blocked, not expired).
async fn live_key(
    state: &AppState,
    text: &str,
    now: i64,
) -> Result<Option<Arc<KeyRecord>>, KeyApiError> {
    let found = state
        .keys()
        .get(state.store(), &token::hash_key(text))
        .await?;
    Ok(found.filter(|k| !k.blocked && k.expires.is_none_or(|at| at > now)))
}

/// Admits the admin key only; a virtual key learns that the route is admin-only.
pub async fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
    route: &'static str,
    now: i64,
) -> Result<(), KeyApiError> {
    let key = presented(headers)?;
    if auth::is_admin(key, &state.live()) {
        return Ok(());
    }
    match live_key(state, key, now).await? {
        Some(_) => Err(KeyApiError::AdminOnly(route)),
        None => Err(KeyApiError::InvalidKey),
    }
}

/// Admits the admin key, or a live virtual key (for its own info).
pub async fn admin_or_key(
    state: &AppState,
    headers: &HeaderMap,
    now: i64,
) -> Result<Manager, KeyApiError> {
    let key = presented(headers)?;
    if auth::is_admin(key, &state.live()) {
        return Ok(Manager::Admin);
    }
    match live_key(state, key, now).await? {
        Some(record) => Ok(Manager::Key(record)),
        None => Err(KeyApiError::InvalidKey),
    }
}
