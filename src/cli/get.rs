//! `promptctl get PROMPT [--version N | --env E]`: one prompt read back from the
//! PostgreSQL registry, as a service would read it.

use clap::Args;

use super::output::{Format, Style};
use super::shared::{database_url, runtime};
use super::{CliError, Context, exit, short};
use crate::registry::{Registry, Selector};

/// Arguments of `promptctl get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// A version number (default: the latest).
    #[arg(long, value_name = "N", conflicts_with = "environment")]
    version: Option<u32>,
    /// The version and model an environment pins.
    #[arg(long = "env", value_name = "E")]
    environment: Option<String>,
    /// With --env: the version and model the environment's canary runs.
    #[arg(long, requires = "environment")]
    canary: bool,
    /// The PostgreSQL URL [default: the variable named by `[sync] database_url_env`,
    /// DATABASE_URL].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs `promptctl get`.
pub fn run(context: &Context, args: &GetArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let url = database_url(context, &config, args.database_url.as_deref())?;
    let selector = match (&args.version, &args.environment) {
        (Some(number), _) => Selector::Version(*number),
        (None, Some(environment)) if args.canary => Selector::Canary(environment.clone()),
        (None, Some(environment)) => Selector::Environment(environment.clone()),
        (None, None) => Selector::Latest,
    };
    let prompt = runtime()?.block_on(async {
        let registry = Registry::connect(&url).await?;
        registry.get_prompt(&args.prompt, &selector).await
    })?;
    let output = &context.output;
    if output.format == Format::Json {
        output.json(&prompt);
        return Ok(exit::SUCCESS);
    }
    let mut text = output.paint(
        Style::Bold,
        &format!("{}/{} v{}", prompt.service, prompt.name, prompt.version),
    );
    if let Some(environment) = &prompt.environment {
        text.push_str(&format!(" in {environment}"));
    }
    match (prompt.side, prompt.canary_weight) {
        (Some(crate::environments::Side::Canary), _) => text.push_str(" (canary)"),
        (_, Some(weight)) => text.push_str(&format!(
            " (baseline; a canary takes {}% of calls: --canary shows it)",
            crate::environments::weight_label(weight)
        )),
        _ => {}
    }
    if prompt.archived {
        text.push_str(&format!(" {}", output.paint(Style::Dim, "(archived)")));
    }
    text.push('\n');
    let summary = prompt
        .commit_message
        .as_deref()
        .and_then(|m| m.lines().next())
        .unwrap_or("");
    text.push_str(&output.paint(
        Style::Dim,
        &format!(
            "commit {} by {}: {summary}",
            short(&prompt.commit_sha),
            prompt.created_by.as_deref().unwrap_or("?")
        ),
    ));
    text.push('\n');
    text.push_str(&prompt.definition.to_yaml());
    output.data(&text);
    Ok(exit::SUCCESS)
}
