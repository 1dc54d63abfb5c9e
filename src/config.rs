//! `promptctl.toml`: finding the project, reading its settings, and their defaults.
//!
//! The project root is the folder holding `promptctl.toml`, found by walking up from the
//! working directory the way Cargo finds `Cargo.toml`; without one, the enclosing Git
//! repository's top folder, and failing that the working directory itself. Every key is
//! optional (SPEC section 5). Unknown keys are errors, so a typo never silently does nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diagnostic::{Diagnostic, Position, closest};

/// The name of the project configuration file.
pub const CONFIG_FILE: &str = "promptctl.toml";

/// `promptctl.toml` files larger than this are refused: settings are a few lines.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Errors finding or reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file exists but could not be read (or is not a regular file, or
    /// is over [`MAX_CONFIG_BYTES`]).
    #[error("{0}")]
    Read(crate::files::ReadError),
    /// The configuration file is not valid.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    /// The starting folder does not exist.
    #[error("{path} is not a folder")]
    NoSuchFolder {
        /// The folder.
        path: PathBuf,
    },
}

/// The resolved configuration of one project.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project root: paths in the configuration are relative to it.
    pub root: PathBuf,
    /// Where `promptctl.toml` was found, if anywhere.
    pub file: Option<PathBuf>,
    /// The settings, with defaults applied.
    pub settings: Settings,
}

impl Config {
    /// Finds the project from `start` (walking up) and reads its settings.
    pub fn discover(start: &Path) -> Result<Config, ConfigError> {
        if !start.is_dir() {
            return Err(ConfigError::NoSuchFolder {
                path: start.to_path_buf(),
            });
        }
        let start = start.canonicalize().map_err(|source| {
            ConfigError::Read(crate::files::ReadError::Io {
                path: start.to_path_buf(),
                source,
            })
        })?;
        for dir in start.ancestors() {
            let candidate = dir.join(CONFIG_FILE);
            // Whatever the name is (a FIFO, a link), it is the project's configuration: it
            // is read as a regular file or refused, never skipped.
            if std::fs::symlink_metadata(&candidate).is_ok() {
                let text = crate::files::read_regular_text(&candidate, MAX_CONFIG_BYTES)
                    .map_err(ConfigError::Read)?;
                let settings = Settings::parse(&text, Path::new(CONFIG_FILE))?;
                return Ok(Config {
                    root: dir.to_path_buf(),
                    file: Some(candidate),
                    settings,
                });
            }
        }
        let root = start
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(&start)
            .to_path_buf();
        Ok(Config {
            root,
            file: None,
            settings: Settings::default(),
        })
    }

    /// The prompts folder, as an absolute path.
    pub fn prompts_dir(&self) -> PathBuf {
        self.root.join(&self.settings.prompts_dir)
    }

    /// The environments file, as an absolute path.
    pub fn environments_file(&self) -> PathBuf {
        self.root.join(&self.settings.environments)
    }
}

/// Everything `promptctl.toml` can say (SPEC section 5).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The folder holding prompt files, relative to the root.
    pub prompts_dir: PathBuf,
    /// The environments file, relative to the root.
    pub environments: PathBuf,
    /// The provider for models not listed under `[models]`.
    pub default_provider: String,
    /// Model providers by name.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Per-model settings: provider, prices, fallbacks, timeout.
    pub models: BTreeMap<String, ModelSettings>,
    /// `promptctl test` settings.
    pub test: TestSettings,
    /// `promptctl sync` settings.
    pub sync: SyncSettings,
    /// Run monitoring settings.
    pub monitoring: MonitoringSettings,
    /// `promptctl canary status` settings: how sure, and how much worse is worse.
    pub canary: CanarySettings,
    /// OpenTelemetry export of runs as spans (off unless an endpoint is configured).
    pub telemetry: TelemetrySettings,
    /// `promptctl serve` settings.
    pub serve: ServeSettings,
    /// Limits of every render.
    pub render: RenderSettings,
    /// How long every command waits for PostgreSQL.
    pub database: DatabaseSettings,
    /// The language server: whether its test runs may call models.
    pub lsp: LspSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prompts_dir: PathBuf::from("prompts"),
            environments: PathBuf::from("environments.yaml"),
            default_provider: "openai".to_owned(),
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            test: TestSettings::default(),
            sync: SyncSettings::default(),
            monitoring: MonitoringSettings::default(),
            canary: CanarySettings::default(),
            telemetry: TelemetrySettings::default(),
            serve: ServeSettings::default(),
            render: RenderSettings::default(),
            database: DatabaseSettings::default(),
            lsp: LspSettings::default(),
        }
    }
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat completions API.
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
    /// The built-in offline provider that answers with the rendered user message.
    Echo,
}

