//! The one metrics path: every counter and histogram promptctl keeps goes through the
//! [`metrics`] facade, named as the OpenTelemetry GenAI semantic conventions translate to
//! Prometheus, plus promptctl's own under the `promptctl_` prefix.
//!
//! The library only records; whoever embeds it installs a recorder. `promptctl serve`
//! installs `metrics-exporter-prometheus` with [`DURATION_BUCKETS`] and [`TOKEN_BUCKETS`]
//! and serves it at `/metrics` (`serve::telemetry`); a service embedding the
//! [`crate::router::Router`] installs its own (without one, recording costs next to
//! nothing). Not for: run records (`registry::runs`) or statistics (`registry::stats`),
//! which are rows in PostgreSQL.

pub mod otlp;
pub mod spans;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::providers::Usage;

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
/// Runs written whose rollups were lost (`promptctl rollup --since` rolls them up again).
pub const UNROLLED_RUNS: &str = "promptctl_run_rollups_lost_total";
/// Cache reads by result (hit, miss, stale).
pub const CACHE_READS: &str = "promptctl_cache_requests_total";
/// Cache invalidations by kind: `keys` (a sync named the prompts it changed) or
/// `everything` (it did not, or the notice did not parse, or the listener reconnected).
pub const CACHE_INVALIDATIONS: &str = "promptctl_cache_invalidations_total";
/// HTTP requests by route and status.
pub const HTTP_REQUESTS: &str = "promptctl_http_requests_total";
/// Spans sent to the OpenTelemetry endpoint.
pub const SPANS_EXPORTED: &str = "promptctl_otel_spans_exported_total";
/// Spans dropped by reason: `queue_full`, `export_failed`, `shut_down`.
pub const SPANS_DROPPED: &str = "promptctl_otel_spans_dropped_total";

/// Duration buckets in seconds (the conventions' advice for
/// `gen_ai.client.operation.duration`).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Token buckets (the conventions' advice for `gen_ai.client.token.usage`).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// A Prometheus exporter's builder with the conventions' buckets for the two histograms
/// (the exporter's default would be a summary).
pub fn prometheus() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(OPERATION_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(TOKEN_USAGE.to_owned()), &TOKEN_BUCKETS)
}

/// Describes every metric to the installed recorder (help texts and units); call it once
/// after installing one.
pub fn describe() {
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
    for (counter, help) in [
        (EXECUTIONS, "Prompt executions through the router"),
        (
            COST,
            "Cost of prompt executions in millionths of a US dollar",
        ),
        (DROPPED_RUNS, "Run records dropped by the background writer"),
        (
            UNROLLED_RUNS,
            "Runs written whose rollups were lost; promptctl rollup rolls them up again",
        ),
        (CACHE_READS, "Prompt reads by cache result"),
        (
            CACHE_INVALIDATIONS,
            "Registry cache invalidations by kind (keys, everything)",
        ),
        (HTTP_REQUESTS, "HTTP requests by route and status"),
        (SPANS_EXPORTED, "Spans sent to the OpenTelemetry endpoint"),
        (
            SPANS_DROPPED,
            "Spans dropped by reason (queue_full, export_failed, shut_down)",
        ),
    ] {
        metrics::describe_counter!(counter, help);
    }
}

/// Which prompt a run was of, as its metrics label it.
#[derive(Debug, Clone, Copy)]
pub struct RunLabels<'a> {
    /// `service/name`, or empty (unknown, or prompt labels turned off).
    pub prompt: &'a str,
    /// The environment (empty: a version run on its own).
    pub environment: &'a str,
    /// The model the environment asked for (empty when the prompt was not found).
    pub model_requested: &'a str,
}

/// How one run ended, for its metrics.
#[derive(Debug, Clone, Copy)]
pub enum RunOutcome<'a> {
    /// A model answered.
    Answered {
        /// Its provider.
        provider: &'a str,
        /// The model that answered (a fallback when the first failed).
        model: &'a str,
        /// The run's wall time.
        seconds: f64,
        /// Its tokens.
        usage: &'a Usage,
        /// Its cost, when the model has prices.
        cost_usd: Option<f64>,
    },
    /// The run failed: `error_type` says why (the API's error code); `seconds` is the
    /// wall time when models were called (none when the run failed before: an unknown
    /// prompt, a render error).
    Failed {
        /// `not_found`, `invalid_variables`, `render_limit`, `render_failed`,
        /// `unavailable` or `provider_error`.
        error_type: &'a str,
        /// The wall time, when a model was called.
        seconds: Option<f64>,
    },
}

