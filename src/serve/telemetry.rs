//! Metrics in the Prometheus text format through `metrics-exporter-prometheus`, named as
//! the OpenTelemetry GenAI semantic conventions translate to Prometheus, plus promptctl's
//! own under the `promptctl_` prefix.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::extract::{MatchedPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

/// `gen_ai.client.operation.duration` in seconds.
pub const OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";
/// `gen_ai.client.token.usage`.
pub const TOKEN_USAGE: &str = "gen_ai_client_token_usage";
/// Prompt executions.
pub const EXECUTIONS: &str = "promptctl_executions_total";
/// Their cost.
pub const COST: &str = "promptctl_cost_microusd_total";
/// Run records the background writer dropped.
pub const DROPPED_RUNS: &str = "promptctl_run_records_dropped_total";
/// Cache reads by result (hit, miss, stale).
pub const CACHE_READS: &str = "promptctl_cache_requests_total";
/// HTTP requests by route and status.
pub const HTTP_REQUESTS: &str = "promptctl_http_requests_total";

/// The conventions' advised bucket boundaries for `gen_ai.client.operation.duration` and
/// `gen_ai.client.token.usage`: the router's own, so `/metrics` and the router agree.
pub use crate::router::metrics::{DURATION_BUCKETS, TOKEN_BUCKETS};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once (histograms with the conventions' buckets).
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(OPERATION_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(TOKEN_USAGE.to_owned()), &TOKEN_BUCKETS)
        })
        .map_err(|err| err.to_string())?
        .install_recorder()
        .map_err(|err| err.to_string())?;
    metrics::describe_histogram!(
        OPERATION_DURATION,
        metrics::Unit::Seconds,
        "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration)"
    );
    metrics::describe_histogram!(
        TOKEN_USAGE,
        metrics::Unit::Count,
        "Tokens used per operation (OpenTelemetry gen_ai.client.token.usage)"
    );
    metrics::describe_counter!(EXECUTIONS, "Prompt executions through the router");
    metrics::describe_counter!(
        COST,
        "Cost of prompt executions in millionths of a US dollar"
    );
    metrics::describe_counter!(DROPPED_RUNS, "Run records dropped by the background writer");
    metrics::describe_counter!(CACHE_READS, "Prompt reads by cache result");
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status");
    metrics::counter!(DROPPED_RUNS).absolute(0);
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

/// `GET /metrics` (the gate checked the token).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts a request by its route template (bounded; `unmatched` when no route matched) and
/// its response's status.
pub fn count_request(route: Option<&MatchedPath>, status: StatusCode) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    request_counter(route, status.as_u16()).increment(1);
}

/// The counters of [`HTTP_REQUESTS`] by status, then route template, kept once made: a
/// request finds its counter without allocating. Bounded: routes are the router's
/// templates (or `unmatched`), statuses three digits.
type RequestCounters = HashMap<u16, HashMap<Box<str>, metrics::Counter>>;

fn request_counter(route: &str, status: u16) -> metrics::Counter {
    static COUNTERS: OnceLock<RwLock<RequestCounters>> = OnceLock::new();
    let counters = COUNTERS.get_or_init(RwLock::default);
    if let Ok(known) = counters.read()
        && let Some(counter) = known.get(&status).and_then(|routes| routes.get(route))
    {
        return counter.clone();
    }
    let counter = metrics::counter!(HTTP_REQUESTS, "route" => route.to_owned(), "status" => status.to_string());
    if let Ok(mut known) = counters.write() {
        known
            .entry(status)
            .or_default()
            .insert(route.into(), counter.clone());
    }
    counter
}