impl ProviderKind {
    /// The wire format as the OpenTelemetry GenAI conventions name the provider
    /// (`gen_ai.provider.name`): `openai`, `anthropic`; `echo` for the offline one.
    pub fn genai_name(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Echo => "echo",
        }
    }
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The wire format.
    pub kind: ProviderKind,
    /// The API's base URL.
    pub base_url: Option<String>,
    /// The environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Requests per second allowed to this provider (unlimited when absent).
    #[serde(default, deserialize_with = "bounded::rate")]
    #[schemars(range(min = 0.001, max = 100000))]
    pub rate_limit_per_s: Option<f64>,
    /// Attempts after the first for transient failures.
    #[serde(default, deserialize_with = "bounded::retries")]
    #[schemars(range(min = 0, max = 20))]
    pub max_retries: Option<u32>,
    /// The request timeout in seconds.
    #[serde(default, deserialize_with = "bounded::seconds")]
    #[schemars(range(min = 0.001, max = 3600))]
    pub timeout_s: Option<f64>,
}

/// One `[models."NAME"]` table.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The provider serving this model.
    pub provider: Option<String>,
    /// The model's name at the provider, when it differs from ours.
    pub api_name: Option<String>,
    /// US dollars per million input tokens.
    #[serde(default, deserialize_with = "bounded::price")]
    #[schemars(range(min = 0, max = 1000000))]
    pub input_usd_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    #[serde(default, deserialize_with = "bounded::price")]
    #[schemars(range(min = 0, max = 1000000))]
    pub output_usd_per_mtok: Option<f64>,
    /// Models to try, in order, when this one's provider fails.
    pub fallbacks: Vec<String>,
    /// The request timeout in seconds for this model.
    #[serde(default, deserialize_with = "bounded::seconds")]
    #[schemars(range(min = 0.001, max = 3600))]
    pub timeout_s: Option<f64>,
}

/// The `[test]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TestSettings {
    /// How many model calls run at once.
    #[serde(deserialize_with = "bounded::concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: usize,
    /// The embedding model for `semantic_similarity`; lexical similarity when absent.
    pub embedding_model: Option<String>,
    /// The model that grades `llm_judge` assertions.
    pub judge_model: Option<String>,
    /// Where `--record` writes and `--replay` reads, relative to the root.
    pub recordings: PathBuf,
    /// The share of prompts that must have tests.
    #[serde(deserialize_with = "bounded::share")]
    #[schemars(range(min = 0, max = 1))]
    pub min_coverage: f64,
    /// How far an assertion's score may fall against the base (`test --baseline`) before
    /// the test counts as a regression, even when it still passes.
    #[serde(deserialize_with = "bounded::share")]
    #[schemars(range(min = 0, max = 1))]
    pub regression_tolerance: f64,
    /// The regions (ISO 3166-1 alpha-2 codes) whose phone numbers `safety_check` finds when
    /// written without a country code; numbers with one (`+44 ...`) are found for every
    /// region.
    #[serde(deserialize_with = "bounded::regions")]
    #[schemars(with = "Vec<String>", length(max = 300))]
    pub pii_regions: Vec<phonenumber::country::Id>,
}

/// The default `[test] pii_regions`: the largest markets.
pub fn default_pii_regions() -> Vec<phonenumber::country::Id> {
    use phonenumber::country::Id;
    vec![
        Id::US,
        Id::CA,
        Id::GB,
        Id::IE,
        Id::AU,
        Id::IN,
        Id::DE,
        Id::FR,
        Id::ES,
        Id::IT,
        Id::NL,
        Id::BR,
        Id::MX,
        Id::IL,
        Id::JP,
        Id::CN,
        Id::KR,
    ]
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            concurrency: 8,
            embedding_model: None,
            judge_model: None,
            recordings: PathBuf::from("prompts/.recordings"),
            min_coverage: 1.0,
            regression_tolerance: 0.05,
            pii_regions: default_pii_regions(),
        }
    }
}

