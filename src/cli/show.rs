//! `promptctl show PROMPT[@N]`: one version's definition (default: the latest, the
//! working tree's when it has uncommitted changes).

use clap::Args;

use super::output::Format;
use super::output::escape_control;
use super::shared::PromptVersions;
use super::{CliError, Context, exit, short};
use crate::diagnostic::display_path;

/// Arguments of `promptctl show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The prompt and version: `name`, `service/name`, `name@3`.
    prompt: String,
}

/// Splits `PROMPT@N` into the prompt and the version number.
pub fn parse_prompt_at(text: &str) -> Result<(&str, Option<u32>), CliError> {
    match text.rsplit_once('@') {
        None => Ok((text, None)),
        Some((prompt, number)) => {
            let number: u32 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                CliError::input(format!(
                    "`{text}`: the version after `@` must be a number from 1"
                ))
                .hint("write it as PROMPT@N, e.g. `support_reply@3`")
            })?;
            Ok((prompt, Some(number)))
        }
    }
}

/// Runs `promptctl show`.
pub fn run(context: &Context, args: &ShowArgs) -> Result<u8, CliError> {
    let (query, number) = parse_prompt_at(&args.prompt)?;
    let found = PromptVersions::load(context, query)?;
    let prompt = &found.prompt;
    let latest = found.versions.last().map_or(0, |v| v.number);
    let version = found.numbered(number.unwrap_or(latest))?;
    let definition = version.definition()?;
    let output = &context.output;
    let commit = version.commit.as_deref();
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "service": prompt.id.service,
            "name": prompt.id.name,
            "version": version.number,
            "commit": commit.map(|c| &c.id),
            "time": commit.map(crate::history::CommitInfo::time_rfc3339),
            "author": commit.map(|c| &c.author_name),
            "author_email": commit.map(|c| &c.author_email),
            "message": commit.map(|c| &c.message),
            "uncommitted": version.is_uncommitted(),
            "archived": prompt.archived,
            "path": display_path(&version.path),
            "fingerprint": definition.fingerprint(),
            "definition": &*definition,
        })),
        Format::Human => {
            let header = match commit {
                Some(c) => format!(
                    "# {}@{} — commit {}, {}, {}\n# {}\n",
                    escape_control(&prompt.id.to_string()),
                    version.number,
                    short(&c.id),
                    c.time_rfc3339(),
                    escape_control(&c.author_name),
                    escape_control(c.summary())
                ),
                None => format!(
                    "# {}@{} — uncommitted changes in the working tree\n",
                    escape_control(&prompt.id.to_string()),
                    version.number
                ),
            };
            output.data(&format!("{header}{}", definition.to_yaml()));
        }
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_at_number_parses() {
        assert_eq!(parse_prompt_at("a/b@3").ok(), Some(("a/b", Some(3))));
        assert_eq!(parse_prompt_at("b").ok(), Some(("b", None)));
        assert!(parse_prompt_at("b@x").is_err());
        assert!(parse_prompt_at("b@0").is_err());
    }
}
