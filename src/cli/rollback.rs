//! `promptctl rollback PROMPT --to N`: write version N's definition back into the
//! prompt's file, keeping its current tests and description, run the tests against it, and
//! commit it as the next version with an audit message ([`crate::deploy::rollback`]).
//!
//! Nothing is written unless the tests pass (or `--skip-tests` says not to run them), and
//! only the prompt's file is committed.

use clap::Args;

use super::output::Format;
use super::{CliError, Context, exit};
use crate::deploy::rollback::{Plan, Rollback, plan};
use crate::eval::CaseResult;
use crate::eval::report::{self, Summary};
use crate::providers::Mode;

/// Arguments of `promptctl rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The version whose definition comes back.
    #[arg(long, value_name = "N")]
    to: u32,
    /// Commit without running the prompt's tests (the commit message says so).
    #[arg(long)]
    skip_tests: bool,
    /// Answer the tests from recordings only (see `promptctl test --replay`).
    #[arg(long)]
    replay: bool,
}

/// Runs `promptctl rollback`.
pub fn run(context: &Context, args: &RollbackArgs) -> Result<u8, CliError> {
    if context.rev.is_some() {
        return Err(CliError::input(
            "rollback commits on the current branch; leave out --rev",
        ));
    }
    let config = context.config()?;
    let history = context.history(&config)?;
    let snapshot = context.snapshot(&config)?;
    let output = &context.output;
    let rollback = match plan(&config, &history, &snapshot, &args.prompt, args.to)? {
        Plan::Unchanged { prompt, latest } => {
            match output.format {
                Format::Json => output.json(&serde_json::json!({
                    "prompt": prompt.to_string(), "changed": false, "version": latest,
                })),
                Format::Human => output.data(&format!(
                    "{prompt} v{latest} already has the definition of v{}; nothing to roll back",
                    args.to
                )),
            }
            return Ok(exit::SUCCESS);
        }
        Plan::Ready(rollback) => rollback,
    };
    let mut results: Vec<CaseResult> = Vec::new();
    if !args.skip_tests {
        let mode = if args.replay {
            Mode::Replay
        } else {
            Mode::Live
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))?;
        results = runtime.block_on(rollback.test(&config, mode))?;
        if let Some(code) = refused(context, &rollback, &results) {
            return Ok(code);
        }
    }
    let commit = rollback.commit((!args.skip_tests).then_some(results.len()))?;
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": rollback.prompt.to_string(),
            "to": args.to,
            "version": rollback.new_version(),
            "changed": true,
            "commit": commit,
            "tests_skipped": args.skip_tests,
            "results": results,
        })),
        Format::Human => {
            let mut text = String::new();
            if !results.is_empty() {
                text.push_str(&report::result_table(&results, output.stdout_colored()));
                text.push('\n');
            }
            text.push_str(&format!(
                "{}: committed {}",
                rollback.subject(),
                super::short(&commit)
            ));
            output.data(&text);
        }
    }
    Ok(exit::SUCCESS)
}

/// When the tests did not all pass: prints them and the refusal, and gives the exit code
/// (a provider failure 3, a test that could not run 2, a failed one 1).
fn refused(context: &Context, rollback: &Rollback, results: &[CaseResult]) -> Option<u8> {
    let summary = Summary::of(results);
    let code = super::shared::refusal_code(&summary)?;
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": rollback.prompt.to_string(),
            "to": rollback.to,
            "changed": false,
            "refused": "tests did not pass",
            "summary": summary,
            "results": results,
        })),
        Format::Human => {
            let color = output.stdout_colored();
            let mut text = report::result_table(results, color);
            text.push_str(&report::failure_details(results, color));
            output.data(&text);
        }
    }
    output.error(
        &format!(
            "rollback of {} to v{} refused: its tests do not pass; nothing was written",
            rollback.prompt, rollback.to
        ),
        &["`promptctl test` shows the same results; --skip-tests rolls back untested".to_owned()],
    );
    Some(code)
}
