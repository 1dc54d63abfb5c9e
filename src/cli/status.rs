//! `promptctl status`: every prompt by environment, with the version and model each runs,
//! flagging environments behind the latest version and pins on archived prompts.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;

use super::output::{Format, Style, table};
use super::{CliError, Context, exit};
use crate::environments::{Environments, VersionRef};
use crate::repo::PromptId;

/// Arguments of `promptctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {}

/// One environment of one prompt.
#[derive(Serialize)]
struct Cell {
    /// The version it runs (`None`: no committed version yet).
    version: Option<u32>,
    /// `latest` or the number, as the file says (`latest` when the file does not say).
    pinned: VersionRef,
    /// Whether the file names this environment for this prompt.
    explicit: bool,
    /// The model it runs.
    model: String,
    /// Whether the model is the environment's override.
    model_override: bool,
    /// Whether a newer version exists.
    behind: bool,
    /// The environment's canary split, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    canary: Option<crate::environments::Canary>,
}

/// One prompt.
#[derive(Serialize)]
struct Row {
    prompt: String,
    service: String,
    name: String,
    latest: Option<u32>,
    model: Option<String>,
    archived: bool,
    environments: BTreeMap<String, Cell>,
    flags: Vec<String>,
}

/// Runs `promptctl status`.
pub fn run(context: &Context, _args: &StatusArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let history = context.history(&config)?;
    let environments = match Environments::load(&config) {
        Ok(Some(environments)) => environments,
        Ok(None) => Environments::parse(&config.settings.environments, "")
            .map_err(|d| CliError::at(super::ErrorKind::Input, d))?,
        Err(diagnostic) => return Err(CliError::at(super::ErrorKind::Input, diagnostic)),
    };
    let mut names = environments.environment_names();
    // The usual three first, in promotion order; others after, as the file has them.
    names.sort_by_key(|name| match name.as_str() {
        "production" => 0,
        "staging" => 1,
        "canary" => 2,
        _ => 3,
    });
    let mut rows = Vec::new();
    for (id, prompt) in &history.prompts {
        let pinned = environments.entry(id).is_some();
        if prompt.archived && !pinned {
            continue;
        }
        rows.push(row(id, prompt, &environments, &names));
    }
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "environments": names,
            "prompts": rows,
        })),
        Format::Human => {
            let mut header = vec!["PROMPT", "LATEST"];
            header.extend(names.iter().map(String::as_str));
            header.push("FLAGS");
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    let mut cells = vec![
                        row.prompt.clone(),
                        row.latest
                            .map_or_else(|| "-".to_owned(), |n| format!("v{n}")),
                    ];
                    for name in &names {
                        let cell = &row.environments[name];
                        let version = cell
                            .version
                            .map_or_else(|| "-".to_owned(), |n| format!("v{n}"));
                        let version = match (cell.explicit, cell.pinned) {
                            (true, VersionRef::Latest) => format!("{version} (latest)"),
                            (false, _) => format!("{version} (default)"),
                            _ => version,
                        };
                        let marker = if cell.behind { "!" } else { "" };
                        let canary = cell.canary.as_ref().map_or_else(String::new, |c| {
                            let version = c.version.map(crate::deploy::version_label);
                            let what = [version, c.model.clone()].into_iter().flatten();
                            format!(
                                " + canary {} at {}%",
                                what.collect::<Vec<_>>().join(" "),
                                crate::environments::weight_label(c.weight)
                            )
                        });
                        cells.push(format!("{version}{marker} {}{canary}", cell.model));
                    }
                    cells.push(row.flags.join("; "));
                    cells
                })
                .collect();
            let mut text = table(&header, &cells);
            let flagged = rows.iter().filter(|r| !r.flags.is_empty()).count();
            if flagged > 0 {
                text.push_str(&format!(
                    "\n\n{}",
                    output.paint(
                        Style::Yellow,
                        &format!(
                            "{flagged} prompt(s) flagged; `!` marks an environment behind the latest version"
                        )
                    )
                ));
            }
            output.data(&text);
        }
    }
    Ok(exit::SUCCESS)
}

fn row(
    id: &PromptId,
    prompt: &crate::history::PromptHistory,
    environments: &Environments,
    names: &[String],
) -> Row {
    let latest = prompt.latest();
    let latest_number = latest.map(|v| v.number);
    let mut flags = Vec::new();
    if prompt.archived {
        flags.push("archived but pinned".to_owned());
    }
    let mut cells = BTreeMap::new();
    for name in names {
        let pin = environments.resolve(id, name);
        let explicit = environments
            .entry(id)
            .and_then(|e| e.environment(name))
            .is_some();
        let version = match pin.version {
            VersionRef::Number(n) => Some(n),
            VersionRef::Latest => latest_number,
        };
        let own_model = version
            .and_then(|n| prompt.version(n))
            .or(latest)
            .map(|v| v.model().to_owned())
            .unwrap_or_default();
        let behind = matches!((version, latest_number), (Some(v), Some(l)) if v < l);
        if behind {
            flags.push(format!(
                "{name} behind (v{} < v{})",
                version.unwrap_or_default(),
                latest_number.unwrap_or_default()
            ));
        }
        if let (VersionRef::Number(n), Some(l)) = (pin.version, latest_number)
            && n > l
        {
            flags.push(format!("{name} pins missing v{n}"));
        }
        cells.insert(
            name.clone(),
            Cell {
                version,
                pinned: pin.version,
                explicit,
                model: pin.model.clone().unwrap_or(own_model),
                model_override: pin.model.is_some(),
                behind,
                canary: environments.canary(id, name).cloned(),
            },
        );
    }
    Row {
        prompt: id.to_string(),
        service: id.service.clone(),
        name: id.name.clone(),
        latest: latest_number,
        model: latest.map(|v| v.model().to_owned()),
        archived: prompt.archived,
        environments: cells,
        flags,
    }
}
