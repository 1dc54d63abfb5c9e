//! The router: how services execute prompts.
//!
//! A [`Router`] is built from `promptctl.toml` ([`Settings`]) and a [`PromptSource`]: the
//! repository (working tree and history), the PostgreSQL registry (through the one read
//! cache, [`crate::registry::cache`]: a TTL, refreshed in the background, the last good copy
//! served while the database is down)
//! or an offline bundle written by `promptctl export`. [`Router::execute`] resolves the
//! environment's version and model, renders strictly, calls the model through
//! [`Providers`] (the same code, keys, retries, timeouts and rate limits as `promptctl
//! test`), falls back along the model's `fallbacks` when its provider fails after its
//! retries, and returns the output with the version, the model that answered, the usage,
//! the latency, the cost and a run id.
//!
//! An environment with a canary split sends the share of calls its weight says to the
//! canary, by a hash of the call's routing key ([`side_for`]). Every run is an OpenTelemetry
//! span under the caller's context ([`ExecuteOptions::parent`], [`crate::telemetry::spans`]),
//! exported only where a tracer provider is installed.
//!
//! Every run is queued for `prompt_runs` ([`crate::registry::runs::RunRecorder`]) without
//! waiting; a share of runs (`[monitoring] sample_rate`, chosen from a hash of the run id)
//! is scored by the prompt's `monitor` assertions in a spawned task, and written once
//! scored (unsampled runs are queued at once).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use promptctl::config::Config;
//! use promptctl::router::{PromptSource, Router};
//! let config = Config::discover(std::path::Path::new("."))?;
//! let source = PromptSource::repository(&config, None)?;
//! let router = Router::new(&config.settings, source, Some("postgres://app@db/prompts".into()));
//! let vars = [("message".to_owned(), serde_json::json!("Hi"))].into_iter().collect();
//! let run = router.execute("support/support_reply", "production", &vars).await?;
//! println!("{} (v{:?} on {}, {:.1} ms)", run.output, run.version, run.model, run.latency_ms);
//! router.shutdown(std::time::Duration::from_secs(2)).await;
//! # Ok(()) }
//! ```

mod source;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Settings;
pub use crate::environments::Side;
use crate::eval::assertions::{AssertionError, AssertionOutcome, CallFacts, evaluate};
use crate::providers::{ProviderError, Providers, Recordings, Usage};
use crate::registry::runs::{RecorderStats, RunRecord, RunRecorder};
use crate::render::RenderError;
use crate::repo::Assertion;
use crate::telemetry::spans::{Attempt, AttemptLog};
use crate::telemetry::{RunLabels, RunOutcome};
use opentelemetry::context::FutureExt as _;
use source::Target;
pub use source::{Bundle, PromptSource, ResolvedPrompt};

/// Why an execution failed.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// No such prompt (or an ambiguous name).
    #[error("{0}")]
    UnknownPrompt(String),
    /// The environment is not in environments.yaml.
    #[error("no environment `{0}`")]
    UnknownEnvironment(String),
    /// The prompt source could not be read.
    #[error("cannot read prompts: {0}")]
    Source(String),
    /// The variables do not fit the prompt's declaration or the template failed.
    #[error("{prompt}: {error}")]
    Render {
        /// The prompt.
        prompt: String,
        /// Why.
        error: RenderError,
    },
    /// A model's provider refused the request (a 4xx caused by the request, a missing key):
    /// reported as it is, without falling back.
    #[error("{error}")]
    Rejected {
        /// The run's id.
        run_id: Uuid,
        /// The model.
        model: String,
        /// The provider's error.
        error: ProviderError,
        /// Errors of models tried before it.
        attempts: Vec<AttemptError>,
    },
    /// Every model of the chain failed after its retries.
    #[error("every model failed: {}", attempts.iter().map(|a| format!("{}: {}", a.model, a.error)).collect::<Vec<_>>().join("; "))]
    AllFailed {
        /// The run's id.
        run_id: Uuid,
        /// Each model's error.
        attempts: Vec<AttemptError>,
    },
}

