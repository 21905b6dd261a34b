//! Virtual keys: keygate's own keys for consumers, scoped to models, with budgets, rate limits
//! and expiry, managed through LiteLLM's key API. Upstream keys stay hidden behind them.

pub mod cache;
pub mod duration;
pub mod invalidate;
pub mod limiter;
pub mod limits;
pub mod meter;
pub mod price;
pub mod spend;
pub mod token;

/// A plain key record for unit tests.
#[cfg(test)]
pub(crate) fn test_record(token_id: &str) -> crate::store::KeyRecord {
    crate::store::KeyRecord {
        token_id: token_id.into(),
        key_name: "sk-...test".into(),
        key_alias: None,
        models: vec![],
        spend: 0.0,
        max_budget: None,
        soft_budget: None,
        budget_duration: None,
        budget_reset_at: None,
        rpm_limit: None,
        tpm_limit: None,
        max_parallel_requests: None,
        metadata: serde_json::json!({}),
        team_id: None,
        user_id: None,
        blocked: false,
        expires: None,
        created_at: 0,
        updated_at: 0,
    }
}
