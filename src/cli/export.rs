//! `promptctl export [--env E] [--registry [--source S]] > prompts.bundle.json`: every
//! environment's resolved prompts as one file a service ships with, so the router can boot
//! without the database: the repository's, or with `--registry` every source's.

use clap::Args;

use super::shared::{database_url, runtime};
use super::{CliError, Context, exit};
use crate::router::Bundle;

/// Arguments of `promptctl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this environment (default: every environment of environments.yaml).
    #[arg(long = "env", value_name = "E")]
    environment: Option<String>,
    /// Read the prompts of every source (every repository synced) from the PostgreSQL
    /// registry instead of this repository.
    #[arg(long)]
    registry: bool,
    /// With `--registry`: only this source's prompts.
    #[arg(long, value_name = "S", requires = "registry")]
    source: Option<String>,
    /// The PostgreSQL URL, with `--registry` [default: the variable named by
    /// `[sync] database_url_env`].
    #[arg(long, value_name = "URL", requires = "registry")]
    database_url: Option<String>,
}

/// Runs `promptctl export`.
pub fn run(context: &Context, args: &ExportArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let only = args.environment.as_deref();
    let bundle = if args.registry {
        let url = database_url(context, &config, args.database_url.as_deref())?;
        runtime()?.block_on(async {
            let registry = crate::registry::Registry::connect(&url).await?;
            Bundle::from_registry(&registry, args.source.as_deref(), only).await
        })?
    } else {
        Bundle::from_repository(&config, context.rev.as_deref(), only)
            .map_err(|err| CliError::input(err.to_string()))?
    };
    let text = serde_json::to_string(&bundle)
        .map_err(|err| CliError::external(format!("cannot encode the bundle: {err}")))?;
    context.output.data(&text);
    Ok(exit::SUCCESS)
}
