//! Metrics: the Prometheus recorder and the few series keygate records. Labels never carry
//! keys: only route, model name, provider and status.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Requests served, by route, model, provider and status.
pub const REQUESTS: &str = "keygate_requests_total";
/// Time to the response head, by route, model and provider.
pub const LATENCY: &str = "keygate_request_duration_seconds";
/// Upstream answers, by model, provider and status.
pub const UPSTREAM: &str = "keygate_upstream_responses_total";
/// Retries to another (or the same) deployment of a model group, by model and reason.
pub const RETRIES: &str = "keygate_upstream_retries_total";
/// Moves from a model group to one of its fallbacks, by model and fallback.
pub const FALLBACKS: &str = "keygate_fallbacks_total";
/// Deployments put into cooldown, by model and deployment (`{name}#{n}`).
pub const COOLDOWNS: &str = "keygate_deployment_cooldowns_total";

/// How often recorded histogram samples are folded into their buckets (the exporter's own
/// default when it runs upkeep itself).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global Prometheus recorder once; later calls return the same handle.
pub fn install_recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map_err(|err| tracing::warn!(error = %err, "metrics buckets rejected"))
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// Folds recorded histogram samples into their buckets every [`UPKEEP_EVERY`] until `stop`.
/// The recorder keeps every sample until upkeep (or a scrape of `/metrics`) drains it, so
/// without this task memory grows with every request when nothing scrapes.
pub async fn upkeep(handle: PrometheusHandle, stop: CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            () = stop.cancelled() => return,
        }
    }
}

/// The series of one model, registered once per config load so the request path does not build
/// label sets: latency by route, and the common outcomes (200 to the caller, 200 upstream).
#[derive(Debug)]
pub struct RouteMetrics {
    ok: [metrics::Counter; 3],
    latency: [metrics::Histogram; 3],
    upstream_ok: metrics::Counter,
}

/// The inference routes, in [`RouteMetrics`]' order.
pub const ROUTES: [&str; 3] = ["chat_completions", "messages", "embeddings"];

impl RouteMetrics {
    /// Registers the series of `model` (served by `provider`) with the installed recorder.
    pub fn new(model: &str, provider: &str) -> Self {
        let ok = ROUTES.map(|route| {
            metrics::counter!(REQUESTS, "route" => route, "model" => model.to_owned(),
                "provider" => provider.to_owned(), "status" => "200")
        });
        let latency = ROUTES.map(|route| {
            metrics::histogram!(LATENCY, "route" => route, "model" => model.to_owned(), "provider" => provider.to_owned())
        });
        let upstream_ok = metrics::counter!(UPSTREAM, "model" => model.to_owned(),
            "provider" => provider.to_owned(), "status" => "200");
        Self {
            ok,
            latency,
            upstream_ok,
        }
    }

    /// Records one finished request on `route` (an entry of [`ROUTES`]).
    pub fn record_request(
        &self,
        route: &'static str,
        model: &str,
        provider: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let Some(i) = ROUTES.iter().position(|r| *r == route) else {
            return record_request(route, model, provider, status, elapsed);
        };
        if status == 200 {
            self.ok[i].increment(1);
        } else {
            metrics::counter!(REQUESTS, "route" => route, "model" => model.to_owned(),
                "provider" => provider.to_owned(), "status" => status_label(status))
            .increment(1);
        }
        self.latency[i].record(elapsed.as_secs_f64());
    }

    /// Records one upstream answer.
    pub fn record_upstream(&self, model: &str, provider: &str, status: u16) {
        if status == 200 {
            self.upstream_ok.increment(1);
        } else {
            record_upstream(model, provider, status);
        }
    }
}

/// Records one finished request (for streams: when the response head was sent).
pub fn record_request(
    route: &'static str,
    model: &str,
    provider: &str,
    status: u16,
    elapsed: Duration,
) {
    metrics::counter!(REQUESTS, "route" => route, "model" => model.to_owned(),
        "provider" => provider.to_owned(), "status" => status_label(status))
    .increment(1);
    metrics::histogram!(LATENCY, "route" => route, "model" => model.to_owned(), "provider" => provider.to_owned())
        .record(elapsed.as_secs_f64());
}

/// Records one upstream answer.
pub fn record_upstream(model: &str, provider: &str, status: u16) {
    metrics::counter!(UPSTREAM, "model" => model.to_owned(), "provider" => provider.to_owned(),
        "status" => status_label(status))
    .increment(1);
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// Records a retry within `model`'s group, for `reason` (`timeout`, `connection`, `503`, ...).
pub fn record_retry(model: &str, reason: &'static str) {
    metrics::counter!(RETRIES, "model" => model.to_owned(), "reason" => reason).increment(1);
}

/// Records a move from `model` to its fallback `fallback`.
pub fn record_fallback(model: &str, fallback: &str) {
    metrics::counter!(FALLBACKS, "model" => model.to_owned(), "fallback" => fallback.to_owned())
        .increment(1);
}

/// Records that `deployment` of `model` started a cooldown.
pub fn record_cooldown(model: &str, deployment: &str) {
    metrics::counter!(COOLDOWNS, "model" => model.to_owned(), "deployment" => deployment.to_owned())
        .increment(1);
}
