//! The settable fields of a key, as `/key/generate`, `/key/update` and `/key/regenerate` take
//! them (LiteLLM's `GenerateKeyRequest`, `UpdateKeyRequest`, `RegenerateKeyRequest`), and what
//! they do to a stored key.
//!
//! On generate, `null` means "not given". On update and regenerate (LiteLLM's
//! `prepare_key_update_data`) a given field replaces the stored one and `null` clears it;
//! `duration` is re-based from now, with `null` or `"-1"` meaning "never expires" and `""`
//! meaning "unchanged"; `budget_duration` restarts the budget period from now, `null` or `""`
//! leave it as is; `spend` is written only when sent.

use serde_json::{json, Map, Value};

use super::body::{detail, Body, Field};
use super::error::KeyApiError;
use crate::keys::duration::{self, LitellmDuration};
use crate::keys::token;
use crate::store::{KeyColumn, KeyRecord};

/// Which request model the body is read as (each ignores fields the others know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// `POST /key/generate`.
    Generate,
    /// `POST /key/update` (`key` required).
    Update,
    /// `POST /key/regenerate` and `/key/{key}/regenerate`.
    Regenerate,
}

/// The fields of a key request.
#[derive(Debug)]
pub struct KeyFields {
    /// Generate: the caller-chosen plaintext; update and regenerate: the key to change.
    pub key: Field<String>,
    /// Regenerate: the caller-chosen new plaintext.
    pub new_key: Field<String>,
    /// Regenerate: LiteLLM's master-key rotation (refused).
    pub new_master_key: Field<String>,
    /// Unique alias.
    pub key_alias: Field<String>,
    /// Validity from now (`30d`).
    pub duration: Field<String>,
    /// Allowed models.
    pub models: Field<Vec<String>>,
    /// Spend so far, USD.
    pub spend: Field<f64>,
    /// USD cap.
    pub max_budget: Field<f64>,
    /// USD warning level.
    pub soft_budget: Field<f64>,
    /// Budget period.
    pub budget_duration: Field<String>,
    /// Requests per minute.
    pub rpm_limit: Field<i64>,
    /// Tokens per minute.
    pub tpm_limit: Field<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Field<i64>,
    /// Free-form object.
    pub metadata: Field<Map<String, Value>>,
    /// Owning team.
    pub team_id: Field<String>,
    /// Owning user.
    pub user_id: Field<String>,
    /// Refused when true.
    pub blocked: Field<bool>,
}

impl KeyFields {
    /// Reads and validates the body (422 on type errors); `None` is an absent body.
    pub fn read(body: Option<Body>, model: Model) -> Result<Self, KeyApiError> {
        let mut body = body.unwrap_or_else(Body::empty);
        let regenerate = model == Model::Regenerate;
        let fields = Self {
            key: body.string("key"),
            new_key: if regenerate {
                body.string("new_key")
            } else {
                Field::Absent
            },
            new_master_key: if regenerate {
                body.string("new_master_key")
            } else {
                Field::Absent
            },
            key_alias: body.string("key_alias"),
            duration: body.string("duration"),
            models: body.strings("models"),
            spend: body.float("spend"),
            max_budget: body.float("max_budget"),
            soft_budget: body.float("soft_budget"),
            budget_duration: body.string("budget_duration"),
            rpm_limit: body.int("rpm_limit"),
            tpm_limit: body.int("tpm_limit"),
            max_parallel_requests: body.int("max_parallel_requests"),
            metadata: body.dict("metadata"),
            team_id: body.string("team_id"),
            user_id: body.string("user_id"),
            blocked: body.bool("blocked"),
        };
        if model == Model::Update {
            match body.object().get("key") {
                None => {
                    let input = Value::Object(body.object().clone());
                    body.push(detail(
                        "missing",
                        &[json!("body"), json!("key")],
                        "Field required",
                        &input,
                    ));
                }
                Some(Value::Null) => {
                    body.fail("key", "string_type", "Input should be a valid string")
                }
                Some(_) => {}
            }
        }
        body.finish()?;
        Ok(fields)
    }

    /// A new key record from a generate request, stored under `plaintext`.
    pub fn new_record(&self, plaintext: &str, now: i64) -> Result<KeyRecord, KeyApiError> {
        let expires = match self.duration.as_value() {
            Some(text) => Some(parse_duration(text, false)?.after(now)),
            None => None,
        };
        let budget_duration = self.budget_duration.as_value().filter(|d| !d.is_empty());
        let budget_reset_at = match budget_duration {
            Some(text) => Some(parse_duration(text, false)?.after(now)),
            None => None,
        };
        Ok(KeyRecord {
            token_id: token::hash_key(plaintext),
            key_name: token::key_name(plaintext),
            key_alias: self.key_alias.as_value().cloned(),
            models: self.models.as_value().cloned().unwrap_or_default(),
            spend: self.spend.as_value().copied().unwrap_or(0.0),
            max_budget: self.max_budget.as_value().copied(),
            soft_budget: self.soft_budget.as_value().copied(),
            budget_duration: budget_duration.cloned(),
            budget_reset_at,
            rpm_limit: self.rpm_limit.as_value().copied(),
            tpm_limit: self.tpm_limit.as_value().copied(),
            max_parallel_requests: self.max_parallel_requests.as_value().copied(),
            metadata: Value::Object(self.metadata.as_value().cloned().unwrap_or_default()),
            team_id: self.team_id.as_value().cloned(),
            user_id: self.user_id.as_value().cloned(),
            blocked: self.blocked.as_value().copied().unwrap_or(false),
            expires,
            created_at: now,
            updated_at: now,
        })
    }

