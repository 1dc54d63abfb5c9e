//! `canary promote` and `canary abort`: the decision on a canary split as a minimal edit
//! of `environments.yaml` ([`plan`]), written and committed alone ([`CanaryPlan::write`]).
//! Promoting writes the canary's version and model over the environment's pin and removes
//! the split; aborting removes the split. Running the canary's tests before a promotion is
//! the door's (the same jobs as `test --env E --canary`).

use std::path::PathBuf;

use super::{DeployError, Overwrite, load_environments, pin_label, validate, write_atomically};
use crate::config::Config;
use crate::environments::{Canary, Environments, ModelChange, Pin, Side, VersionRef};
use crate::history::PromptHistory;
use crate::repo::PromptId;

/// What to do with a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The canary becomes the environment's version and model.
    Promote,
    /// The environment keeps its own pin.
    Abort,
}

/// A checked edit of the environments file, not written yet.
#[derive(Debug)]
pub struct CanaryPlan {
    /// The prompt.
    pub prompt: PromptId,
    /// The environment.
    pub env: String,
    /// The decision.
    pub decision: Decision,
    /// What the environment ran outside the canary.
    pub before: Pin,
    /// The canary.
    pub canary: Canary,
    /// What the environment runs after the edit.
    pub after: Pin,
    /// The file as the project names it (for messages).
    pub path: PathBuf,
    /// The file on disk.
    file: PathBuf,
    /// Its text now.
    source: String,
    /// Its text after the edit.
    text: String,
}

/// Why a canary decision cannot be planned.
fn no_canary(prompt: &PromptId, env: &str) -> DeployError {
    DeployError::Edit(format!(
        "{prompt} has no canary in {env}: environments.yaml has no `canary:` inside its `{env}`"
    ))
}

/// Plans `decision` on the canary of `env` for `prompt`: the edit, read back to check it
/// gives exactly the pin asked for, no split, and every other environment as it was. A
/// promoted canary on `latest` is written as the number it means now (as `promote` does),
/// and one running a version the prompt lacks is refused.
pub fn plan(
    config: &Config,
    prompt: &PromptHistory,
    env: &str,
    decision: Decision,
) -> Result<CanaryPlan, DeployError> {
    let environments = load_environments(config)?;
    let entry = environments
        .environment(&prompt.id, env)
        .ok_or_else(|| no_canary(&prompt.id, env))?;
    let canary = entry
        .canary
        .as_ref()
        .ok_or_else(|| no_canary(&prompt.id, env))?
        .canary
        .clone();
    let before = entry.pin.clone();
    let unchanged = |why: String| {
        DeployError::Edit(format!(
            "cannot edit {}: {why}; the file is unchanged",
            crate::diagnostic::display_path(&environments.path)
        ))
    };
    let reparse = |text: &str| {
        Environments::parse(&environments.path, text)
            .map_err(|d| unchanged(format!("the edit would not parse ({})", d.message)))
    };
    let removed = environments
        .without_canary(&prompt.id, env)
        .map_err(|err| unchanged(err.to_string()))?;
    let (text, after) = match decision {
        Decision::Abort => (removed, before.clone()),
        Decision::Promote => {
            let mut after = canary.pin_over(&before);
            validate(prompt, after.version, true)?;
            if let (VersionRef::Latest, Some(latest)) = (after.version, prompt.latest()) {
                after.version = VersionRef::Number(latest.number);
            }
            let model = canary
                .model
                .clone()
                .map_or(ModelChange::Keep, ModelChange::Set);
            let key = environments
                .entry(&prompt.id)
                .map_or_else(|| prompt.id.to_string(), |e| e.key.clone());
            let text = reparse(&removed)?
                .with_pin(&prompt.id, &key, env, after.version, &model)
                .map_err(|err| unchanged(err.to_string()))?;
            (text, after)
        }
    };
    let check = reparse(&text)?;
    let written = check.environment(&prompt.id, env);
    if written.and_then(|e| e.pin_of(Side::Baseline)) != Some(after.clone())
        || written.is_some_and(|e| e.canary.is_some())
        || !environments.same_except(&check, &prompt.id, env)
    {
        return Err(DeployError::EditMismatch {
            path: environments.path.clone(),
        });
    }
    Ok(CanaryPlan {
        prompt: prompt.id.clone(),
        env: env.to_owned(),
        decision,
        before,
        canary,
        after,
        path: environments.path,
        file: config.environments_file(),
        source: environments.source,
        text,
    })
}

impl CanaryPlan {
    /// The commit's subject: `Promote the canary of billing/invoice in production: v8 on
    /// o3`, `Abort the canary of billing/invoice in production`.
    pub fn subject(&self) -> String {
        match self.decision {
            Decision::Promote => format!(
                "Promote the canary of {} in {}: {}",
                self.prompt,
                self.env,
                pin_label(&self.after)
            ),
            Decision::Abort => format!("Abort the canary of {} in {}", self.prompt, self.env),
        }
    }

    /// The commit message: the [subject](CanaryPlan::subject), then the split before and
    /// what runs after, and `tests` (a line on the canary's tests, for a promotion).
    pub fn commit_message(&self, tests: Option<&str>) -> String {
        let canary = self.canary.pin_over(&self.before);
        let mut message = format!(
            "{}\n\n{}: {} with a canary of {} at {}% -> {}\n",
            self.subject(),
            self.env,
            pin_label(&self.before),
            pin_label(&canary),
            crate::environments::weight_label(self.canary.weight),
            pin_label(&self.after)
        );
        if let Some(tests) = tests {
            message.push_str(tests);
            message.push('\n');
        }
        message
    }

    /// Writes the edit; with `commit_message`, commits the file alone, refusing when it has
    /// uncommitted changes of its own. Returns the commit's id.
    pub fn write(&self, commit_message: Option<&str>) -> Result<Option<String>, DeployError> {
        let Some(message) = commit_message else {
            write_atomically(&self.file, &self.text)?;
            return Ok(None);
        };
        super::refuse_uncommitted(&self.file, &self.path, Overwrite::Decision)?;
        super::write_and_commit(&self.file, Some(&self.source), &self.text, message).map(Some)
    }
}