/// The `[sync]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// The branch whose history is published.
    pub branch: String,
    /// The environment variable holding the database URL.
    pub database_url_env: String,
    /// The source this repository publishes as, in a registry shared by many repositories
    /// (default: the repository's top folder name).
    pub source: Option<String>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            branch: "main".to_owned(),
            database_url_env: "DATABASE_URL".to_owned(),
            source: None,
        }
    }
}

/// The `[monitoring]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringSettings {
    /// The share of runs scored by the prompt's `monitor` assertions.
    #[serde(deserialize_with = "bounded::share")]
    #[schemars(range(min = 0, max = 1))]
    pub sample_rate: f64,
    /// How many days of runs to keep.
    #[serde(deserialize_with = "bounded::days")]
    #[schemars(range(min = 0, max = 36500))]
    pub retention_days: u32,
    /// How many days of hour and day rollups to keep (minute rollups follow
    /// `retention_days`); 0 keeps them.
    #[serde(deserialize_with = "bounded::days")]
    #[schemars(range(min = 0, max = 36500))]
    pub rollup_retention_days: u32,
    /// What the run recorder's commits wait for (PostgreSQL's `synchronous_commit` for its
    /// session): `off` (the default) returns before the write-ahead log reaches the disk, so
    /// a server crash may lose the last fraction of a second of runs; `local` and `on` wait
    /// for the local flush (and `on` for synchronous standbys, when there are any).
    pub synchronous_commit: SynchronousCommit,
    /// Whether rendered inputs and outputs are stored with each run.
    pub store_io: bool,
    /// Alert thresholds for `stats --check`.
    pub alerts: AlertSettings,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        MonitoringSettings {
            sample_rate: 0.01,
            retention_days: 90,
            rollup_retention_days: 400,
            synchronous_commit: SynchronousCommit::Off,
            store_io: false,
            alerts: AlertSettings::default(),
        }
    }
}

/// The `[telemetry]` table: each run as an OpenTelemetry GenAI span over OTLP/HTTP
/// (protobuf). Off unless `endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP endpoint (`http://collector:4318`; spans go to `/v1/traces` under
    /// it). The `OTEL_EXPORTER_OTLP_*` variables override it.
    #[serde(deserialize_with = "bounded::otlp_endpoint")]
    pub endpoint: Option<String>,
    /// The `service.name` of the spans (`OTEL_SERVICE_NAME` overrides it).
    pub service_name: String,
    /// Headers sent with each export (e.g. an API key of the backend).
    #[serde(deserialize_with = "bounded::http_headers")]
    pub headers: BTreeMap<String, String>,
    /// Whether spans carry the rendered prompt and the answer (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`): off, as the conventions advise.
    pub capture_content: bool,
    /// Spans waiting for export at most; past it they are dropped and counted.
    #[serde(deserialize_with = "bounded::span_queue")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_queue: usize,
    /// Seconds between exports (a full batch of 512 goes at once).
    #[serde(deserialize_with = "bounded::export_interval")]
    #[schemars(range(min = 0.01, max = 60))]
    pub export_interval_s: f64,
    /// Seconds one export may take before it is abandoned (its spans counted dropped).
    #[serde(deserialize_with = "bounded::export_interval")]
    #[schemars(range(min = 0.01, max = 60))]
    pub timeout_s: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            endpoint: None,
            service_name: "promptctl".to_owned(),
            headers: BTreeMap::new(),
            capture_content: false,
            max_queue: 2048,
            export_interval_s: 5.0,
            timeout_s: 10.0,
        }
    }
}

/// The `[canary]` table: the analysis of `promptctl canary status`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CanarySettings {
    /// How sure a verdict is: the chance that no metric is called worse or better when the
    /// canary is no different, across all metrics together (Bonferroni-corrected).
    #[serde(deserialize_with = "bounded::confidence")]
    #[schemars(range(min = 0.5, max = 0.9999))]
    pub confidence: f64,
    /// How much worse each metric may be before the canary is called worse.
    pub max_degradation: MaxDegradation,
    /// The most recent runs read per side (bounds the analysis's memory: a run keeps its
    /// latency, 8 bytes).
    #[serde(deserialize_with = "bounded::canary_runs")]
    #[schemars(range(min = 100, max = 10000000))]
    pub max_runs: u64,
}

