//! `promptctl list`: every prompt of the working tree.

use clap::Args;
use serde::Serialize;

use super::output::{Format, table};
use super::{CliError, Context, exit};
use crate::diagnostic::display_path;

/// Arguments of `promptctl list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

#[derive(Serialize)]
struct Row {
    service: String,
    name: String,
    model: Option<String>,
    form: &'static str,
    tests: usize,
    path: String,
}

/// Runs `promptctl list`.
pub fn run(context: &Context, _args: &ListArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let snapshot = context.snapshot(&config)?;
    let mut rows: Vec<Row> = snapshot
        .prompts
        .iter()
        .filter_map(|prompt| {
            let id = prompt.id.as_ref()?;
            Some(Row {
                service: id.service.clone(),
                name: id.name.clone(),
                model: prompt.file.model.as_ref().map(|m| m.value.clone()),
                form: if prompt.file.messages.is_some() {
                    "chat"
                } else {
                    "template"
                },
                tests: prompt.file.tests.as_ref().map_or(0, |t| t.value.len()),
                path: display_path(&prompt.path),
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&rows),
        Format::Human => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    vec![
                        format!("{}/{}", row.service, row.name),
                        row.model.clone().unwrap_or_default(),
                        row.form.to_owned(),
                        row.tests.to_string(),
                        row.path.clone(),
                    ]
                })
                .collect();
            output.data(&table(
                &["PROMPT", "MODEL", "FORM", "TESTS", "FILE"],
                &cells,
            ));
        }
    }
    if !snapshot.problems.is_empty() {
        output.note(&format!(
            "warning: {} file(s) could not be read; `promptctl check` shows why",
            snapshot.problems.len()
        ));
    }
    Ok(exit::SUCCESS)
}
