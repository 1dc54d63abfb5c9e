//! `promptctl diff PROMPT N [M]`: a unified diff between two versions' definitions (as
//! `show` prints them), to the working tree when M is left out. Coloured on a terminal,
//! plain otherwise (`NO_COLOR`, `--color never`).

use clap::Args;
use serde::Serialize;

use super::output::{Format, Style};
use super::shared::PromptVersions;
use super::{CliError, Context, exit};

/// Arguments of `promptctl diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The older version.
    from: u32,
    /// The newer version (default: the working tree).
    to: Option<u32>,
}

#[derive(Serialize)]
struct DiffOutput {
    prompt: String,
    from: u32,
    /// The version compared to, `null` for the working tree.
    to: Option<u32>,
    identical: bool,
    diff: String,
}

/// Runs `promptctl diff`.
pub fn run(context: &Context, args: &DiffArgs) -> Result<u8, CliError> {
    let found = PromptVersions::load(context, &args.prompt)?;
    let (history, prompt) = (&found.history, &found.prompt);
    let old = found.numbered(args.from)?;
    let shown_id = super::output::escape_control(&prompt.id.to_string()).into_owned();
    let old_label = format!("{shown_id}@{}", old.number);
    let (new_text, new_label) = match args.to {
        Some(number) => {
            let new = found.numbered(number)?;
            (
                new.definition()?.to_yaml(),
                format!("{shown_id}@{}", new.number),
            )
        }
        None => {
            let uncommitted = history.uncommitted()?;
            let label = format!("{shown_id} (working tree)");
            if uncommitted.deleted.contains(&prompt.id)
                || (prompt.archived && !uncommitted.versions.contains_key(&prompt.id))
            {
                (String::new(), label)
            } else {
                let text = match uncommitted.versions.get(&prompt.id).or(prompt.latest()) {
                    Some(version) => version.definition()?.to_yaml(),
                    None => String::new(),
                };
                (text, label)
            }
        }
    };
    let old_text = old.definition()?.to_yaml();
    let diff = similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &new_label)
        .to_string();
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&DiffOutput {
            prompt: prompt.id.to_string(),
            from: old.number,
            to: args.to,
            identical: old_text == new_text,
            diff,
        }),
        Format::Human => {
            if old_text == new_text {
                output.note(&format!(
                    "no differences between {old_label} and {new_label}"
                ));
            } else {
                let painted: Vec<String> = diff
                    .lines()
                    .map(|line| {
                        let style = if line.starts_with("+++") || line.starts_with("---") {
                            Some(Style::Bold)
                        } else if line.starts_with('+') {
                            Some(Style::Green)
                        } else if line.starts_with('-') {
                            Some(Style::Red)
                        } else if line.starts_with("@@") {
                            Some(Style::Cyan)
                        } else {
                            None
                        };
                        style.map_or_else(|| line.to_owned(), |style| output.paint(style, line))
                    })
                    .collect();
                output.data(&painted.join("\n"));
            }
        }
    }
    Ok(exit::SUCCESS)
}
