//! Rules for `environments.yaml`: every pinned prompt exists and is not archived, every
//! pinned version exists and can be published, and every environment name and model
//! override fits the registry's columns.
//!
//! Kept apart from `check(&snapshot)`, which stays Git-free: the version rules need the
//! history, and without one (outside a Git repository) they are skipped.

use crate::diagnostic::{Diagnostic, closest};
use crate::environments::{Environments, PromptEntry, VersionRef};
use crate::history::History;
use crate::registry::columns;
use crate::repo::{PromptId, Snapshot};

/// Every finding about the environments file.
pub fn check_environments(
    environments: &Environments,
    snapshot: &Snapshot,
    history: Option<&History>,
) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let at =
        |code: &'static str, place: crate::environments::Place, length: usize, message: String| {
            Diagnostic::error(code, &environments.path, place.position(), message)
                .with_source(&environments.source)
                .with_length(length)
        };
    for entry in &environments.prompts {
        found.extend(unstorable_pins(environments, entry));
        let key_length = entry.key.chars().count();
        let in_tree: Vec<&PromptId> = snapshot
            .prompts
            .iter()
            .filter_map(|p| p.id.as_ref())
            .filter(|id| entry.names(id))
            .collect();
        let in_history: Vec<&PromptId> = history
            .map(|h| h.prompts.keys().filter(|id| entry.names(id)).collect())
            .unwrap_or_default();
        let mut distinct: Vec<&PromptId> = in_tree.iter().chain(&in_history).copied().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > 1 && in_tree.len() != 1 {
            let names: Vec<String> = distinct.iter().map(ToString::to_string).collect();
            found.push(
                at(
                    "ambiguous-prompt",
                    entry.at,
                    key_length,
                    format!(
                        "`{}` names prompts in several services: {}",
                        entry.key,
                        names.join(", ")
                    ),
                )
                .with_help("write the key as service/name"),
            );
            continue;
        }
        let id = match (in_tree.first(), in_history.first()) {
            (Some(id), _) => (*id).clone(),
            (None, Some(id)) => {
                found.push(
                    at(
                        "archived-prompt-pinned",
                        entry.at,
                        key_length,
                        format!(
                            "`{id}` is archived (no file defines it any more) but environments still pin it"
                        ),
                    )
                    .with_help("remove it from the environments file, or restore the prompt's file"),
                );
                continue;
            }
            (None, None) => {
                let candidates: Vec<String> = snapshot
                    .prompts
                    .iter()
                    .filter_map(|p| p.id.as_ref())
                    .flat_map(|id| [id.name.clone(), id.to_string()])
                    .collect();
                let mut diagnostic = at(
                    "unknown-prompt",
                    entry.at,
                    key_length,
                    format!("no prompt named `{}`", entry.key),
                );
                diagnostic = match closest(&entry.key, candidates.iter().map(String::as_str)) {
                    Some(suggestion) => {
                        diagnostic.with_help(format!("did you mean `{suggestion}`?"))
                    }
                    None => diagnostic.with_help("`promptctl list` shows every prompt"),
                };
                found.push(diagnostic);
                continue;
            }
        };
        found.extend(canary_problems(environments, entry));
        let Some(history) = history else { continue };
        let latest = history.prompts.get(&id).map_or(0, |p| p.versions.len());
        let pins = entry.environments.iter().flat_map(|env| {
            let canary = env
                .canary
                .as_ref()
                .map(|c| (c.canary.version, c.version_at));
            [(env.pin.version, env.version_at)]
                .into_iter()
                .chain(canary.map(|(version, at)| (version.unwrap_or(VersionRef::Latest), at)))
                .map(move |pin| (env, pin))
        });
        for (env, pin) in pins {
            let (VersionRef::Number(n), Some(place)) = pin else {
                continue;
            };
            if (n as usize) <= latest {
                let version = history.prompts.get(&id).and_then(|p| p.version(n));
                if let Some(problem) = version.and_then(unpublishable) {
                    found.push(
                        at("registry-unfit", place, n.to_string().len(), format!(
                            "{} pins version {n} of `{id}`, which the registry cannot store: {problem}",
                            env.name
                        ))
                        .with_help("pin another version: `sync` skips this one"),
                    );
                }
                continue;
            }
            let message = if latest == 0 {
                format!(
                    "`{id}` has no committed version yet, so {} cannot run version {n}",
                    env.name
                )
            } else {
                format!(
                    "`{id}` has no version {n} (pinned in {}); its versions are 1 to {latest}",
                    env.name
                )
            };
            found.push(
                at("unknown-version", place, n.to_string().len(), message).with_help(format!(
                    "`promptctl log {id}` lists its versions; `latest` follows the newest"
                )),
            );
        }
    }
    found
}

