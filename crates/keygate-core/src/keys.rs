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
    crate::store::KeyRecord::new(token_id, "sk-...test", 0)
}
