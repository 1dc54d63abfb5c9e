//! The PostgreSQL registry: where `promptctl sync` publishes every version, and where
//! services read prompts at run time (SPEC section 4).
//!
//! [`connect`] opens a connection (TLS with rustls when the URL says `sslmode=require`),
//! retrying transient failures; `migrations` keeps the schema; `sync` writes a history into
//! it; [`Registry`] is the read side: [`Registry::get_prompt`] returns one version by
//! latest, number or environment, as a [`Definition`] ready to render; `cache` is the one
//! read cache in front of it (the router's and `serve`'s), emptied by `sync`'s `NOTIFY`.
//!
//! This module knows the database and the history, nothing of the command line: it never
//! prints and never decides exit codes.

pub mod cache;
pub mod canary;
pub mod columns;
pub mod listing;
pub mod migrations;
pub mod notice;
pub mod recent;
pub mod rollups;
pub mod runs;
pub mod sources;
pub mod stats;
pub mod sync;

use crate::retry::RetryPolicy;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Row};
use uuid::Uuid;

use crate::repo::{Body, Definition, LookupError, MessageTemplate, Place};

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    /// The database could not be reached (after retries) or refused the connection.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// `host:port/database`, never the password.
        target: String,
        /// Why.
        reason: String,
    },
    /// The database's schema was written by a newer promptctl.
    #[error(
        "the database schema is at version {found}, newer than this promptctl knows (up to {known})"
    )]
    SchemaTooNew {
        /// The database's newest migration.
        found: i32,
        /// This binary's newest migration.
        known: i32,
    },
    /// The registry's tables do not exist yet.
    #[error("the database holds no promptctl registry yet")]
    NotSynced,
    /// A read names sources in a database last migrated before them.
    #[error(
        "{what} needs a registry with sources (schema {SOURCES_SCHEMA}); this one is at schema {found}"
    )]
    BeforeSources {
        /// What asked for them.
        what: &'static str,
        /// The database's schema.
        found: i32,
    },
    /// A query failed.
    #[error("PostgreSQL: {}", describe(.0))]
    Database(#[from] tokio_postgres::Error),
    /// The branch's history was rewritten since the last sync.
    #[error(
        "history was rewritten: commit {commit} synced last to branch `{branch}` is no longer on its first-parent history"
    )]
    Rewritten {
        /// The branch.
        branch: String,
        /// The last synced commit.
        commit: String,
    },
    /// Prompts this sync's source would publish belong to other sources.
    #[error(
        "source `{syncing}` cannot publish prompts another source owns: {}",
        sources::describe_taken(.taken)
    )]
    Owned {
        /// The source syncing.
        syncing: String,
        /// The prompts taken, with their owners (at most 20).
        taken: Vec<sources::Taken>,
    },
    /// Input that cannot be published (too long a name, a NUL in a template, a bad
    /// environments file).
    #[error("{0}")]
    Invalid(String),
    /// The history could not be read (a definition's blob, a partial).
    #[error("{0}")]
    History(#[from] crate::history::HistoryError),
    /// Git failed while reading what to publish.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// No prompt has that name in the registry, or several services have one.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The prompt has no such version.
    #[error("{prompt} has no version {version} in the registry (latest: {latest})")]
    NoSuchVersion {
        /// `service/name`.
        prompt: String,
        /// What was asked for.
        version: u32,
        /// The latest version.
        latest: u32,
    },
    /// No prompt is pinned in that environment.
    #[error("no environment named `{0}` in the registry")]
    NoSuchEnvironment(String),
    /// The environment has no canary split for the prompt.
    #[error("{prompt} has no canary in {environment} in the registry")]
    NoCanary {
        /// `service/name`.
        prompt: String,
        /// The environment.
        environment: String,
    },
    /// A stored value cannot be read (a rollup's latency sketch of an unknown format).
    #[error("a stored value cannot be read: {0}")]
    Corrupt(String),
    /// The database did not answer in time.
    #[error("PostgreSQL did not {what} within {} s", after.as_secs_f64())]
    Timeout {
        /// What it did not do.
        what: String,
        /// How long promptctl waited.
        after: Duration,
    },
}

