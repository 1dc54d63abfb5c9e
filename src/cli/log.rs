//! `promptctl log PROMPT`: a prompt's versions, newest first, with the working tree's
//! uncommitted one on top.

use clap::Args;
use serde::Serialize;

use super::output::{Format, Style, table};
use super::shared::PromptVersions;
use super::{CliError, Context, exit, report_history_problems, short};
use crate::diagnostic::display_path;

/// Arguments of `promptctl log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
}

/// One version as `log --format json` prints it.
#[derive(Serialize)]
struct Entry {
    number: u32,
    commit: Option<String>,
    time: Option<String>,
    timestamp: Option<i64>,
    author: Option<String>,
    author_email: Option<String>,
    message: Option<String>,
    summary: Option<String>,
    uncommitted: bool,
    path: String,
    model: String,
    fingerprint: String,
}

/// Runs `promptctl log`.
pub fn run(context: &Context, args: &LogArgs) -> Result<u8, CliError> {
    let PromptVersions {
        history,
        prompt,
        versions,
    } = PromptVersions::load(context, &args.prompt)?;
    let output = &context.output;
    match output.format {
        Format::Json => {
            let entries: Vec<Entry> = versions
                .iter()
                .map(|version| {
                    let commit = version.commit.as_deref();
                    Ok(Entry {
                        number: version.number,
                        commit: commit.map(|c| c.id.clone()),
                        time: commit.map(crate::history::CommitInfo::time_rfc3339),
                        timestamp: commit.map(|c| c.time),
                        author: commit.map(|c| c.author_name.clone()),
                        author_email: commit.map(|c| c.author_email.clone()),
                        message: commit.map(|c| c.message.clone()),
                        summary: commit.map(|c| c.summary().to_owned()),
                        uncommitted: version.is_uncommitted(),
                        path: display_path(&version.path),
                        model: version.model().to_owned(),
                        fingerprint: version.fingerprint(),
                    })
                })
                .collect::<Result<_, CliError>>()?;
            output.json(&entries);
        }
        Format::Human => {
            let rows: Vec<Vec<String>> = versions
                .iter()
                .rev()
                .map(|version| match version.commit.as_deref() {
                    Some(commit) => vec![
                        version.number.to_string(),
                        short(&commit.id).to_owned(),
                        commit.time_rfc3339(),
                        commit.author_name.clone(),
                        commit.summary().to_owned(),
                    ],
                    None => vec![
                        version.number.to_string(),
                        "-".to_owned(),
                        "-".to_owned(),
                        "-".to_owned(),
                        "(uncommitted changes in the working tree)".to_owned(),
                    ],
                })
                .collect();
            let mut text = output.paint(
                Style::Bold,
                &super::output::escape_control(&prompt.id.to_string()),
            );
            if prompt.archived {
                text.push_str(&format!(" {}", output.paint(Style::Dim, "(archived)")));
            }
            text.push('\n');
            text.push_str(&table(
                &["VERSION", "COMMIT", "DATE", "AUTHOR", "MESSAGE"],
                &rows,
            ));
            output.data(&text);
        }
    }
    let own: Vec<_> = history
        .problems
        .iter()
        .filter(|problem| {
            prompt
                .versions
                .iter()
                .any(|v| v.path == problem.diagnostic.path)
        })
        .cloned()
        .collect();
    report_history_problems(output, &own, 20);
    Ok(exit::SUCCESS)
}