impl Default for CanarySettings {
    fn default() -> Self {
        CanarySettings {
            confidence: 0.95,
            max_degradation: MaxDegradation::default(),
            max_runs: 1_000_000,
        }
    }
}

/// `[canary.max_degradation]`: the degradation each metric tolerates; the canary is worse
/// only when the whole confidence interval of its difference lies beyond it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaxDegradation {
    /// Error rate, in percentage points above the baseline's.
    #[serde(deserialize_with = "bounded::degradation")]
    #[schemars(range(min = 0, max = 100))]
    pub error_rate: f64,
    /// Median latency, in percent of the baseline's.
    #[serde(deserialize_with = "bounded::degradation")]
    #[schemars(range(min = 0, max = 100))]
    pub latency_p50: f64,
    /// 95th percentile latency, in percent of the baseline's.
    #[serde(deserialize_with = "bounded::degradation")]
    #[schemars(range(min = 0, max = 100))]
    pub latency_p95: f64,
    /// Mean cost per call, in percent of the baseline's.
    #[serde(deserialize_with = "bounded::degradation")]
    #[schemars(range(min = 0, max = 100))]
    pub cost: f64,
    /// Mean sampled quality (0 to 1), in points below the baseline's.
    #[serde(deserialize_with = "bounded::share")]
    #[schemars(range(min = 0, max = 1))]
    pub quality: f64,
}

impl Default for MaxDegradation {
    fn default() -> Self {
        MaxDegradation {
            error_rate: 0.5,
            latency_p50: 5.0,
            latency_p95: 5.0,
            cost: 5.0,
            quality: 0.02,
        }
    }
}

/// The durability of the run recorder's commits (`[monitoring] synchronous_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousCommit {
    /// Commits return before the write-ahead log is flushed.
    #[default]
    Off,
    /// Commits wait for the local flush.
    Local,
    /// Commits wait for the local flush and for synchronous standbys, if any.
    On,
    /// Commits wait for synchronous standbys to write (not flush) the log.
    RemoteWrite,
    /// Commits wait for synchronous standbys to apply the log.
    RemoteApply,
}

impl SynchronousCommit {
    /// The setting's value in PostgreSQL.
    pub fn as_sql(self) -> &'static str {
        match self {
            SynchronousCommit::Off => "off",
            SynchronousCommit::Local => "local",
            SynchronousCommit::On => "on",
            SynchronousCommit::RemoteWrite => "remote_write",
            SynchronousCommit::RemoteApply => "remote_apply",
        }
    }
}

/// The `[monitoring.alerts]` table; an absent key is not checked.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// Lowest acceptable mean quality of sampled runs.
    #[serde(default, deserialize_with = "bounded::optional_share")]
    #[schemars(range(min = 0, max = 1))]
    pub min_quality: Option<f64>,
    /// Largest acceptable drop of mean quality against the previous window.
    #[serde(default, deserialize_with = "bounded::optional_share")]
    #[schemars(range(min = 0, max = 1))]
    pub max_quality_drop: Option<f64>,
    /// Largest acceptable share of failed runs.
    #[serde(default, deserialize_with = "bounded::optional_share")]
    #[schemars(range(min = 0, max = 1))]
    pub max_error_rate: Option<f64>,
    /// Largest acceptable 95th percentile latency in milliseconds.
    #[serde(default, deserialize_with = "bounded::amount")]
    #[schemars(range(min = 0, max = 1000000000000.0))]
    pub max_p95_ms: Option<f64>,
    /// Largest acceptable spend per day in US dollars.
    #[serde(default, deserialize_with = "bounded::amount")]
    #[schemars(range(min = 0, max = 1000000000000.0))]
    pub max_cost_usd_per_day: Option<f64>,
}