impl RouterError {
    /// Whether the caller's input or configuration is at fault (exit 2) rather than an
    /// external system (exit 3).
    pub fn is_input(&self) -> bool {
        match self {
            RouterError::UnknownPrompt(_)
            | RouterError::UnknownEnvironment(_)
            | RouterError::Render { .. } => true,
            RouterError::Rejected { error, .. } => error.is_configuration(),
            RouterError::Source(_) | RouterError::AllFailed { .. } => false,
        }
    }

    /// The error's type as the metrics label it (`error_type`) and the API names it: `not_found`,
    /// `invalid_variables`, `render_limit`, `render_failed`, `unavailable` or
    /// `provider_error`.
    pub fn error_type(&self) -> &'static str {
        match self {
            RouterError::UnknownPrompt(_) | RouterError::UnknownEnvironment(_) => "not_found",
            RouterError::Render { error, .. } => match error {
                RenderError::MissingVariable { .. }
                | RenderError::UnknownVariable { .. }
                | RenderError::WrongType { .. } => "invalid_variables",
                _ if error.is_limit() => "render_limit",
                _ => "render_failed",
            },
            RouterError::Source(_) => "unavailable",
            RouterError::Rejected { .. } | RouterError::AllFailed { .. } => "provider_error",
        }
    }
}

/// A model that failed on the way to an answer.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptError {
    /// The model.
    pub model: String,
    /// Its error (never containing a key).
    pub error: String,
}

/// The result of one execution.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutput {
    /// The run's id (the row of `prompt_runs`).
    pub run_id: Uuid,
    /// The model's answer.
    pub output: String,
    /// `service/name`.
    pub prompt: String,
    /// The environment.
    pub environment: String,
    /// The version run (`None`: uncommitted working tree).
    pub version: Option<u32>,
    /// The model the environment asked for.
    pub model_requested: String,
    /// The model that answered.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Token usage.
    pub usage: Usage,
    /// Wall time of the execution (render, retries and fallbacks included), milliseconds.
    pub latency_ms: f64,
    /// The cost in US dollars, when the model's prices are configured.
    pub cost_usd: Option<f64>,
    /// The models that failed before this one answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<AttemptError>,
    /// Whether the run was sampled for quality scoring.
    pub sampled: bool,
    /// The side of the environment's canary split the call took (`None`: no split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The model the provider says answered (e.g. `gpt-4o-2024-08-06`), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_model: Option<String>,
}

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct ExecuteOptions {
    /// The run id to use (a retried request passing the same id is sampled the same way).
    pub run_id: Option<Uuid>,
    /// The caller's trace id, stored with the run.
    pub trace_id: Option<String>,
    /// A version to run on its own model instead of the environment's (the registry
    /// source only); it bypasses the environment's canary split.
    pub version: Option<u32>,
    /// The routing key of a canary split (e.g. a user id): one key always lands on the
    /// same side of one prompt's split in one environment. Without it, the run id decides.
    pub key: Option<String>,
    /// The OpenTelemetry context the run's span continues (a request's `traceparent`,
    /// or the embedding service's current span); default: the current context.
    pub parent: Option<opentelemetry::Context>,
}

/// Executes prompts: see the [module documentation](self). Cheap to clone; share one per
/// process (it holds one connection pool per provider).
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    providers: Providers,
    source: source::Source,
    recorder: RunRecorder,
    sample_rate: f64,
    store_io: bool,
    /// Whether run spans carry the prompt and the answer (`[telemetry] capture_content`).
    capture_content: bool,
    judge_model: String,
    scoring: tokio_util_lite::TaskCounter,
    /// Whether run metrics carry the prompt's name.
    prompt_labels: AtomicBool,
}

