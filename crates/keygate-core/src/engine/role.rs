//! Roles: what a lease's key may do (models, budget, rate limits, metadata), how its alias is
//! built, and how long leases live (`ttl`, `max_ttl`). Written the way Vault's framework reads
//! fields: the `bao`/`vault` CLI sends every `key=value` as a JSON string, so lists may come as
//! `"a,b"`, numbers as `"5"`, durations as `"60"` or `"1h"`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::duration;
use super::error::EngineError;

/// A role as stored (JSON in the roles table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// Models the issued keys may call (empty: all).
    #[serde(default)]
    pub models: Vec<String>,
    /// USD cap of each issued key.
    #[serde(default)]
    pub max_budget: Option<f64>,
    /// Requests per minute of each issued key.
    #[serde(default)]
    pub rpm_limit: Option<i64>,
    /// Tokens per minute of each issued key.
    #[serde(default)]
    pub tpm_limit: Option<i64>,
    /// Concurrent requests of each issued key.
    #[serde(default)]
    pub max_parallel_requests: Option<i64>,
    /// Copied into each issued key's metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Issued keys are named `{prefix}-{role}-{8 hex}`.
    #[serde(default = "default_prefix")]
    pub key_alias_prefix: String,
    /// Default lease TTL, seconds (0: the engine's).
    #[serde(default)]
    pub ttl: u64,
    /// Longest a lease lives, seconds (0: the engine's).
    #[serde(default)]
    pub max_ttl: u64,
}

fn default_prefix() -> String {
    "keygate".to_owned()
}

impl Role {
    /// A new role from the fields of a write, over `existing` when the role exists (fields not
    /// given keep their value, as Vault's roles do).
    pub fn write(existing: Option<Role>, body: &Map<String, Value>) -> Result<Role, EngineError> {
        let mut role = existing.unwrap_or_else(|| Role {
            key_alias_prefix: default_prefix(),
            ..Role::default()
        });
        for (field, value) in body {
            match field.as_str() {
                "models" => role.models = strings(field, value)?,
                "max_budget" => role.max_budget = number(field, value)?,
                "rpm_limit" => role.rpm_limit = integer(field, value)?,
                "tpm_limit" => role.tpm_limit = integer(field, value)?,
                "max_parallel_requests" => role.max_parallel_requests = integer(field, value)?,
                "metadata" => role.metadata = map(field, value)?,
                "key_alias_prefix" => {
                    role.key_alias_prefix = match value {
                        Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
                        Value::Null => default_prefix(),
                        _ => return Err(bad(field, "a non-empty string")),
                    }
                }
                "ttl" => role.ttl = seconds(field, value)?,
                "max_ttl" => role.max_ttl = seconds(field, value)?,
                // Vault ignores fields a path does not declare.
                _ => {}
            }
        }
        if role.max_ttl > 0 && role.ttl > role.max_ttl {
            return Err(EngineError::BadRequest(
                "\"ttl\" cannot be greater than \"max_ttl\"".to_owned(),
            ));
        }
        Ok(role)
    }

    /// The role as `bao read` shows it.
    pub fn to_data(&self) -> Value {
        json!({
            "models": self.models,
            "max_budget": self.max_budget,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "max_parallel_requests": self.max_parallel_requests,
            "metadata": self.metadata,
            "key_alias_prefix": self.key_alias_prefix,
            "ttl": self.ttl,
            "max_ttl": self.max_ttl,
        })
    }
}

fn bad(field: &str, what: &str) -> EngineError {
    EngineError::BadRequest(format!(
        "error converting input for field \"{field}\": expected {what}"
    ))
}

fn strings(field: &str, value: &Value) -> Result<Vec<String>, EngineError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_owned()),
                _ => Err(bad(field, "a list of strings")),
            })
            .collect(),
        _ => Err(bad(field, "a list of strings")),
    }
}

fn number(field: &str, value: &Value) -> Result<Option<f64>, EngineError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .filter(|v| *v >= 0.0)
            .map(Some)
            .ok_or_else(|| bad(field, "a non-negative number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Some)
            .ok_or_else(|| bad(field, "a non-negative number")),
        _ => Err(bad(field, "a number")),
    }
}

fn integer(field: &str, value: &Value) -> Result<Option<i64>, EngineError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .filter(|v| *v >= 0)
            .map(Some)
            .ok_or_else(|| bad(field, "a non-negative integer")),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .map(Some)
            .ok_or_else(|| bad(field, "a non-negative integer")),
        _ => Err(bad(field, "an integer")),
    }
}

fn map(field: &str, value: &Value) -> Result<Map<String, Value>, EngineError> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        Value::String(s) if s.trim().is_empty() => Ok(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(bad(field, "a JSON object")),
        },
        _ => Err(bad(field, "a JSON object")),
    }
}

fn seconds(field: &str, value: &Value) -> Result<u64, EngineError> {
    duration::parse_value(value)
        .map(|d| d.as_secs())
        .map_err(|_| bad(field, "a duration (seconds, or e.g. 1h, 768h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn cli_strings_are_coerced_like_vault() {
        let role = Role::write(
            None,
            &body(json!({"models": "gpt-4o-mini, claude", "max_budget": "5", "rpm_limit": "60",
                         "ttl": "60", "max_ttl": "2h", "metadata": "{\"team\":\"a\"}", "ignored": 1})),
        )
        .unwrap();
        assert_eq!(role.models, ["gpt-4o-mini", "claude"]);
        assert_eq!(role.max_budget, Some(5.0));
        assert_eq!(role.rpm_limit, Some(60));
        assert_eq!((role.ttl, role.max_ttl), (60, 7200));
        assert_eq!(role.metadata["team"], "a");
        assert_eq!(role.key_alias_prefix, "keygate");
        // A later write changes only what it names.
        let role = Role::write(Some(role), &body(json!({"ttl": 30}))).unwrap();
        assert_eq!((role.ttl, role.max_ttl, role.models.len()), (30, 7200, 2));
    }

    #[test]
    fn ttl_past_max_ttl_and_bad_values_are_refused() {
        let err = Role::write(None, &body(json!({"ttl": "3h", "max_ttl": "1h"}))).unwrap_err();
        assert!(err.to_string().contains("max_ttl"), "{err}");
        for bad in [
            json!({"max_budget": "lots"}),
            json!({"rpm_limit": -1}),
            json!({"ttl": "soon"}),
            json!({"metadata": "[1]"}),
        ] {
            assert!(Role::write(None, &body(bad.clone())).is_err(), "{bad}");
        }
    }
}
