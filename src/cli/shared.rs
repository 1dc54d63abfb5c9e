//! What several commands share, so that no command imports another: the database URL and
//! timeouts, the async runtime, `--var` and `--vars-file`, printing rendered messages and
//! pins, and finding a prompt's versions (the working tree's uncommitted one included).

use std::collections::BTreeMap;

use super::output::{Format, Style};
use super::{CliError, Context, ErrorKind};
use crate::deploy::pin::PinPlan;
use crate::deploy::pin_label;
use crate::history::{History, PromptHistory, Version};
use crate::render::coerce_cli_value;

/// `--vars-file` files larger than this are refused (the variables of one render).
const MAX_VARS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The database URL: `--database-url`, else the variable `[sync] database_url_env` names
/// (the settings layer). Every command that talks to PostgreSQL comes here, so this is
/// also where `[database]` sets the process's timeouts.
pub fn database_url(
    context: &Context,
    config: &crate::config::Config,
    flag: Option<&str>,
) -> Result<String, CliError> {
    let layers = context.settings(config);
    crate::registry::set_timeouts(layers.database_timeouts()?);
    Ok(layers.database_url(flag)?)
}

/// A runtime for the database client.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))
}

/// Prints rendered messages: as JSON, or each under its role.
pub fn print_messages(context: &Context, messages: &[crate::render::RenderedMessage]) {
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&messages),
        Format::Human => {
            let mut text = String::new();
            for (index, message) in messages.iter().enumerate() {
                if index > 0 {
                    text.push('\n');
                }
                text.push_str(
                    &output.paint(Style::Bold, &format!("── {} ──", message.role.as_str())),
                );
                text.push('\n');
                text.push_str(message.content.trim_end_matches('\n'));
                text.push('\n');
            }
            output.data(&text);
        }
    }
}

/// Reads `--vars-file` and `--var` values; shared by every command that renders.
pub fn read_vars(
    context: &Context,
    vars_file: Option<&std::path::Path>,
    vars: &[String],
    declared: &BTreeMap<String, crate::repo::VariableSpec>,
) -> Result<BTreeMap<String, serde_json::Value>, CliError> {
    let mut values = BTreeMap::new();
    if let Some(file) = vars_file {
        let path = context.directory.join(file);
        let root = context.config()?.root;
        let text = crate::files::read_named(&path, &root, MAX_VARS_FILE_BYTES)
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|err| crate::files::ReadError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, err),
                })
            })
            .map_err(|err| {
                let why = match err {
                    crate::files::ReadError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                CliError::input(format!("cannot read vars file {}: {why}", file.display()))
            })?;
        let parsed: BTreeMap<String, serde_json::Value> =
            crate::repo::file::parse_yaml(file, &text, &[])
                .map_err(|diagnostic| CliError::at(ErrorKind::Input, diagnostic))?;
        values.extend(parsed);
    }
    for pair in vars {
        let Some((name, raw)) = pair.split_once('=') else {
            return Err(CliError::input(format!("`--var {pair}` is not NAME=VALUE"))
                .hint("write it as `--var name=value`"));
        };
        let value = coerce_cli_value(declared.get(name), raw)
            .map_err(|why| CliError::input(format!("`--var {name}`: {why}")))?;
        values.insert(name.to_owned(), value);
    }
    Ok(values)
}

/// One prompt's versions as `log`, `show`, `diff` and `render --version` read them: the
/// history they come from, the prompt, and its versions with the working tree's uncommitted
/// one last.
pub struct PromptVersions {
    /// The repository's history.
    pub history: History,
    /// The prompt the query names.
    pub prompt: PromptHistory,
    /// Its versions, oldest first, the uncommitted one (if any) last.
    pub versions: Vec<Version>,
}

impl PromptVersions {
    /// Reads the project's history (as `--rev` and `--no-cache` say) and finds the prompt
    /// `query` names in it.
    pub fn load(context: &Context, query: &str) -> Result<Self, CliError> {
        let config = context.config()?;
        Self::find(context.history(&config)?, query)
    }

    /// Finds the prompt `query` names in `history`. A prompt only the working tree has
    /// (new, or in a repository without commits yet) is found too, with its uncommitted
    /// version 1: what `list` shows.
    pub fn find(history: History, query: &str) -> Result<Self, CliError> {
        let mut uncommitted = history.uncommitted()?.versions;
        let new: Vec<PromptHistory> = uncommitted
            .iter()
            .filter(|(id, _)| !history.prompts.contains_key(*id))
            .map(|(id, version)| PromptHistory {
                id: id.clone(),
                versions: Vec::new(),
                archived: false,
                path: version.path.clone(),
            })
            .collect();
        let candidates = history
            .prompts
            .iter()
            .chain(new.iter().map(|prompt| (&prompt.id, prompt)));
        let prompt = crate::repo::find_by_query(candidates, query)?.clone();
        let mut versions = prompt.versions.clone();
        if let Some(pending) = uncommitted.remove(&prompt.id) {
            versions.push(pending);
        }
        Ok(Self {
            history,
            prompt,
            versions,
        })
    }

