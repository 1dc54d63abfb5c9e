//! Model providers: one code path from a rendered prompt to a model's answer.
//!
//! [`Providers`] resolves a model name to its provider (`[models]`, then
//! `default_provider`), and calls it through the provider's wire format (`openai`,
//! `anthropic`, or the built-in offline `echo`), with retries, backoff, a rate limit and a
//! timeout (`http`), recording or replaying each exchange when asked (`recording`). The
//! test runner, the router and `serve` all call models through here. API keys are read from
//! the environment variable a provider names and never leave this module: they are not in
//! errors, recordings or output.

mod anthropic;
mod echo;
pub mod http;
mod openai;
pub mod recording;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ProviderKind, ProviderSettings, Settings};
use crate::render::RenderedMessage;
pub use http::RetryPolicy;
pub use recording::{Mode, Recordings};

/// The name of the built-in offline model and provider.
pub const ECHO: &str = "echo";

/// A chat request, as the provider will see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name sent to the provider.
    pub model: String,
    /// The rendered messages.
    pub messages: Vec<RenderedMessage>,
    /// Provider parameters, passed as they are.
    pub parameters: BTreeMap<String, serde_json::Value>,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the input price (excluding cache reads and writes).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Every input token the model read, cache reads and writes included: how the
    /// OpenTelemetry GenAI conventions count `gen_ai.usage.input_tokens` (the metrics count
    /// input tokens this one way).
    pub fn all_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A model's answer to a chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The text of the answer.
    pub text: String,
    /// Token usage.
    pub usage: Usage,
    /// Wall time of the call, retries included, in milliseconds.
    pub latency_ms: f64,
    /// The model the provider says answered (e.g. `gpt-4o-2024-08-06`), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether the answer came from a recording.
    #[serde(skip)]
    pub replayed: bool,
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Status {
        /// The provider's name.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's error message (never containing the key).
        message: String,
    },
    /// The request timed out.
    #[error("{provider} did not answer within {seconds:.1} s")]
    Timeout {
        /// The provider's name.
        provider: String,
        /// The timeout.
        seconds: f64,
    },
    /// The connection failed.
    #[error("cannot reach {provider} at {url}: {message}")]
    Connect {
        /// The provider's name.
        provider: String,
        /// The URL called.
        url: String,
        /// Why.
        message: String,
    },
    /// The provider's answer could not be understood.
    #[error("{provider} sent a malformed answer: {message}")]
    Malformed {
        /// The provider's name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The API key's environment variable is not set.
    #[error(
        "provider `{provider}` needs an API key in the environment variable {variable}, which is not set"
    )]
    MissingKey {
        /// The provider's name.
        provider: String,
        /// The variable.
        variable: String,
    },
    /// The configuration names a provider that does not exist.
    #[error("model `{model}` uses provider `{provider}`, which is not configured")]
    UnknownProvider {
        /// The model.
        model: String,
        /// The provider named.
        provider: String,
    },
    /// `--replay` found no recording for a request.
    #[error(
        "no recording for {model} at {path}; record it with `promptctl test --record` (live, with the provider's key set)"
    )]
    NoRecording {
        /// The model.
        model: String,
        /// Where the recording was looked for.
        path: String,
    },
    /// A recording could not be read or written.
    #[error("recording {path}: {message}")]
    Recording {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl ProviderError {
    /// Whether retrying the same request may succeed (429, 5xx, timeouts, dropped
    /// connections); never for a request the provider rejected as invalid.
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => crate::retry::transient_status(*status),
            ProviderError::Timeout { .. } | ProviderError::Connect { .. } => true,
            _ => false,
        }
    }

    /// Whether the failure is the user's configuration rather than the provider's (bad
    /// input, exit 2, rather than exit 3).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            ProviderError::MissingKey { .. }
                | ProviderError::UnknownProvider { .. }
                | ProviderError::NoRecording { .. }
        )
    }
}

/// A provider's resolved settings.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Its name in `promptctl.toml`.
    pub name: String,
    /// Its wire format.
    pub kind: ProviderKind,
    /// The API's base URL.
    pub base_url: String,
    /// The environment variable holding the key, if it needs one.
    pub api_key_env: Option<String>,
    /// Requests per second allowed.
    pub rate_limit_per_s: Option<f64>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn builtin_provider(name: &str) -> Option<ProviderSettings> {
    let (kind, base_url, key) = match name {
        "openai" => (
            ProviderKind::Openai,
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
        ),
        "anthropic" => (
            ProviderKind::Anthropic,
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
        ),
        ECHO => (ProviderKind::Echo, "", ""),
        _ => return None,
    };
    Some(ProviderSettings {
        kind,
        base_url: Some(base_url.to_owned()).filter(|s| !s.is_empty()),
        api_key_env: Some(key.to_owned()).filter(|s| !s.is_empty()),
        rate_limit_per_s: None,
        max_retries: None,
        timeout_s: None,
    })
}

