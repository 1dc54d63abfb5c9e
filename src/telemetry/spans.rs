//! Each run as an OpenTelemetry span named and attributed as the GenAI semantic
//! conventions say (`chat gpt-4o`, `gen_ai.*`, `error.type`), with promptctl's own
//! attributes (`promptctl.prompt`, `.version`, `.environment`, `.source`, `.side`,
//! `.run_id`) and, when a run tried more than one model, one child span per attempt.
//!
//! Spans go to the global tracer provider: promptctl's own export ([`super::otlp`]) when
//! configured, or the one a service embedding the router installed; with neither, the
//! no-op provider, and a run costs one unsampled span start. The prompt and the answer
//! are attributes only with `[telemetry] capture_content = true`.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// The provider attempts of the run whose context holds it: every HTTP request, each retry
/// and each model of the fallback chain, in order ([`record_attempt`] adds one).
#[derive(Debug, Default)]
pub struct AttemptLog(std::sync::Mutex<Vec<Attempt>>);

impl AttemptLog {
    /// The attempts recorded so far, taken out.
    pub fn take(&self) -> Vec<Attempt> {
        self.0
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }
}

/// Adds `attempt` to the [`AttemptLog`] of the current context, when it holds one (a run
/// of the router; `promptctl test` keeps none).
pub fn record_attempt(attempt: Attempt) {
    Context::map_current(|cx| {
        if let Some(log) = cx.get::<std::sync::Arc<AttemptLog>>()
            && let Ok(mut log) = log.0.lock()
        {
            log.push(attempt);
        }
    });
}

/// One provider attempt of a run (an HTTP request: a retry, or a model of its fallback
/// chain).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The model called.
    pub model: String,
    /// Its provider, as `gen_ai.provider.name` says it (`openai`, `anthropic`).
    pub provider: String,
    /// When the call started.
    pub started: SystemTime,
    /// When it ended.
    pub ended: SystemTime,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// What a run's span says.
#[derive(Debug)]
pub struct RunSpan<'a> {
    /// When the run started.
    pub started: SystemTime,
    /// `service/name`.
    pub prompt: &'a str,
    /// The version run.
    pub version: Option<u32>,
    /// The environment ('' for none).
    pub environment: &'a str,
    /// The source that published the prompt ('' for none).
    pub source: &'a str,
    /// The side of a canary split.
    pub side: Option<&'a str>,
    /// The run's id.
    pub run_id: &'a str,
    /// The model asked for.
    pub request_model: &'a str,
    /// The model that answered, and its provider (`gen_ai.provider.name`).
    pub response: Option<(&'a str, &'a str)>,
    /// Input and output tokens.
    pub tokens: Option<(u64, u64)>,
    /// The error type of a failed run (`RouterError::error_type`).
    pub error_type: Option<&'static str>,
    /// Its message.
    pub error: Option<&'a str>,
    /// The provider attempts, in order.
    pub attempts: &'a [Attempt],
    /// The rendered messages and the answer, when content is captured.
    pub content: Option<(String, Option<&'a str>)>,
}

/// Records `run` as a span under `parent` (the caller's context: a `traceparent` a
/// request carried, or the embedding service's current span).
pub fn record(parent: &Context, run: &RunSpan<'_>) {
    let tracer = opentelemetry::global::tracer("promptctl");
    let name = format!("chat {}", run.request_model);
    let mut span = tracer
        .span_builder(Cow::Owned(name))
        .with_kind(SpanKind::Client)
        .with_start_time(run.started)
        .start_with_context(&tracer, parent);
    if !span.is_recording() {
        return;
    }
    span.set_attributes(attributes(run));
    if let (Some(error_type), error) = (run.error_type, run.error) {
        span.set_attribute(KeyValue::new("error.type", error_type));
        span.set_status(Status::error(error.unwrap_or(error_type).to_owned()));
    }
    let cx = parent.with_span(span);
    if run.attempts.len() > 1 {
        for attempt in run.attempts {
            let mut child = tracer
                .span_builder(Cow::Owned(format!("chat {}", attempt.model)))
                .with_kind(SpanKind::Client)
                .with_start_time(attempt.started)
                .with_attributes([
                    KeyValue::new("gen_ai.operation.name", "chat"),
                    KeyValue::new("gen_ai.provider.name", attempt.provider.clone()),
                    KeyValue::new("gen_ai.request.model", attempt.model.clone()),
                ])
                .start_with_context(&tracer, &cx);
            if let Some(error) = &attempt.error {
                child.set_attribute(KeyValue::new("error.type", "provider_error"));
                child.set_status(Status::error(error.clone()));
            }
            child.end_with_timestamp(attempt.ended);
        }
    }
    cx.span().end();
}

/// The run span's attributes.
fn attributes(run: &RunSpan<'_>) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.request.model", run.request_model.to_owned()),
        KeyValue::new("promptctl.prompt", run.prompt.to_owned()),
        KeyValue::new("promptctl.run_id", run.run_id.to_owned()),
    ];
    let provider = run
        .response
        .map(|(_, provider)| provider)
        .or_else(|| run.attempts.last().map(|a| a.provider.as_str()));
    if let Some(provider) = provider {
        attributes.push(KeyValue::new("gen_ai.provider.name", provider.to_owned()));
    }
    if let Some((model, _)) = run.response {
        attributes.push(KeyValue::new("gen_ai.response.model", model.to_owned()));
    }
    if let Some((input, output)) = run.tokens {
        attributes.push(KeyValue::new("gen_ai.usage.input_tokens", saturate(input)));
        attributes.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            saturate(output),
        ));
    }
    if let Some(version) = run.version {
        attributes.push(KeyValue::new("promptctl.version", i64::from(version)));
    }
    for (key, value) in [
        ("promptctl.environment", run.environment),
        ("promptctl.source", run.source),
        ("promptctl.side", run.side.unwrap_or_default()),
    ] {
        if !value.is_empty() {
            attributes.push(KeyValue::new(key, value.to_owned()));
        }
    }
    if let Some((input, output)) = &run.content {
        attributes.push(KeyValue::new("gen_ai.input.messages", input.clone()));
        if let Some(output) = output {
            let message = serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": output}]}]);
            attributes.push(KeyValue::new("gen_ai.output.messages", message.to_string()));
        }
    }
    attributes
}

/// A token count as the signed integer OpenTelemetry attributes hold.
fn saturate(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The W3C trace id of `cx`'s span, when it has a valid one (stored with the run as its
/// trace id).
pub fn trace_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}
