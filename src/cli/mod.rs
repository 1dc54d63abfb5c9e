//! The command line: one file per subcommand, each a clap derive struct and a `run`
//! function. This is the only door (with `serve`) that prints or decides exit codes.

mod canary;
mod check;
mod ci;
mod diff;
mod env;
mod export;
mod fmt;
mod get;
mod healthcheck;
mod init;
mod list;
mod log;
mod lsp;
pub mod output;
mod pin;
mod promote;
mod render;
mod rollback;
mod rollup;
mod run;
mod schema;
mod serve;
mod shared;
mod show;
mod stats;
mod status;
mod sync;
mod test;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::diagnostic::Diagnostic;
use crate::history::{History, HistoryError};
use crate::repo::{LookupError, RepoError, Snapshot};
use output::{ColorChoice, Format, Output};

/// Exit codes (SPEC section 3).
pub mod exit {
    /// Everything passed.
    pub const SUCCESS: u8 = 0;
    /// A check or a test failed.
    pub const FAILED: u8 = 1;
    /// Bad usage, bad configuration or bad input files.
    pub const BAD_INPUT: u8 = 2;
    /// An external system (model provider, database, Git) failed.
    pub const EXTERNAL: u8 = 3;
}

/// LLM prompts as code: versions from Git, tests against real models, a registry in
/// PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "promptctl", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// When to use colour (NO_COLOR is respected).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Read versions from REF's first-parent history instead of HEAD's.
    #[arg(long, global = true, value_name = "REF")]
    rev: Option<String>,
    /// Read the whole Git history, neither using nor updating the cache in .git/promptctl.
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a starter promptctl.toml, environments.yaml and an example prompt.
    Init(init::InitArgs),
    /// Validate every prompt file, partial and setting.
    Check(check::CheckArgs),
    /// Print the messages a prompt would send.
    Render(render::RenderArgs),
    /// List every prompt with its latest version.
    List(list::ListArgs),
    /// Run prompts' test cases against their models.
    Test(test::TestArgs),
    /// Show a prompt's versions.
    Log(log::LogArgs),
    /// Print one version of a prompt: PROMPT@N (default: the latest).
    Show(show::ShowArgs),
    /// Show what changed between two versions of a prompt (default: to the working tree).
    Diff(diff::DiffArgs),
    /// Set the version (and model) an environment runs, in environments.yaml.
    Pin(pin::PinArgs),
    /// Give one environment the version and model another runs.
    Promote(promote::PromoteArgs),
    /// Commit an old version's definition as the next version, after its tests pass.
    Rollback(rollback::RollbackArgs),
    /// A canary split's analysis against its baseline, and promoting or aborting it.
    Canary(canary::CanaryArgs),
    /// Every prompt by environment: version, model, and what is behind.
    Status(status::StatusArgs),
    /// Publish every version, test and environment into the PostgreSQL registry.
    Sync(sync::SyncArgs),
    /// Read one prompt back from the PostgreSQL registry.
    Get(get::GetArgs),
    /// Rewrite prompt files in the canonical layout (never a new version).
    Fmt(fmt::FmtArgs),
    /// Run the language server on stdin and stdout, for editors.
    Lsp(lsp::LspArgs),
    /// Print the JSON Schema of prompt files, environments.yaml or promptctl.toml.
    Schema(schema::SchemaArgs),
    /// Serve the registry over HTTP: JSON API, metrics and dashboard.
    Serve(serve::ServeArgs),
    /// Exit 0 when a running `serve` answers /healthz with 200 in time, 1 otherwise.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Execute a prompt through the router as an environment runs it, and record the run.
    Run(run::RunArgs),
    /// Calls, errors, latency percentiles, tokens, cost and quality of recorded runs.
    Stats(stats::StatsArgs),
    /// Build (or rebuild) the rollups of recorded runs that `stats` and the dashboard read.
    Rollup(rollup::RollupArgs),
    /// Write every environment's resolved prompts as one JSON bundle (to stdout).
    Export(export::ExportArgs),
}

