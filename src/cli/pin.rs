//! `promptctl pin PROMPT --env E --version N|latest [--model M]`: set what an environment
//! runs, as a minimal edit of `environments.yaml`, optionally committed.
//!
//! The helpers here (loading the file, checking a version exists, writing and committing
//! the edit) are shared with `promote`.

use clap::Args;

use super::output::Format;
use super::{CliError, Context, ErrorKind, exit};
use crate::config::Config;
use crate::diagnostic::display_path;
use crate::environments::{Environments, ModelChange, Pin, VersionRef};
use crate::history::commit::CommitError;
use crate::history::{History, PromptHistory};

/// Arguments of `promptctl pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The environment, e.g. `production`.
    #[arg(long, value_name = "ENV")]
    env: String,
    /// The version to run: a number, or `latest`.
    #[arg(long = "version", value_name = "N|latest")]
    version: VersionRef,
    /// The model to run it on in this environment (default: keep the current override).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Drop the environment's model override: run the prompt's own model.
    #[arg(long, conflicts_with = "model")]
    own_model: bool,
    /// Commit the change to environments.yaml (alone) with a message saying what moved.
    #[arg(long)]
    commit: bool,
}

/// Runs `promptctl pin`.
pub fn run(context: &Context, args: &PinArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let history = context.history(&config)?;
    let prompt = history.find(&args.prompt)?;
    let model = match (&args.model, args.own_model) {
        (Some(model), _) => ModelChange::Set(model.clone()),
        (None, true) => ModelChange::Clear,
        (None, false) => ModelChange::Keep,
    };
    let change = Change {
        env: args.env.clone(),
        version: args.version,
        model,
    };
    apply(
        context,
        &config,
        &history,
        prompt,
        &change,
        args.commit,
        |before, after| {
            format!(
                "Pin {} to {} in {}{}",
                prompt.id,
                version_label(after.version),
                args.env,
                after
                    .model
                    .as_ref()
                    .filter(|m| before.model.as_ref() != Some(*m))
                    .map(|m| format!(" on {m}"))
                    .unwrap_or_default()
            )
        },
    )
}

/// One environment's new pin.
pub struct Change {
    /// The environment.
    pub env: String,
    /// The version to run.
    pub version: VersionRef,
    /// What happens to the model override.
    pub model: ModelChange,
}

/// `v3` or `latest`.
pub fn version_label(version: VersionRef) -> String {
    match version {
        VersionRef::Latest => "latest".to_owned(),
        VersionRef::Number(n) => format!("v{n}"),
    }
}

/// A pin as people read it: `v3 (gpt-4o)`, `latest (own model)`.
pub fn pin_label(pin: &Pin) -> String {
    format!(
        "{} ({})",
        version_label(pin.version),
        pin.model.as_deref().unwrap_or("own model")
    )
}

/// The project's environments file, or an empty one (to be created) when there is none.
pub fn load_environments(config: &Config) -> Result<Environments, CliError> {
    match Environments::load(config) {
        Ok(Some(environments)) => Ok(environments),
        Ok(None) => Environments::parse(&config.settings.environments, "")
            .map_err(|d| CliError::at(ErrorKind::Input, d)),
        Err(diagnostic) => Err(CliError::at(ErrorKind::Input, diagnostic)),
    }
}

/// Refuses a version the prompt does not have (exit 2) and an archived prompt.
pub fn validate(prompt: &PromptHistory, version: VersionRef) -> Result<(), CliError> {
    if prompt.archived {
        return Err(CliError::input(format!(
            "{} is archived: no file defines it any more",
            prompt.id
        ))
        .hint("restore its file first, or remove it from the environments file"));
    }
    if let VersionRef::Number(n) = version
        && prompt.version(n).is_none()
    {
        let range = match prompt.versions.len() {
            0 => "it has no committed version yet".to_owned(),
            1 => "its only version is 1".to_owned(),
            latest => format!("its versions are 1 to {latest}"),
        };
        return Err(
            CliError::input(format!("{} has no version {n}; {range}", prompt.id))
                .hint(format!("`promptctl log {}` lists them", prompt.id)),
        );
    }
    Ok(())
}

