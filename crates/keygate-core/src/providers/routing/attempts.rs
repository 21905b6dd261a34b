//! The attempts of one request: which deployment to try, and after a failure whether to try
//! another deployment of the group, wait and try again, move to the next fallback model, or
//! answer with the error.
//!
//! The handler drives it: it sends to [`Attempts::current`], and on an error asks
//! [`Attempts::retry`] whether to go on. Only failures before the upstream answered with a
//! success reach it, so nothing is ever retried once a response (a stream's first byte
//! included) is on its way to the client.
//!
//! Within a group, a retry goes to a healthy deployment this request has not tried yet (by
//! weight) without waiting; once all have been tried it waits (exponential backoff with
//! jitter, or the upstream's `retry-after`, capped) and tries a healthy one again. A group of
//! one deployment is not retried. Cooling deployments are skipped; a group whose deployments
//! are all cooling is skipped for its fallbacks, or, with none left, served by the deployment
//! that failed least recently.

use std::time::Duration;

use http::StatusCode;

use super::{Deployment, ModelGroup, Routing};
use crate::config::MAX_RETRY_WAIT;
use crate::error::GatewayError;
use crate::providers::route::now_ms;
use crate::telemetry;

/// Where a request is in its group and fallback chain.
pub struct Attempts<'a> {
    routing: &'a Routing,
    group: &'a ModelGroup,
    /// Groups still to visit after `group`.
    rest: &'a [usize],
    /// Several deployments or fallbacks: health is kept and headers are sent.
    routed: bool,
    /// Index of the deployment being tried, in `group`.
    current: usize,
    /// Deployments of `group` this request tried, as bits.
    tried: u64,
    /// Retries made in `group`.
    group_retries: u32,
    /// Waits made so far (the backoff's exponent).
    waits: u32,
    retries: u32,
    fallbacks: u32,
}

impl<'a> Attempts<'a> {
    /// Starts a request for `group`; `fallbacks` false keeps it in the group (a caller's own
    /// key belongs to the model it asked for).
    pub fn start(routing: &'a Routing, group: &'a ModelGroup, fallbacks: bool) -> Self {
        let rest: &[usize] = if fallbacks { &group.chain } else { &[] };
        let mut attempts = Self {
            routing,
            group,
            rest,
            routed: group.deployments.len() > 1 || !rest.is_empty(),
            current: 0,
            tried: 1,
            group_retries: 0,
            waits: 0,
            retries: 0,
            fallbacks: 0,
        };
        if attempts.routed {
            let now = now_ms();
            attempts.skip_cooling(now);
            attempts.enter(now);
        }
        attempts
    }

    /// The deployment to send to now.
    pub fn current(&self) -> &'a Deployment {
        &self.group.deployments[self.current]
    }

    /// Whether the request is routed at all (several deployments or fallbacks): only then are
    /// health kept and the `x-keygate-*` headers sent.
    pub fn is_routed(&self) -> bool {
        self.routed
    }

    /// Retries made so far, within groups.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Fallback models moved to so far.
    pub fn fallbacks(&self) -> u32 {
        self.fallbacks
    }

    /// Records that the current deployment answered with a success.
    pub fn succeeded(&self) {
        if self.routed {
            self.current().health.succeeded();
        }
    }

    /// After `error` from the current deployment: `Ok` when another attempt is due (the next
    /// [`Attempts::current`], after any wait), else the error to answer with.
    pub async fn retry(&mut self, error: GatewayError) -> Result<(), GatewayError> {
        let Some(reason) = retry_reason(&error) else {
            return Err(error);
        };
        if !self.routed {
            return Err(error);
        }
        let policy = &self.routing.policy;
        let now = now_ms();
        let failed = self.current();
        let model = self.group.name.as_str();
        // A deployment that cannot do what was asked (embeddings on an Anthropic deployment of
        // a mixed group) is passed over, but it is not failing.
        let counts = reason != UNSUPPORTED;
        if counts
            && failed
                .health
                .failed(now, policy.allowed_fails, policy.cooldown)
        {
            telemetry::record_cooldown(model, failed.label());
            tracing::warn!(
                model,
                deployment = failed.label(),
                reason,
                cooldown_ms = policy.cooldown.as_millis() as u64,
                "deployment cooling down"
            );
        }
        if self.group.deployments.len() > 1 && self.group_retries < policy.num_retries {
            self.group_retries += 1;
            self.retries += 1;
            let next = self.pick(now);
            let again = self.tried & (1 << next) != 0;
            self.tried |= 1 << next;
            self.current = next;
            telemetry::record_retry(model, reason);
            let wait = if again {
                self.waits += 1;
                wait(policy.retry_backoff, self.waits - 1, retry_after(&error))
            } else {
                Duration::ZERO
            };
            tracing::warn!(
                model,
                deployment = failed.label(),
                reason,
                next = self.current().label(),
                wait_ms = wait.as_millis() as u64,
                "upstream failed; retrying"
            );
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            return Ok(());
        }
        if !self.next_group() {
            return Err(error);
        }
        let now = now_ms();
        self.skip_cooling(now);
        self.enter(now);
        tracing::warn!(model, deployment = failed.label(), reason, fallback = %self.group.name, next = self.current().label(), "upstream failed; falling back");
        Ok(())
    }

    /// Moves to the next group of the chain; false when there is none.
    fn next_group(&mut self) -> bool {
        let Some((&g, rest)) = self.rest.split_first() else {
            return false;
        };
        let from = self.group.name.as_str();
        self.group = &self.routing.groups[g];
        self.rest = rest;
        self.fallbacks += 1;
        telemetry::record_fallback(from, &self.group.name);
        true
    }

    /// Moves past groups whose deployments all cool down, as long as a later group is left.
    fn skip_cooling(&mut self, now: u64) {
        while !self.rest.is_empty() && self.group.deployments.iter().all(|d| d.health.cooling(now))
        {
            let cooling = self.group.name.as_str();
            self.next_group();
            tracing::warn!(model = cooling, fallback = %self.group.name, "every deployment is cooling down; falling back");
        }
    }

    /// Picks the first deployment of the group just entered.
    fn enter(&mut self, now: u64) {
        self.tried = 0;
        self.group_retries = 0;
        self.current = self.pick(now);
        self.tried = 1 << self.current;
    }

    /// A healthy deployment not tried yet, else a healthy one, by weight; with none healthy,
    /// the one that failed least recently.
    fn pick(&self, now: u64) -> usize {
        let deployments = &self.group.deployments;
        if deployments.len() == 1 {
            return 0;
        }
        let healthy = deployments
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.health.cooling(now))
            .fold(0u64, |set, (i, _)| set | 1 << i);
        let fresh = healthy & !self.tried;
        let set = if fresh != 0 { fresh } else { healthy };
        if set == 0 {
            return deployments
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| d.health.last_failed())
                .map_or(0, |(i, _)| i);
        }
        weighted(deployments, set, rand::random::<f64>())
    }
}