impl RegistryError {
    /// Whether the error comes from the database or the network rather than from the input.
    pub fn is_external(&self) -> bool {
        matches!(
            self,
            RegistryError::Connect { .. }
                | RegistryError::Database(_)
                | RegistryError::Corrupt(_)
                | RegistryError::Timeout { .. }
                | RegistryError::NotSynced
                | RegistryError::Git(_)
                | RegistryError::History(_)
        )
    }

    /// Whether the database is unreachable: no connection, a connection that broke or
    /// timed out, or a server shutting down or full. A statement the server refused (a bad
    /// parameter, an SQL error) is not: the database answered.
    pub fn is_unreachable(&self) -> bool {
        match self {
            RegistryError::Connect { .. } | RegistryError::Timeout { .. } => true,
            RegistryError::Database(err) => match err.as_db_error() {
                Some(db) => connection_state(db.code().code()),
                None => {
                    err.is_closed()
                        || std::error::Error::source(err)
                            .is_some_and(|source| source.is::<std::io::Error>())
                }
            },
            _ => false,
        }
    }
}

/// A PostgreSQL error with the server's message and detail when there is one.
pub fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(": {detail}"));
            }
            text
        }
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        }
    }
}

/// The namespace of the registry's UUID v5 ids.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"promptctl:registry")
}

/// The stable id of a version: UUID v5 of `service/name/version`, so the same history
/// synced twice gives the same ids.
pub fn version_id(service: &str, name: &str, version: u32) -> Uuid {
    Uuid::new_v5(
        &namespace(),
        format!("{service}/{name}/{version}").as_bytes(),
    )
}

/// The stable id of a version's test case: UUID v5 of `prompt id/index`.
pub fn test_id(prompt_id: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(&namespace(), format!("{prompt_id}/{index}").as_bytes())
}

/// `host:port/database` for messages (never the user or password).
fn target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
    )
}

/// Whether a connection failure is worth another try: the network, or a server that is
/// starting, shutting down or full; never a wrong password or a missing database.
fn transient(err: &tokio_postgres::Error) -> bool {
    match err.as_db_error() {
        None => true,
        Some(db) => connection_state(db.code().code()),
    }
}

/// Whether a SQLSTATE says the connection or the server is gone or not accepting work
/// (class 08, `admin_shutdown`, `crash_shutdown`, `cannot_connect_now`,
/// `too_many_connections`), as opposed to a statement the server refused.
fn connection_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// How a connection is retried: four retries, full jitter under a ceiling of 200 ms
/// doubling (about 1.5 s of waiting at most).
const CONNECT_RETRY: RetryPolicy = RetryPolicy {
    max_retries: 4,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_millis(1600),
};

/// How long promptctl waits for PostgreSQL, for every command that talks to it (`sync`,
/// `get`, `stats`, `run --registry`, `serve`): set once per process with [`set_timeouts`]
/// from `[database]` in `promptctl.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole connection, retries included: TCP, TLS, startup and authentication. A
    /// `connect_timeout` in the URL overrides it.
    pub connect: Duration,
    /// One read: a prompt, a list, statistics, the schema check after connecting.
    pub query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            query: Duration::from_secs(10),
        }
    }
}

static TIMEOUTS: std::sync::OnceLock<Timeouts> = std::sync::OnceLock::new();

/// Sets the process's database timeouts; the first call wins (later ones are ignored).
/// Without a call, [`Timeouts::default`] applies.
pub fn set_timeouts(timeouts: Timeouts) {
    let _ = TIMEOUTS.set(timeouts);
}

/// The process's database timeouts.
pub fn timeouts() -> Timeouts {
    TIMEOUTS.get().copied().unwrap_or_default()
}

/// Runs one read against the database within [`Timeouts::query`]; a read that takes
/// longer is [`RegistryError::Timeout`].
pub async fn bounded<T, F>(read: F) -> Result<T, RegistryError>
where
    F: std::future::Future<Output = Result<T, RegistryError>>,
{
    within(timeouts().query, "answer", read).await
}