/// A canary that runs exactly what its environment runs, and a canary model the
/// registry cannot store.
fn canary_problems(environments: &Environments, entry: &PromptEntry) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for env in &entry.environments {
        let Some(canary) = &env.canary else { continue };
        let diagnostic = |place: crate::environments::Place, message: String| {
            Diagnostic::error(
                "invalid-canary",
                &environments.path,
                place.position(),
                message,
            )
            .with_source(&environments.source)
        };
        if canary.canary.pin_over(&env.pin) == env.pin {
            found.push(
                diagnostic(
                    canary.key,
                    format!(
                        "the canary of `{}` runs what `{}` runs: it compares nothing",
                        entry.key, env.name
                    ),
                )
                .with_help("give the canary another `version`, `model` or both"),
            );
        }
        if let (Some(model), Some(at)) = (&canary.canary.model, canary.model_at)
            && let Some(problem) =
                columns::text_problem(model, Some(columns::MAX_ENVIRONMENT_MODEL))
        {
            found.push(
                diagnostic(at, format!("the canary's model {problem}"))
                    .with_help("shorten it: `sync` could not publish it"),
            );
        }
    }
    found
}

/// Why the registry cannot store `version` (its definition), if it cannot.
fn unpublishable(version: &crate::history::Version) -> Option<String> {
    let definition = version.definition().ok()?;
    let problems = columns::definition_problems(&definition);
    (!problems.is_empty()).then(|| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The environment names and model overrides of `entry` that the registry's columns
/// cannot hold.
fn unstorable_pins(environments: &Environments, entry: &PromptEntry) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for env in &entry.environments {
        for (place, message, problem) in columns::pin_problems(env) {
            found.push(
                Diagnostic::error(
                    "registry-unfit",
                    &environments.path,
                    place.position(),
                    message,
                )
                .with_source(&environments.source)
                .with_help(match problem {
                    columns::Problem::Nul => {
                        "remove the `\\0` escape: PostgreSQL text cannot hold it"
                    }
                    columns::Problem::TooLong { .. } => "shorten it: `sync` could not publish it",
                    columns::Problem::SourceSeparator => {
                        "rename the service without `:`: `sync` could not publish it"
                    }
                }),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::environments::tests::parse;

    fn snapshot() -> Snapshot {
        Snapshot::from_files(
            Path::new("prompts"),
            vec![
                (
                    PathBuf::from("support/reply.yaml"),
                    b"model: m\ntemplate: hi\n".to_vec(),
                ),
                (
                    PathBuf::from("billing/reply.yaml"),
                    b"model: m\ntemplate: hi\n".to_vec(),
                ),
            ],
        )
    }

    #[test]
    fn unknown_and_ambiguous_prompts_are_found_without_history() {
        let environments = parse(
            "prompts:\n  reply:\n    production: {version: 99}\n  support/reply:\n    production: {version: 99}\n  support/replyy:\n    staging: {version: 1}\n",
        );
        let found = check_environments(&environments, &snapshot(), None);
        let codes: Vec<(&str, usize)> = found.iter().map(|d| (d.code, d.position.line)).collect();
        // Without history the version rules are skipped.
        assert_eq!(codes, [("ambiguous-prompt", 2), ("unknown-prompt", 6)]);
        assert_eq!(
            found[1].help.as_deref(),
            Some("did you mean `support/reply`?")
        );
        assert_eq!(found[1].line_text.as_deref(), Some("  support/replyy:"));
    }
}
