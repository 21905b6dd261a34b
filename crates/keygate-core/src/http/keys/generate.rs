//! `POST /key/generate`: a new key (random, or the caller's own `sk-` key), stored as its
//! SHA-256 and committed before the plaintext is returned, once.

use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::error::KeyApiError;
use super::fields::{masked, KeyFields, Model};
use super::{auth, json, now_ms, stored};
use crate::keys::token;
use crate::state::AppState;

/// `POST /key/generate`.
pub async fn generate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, KeyApiError> {
    let now = now_ms();
    auth::require_admin(&state, &headers, "/key/generate", now).await?;
    let fields = KeyFields::read(Body::parse(&body, true)?, Model::Generate)?;
    fields.check_budgets(Model::Generate)?;
    let alias = fields.key_alias.as_value();
    if let Some(alias) = alias {
        if state.store().get_key_by_alias(alias).await?.is_some() {
            return Err(KeyApiError::DuplicateAlias(alias.clone()));
        }
    }
    let plaintext = match fields.key.as_value() {
        Some(key) if key.starts_with("sk-") => key.clone(),
        Some(key) => return Err(KeyApiError::KeyFormat(masked(key))),
        None => token::new_key(),
    };
    let record = fields.new_record(&plaintext, now)?;
    state
        .store()
        .insert_key(&record)
        .await
        .map_err(|err| stored(err, alias))?;
    // A lookup of this token before it existed may have left a negative cache entry.
    state.keys_changed(&[&record.token_id]).await;
    tracing::info!(token_id = %record.token_id, alias = ?record.key_alias, "key generated");
    let duration = fields.duration.as_value().map(String::as_str);
    Ok(Json(json::generated(
        &record,
        &plaintext,
        duration,
        Some(&record.token_id),
    )))
}