/// Runs `work` within `limit`; work that takes longer is [`RegistryError::Timeout`]
/// saying PostgreSQL did not do `what` in time.
pub(crate) async fn within<T, F>(limit: Duration, what: &str, work: F) -> Result<T, RegistryError>
where
    F: std::future::Future<Output = Result<T, RegistryError>>,
{
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RegistryError::Timeout {
            what: what.to_owned(),
            after: limit,
        })?
}

/// How long data sent to the database may stay unacknowledged before the connection is
/// dropped (`tcp_user_timeout`): the host or the network is gone.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection settings of `url` with promptctl's defaults, unless the URL sets them:
/// the connect timeout, TCP keepalives (idle 30 s, then a probe every 10 s, 3 of them:
/// a dead peer is found in about a minute) and a `tcp_user_timeout` of 30 s.
pub fn config_of(url: &str) -> Result<tokio_postgres::Config, RegistryError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|err: tokio_postgres::Error| RegistryError::BadUrl(err.to_string()))?;
    let timeouts = timeouts();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeouts.connect);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives() && !url.contains("keepalives_idle") {
        config
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
    }
    if config.get_application_name().is_none() {
        config.application_name("promptctl");
    }
    Ok(config)
}

/// Connects to PostgreSQL at `url` (a `postgres://` URL or a `key=value` string), with TLS
/// through rustls when it says `sslmode=require`. Transient failures (refused, timed out,
/// server starting) are retried with backoff for about 1.5 s; the whole connection,
/// retries, TLS, startup and authentication included, is bounded by [`Timeouts::connect`]
/// (or the URL's `connect_timeout`), so a server that accepts TCP and never answers fails
/// in seconds. Must run inside a Tokio runtime: the connection is driven by a spawned task.
pub async fn connect(url: &str) -> Result<Client, RegistryError> {
    let config = config_of(url)?;
    let limit = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(timeouts().connect);
    tokio::time::timeout(limit, connect_with_retries(&config))
        .await
        .map_err(|_| RegistryError::Connect {
            target: target(&config),
            reason: format!(
                "the server did not complete the connection within {} s",
                limit.as_secs_f64()
            ),
        })?
}

async fn connect_with_retries(config: &tokio_postgres::Config) -> Result<Client, RegistryError> {
    let tls = if config.get_ssl_mode() == SslMode::Require {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|err| RegistryError::BadUrl(format!("TLS: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    } else {
        None
    };
    let tls = &tls;
    CONNECT_RETRY
        .run(
            || async move {
                let result = match tls {
                    Some(tls) => config.connect(tls.clone()).await.map(spawn_connection),
                    None => config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map(spawn_connection),
                };
                (result, None)
            },
            transient,
        )
        .await
        .map_err(|err| RegistryError::Connect {
            target: target(config),
            reason: describe(&err),
        })
}

fn spawn_connection<S, T>(
    (client, connection): (Client, tokio_postgres::Connection<S, T>),
) -> Client
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Which version of a prompt to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest version.
    Latest,
    /// Version N.
    Version(u32),
    /// The version and model an environment pins (its latest version and own model when
    /// the environment does not mention the prompt): the baseline of a canary split.
    Environment(String),
    /// The version and model the canary of an environment's split runs.
    Canary(String),
}

/// One version of a prompt read from the registry, the environment's model applied.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryPrompt {
    /// The version's stable id.
    pub id: Uuid,
    /// The source (repository) that published it; empty for a registry synced before
    /// sources.
    pub source: String,
    /// The service.
    pub service: String,
    /// The name.
    pub name: String,
    /// The version number.
    pub version: u32,
    /// The model to call: the environment's when it overrides it, else the prompt's.
    pub model: String,
    /// The environment asked for, if any.
    pub environment: Option<String>,
    /// Read as the environment (its baseline): the percentage of calls its canary takes,
    /// when it has a canary split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<f64>,
    /// The side of the environment's split this is, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<crate::environments::Side>,
    /// What to render: template or messages, parameters, variables (its `model` is
    /// [`RegistryPrompt::model`]).
    pub definition: Definition,
    /// The commit that made the version.
    pub commit_sha: String,
    /// Its message.
    pub commit_message: Option<String>,
    /// Its author.
    pub created_by: Option<String>,
    /// The commit time, in seconds since the Unix epoch (UTC).
    pub created_at: Option<i64>,
    /// Whether the prompt is deleted at the synced commit.
    pub archived: bool,
    /// The partials its templates may include (path -> text), as they were at its commit;
    /// empty when its templates include none.
    pub partials: BTreeMap<String, String>,
    /// The prompt's `monitor` assertions at the synced tip, which score sampled runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub monitor: Vec<crate::repo::Assertion>,
}