/// The `[serve]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// The address to listen on.
    pub listen: String,
    /// The environment variable holding comma-separated read tokens.
    pub read_tokens_env: String,
    /// The environment variable holding comma-separated run tokens.
    pub run_tokens_env: String,
    /// How long a cached read stays fresh, in seconds.
    #[serde(deserialize_with = "bounded::ttl")]
    #[schemars(range(min = 0, max = 31536000))]
    pub cache_ttl_s: u64,
    /// A read replica's URL, for reads only.
    pub read_database_url: Option<String>,
    /// How long a connection may take to send a request's headers, in seconds; also how
    /// long an idle keep-alive connection stays open (hyper's timer runs while it waits
    /// for the next request).
    pub header_timeout_s: u64,
    /// How long a client may take to send a request's body, in seconds.
    pub body_timeout_s: u64,
    /// The most connections open at once (default: from the file-descriptor limit).
    pub max_connections: Option<usize>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: "127.0.0.1:8080".to_owned(),
            read_tokens_env: "PROMPTCTL_READ_TOKENS".to_owned(),
            run_tokens_env: "PROMPTCTL_RUN_TOKENS".to_owned(),
            cache_ttl_s: 60,
            read_database_url: None,
            header_timeout_s: 10,
            body_timeout_s: 30,
            max_connections: None,
        }
    }
}

/// The `[database]` table: how long every command waits for PostgreSQL.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The whole connection (TCP, TLS, startup, authentication, retries), in seconds.
    pub connect_timeout_s: u64,
    /// One read, in seconds; `serve` then answers from its cache or 503.
    pub query_timeout_s: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            connect_timeout_s: 5,
            query_timeout_s: 10,
        }
    }
}

/// The `[lsp]` table: the language server's test runs (the "▶ run" code lenses).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LspSettings {
    /// Let a run from the editor call the prompt's model; by default it replays the
    /// recorded answer and says when there is none.
    pub live_runs: bool,
}

/// The `[render]` table: limits of every render (check, test, render, run, serve, lsp).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RenderSettings {
    /// The memory one render's values and output may use, in MiB (1 to 4096).
    #[schemars(range(min = 1, max = 4096))]
    #[serde(deserialize_with = "memory_limit_mib")]
    pub memory_limit_mib: u16,
}

fn memory_limit_mib<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let mib = u16::deserialize(deserializer)?;
    if (1..=4096).contains(&mib) {
        Ok(mib)
    } else {
        Err(serde::de::Error::custom(format!(
            "memory_limit_mib must be from 1 to 4096, not {mib}"
        )))
    }
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            memory_limit_mib: (crate::render::limits::DEFAULT_LIMIT_BYTES / (1024 * 1024)) as u16,
        }
    }
}

impl RenderSettings {
    /// Makes these limits the ones of every later render in this process.
    pub fn apply(&self) {
        let mib = usize::from(self.memory_limit_mib);
        crate::render::limits::set_limit(mib * 1024 * 1024);
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "prompts_dir",
    "environments",
    "default_provider",
    "providers",
    "models",
    "test",
    "sync",
    "monitoring",
    "serve",
    "render",
    "database",
    "canary",
    "telemetry",
    "lsp",
];

impl Settings {
    /// Parses the text of a `promptctl.toml`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        toml::from_str::<Settings>(text).map_err(|err| {
            let position = err
                .span()
                .map(|span| offset_to_position(text, span.start))
                .unwrap_or_else(Position::start);
            let message = err.message().trim().to_owned();
            let mut diagnostic =
                Diagnostic::error("config", path, position, message.clone()).with_source(text);
            if let Some(unknown) = quoted_after(&message, "unknown field `")
                && let Some(suggestion) = closest(unknown, TOP_LEVEL_KEYS.iter().copied())
            {
                diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
            }
            ConfigError::Invalid(Box::new(diagnostic))
        })
    }
}

/// Deserializers that bound the numbers of `promptctl.toml`: a value no run could use (a
/// zero rate, an endless timeout, NaN) is an error at its place in the file (exit 2),
/// never a panic or a hang later.
mod bounded {
    use std::fmt::Display;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    /// The most model calls at once, `[test] concurrency` and `test --concurrency`.
    pub const MAX_CONCURRENCY: usize = 256;

    /// A number from `min` to `max` (NaN and infinities are never within).
    fn within<'de, D, T>(deserializer: D, min: T, max: T, what: &str) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + PartialOrd + Display,
    {
        let value = T::deserialize(deserializer)?;
        if value >= min && value <= max {
            Ok(value)
        } else {
            Err(D::Error::custom(format!(
                "{value} is out of range for {what}: expected {min} to {max}"
            )))
        }
    }