    /// Version `number`; an input error saying which versions the prompt has otherwise.
    pub fn numbered(&self, number: u32) -> Result<&Version, CliError> {
        let prompt = &self.prompt;
        self.versions
            .iter()
            .find(|v| v.number == number)
            .ok_or_else(|| {
                CliError::input(format!(
                    "{} has no version {number}; its versions are 1 to {}",
                    prompt.id,
                    self.versions.len()
                ))
                .hint(format!("`promptctl log {}` lists them", prompt.id))
            })
    }
}

/// Writes a planned pin (committed with its message when `commit`) and prints what moved
/// (`pin` and `promote`).
pub fn write_pin(context: &Context, plan: &PinPlan, commit: bool) -> Result<u8, CliError> {
    let message = commit.then(|| plan.commit_message());
    let commit = plan.write(message.as_deref())?;
    print_pin(context, plan, commit.as_deref());
    Ok(super::exit::SUCCESS)
}

/// Prints what moved.
fn print_pin(context: &Context, plan: &PinPlan, commit: Option<&str>) {
    let output = &context.output;
    let changed = plan.changed();
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": plan.prompt.to_string(),
            "environment": plan.env,
            "before": plan.before,
            "after": plan.after,
            "changed": changed,
            "commit": commit,
        })),
        Format::Human => {
            let mut text = if changed {
                format!(
                    "{} {}: {} -> {}",
                    plan.prompt,
                    plan.env,
                    pin_label(&plan.before),
                    pin_label(&plan.after)
                )
            } else {
                format!(
                    "{} {}: already {}; nothing to change",
                    plan.prompt,
                    plan.env,
                    pin_label(&plan.after)
                )
            };
            if let Some(id) = commit {
                text.push_str(&format!("\ncommitted {}", super::short(id)));
            }
            output.data(&text);
        }
    }
}

/// Installs promptctl's OpenTelemetry span export when `[telemetry]` or the
/// `OTEL_EXPORTER_OTLP_*` variables configure one (nothing leaves the machine otherwise).
/// Outside an async runtime: the exporter's HTTP client runs its own. Shut it down before
/// exiting, so the last batch goes out.
pub fn span_export(
    context: &Context,
    config: &crate::config::Config,
) -> Result<Option<crate::telemetry::otlp::SpanExport>, CliError> {
    let layers = context.settings(config);
    let settings = &config.settings.telemetry;
    if layers
        .env
        .get("OTEL_SDK_DISABLED")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    {
        return Ok(None);
    }
    let Some(endpoint) =
        crate::telemetry::otlp::endpoint(settings, |name| layers.env.get(name).map(str::to_owned))
    else {
        return Ok(None);
    };
    let service_name = layers
        .env
        .get("OTEL_SERVICE_NAME")
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    if let Some(protocol) = layers
        .env
        .get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| layers.env.get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .filter(|p| !p.trim().is_empty() && p.trim() != "http/protobuf")
    {
        context.output.note(&format!(
            "warning: OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: promptctl exports over http/protobuf only, and does"
        ));
    }
    // A bad OTEL_* variable turns the export off with a warning, as the OpenTelemetry
    // specification asks, rather than stopping the command.
    match crate::telemetry::otlp::SpanExport::install(settings, endpoint, service_name) {
        Ok(export) => Ok(Some(export)),
        Err(err) => {
            context
                .output
                .note(&format!("warning: {err}; runs are not exported"));
            Ok(None)
        }
    }
}

/// The side of an environment `--canary` asks for.
pub fn side(canary: bool) -> crate::environments::Side {
    if canary {
        crate::environments::Side::Canary
    } else {
        crate::environments::Side::Baseline
    }
}

/// The exit code of a deployment its tests refuse (`rollback`, `canary promote`): 3 when a
/// provider failed, 2 when a test could not run, 1 when one failed; `None` when all passed.
pub fn refusal_code(summary: &crate::eval::report::Summary) -> Option<u8> {
    if summary.provider_errors > 0 {
        Some(super::exit::EXTERNAL)
    } else if summary.input_errors > 0 {
        Some(super::exit::BAD_INPUT)
    } else if summary.failed > 0 {
        Some(super::exit::FAILED)
    } else {
        None
    }
}
