//! What an environment runs for a prompt, against the history: the version the file pins
//! (or the latest), its commit's partials, and the environment's model applied. The one
//! resolution `render --env`, `test --env`, the router and the bundle use.

use super::{Environments, Pin, Side, VersionRef};
use crate::history::{History, HistoryError, PromptHistory};
use crate::repo::{Definition, Partials, PromptId};

/// A prompt's definition as an environment runs it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The definition, with the environment's model applied (`definition.model` is the
    /// model it runs on).
    pub definition: Definition,
    /// The partials of the version's commit (the working tree's for an uncommitted one).
    pub partials: Partials,
    /// The version number; `None` for a prompt that has no committed version yet.
    pub version: Option<u32>,
    /// The commit of the version.
    pub commit: Option<String>,
    /// Whether the file names this environment for this prompt.
    pub pinned: bool,
}

/// Why an environment's version could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The pinned version does not exist.
    #[error("{prompt} has no version {version} (pinned in {env}); its latest is {latest}")]
    NoSuchVersion {
        /// The prompt.
        prompt: PromptId,
        /// The environment.
        env: String,
        /// The pinned version.
        version: u32,
        /// Its latest version (0: none).
        latest: u32,
    },
    /// The canary side of an environment that has no canary.
    #[error("{prompt} has no canary in {env}")]
    NoCanary {
        /// The prompt.
        prompt: PromptId,
        /// The environment.
        env: String,
    },
    /// The prompt has no version at all and no working-tree definition.
    #[error("{prompt} has no version to run")]
    NoVersion {
        /// The prompt.
        prompt: PromptId,
    },
    /// Reading history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// What `side` of `env` runs for `id`: the pinned (or latest committed) version's definition from
/// `history`, with the partials of its commit and the environment's model applied. A
/// prompt without a committed version falls back to `working` (its working-tree definition
/// and partials) when the pin is `latest`. The router and `render`/`test --env` share it.
pub fn resolve_definition(
    history: &History,
    environments: Option<&Environments>,
    id: &PromptId,
    env: &str,
    side: Side,
    working: Option<(&Definition, &Partials)>,
) -> Result<Resolved, ResolveError> {
    let entry = environments.and_then(|e| e.environment(id, env));
    let pinned = entry.is_some();
    let pin = match (entry, side) {
        (Some(entry), side) => entry.pin_of(side),
        (None, Side::Baseline) => Some(Pin::unpinned()),
        (None, Side::Canary) => None,
    }
    .ok_or_else(|| ResolveError::NoCanary {
        prompt: id.clone(),
        env: env.to_owned(),
    })?;
    let prompt: Option<&PromptHistory> = history.prompts.get(id);
    let latest = prompt.map_or(0, |p| p.versions.len() as u32);
    let version =
        match (pin.version, prompt.and_then(PromptHistory::latest)) {
            (VersionRef::Number(n), _) => {
                Some(prompt.and_then(|p| p.version(n)).ok_or_else(|| {
                    ResolveError::NoSuchVersion {
                        prompt: id.clone(),
                        env: env.to_owned(),
                        version: n,
                        latest,
                    }
                })?)
            }
            (VersionRef::Latest, latest) => latest,
        };
    let (mut definition, partials, number, commit) = match version {
        Some(version) => {
            let commit = version.commit.as_ref().map(|c| c.id.clone());
            let partials = match &commit {
                Some(commit) => history.partials_at(commit)?,
                None => working.map(|w| w.1.clone()).unwrap_or_default(),
            };
            (
                (*version.definition()?).clone(),
                partials,
                Some(version.number),
                commit,
            )
        }
        None => match working {
            Some((definition, partials)) => (definition.clone(), partials.clone(), None, None),
            None => return Err(ResolveError::NoVersion { prompt: id.clone() }),
        },
    };
    if let Some(model) = &pin.model {
        definition.model = model.clone();
    }
    Ok(Resolved {
        definition,
        partials,
        version: number,
        commit,
        pinned,
    })
}
