//! OpenTelemetry export: promptctl's runs as spans over OTLP/HTTP with protobuf, through
//! the official `opentelemetry` crates, when `[telemetry] endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables say
//! where to (nothing leaves the machine otherwise).
//!
//! Spans wait in one bounded queue ([`QueueProcessor`]): ending a span never blocks the
//! run; a full queue drops the span and counts it (`promptctl_otel_spans_dropped_total`,
//! reason `queue_full`). One thread sends them in batches of at most 512, every
//! `export_interval_s` (5 s) or as soon as a batch is full; a batch the endpoint refuses or
//! does not take within `timeout_s` is counted dropped too (reason `export_failed`). The
//! SDK's `BatchSpanProcessor` does the same but keeps its drop count to itself, and the
//! drops must show on `/metrics`: that is why the queue is promptctl's own.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor};

use crate::config::TelemetrySettings;

/// Spans sent in one export at most.
const MAX_BATCH: usize = 512;

/// Why the export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry export to {endpoint}: {reason}")]
pub struct ExportError {
    /// The endpoint.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

/// The endpoint spans go to, when export is configured: the traces variable, else the
/// general one (`/v1/traces` added), else `[telemetry] endpoint` (the same).
pub fn endpoint(
    settings: &TelemetrySettings,
    var: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let Some(traces) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(traces);
    }
    let base = set("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| settings.endpoint.clone())?;
    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// promptctl's own span export, installed as the global tracer provider: shut it down
/// before the process exits so the last batch goes out.
pub struct SpanExport {
    provider: SdkTracerProvider,
    /// Where spans go.
    pub endpoint: String,
}

impl SpanExport {
    /// Sets up the export to `endpoint` as `settings` say and installs it as the global
    /// tracer provider (the router's spans go to the global one). `service_name`:
    /// `OTEL_SERVICE_NAME`, else the settings'.
    pub fn install(
        settings: &TelemetrySettings,
        endpoint: String,
        service_name: Option<String>,
    ) -> Result<SpanExport, ExportError> {
        let failed = |reason: String| ExportError {
            endpoint: endpoint.clone(),
            reason,
        };
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_headers(settings.headers.clone().into_iter().collect());
        // `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`, which the exporter reads, wins over the file.
        let timeout_set = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
        if !timeout_set {
            builder = builder.with_timeout(Duration::from_secs_f64(settings.timeout_s));
        }
        let exporter = builder.build().map_err(|err| failed(err.to_string()))?;
        let processor = QueueProcessor::start(
            exporter,
            settings.max_queue,
            Duration::from_secs_f64(settings.export_interval_s),
        )
        .map_err(|err| failed(format!("cannot start the export thread: {err}")))?;
        let resource = Resource::builder()
            .with_service_name(service_name.unwrap_or_else(|| settings.service_name.clone()))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(SpanExport { provider, endpoint })
    }

    /// Sends what is queued (within `timeout`) and stops the export thread.
    pub fn shutdown(&self, timeout: Duration) {
        let _ = self.provider.shutdown_with_timeout(timeout);
    }
}

/// A message to the export thread.
enum Message {
    Span(Box<SpanData>),
    /// Export what is queued, then answer.
    Flush(SyncSender<()>),
}

/// The bounded queue in front of the exporter, and the thread that drains it.
#[derive(Debug)]
pub struct QueueProcessor {
    queue: SyncSender<Message>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    resource: Arc<Mutex<Option<Resource>>>,
}

impl QueueProcessor {
    /// Starts the export thread: batches of at most 512 spans, sent every
    /// `interval` or when full; at most `max_queue` spans wait.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        max_queue: usize,
        interval: Duration,
    ) -> std::io::Result<QueueProcessor> {
        let (queue, receiver) = std::sync::mpsc::sync_channel(max_queue.max(1));
        let resource = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new()
            .name("promptctl-otlp".to_owned())
            .spawn({
                let resource = resource.clone();
                move || drain(exporter, &receiver, interval, &resource)
            })?;
        Ok(QueueProcessor {
            queue,
            thread: Mutex::new(Some(thread)),
            resource,
        })
    }

    /// Asks the export thread to send what is queued and waits for it at most `timeout`;
    /// with the queue full (the endpoint hung), returns at once rather than wait behind it.
    fn flush_within(&self, timeout: Duration) -> OTelSdkResult {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        match self.queue.try_send(Message::Flush(answer)) {
            Ok(()) => answered
                .recv_timeout(timeout)
                .map_err(|_| OTelSdkError::Timeout(timeout)),
            Err(TrySendError::Full(_)) => Err(OTelSdkError::Timeout(timeout)),
            Err(TrySendError::Disconnected(_)) => Err(OTelSdkError::AlreadyShutdown),
        }
    }
}

/// The export thread: gathers spans until the batch is full, the interval passes, a flush
/// is asked for or every sender is gone, and exports them.
fn drain<E: SpanExporter>(
    mut exporter: E,
    receiver: &Receiver<Message>,
    interval: Duration,
    resource: &Mutex<Option<Resource>>,
) {
    // Encoding a batch must not take a core from the runs it describes: on Linux a
    // thread's nice value is its own.
    #[cfg(unix)]
    let _ = rustix::process::setpriority_process(None, 10);
    let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    let mut deadline = Instant::now() + interval;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let (flush, done) = match receiver.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                (None, false)
            }
            Ok(Message::Flush(answer)) => (Some(answer), false),
            Err(RecvTimeoutError::Timeout) => (None, false),
            Err(RecvTimeoutError::Disconnected) => (None, true),
        };
        if let Some(resource) = resource.lock().ok().and_then(|mut r| r.take()) {
            exporter.set_resource(&resource);
        }
        let due = Instant::now() >= deadline;
        if batch.len() >= MAX_BATCH || flush.is_some() || done || due {
            export(&exporter, std::mem::take(&mut batch), &mut failing);
            deadline = Instant::now() + interval;
        }
        if let Some(answer) = flush {
            let _ = answer.send(());
        }
        if done {
            let _ = exporter.shutdown();
            return;
        }
    }
}

/// Sends one batch; a refused or failed one is counted dropped. The first failure after a
/// success is logged as a warning (the rest at debug level), and so is the recovery.
fn export<E: SpanExporter>(exporter: &E, batch: Vec<SpanData>, failing: &mut bool) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len() as u64;
    match futures_executor::block_on(exporter.export(batch)) {
        Ok(()) => {
            super::count_spans_exported(count);
            if std::mem::take(failing) {
                tracing::warn!("OpenTelemetry export works again");
            }
        }
        Err(err) => {
            super::count_spans_dropped("export_failed", count);
            if std::mem::replace(failing, true) {
                tracing::debug!(error = %err, spans = count, "OpenTelemetry export failed");
            } else {
                tracing::warn!(error = %err, spans = count, "OpenTelemetry export failed; its spans are dropped and counted (promptctl_otel_spans_dropped_total)");
            }
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        match self.queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => super::count_spans_dropped("queue_full", 1),
            Err(TrySendError::Disconnected(_)) => super::count_spans_dropped("shut_down", 1),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush_within(Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _ = self.flush_within(timeout);
        // The thread ends when the processor (the last sender) is dropped; it is not
        // joined here, so a hung endpoint cannot hold the process past `timeout`.
        if let Ok(mut thread) = self.thread.lock() {
            thread.take();
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Ok(mut slot) = self.resource.lock() {
            *slot = Some(resource.clone());
        }
    }
}
