//! `promptctl serve`: the `/v1` JSON API, `/openapi.json`, `/metrics`, `/healthz`,
//! `/readyz` and the dashboard, on axum. The server keeps no state of its own beyond the
//! registry's read cache (shared with its router) that PostgreSQL's `NOTIFY` invalidates,
//! so any number of replicas can share one database.

pub mod api;
pub mod auth;
pub mod chart;
pub mod connections;
pub mod dashboard;
pub mod gate;
pub mod health;
pub mod listing;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The largest request body: 1 MiB.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The primary database (LISTEN).
    pub database_url: String,
    /// Where reads go (a replica, or the primary).
    pub read_database_url: String,
    /// Read tokens.
    pub read_tokens: Vec<String>,
    /// Run tokens.
    pub run_tokens: Vec<String>,
    /// How long a cached read stays fresh.
    pub cache_ttl: Duration,
    /// Whether metrics carry prompt labels (off for very large registries).
    pub prompt_labels: bool,
    /// Runs a second allowed per run token (0: no limit).
    pub run_rate: f64,
    /// `promptctl.toml`, for the router's providers, models and monitoring.
    pub settings: crate::config::Settings,
    /// Timeouts and the connection limit of the accept loop.
    pub limits: connections::Limits,
}

/// What every handler shares.
pub struct AppState {
    /// The read cache and database (the router reads through the same one).
    pub cache: Arc<crate::registry::cache::RegistryCache>,
    /// The tokens.
    pub tokens: auth::Tokens,
    /// The rate limit of run.
    pub limiter: auth::RateLimiter,
    /// The Prometheus exporter.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Executes prompts and records runs (SPEC section 6).
    pub router: crate::router::Router,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No tokens and a non-loopback address.
    #[error(
        "refusing to listen on {0} without tokens: set the read and run token variables, or listen on loopback"
    )]
    OpenOnNetwork(SocketAddr),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The metrics recorder.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// The application's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/prompts", get(listing::list_prompts))
        .route("/v1/prompts/{service}/{name}", get(api::get_prompt))
        .route(
            "/v1/prompts/{service}/{name}/versions",
            get(listing::list_prompt_versions),
        )
        .route("/v1/prompts/{service}/{name}/render", post(api::render))
        .route("/v1/prompts/{service}/{name}/run", post(api::run))
        .route("/v1/stats", get(api::stats))
        .route("/openapi.json", get(api::openapi))
        .route("/metrics", get(telemetry::metrics))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/", get(dashboard::index))
        .route("/prompts/{service}/{name}", get(dashboard::prompt_page))
        // After every route: it applies to the routes added before it.
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(gate::GateLayer::new(state.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The log span of a request: method and path, never the query string, which may hold a
/// token someone put there.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        version = ?request.version(),
    )
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes the requests in flight.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let tokens = auth::Tokens::new(&options.read_tokens, &options.run_tokens);
    if !tokens.enabled() && !options.listen.ip().is_loopback() {
        return Err(ServeError::OpenOnNetwork(options.listen));
    }
    let metrics = telemetry::install().map_err(ServeError::Metrics)?;
    let cache = Arc::new(
        crate::registry::cache::RegistryCache::new(
            options.read_database_url.clone(),
            options.cache_ttl,
        )
        .with_encoder(api::encode_prompt),
    );
    let runner = crate::router::Router::new(
        &options.settings,
        crate::router::PromptSource::Cache {
            cache: cache.clone(),
            fallback: None,
        },
        Some(options.database_url.clone()),
    );
    runner.set_prompt_labels(options.prompt_labels);
    tokio::spawn(crate::registry::cache::listen(
        cache.clone(),
        options.database_url.clone(),
    ));
    {
        let metrics = metrics.clone();
        let runner = runner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let recorded = runner.recorder_stats();
                metrics::counter!(telemetry::DROPPED_RUNS).absolute(recorded.dropped);
                metrics::counter!(telemetry::UNROLLED_RUNS).absolute(recorded.unrolled);
                metrics.run_upkeep();
            }
        });
    }
    let state = Arc::new(AppState {
        cache,
        tokens,
        limiter: auth::RateLimiter::new(options.run_rate, (options.run_rate * 2.0).max(1.0)),
        metrics,
        router: runner.clone(),
    });
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        max_connections = options.limits.max_connections,
        header_timeout_s = options.limits.header_timeout.as_secs_f64(),
        "promptctl serve listening"
    );
    connections::serve(listener, router(state), options.limits, shutdown_signal()).await;
    tracing::info!("requests in flight finished; flushing run records");
    let recorded = runner.shutdown(Duration::from_secs(5)).await;
    tracing::info!(
        written = recorded.written,
        dropped = recorded.dropped,
        "run recorder flushed; shutting down"
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal: finishing requests in flight");
}
