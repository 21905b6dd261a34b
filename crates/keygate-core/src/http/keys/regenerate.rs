//! `POST /key/regenerate` (key in the body) and `POST /key/{key}/regenerate`: a new plaintext
//! (random, or the body's `new_key`) for an existing key, which keeps its alias, settings and
//! spend, with any update fields of the body applied. The old plaintext stops working at once:
//! the row is renamed in one statement and both cache entries are dropped.

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::error::KeyApiError;
use super::fields::{shown, KeyFields, Model};
use super::{auth, json, now_ms, stored};
use crate::keys::token;
use crate::state::AppState;
use crate::store::KeyColumn;

/// `POST /key/regenerate`.
pub async fn regenerate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, KeyApiError> {
    run(&state, &headers, None, &body).await
}

/// `POST /key/{key}/regenerate`.
pub async fn regenerate_key(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, KeyApiError> {
    run(&state, &headers, Some(key), &body).await
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    path_key: Option<String>,
    body: &[u8],
) -> Result<Json<Value>, KeyApiError> {
    let now = now_ms();
    auth::require_admin(state, headers, "/key/regenerate", now).await?;
    let fields = KeyFields::read(Body::parse(body, false)?, Model::Regenerate)?;
    if fields.new_master_key.as_value().is_some() {
        return Err(KeyApiError::MasterKeyRotation);
    }
    // LiteLLM: the body's `key` wins over the path's.
    let given = fields
        .key
        .as_value()
        .filter(|k| !k.is_empty())
        .cloned()
        .or(path_key)
        .filter(|k| !k.is_empty())
        .ok_or(KeyApiError::RegenerateNoKey)?;
    let old_id = token::token_id(&given);
    let store = state.store();
    let Some(current) = store.get_key(&old_id).await? else {
        return Err(KeyApiError::RegenerateNotFound(shown(&given)));
    };
    let plaintext = match fields.new_key.as_value() {
        Some(key) if key.starts_with("sk-") => key.clone(),
        Some(_) => return Err(KeyApiError::NewKeyFormat),
        None => token::new_key(),
    };
    fields.check_budgets(Model::Regenerate)?;
    let mut key = current;
    key.token_id = token::hash_key(&plaintext);
    key.key_name = token::key_name(&plaintext);
    let mut columns = fields.apply(&mut key, now, Model::Regenerate)?;
    columns.extend([KeyColumn::TokenId, KeyColumn::KeyName]);
    let alias = fields.key_alias.as_value();
    if let Some(alias) = alias {
        let other = store.get_key_by_alias(alias).await?;
        if other.is_some_and(|other| other.token_id != old_id) {
            return Err(KeyApiError::DuplicateAlias(alias.clone()));
        }
    }
    let found = store
        .patch_key(&old_id, &key, &columns)
        .await
        .map_err(|err| stored(err, alias))?;
    state.keys_changed(&[&old_id, &key.token_id]).await;
    state.ledgers().forget(&old_id);
    state.limiter().renamed(&old_id, &key.token_id).await;
    if !found {
        return Err(KeyApiError::RegenerateNotFound(shown(&given)));
    }
    tracing::info!(old_token_id = %old_id, token_id = %key.token_id, "key regenerated");
    let fresh = store.get_key(&key.token_id).await?.unwrap_or(key);
    let duration = fields.duration.as_value().map(String::as_str);
    Ok(Json(json::generated(&fresh, &plaintext, duration, None)))
}
