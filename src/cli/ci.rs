//! What `check` and `test` share when they run as a CI check: the GitHub Actions flags,
//! the base of a change, sharding, and where annotations and the Markdown report go (the
//! step summary, a file, the pull request's comment).
//!
//! The logic lives in the library (`history::merge_base`, `eval::selection`,
//! `eval::github`, `eval::pr_comment`); this file only wires it to the command line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::{CliError, Context};
use crate::config::Config;
use crate::eval::TestJob;
use crate::eval::github::{Annotation, ChangedEntry, Level};
use crate::eval::pr_comment;
use crate::eval::selection::{self, Changes, Shard};
use crate::history::{self, ChangeBase};
use crate::render::Renderer;
use crate::repo::Snapshot;

/// Test cases whose rendered messages the report diffs, per prompt.
const MAX_RENDERS_PER_PROMPT: usize = 5;
/// Changed prompts whose rendered messages the report diffs.
const MAX_RENDERED_PROMPTS: usize = 100;

/// Flags for running inside GitHub Actions, set from the variables the runner exports.
#[derive(Debug, Args)]
pub struct GithubArgs {
    /// Print GitHub Actions annotations (`::error file=...,line=...`) and append a Markdown
    /// report to $GITHUB_STEP_SUMMARY [default: when GITHUB_ACTIONS=true].
    #[arg(long, env = "GITHUB_ACTIONS", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::FalseyValueParser::new(),
          hide_env_values = true)]
    github: Option<bool>,
    /// The step summary file GitHub Actions gives each step.
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE", hide = true)]
    step_summary: Option<PathBuf>,
    /// Also put the Markdown report in one comment on the pull request, updated in place
    /// on later runs (turns --github on; needs GITHUB_TOKEN with `pull-requests: write`).
    /// A comment that cannot be written is a warning, never a failure.
    #[arg(long)]
    comment: bool,
}

impl GithubArgs {
    /// Whether annotations and the step summary are wanted (`--comment` wants them too).
    pub fn enabled(&self) -> bool {
        self.comment || self.github.unwrap_or(false)
    }

    /// Where the step summary goes, when it is wanted.
    pub fn summary_file(&self) -> Option<&Path> {
        self.step_summary
            .as_deref()
            .filter(|path| self.enabled() && !path.as_os_str().is_empty())
    }
}

/// Prints workflow annotations, their files made relative to the Git repository: on
/// stdout, or on stderr when stdout carries JSON (the runner reads commands from both).
pub fn print_annotations(context: &Context, config: &Config, annotations: &[Annotation]) {
    let prefix = history::root_in_repository(config).unwrap_or_default();
    let commands: Vec<String> = annotations
        .iter()
        .map(|annotation| {
            let mut annotation = annotation.clone();
            if let Some(at) = &mut annotation.at
                && !prefix.as_os_str().is_empty()
            {
                at.file = crate::diagnostic::display_path(&prefix.join(&at.file));
            }
            annotation.command()
        })
        .collect();
    context.output.workflow_commands(&commands);
}

/// Appends `test`'s `markdown` to the step summary (when GitHub Actions is on), writes it
/// to `report` (when given) and to the pull request's comment (with `--comment`).
pub fn write_report(
    context: &Context,
    github: &GithubArgs,
    report: Option<&Path>,
    markdown: &str,
    shard: Option<Shard>,
) -> Result<(), CliError> {
    write_report_of(
        context,
        github,
        report,
        markdown,
        pr_comment::Report::Test(shard),
    )
}

/// [`write_report`] for the report of `kind`, whose comment is its own.
pub fn write_report_of(
    context: &Context,
    github: &GithubArgs,
    report: Option<&Path>,
    markdown: &str,
    kind: pr_comment::Report,
) -> Result<(), CliError> {
    if let Some(path) = github.summary_file() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(format!("{markdown}\n").as_bytes()))
            .map_err(|err| {
                CliError::input(format!(
                    "cannot append to the step summary {}: {err}",
                    path.display()
                ))
            })?;
    }
    if let Some(path) = report {
        let path = context.directory.join(path);
        crate::files::replace(&path, markdown.as_bytes())
            .map_err(|err| CliError::input(format!("cannot write {}: {err}", path.display())))?;
    }
    if github.comment {
        comment(context, markdown, kind);
    }
    Ok(())
}

