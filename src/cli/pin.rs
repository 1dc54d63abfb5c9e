//! `promptctl pin PROMPT --env E --version N|latest [--model M]`: set what an environment
//! runs, as a minimal edit of `environments.yaml`, optionally committed
//! ([`crate::deploy::pin`]).

use clap::Args;

use super::{CliError, Context, shared};
use crate::deploy::pin::{Change, plan};
use crate::environments::{ModelChange, VersionRef};

/// Arguments of `promptctl pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The environment, e.g. `production`.
    #[arg(long, value_name = "ENV")]
    env: String,
    /// The version to run: a number, or `latest`.
    #[arg(long = "version", value_name = "N|latest")]
    version: VersionRef,
    /// The model to run it on in this environment (default: keep the current override).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Drop the environment's model override: run the prompt's own model.
    #[arg(long, conflicts_with = "model")]
    own_model: bool,
    /// Commit the change to environments.yaml (alone) with a message saying what moved.
    #[arg(long)]
    commit: bool,
}

/// Runs `promptctl pin`.
pub fn run(context: &Context, args: &PinArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let history = context.history(&config)?;
    let prompt = history.find(&args.prompt)?;
    let model = match (&args.model, args.own_model) {
        (Some(model), _) => ModelChange::Set(model.clone()),
        (None, true) => ModelChange::Clear,
        (None, false) => ModelChange::Keep,
    };
    let change = Change {
        env: args.env.clone(),
        version: args.version,
        model,
        from: None,
    };
    let plan = plan(&config, &history, prompt, &change)?;
    shared::write_pin(context, &plan, args.commit)
}
