//! `promptctl promote PROMPT --from staging --to production`: give one environment what
//! another runs (version and model), as a minimal edit of `environments.yaml`
//! ([`crate::deploy::pin::promotion`]).

use clap::Args;

use super::{CliError, Context, shared};
use crate::deploy::pin::{plan, promotion};

/// Arguments of `promptctl promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The environment whose version and model move.
    #[arg(long, value_name = "ENV")]
    from: String,
    /// The environment that receives them.
    #[arg(long, value_name = "ENV")]
    to: String,
    /// Commit the change to environments.yaml (alone) with a message saying what moved.
    #[arg(long)]
    commit: bool,
}

/// Runs `promptctl promote`.
pub fn run(context: &Context, args: &PromoteArgs) -> Result<u8, CliError> {
    if args.from == args.to {
        return Err(CliError::input("--from and --to name the same environment"));
    }
    let config = context.config()?;
    let history = context.history(&config)?;
    let prompt = history.find(&args.prompt)?;
    let promotion = promotion(&config, prompt, &args.from, &args.to)?;
    if !promotion.pinned {
        context.output.note(&format!(
            "note: {} does not pin {} in `{}`: promoting its latest version on its own model",
            crate::diagnostic::display_path(&promotion.path),
            prompt.id,
            args.from
        ));
    }
    let plan = plan(&config, &history, prompt, &promotion.change)?;
    shared::write_pin(context, &plan, args.commit)
}
