//! `promptctl export [--env E] > prompts.bundle.json`: every environment's resolved prompts
//! as one file a service ships with, so the router can boot without the database.

use clap::Args;

use super::{CliError, Context, exit};
use crate::router::Bundle;

/// Arguments of `promptctl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this environment (default: every environment of environments.yaml).
    #[arg(long = "env", value_name = "E")]
    environment: Option<String>,
}

/// Runs `promptctl export`.
pub fn run(context: &Context, args: &ExportArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let bundle =
        Bundle::from_repository(&config, context.rev.as_deref(), args.environment.as_deref())
            .map_err(|err| CliError::input(err.to_string()))?;
    let text = serde_json::to_string(&bundle)
        .map_err(|err| CliError::external(format!("cannot encode the bundle: {err}")))?;
    context.output.data(&text);
    Ok(exit::SUCCESS)
}
