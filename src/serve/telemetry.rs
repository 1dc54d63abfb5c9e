//! Metrics in the Prometheus text format through `metrics-exporter-prometheus`, named as
//! the OpenTelemetry GenAI semantic conventions translate to Prometheus, plus promptctl's
//! own under the `promptctl_` prefix.

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
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

/// Counts every request by route template (bounded) and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    metrics::counter!(HTTP_REQUESTS, "route" => route, "status" => response.status().as_str().to_owned())
        .increment(1);
    response
}
