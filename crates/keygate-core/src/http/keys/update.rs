//! `POST /key/update`: changes the fields the body names on the key given as plaintext or hash;
//! the cache entry is dropped at once. The answer is the key as now stored, with `key` echoing
//! what was sent (LiteLLM's `{"key": key, **updated}`).

use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::body::Body;
use super::error::KeyApiError;
use super::fields::{shown, KeyFields, Model};
use super::{auth, json, now_ms, stored};
use crate::keys::token;
use crate::state::AppState;
use crate::store::KeyColumn;

/// `POST /key/update`.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, KeyApiError> {
    let now = now_ms();
    auth::require_admin(&state, &headers, "/key/update", now).await?;
    let fields = KeyFields::read(Body::parse(&body, true)?, Model::Update)?;
    fields.check_budgets(Model::Update)?;
    let given = fields.key.as_value().cloned().unwrap_or_default();
    let token_id = token::token_id(&given);
    let store = state.store();
    let Some(current) = store.get_key(&token_id).await? else {
        return Err(KeyApiError::UpdateNotFound(shown(&given)));
    };
    let mut key = current;
    let columns = fields.apply(&mut key, now, Model::Update)?;
    let alias = fields.key_alias.as_value();
    if let Some(alias) = alias {
        let other = store.get_key_by_alias(alias).await?;
        if other.is_some_and(|other| other.token_id != token_id) {
            return Err(KeyApiError::DuplicateAlias(alias.clone()));
        }
    }
    let found = store
        .patch_key(&token_id, &key, &columns)
        .await
        .map_err(|err| stored(err, alias))?;
    state.keys_changed(&[&token_id]).await;
    if !found {
        return Err(KeyApiError::UpdateNotFound(shown(&given)));
    }
    if columns.contains(&KeyColumn::Spend) {
        state.ledgers().set_spent(&token_id, key.spend);
        state.limiter().spend_set(&token_id, key.spend).await;
    }
    tracing::info!(token_id = %token_id, "key updated");
    let fresh = store.get_key(&token_id).await?.unwrap_or(key);
    let mut out = Map::new();
    out.insert("key".to_owned(), Value::String(given));
    out.extend(json::token_row(&fresh));
    out.insert("token".to_owned(), Value::String(token_id));
    Ok(Json(Value::Object(out)))
}