    /// Refuses negative budgets (LiteLLM checks `max_budget` everywhere, `soft_budget` on
    /// generate).
    pub fn check_budgets(&self, model: Model) -> Result<(), KeyApiError> {
        let update = model == Model::Update;
        if let Some(&value) = self.max_budget.as_value().filter(|v| **v < 0.0) {
            return Err(KeyApiError::NegativeBudget {
                field: "max_budget",
                value,
                update,
            });
        }
        if model == Model::Generate {
            if let Some(&value) = self.soft_budget.as_value().filter(|v| **v < 0.0) {
                return Err(KeyApiError::NegativeBudget {
                    field: "soft_budget",
                    value,
                    update,
                });
            }
        }
        Ok(())
    }

    /// Applies an update or regeneration to `key`; returns the columns to write.
    pub fn apply(
        &self,
        key: &mut KeyRecord,
        now: i64,
        model: Model,
    ) -> Result<Vec<KeyColumn>, KeyApiError> {
        let update = model == Model::Update;
        let mut columns = vec![KeyColumn::UpdatedAt];
        key.updated_at = now;
        if self.key_alias.is_set() {
            key.key_alias = self.key_alias.as_value().cloned();
            columns.push(KeyColumn::KeyAlias);
        }
        match &self.duration {
            Field::Absent => {}
            Field::Value(text) if text.is_empty() => {}
            Field::Null => set(&mut columns, KeyColumn::Expires, &mut key.expires, None),
            Field::Value(text) if text == "-1" => {
                set(&mut columns, KeyColumn::Expires, &mut key.expires, None)
            }
            Field::Value(text) => {
                let at = parse_duration(text, update)?.after(now);
                set(&mut columns, KeyColumn::Expires, &mut key.expires, Some(at));
            }
        }
        if let Some(text) = self.budget_duration.as_value().filter(|t| !t.is_empty()) {
            let next = parse_duration(text, update)?.after(now);
            key.budget_duration = Some(text.clone());
            key.budget_reset_at = Some(next);
            columns.extend([KeyColumn::BudgetDuration, KeyColumn::BudgetResetAt]);
        }
        if self.models.is_set() {
            key.models = self.models.as_value().cloned().unwrap_or_default();
            columns.push(KeyColumn::Models);
        }
        if let Some(&spend) = self.spend.as_value() {
            key.spend = spend;
            columns.push(KeyColumn::Spend);
        }
        optional(
            &mut columns,
            KeyColumn::MaxBudget,
            &mut key.max_budget,
            &self.max_budget,
        );
        optional(
            &mut columns,
            KeyColumn::SoftBudget,
            &mut key.soft_budget,
            &self.soft_budget,
        );
        optional(
            &mut columns,
            KeyColumn::RpmLimit,
            &mut key.rpm_limit,
            &self.rpm_limit,
        );
        optional(
            &mut columns,
            KeyColumn::TpmLimit,
            &mut key.tpm_limit,
            &self.tpm_limit,
        );
        optional(
            &mut columns,
            KeyColumn::MaxParallelRequests,
            &mut key.max_parallel_requests,
            &self.max_parallel_requests,
        );
        optional(
            &mut columns,
            KeyColumn::TeamId,
            &mut key.team_id,
            &self.team_id,
        );
        optional(
            &mut columns,
            KeyColumn::UserId,
            &mut key.user_id,
            &self.user_id,
        );
        if self.metadata.is_set() {
            key.metadata = Value::Object(self.metadata.as_value().cloned().unwrap_or_default());
            columns.push(KeyColumn::Metadata);
        }
        if self.blocked.is_set() {
            key.blocked = self.blocked.as_value().copied().unwrap_or(false);
            columns.push(KeyColumn::Blocked);
        }
        Ok(columns)
    }
}

fn set<T>(columns: &mut Vec<KeyColumn>, column: KeyColumn, slot: &mut T, value: T) {
    *slot = value;
    columns.push(column);
}

/// A field that `null` clears.
fn optional<T: Clone>(
    columns: &mut Vec<KeyColumn>,
    column: KeyColumn,
    slot: &mut Option<T>,
    field: &Field<T>,
) {
    if field.is_set() {
        *slot = field.as_value().cloned();
        columns.push(column);
    }
}

/// LiteLLM's duration grammar; 400 with LiteLLM's wording otherwise.
pub fn parse_duration(text: &str, update: bool) -> Result<LitellmDuration, KeyApiError> {
    duration::parse(text).map_err(|_| KeyApiError::BadDuration {
        text: text.to_owned(),
        update,
    })
}

/// A caller-chosen key shown in an error without revealing it (LiteLLM's masking).
pub fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() > 8 {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    } else {
        "****".to_owned()
    }
}

/// A key as it may appear in messages and logs: a hash as is, a plaintext key abbreviated.
pub fn shown(key: &str) -> String {
    if token::is_hash(key) {
        key.to_owned()
    } else {
        token::key_name(key)
    }
}
