//! Admission and settlement of one inference request made with a virtual key: check expiry,
//! block, model scope, limits and budget, reserve an upper estimate of the cost, and settle to
//! the real usage when the response is done (streams: when the last event has passed).
//!
//! A [`Meter`] that is dropped unsettled (the client went away mid-stream) charges its
//! reservation: the upstream worked for an unknown number of tokens, and leaving would
//! otherwise be a way round the budget.

use std::sync::Arc;
use std::time::Instant;

use super::limiter::AdmitError;
use super::limits::{to_micros, Admission, Refusal, MICROS};
use super::price::cost;
use super::spend::{now_ms, SpendWriter};
use super::token;
use crate::config::Price;
use crate::error::GatewayError;
use crate::keys::duration;
use crate::providers::translate::Usage;
use crate::providers::ModelRoute;
use crate::state::AppState;
use crate::store::{KeyRecord, SpendEntry};

/// Output tokens assumed when a request sets no `max_tokens`.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 4_096;

/// The virtual key behind `presented`, if it is one and may be used now.
pub async fn authenticate(
    state: &AppState,
    presented: &str,
) -> Result<Arc<KeyRecord>, GatewayError> {
    authenticate_digest(state, &token::digest(presented)).await
}

/// [`authenticate`] for a key already hashed ([`token::digest`]).
pub async fn authenticate_digest(
    state: &AppState,
    digest: &[u8; 32],
) -> Result<Arc<KeyRecord>, GatewayError> {
    let token_id = token::token_id_of(digest);
    let key = state
        .keys()
        .get(state.store(), &token_id)
        .await
        .map_err(|err| GatewayError::StoreUnavailable(err.to_string()))?
        .ok_or(GatewayError::Unauthorized)?;
    let now = now_ms();
    if key.expires.is_some_and(|at| at <= now) {
        return Err(GatewayError::KeyExpired);
    }
    if key.blocked {
        return Err(GatewayError::KeyBlocked);
    }
    if let Some(due) = key.budget_reset_at.filter(|due| *due <= now) {
        return reset_budget(state, &key, due, now).await;
    }
    Ok(key)
}

/// Starts a new budget period: spend back to zero, next reset scheduled.
async fn reset_budget(
    state: &AppState,
    key: &Arc<KeyRecord>,
    due: i64,
    now: i64,
) -> Result<Arc<KeyRecord>, GatewayError> {
    let next = key
        .budget_duration
        .as_deref()
        .and_then(|d| duration::parse(d).ok())
        .map(|d| d.after(now));
    state
        .store()
        .reset_spend(&key.token_id, due, next)
        .await
        .map_err(|err| GatewayError::StoreUnavailable(err.to_string()))?;
    state.ledgers().of(key).set_spent(0.0);
    state.limiter().spend_set(&key.token_id, 0.0).await;
    state.keys().invalidate(&key.token_id);
    tracing::info!(key = %key.key_name, "budget period reset");
    let mut fresh = KeyRecord::clone(key);
    fresh.spend = 0.0;
    fresh.budget_reset_at = next;
    Ok(Arc::new(fresh))
}

/// Whether `key` may call the model `name`.
pub fn allows_model(key: &KeyRecord, name: &str) -> bool {
    key.models.is_empty()
        || key
            .models
            .iter()
            .any(|m| m == name || m == "all-proxy-models" || m == "*")
}

/// What is known of a request before it is sent.
pub struct Ask {
    /// Body size in bytes (a bound on the prompt's tokens).
    pub body_bytes: usize,
    /// `max_tokens` / `max_completion_tokens`, when set.
    pub max_output: Option<u64>,
    /// Embeddings produce no output tokens.
    pub embeddings: bool,
}

