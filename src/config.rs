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

/// Errors finding or reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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
        let start = start.canonicalize().map_err(|source| ConfigError::Read {
            path: start.to_path_buf(),
            source,
        })?;
        for dir in start.ancestors() {
            let candidate = dir.join(CONFIG_FILE);
            if candidate.is_file() {
                let text =
                    std::fs::read_to_string(&candidate).map_err(|source| ConfigError::Read {
                        path: candidate.clone(),
                        source,
                    })?;
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
    /// `promptctl serve` settings.
    pub serve: ServeSettings,
    /// How long every command waits for PostgreSQL.
    pub database: DatabaseSettings,
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
            serve: ServeSettings::default(),
            database: DatabaseSettings::default(),
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
    pub rate_limit_per_s: Option<f64>,
    /// Attempts after the first for transient failures.
    pub max_retries: Option<u32>,
    /// The request timeout in seconds.
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
    pub input_usd_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    pub output_usd_per_mtok: Option<f64>,
    /// Models to try, in order, when this one's provider fails.
    pub fallbacks: Vec<String>,
    /// The request timeout in seconds for this model.
    pub timeout_s: Option<f64>,
}

/// The `[test]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TestSettings {
    /// How many model calls run at once.
    pub concurrency: usize,
    /// The embedding model for `semantic_similarity`; lexical similarity when absent.
    pub embedding_model: Option<String>,
    /// The model that grades `llm_judge` assertions.
    pub judge_model: Option<String>,
    /// Where `--record` writes and `--replay` reads, relative to the root.
    pub recordings: PathBuf,
    /// The share of prompts that must have tests.
    pub min_coverage: f64,
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            concurrency: 8,
            embedding_model: None,
            judge_model: None,
            recordings: PathBuf::from("prompts/.recordings"),
            min_coverage: 1.0,
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
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            branch: "main".to_owned(),
            database_url_env: "DATABASE_URL".to_owned(),
        }
    }
}

/// The `[monitoring]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringSettings {
    /// The share of runs scored by the prompt's `monitor` assertions.
    pub sample_rate: f64,
    /// How many days of runs to keep.
    pub retention_days: u32,
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
            store_io: false,
            alerts: AlertSettings::default(),
        }
    }
}

/// The `[monitoring.alerts]` table; an absent key is not checked.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// Lowest acceptable mean quality of sampled runs.
    pub min_quality: Option<f64>,
    /// Largest acceptable drop of mean quality against the previous window.
    pub max_quality_drop: Option<f64>,
    /// Largest acceptable share of failed runs.
    pub max_error_rate: Option<f64>,
    /// Largest acceptable 95th percentile latency in milliseconds.
    pub max_p95_ms: Option<f64>,
    /// Largest acceptable spend per day in US dollars.
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
    "database",
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