/// What kind of failure an error is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad usage, configuration or input files: exit 2.
    Input,
    /// A check or test failed: exit 1.
    Failed,
    /// A provider, the database or Git failed: exit 3.
    External,
}

/// An error as the user sees it: a message, hints, maybe a place in a file.
#[derive(Debug)]
pub struct CliError {
    /// Decides the exit code.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hints: Vec<String>,
    /// The place in a file, shown with its line.
    pub diagnostic: Option<Box<Diagnostic>>,
}

impl CliError {
    /// A bad-input error (exit 2).
    pub fn input(message: impl Into<String>) -> CliError {
        CliError {
            kind: ErrorKind::Input,
            message: message.into(),
            hints: Vec::new(),
            diagnostic: None,
        }
    }

    /// An external-system error (exit 3).
    pub fn external(message: impl Into<String>) -> CliError {
        CliError {
            kind: ErrorKind::External,
            ..CliError::input(message)
        }
    }

    /// An error shown as a diagnostic at a place in a file.
    pub fn at(kind: ErrorKind, diagnostic: Diagnostic) -> CliError {
        CliError {
            kind,
            message: diagnostic.message.clone(),
            hints: Vec::new(),
            diagnostic: Some(Box::new(diagnostic)),
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hints.push(hint.into());
        self
    }

    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Input => exit::BAD_INPUT,
            ErrorKind::Failed => exit::FAILED,
            ErrorKind::External => exit::EXTERNAL,
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(err: ConfigError) -> CliError {
        match err {
            ConfigError::Invalid(diagnostic) => CliError::at(ErrorKind::Input, *diagnostic),
            other => CliError::input(other.to_string()),
        }
    }
}

impl From<RepoError> for CliError {
    fn from(err: RepoError) -> CliError {
        let hint = match &err {
            RepoError::NoPromptsDir { .. } => Some(
                "run `promptctl init` to start a prompts repository, or set `prompts_dir` in promptctl.toml",
            ),
            RepoError::OutsideProject { .. } => {
                Some("set `prompts_dir` in promptctl.toml to a folder inside the project")
            }
            RepoError::Io { .. } | RepoError::LinkedPromptsDir { .. } => None,
        };
        let error = CliError::input(err.to_string());
        match hint {
            Some(hint) => error.hint(hint),
            None => error,
        }
    }
}

impl From<HistoryError> for CliError {
    fn from(err: HistoryError) -> CliError {
        match &err {
            HistoryError::Shallow => CliError::input(err.to_string())
                .hint("in GitHub Actions, give actions/checkout `fetch-depth: 0`")
                .hint("in a local clone, run `git fetch --unshallow`"),
            HistoryError::NotARepository { .. } => CliError::input(err.to_string())
                .hint("versions come from Git history: run promptctl inside a Git repository"),
            HistoryError::BadRevision { .. } | HistoryError::OutsideRepository { .. } => {
                CliError::input(err.to_string())
            }
            HistoryError::StaleDefinition { .. } => CliError::input(err.to_string())
                .hint("the history cache no longer matches the repository: run again with `--no-cache` (or remove .git/promptctl) to rebuild it"),
            HistoryError::Git(_) => CliError::external(err.to_string()),
        }
    }
}

impl From<LookupError> for CliError {
    fn from(err: LookupError) -> CliError {
        CliError::input(err.to_string()).hint("`promptctl list` shows every prompt")
    }
}

impl From<crate::registry::RegistryError> for CliError {
    fn from(err: crate::registry::RegistryError) -> CliError {
        use crate::registry::RegistryError as E;
        let message = err.to_string();
        match err {
            E::History(history) => CliError::from(history),
            E::Connect { ref target, .. } => CliError::external(message)
                .hint(format!(
                    "check that PostgreSQL is running and accepts connections at {target}"
                ))
                .hint("the URL comes from --database-url, else the variable `[sync] database_url_env` names (DATABASE_URL)"),
            E::Database(_) | E::Git(_) => CliError::external(message),
            E::Corrupt(_) => CliError::external(message)
                .hint("a newer promptctl may have written it: upgrade promptctl, or rebuild the rollups with `promptctl rollup`"),
            E::Timeout { .. } => CliError::external(message)
                .hint("`[database] query_timeout_s` in promptctl.toml sets how long promptctl waits"),
            E::SchemaTooNew { .. } => CliError::input(message)
                .hint("a newer promptctl wrote this database: upgrade promptctl"),
            E::NotSynced => CliError::input(message).hint("run `promptctl sync` first"),
            E::BeforeSources { .. } => CliError::input(message)
                .hint("`promptctl sync` with this promptctl upgrades it (one migration)"),
            E::Rewritten { .. } => CliError::input(message)
                .hint("someone force-pushed or rebased the branch, so versions already published may have changed")
                .hint("run `promptctl sync --allow-rewrite` to replace the rewritten versions"),
            E::Owned { ref taken, .. } => {
                let owners: std::collections::BTreeSet<&str> =
                    taken.iter().map(|t| t.owner.as_str()).filter(|o| !o.is_empty()).collect();
                let mut error = CliError::input(message);
                if let [owner] = owners.into_iter().collect::<Vec<_>>()[..] {
                    error = error.hint(format!(
                        "if this repository syncs as `{owner}`, pass `--source {owner}` or set `[sync] source = \"{owner}\"` in promptctl.toml (the default, the repository folder's name, changes with the checkout)"
                    ));
                }
                let error = error
                    .hint("a service/name belongs to the source that published it first; moving a prompt between repositories is not supported")
                    .hint("publish it under a new service or name");
                if taken.iter().any(|t| t.owner.is_empty()) {
                    error.hint("rows synced before sources go to the next sync of the repository that synced them; after a rewrite, `sync --adopt-legacy` from that repository adopts them")
                } else {
                    error
                }
            }
            E::Lookup(_) => {
                CliError::input(message).hint("`promptctl list` shows every prompt; `promptctl sync` publishes them")
            }
            E::NoSuchVersion { .. } => {
                CliError::input(message).hint("`promptctl log PROMPT` shows its versions")
            }
            E::NoSuchEnvironment(_) => CliError::input(message)
                .hint("environments come from environments.yaml at the synced commit"),
            E::NoCanary { .. } => CliError::input(message)
                .hint("a canary is `canary:` inside an environment in environments.yaml, published by `promptctl sync`"),
            E::BadUrl(_) | E::Invalid(_) => CliError::input(message),
        }
    }
}

impl From<crate::settings::SettingsError> for CliError {
    fn from(err: crate::settings::SettingsError) -> CliError {
        use crate::settings::SettingsError as E;
        let message = err.to_string();
        match err {
            E::NoDatabaseUrl { .. } => CliError::input(message)
                .hint("for example: --database-url postgres://user@localhost:5432/prompts")
                .hint("`[sync] database_url_env` in promptctl.toml names another variable"),
            E::Source { .. } => CliError::input(message)
                .hint("set `[sync] source = \"NAME\"` in promptctl.toml or pass --source NAME"),
            E::Timeout { .. } | E::Listen { .. } => CliError::input(message),
        }
    }
}

impl From<crate::eval::Incomplete> for CliError {
    fn from(err: crate::eval::Incomplete) -> CliError {
        CliError::input(err.to_string()).hint("`promptctl check` shows what is missing")
    }
}

impl From<crate::history::commit::CommitError> for CliError {
    fn from(err: crate::history::commit::CommitError) -> CliError {
        use crate::history::commit::CommitError as E;
        match err {
            E::NoIdentity => CliError::input(err.to_string())
                .hint("git config --global user.name \"Your Name\"")
                .hint("git config --global user.email you@example.com"),
            E::NotARepository(_) | E::Outside(_) | E::Io { .. } => CliError::input(err.to_string()),
            E::Git(_) => CliError::external(err.to_string()),
        }
    }
}

impl From<crate::deploy::DeployError> for CliError {
    fn from(err: crate::deploy::DeployError) -> CliError {
        use crate::deploy::{DeployError as E, Overwrite};
        let message = err.to_string();
        match err {
            E::Environments(diagnostic) => CliError::at(ErrorKind::Input, *diagnostic),
            E::Archived { pinning, .. } => CliError::input(message).hint(if pinning {
                "restore its file first, or remove it from the environments file"
            } else {
                "restore its file first"
            }),
            E::NoSuchVersion { prompt, .. } => {
                CliError::input(message).hint(format!("`promptctl log {prompt}` lists them"))
            }
            E::Lookup { error, unreadable } => lookup_error(error, unreadable),
            E::EditMismatch { .. } => {
                CliError::input(message).hint("edit the file by hand, or report this as a bug")
            }
            E::Uncommitted { by, .. } => CliError::input(message).hint(match by {
                Overwrite::Commit => "commit or discard them first, or leave out --commit",
                Overwrite::Rollback => "commit or discard them first",
                Overwrite::Decision => "commit or discard them first, or pass --no-commit",
            }),
            E::Unwritable { .. } => CliError::input(message)
                .hint("report this as a bug; `promptctl show` prints the old definition"),
            E::NoTests { .. } => CliError::input(message)
                .hint("add tests, or pass --skip-tests to roll back untested"),
            E::Incomplete(err) => err.into(),
            E::Commit(err) => err.into(),
            E::History(err) => err.into(),
            E::NoVersion { .. } | E::Edit(_) | E::Write { .. } => CliError::input(message),
        }
    }
}

/// A prompt not found in the working tree, saying when files of it could not be read.
fn lookup_error(err: LookupError, unreadable: usize) -> CliError {
    let error = CliError::from(err);
    if unreadable > 0 {
        error.hint(format!(
            "{unreadable} file(s) could not be read; `promptctl check` shows why"
        ))
    } else {
        error
    }
}

/// What every command gets: the printer and where it was started.
pub struct Context {
    /// The printer.
    pub output: Output,
    /// The folder the command runs in.
    pub directory: PathBuf,
    /// The revision whose history is read (`--rev`), `HEAD` when absent.
    pub rev: Option<String>,
    /// Whether the history cache may be used (no `--no-cache`).
    pub use_cache: bool,
    /// The process environment, read once.
    pub env: crate::settings::Env,
}

impl Context {
    /// The settings layer over `config`: flag over environment over `promptctl.toml`.
    pub fn settings<'a>(&'a self, config: &'a Config) -> crate::settings::Layers<'a> {
        crate::settings::Layers {
            env: &self.env,
            config,
        }
    }