impl ProviderSpec {
    fn from_settings(name: &str, settings: &ProviderSettings) -> ProviderSpec {
        let default_url = match settings.kind {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Echo => "",
        };
        ProviderSpec {
            name: name.to_owned(),
            kind: settings.kind,
            base_url: settings
                .base_url
                .clone()
                .unwrap_or_else(|| default_url.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            api_key_env: settings.api_key_env.clone(),
            rate_limit_per_s: settings.rate_limit_per_s.filter(|r| *r > 0.0),
            retry: RetryPolicy {
                max_retries: settings.max_retries.unwrap_or(3),
                ..RetryPolicy::default()
            },
            timeout: settings
                .timeout_s
                .and_then(|t| Duration::try_from_secs_f64(t).ok())
                .filter(|t| !t.is_zero())
                .unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

/// A model resolved to its provider.
#[derive(Debug, Clone)]
pub struct ModelTarget {
    /// Our name for the model.
    pub model: String,
    /// The name sent to the provider.
    pub api_model: String,
    /// The provider.
    pub provider: Arc<ProviderClient>,
    /// The timeout for this model's calls.
    pub timeout: Duration,
}

/// One provider with its connection pool and rate limiter.
#[derive(Debug)]
pub struct ProviderClient {
    /// Settings.
    pub spec: ProviderSpec,
    http: Arc<OnceLock<reqwest::Client>>,
    limiter: http::RateLimiter,
}

/// Every provider of a project, ready to call.
#[derive(Debug, Clone)]
pub struct Providers {
    settings: Arc<Settings>,
    clients: Arc<BTreeMap<String, Arc<ProviderClient>>>,
    recordings: Arc<Recordings>,
}

impl Providers {
    /// Builds the providers of `settings`; `recordings` decides live, record or replay.
    pub fn new(settings: &Settings, recordings: Recordings) -> Providers {
        let mut names: Vec<String> = settings.providers.keys().cloned().collect();
        for builtin in ["openai", "anthropic", ECHO] {
            if !names.iter().any(|n| n == builtin) {
                names.push(builtin.to_owned());
            }
        }
        // Made at the first HTTP call and shared: building it loads the TLS roots, which an
        // offline (echo) run never needs.
        let http = Arc::new(OnceLock::new());
        let clients = names
            .into_iter()
            .filter_map(|name| {
                let settings = settings
                    .providers
                    .get(&name)
                    .cloned()
                    .or_else(|| builtin_provider(&name))?;
                let spec = ProviderSpec::from_settings(&name, &settings);
                let limiter = http::RateLimiter::new(spec.rate_limit_per_s);
                Some((
                    name,
                    Arc::new(ProviderClient {
                        spec,
                        http: http.clone(),
                        limiter,
                    }),
                ))
            })
            .collect();
        Providers {
            settings: Arc::new(settings.clone()),
            clients: Arc::new(clients),
            recordings: Arc::new(recordings),
        }
    }

    /// Whether calls are recorded or replayed (and so need their request's key).
    fn recording(&self) -> bool {
        self.recordings.mode != Mode::Live
    }

    /// The project settings these providers were built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The wire format of the provider `model` is called through, when one is configured.
    pub fn provider_kind(&self, model: &str) -> Option<crate::config::ProviderKind> {
        self.target(model)
            .ok()
            .map(|target| target.provider.spec.kind)
    }

    /// The name of the provider `model` is called through, as `promptctl.toml` names it.
    pub fn provider_name(&self, model: &str) -> Option<String> {
        self.target(model)
            .ok()
            .map(|target| target.provider.spec.name.clone())
    }

    /// The provider and settings `model` is called with.
    pub fn target(&self, model: &str) -> Result<ModelTarget, ProviderError> {
        let model_settings = self.settings.models.get(model);
        let provider_name = match model_settings.and_then(|m| m.provider.clone()) {
            Some(name) => name,
            None if model == ECHO => ECHO.to_owned(),
            None => self.settings.default_provider.clone(),
        };
        let provider = self.clients.get(&provider_name).cloned().ok_or_else(|| {
            ProviderError::UnknownProvider {
                model: model.to_owned(),
                provider: provider_name.clone(),
            }
        })?;
        let timeout = model_settings
            .and_then(|m| m.timeout_s)
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .filter(|t| !t.is_zero())
            .unwrap_or(provider.spec.timeout);
        Ok(ModelTarget {
            model: model.to_owned(),
            api_model: model_settings
                .and_then(|m| m.api_name.clone())
                .unwrap_or_else(|| model.to_owned()),
            provider,
            timeout,
        })
    }

    /// Sends a chat request to `model` (our name), with retries, recording or replay.
    pub async fn chat(
        &self,
        model: &str,
        messages: Vec<RenderedMessage>,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Result<ChatResponse, ProviderError> {
        let target = self.target(model)?;
        let request = ChatRequest {
            model: target.api_model.clone(),
            messages,
            parameters,
        };
        // A live call needs no key: hashing every request would cost as much as an
        // offline (echo) call itself.
        let key = self
            .recording()
            .then(|| recording::RequestKey::chat(&target.provider.spec.name, &request));
        if let Some(key) = &key
            && let Some(replayed) = self.recordings.replay_chat(key)?
        {
            return Ok(replayed);
        }
        let started = std::time::Instant::now();
        let mut response = target.provider.chat(&request, target.timeout).await?;
        response.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(key) = &key {
            self.recordings.record_chat(key, &request, &response)?;
        }
        Ok(response)
    }

    /// Embeds `texts` with `model` (an OpenAI-compatible embeddings endpoint).
    pub async fn embed(
        &self,
        model: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ProviderError> {
        let target = self.target(model)?;
        let key = self.recording().then(|| {
            recording::RequestKey::embedding(&target.provider.spec.name, &target.api_model, &texts)
        });
        if let Some(key) = &key
            && let Some(vectors) = self.recordings.replay_embedding(key)?
        {
            return Ok(vectors);
        }
        let vectors = target
            .provider
            .embed(&target.api_model, &texts, target.timeout)
            .await?;
        if let Some(key) = &key {
            self.recordings
                .record_embedding(key, &target.api_model, &texts, &vectors)?;
        }
        Ok(vectors)
    }

    /// The price of `usage` on `model` in US dollars, when `[models]` gives its prices.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> Option<f64> {
        let model = self.settings.models.get(model)?;
        let input = model.input_usd_per_mtok?;
        let output = model.output_usd_per_mtok?;
        // Cache reads are billed at a tenth and cache writes at 1.25 times the input price
        // (Anthropic's published multipliers); providers without a cache report zero.
        let input_tokens = usage.input_tokens as f64
            + usage.cache_read_tokens as f64 * 0.1
            + usage.cache_write_tokens as f64 * 1.25;
        Some((input_tokens * input + usage.output_tokens as f64 * output) / 1_000_000.0)
    }
}

/// A chat API's wire format: its headers, how a request is written and how the answer
/// is read.
struct ChatWire {
    headers: fn(Option<&str>) -> Vec<(&'static str, String)>,
    request: fn(&str, &ChatRequest) -> (String, serde_json::Value),
    parse: fn(&str, &serde_json::Value) -> Result<ChatResponse, ProviderError>,
}

/// OpenAI's chat completions (and compatible servers).
const OPENAI_CHAT: ChatWire = ChatWire {
    headers: openai::headers,
    request: openai::chat_request,
    parse: openai::parse_chat,
};

/// Anthropic's messages API.
const ANTHROPIC_CHAT: ChatWire = ChatWire {
    headers: anthropic::headers,
    request: anthropic::chat_request,
    parse: anthropic::parse_chat,
};

impl ProviderClient {
    fn api_key(&self) -> Result<Option<String>, ProviderError> {
        let Some(variable) = &self.spec.api_key_env else {
            return Ok(None);
        };
        match std::env::var(variable) {
            Ok(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(ProviderError::MissingKey {
                provider: self.spec.name.clone(),
                variable: variable.clone(),
            }),
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let wire = match self.spec.kind {
            ProviderKind::Echo => return Ok(echo::chat(request)),
            ProviderKind::Openai => &OPENAI_CHAT,
            ProviderKind::Anthropic => &ANTHROPIC_CHAT,
        };
        let key = self.api_key()?;
        let (url, body) = (wire.request)(&self.spec.base_url, request);
        let json = self
            .post(&url, &body, (wire.headers)(key.as_deref()), timeout)
            .await?;
        (wire.parse)(&self.spec.name, &json)
    }

    async fn embed(
        &self,
        model: &str,
        texts: &[String],
        timeout: Duration,
    ) -> Result<Vec<Vec<f32>>, ProviderError> {
        match self.spec.kind {
            ProviderKind::Echo => Ok(texts.iter().map(|t| echo::embed(t)).collect()),
            ProviderKind::Openai => {
                let key = self.api_key()?;
                let (url, body) = openai::embedding_request(&self.spec.base_url, model, texts);
                let json = self.post(&url, &body, openai::headers(key.as_deref()), timeout).await?;
                openai::parse_embeddings(&self.spec.name, &json, texts.len())
            }
            ProviderKind::Anthropic => Err(ProviderError::Malformed {
                provider: self.spec.name.clone(),
                message: "the Anthropic API has no embeddings endpoint; set [test] embedding_model to an OpenAI-compatible model".into(),
            }),
        }
    }

    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        headers: Vec<(&'static str, String)>,
        timeout: Duration,
    ) -> Result<serde_json::Value, ProviderError> {
        let client = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default()
        });
        http::post_json_with_retries(
            client,
            &self.spec,
            &self.limiter,
            url,
            body,
            &headers,
            timeout,
        )
        .await
    }
}