impl RegistryPrompt {
    /// A renderer holding this version's partials: `renderer().render(&prompt.definition,
    /// &vars)` gives the messages to send.
    pub fn renderer(&self) -> crate::render::Renderer {
        crate::render::Renderer::new(std::sync::Arc::new(self.partials.clone()))
    }
}

/// The read side of the registry, for services: prompts by name and version or
/// environment.
///
/// ```no_run
/// # async fn example() -> Result<(), promptctl::registry::RegistryError> {
/// use promptctl::registry::{Registry, Selector};
/// let registry = Registry::connect("postgres://app@db/prompts").await?;
/// let prompt = registry
///     .get_prompt("billing/invoice_summary", &Selector::Environment("production".into()))
///     .await?;
/// println!("{} v{} on {}", prompt.name, prompt.version, prompt.model);
/// # Ok(()) }
/// ```
pub struct Registry {
    client: Client,
    /// The schema version found (an older promptctl may have synced the database).
    schema: i32,
}

/// A table of one row per prompt that a later migration added, read as one column of a
/// query over prompts ([`Registry::side_column`]).
struct SideColumn {
    /// The schema version that added the table.
    since: i32,
    /// The table.
    table: &'static str,
    /// The column read.
    column: &'static str,
    /// Its SQL type, for the NULL an older database gives.
    sql_type: &'static str,
}

/// The schema that added sources (`source` columns, `prompt_owners`).
pub const SOURCES_SCHEMA: i32 = 5;

/// The schema that added canary splits (`prompt_environments.canary_*`, `prompt_runs.side`).
pub const CANARY_SCHEMA: i32 = 7;

/// A prompt's `monitor` assertions at the synced tip (schema 3).
const MONITORS: SideColumn = SideColumn {
    since: 3,
    table: "prompt_monitors",
    column: "assertions",
    sql_type: "jsonb",
};

impl Registry {
    /// Connects (with retries) and checks that the schema is one this binary reads.
    pub async fn connect(url: &str) -> Result<Registry, RegistryError> {
        let client = connect(url).await?;
        Registry::from_client(client).await
    }

    /// Wraps an open connection, checking the schema.
    pub async fn from_client(client: Client) -> Result<Registry, RegistryError> {
        match bounded(migrations::current_version(&client)).await? {
            None => Err(RegistryError::NotSynced),
            Some(found) if found > migrations::latest_version() => {
                Err(RegistryError::SchemaTooNew {
                    found,
                    known: migrations::latest_version(),
                })
            }
            Some(found) => Ok(Registry {
                client,
                schema: found,
            }),
        }
    }

    /// Refuses `what`, a read that names sources, on a database migrated before them.
    pub fn require_sources(&self, what: &'static str) -> Result<(), RegistryError> {
        if self.schema >= SOURCES_SCHEMA {
            Ok(())
        } else {
            Err(RegistryError::BeforeSources {
                what,
                found: self.schema,
            })
        }
    }

    /// The schema version of the database (older ones lack later migrations' tables and
    /// columns).
    pub fn schema(&self) -> i32 {
        self.schema
    }

