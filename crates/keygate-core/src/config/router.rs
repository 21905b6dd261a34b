//! The `router:` section: how a request moves between the deployments of a model group and on
//! to its fallbacks when an upstream fails (retries, backoff, cooldown).
//!
//! The deployments themselves are `models:` entries sharing one `name` (LiteLLM's `model_list`
//! convention), with their `weight` and `fallbacks`; see [`super::ModelConfig`].

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::duration;

/// Retry, backoff and cooldown settings shared by every model group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Extra attempts a request may make across the deployments of one model group after a
    /// retryable failure (default 2). A group of one deployment is never retried (the caller's
    /// SDK retries already); its fallbacks still are tried.
    #[serde(default = "default_num_retries")]
    pub num_retries: u32,
    /// First wait before trying again a deployment this request already tried (default 100ms);
    /// doubled at each such retry, with jitter. A `retry-after` from the upstream is honoured up
    /// to [`MAX_RETRY_WAIT`]. Moving to a deployment not tried yet does not wait.
    #[serde(
        default = "default_retry_backoff",
        deserialize_with = "duration::deserialize"
    )]
    pub retry_backoff: Duration,
    /// Consecutive retryable failures after which a deployment is cooled down (default 3, at
    /// least 1).
    #[serde(default = "default_allowed_fails", deserialize_with = "at_least_one")]
    pub allowed_fails: u32,
    /// How long a cooled-down deployment is skipped (default 30s). When every deployment of a
    /// group is cooling down, the request goes to the group's fallbacks if it has any, else to
    /// the deployment that failed least recently.
    #[serde(
        default = "default_cooldown",
        deserialize_with = "duration::deserialize"
    )]
    pub cooldown: Duration,
}

/// Longest wait before a retry, whatever the backoff or the upstream's `retry-after` say.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            num_retries: default_num_retries(),
            retry_backoff: default_retry_backoff(),
            allowed_fails: default_allowed_fails(),
            cooldown: default_cooldown(),
        }
    }
}

fn default_num_retries() -> u32 {
    2
}
fn default_retry_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_allowed_fails() -> u32 {
    3
}
fn default_cooldown() -> Duration {
    Duration::from_secs(30)
}

fn at_least_one<'de, D: Deserializer<'de>>(de: D) -> Result<u32, D::Error> {
    let value = u32::deserialize(de)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(value)
}

/// `weight` of a model entry: a finite number greater than zero.
pub(super) fn positive_weight<'de, D: Deserializer<'de>>(de: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(de)?;
    if !(value.is_finite() && value > 0.0) {
        return Err(serde::de::Error::custom(format!(
            "weight must be a number greater than 0, got {value}"
        )));
    }
    Ok(value)
}
