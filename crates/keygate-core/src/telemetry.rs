//! Metrics: the Prometheus recorder and the few series keygate records. Labels never carry
//! keys: only route, model name, provider and status.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests served, by route, model, provider and status.
pub const REQUESTS: &str = "keygate_requests_total";
/// Time to the response head, by route, model and provider.
pub const LATENCY: &str = "keygate_request_duration_seconds";
/// Upstream answers, by model, provider and status.
pub const UPSTREAM: &str = "keygate_upstream_responses_total";

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

/// Records one finished request (for streams: when the response head was sent).
pub fn record_request(
    route: &'static str,
    model: &str,
    provider: &'static str,
    status: u16,
    elapsed: Duration,
) {
    metrics::counter!(REQUESTS, "route" => route, "model" => model.to_owned(),
        "provider" => provider, "status" => status_label(status))
    .increment(1);
    metrics::histogram!(LATENCY, "route" => route, "model" => model.to_owned(), "provider" => provider)
        .record(elapsed.as_secs_f64());
}

/// Records one upstream answer.
pub fn record_upstream(model: &str, provider: &'static str, status: u16) {
    metrics::counter!(UPSTREAM, "model" => model.to_owned(), "provider" => provider,
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
