//! `promptctl promote PROMPT --from staging --to production`: give one environment what
//! another runs (version and model), as a minimal edit of `environments.yaml`.

use clap::Args;

use super::pin::{Change, apply, version_label};
use super::{CliError, Context};
use crate::environments::{ModelChange, VersionRef};

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
    let environments = super::pin::load_environments(&config)?;
    let source = environments.resolve(&prompt.id, &args.from);
    if environments
        .entry(&prompt.id)
        .and_then(|entry| entry.environment(&args.from))
        .is_none()
    {
        context.output.note(&format!(
            "note: {} does not pin {} in `{}`: promoting its latest version on its own model",
            crate::diagnostic::display_path(&environments.path),
            prompt.id,
            args.from
        ));
    }
    // `latest` in the source becomes the number it means now: promoting must not make the
    // target follow every later change.
    let version = match source.version {
        VersionRef::Number(n) => VersionRef::Number(n),
        VersionRef::Latest => match prompt.latest() {
            Some(latest) => VersionRef::Number(latest.number),
            None => VersionRef::Latest,
        },
    };
    let change = Change {
        env: args.to.clone(),
        version,
        model: source
            .model
            .clone()
            .map_or(ModelChange::Clear, ModelChange::Set),
    };
    apply(
        context,
        &config,
        &history,
        prompt,
        &change,
        args.commit,
        |_, after| {
            format!(
                "Promote {} {} from {} to {}",
                prompt.id,
                version_label(after.version),
                args.from,
                args.to
            )
        },
    )
}