/// The deployment of `set` (bits) that `roll` (in 0..1) lands on, each taking its weight's
/// share.
pub(super) fn weighted(deployments: &[Deployment], set: u64, roll: f64) -> usize {
    let members = || {
        deployments
            .iter()
            .enumerate()
            .filter(move |(i, _)| set & (1 << i) != 0)
    };
    let total: f64 = members().map(|(_, d)| d.weight).sum();
    let mut point = roll * total;
    let mut last = 0;
    for (i, deployment) in members() {
        if point < deployment.weight {
            return i;
        }
        point -= deployment.weight;
        last = i;
    }
    last
}

/// The wait before the `n`-th retry of an already tried deployment: `base * 2^n`, half of it
/// random, at least the upstream's `retry-after`, at most [`MAX_RETRY_WAIT`].
pub(super) fn wait(base: Duration, n: u32, retry_after: Option<Duration>) -> Duration {
    let full = base.saturating_mul(1u32 << n.min(16)).min(MAX_RETRY_WAIT);
    let jittered = full.mul_f64(0.5 + rand::random::<f64>() / 2.0);
    jittered
        .max(retry_after.unwrap_or_default())
        .min(MAX_RETRY_WAIT)
}

/// The upstream's `retry-after`, in seconds, of an error.
fn retry_after(error: &GatewayError) -> Option<Duration> {
    let GatewayError::Upstream {
        retry_after: Some(value),
        ..
    } = error
    else {
        return None;
    };
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The retry reason of a deployment that cannot do the operation at all.
const UNSUPPORTED: &str = "unsupported";

/// Why `error` may be retried elsewhere (a metric label), or `None` when it is answered at once:
/// connection failures, timeouts before the response head, a key that does not resolve, an
/// operation the deployment does not offer, and 429, 500, 502, 503, 504 and Anthropic's 529. Other statuses are the request's fault and
/// would fail anywhere; a 401 is already handled by the rotation of a deployment's keys.
pub fn retry_reason(error: &GatewayError) -> Option<&'static str> {
    match error {
        GatewayError::UpstreamTimeout(_) => Some("timeout"),
        GatewayError::UpstreamUnavailable { .. } => Some("connection"),
        GatewayError::NoCredential { .. } => Some("no_credential"),
        GatewayError::UnsupportedOperation { .. } => Some(UNSUPPORTED),
        GatewayError::Upstream { status, .. } => match *status {
            StatusCode::TOO_MANY_REQUESTS => Some("429"),
            StatusCode::INTERNAL_SERVER_ERROR => Some("500"),
            StatusCode::BAD_GATEWAY => Some("502"),
            StatusCode::SERVICE_UNAVAILABLE => Some("503"),
            StatusCode::GATEWAY_TIMEOUT => Some("504"),
            s if s.as_u16() == 529 => Some("529"),
            _ => None,
        },
        _ => None,
    }
}