/// Creates or updates the pull request's comment; a failure is a warning (on stderr and
/// as a workflow annotation), and the run's verdict stays the tests'.
fn comment(context: &Context, markdown: &str, kind: pr_comment::Report) {
    let output = &context.output;
    let target = pr_comment::Target::from_env(&context.env);
    let result = target.and_then(|target| {
        let body = pr_comment::comment_body(kind, markdown, target.run_url.as_deref());
        let published = pr_comment::publish_blocking(&target, kind, &body)?;
        Ok((target.number, published))
    });
    match result {
        Ok((number, pr_comment::Published::Created(id))) => output.note(&format!(
            "posted the report to pull request #{number} (comment {id})"
        )),
        Ok((number, pr_comment::Published::Updated(id))) => output.note(&format!(
            "updated the report on pull request #{number} (comment {id})"
        )),
        Err(err) => {
            output.note(&format!(
                "{} no pull request comment: {err}",
                output.paint_err(super::output::Style::Yellow, "warning:")
            ));
            let annotation = Annotation {
                level: Level::Warning,
                at: None,
                title: "No pull request comment".to_owned(),
                message: err.to_string(),
            };
            output.workflow_commands(&[annotation.command()]);
        }
    }
}

/// The base of a change and what it changes.
pub struct Base {
    /// The base commit and how it was found.
    pub base: ChangeBase,
    /// The prompts folder at the base.
    pub snapshot: Snapshot,
    /// The prompts the working tree changes compared with it.
    pub changes: Changes,
}

/// The base to compare the working tree with: the merge base with `changed_since`, else
/// (when a report is wanted) the first parent of `HEAD` when it is a merge commit, as on a
/// pull request in GitHub Actions.
pub fn find_base(
    config: &Config,
    head: &Snapshot,
    changed_since: Option<&str>,
    want_report: bool,
) -> Result<Option<Base>, CliError> {
    let base = match changed_since {
        Some(reference) => Some(history::merge_base(config, reference).map_err(|err| {
            let unknown = matches!(err, history::HistoryError::BadRevision { .. });
            let error = CliError::from(err);
            if unknown {
                error.hint(
                    "in GitHub Actions, fetch the base branch: actions/checkout with `fetch-depth: 0`",
                )
            } else {
                error
            }
        })?),
        None if want_report => history::merge_commit_base(config),
        None => None,
    };
    let Some(base) = base else { return Ok(None) };
    let snapshot = history::snapshot_at(config, &base.commit)?;
    let changes = selection::changed_prompts(&snapshot, head);
    Ok(Some(Base {
        base,
        snapshot,
        changes,
    }))
}

/// The changed prompts as the report shows them: version change against the history at
/// the base, and rendered messages before and after for each test.
pub fn changed_entries(
    context: &Context,
    config: &Config,
    base: &Base,
    head: &Snapshot,
) -> Vec<ChangedEntry> {
    if base.changes.changed.is_empty() {
        return Vec::new();
    }
    let base_history = match history::History::load(config, Some(&base.base.commit), false) {
        Ok(history) => Some(history),
        Err(err) => {
            context
                .output
                .note(&format!("warning: no version numbers in the report: {err}"));
            None
        }
    };
    let base_renderer = Renderer::new(base.snapshot.partials.clone());
    let head_renderer = Renderer::new(head.partials.clone());
    let find = |snapshot: &Snapshot, id| {
        snapshot
            .prompts
            .iter()
            .find(|p| p.id.as_ref() == Some(id))
            .cloned()
    };
    base.changes
        .changed
        .iter()
        .enumerate()
        .filter_map(|(index, change)| {
            let prompt = find(head, &change.id)?;
            let before = find(&base.snapshot, &change.id);
            let version = match (&base_history, &prompt.definition) {
                (Some(history), Some(definition)) => {
                    Some(selection::version_change(history, &change.id, definition))
                }
                _ => None,
            };
            let renders = match &prompt.definition {
                Some(definition) if index < MAX_RENDERED_PROMPTS => selection::rendered_diffs(
                    before
                        .as_ref()
                        .and_then(|b| b.definition.as_ref())
                        .map(|d| (d, &base_renderer)),
                    (definition, &head_renderer),
                    &prompt,
                    MAX_RENDERS_PER_PROMPT,
                ),
                _ => Vec::new(),
            };
            Some(ChangedEntry {
                id: change.id.clone(),
                path: crate::diagnostic::display_path(&prompt.path),
                version,
                reasons: change.reasons.clone(),
                renders,
            })
        })
        .collect()
}

/// Keeps the jobs of `shard` (all without one); the candidate jobs, when any, follow the
/// same cases.
pub fn shard_jobs<'a>(
    shard: Option<Shard>,
    own: Vec<TestJob<'a>>,
    candidate: Option<Vec<TestJob<'a>>>,
) -> (Vec<TestJob<'a>>, Option<Vec<TestJob<'a>>>) {
    let Some(shard) = shard else {
        return (own, candidate);
    };
    let labels: Vec<String> = own
        .iter()
        .map(|job| format!("{} › {}", job.suite.prompt, job.name()))
        .collect();
    let mask = Arc::new(shard.select(&labels));
    let keep = |jobs: Vec<TestJob<'a>>| -> Vec<TestJob<'a>> {
        jobs.into_iter()
            .zip(mask.iter())
            .filter_map(|(job, keep)| keep.then_some(job))
            .collect()
    };
    (keep(own), candidate.map(keep))
}
