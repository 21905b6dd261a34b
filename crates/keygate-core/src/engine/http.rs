//! The engine's Vault routes so far: roles at `/v1/{mount}/roles/{name}` (GET read, PUT/POST
//! write, DELETE, LIST or `GET ?list=true`). Auth is Vault's: `X-Vault-Token` (or
//! `Authorization: Bearer`) must be the admin key, anything else is 403 `permission denied`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use rand::RngCore;
use serde_json::{json, Map, Value};

use super::error::EngineError;
use super::role::Role;
use crate::auth;
use crate::keys::spend::now_ms;
use crate::state::AppState;

type Params = Query<Vec<(String, String)>>;

/// `LIST|GET?list=true /v1/{mount}/roles`.
pub async fn roles(
    State(state): State<AppState>,
    Path(mount): Path<String>,
    method: Method,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, EngineError> {
    admit(&state, &headers, &mount, "roles")?;
    if !is_list(&method, &params) {
        return Err(EngineError::UnsupportedOperation);
    }
    list(state.store().list_roles(&mount).await?)
}

/// `/v1/{mount}/roles/{name}`.
pub async fn role(
    State(state): State<AppState>,
    Path((mount, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, EngineError> {
    admit(&state, &headers, &mount, &format!("roles/{name}"))?;
    let store = state.store();
    if is_list(&method, &params) {
        // `bao list keygate/roles/` lands here with an empty name on some clients.
        return list(store.list_roles(&mount).await?);
    }
    match method {
        Method::GET => {
            let config = store
                .get_role(&mount, &name)
                .await?
                .ok_or(EngineError::NotFound)?;
            let role: Role = serde_json::from_str(&config).map_err(|err| {
                EngineError::BadRequest(format!("stored role is unreadable: {err}"))
            })?;
            Ok(envelope(role.to_data(), Vec::new()))
        }
        Method::PUT | Method::POST => {
            let fields = object(&body)?;
            let existing = match store.get_role(&mount, &name).await? {
                Some(config) => serde_json::from_str::<Role>(&config).ok(),
                None => None,
            };
            let role = Role::write(existing, &fields)?;
            let config = serde_json::to_string(&role)
                .map_err(|err| EngineError::BadRequest(err.to_string()))?;
            store
                .put_role(&mount, &name, &config, now_ms() / 1000)
                .await?;
            tracing::info!(mount = %mount, role = %name, "role written");
            let path = format!("{mount}/roles/{name}");
            audit(&state, "update", &path, json!({ "data": role.to_data() }));
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            store.delete_role(&mount, &name).await?;
            tracing::info!(mount = %mount, role = %name, "role deleted");
            audit(
                &state,
                "delete",
                &format!("{mount}/roles/{name}"),
                json!({}),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(EngineError::UnsupportedOperation),
    }
}

/// Checks the token and that `mount` is the engine's mount.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    mount: &str,
    rest: &str,
) -> Result<(), EngineError> {
    let token = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or_else(|| auth::presented_key(headers));
    let live = state.live();
    if !token.is_some_and(|t| auth::is_admin(t, &live)) {
        return Err(EngineError::PermissionDenied);
    }
    if mount != live.config.engine.mount {
        return Err(EngineError::BadRequest(format!(
            "no handler for route \"{mount}/{rest}\". route entry not found."
        )));
    }
    Ok(())
}

fn is_list(method: &Method, params: &[(String, String)]) -> bool {
    method.as_str() == "LIST"
        || (method == Method::GET
            && params
                .iter()
                .any(|(k, v)| k == "list" && (v == "true" || v == "1")))
}

/// A JSON object body (empty body: no fields).
fn object(body: &[u8]) -> Result<Map<String, Value>, EngineError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(EngineError::BadRequest(
            "failed to parse JSON input: the body must be a JSON object".to_owned(),
        )),
    }
}

/// `{"data": {"keys": [...]}}`, or 404 when there is nothing to list (as Vault answers).
fn list(keys: Vec<String>) -> Result<Response, EngineError> {
    if keys.is_empty() {
        return Err(EngineError::NotFound);
    }
    Ok(envelope(json!({ "keys": keys }), Vec::new()))
}

/// Vault's response envelope around `data`.
pub fn envelope(data: Value, warnings: Vec<String>) -> Response {
    let warnings = if warnings.is_empty() {
        Value::Null
    } else {
        json!(warnings)
    };
    Json(json!({
        "request_id": request_id(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
    }))
    .into_response()
}

/// A random UUID (version 4), as Vault's request ids.
pub fn request_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Vault's envelope for a lease: `lease_id`, `renewable`, `lease_duration` and `data`.
fn lease_envelope(granted: super::lease::Granted) -> Response {
    let warnings = if granted.warnings.is_empty() {
        Value::Null
    } else {
        json!(granted.warnings)
    };
    Json(json!({
        "request_id": request_id(),
        "lease_id": granted.lease_id,
        "renewable": true,
        "lease_duration": granted.lease_duration,
        "data": granted.data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
    }))
    .into_response()
}

/// `GET|PUT|POST /v1/{mount}/creds/{role}`: a key with a lease.
pub async fn creds(
    State(state): State<AppState>,
    Path((mount, role)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, EngineError> {
    admit(&state, &headers, &mount, &format!("creds/{role}"))?;
    if !matches!(method, Method::GET | Method::PUT | Method::POST) {
        return Err(EngineError::UnsupportedOperation);
    }
    let granted = super::lease::issue(&state, &mount, &role).await?;
    if let Some(log) = &state.live().audit {
        let data = &granted.data;
        let key = data["key"].as_str().unwrap_or_default();
        let response = json!({
            "lease_id": granted.lease_id,
            "lease_duration": granted.lease_duration,
            "data": { "key": log.hmac(key), "key_alias": data["key_alias"], "role": data["role"] },
        });
        log.record(
            &request_id(),
            "read",
            &format!("{mount}/creds/{role}"),
            response,
        );
    }
    Ok(lease_envelope(granted))
}

/// Records an engine operation in the audit log, when one is configured.
fn audit(state: &AppState, operation: &str, path: &str, response: Value) {
    if let Some(log) = &state.live().audit {
        log.record(&request_id(), operation, path, response);
    }
}

/// Checks the token only (the `sys/` routes are not under the mount).
fn admit_sys(state: &AppState, headers: &HeaderMap) -> Result<(), EngineError> {
    let mount = state.live().config.engine.mount.clone();
    admit(state, headers, &mount, "sys")
}

/// `PUT /v1/sys/leases/renew` (`{lease_id, increment}`), also with the id in the path.
pub async fn renew(
    State(state): State<AppState>,
    path: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EngineError> {
    admit_sys(&state, &headers)?;
    let mut fields = object(&body)?;
    if let Some(Path(id)) = path {
        fields.insert("lease_id".into(), Value::String(id));
    }
    let (lease_id, increment) = super::lease::lease_fields(&fields)?;
    let granted = super::lease::renew(&state, &lease_id, increment).await?;
    let response = json!({ "lease_id": lease_id, "lease_duration": granted.lease_duration });
    audit(&state, "update", "sys/leases/renew", response);
    Ok(lease_envelope(granted))
}

/// `PUT /v1/sys/leases/revoke` (`{lease_id}`), also with the id in the path (`bao lease revoke`).
pub async fn revoke(
    State(state): State<AppState>,
    path: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EngineError> {
    admit_sys(&state, &headers)?;
    let mut fields = object(&body)?;
    if let Some(Path(id)) = path {
        fields.insert("lease_id".into(), Value::String(id));
    }
    // Vault answers 202 when the caller asked not to wait (`bao lease revoke` sends
    // `"sync": false`); keygate revokes at once either way.
    let queued = fields.get("sync").and_then(Value::as_bool) == Some(false);
    let (lease_id, _) = super::lease::lease_fields(&fields)?;
    super::lease::revoke(&state, &lease_id).await?;
    audit(
        &state,
        "update",
        "sys/leases/revoke",
        json!({ "lease_id": lease_id }),
    );
    if queued {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v1/sys/leases/revoke-prefix/{prefix}`.
pub async fn revoke_prefix(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
) -> Result<Response, EngineError> {
    admit_sys(&state, &headers)?;
    super::lease::revoke_prefix(&state, &prefix).await?;
    audit(
        &state,
        "update",
        &format!("sys/leases/revoke-prefix/{prefix}"),
        json!({}),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v1/sys/leases/lookup` (`{lease_id}`).
pub async fn lookup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EngineError> {
    admit_sys(&state, &headers)?;
    let (lease_id, _) = super::lease::lease_fields(&object(&body)?)?;
    Ok(envelope(
        super::lease::lookup(&state, &lease_id).await?,
        Vec::new(),
    ))
}

/// `LIST|GET?list=true /v1/sys/leases/lookup/{prefix}`.
pub async fn lookup_list(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    method: Method,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, EngineError> {
    admit_sys(&state, &headers)?;
    if !is_list(&method, &params) {
        return Err(EngineError::UnsupportedOperation);
    }
    list(super::lease::list(&state, &prefix).await?)
}
