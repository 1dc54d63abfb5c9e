//! `/metrics`: the exporter (`metrics-exporter-prometheus`) installed as the recorder of
//! the metrics facade that every counter goes through ([`crate::telemetry`]), and the
//! request counter.

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

use super::AppState;

pub use crate::telemetry::{DROPPED_RUNS, HTTP_REQUESTS};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once (histograms with the conventions' buckets).
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = crate::telemetry::prometheus()
        .map_err(|err| err.to_string())?
        .install_recorder()
        .map_err(|err| err.to_string())?;
    crate::telemetry::describe();
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
