//! A stored key as LiteLLM shows it: the `LiteLLM_VerificationToken` row of `/key/info` and
//! `/key/list?return_full_object=true`, and the `GenerateKeyResponse` of `/key/generate` and
//! regeneration. Fields keygate does not implement are present with LiteLLM's empty defaults, so
//! clients that read them find the type they expect. Times are ISO 8601 in UTC with
//! microseconds and `Z` (pydantic's rendering); `expires: null` never expires.

use serde_json::{json, Map, Value};

use crate::keys::duration::civil_from_days;
use crate::store::KeyRecord;

/// Unix milliseconds as `2026-05-01T12:34:56.789000Z`.
pub fn iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1000 * 1000
    )
}

fn iso_opt(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(iso(ms)))
}

/// LiteLLM keeps a soft budget in a linked budget row; so does this view.
fn budget_table(key: &KeyRecord) -> Value {
    match key.soft_budget {
        Some(soft) => json!({
            "budget_id": null,
            "soft_budget": soft,
            "max_budget": null,
            "max_parallel_requests": null,
            "tpm_limit": null,
            "rpm_limit": null,
            "model_max_budget": null,
            "budget_duration": null,
        }),
        None => Value::Null,
    }
}

/// The key's row as `/key/info` shows it (LiteLLM pops `token` there).
pub fn token_row(key: &KeyRecord) -> Map<String, Value> {
    let row = json!({
        "key_name": key.key_name,
        "key_alias": key.key_alias,
        "spend": key.spend,
        "max_budget": key.max_budget,
        "expires": iso_opt(key.expires),
        "models": key.models,
        "aliases": {},
        "config": {},
        "user_id": key.user_id,
        "team_id": key.team_id,
        "max_parallel_requests": key.max_parallel_requests,
        "metadata": key.metadata,
        "tpm_limit": key.tpm_limit,
        "rpm_limit": key.rpm_limit,
        "budget_duration": key.budget_duration,
        "budget_reset_at": iso_opt(key.budget_reset_at),
        "allowed_cache_controls": [],
        "allowed_routes": [],
        "permissions": {},
        "model_spend": {},
        "model_max_budget": {},
        "soft_budget_cooldown": false,
        "blocked": key.blocked,
        "litellm_budget_table": budget_table(key),
        "budget_id": null,
        "organization_id": null,
        "created_at": iso(key.created_at),
        "created_by": null,
        "updated_at": iso(key.updated_at),
        "updated_by": null,
        "object_permission_id": null,
        "object_permission": null,
    });
    match row {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The full key object of `/key/list?return_full_object=true`: the row with its `token`.
pub fn full_object(key: &KeyRecord) -> Value {
    let mut row = token_row(key);
    row.insert("token".to_owned(), Value::String(key.token_id.clone()));
    Value::Object(row)
}

/// What generation and regeneration return: the plaintext `key` (shown this once), its
/// `token_id`, and the key's settings. `token` is the hash on generation and `null` on
/// regeneration, as in LiteLLM.
pub fn generated(
    key: &KeyRecord,
    plaintext: &str,
    duration: Option<&str>,
    token: Option<&str>,
) -> Value {
    json!({
        "key_alias": key.key_alias,
        "duration": duration,
        "models": key.models,
        "spend": key.spend,
        "max_budget": key.max_budget,
        "soft_budget": key.soft_budget,
        "user_id": key.user_id,
        "team_id": key.team_id,
        "max_parallel_requests": key.max_parallel_requests,
        "metadata": key.metadata,
        "tpm_limit": key.tpm_limit,
        "rpm_limit": key.rpm_limit,
        "budget_duration": key.budget_duration,
        "allowed_cache_controls": [],
        "config": {},
        "permissions": {},
        "model_max_budget": {},
        "model_rpm_limit": null,
        "model_tpm_limit": null,
        "guardrails": null,
        "blocked": key.blocked,
        "aliases": {},
        "key": plaintext,
        "budget_id": null,
        "tags": null,
        "enforced_params": null,
        "allowed_routes": [],
        "key_name": key.key_name,
        "expires": iso_opt(key.expires),
        "token_id": key.token_id,
        "organization_id": null,
        "litellm_budget_table": null,
        "token": token,
        "created_by": null,
        "updated_by": null,
        "created_at": iso(key.created_at),
        "updated_at": iso(key.updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso(1_767_225_599_999), "2025-12-31T23:59:59.999000Z");
        assert_eq!(iso(951_782_400_123), "2000-02-29T00:00:00.123000Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999000Z");
    }
}
