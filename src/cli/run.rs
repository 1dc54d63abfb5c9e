//! `promptctl run PROMPT --env E [--var k=v] [--vars-file F]`: executes a prompt through the
//! router, as a service would, and records the run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::output::Format;
use super::shared::{database_url, read_vars, runtime};
use super::{CliError, Context, exit};
use crate::router::{PromptSource, Router, RouterError};

/// How long the command waits, at most, for its run to be written to the database.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// Arguments of `promptctl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The environment whose version and model to run.
    #[arg(long = "env", value_name = "E", default_value = "production")]
    environment: String,
    /// A variable, as `name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// A YAML or JSON file of variables; `--var` overrides it.
    #[arg(long, value_name = "FILE")]
    vars_file: Option<PathBuf>,
    /// Read prompts from an offline bundle (`promptctl export`) instead of the repository.
    #[arg(long, value_name = "FILE", conflicts_with = "registry")]
    bundle: Option<PathBuf>,
    /// Read prompts from the PostgreSQL registry instead of the repository.
    #[arg(long)]
    registry: bool,
    /// The routing key of the environment's canary split (e.g. a user id): one key always
    /// takes the same side; without it the run id decides.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// The PostgreSQL URL runs are recorded in (and prompts read from with --registry)
    /// [default: the variable named by `[sync] database_url_env`; unset: not recorded].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs `promptctl run`.
pub fn run(context: &Context, args: &RunArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    // Without a URL the run is not recorded; with --registry one is needed, and the error
    // names the configured variable.
    let url = database_url(context, &config, args.database_url.as_deref()).ok();
    let source = if let Some(bundle) = &args.bundle {
        PromptSource::bundle(&context.directory.join(bundle)).map_err(router_error)?
    } else if args.registry {
        let url = database_url(context, &config, args.database_url.as_deref())?;
        PromptSource::registry(url, Duration::from_secs(60))
    } else {
        PromptSource::repository(&config, context.rev.as_deref()).map_err(router_error)?
    };
    let export = super::shared::span_export(context, &config)?;
    let runtime = runtime()?;
    let outcome = runtime.block_on(async {
        let router = Router::new(&config.settings, source, url);
        let result = async {
            let resolved = router
                .resolve(&args.prompt, &args.environment)
                .await
                .map_err(router_error)?;
            let vars = read_vars(
                context,
                args.vars_file.as_deref(),
                &args.vars,
                &resolved.definition.variables,
            )?;
            let options = crate::router::ExecuteOptions {
                key: args.key.clone(),
                ..crate::router::ExecuteOptions::default()
            };
            router
                .execute_with(&args.prompt, &args.environment, &vars, options)
                .await
                .map_err(router_error)
        }
        .await;
        let stats = router.shutdown(FLUSH_DEADLINE).await;
        if stats.dropped > 0 {
            context.output.note(&format!(
                "warning: {} run record(s) were not written to prompt_runs: {}",
                stats.dropped,
                stats
                    .last_error
                    .as_deref()
                    .unwrap_or("the database is unreachable")
            ));
        }
        let run = result?;
        let output = &context.output;
        match output.format {
            Format::Json => output.json(&serde_json::json!({
                "output": run.output,
                "usage": run.usage,
                "latency_ms": run.latency_ms,
                "cost_usd": run.cost_usd,
                "prompt": run.prompt,
                "environment": run.environment,
                "version": run.version,
                "model_requested": run.model_requested,
                "model": run.model,
                "provider": run.provider,
                "fallbacks": run.fallbacks,
                "run_id": run.run_id,
                "sampled": run.sampled,
                "side": run.side,
            })),
            Format::Human => {
                output.data(&run.output);
                for failed in &run.fallbacks {
                    output.note(&format!("note: {} failed: {}", failed.model, failed.error));
                }
                output.note(&format!(
                    "{} v{}{} on {} · {} in / {} out tokens · {:.0} ms{} · run {}",
                    run.prompt,
                    run.version
                        .map_or_else(|| "?".to_owned(), |v| v.to_string()),
                    run.side.map(|s| format!(" ({s})")).unwrap_or_default(),
                    run.model,
                    run.usage.input_tokens,
                    run.usage.output_tokens,
                    run.latency_ms,
                    run.cost_usd
                        .map(|c| format!(" · ${c:.6}"))
                        .unwrap_or_default(),
                    run.run_id
                ));
            }
        }
        Ok(exit::SUCCESS)
    });
    drop(runtime);
    if let Some(export) = export {
        export.shutdown(Duration::from_secs(5));
    }
    outcome
}

fn router_error(err: RouterError) -> CliError {
    let input = err.is_input();
    let message = err.to_string();
    match err {
        RouterError::AllFailed { .. } => CliError::external(message).hint(
            "every model of the chain (the model and its `fallbacks`) failed after its retries",
        ),
        RouterError::Render { .. } => {
            CliError::input(message).hint("pass variables with `--var name=value`")
        }
        RouterError::UnknownPrompt(_) => {
            CliError::input(message).hint("`promptctl list` shows every prompt")
        }
        _ if input => CliError::input(message),
        _ => CliError::external(message),
    }
}