/// Records one run: `promptctl_executions_total` by outcome, the operation duration, the
/// tokens (input tokens counted as the conventions count them: cache reads and writes
/// included, [`Usage::all_input_tokens`]) and the cost.
pub fn record_run(labels: RunLabels<'_>, outcome: RunOutcome<'_>) {
    let common = |provider: &str, model: &str| {
        vec![
            ("gen_ai_operation_name", "chat".to_owned()),
            ("gen_ai_provider_name", provider.to_owned()),
            ("gen_ai_request_model", labels.model_requested.to_owned()),
            ("gen_ai_response_model", model.to_owned()),
            ("promptctl_prompt", labels.prompt.to_owned()),
            ("promptctl_environment", labels.environment.to_owned()),
        ]
    };
    match outcome {
        RunOutcome::Answered {
            provider,
            model,
            seconds,
            usage,
            cost_usd,
        } => {
            let with = common(provider, model);
            metrics::histogram!(OPERATION_DURATION, &with).record(seconds);
            for (kind, count) in [
                ("input", usage.all_input_tokens()),
                ("output", usage.output_tokens),
            ] {
                let mut typed = with.clone();
                typed.push(("gen_ai_token_type", kind.to_owned()));
                metrics::histogram!(TOKEN_USAGE, &typed).record(count as f64);
            }
            metrics::counter!(EXECUTIONS, "promptctl_prompt" => labels.prompt.to_owned(),
                "promptctl_environment" => labels.environment.to_owned(),
                "gen_ai_request_model" => labels.model_requested.to_owned(), "outcome" => "ok")
            .increment(1);
            if let Some(cost) = cost_usd {
                metrics::counter!(COST, "promptctl_prompt" => labels.prompt.to_owned(),
                    "gen_ai_request_model" => labels.model_requested.to_owned())
                .increment((cost * 1_000_000.0) as u64);
            }
        }
        RunOutcome::Failed {
            error_type,
            seconds,
        } => {
            if let Some(seconds) = seconds {
                let mut with = common("", "");
                with.push(("error_type", error_type.to_owned()));
                metrics::histogram!(OPERATION_DURATION, &with).record(seconds);
            }
            metrics::counter!(EXECUTIONS, "promptctl_prompt" => labels.prompt.to_owned(),
                "promptctl_environment" => labels.environment.to_owned(),
                "gen_ai_request_model" => labels.model_requested.to_owned(),
                "outcome" => "error", "error_type" => error_type.to_owned())
            .increment(1);
        }
    }
}

/// The counter of the registry cache's reads with `result` (`hit`, `miss` or `stale`),
/// from the recorder installed now: the cache keeps it and counts each read on it.
pub fn cache_read_counter(result: &'static str) -> metrics::Counter {
    metrics::counter!(CACHE_READS, "result" => result)
}

/// Counts one cache invalidation of `kind` (`keys` or `everything`).
pub fn count_invalidation(kind: &'static str) {
    metrics::counter!(CACHE_INVALIDATIONS, "kind" => kind).increment(1);
}

/// Counts spans the OpenTelemetry endpoint took.
pub fn count_spans_exported(count: u64) {
    metrics::counter!(SPANS_EXPORTED).increment(count);
}

/// Counts spans dropped for `reason`.
pub fn count_spans_dropped(reason: &'static str, count: u64) {
    metrics::counter!(SPANS_DROPPED, "reason" => reason).increment(count);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn runs_are_exported_with_the_conventions_buckets_and_labels() {
        let recorder = prometheus().expect("buckets").build_recorder();
        let labels = RunLabels {
            prompt: "a/b",
            environment: "production",
            model_requested: "gpt-4o",
        };
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 3,
            cache_read_tokens: 5,
            cache_write_tokens: 1,
        };
        metrics::with_local_recorder(&recorder, || {
            record_run(
                labels,
                RunOutcome::Answered {
                    provider: "openai",
                    model: "gpt-4o",
                    seconds: 0.015,
                    usage: &usage,
                    cost_usd: Some(0.5),
                },
            );
            record_run(
                labels,
                RunOutcome::Failed {
                    error_type: "provider_error",
                    seconds: Some(0.5),
                },
            );
        });
        let text = recorder.handle().render();
        let ok = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\",gen_ai_response_model=\"gpt-4o\",promptctl_prompt=\"a/b\",promptctl_environment=\"production\"";
        assert!(
            text.contains(&format!(
                "gen_ai_client_operation_duration_seconds_bucket{{{ok},le=\"0.02\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gen_ai_client_operation_duration_seconds_count{{{ok}}} 1"
            )),
            "{text}"
        );
        // Input tokens with the cache's: 10 + 5 + 1.
        assert!(
            text.contains(&format!(
                "gen_ai_client_token_usage_sum{{{ok},gen_ai_token_type=\"input\"}} 16"
            )),
            "{text}"
        );
        assert!(
            text.contains("error_type=\"provider_error\",le=\"0.64\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("promptctl_executions_total{promptctl_prompt=\"a/b\",promptctl_environment=\"production\",gen_ai_request_model=\"gpt-4o\",outcome=\"error\",error_type=\"provider_error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("promptctl_cost_microusd_total{promptctl_prompt=\"a/b\",gen_ai_request_model=\"gpt-4o\"} 500000"),
            "{text}"
        );
    }
}
