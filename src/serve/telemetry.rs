//! `/metrics`: the exporter (`metrics-exporter-prometheus`) installed as the recorder of
//! the metrics facade that every counter goes through ([`crate::telemetry`]), and the
//! request counter.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::extract::{MatchedPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

use super::AppState;

pub use crate::telemetry::{DROPPED_RUNS, HTTP_REQUESTS, UNROLLED_RUNS};

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
    metrics::counter!(UNROLLED_RUNS).absolute(0);
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