    /// Finds the project and reads its configuration.
    pub fn config(&self) -> Result<Config, CliError> {
        let config = Config::discover(&self.directory)?;
        config.settings.render.apply();
        Ok(config)
    }

    /// Loads the working tree, failing when the prompt looked for sits in a file that does
    /// not parse (so the user hears why, not "not found").
    pub fn snapshot(&self, config: &Config) -> Result<Snapshot, CliError> {
        Ok(Snapshot::load_working_tree(config)?)
    }

    /// Reads the versions from Git history, as `--rev` and `--no-cache` say; notes a cache
    /// that had to be rebuilt because it was unreadable.
    pub fn load_history(&self, config: &Config) -> Result<History, HistoryError> {
        let history = History::load(config, self.rev.as_deref(), self.use_cache)?;
        if let crate::history::CacheStatus::Rebuilt(reason) = &history.cache
            && (reason.contains("corrupt")
                || reason.contains("checksum")
                || reason.contains("truncated"))
        {
            self.output
                .note(&format!("note: rebuilt the history cache ({reason})"));
        }
        Ok(history)
    }

    /// [`Context::load_history`], with errors as the user sees them.
    pub fn history(&self, config: &Config) -> Result<History, CliError> {
        Ok(self.load_history(config)?)
    }
}

/// Prints the history's problems (files that did not parse at some commit) to stderr, at
/// most `limit` of them, and how many more there were.
pub fn report_history_problems(
    output: &Output,
    problems: &[crate::history::Problem],
    limit: usize,
) {
    for problem in problems.iter().take(limit) {
        let at = problem.commit.as_deref().map_or_else(
            || "working tree".to_owned(),
            |id| format!("commit {}", short(id)),
        );
        output.note(&format!(
            "{} {at}: {}",
            output.paint_err(output::Style::Yellow, "warning:"),
            output::escape_control(&problem.diagnostic.to_string())
        ));
    }
    if problems.len() > limit {
        output.note(&format!(
            "warning: {} more file(s) in history could not be read",
            problems.len() - limit
        ));
    }
}

/// A commit id shortened for people.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Finds a prompt in a snapshot; when it is missing and some files did not parse, says so.
pub fn find_prompt<'a>(
    snapshot: &'a Snapshot,
    query: &str,
) -> Result<&'a crate::repo::LoadedPrompt, CliError> {
    snapshot
        .find(query)
        .map_err(|err| lookup_error(err, snapshot.problems.len()))
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let github = match &cli.command {
        Command::Check(args) => args.github_enabled(),
        Command::Test(args) => args.github_enabled(),
        _ => false,
    };
    let env = crate::settings::Env::from_process();
    let output = Output::new(cli.global.format, cli.global.color, &env).for_github(github);
    let directory = cli
        .global
        .directory
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let context = Context {
        output: output.clone(),
        directory,
        rev: cli.global.rev.clone(),
        use_cache: !cli.global.no_cache,
        env,
    };
    let result = match cli.command {
        Command::Init(args) => init::run(&context, &args),
        Command::Check(args) => check::run(&context, &args),
        Command::Render(args) => render::run(&context, &args),
        Command::List(args) => list::run(&context, &args),
        Command::Test(args) => test::run(&context, &args),
        Command::Log(args) => log::run(&context, &args),
        Command::Show(args) => show::run(&context, &args),
        Command::Diff(args) => diff::run(&context, &args),
        Command::Pin(args) => pin::run(&context, &args),
        Command::Promote(args) => promote::run(&context, &args),
        Command::Rollback(args) => rollback::run(&context, &args),
        Command::Canary(args) => canary::run(&context, &args),
        Command::Status(args) => status::run(&context, &args),
        Command::Sync(args) => sync::run(&context, &args),
        Command::Get(args) => get::run(&context, &args),
        Command::Fmt(args) => fmt::run(&context, &args),
        Command::Lsp(args) => lsp::run(&context, &args),
        Command::Schema(args) => schema::run(&context, &args),
        Command::Serve(args) => serve::run(&context, &args),
        Command::Healthcheck(args) => healthcheck::run(&context, &args),
        Command::Run(args) => run::run(&context, &args),
        Command::Stats(args) => stats::run(&context, &args),
        Command::Rollup(args) => rollup::run(&context, &args),
        Command::Export(args) => export::run(&context, &args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report_error(&output, &err);
            err.exit_code()
        }
    }
}

/// Prints an error: as JSON on stdout with `--format json`, else on stderr.
pub fn report_error(output: &Output, err: &CliError) {
    if output.format == Format::Json {
        output.json(&serde_json::json!({
            "error": {
                "message": err.message,
                "hints": err.hints,
                "diagnostic": err.diagnostic,
                "exit_code": err.exit_code(),
            }
        }));
    }
    match &err.diagnostic {
        Some(diagnostic) => {
            output.diagnostic(diagnostic);
            for hint in &err.hints {
                output.note(&format!("  help: {}", output::escape_control(hint)));
            }
        }
        None => output.error(&err.message, &err.hints),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
