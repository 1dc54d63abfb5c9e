//! `promptctl list`: every prompt with its latest version.
//!
//! Versions come from Git history; a prompt whose working-tree definition differs from its
//! latest version shows the next version number, marked uncommitted. Outside a Git
//! repository the list still works from the working tree, without versions (a note on
//! stderr says so), so that a folder of prompts can be inspected before `git init`.

use clap::Args;
use serde::Serialize;

use super::output::{Format, table};
use super::{CliError, Context, exit, report_history_problems};
use crate::diagnostic::display_path;
use crate::history::{History, HistoryError, Version};

/// Arguments of `promptctl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include archived prompts (deleted from the tree, kept in history).
    #[arg(long)]
    all: bool,
}

/// One prompt as `list --format json` prints it.
#[derive(Serialize)]
struct Row {
    service: String,
    name: String,
    /// The latest version (the uncommitted one when the working tree changes it).
    version: Option<u32>,
    /// The latest committed version.
    committed_version: Option<u32>,
    commit: Option<String>,
    created_at: Option<String>,
    created_by: Option<String>,
    author_email: Option<String>,
    message: Option<String>,
    archived: bool,
    uncommitted: bool,
    model: Option<String>,
    path: String,
}

impl Row {
    /// A row for the latest version; `path` is where the prompt lives now.
    fn of(
        id: &crate::repo::PromptId,
        latest: &Version,
        committed: Option<u32>,
        archived: bool,
        path: &std::path::Path,
    ) -> Row {
        let commit = latest.commit.as_deref();
        Row {
            service: id.service.clone(),
            name: id.name.clone(),
            version: Some(latest.number),
            committed_version: committed,
            commit: commit.map(|c| c.id.clone()),
            created_at: commit.map(crate::history::CommitInfo::time_rfc3339),
            created_by: commit.map(|c| c.author_name.clone()),
            author_email: commit.map(|c| c.author_email.clone()),
            message: commit.map(|c| c.summary().to_owned()),
            archived,
            uncommitted: latest.is_uncommitted(),
            model: Some(latest.model().to_owned()),
            path: display_path(path),
        }
    }
}

/// Runs `promptctl list`.
pub fn run(context: &Context, args: &ListArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let rows = match context.load_history(&config) {
        Ok(history) => {
            let rows = rows_from_history(context, &history, args.all)?;
            // The process ends once the rows are printed: freeing a monorepo's history
            // (a few hundred thousand allocations) would only cost time.
            std::mem::forget(history);
            rows
        }
        Err(HistoryError::NotARepository { .. }) if context.rev.is_none() => {
            context.output.note(
                "note: not inside a Git repository: listing the working tree, without versions",
            );
            rows_from_working_tree(context, &config)?
        }
        Err(err) => return Err(err.into()),
    };
    print(context, &rows);
    Ok(exit::SUCCESS)
}

fn rows_from_history(
    context: &Context,
    history: &History,
    all: bool,
) -> Result<Vec<Row>, CliError> {
    let uncommitted = history.uncommitted()?;
    let mut rows = Vec::new();
    for (id, prompt) in &history.prompts {
        let deleted = uncommitted.deleted.contains(id);
        let archived = prompt.archived || deleted;
        if archived && !all {
            continue;
        }
        let committed = prompt.latest().map(|v| v.number);
        let latest = uncommitted.versions.get(id).or(prompt.latest());
        if let Some(latest) = latest {
            let path = if latest.is_uncommitted() {
                &latest.path
            } else {
                &prompt.path
            };
            rows.push(Row::of(id, latest, committed, archived, path));
        }
    }
    for (id, version) in &uncommitted.versions {
        if !history.prompts.contains_key(id) {
            rows.push(Row::of(id, version, None, false, &version.path));
        }
    }
    rows.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    report_history_problems(&context.output, &history.problems, 20);
    report_history_problems(&context.output, &uncommitted.problems, 20);
    Ok(rows)
}

fn rows_from_working_tree(
    context: &Context,
    config: &crate::config::Config,
) -> Result<Vec<Row>, CliError> {
    let snapshot = context.snapshot(config)?;
    let mut rows: Vec<Row> = snapshot
        .prompts
        .iter()
        .filter_map(|prompt| {
            let id = prompt.id.as_ref()?;
            Some(Row {
                service: id.service.clone(),
                name: id.name.clone(),
                version: None,
                committed_version: None,
                commit: None,
                created_at: None,
                created_by: None,
                author_email: None,
                message: None,
                archived: false,
                uncommitted: true,
                model: prompt.file.model.as_ref().map(|m| m.value.clone()),
                path: display_path(&prompt.path),
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    if !snapshot.problems.is_empty() {
        context.output.note(&format!(
            "warning: {} file(s) could not be read; `promptctl check` shows why",
            snapshot.problems.len()
        ));
    }
    Ok(rows)
}

fn print(context: &Context, rows: &[Row]) {
    let output = &context.output;
    match output.format {
        Format::Json => output.json(rows),
        Format::Human => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    let version = match (row.version, row.uncommitted, row.archived) {
                        (None, _, _) => "-".to_owned(),
                        (Some(n), true, _) => format!("{n} (uncommitted)"),
                        (Some(n), false, true) => format!("{n} (archived)"),
                        (Some(n), false, false) => n.to_string(),
                    };
                    vec![
                        format!("{}/{}", row.service, row.name),
                        version,
                        row.model.clone().unwrap_or_default(),
                        row.created_at
                            .as_deref()
                            .map(|t| t.get(..10).unwrap_or(t).to_owned())
                            .unwrap_or_default(),
                        row.created_by.clone().unwrap_or_default(),
                        row.path.clone(),
                    ]
                })
                .collect();
            output.data(&table(
                &["PROMPT", "VERSION", "MODEL", "UPDATED", "AUTHOR", "FILE"],
                &cells,
            ));
        }
    }
}