/// The key a new entry gets: the name alone when no other service uses it.
fn key_for(history: &History, prompt: &PromptHistory) -> String {
    let shared = history
        .prompts
        .keys()
        .filter(|id| id.name == prompt.id.name)
        .count()
        > 1;
    if shared {
        prompt.id.to_string()
    } else {
        prompt.id.name.clone()
    }
}

/// Writes `text` to `path` through a temporary file, so a crash never leaves half a file.
pub fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    crate::files::replace(path, text.as_bytes())
        .map_err(|err| CliError::input(format!("cannot write {}: {err}", display_path(path))))
}

/// A commit error as the user sees it.
pub fn commit_error(err: CommitError) -> CliError {
    match err {
        CommitError::NoIdentity => CliError::input(err.to_string())
            .hint("git config --global user.name \"Your Name\"")
            .hint("git config --global user.email you@example.com"),
        CommitError::NotARepository(_) | CommitError::Outside(_) | CommitError::Io { .. } => {
            CliError::input(err.to_string())
        }
        CommitError::Git(_) => CliError::external(err.to_string()),
    }
}

/// Validates, edits the file minimally, writes it and commits it when asked; prints what
/// moved. `message` builds the commit's subject from the pins before and after.
pub fn apply(
    context: &Context,
    config: &Config,
    history: &History,
    prompt: &PromptHistory,
    change: &Change,
    commit: bool,
    message: impl Fn(&Pin, &Pin) -> String,
) -> Result<u8, CliError> {
    validate(prompt, change.version)?;
    let environments = load_environments(config)?;
    let path = config.environments_file();
    let before = environments.resolve(&prompt.id, &change.env);
    let key = key_for(history, prompt);
    let text = environments
        .with_pin(&prompt.id, &key, &change.env, change.version, &change.model)
        .map_err(|err| CliError::input(err.to_string()))?;
    // The edit must read back as exactly the pin asked for, or nothing is written.
    let after = Environments::parse(&environments.path, &text)
        .map_err(|d| CliError::at(ErrorKind::Input, d))?
        .resolve(&prompt.id, &change.env);
    let expected_model = match &change.model {
        ModelChange::Keep => before.model.clone(),
        ModelChange::Set(model) => Some(model.clone()),
        ModelChange::Clear => None,
    };
    if after.version != change.version || after.model != expected_model {
        return Err(CliError::input(format!(
            "editing {} would not give the pin asked for; the file is unchanged",
            display_path(&environments.path)
        ))
        .hint("edit the file by hand, or report this as a bug"));
    }
    let changed = text != environments.source;
    let mut commit_id = None;
    if changed {
        if commit
            && path.exists()
            && crate::history::commit::has_changes(&path).map_err(commit_error)?
        {
            return Err(CliError::input(format!(
                "{} has uncommitted changes; --commit would commit them too",
                display_path(&environments.path)
            ))
            .hint("commit or discard them first, or leave out --commit"));
        }
        let existed = path.exists();
        write_atomically(&path, &text)?;
        if commit {
            let subject = message(&before, &after);
            let body = format!(
                "{}: {} -> {}",
                change.env,
                pin_label(&before),
                pin_label(&after)
            );
            match crate::history::commit::commit_file(&path, &format!("{subject}\n\n{body}\n")) {
                Ok(id) => commit_id = Some(id),
                Err(err) => {
                    // The edit lands as a commit or not at all.
                    if existed {
                        let _ = write_atomically(&path, &environments.source);
                    } else {
                        let _ = std::fs::remove_file(&path);
                    }
                    return Err(commit_error(err));
                }
            }
        }
    }
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": prompt.id.to_string(),
            "environment": change.env,
            "before": before,
            "after": after,
            "changed": changed,
            "commit": commit_id,
        })),
        Format::Human => {
            let mut text = if changed {
                format!(
                    "{} {}: {} -> {}",
                    prompt.id,
                    change.env,
                    pin_label(&before),
                    pin_label(&after)
                )
            } else {
                format!(
                    "{} {}: already {}; nothing to change",
                    prompt.id,
                    change.env,
                    pin_label(&after)
                )
            };
            if let Some(id) = &commit_id {
                text.push_str(&format!("\ncommitted {}", super::short(id)));
            }
            output.data(&text);
        }
    }
    Ok(exit::SUCCESS)
}