/// A counter of spawned scoring tasks, so shutdown can wait for them.
mod tokio_util_lite {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    pub struct TaskCounter {
        running: Arc<AtomicUsize>,
        done: Arc<tokio::sync::Notify>,
    }

    pub struct Guard {
        running: Arc<AtomicUsize>,
        done: Arc<tokio::sync::Notify>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.done.notify_waiters();
            }
        }
    }

    impl TaskCounter {
        pub fn enter(&self) -> Guard {
            self.running.fetch_add(1, Ordering::SeqCst);
            Guard {
                running: self.running.clone(),
                done: self.done.clone(),
            }
        }

        pub async fn idle(&self) {
            loop {
                let notified = self.done.notified();
                if self.running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        }
    }
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh random-looking run id (version 4 layout) without a random number generator:
/// a SHA-256 of the time, the process and a counter.
pub fn new_run_id() -> Uuid {
    let mut hasher = Sha256::new();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.update(now.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(RUN_COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The side of a canary split taking `weight` percent of calls that the call with routing
/// `key` takes, for the prompt `prompt` (`service/name`) in `environment`: a SHA-256 of
/// the three (apart from the sampling hash, so canary runs are sampled like the others)
/// placed on [0, 100). One key always lands on the same side, and raising the weight only
/// moves keys from the baseline to the canary.
pub fn side_for(prompt: &str, environment: &str, key: &[u8], weight: f64) -> Side {
    let mut hasher = Sha256::new();
    hasher.update(b"promptctl canary\0");
    hasher.update(prompt.as_bytes());
    hasher.update(b"\0");
    hasher.update(environment.as_bytes());
    hasher.update(b"\0");
    hasher.update(key);
    let digest = hasher.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let place = (u64::from_be_bytes(head) >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
    if place < weight {
        Side::Canary
    } else {
        Side::Baseline
    }
}

/// Whether the run `run_id` is scored at `rate`: a hash of the id, so a retried run (same
/// id) is sampled the same way.
pub fn is_sampled(run_id: &Uuid, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let digest = Sha256::digest(run_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) as f64 / u64::MAX as f64) < rate
}

impl Router {
    /// A router over `source`, calling models as `settings` configures them, recording runs
    /// into the PostgreSQL database at `database_url` (none: no recording). Must be called
    /// inside a Tokio runtime when recording.
    pub fn new(settings: &Settings, source: PromptSource, database_url: Option<String>) -> Router {
        let recorder = match database_url {
            Some(url) => RunRecorder::start(url, &settings.monitoring),
            None => RunRecorder::disabled(),
        };
        Router::with_providers(
            Providers::new(settings, Recordings::live()),
            source,
            recorder,
        )
    }

    /// A router with its providers and recorder given.
    pub fn with_providers(
        providers: Providers,
        source: PromptSource,
        recorder: RunRecorder,
    ) -> Router {
        let settings = providers.settings();
        let judge_model = settings
            .test
            .judge_model
            .clone()
            .unwrap_or_else(|| "gpt-4o-mini".to_owned());
        Router {
            inner: Arc::new(Inner {
                sample_rate: settings.monitoring.sample_rate,
                store_io: settings.monitoring.store_io,
                capture_content: settings.telemetry.capture_content,
                judge_model,
                providers,
                source: source::Source::new(source),
                recorder,
                scoring: tokio_util_lite::TaskCounter::default(),
                prompt_labels: AtomicBool::new(true),
            }),
        }
    }

    /// The providers the router calls.
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// Whether run metrics carry the prompt's name (`promptctl_prompt`; on by default):
    /// off, the label is empty, for registries of very many prompts (`serve
    /// --no-prompt-labels`). Metrics go through the `metrics` facade ([`crate::telemetry`]):
    /// the embedding program installs the recorder.
    pub fn set_prompt_labels(&self, on: bool) {
        self.inner.prompt_labels.store(on, Ordering::Relaxed);
    }

    /// Tells the router that the registry changed (`promptctl sync` published, and said
    /// so on its `NOTIFY` channel): the next call of each prompt reads it again instead of
    /// waiting for its cached copy to expire, and keeps that copy in case the database
    /// does not answer. Nothing changes for a repository or bundle source.
    pub fn registry_changed(&self) {
        self.inner.source.changed();
    }

    /// Rows written and dropped by the run recorder so far.
    pub fn recorder_stats(&self) -> RecorderStats {
        self.inner.recorder.stats()
    }

    /// What `environment` runs for `prompt`: version, model, definition (to read the
    /// declared variables before executing, or to render without calling a model).
    pub async fn resolve(
        &self,
        prompt: &str,
        environment: &str,
    ) -> Result<ResolvedPrompt, RouterError> {
        Ok(self
            .inner
            .source
            .get(prompt, environment, Side::Baseline)
            .await?
            .to_resolved())
    }

    /// Executes `prompt` (`name` or `service/name`) as `environment` runs it, with `vars`.
    pub async fn execute(
        &self,
        prompt: &str,
        environment: &str,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<RunOutput, RouterError> {
        self.execute_with(prompt, environment, vars, ExecuteOptions::default())
            .await
    }

    /// [`Router::execute`] with a caller-chosen run id or trace id.
    pub async fn execute_with(
        &self,
        prompt: &str,
        environment: &str,
        vars: &BTreeMap<String, serde_json::Value>,
        options: ExecuteOptions,
    ) -> Result<RunOutput, RouterError> {
        let started = Instant::now();
        let created_at = SystemTime::now();
        let inner = &self.inner;
        let run_id = options.run_id.unwrap_or_else(new_run_id);
        let parent = options
            .parent
            .clone()
            .unwrap_or_else(opentelemetry::Context::current);
        let trace_id = options
            .trace_id
            .clone()
            .or_else(|| crate::telemetry::spans::trace_id(&parent));
        let ready = self
            .ready(prompt, environment, &options, run_id)
            .await
            .inspect_err(|err| {
                self.count_failure(None, environment, err, None);
                let early = EarlyFailure {
                    started: created_at,
                    prompt,
                    environment,
                    run_id,
                };
                self.trace_early_failure(&parent, None, &early, err);
            })?;
        let resolved = &ready.target();
        let messages = resolved
            .renderer
            .render(resolved.definition, vars)
            .map_err(|error| RouterError::Render {
                prompt: resolved.id(),
                error,
            })
            .inspect_err(|err| {
                self.count_failure(Some(resolved), environment, err, None);
                let early = EarlyFailure {
                    started: created_at,
                    prompt,
                    environment,
                    run_id,
                };
                self.trace_early_failure(&parent, Some(resolved), &early, err);
            })?;
        let rendered = (inner.store_io || inner.capture_content)
            .then(|| serde_json::to_string(&messages).unwrap_or_default());
        let input_text = rendered.clone().filter(|_| inner.store_io);
        // Each provider request (retries and fallbacks) is logged in the context the calls
        // run in: the run's span gets one child per request when there is more than one.
        let log = Arc::new(AttemptLog::default());
        let calls = parent.with_value(log.clone());
        let (called, attempts) = self
            .call_chain(resolved, messages)
            .with_context(calls)
            .await;
        let timings = log.take();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let record = RunRecord {
            run_id,
            source: resolved.source.to_owned(),
            trace_id,
            service: resolved.service.to_owned(),
            name: resolved.name.to_owned(),
            version: resolved.version.and_then(|v| i32::try_from(v).ok()),
            environment: Some(environment.to_owned()).filter(|e| !e.is_empty()),
            side: resolved.side,
            model_requested: resolved.model.to_owned(),
            model_used: None,
            provider: None,
            latency_ms,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: None,
            error: None,
            attempt_errors: None,
            quality_score: None,
            sampled: false,
            input_text,
            output_text: None,
            created_at,
        };
        let outcome = match called {
            Called::Answered(model, response) => {
                Ok(self.answered(resolved, environment, record, (model, response), attempts))
            }
            Called::Rejected(model, error) => Err(self.failed(
                resolved,
                environment,
                record,
                Some((model, error)),
                attempts,
            )),
            Called::AllFailed => Err(self.failed(resolved, environment, record, None, attempts)),
        };
        let content = rendered.filter(|_| inner.capture_content);
        let span = RunTrace {
            started: created_at,
            run_id,
            environment,
            timings: &timings,
            content,
        };
        self.trace(&parent, resolved, &span, &outcome);
        outcome
    }

    /// Records a run that failed before a model was called (no such prompt, variables
    /// that do not fit) as a span with its `error.type` ([`crate::telemetry::spans`]).
    fn trace_early_failure(
        &self,
        parent: &opentelemetry::Context,
        resolved: Option<&Target<'_>>,
        run: &EarlyFailure<'_>,
        err: &RouterError,
    ) {
        let model = resolved.map_or("", |r| r.model);
        let Some(started) = crate::telemetry::spans::start(parent, model, run.started, false)
        else {
            return;
        };
        let prompt = resolved.map_or_else(|| run.prompt.to_owned(), Target::id);
        let run_id = run.run_id.to_string();
        let error = err.to_string();
        crate::telemetry::spans::record(
            parent,
            started,
            &crate::telemetry::spans::RunSpan {
                prompt: &prompt,
                version: resolved.and_then(|r| r.version),
                environment: run.environment,
                source: resolved.map_or("", |r| r.source),
                side: resolved.and_then(|r| r.side).map(Side::as_str),
                run_id: &run_id,
                request_model: model,
                response: None,
                tokens: None,
                error_type: Some(err.error_type()),
                error: Some(&error),
                attempts: &[],
                content: None,
            },
        );
    }

    /// The OpenTelemetry name of `model`'s provider (`openai`, `anthropic`, `echo`).
    fn genai_provider(&self, model: &str) -> &'static str {
        self.inner
            .providers
            .provider_kind(model)
            .map_or("", crate::config::ProviderKind::genai_name)
    }

    /// Records the run as an OpenTelemetry span under `parent` ([`crate::telemetry::spans`]).
    fn trace(
        &self,
        parent: &opentelemetry::Context,
        resolved: &Target<'_>,
        run: &RunTrace<'_>,
        outcome: &Result<RunOutput, RouterError>,
    ) {
        let wraps = run.timings.len() > 1;
        let Some(started) =
            crate::telemetry::spans::start(parent, resolved.model, run.started, wraps)
        else {
            return;
        };
        let prompt = resolved.id();
        let run_id = run.run_id.to_string();
        let answered = outcome.as_ref().ok();
        let failed = outcome.as_ref().err();
        let error = failed.map(ToString::to_string);
        crate::telemetry::spans::record(
            parent,
            started,
            &crate::telemetry::spans::RunSpan {
                prompt: &prompt,
                version: resolved.version,
                environment: run.environment,
                source: resolved.source,
                side: resolved.side.map(Side::as_str),
                run_id: &run_id,
                request_model: resolved.model,
                response: answered.map(|a| {
                    let model = a.provider_model.as_deref().unwrap_or(&a.model);
                    (model, self.genai_provider(&a.model))
                }),
                tokens: answered.map(|a| (a.usage.all_input_tokens(), a.usage.output_tokens)),
                error_type: failed.map(RouterError::error_type),
                error: error.as_deref(),
                attempts: run.timings,
                content: run
                    .content
                    .clone()
                    .map(|input| (input, answered.map(|a| a.output.as_str()))),
            },
        );
    }

    /// The prompt a call runs: `options.version` on its own model, else the environment's
    /// baseline or, when the environment has a canary split and the call's routing key
    /// (`options.key`, else the run id) lands on it, its canary.
    async fn ready(
        &self,
        prompt: &str,
        environment: &str,
        options: &ExecuteOptions,
        run_id: Uuid,
    ) -> Result<source::Ready, RouterError> {
        let source = &self.inner.source;
        if let Some(version) = options.version {
            return source.get_version(prompt, version).await;
        }
        let baseline = source.get(prompt, environment, Side::Baseline).await?;
        let target = baseline.target();
        let Some(weight) = target.canary_weight.filter(|_| !environment.is_empty()) else {
            return Ok(baseline);
        };
        let key = match &options.key {
            Some(key) => key.as_bytes(),
            None => run_id.as_bytes(),
        };
        match side_for(&target.id(), environment, key, weight) {
            Side::Baseline => Ok(baseline),
            // A split a sync removed since the baseline was read, or a canary the source
            // cannot give now: the environment's own pin answers.
            Side::Canary => Ok(source
                .get(prompt, environment, Side::Canary)
                .await
                .unwrap_or(baseline)),
        }
    }

    /// Calls the model and its fallbacks in turn until one answers or refuses; the
    /// transient failures on the way come back with the outcome.
    async fn call_chain(
        &self,
        resolved: &Target<'_>,
        messages: Vec<crate::render::RenderedMessage>,
    ) -> (Called, Vec<AttemptError>) {
        let mut attempts: Vec<AttemptError> = Vec::new();
        for model in self.chain(resolved.model) {
            match self
                .inner
                .providers
                .chat(
                    &model,
                    messages.clone(),
                    resolved.definition.parameters.clone(),
                )
                .await
            {
                Ok(response) => return (Called::Answered(model, response), attempts),
                Err(error) if error.is_transient() => attempts.push(AttemptError {
                    model,
                    error: error.to_string(),
                }),
                Err(error) => return (Called::Rejected(model, error), attempts),
            }
        }
        (Called::AllFailed, attempts)
    }

    /// The labels of a run's metrics (the prompt's name left empty when turned off).
    fn labels<'a>(&self, prompt: &'a str, environment: &'a str, model: &'a str) -> RunLabels<'a> {
        RunLabels {
            prompt: if self.inner.prompt_labels.load(Ordering::Relaxed) {
                prompt
            } else {
                ""
            },
            environment,
            model_requested: model,
        }
    }

    /// Counts a run that failed (`resolved`: the prompt, when it was found; `latency_ms`:
    /// when models were called).
    fn count_failure(
        &self,
        resolved: Option<&Target<'_>>,
        environment: &str,
        err: &RouterError,
        latency_ms: Option<f64>,
    ) {
        let id = resolved.map(Target::id).unwrap_or_default();
        let model = resolved.map_or("", |r| r.model);
        crate::telemetry::record_run(
            self.labels(&id, environment, model),
            RunOutcome::Failed {
                error_type: err.error_type(),
                seconds: latency_ms.map(|ms| ms / 1000.0),
            },
        );
    }

    /// A run no model answered: counted, recorded, and turned into its error.
    fn failed(
        &self,
        resolved: &Target<'_>,
        environment: &str,
        mut record: RunRecord,
        rejected: Option<(String, ProviderError)>,
        attempts: Vec<AttemptError>,
    ) -> RouterError {
        let run_id = record.run_id;
        let attempts_text = join_attempts(&attempts);
        let err = match rejected {
            Some((model, error)) => {
                record.provider = self.inner.providers.provider_name(&model);
                record.error = Some(format!("{model}: {error}"));
                record.attempt_errors = attempts_text;
                RouterError::Rejected {
                    run_id,
                    model,
                    error,
                    attempts,
                }
            }
            None => {
                record.error = attempts_text.clone();
                record.attempt_errors = attempts_text;
                RouterError::AllFailed { run_id, attempts }
            }
        };
        self.count_failure(Some(resolved), environment, &err, Some(record.latency_ms));
        self.inner.recorder.record(record);
        err
    }

    /// A run a model answered: counted, recorded (once scored, when sampled), returned.
    fn answered(
        &self,
        resolved: &Target<'_>,
        environment: &str,
        mut record: RunRecord,
        (model, response): (String, crate::providers::ChatResponse),
        attempts: Vec<AttemptError>,
    ) -> RunOutput {
        let inner = &self.inner;
        let cost_usd = inner.providers.cost_usd(&model, &response.usage);
        let provider = inner.providers.provider_name(&model).unwrap_or_default();
        let usage = response.usage;
        let provider_model = response.model.clone();
        let id = resolved.id();
        crate::telemetry::record_run(
            self.labels(&id, environment, resolved.model),
            RunOutcome::Answered {
                provider: &provider,
                model: &model,
                seconds: record.latency_ms / 1000.0,
                usage: &usage,
                cost_usd,
            },
        );
        record.model_used = Some(model.clone());
        record.provider = Some(provider.clone());
        record.input_tokens = clamp(usage.input_tokens);
        record.output_tokens = clamp(usage.output_tokens);
        record.cache_read_tokens = clamp(usage.cache_read_tokens);
        record.cache_write_tokens = clamp(usage.cache_write_tokens);
        record.cost_usd = cost_usd;
        record.attempt_errors = join_attempts(&attempts);
        record.output_text = inner.store_io.then(|| response.text.clone());
        let latency_ms = record.latency_ms;
        let run_id = record.run_id;
        let sampled = !resolved.monitor.is_empty() && is_sampled(&run_id, inner.sample_rate);
        if sampled {
            record.sampled = true;
            self.score_then_record(record, resolved.monitor.to_vec(), response.text.clone());
        } else {
            inner.recorder.record(record);
        }
        RunOutput {
            run_id,
            output: response.text,
            prompt: id,
            environment: environment.to_owned(),
            version: resolved.version,
            model_requested: resolved.model.to_owned(),
            model,
            provider,
            usage,
            latency_ms,
            cost_usd,
            fallbacks: attempts,
            sampled,
            side: resolved.side,
            provider_model,
        }
    }

    /// Scores a sampled run by the prompt's `monitor` assertions in a spawned task (each
    /// grading call recorded as a run of its own), then records it with its score.
    fn score_then_record(&self, mut record: RunRecord, monitor: Vec<Assertion>, text: String) {
        let guard = self.inner.scoring.enter();
        let this = self.clone();
        let facts = CallFacts {
            latency_ms: record.latency_ms,
            cost_usd: record.cost_usd,
        };
        tokio::spawn(async move {
            let _guard = guard;
            let mut passed = 0usize;
            for assertion in &monitor {
                let started = Instant::now();
                let created_at = SystemTime::now();
                let result = evaluate(
                    assertion,
                    &text,
                    Some(facts),
                    &this.inner.providers,
                    &this.inner.judge_model,
                )
                .await;
                this.record_grading(&record, &result, started, created_at);
                if result.is_ok_and(|outcome| outcome.passed) {
                    passed += 1;
                }
            }
            record.quality_score = Some(passed as f64 / monitor.len() as f64);
            this.inner.recorder.record(record);
        });
    }

    /// Records the grader model's call that judged the run `judged` (an `llm_judge`
    /// monitor assertion) as a run of its own: named `NAME:judge` under the judged
    /// prompt's service, with the judged run's id as its trace id, so that `stats` keeps
    /// grading apart from the prompt's own calls and its cost is still counted.
    fn record_grading(
        &self,
        judged: &RunRecord,
        result: &Result<AssertionOutcome, AssertionError>,
        started: Instant,
        created_at: SystemTime,
    ) {
        let inner = &self.inner;
        let (model, usage, error) = match result {
            Ok(outcome) => match &outcome.grader {
                Some(call) => (call.model.clone(), call.usage, None),
                None => return,
            },
            Err(error) => match &error.grader {
                Some(model) => (
                    model.clone(),
                    Usage::default(),
                    Some(error.source.to_string()),
                ),
                None => return,
            },
        };
        let provider = inner.providers.provider_name(&model);
        let answered = error.is_none();
        inner.recorder.record(RunRecord {
            run_id: new_run_id(),
            source: judged.source.clone(),
            trace_id: Some(judged.run_id.to_string()),
            service: judged.service.clone(),
            name: judge_run_name(&judged.name),
            version: judged.version,
            environment: judged.environment.clone(),
            side: judged.side,
            model_requested: model.clone(),
            model_used: answered.then(|| model.clone()),
            provider,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            input_tokens: clamp(usage.input_tokens),
            output_tokens: clamp(usage.output_tokens),
            cache_read_tokens: clamp(usage.cache_read_tokens),
            cache_write_tokens: clamp(usage.cache_write_tokens),
            cost_usd: if answered {
                inner.providers.cost_usd(&model, &usage)
            } else {
                None
            },
            error,
            attempt_errors: None,
            quality_score: None,
            sampled: false,
            input_text: None,
            output_text: None,
            created_at,
        });
    }

    /// The model and its fallbacks, in order, each once.
    fn chain(&self, model: &str) -> Vec<String> {
        let models = &self.inner.providers.settings().models;
        let mut chain = vec![model.to_owned()];
        let mut index = 0;
        while index < chain.len() {
            if let Some(settings) = models.get(&chain[index]) {
                for next in &settings.fallbacks {
                    if !chain.contains(next) {
                        chain.push(next.clone());
                    }
                }
            }
            index += 1;
        }
        chain
    }

    /// Waits for quality scoring in flight, then flushes the recorder, in all at most
    /// `deadline`.
    pub async fn shutdown(&self, deadline: Duration) -> RecorderStats {
        let started = Instant::now();
        let _ = tokio::time::timeout(deadline, self.inner.scoring.idle()).await;
        self.inner
            .recorder
            .shutdown(deadline.saturating_sub(started.elapsed()))
            .await
    }
}

/// How the chain of models ended.
/// What the span of a run that failed before a model was called says.
struct EarlyFailure<'a> {
    started: SystemTime,
    /// The prompt as asked for.
    prompt: &'a str,
    environment: &'a str,
    run_id: Uuid,
}

/// What a run's span needs beyond the prompt and the outcome.
struct RunTrace<'a> {
    started: SystemTime,
    run_id: Uuid,
    environment: &'a str,
    timings: &'a [Attempt],
    /// The rendered messages as JSON, when content is captured.
    content: Option<String>,
}

enum Called {
    /// A model answered.
    Answered(String, crate::providers::ChatResponse),
    /// A model refused the request (not transient): no fallback.
    Rejected(String, ProviderError),
    /// Every model failed transiently.
    AllFailed,
}

fn clamp(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn join_attempts(attempts: &[AttemptError]) -> Option<String> {
    (!attempts.is_empty()).then(|| {
        attempts
            .iter()
            .map(|a| format!("{}: {}", a.model, a.error))
            .collect::<Vec<_>>()
            .join("; ")
    })
}
/// The run name of a grading call: `NAME:judge`, the judged name cut (between characters)
/// so that the whole fits the registry's `name` column (the recorder would otherwise cut
/// the suffix off).
fn judge_run_name(judged: &str) -> String {
    const SUFFIX: &str = ":judge";
    let kept: String = judged
        .chars()
        .take(crate::registry::columns::MAX_NAME - SUFFIX.len())
        .collect();
    format!("{kept}{SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judge_run_name_fits_the_name_column() {
        assert_eq!(judge_run_name("billing_summary"), "billing_summary:judge");
        let long = judge_run_name(&"é".repeat(300));
        assert_eq!(long.chars().count(), 255);
        assert!(long.ends_with(":judge"));
    }
}