/// Admits a request for `key` on `route`, reserving its estimated cost (with cluster-wide
/// limits: one PostgreSQL statement or Redis script per limit kind).
/// `reserve_price` is the highest price the request may end up charged at (a fallback may
/// cost more than `route`); the meter starts at `route`'s price (see [`Meter::set_price`]).
pub async fn admit(
    state: &AppState,
    key: &Arc<KeyRecord>,
    route: &ModelRoute,
    reserve_price: Option<Price>,
    ask: &Ask,
) -> Result<Meter, GatewayError> {
    if !allows_model(key, &route.name) {
        return Err(GatewayError::ModelNotAllowed(route.name.clone()));
    }
    let price = route.effective_price;
    let reserve = reserve_price.map_or(0, |p| to_micros(estimate(&p, ask)));
    let ledger = state.ledgers().of(key);
    let admission =
        state
            .limiter()
            .admit(&ledger, key, reserve)
            .await
            .map_err(|err| match err {
                AdmitError::Refused(refusal) => GatewayError::from(refusal),
                AdmitError::Unavailable(why) => GatewayError::LimiterUnavailable(why),
                AdmitError::Gone => GatewayError::Unauthorized,
            })?;
    if let Some(soft) = key.soft_budget {
        if ledger.spent_usd() >= soft {
            tracing::warn!(key = %key.key_name, spend = ledger.spent_usd(), soft_budget = soft, "key passed its soft budget");
        }
    }
    Ok(Meter {
        admission: Some(admission),
        token_id: key.token_id.clone(),
        model: route.name.clone(),
        price,
        started: Instant::now(),
        writer: state.spend_writer().clone(),
    })
}

/// An upper estimate of a request's cost: every body byte a prompt token, and the most output
/// tokens it allows.
fn estimate(price: &Price, ask: &Ask) -> f64 {
    let usage = Usage {
        input_tokens: ask.body_bytes as u64,
        output_tokens: if ask.embeddings {
            0
        } else {
            ask.max_output.unwrap_or(DEFAULT_OUTPUT_ESTIMATE)
        },
        cached_input_tokens: 0,
    };
    cost(price, &usage)
}

impl From<Refusal> for GatewayError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Budget { spend, max_budget } => Self::BudgetExceeded { spend, max_budget },
            Refusal::Rpm { limit, retry_after } => Self::RateLimited {
                what: format!("rpm_limit ({limit} requests per minute)"),
                retry_after,
            },
            Refusal::Tpm { limit, retry_after } => Self::RateLimited {
                what: format!("tpm_limit ({limit} tokens per minute)"),
                retry_after,
            },
            Refusal::Parallel { limit } => Self::RateLimited {
                what: format!("max_parallel_requests ({limit} at once)"),
                retry_after: 1,
            },
        }
    }
}

/// The running account of one admitted request.
pub struct Meter {
    admission: Option<Admission>,
    token_id: String,
    model: String,
    price: Option<Price>,
    started: Instant,
    writer: SpendWriter,
}

impl Meter {
    /// Charges at `price` instead of the admitted model's: the price of the deployment that
    /// actually serves (another deployment or a fallback model may be priced differently). The
    /// reservation made at admission stays as it was.
    pub fn set_price(&mut self, price: Option<Price>) {
        self.price = price;
    }

    /// Settles with the usage the upstream reported (`None`: unknown) and the status answered.
    pub fn finish(mut self, usage: Option<Usage>, status: u16) {
        self.settle(usage, status);
    }

    fn settle(&mut self, usage: Option<Usage>, status: u16) {
        let Some(admission) = self.admission.take() else {
            return;
        };
        let (micros, usage) = match usage {
            Some(usage) => (self.price.map_or(0, |p| to_micros(cost(&p, &usage))), usage),
            // Served, or abandoned mid-response, with no usage seen: charge the reservation.
            None if status < 400 || status == 499 => (admission.reserved(), Usage::default()),
            None => (0, Usage::default()),
        };
        let tokens = i64::try_from(usage.input_tokens + usage.output_tokens).unwrap_or(i64::MAX);
        // The spend is queued before the reservation is given back, so the cluster never
        // sees the reservation gone before the cost arrives.
        self.writer.record(SpendEntry {
            token_id: std::mem::take(&mut self.token_id),
            model: std::mem::take(&mut self.model),
            prompt_tokens: i64::try_from(usage.input_tokens).unwrap_or(i64::MAX),
            completion_tokens: i64::try_from(usage.output_tokens).unwrap_or(i64::MAX),
            cost: micros as f64 / MICROS,
            status: i64::from(status),
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            created_at: now_ms(),
        });
        admission.settle(micros, tokens);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.settle(None, 499);
    }
}