    /// Requests per second.
    pub fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        within(d, 0.001, 100_000.0, "requests per second").map(Some)
    }

    /// Attempts after the first.
    pub fn retries<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        within(d, 0, 20, "retries").map(Some)
    }

    /// A timeout in seconds.
    pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        within(d, 0.001, 3600.0, "a timeout in seconds").map(Some)
    }

    /// US dollars per million tokens.
    pub fn price<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        within(d, 0.0, 1_000_000.0, "a price in US dollars").map(Some)
    }

    /// Model calls at once.
    pub fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        within(d, 1, MAX_CONCURRENCY, "concurrency")
    }

    /// An OTLP/HTTP endpoint: an `http://` or `https://` URL.
    pub fn otlp_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let endpoint = String::deserialize(d)?;
        let parts = endpoint.split_once("://");
        let scheme = parts.map(|(scheme, _)| scheme.to_ascii_lowercase());
        let host = parts.is_some_and(|(_, rest)| !rest.trim().is_empty());
        match scheme.as_deref() {
            Some("http" | "https") if host => Ok(Some(endpoint)),
            _ => Err(D::Error::custom(format!(
                "`{endpoint}` is not an OTLP/HTTP endpoint: write a URL such as `http://collector:4318`"
            ))),
        }
    }

    /// HTTP headers: names and values an HTTP request can carry.
    pub fn http_headers<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
        let headers = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        for (name, value) in &headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(D::Error::custom(format!(
                    "`{name}` is not an HTTP header name"
                )));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return Err(D::Error::custom(format!(
                    "the value of header `{name}` cannot be sent over HTTP (a line break or a control character?)"
                )));
            }
        }
        Ok(headers)
    }

    /// Spans waiting for export.
    pub fn span_queue<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        within(d, 1, 1_000_000, "spans waiting for export")
    }

    /// Seconds between exports, or for one export.
    pub fn export_interval<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        within(d, 0.01, 60.0, "seconds")
    }

    /// A confidence level.
    pub fn confidence<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        within(d, 0.5, 0.9999, "a confidence level")
    }

    /// A tolerated degradation in percent or percentage points.
    pub fn degradation<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        within(d, 0.0, 100.0, "a degradation in percent")
    }

    /// Runs read per side of a canary.
    pub fn canary_runs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        within(d, 100, 10_000_000, "runs per side")
    }

    /// A share from 0 to 1.
    pub fn share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        within(d, 0.0, 1.0, "a share")
    }

    /// An optional share from 0 to 1.
    pub fn optional_share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        share(d).map(Some)
    }

    /// Days of runs kept.
    pub fn days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        within(d, 0, 36_500, "days")
    }

    /// A latency or cost threshold.
    pub fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        within(d, 0.0, 1e12, "a threshold").map(Some)
    }

    /// Region codes (`US`, `gb`), at most 300 of them.
    pub fn regions<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<phonenumber::country::Id>, D::Error> {
        let codes = Vec::<String>::deserialize(d)?;
        if codes.len() > 300 {
            return Err(D::Error::custom(format!(
                "{} regions: expected at most 300",
                codes.len()
            )));
        }
        codes
            .iter()
            .map(|code| {
                code.to_uppercase().parse().map_err(|_| {
                    D::Error::custom(format!(
                        "unknown region `{code}`: expected ISO 3166-1 alpha-2 codes such as US, GB or JP"
                    ))
                })
            })
            .collect()
    }

    /// A cache lifetime in seconds.
    pub fn ttl<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        within(d, 0, 31_536_000, "a cache lifetime in seconds")
    }
}

pub use bounded::MAX_CONCURRENCY;

/// The longest duration [`parse_duration`] takes: ten years.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);

/// Parses a duration such as `90s`, `30m`, `24h`, `7d` or `2w` (a decimal number and a
/// unit), up to [`MAX_DURATION`]; anything else, an overflowing number included, is an
/// error saying what is expected.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration: write a positive number and a unit (s, m, h, d or w), e.g. 24h or 7d, up to {}d",
            MAX_DURATION.as_secs() / 86_400
        )
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(bad()),
    };
    let seconds = number * unit_seconds;
    if !(seconds > 0.0 && seconds <= MAX_DURATION.as_secs_f64()) {
        return Err(bad());
    }
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// Parses a count of model calls at once, from 1 to [`MAX_CONCURRENCY`] (`--concurrency`).
pub fn parse_concurrency(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
        .ok_or_else(|| format!("`{text}` is not a concurrency: expected 1 to {MAX_CONCURRENCY}"))
}