    /// The underlying connection, for read queries this module does not offer (the
    /// server's prompt list, versions and run statistics).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the connection is closed (the server went away): open a new one.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// `side`'s column for the prompt of the row `row` (a table or alias with `service`
    /// and `name`) as an SQL expression, or a typed NULL when the database's schema is
    /// older than `side.since`: a database an older promptctl synced lacks the tables of
    /// later migrations.
    fn side_column(&self, side: &SideColumn, row: &str) -> String {
        if self.schema >= side.since {
            format!(
                "(SELECT {} FROM {} side WHERE side.service = {row}.service AND side.name = {row}.name)",
                side.column, side.table
            )
        } else {
            format!("NULL::{}", side.sql_type)
        }
    }

    /// One version of the prompt `query` (`name` or `service/name`), within
    /// [`Timeouts::query`].
    pub async fn get_prompt(
        &self,
        query: &str,
        selector: &Selector,
    ) -> Result<RegistryPrompt, RegistryError> {
        bounded(self.read_prompt(query, selector)).await
    }

    async fn read_prompt(
        &self,
        query: &str,
        selector: &Selector,
    ) -> Result<RegistryPrompt, RegistryError> {
        let (service, name) = self.identity(query).await?;
        let latest = self.latest_version(&service, &name).await?.unwrap_or(0);
        let (version, model, split) = match selector {
            Selector::Latest => (latest, None, None),
            Selector::Version(number) => (i32::try_from(*number).unwrap_or(i32::MAX), None, None),
            Selector::Environment(environment) => {
                let (version, model, weight) =
                    self.environment_pin(&service, &name, environment).await?;
                let side = weight.map(|_| crate::environments::Side::Baseline);
                (
                    version.unwrap_or(latest),
                    model,
                    Some((environment.clone(), weight, side)),
                )
            }
            Selector::Canary(environment) => {
                let (version, model) = self
                    .canary_pin(&service, &name, environment)
                    .await?
                    .ok_or_else(|| RegistryError::NoCanary {
                        prompt: format!("{service}/{name}"),
                        environment: environment.clone(),
                    })?;
                let side = Some(crate::environments::Side::Canary);
                (
                    version.unwrap_or(latest),
                    model,
                    Some((environment.clone(), None, side)),
                )
            }
        };
        // A database an older promptctl synced has no `prompt_monitors` table.
        let monitor = self.side_column(&MONITORS, "prompts");
        let source = if self.schema >= SOURCES_SCHEMA {
            "source"
        } else {
            "''::text AS source"
        };
        let sql = format!(
            "SELECT id, version, template, model, parameters, created_at, created_by, \
             commit_sha, commit_message, archived, template_format, variables, partials, \
             {monitor} AS monitor, {source} \
             FROM prompts WHERE service = $1 AND name = $2 AND version = $3"
        );
        let row = self
            .client
            .query_opt(&sql, &[&service, &name, &version])
            .await?;
        let Some(row) = row else {
            return Err(RegistryError::NoSuchVersion {
                prompt: format!("{service}/{name}"),
                version: u32::try_from(version).unwrap_or(0),
                latest: u32::try_from(latest).unwrap_or(0),
            });
        };
        let mut prompt = prompt_of_row(&row, service, name, model, None)?;
        if let Some((environment, weight, side)) = split {
            prompt.environment = Some(environment);
            prompt.canary_weight = weight;
            prompt.side = side;
        }
        Ok(prompt)
    }

    /// What `environment` pins for `service/name`: version (`None`: latest), model and the
    /// weight of its canary; an environment the registry knows but that does not pin the
    /// prompt runs its latest version on its own model.
    async fn environment_pin(
        &self,
        service: &str,
        name: &str,
        environment: &str,
    ) -> Result<(Option<i32>, Option<String>, Option<f64>), RegistryError> {
        let weight = if self.schema >= CANARY_SCHEMA {
            "canary_weight"
        } else {
            "NULL::float8"
        };
        let pin = self
            .client
            .query_opt(
                &format!(
                    "SELECT version, model, {weight} FROM prompt_environments \
                     WHERE service = $1 AND name = $2 AND environment = $3"
                ),
                &[&service, &name, &environment],
            )
            .await?;
        if let Some(row) = pin {
            return Ok((row.get(0), row.get(1), row.get(2)));
        }
        let known = self
            .client
            .query_opt(
                "SELECT 1 FROM prompt_environments WHERE environment = $1 LIMIT 1",
                &[&environment],
            )
            .await?;
        match known {
            Some(_) => Ok((None, None, None)),
            None => Err(RegistryError::NoSuchEnvironment(environment.to_owned())),
        }
    }

