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
    /// The host and port called (`server.address`, `server.port`).
    pub server: Option<(String, u16)>,
}

impl Attempt {
    /// `server.address` and `server.port`, when known.
    fn server_attributes(&self) -> Vec<KeyValue> {
        self.server
            .iter()
            .flat_map(|(host, port)| {
                [
                    KeyValue::new("server.address", host.clone()),
                    KeyValue::new("server.port", i64::from(*port)),
                ]
            })
            .collect()
    }
}

/// What a run's span says.
#[derive(Debug)]
pub struct RunSpan<'a> {
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

/// A run's span, started; `None` when nothing records it (no tracer provider installed, or
/// the run not sampled), so that the run builds none of its attributes.
pub struct Started {
    tracer: opentelemetry::global::BoxedTracer,
    span: opentelemetry::global::BoxedSpan,
}

/// Starts the span of a run of `request_model` (none: the run failed before it knew one)
/// that began at `started`, under `parent` (the caller's context: a `traceparent` a
/// request carried, or the embedding service's current span). A run that `wraps` several
/// provider requests is an INTERNAL span over their CLIENT spans; else it is the CLIENT
/// span of its one request.
pub fn start(
    parent: &Context,
    request_model: &str,
    started: SystemTime,
    wraps: bool,
) -> Option<Started> {
    let tracer = opentelemetry::global::tracer("promptctl");
    let name = if request_model.is_empty() {
        "chat".to_owned()
    } else {
        format!("chat {request_model}")
    };
    let kind = if wraps {
        SpanKind::Internal
    } else {
        SpanKind::Client
    };
    let span = tracer
        .span_builder(Cow::Owned(name))
        .with_kind(kind)
        .with_start_time(started)
        .start_with_context(&tracer, parent);
    span.is_recording().then_some(Started { tracer, span })
}

/// Gives the [started](start) span `run`'s attributes and attempts, and ends it.
pub fn record(parent: &Context, Started { tracer, mut span }: Started, run: &RunSpan<'_>) {
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
            child.set_attributes(attempt.server_attributes());
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
        KeyValue::new("promptctl.prompt", run.prompt.to_owned()),
        KeyValue::new("promptctl.run_id", run.run_id.to_owned()),
    ];
    if !run.request_model.is_empty() {
        attributes.push(KeyValue::new(
            "gen_ai.request.model",
            run.request_model.to_owned(),
        ));
    }
    let provider = run
        .response
        .map(|(_, provider)| provider)
        .or_else(|| run.attempts.last().map(|a| a.provider.as_str()));
    if let Some(provider) = provider {
        attributes.push(KeyValue::new("gen_ai.provider.name", provider.to_owned()));
    }
    if let [only] = run.attempts {
        attributes.extend(only.server_attributes());
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
        attributes.push(KeyValue::new(
            "gen_ai.input.messages",
            input_messages(input),
        ));
        if let Some(output) = output {
            let message = serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": output}]}]);
            attributes.push(KeyValue::new("gen_ai.output.messages", message.to_string()));
        }
    }
    attributes
}

/// The rendered messages (`[{"role", "content"}]` as JSON) as the conventions write
/// `gen_ai.input.messages`: `[{"role", "parts": [{"type": "text", "content"}]}]`.
fn input_messages(rendered: &str) -> String {
    let messages: Vec<serde_json::Value> = serde_json::from_str(rendered).unwrap_or_default();
    let converted: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "role": m["role"],
                "parts": [{"type": "text", "content": m["content"]}],
            })
        })
        .collect();
    serde_json::Value::Array(converted).to_string()
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

/// The caller's context from the W3C Trace Context headers it sent (each header's values,
/// in order): `traceparent` (exactly one; `version-traceid-parentid-flags`, lowercase hex,
/// neither id all zeros, version `ff` invalid, a later version read as version 00) and
/// `tracestate` (its headers joined, at most 32 members, else none). An empty context
/// when the headers do not make a valid one: the run starts a trace of its own.
pub fn w3c_context(traceparent: &[&str], tracestate: &[&str]) -> Context {
    use opentelemetry::trace::{SpanContext, TraceState};
    let [parent] = traceparent else {
        return Context::new();
    };
    let Some((trace_id, span_id, flags)) = parse_traceparent(parent) else {
        return Context::new();
    };
    let joined = tracestate.join(",");
    let members = joined.split(',').filter(|m| !m.trim().is_empty()).count();
    let state = if members <= 32 {
        joined.parse::<TraceState>().unwrap_or_default()
    } else {
        TraceState::default()
    };
    let span = SpanContext::new(trace_id, span_id, flags, true, state);
    Context::new().with_remote_span_context(span)
}

/// The trace id, parent id and flags of a `traceparent` value, when it is valid.
fn parse_traceparent(
    text: &str,
) -> Option<(
    opentelemetry::trace::TraceId,
    opentelemetry::trace::SpanId,
    opentelemetry::trace::TraceFlags,
)> {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
    let text = text.trim();
    fn hex(part: &str, len: usize) -> Option<&str> {
        (part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then_some(part)
    }
    let mut parts = text.split('-');
    let version = hex(parts.next()?, 2)?;
    let trace = hex(parts.next()?, 32)?;
    let parent = hex(parts.next()?, 16)?;
    let flags = hex(parts.next()?, 2)?;
    // Version 00 has exactly four parts; a later one may add more after a `-`.
    if version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|id| *id != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(parent)
        .ok()
        .filter(|id| *id != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, TraceFlags::new(flags)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    fn parent_of(
        traceparent: &[&str],
        tracestate: &[&str],
    ) -> Option<(String, String, u8, String)> {
        let cx = w3c_context(traceparent, tracestate);
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| {
            (
                context.trace_id().to_string(),
                context.span_id().to_string(),
                context.trace_flags().to_u8(),
                context.trace_state().header(),
            )
        })
    }

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT: &str = "b7ad6b7169203331";

    #[test]
    fn a_valid_traceparent_is_continued_with_its_flags_and_state() {
        let header = format!("00-{TRACE}-{PARENT}-03");
        let found = parent_of(&[&header], &["a=1", "b=2"]).expect("valid");
        assert_eq!(
            found,
            (TRACE.to_owned(), PARENT.to_owned(), 3, "a=1,b=2".to_owned())
        );
        let later = format!("cc-{TRACE}-{PARENT}-01-what-comes-next");
        assert!(
            parent_of(&[&later], &[]).is_some(),
            "a later version reads as 00"
        );
    }

    #[test]
    fn malformed_or_repeated_traceparents_start_a_trace_of_their_own() {
        let zeros = "0".repeat(32);
        let upper = TRACE.to_uppercase();
        let long = "a".repeat(10_000);
        for header in [
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("00-{zeros}-{PARENT}-01"),
            format!("00-{TRACE}-0000000000000000-01"),
            format!("00-{upper}-{PARENT}-01"),
            format!("00-{TRACE}-{PARENT}-01-extra"),
            format!("00-{TRACE}-{PARENT}"),
            long,
            String::new(),
        ] {
            assert!(parent_of(&[&header], &[]).is_none(), "{header:.80}");
        }
        let good = format!("00-{TRACE}-{PARENT}-01");
        assert!(
            parent_of(&[&good, &good], &[]).is_none(),
            "two traceparents"
        );
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        let found = parent_of(&[&good], &[&many.join(",")]).expect("valid");
        assert_eq!(found.3, "", "more than 32 members: no state");
    }
}