/// The 1-based line and column of a byte offset in `text`.
pub fn offset_to_position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    Position::new(line, column)
}

/// The text between `prefix` and the next backtick in `message`.
pub(crate) fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let rest = &message[start..];
    Some(&rest[..rest.find('`')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let settings = Settings::parse("", Path::new("promptctl.toml")).expect("parses");
        assert_eq!(settings.prompts_dir, PathBuf::from("prompts"));
        assert_eq!(settings.test.concurrency, 8);
        assert!((settings.monitoring.sample_rate - 0.01).abs() < f64::EPSILON);
    }

    #[test]
    fn spec_example_parses() {
        let text = r#"
prompts_dir = "prompts"
default_provider = "openai"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
[models."gpt-4o"]
provider = "openai"
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00
fallbacks = ["claude-sonnet-4-5"]
[test]
concurrency = 8
[monitoring.alerts]
max_p95_ms = 4000
"#;
        let settings = Settings::parse(text, Path::new("promptctl.toml")).expect("parses");
        assert_eq!(settings.models["gpt-4o"].fallbacks, ["claude-sonnet-4-5"]);
        assert_eq!(settings.monitoring.alerts.max_p95_ms, Some(4000.0));
    }

    #[test]
    fn durations_and_counts_never_overflow() {
        assert_eq!(
            parse_duration("24h"),
            Ok(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_duration("1.5m"),
            Ok(std::time::Duration::from_secs(90))
        );
        for bad in [
            "999999999999999999999h",
            "1e309h",
            "0h",
            "h",
            "3x",
            "-1h",
            "3651d",
            "NaNh",
            "",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_concurrency("8"), Ok(8));
        for bad in ["0", "257", "18446744073709551616", "-1", "x"] {
            assert!(parse_concurrency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_out_of_range_point_at_their_value() {
        for (text, line) in [
            ("[test]\nconcurrency = 9223372036854775807\n", 2),
            (
                "[providers.p]\nkind = \"openai\"\nrate_limit_per_s = 0\n",
                3,
            ),
            ("[providers.p]\nkind = \"openai\"\ntimeout_s = inf\n", 3),
            ("[models.m]\ntimeout_s = 1e300\n", 2),
            ("[monitoring]\nsample_rate = nan\n", 2),
        ] {
            let err = Settings::parse(text, Path::new("promptctl.toml")).expect_err(text);
            let ConfigError::Invalid(diagnostic) = err else {
                panic!("wrong error")
            };
            assert_eq!(
                diagnostic.position.line, line,
                "{text}: {}",
                diagnostic.message
            );
            assert!(
                diagnostic.message.contains("out of range"),
                "{}",
                diagnostic.message
            );
        }
    }

    #[test]
    fn pii_regions_are_region_codes() {
        let path = Path::new("promptctl.toml");
        let default = Settings::parse("", path).expect("parses");
        assert_eq!(default.test.pii_regions, default_pii_regions());
        assert!(default.test.pii_regions.len() >= 17);
        let settings =
            Settings::parse("[test]\npii_regions = [\"il\", \"JP\"]\n", path).expect("parses");
        use phonenumber::country::Id;
        assert_eq!(settings.test.pii_regions, [Id::IL, Id::JP]);
        let err = Settings::parse("[test]\npii_regions = [\"US\", \"XX\"]\n", path)
            .expect_err("unknown region");
        let ConfigError::Invalid(diagnostic) = err else {
            panic!("wrong error")
        };
        assert_eq!(diagnostic.position.line, 2);
        assert!(
            diagnostic.message.contains("unknown region `XX`"),
            "{}",
            diagnostic.message
        );
    }

    #[test]
    fn unknown_key_points_at_its_line_with_a_suggestion() {
        let err = Settings::parse(
            "prompts_dir = \"p\"\npromts_dir = \"x\"\n",
            Path::new("promptctl.toml"),
        )
        .expect_err("rejects");
        let ConfigError::Invalid(diagnostic) = err else {
            panic!("wrong error")
        };
        assert_eq!(diagnostic.position.line, 2);
        assert_eq!(
            diagnostic.help.as_deref(),
            Some("did you mean `prompts_dir`?")
        );
    }
}