    /// What the canary of `environment` runs for `service/name` (version, `None`: latest;
    /// model); `None` when the environment has no canary for it.
    async fn canary_pin(
        &self,
        service: &str,
        name: &str,
        environment: &str,
    ) -> Result<Option<(Option<i32>, Option<String>)>, RegistryError> {
        if self.schema < CANARY_SCHEMA {
            return Ok(None);
        }
        let row = self
            .client
            .query_opt(
                "SELECT canary_version, canary_model FROM prompt_environments \
                 WHERE service = $1 AND name = $2 AND environment = $3 \
                 AND canary_weight IS NOT NULL",
                &[&service, &name, &environment],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// The newest version number of `service/name`, `None` when it has none.
    pub(crate) async fn latest_version(
        &self,
        service: &str,
        name: &str,
    ) -> Result<Option<i32>, RegistryError> {
        Ok(self
            .client
            .query_one(
                "SELECT max(version) FROM prompts WHERE service = $1 AND name = $2",
                &[&service, &name],
            )
            .await?
            .get(0))
    }

    /// The `(service, name)` that `query` names: `name`, `service/name` or
    /// `source:service/name` (the source must be the prompt's; when no prompt of that
    /// source has that name, the whole query is read as `service/name`, for a service
    /// whose name holds a `:`).
    /// For `source:service/name` naming a prompt another source owns: that prompt written
    /// with its owner (`owner:service/name`), the name to suggest.
    async fn owned_elsewhere(&self, query: &str) -> Result<Option<String>, RegistryError> {
        let Some((_, rest)) =
            sources::split_source(query).filter(|_| self.schema >= SOURCES_SCHEMA)
        else {
            return Ok(None);
        };
        let Some((service, name)) = rest.split_once('/') else {
            return Ok(None);
        };
        let owner = self
            .client
            .query_opt(
                "SELECT source FROM prompt_owners WHERE service = $1 AND name = $2",
                &[&service, &name],
            )
            .await?;
        Ok(owner.map(|row| {
            let owner: String = row.get(0);
            // The unnamed source of a registry from before sources has no prefix.
            if owner.is_empty() {
                rest.to_owned()
            } else {
                format!("{owner}:{rest}")
            }
        }))
    }

    async fn identity(&self, query: &str) -> Result<(String, String), RegistryError> {
        if self.schema >= SOURCES_SCHEMA
            && let Some((source, rest)) = sources::split_source(query)
            && let Some((service, name)) = rest.split_once('/')
        {
            let row = self
                .client
                .query_opt(
                    "SELECT service, name FROM prompt_owners
                     WHERE source = $1 AND service = $2 AND name = $3",
                    &[&source, &service, &name],
                )
                .await?;
            if let Some(row) = row {
                return Ok((row.get(0), row.get(1)));
            }
        }
        let rows = match query.split_once('/') {
            Some((service, name)) => self
                .client
                .query(
                    "SELECT DISTINCT service, name FROM prompts WHERE service = $1 AND name = $2",
                    &[&service, &name],
                )
                .await?,
            None => {
                self.client
                    .query(
                        "SELECT DISTINCT service, name FROM prompts WHERE name = $1",
                        &[&query],
                    )
                    .await?
            }
        };
        let mut found: Vec<(String, String)> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => {
                if let Some(owned) = self.owned_elsewhere(query).await? {
                    return Err(LookupError::NotFound {
                        query: query.to_owned(),
                        place: Place::Registry,
                        suggestion: Some(owned),
                    }
                    .into());
                }
                let all = self
                    .client
                    .query("SELECT DISTINCT service, name FROM prompts", &[])
                    .await?;
                let names: Vec<String> = all
                    .iter()
                    .flat_map(|row| {
                        let service: String = row.get(0);
                        let name: String = row.get(1);
                        [format!("{service}/{name}"), name]
                    })
                    .collect();
                Err(LookupError::not_found(
                    query,
                    Place::Registry,
                    names.iter().map(String::as_str),
                )
                .into())
            }
            _ => Err(LookupError::Ambiguous {
                query: query.to_owned(),
                candidates: found.iter().map(|(s, n)| format!("{s}/{n}")).collect(),
            }
            .into()),
        }
    }
}

fn prompt_of_row(
    row: &Row,
    service: String,
    name: String,
    model_override: Option<String>,
    environment: Option<String>,
) -> Result<RegistryPrompt, RegistryError> {
    let version: i32 = row.get("version");
    let template: String = row.get("template");
    let format: String = row.get("template_format");
    let body = if format == "messages" {
        let messages: Vec<MessageTemplate> = serde_json::from_str(&template).map_err(|err| {
            RegistryError::Invalid(format!(
                "{service}/{name} v{version}: the stored messages are not valid JSON: {err}"
            ))
        })?;
        Body::Messages(messages)
    } else {
        Body::Template(template)
    };
    let parameters: Option<serde_json::Value> = row.get("parameters");
    let parameters: BTreeMap<String, serde_json::Value> = match parameters {
        Some(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let variables: Option<serde_json::Value> = row.get("variables");
    let variables = match variables {
        Some(value) => serde_json::from_value(value).map_err(|err| {
            RegistryError::Invalid(format!(
                "{service}/{name} v{version}: the stored variables do not parse: {err}"
            ))
        })?,
        None => BTreeMap::new(),
    };
    let partials: Option<serde_json::Value> = row.get("partials");
    let partials = partials
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    let monitor: Option<serde_json::Value> = row.get("monitor");
    let monitor = monitor
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    let own_model: String = row.get("model");
    let model = model_override.unwrap_or(own_model);
    let created_at: Option<SystemTime> = row.get("created_at");
    Ok(RegistryPrompt {
        id: row.get("id"),
        source: row.get("source"),
        service,
        name,
        version: u32::try_from(version).unwrap_or(0),
        model: model.clone(),
        environment,
        canary_weight: None,
        side: None,
        definition: Definition {
            model,
            parameters,
            variables,
            body,
        },
        commit_sha: row.get("commit_sha"),
        commit_message: row.get("commit_message"),
        created_by: row.get("created_by"),
        created_at: created_at.map(unix_seconds),
        archived: row.get("archived"),
        partials,
        monitor,
    })
}

/// Starts a binary `COPY table (columns) FROM STDIN` of rows of `types`: the recorder's
/// runs and rollups are written through it.
pub(crate) async fn binary_copy(
    client: &Client,
    table: &str,
    columns: &str,
    types: &[tokio_postgres::types::Type],
) -> Result<
    std::pin::Pin<Box<tokio_postgres::binary_copy::BinaryCopyInWriter>>,
    tokio_postgres::Error,
> {
    let sink = client
        .copy_in(&format!(
            "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    Ok(Box::pin(
        tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, types),
    ))
}

/// Seconds since the epoch (negative before it).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(version_id("s", "n", 1), version_id("s", "n", 1));
        assert_ne!(version_id("s", "n", 1), version_id("s", "n", 2));
        assert_ne!(version_id("s", "n", 1), version_id("t", "n", 1));
        assert_eq!(version_id("s", "n", 1).get_version_num(), 5);
    }

    #[test]
    fn targets_never_show_the_password() {
        let config: tokio_postgres::Config = "postgres://u:secret@db.example:6543/reg"
            .parse()
            .expect("parses");
        assert_eq!(target(&config), "db.example:6543/reg");
    }
}
