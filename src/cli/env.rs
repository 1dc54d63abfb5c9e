//! `--env E` for `render` and `test`: what an environment runs, resolved through
//! `environments::resolve_definition` (the same function the router uses).

use std::sync::Arc;

use super::output::Format;
use super::{CliError, Context, exit};
use crate::config::Config;
use crate::diagnostic::closest;
use crate::environments::{Environments, ResolveError, Resolved, Side, resolve_definition};
use crate::eval::{TestJob, jobs_for, prompt_jobs};
use crate::history::History;
use crate::render::Renderer;
use crate::repo::{LoadedPrompt, PromptId, Snapshot};

/// A resolution error as the user sees it.
pub fn resolve_error(err: ResolveError) -> CliError {
    match err {
        ResolveError::History(err) => err.into(),
        ResolveError::NoSuchVersion { ref prompt, .. } => {
            CliError::input(err.to_string()).hint(format!(
                "`promptctl log {prompt}` lists its versions; `promptctl check` checks the file"
            ))
        }
        ResolveError::NoCanary { ref prompt, ref env } => CliError::input(err.to_string())
            .hint(format!(
                "add `canary: {{version: N, weight: 10}}` to {prompt}'s `{env}` in environments.yaml, or leave out --canary"
            )),
        ResolveError::NoVersion { .. } => {
            CliError::input(err.to_string()).hint("commit the prompt's file first")
        }
    }
}

/// What `side` of `env` runs for the prompt `id`, noting on stderr when the file does not pin it
/// there (and a likely typo of the environment's name).
pub fn resolve(
    context: &Context,
    history: &History,
    environments: &Environments,
    snapshot: &Snapshot,
    id: &PromptId,
    env: &str,
    side: Side,
) -> Result<Resolved, CliError> {
    let working = snapshot
        .prompts
        .iter()
        .find(|p| p.id.as_ref() == Some(id))
        .and_then(|p| p.definition.as_ref())
        .map(|d| (d, &snapshot.partials));
    let resolved = resolve_definition(history, Some(environments), id, env, side, working)
        .map_err(resolve_error)?;
    if !resolved.pinned {
        let names = environments.environment_names();
        let typo = (!names.iter().any(|n| n == env))
            .then(|| closest(env, names.iter().map(String::as_str)))
            .flatten()
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        context.output.note(&format!(
            "note: {} does not pin {id} in `{env}`{typo}: using its latest version and its own model",
            crate::diagnostic::display_path(&environments.path)
        ));
    }
    Ok(resolved)
}

/// `promptctl render PROMPT --env E [--canary]`.
pub fn render(
    context: &Context,
    config: &Config,
    prompt: &str,
    env: &str,
    side: Side,
    vars: impl FnOnce(
        &std::collections::BTreeMap<String, crate::repo::VariableSpec>,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>, CliError>,
) -> Result<u8, CliError> {
    let history = context.history(config)?;
    let environments = crate::deploy::load_environments(config)?;
    let snapshot = context.snapshot(config)?;
    let id = match history.find(prompt) {
        Ok(found) => found.id.clone(),
        Err(err) => match snapshot.find(prompt).ok().and_then(|p| p.id.clone()) {
            Some(id) => id,
            None => return Err(err.into()),
        },
    };
    let resolved = resolve(context, &history, &environments, &snapshot, &id, env, side)?;
    let values = vars(&resolved.definition.variables)?;
    let messages = Renderer::new(resolved.partials.clone())
        .render(&resolved.definition, &values)
        .map_err(|err| {
            let error = CliError::input(format!("{id} in {env}: {err}"));
            match err {
                crate::render::RenderError::MissingVariable { name } => {
                    error.hint(format!("pass it with `--var {name}=...`"))
                }
                _ => error,
            }
        })?;
    let version = resolved
        .version
        .map_or_else(|| "uncommitted".to_owned(), |n| format!("v{n}"));
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": id.to_string(),
            "environment": env,
            "side": side,
            "version": resolved.version,
            "commit": resolved.commit,
            "model": resolved.definition.model,
            "parameters": resolved.definition.parameters,
            "messages": messages,
        })),
        Format::Human => {
            output.data(&output.paint(
                super::output::Style::Dim,
                &format!(
                    "# {id} {version} in {env}{}, model {}",
                    match side {
                        Side::Baseline => "",
                        Side::Canary => " (canary)",
                    },
                    resolved.definition.model
                ),
            ));
            super::shared::print_messages(context, &messages);
        }
    }
    Ok(exit::SUCCESS)
}

/// `promptctl test --env E [--canary]`: the working tree's tests of each prompt, run
/// against the version and model `side` of `env` runs (or `model` instead, for a
/// candidate).
pub fn test_jobs<'a>(
    context: &Context,
    config: &Config,
    snapshot: &Snapshot,
    prompts: &[&'a LoadedPrompt],
    env: &str,
    side: Side,
    model: Option<&str>,
) -> Result<Vec<TestJob<'a>>, CliError> {
    let history = context.history(config)?;
    let environments = crate::deploy::load_environments(config)?;
    let mut jobs = Vec::new();
    for &prompt in prompts {
        let Some(id) = &prompt.id else {
            jobs.extend(jobs_for(
                &config.settings,
                &[prompt],
                &Arc::new(Renderer::new(snapshot.partials.clone())),
                model,
            )?);
            continue;
        };
        let resolved = resolve(context, &history, &environments, snapshot, id, env, side)?;
        let renderer = Arc::new(Renderer::new(resolved.partials));
        let definition = Arc::new(resolved.definition);
        jobs.extend(prompt_jobs(
            &config.settings,
            prompt,
            definition,
            &renderer,
            model,
        )?);
    }
    Ok(jobs)
}
