//! `GET /key/info?key=`: one key's stored row (spend included), for the key given as plaintext
//! or hash; without `key`, the calling virtual key's own. A virtual key may read only its own.

use axum::extract::{Query, State};
use axum::Json;
use http::HeaderMap;
use serde_json::{json, Value};

use super::auth::{self, Manager};
use super::error::KeyApiError;
use super::{json, now_ms, query_param};
use crate::keys::token;
use crate::state::AppState;

/// `GET /key/info`.
pub async fn info(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, KeyApiError> {
    let caller = auth::admin_or_key(&state, &headers, now_ms()).await?;
    let asked = query_param(&params, "key").filter(|k| !k.is_empty());
    let (shown, token_id) = match (asked, &caller) {
        (Some(key), _) => (key.to_owned(), token::token_id(key)),
        // LiteLLM answers with the caller's hashed key.
        (None, Manager::Key(record)) => (record.token_id.clone(), record.token_id.clone()),
        // The admin key is not a stored key.
        (None, Manager::Admin) => return Err(KeyApiError::InfoNotFound),
    };
    if let Manager::Key(record) = &caller {
        if !token::same_token(&record.token_id, &token_id) {
            return Err(KeyApiError::NotYourKey);
        }
    }
    let mut record = state
        .store()
        .get_key(&token_id)
        .await?
        .ok_or(KeyApiError::InfoNotFound)?;
    // Settled spend not yet written by the batched writer is already in this process's ledger.
    if let Some(spent) = state.ledgers().spent(&token_id) {
        record.spend = record.spend.max(spent);
    }
    Ok(Json(
        json!({ "key": shown, "info": json::token_row(&record) }),
    ))
}
