//! `promptctl render`: print the messages a prompt would send.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::shared::PromptVersions;
use super::{CliError, Context, ErrorKind, exit, find_prompt};
use crate::diagnostic::{Diagnostic, Position};
use crate::render::{RenderError, Renderer, TemplatePart};
use crate::repo::{LoadedPrompt, Snapshot, locate_in_scalar};

/// Arguments of `promptctl render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// A variable, as `name=value` (repeatable). Numbers, booleans, arrays and objects are
    /// parsed according to the variable's declared type.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// A YAML or JSON file of variables; `--var` overrides it.
    #[arg(long, value_name = "FILE")]
    vars_file: Option<PathBuf>,
    /// Render version N from Git history (with the partials of its commit) instead of the
    /// working tree.
    #[arg(long = "version", value_name = "N")]
    version: Option<u32>,
    /// Render what environment ENV runs: its pinned version and model (environments.yaml).
    #[arg(long, value_name = "ENV", conflicts_with = "version")]
    env: Option<String>,
    /// With --env: render what the environment's canary runs (`canary:` inside it).
    #[arg(long, requires = "env")]
    canary: bool,
}

/// Runs `promptctl render`.
pub fn run(context: &Context, args: &RenderArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    if let Some(env) = &args.env {
        let side = super::shared::side(args.canary);
        return super::env::render(context, &config, &args.prompt, env, side, |declared| {
            collect_vars(context, args, declared)
        });
    }
    if let Some(number) = args.version {
        return render_version(context, &config, args, number);
    }
    let snapshot = context.snapshot(&config)?;
    let prompt = find_prompt(&snapshot, &args.prompt)?;
    let Some(definition) = &prompt.definition else {
        return Err(CliError::input(format!(
            "{} is incomplete: it needs `model` and `template` or `messages`",
            crate::diagnostic::display_path(&prompt.path)
        ))
        .hint("`promptctl check` shows what is missing"));
    };
    let vars = collect_vars(context, args, &definition.variables)?;
    let renderer = Renderer::new(snapshot.partials.clone());
    let messages = renderer
        .render(definition, &vars)
        .map_err(|err| render_error(&snapshot, prompt, &err))?;
    super::shared::print_messages(context, &messages);
    Ok(exit::SUCCESS)
}

/// Renders version `number` of the prompt from history.
fn render_version(
    context: &Context,
    config: &crate::config::Config,
    args: &RenderArgs,
    number: u32,
) -> Result<u8, CliError> {
    let found = PromptVersions::find(context.history(config)?, &args.prompt)?;
    let prompt = &found.prompt;
    let version = found.numbered(number)?;
    let partials = match &version.commit {
        Some(commit) => found.history.partials_at(&commit.id)?,
        None => context.snapshot(config)?.partials,
    };
    let definition = version.definition()?;
    let vars = collect_vars(context, args, &definition.variables)?;
    let messages = Renderer::new(partials)
        .render(&definition, &vars)
        .map_err(|err| {
            let error = CliError::input(format!("{}@{number}: {err}", prompt.id));
            match err {
                RenderError::MissingVariable { name } => {
                    error.hint(format!("pass it with `--var {name}=...`"))
                }
                _ => error,
            }
        })?;
    super::shared::print_messages(context, &messages);
    Ok(exit::SUCCESS)
}

/// Variables from `--vars-file`, then `--var`, typed by the declaration.
pub fn collect_vars(
    context: &Context,
    args: &RenderArgs,
    declared: &BTreeMap<String, crate::repo::VariableSpec>,
) -> Result<BTreeMap<String, serde_json::Value>, CliError> {
    super::shared::read_vars(context, args.vars_file.as_deref(), &args.vars, declared)
}

/// A render error as a diagnostic at its place in the prompt file or partial.
pub fn render_error(snapshot: &Snapshot, prompt: &LoadedPrompt, err: &RenderError) -> CliError {
    let RenderError::Template { part, line, .. } = err else {
        let hint = match err {
            RenderError::MissingVariable { name } => format!("pass it with `--var {name}=...`"),
            _ => "`promptctl show` lists the prompt's variables".to_owned(),
        };
        return CliError::input(format!(
            "{}: {err}",
            prompt
                .id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ))
        .hint(hint);
    };
    let line = line.unwrap_or(1);
    let file = &prompt.file;
    let location = match part {
        TemplatePart::Template => file.template.as_ref().map(|t| t.referenced),
        TemplatePart::Message(index) => file
            .messages
            .as_ref()
            .and_then(|m| m.value.get(*index))
            .map(|m| m.content.referenced),
        TemplatePart::Partial(name) => {
            let path = snapshot.prompts_dir.join(name);
            let mut diagnostic =
                Diagnostic::error("render", path, Position::new(line, 1), err.to_string());
            if let Some(source) = snapshot.partials.get(name) {
                diagnostic = diagnostic.with_source(source);
            }
            return CliError::at(ErrorKind::Input, diagnostic);
        }
    };
    let position = location.map_or_else(Position::start, |loc| {
        locate_in_scalar(
            &prompt.source,
            loc.line() as usize,
            loc.column() as usize,
            line,
            1,
        )
    });
    CliError::at(
        ErrorKind::Input,
        Diagnostic::error("render", &prompt.path, position, err.to_string())
            .with_source(&prompt.source),
    )
}
