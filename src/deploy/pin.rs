//! `pin` and `promote`: what an environment runs, as a minimal edit of `environments.yaml`
//! ([`plan`]), written and optionally committed alone ([`PinPlan::write`]).

use std::path::PathBuf;

use super::{
    DeployError, Overwrite, load_environments, pin_label, validate, version_label, write_atomically,
};
use crate::config::Config;
use crate::environments::{Environments, ModelChange, Pin, VersionRef};
use crate::history::{History, PromptHistory};
use crate::repo::PromptId;

/// One environment's new pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The environment.
    pub env: String,
    /// The version to run.
    pub version: VersionRef,
    /// What happens to the model override.
    pub model: ModelChange,
    /// The environment this is promoted from (`promote`); `None` for `pin`.
    pub from: Option<String>,
}

/// A checked edit of the environments file, not written yet.
#[derive(Debug)]
pub struct PinPlan {
    /// The prompt.
    pub prompt: PromptId,
    /// The environment.
    pub env: String,
    /// What the environment ran.
    pub before: Pin,
    /// What it will run.
    pub after: Pin,
    /// The file as the project names it (for messages).
    pub path: PathBuf,
    /// The environment promoted from (`promote`), for the commit message.
    from: Option<String>,
    /// The file on disk.
    file: PathBuf,
    /// Its text now.
    source: String,
    /// Its text after the edit.
    text: String,
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

/// Plans `change` for `prompt`: refuses a version it does not have and an archived prompt,
/// edits the file minimally in memory, and checks that the edit reads back as exactly the
/// pin asked for.
pub fn plan(
    config: &Config,
    history: &History,
    prompt: &PromptHistory,
    change: &Change,
) -> Result<PinPlan, DeployError> {
    validate(prompt, change.version, true)?;
    let environments = load_environments(config)?;
    let before = environments.resolve(&prompt.id, &change.env);
    let key = key_for(history, prompt);
    let text = environments
        .with_pin(&prompt.id, &key, &change.env, change.version, &change.model)
        .map_err(|err| DeployError::Edit(err.to_string()))?;
    let written = Environments::parse(&environments.path, &text)
        .map_err(|d| DeployError::Environments(Box::new(d)))?;
    let after = written.resolve(&prompt.id, &change.env);
    let split_before = environments.canary(&prompt.id, &change.env);
    let split_after = written.canary(&prompt.id, &change.env);
    if split_before != split_after || !environments.same_except(&written, &prompt.id, &change.env) {
        return Err(DeployError::EditMismatch {
            path: environments.path.clone(),
        });
    }
    if let Some(split) = split_after
        && split.pin_over(&after) == after
    {
        return Err(DeployError::Edit(format!(
            "{} would run in `{}` what its canary runs, so the canary would compare nothing: `promptctl canary promote` or `canary abort` it instead",
            prompt.id, change.env
        )));
    }
    let expected_model = match &change.model {
        ModelChange::Keep => before.model.clone(),
        ModelChange::Set(model) => Some(model.clone()),
        ModelChange::Clear => None,
    };
    if after.version != change.version || after.model != expected_model {
        return Err(DeployError::EditMismatch {
            path: environments.path.clone(),
        });
    }
    Ok(PinPlan {
        prompt: prompt.id.clone(),
        env: change.env.clone(),
        before,
        after,
        path: environments.path,
        from: change.from.clone(),
        file: config.environments_file(),
        source: environments.source,
        text,
    })
}

/// What `promote` gives `to`: what `from` runs, its `latest` fixed to the number it means
/// now (promoting must not make the target follow every later change).
#[derive(Debug)]
pub struct Promotion {
    /// The change to plan.
    pub change: Change,
    /// Whether the file pins the prompt in `from` (else its latest version on its own
    /// model is promoted).
    pub pinned: bool,
    /// The environments file as the project names it.
    pub path: PathBuf,
}

/// The change that gives `to` what `from` runs for `prompt`.
pub fn promotion(
    config: &Config,
    prompt: &PromptHistory,
    from: &str,
    to: &str,
) -> Result<Promotion, DeployError> {
    let environments = load_environments(config)?;
    let source = environments.resolve(&prompt.id, from);
    let pinned = environments
        .entry(&prompt.id)
        .and_then(|entry| entry.environment(from))
        .is_some();
    let version = match source.version {
        VersionRef::Number(n) => VersionRef::Number(n),
        VersionRef::Latest => match prompt.latest() {
            Some(latest) => VersionRef::Number(latest.number),
            None => VersionRef::Latest,
        },
    };
    Ok(Promotion {
        change: Change {
            env: to.to_owned(),
            version,
            model: source.model.map_or(ModelChange::Clear, ModelChange::Set),
            from: Some(from.to_owned()),
        },
        pinned,
        path: environments.path,
    })
}

impl PinPlan {
    /// Whether the edit changes the file.
    pub fn changed(&self) -> bool {
        self.text != self.source
    }

    /// The commit's subject: `Pin billing/invoice to v3 in production on gpt-4o` (the
    /// model named when it changes), `Promote billing/invoice v3 from staging to
    /// production`.
    pub fn subject(&self) -> String {
        let version = version_label(self.after.version);
        match &self.from {
            Some(from) => format!(
                "Promote {} {version} from {from} to {}",
                self.prompt, self.env
            ),
            None => format!(
                "Pin {} to {version} in {}{}",
                self.prompt,
                self.env,
                self.after
                    .model
                    .as_ref()
                    .filter(|m| self.before.model.as_ref() != Some(*m))
                    .map(|m| format!(" on {m}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// The commit message: the [subject](PinPlan::subject), then what moved.
    pub fn commit_message(&self) -> String {
        format!(
            "{}\n\n{}: {} -> {}\n",
            self.subject(),
            self.env,
            pin_label(&self.before),
            pin_label(&self.after)
        )
    }

    /// Writes the edit (when it changes the file); with `commit_message`, commits the file
    /// alone, refusing when it has uncommitted changes of its own. Returns the commit's id.
    pub fn write(&self, commit_message: Option<&str>) -> Result<Option<String>, DeployError> {
        if !self.changed() {
            return Ok(None);
        }
        let existed = self.file.exists();
        let Some(message) = commit_message else {
            write_atomically(&self.file, &self.text)?;
            return Ok(None);
        };
        if existed {
            super::refuse_uncommitted(&self.file, &self.path, Overwrite::Commit)?;
        }
        let original = existed.then_some(self.source.as_str());
        super::write_and_commit(&self.file, original, &self.text, message).map(Some)
    }
}
