//! `POST /key/delete`: `{"keys": [...]}` (plaintext or hash) or, when `keys` is empty,
//! `{"key_aliases": [...]}`. As in LiteLLM, the answer lists what was asked for
//! (`deleted_keys`), and it is 404 only when nothing matched. Deleted keys leave the cache at
//! once, so their very next request fails.

use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use super::body::{detail, Body};
use super::error::KeyApiError;
use super::{auth, now_ms};
use crate::keys::token;
use crate::state::AppState;

/// Python's truthiness of a JSON value (what LiteLLM's `KeyRequest` validator tests).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// `POST /key/delete`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, KeyApiError> {
    auth::require_admin(&state, &headers, "/key/delete", now_ms()).await?;
    let mut body = Body::parse(&body, true)?.unwrap_or_else(Body::empty);
    let object = body.object();
    if !truthy(object.get("keys")) && !truthy(object.get("key_aliases")) {
        let mut item = detail(
            "value_error",
            &[json!("body")],
            "Value error, At least one of 'keys' or 'key_aliases' must be provided.",
            &Value::Object(object.clone()),
        );
        item["ctx"] = json!({ "error": {} });
        return Err(KeyApiError::Validation(vec![item]));
    }
    let keys = body.strings("keys").value().unwrap_or_default();
    let aliases = body.strings("key_aliases").value().unwrap_or_default();
    body.finish()?;
    let store = state.store();
    let (deleted, asked) = if !keys.is_empty() {
        let ids: Vec<String> = keys.iter().map(|k| token::token_id(k)).collect();
        let deleted = store.delete_keys(&ids).await?;
        (deleted, keys)
    } else {
        (store.delete_keys_by_alias(&aliases).await?, aliases)
    };
    state.keys_changed(&deleted).await;
    for token_id in &deleted {
        state.ledgers().forget(token_id);
        state.limiter().forget(token_id).await;
    }
    if deleted.is_empty() {
        return Err(KeyApiError::NoKeysFound);
    }
    tracing::info!(count = deleted.len(), "keys deleted");
    Ok(Json(json!({ "deleted_keys": asked })))
}
