//! Leases: issuing a key under a role (`creds`), renewing, revoking and looking up its lease.
//! A leased key is an ordinary virtual key whose `expires` follows its lease, so inference
//! refuses it the instant the lease ends; revoking deletes the key at once.

use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Map, Value};

use super::error::EngineError;
use super::role::Role;
use super::ttl::{self, TtlError, TtlInputs};
use crate::keys::duration::rfc3339;
use crate::keys::token;
use crate::state::AppState;
use crate::store::{KeyColumn, KeyRecord, LeaseRecord};

/// What a lease operation answers: Vault's lease fields and the data.
pub struct Granted {
    /// `{mount}/creds/{role}/{id}`.
    pub lease_id: String,
    /// Seconds from now.
    pub lease_duration: u64,
    /// The response's `data` (`null` for renewals).
    pub data: Value,
    /// Vault's warnings.
    pub warnings: Vec<String>,
}

fn now_secs() -> i64 {
    crate::keys::spend::now_ms() / 1000
}

fn engine_inputs(state: &AppState, role: &Role, increment: u64) -> TtlInputs {
    let engine = &state.live().config.engine;
    TtlInputs {
        increment,
        role_ttl: role.ttl,
        role_max_ttl: role.max_ttl,
        default_lease_ttl: secs(engine.default_lease_ttl),
        max_lease_ttl: secs(engine.max_lease_ttl),
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

async fn load_role(state: &AppState, mount: &str, name: &str) -> Result<Option<Role>, EngineError> {
    match state.store().get_role(mount, name).await? {
        Some(config) => serde_json::from_str(&config)
            .map(Some)
            .map_err(|err| EngineError::BadRequest(format!("stored role is unreadable: {err}"))),
        None => Ok(None),
    }
}

/// Issues a key under `role`, with a lease.
pub async fn issue(state: &AppState, mount: &str, role_name: &str) -> Result<Granted, EngineError> {
    let role = load_role(state, mount, role_name)
        .await?
        .ok_or_else(|| EngineError::BadRequest(format!("unknown role: {role_name}")))?;
    let now = now_secs();
    let granted = ttl::calculate(&engine_inputs(state, &role, 0), now, now).map_err(ttl_error)?;
    let mut id = [0u8; 12];
    rand::rng().fill_bytes(&mut id);
    let lease_id = format!("{mount}/creds/{role_name}/{}", hex::encode(id));
    let mut tag = [0u8; 4];
    rand::rng().fill_bytes(&mut tag);
    let alias = format!("{}-{role_name}-{}", role.key_alias_prefix, hex::encode(tag));
    let plaintext = token::new_key();
    let expires_at = now + i64::try_from(granted.ttl).unwrap_or(i64::MAX / 2);
    let mut metadata = role.metadata.clone();
    metadata.insert("role".into(), json!(role_name));
    metadata.insert("lease_id".into(), json!(lease_id));
    let key = KeyRecord {
        token_id: token::hash_key(&plaintext),
        key_name: token::key_name(&plaintext),
        key_alias: Some(alias.clone()),
        models: role.models.clone(),
        spend: 0.0,
        max_budget: role.max_budget,
        soft_budget: None,
        budget_duration: None,
        budget_reset_at: None,
        rpm_limit: role.rpm_limit,
        tpm_limit: role.tpm_limit,
        max_parallel_requests: role.max_parallel_requests,
        metadata: Value::Object(metadata),
        team_id: None,
        user_id: None,
        blocked: false,
        expires: Some(expires_at * 1000),
        created_at: now * 1000,
        updated_at: now * 1000,
    };
    let lease = LeaseRecord {
        lease_id: lease_id.clone(),
        mount: mount.to_owned(),
        role: role_name.to_owned(),
        token_id: key.token_id.clone(),
        issued_at: now,
        expires_at,
        last_renewal: None,
    };
    state.store().insert_leased_key(&key, &lease).await?;
    tracing::info!(lease_id = %lease_id, key = %key.key_name, "lease issued");
    Ok(Granted {
        lease_id,
        lease_duration: granted.ttl,
        data: json!({
            "key": plaintext,
            "key_alias": alias,
            "models": role.models,
            "max_budget": role.max_budget,
            "role": role_name,
        }),
        warnings: granted.warnings,
    })
}

/// Renews a lease by `increment` seconds (0: the role's TTL), never past its maximum.
pub async fn renew(
    state: &AppState,
    lease_id: &str,
    increment: u64,
) -> Result<Granted, EngineError> {
    let store = state.store();
    let lease = store
        .get_lease(lease_id)
        .await?
        .ok_or_else(|| EngineError::BadRequest("lease not found".to_owned()))?;
    let role = load_role(state, &lease.mount, &lease.role)
        .await?
        .unwrap_or_default();
    let now = now_secs();
    let granted = ttl::calculate(
        &engine_inputs(state, &role, increment),
        lease.issued_at,
        now,
    )
    .map_err(ttl_error)?;
    let expires_at = now + i64::try_from(granted.ttl).unwrap_or(i64::MAX / 2);
    if !store.renew_lease(lease_id, expires_at, now).await? {
        return Err(EngineError::BadRequest("lease not found".to_owned()));
    }
    if let Some(mut key) = store.get_key(&lease.token_id).await? {
        key.expires = Some(expires_at * 1000);
        store
            .patch_key(&lease.token_id, &key, &[KeyColumn::Expires])
            .await?;
    }
    state.keys_changed(&[&lease.token_id]).await;
    tracing::info!(lease_id = %lease_id, ttl = granted.ttl, "lease renewed");
    Ok(Granted {
        lease_id: lease_id.to_owned(),
        lease_duration: granted.ttl,
        data: Value::Null,
        warnings: granted.warnings,
    })
}

fn ttl_error(err: TtlError) -> EngineError {
    EngineError::BadRequest(err.to_string())
}

/// Revokes the given leases: their keys stop working at once.
pub async fn revoke_all(state: &AppState, leases: &[LeaseRecord]) -> Result<usize, EngineError> {
    let gone = state.store().revoke_leases(leases, now_secs()).await?;
    state.keys_changed(&gone).await;
    for token_id in &gone {
        state.ledgers().forget(token_id);
        state.limiter().forget(token_id).await;
    }
    if !gone.is_empty() {
        tracing::info!(count = gone.len(), "leases revoked");
    }
    Ok(gone.len())
}

/// Revokes one lease; an unknown lease is a no-op, as in Vault.
pub async fn revoke(state: &AppState, lease_id: &str) -> Result<(), EngineError> {
    if let Some(lease) = state.store().get_lease(lease_id).await? {
        revoke_all(state, &[lease]).await?;
    }
    Ok(())
}

/// Revokes every lease under `prefix`.
pub async fn revoke_prefix(state: &AppState, prefix: &str) -> Result<(), EngineError> {
    let leases = state.store().leases_with_prefix(prefix).await?;
    revoke_all(state, &leases).await?;
    Ok(())
}

/// `sys/leases/lookup`'s data for one lease.
pub async fn lookup(state: &AppState, lease_id: &str) -> Result<Value, EngineError> {
    let lease = state
        .store()
        .get_lease(lease_id)
        .await?
        .ok_or_else(|| EngineError::BadRequest("invalid lease".to_owned()))?;
    let now = now_secs();
    Ok(json!({
        "id": lease.lease_id,
        "issue_time": rfc3339(lease.issued_at),
        "expire_time": rfc3339(lease.expires_at),
        "last_renewal": lease.last_renewal.map(rfc3339),
        "renewable": true,
        "ttl": (lease.expires_at - now).max(0),
    }))
}

/// The next path segment of every live lease under `prefix` (`dev/` or a lease id).
pub async fn list(state: &AppState, prefix: &str) -> Result<Vec<String>, EngineError> {
    // Listing is of a "directory": `keygate/creds/dev` lists what is under `keygate/creds/dev/`.
    let prefix = &match prefix.trim_start_matches('/') {
        "" => String::new(),
        p if p.ends_with('/') => p.to_owned(),
        p => format!("{p}/"),
    };
    let leases = state.store().leases_with_prefix(prefix).await?;
    let mut keys: Vec<String> = Vec::new();
    for lease in leases {
        let rest = &lease.lease_id[prefix.len()..];
        let key = match rest.find('/') {
            Some(i) => rest[..=i].to_owned(),
            None => rest.to_owned(),
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort();
    Ok(keys)
}

/// The body's `lease_id` (and `increment`), as the CLI and hvac send them.
pub fn lease_fields(body: &Map<String, Value>) -> Result<(String, u64), EngineError> {
    let lease_id = body
        .get("lease_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EngineError::BadRequest("lease_id must be specified".to_owned()))?
        .to_owned();
    let increment = match body.get("increment") {
        Some(value) => super::duration::parse_value(value)
            .map_err(|err| EngineError::BadRequest(err.to_string()))?
            .as_secs(),
        None => 0,
    };
    Ok((lease_id, increment))
}
